"""``centernet convert-weights ORIG.pth --config X --out model.ckpt``: original CenterNet weights as a checkpoint."""

from __future__ import annotations

import sys
from pathlib import Path

from .predict import CommandParser

__all__ = ["convert_weights_main"]


def convert_weights_main(argv: list[str]) -> None:
    """``centernet convert-weights``: an original CenterNet checkpoint as a checkpoint of ours."""
    parser = CommandParser(prog="centernet convert-weights", description=convert_weights_main.__doc__)
    parser.add_argument(
        "original",
        help="original file, e.g. ctdet_coco_resdcn18.pth / ctdet_coco_dla_2x.pth / ctdet_coco_hg.pth (from the "
        "model zoo of github.com/xingyizhou/CenterNet, MODEL_ZOO.md; see docs/models.md)",
    )
    parser.add_argument("--config", required=True, help="the matching configs/paper/*.yaml")
    parser.add_argument("--out", required=True, help="the checkpoint to write (never overwritten)")
    args = parser.parse_args(argv)
    if Path(args.out).exists():  # refused before the seconds of reading and converting the weights
        sys.exit(f"centernet convert-weights: --out {args.out} exists; choose another path (nothing was written)")
    from ..datasets.coco import COCO_CATEGORY_IDS, COCO_CLASSES
    from ..models.original_weights import load_original_weights, read_original_state_dict
    from ..structures import InferenceSpec
    from ..tasks.loading import build_untrained_model, save_checkpoint

    try:
        original = read_original_state_dict(args.original)
        if not Path(args.config).is_file():
            raise FileNotFoundError(f"--config {args.config}: no such file")
        heatmap_keys = [key for key in original if key.endswith("weight") and key.split(".")[0] == "hm"]
        num_classes = int(original[sorted(heatmap_keys)[-1]].shape[0]) if heatmap_keys else 80
        model = build_untrained_model(args.config, num_classes)  # every weight is overwritten
        if num_classes == len(COCO_CLASSES):  # the original models are trained on COCO at 512 px
            model.hparams.class_names = list(COCO_CLASSES)
            model.inference_spec = InferenceSpec(class_names=list(COCO_CLASSES), category_ids=list(COCO_CATEGORY_IDS))
        elif num_classes == 1 and model.inference_spec.keypoints:  # multi_pose: COCO's person, 17 joints
            model.hparams.class_names = ["person"]
            model.inference_spec = InferenceSpec(
                class_names=["person"], category_ids=[1], keypoints=model.inference_spec.keypoints
            )
        untouched = load_original_weights(model, args.original, original)
        out = save_checkpoint(model, args.out)
    except (OSError, ValueError) as error:  # OSError: missing or existing files, a full disk
        sys.exit(f"centernet convert-weights: {error}")
    print(
        f"Converted {args.original} ({num_classes} classes) into {out}"
        + (f"; {len(untouched)} tensors kept their initialisation" if untouched else "")
    )
    print(f"Use it with: centernet validate --config {args.config} --ckpt_path {out}")
