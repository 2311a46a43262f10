"""``centernet data synth --out DIR``: write the built-in synthetic dataset in COCO format."""

from __future__ import annotations

import argparse
import sys

from ..datasets.synthetic import generate_synthetic_dataset

__all__ = ["data_main"]


def data_main(argv: list[str]) -> None:
    """``centernet data synth``: the synthetic shapes dataset (the only ``data`` subcommand)."""
    if argv[:1] != ["synth"]:
        sys.exit("usage: centernet data synth --out DIR [--num-train N] [--num-val N] [--image-size PX] ...")
    parser = argparse.ArgumentParser(prog="centernet data synth", description=generate_synthetic_dataset.__doc__)
    parser.add_argument("--out", required=True, help="destination folder (must be missing or empty)")
    parser.add_argument("--num-train", type=int, default=300)
    parser.add_argument("--num-val", type=int, default=100)
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--num-classes", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true", help="allow writing into a non-empty folder")
    args = parser.parse_args(argv[1:])
    out = generate_synthetic_dataset(
        args.out,
        num_train=args.num_train,
        num_val=args.num_val,
        image_size=args.image_size,
        num_classes=args.num_classes,
        seed=args.seed,
        overwrite=args.overwrite,
    )
    print(f"Synthetic dataset written to {out} (COCO format: annotations/instances_{{train,val}}.json)")
