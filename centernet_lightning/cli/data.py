"""``centernet data synth --out DIR``: write a built-in synthetic dataset in COCO format (drawn shapes
for detection, or with ``--task keypoints`` drawn stick people with COCO's 17 joints)."""

from __future__ import annotations

import argparse
import sys

from ..checks import check_int_min, check_int_range

__all__ = ["data_main"]

# The synthetic dataset's classes (datasets/synthetic.py SHAPE_NAMES, pinned by a test), written
# out so that parsing the options imports nothing heavy.
SHAPES = ("circle", "rectangle", "triangle", "star", "cross", "ring", "hexagon", "crescent")
MIN_IMAGE_SIZE = 64  # smaller images leave the shapes (8 % to 40 % of the side) a few pixels


def data_main(argv: list[str]) -> None:
    """``centernet data synth``: the synthetic shapes or keypoints dataset (the only ``data`` subcommand)."""
    parser = argparse.ArgumentParser(prog="centernet data", description="Datasets: synth (the only subcommand).")
    commands = parser.add_subparsers(dest="command", required=True, metavar="synth")
    synth = commands.add_parser(
        "synth",
        help="write a synthetic dataset (shapes, or stick people with keypoints) in COCO format",
        description="Write a built-in synthetic dataset in COCO format. --task boxes (the default): drawn shapes "
        "(circles, rectangles, triangles, ...) for detection, images/{train,val}/ and "
        "annotations/instances_{train,val}.json. --task keypoints: stick people in random poses with COCO's 17 "
        "joints (one class, person), images/{train,val}/ and annotations/person_keypoints_{train,val}.json.",
    )
    synth.add_argument(
        "--task",
        choices=("boxes", "keypoints"),
        default="boxes",
        help="boxes: shapes for detection (default); keypoints: people with COCO's 17 joints",
    )
    synth.add_argument("--out", required=True, help="destination folder (must be missing or empty)")
    synth.add_argument("--num-train", type=int, default=300, help="training images (default 300)")
    synth.add_argument("--num-val", type=int, default=100, help="validation images (default 100)")
    synth.add_argument("--image-size", type=int, default=256, help="image side in pixels, >= 64 (default 256)")
    synth.add_argument(
        "--num-classes",
        type=int,
        default=None,
        help=f"shape classes, 1 to {len(SHAPES)}: {', '.join(SHAPES)} (default 3; --task boxes only)",
    )
    synth.add_argument("--seed", type=int, default=0, help="random seed; the same seed writes the same data")
    synth.add_argument("--overwrite", action="store_true", help="allow writing into a non-empty folder")
    args = parser.parse_args(argv)
    try:
        check_int_min("--num-train", args.num_train, 0)
        check_int_min("--num-val", args.num_val, 0)
        if args.num_train + args.num_val == 0:
            raise ValueError("--num-train and --num-val are both 0: nothing to write")
        check_int_min("--image-size", args.image_size, MIN_IMAGE_SIZE)
        if args.task == "keypoints" and args.num_classes is not None:
            raise ValueError("--num-classes applies to --task boxes only (keypoints have one class, person)")
        if args.task == "boxes":
            args.num_classes = 3 if args.num_classes is None else args.num_classes
            check_int_range("--num-classes", args.num_classes, 1, len(SHAPES))
    except ValueError as error:
        parser.exit(2, f"centernet data synth: {error}\n")
    common = {"num_train": args.num_train, "num_val": args.num_val, "image_size": args.image_size, "seed": args.seed}
    try:
        if args.task == "keypoints":
            from ..datasets.synthetic_keypoints import generate_synthetic_keypoints

            out = generate_synthetic_keypoints(args.out, **common, overwrite=args.overwrite)
            written = "Synthetic keypoints dataset", "COCO keypoints format: annotations/person_keypoints"
        else:
            from ..datasets.synthetic import generate_synthetic_dataset

            out = generate_synthetic_dataset(args.out, **common, num_classes=args.num_classes, overwrite=args.overwrite)
            written = "Synthetic dataset", "COCO format: annotations/instances"
    except FileExistsError:
        sys.exit(f"centernet data synth: {args.out} is not empty; choose another --out, or pass --overwrite")
    except (OSError, ValueError) as error:
        sys.exit(f"centernet data synth: {error}")
    print(f"{written[0]} written to {out} ({written[1]}_{{train,val}}.json)")
