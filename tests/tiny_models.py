"""The tiny, randomly initialised CenterNet the inference, command and reliability tests run."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from centernet_lightning import CenterNet, InferenceSpec

# The command-line form of a tiny model and run (64 px, batch 2, CPU, quiet) for the `centernet
# fit` tests; each adds its data and trainer limits.
TINY_CLI_OPTIONS = [
    "--model.backbone=resnet18",
    "--model.neck={name: fpn, upsample_channels: [16, 16, 16]}",
    "--model.head_width=16",
    "--data.input_size=64",
    "--data.batch_size=2",
    "--data.num_workers=0",
    "--trainer.accelerator=cpu",
    "--trainer.devices=1",
    "--trainer.enable_model_summary=false",
    "--progress_bar.refresh_rate=0",
]


def tiny_centernet(
    class_names: Sequence[str],
    input_size: int,
    category_ids: Sequence[int] | None = None,
    backbone: str = "resnet18",
    channels: int = 16,
    head_width: int = 8,
    num_detections: int = 20,
) -> CenterNet:
    """A CenterNet in eval mode with seed-0 random weights (its scores are about 0.1 everywhere)
    and the inference spec a trained one would carry: ``input_size`` px, the class names and ids."""
    torch.manual_seed(0)
    model = CenterNet(
        num_classes=len(class_names),
        backbone={"name": backbone, "pretrained": False},
        neck={"name": "simple", "upsample_channels": [channels] * 3},
        head_width=head_width,
        num_detections=num_detections,
        class_names=list(class_names),
    )
    model.inference_spec = InferenceSpec(
        input_size=input_size,
        class_names=list(class_names),
        category_ids=None if category_ids is None else list(category_ids),
    )
    return model.eval()
