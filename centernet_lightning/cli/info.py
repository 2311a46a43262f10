"""``centernet info --config X``: parameters and GFLOPs per part of a config's model."""

from __future__ import annotations

import argparse
import sys

__all__ = ["info_main"]


def info_main(argv: list[str]) -> None:
    """``centernet info``: parameters and GFLOPs per part of a config's model (random weights: nothing
    is downloaded). A FairMOT lists its detector and re-ID head; the identity classifier, used in
    training only, is not listed."""
    parser = argparse.ArgumentParser(prog="centernet info", description=info_main.__doc__)
    parser.add_argument("--config", required=True, help="a fit config (or a model section) YAML file")
    parser.add_argument("--input-size", type=int, default=512, help="square input side in pixels")
    parser.add_argument(
        "--num-classes", type=int, default=None, help="class count when the config leaves it to the data (default 80)"
    )
    args = parser.parse_args(argv)
    from ..models.info import format_info, model_info
    from ..tasks.loading import build_untrained_model

    try:
        model = build_untrained_model(args.config, args.num_classes)
    except (FileNotFoundError, ValueError) as error:
        sys.exit(f"centernet info: {error}")
    rows = model_info(model, args.input_size)
    print(f"{args.config}: {model.num_classes} classes, input {args.input_size}x{args.input_size}")
    print(format_info(rows))
