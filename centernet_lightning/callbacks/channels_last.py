"""Training and inference in NHWC memory format, as a Lightning callback."""

from __future__ import annotations

from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

__all__ = ["ChannelsLast"]


class ChannelsLast(Callback):
    """Run the model in NHWC (``torch.channels_last``) memory format: its 4-D weights from set-up on,
    and the ``images`` of every batch before each training, validation, test or predict step.

    Convolutions run faster on NHWC tensors (oneDNN on CPU; cuDNN's tensor-core kernels under
    mixed precision): a ResNet-18 + FPN training step in bf16 on 2 CPU threads takes 0.8-0.9x the
    time of NCHW (``benchmarks/train_step.py``, docs/benchmarks.md). Only the layout changes, not the
    maths; results differ from NCHW by the summation order of floating-point kernels. Checkpoints
    hold the same weights (``load_state_dict`` copies whatever the strides). Enable it in a config
    with ``trainer.callbacks: [{class_path: centernet_lightning.callbacks.ChannelsLast}]``.
    Layers a LightningModule builds in its own ``setup`` or ``configure_model`` (none here) are
    created after this callback's ``setup`` and stay NCHW.
    """

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        pl_module.to(memory_format=torch.channels_last)

    @staticmethod
    def _convert(batch: Any) -> None:
        images = batch.get("images") if isinstance(batch, dict) else None
        if isinstance(images, torch.Tensor) and images.ndim == 4:
            batch["images"] = images.contiguous(memory_format=torch.channels_last)

    def on_train_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int
    ) -> None:
        self._convert(batch)

    def on_validation_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        self._convert(batch)

    def on_test_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        self._convert(batch)

    def on_predict_batch_start(
        self, trainer: L.Trainer, pl_module: L.LightningModule, batch: Any, batch_idx: int, dataloader_idx: int = 0
    ) -> None:
        self._convert(batch)
