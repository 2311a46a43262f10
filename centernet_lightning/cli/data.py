"""``centernet data synth --out DIR``: write the built-in synthetic dataset in COCO format."""

from __future__ import annotations

import argparse

__all__ = ["data_main"]


def data_main(argv: list[str]) -> None:
    """``centernet data synth``: the synthetic shapes dataset (the only ``data`` subcommand)."""
    parser = argparse.ArgumentParser(prog="centernet data", description="Datasets: synth (the only subcommand).")
    commands = parser.add_subparsers(dest="command", required=True, metavar="synth")
    synth = commands.add_parser(
        "synth",
        help="write the synthetic shapes dataset in COCO format",
        description="Write the built-in synthetic dataset of drawn shapes (circles, rectangles, triangles, ...) "
        "in COCO format: images/{train,val}/ and annotations/instances_{train,val}.json.",
    )
    synth.add_argument("--out", required=True, help="destination folder (must be missing or empty)")
    synth.add_argument("--num-train", type=int, default=300)
    synth.add_argument("--num-val", type=int, default=100)
    synth.add_argument("--image-size", type=int, default=256)
    synth.add_argument("--num-classes", type=int, default=3)
    synth.add_argument("--seed", type=int, default=0)
    synth.add_argument("--overwrite", action="store_true", help="allow writing into a non-empty folder")
    args = parser.parse_args(argv)
    from ..datasets.synthetic import generate_synthetic_dataset

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
