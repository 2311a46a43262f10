"""Lightning callbacks: validation images in the logger, writing predictions to disk, NHWC training."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import cv2
import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import BasePredictionWriter, Callback

from .image_io import read_image
from .preprocess import denormalize_image
from .visualize import draw_boxes

__all__ = ["ChannelsLast", "ValidationImageLogger", "PredictionWriter"]

GROUND_TRUTH_COLOR = (0, 255, 0)


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


class ValidationImageLogger(Callback):
    """Log the first validation batch's images with ground truth (green) and predictions drawn.

    Works with TensorBoard (``add_image``); other loggers are skipped silently.

    Args:
        num_images: images to log per validation epoch.
        score_threshold: smallest score of a drawn prediction.
    """

    def __init__(self, num_images: int = 4, score_threshold: float = 0.3) -> None:
        self.num_images = num_images
        self.score_threshold = score_threshold

    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if (
            batch is None
            or outputs is None
            or batch_idx != 0
            or trainer.sanity_checking
            or not trainer.is_global_zero
            or self.num_images <= 0
        ):
            return
        experiment = getattr(trainer.logger, "experiment", None)
        if not hasattr(experiment, "add_image"):
            return
        class_names = pl_module.hparams.get("class_names")
        for i in range(min(self.num_images, batch["images"].shape[0])):
            image = denormalize_image(batch["images"][i])
            objects = batch["mask"][i] & ~batch["ignore"][i] if "ignore" in batch else batch["mask"][i]
            truth = batch["bboxes"][i][objects].cpu().numpy()
            truth_labels = batch["labels"][i][objects].cpu().numpy()
            image = draw_boxes(image, truth, truth_labels, class_names=class_names, color=GROUND_TRUTH_COLOR)
            keep = (outputs["scores"][i] >= self.score_threshold).cpu().numpy()
            image = draw_boxes(
                image,
                outputs["bboxes"][i].cpu().numpy()[keep],
                outputs["labels"][i].cpu().numpy()[keep],
                outputs["scores"][i].cpu().numpy()[keep],
                class_names,
            )
            experiment.add_image(f"val/image_{i}", image, trainer.global_step, dataformats="HWC")


class PredictionWriter(BasePredictionWriter):
    """Write ``centernet predict`` results: a JSON file of detections and annotated images.

    Files go to a new numbered folder ``output_dir/predict_<n>`` so earlier results are never
    overwritten. The JSON lists, per image, its path and detections (XYXY original pixels).
    Under DDP every process draws its own images into the same folder and rank 0 writes the
    gathered JSON.

    Args:
        output_dir: parent folder of the results.
        score_threshold: smallest score kept in the JSON and drawn.
        draw: also write each image with its detections drawn.
    """

    def __init__(self, output_dir: str = "runs/predict", score_threshold: float = 0.3, draw: bool = True) -> None:
        super().__init__(write_interval="batch")
        self.output_dir = output_dir
        self.score_threshold = score_threshold
        self.draw = draw
        self.results: list[dict[str, Any]] = []
        self.run_dir: Path | None = None

    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self.results = []
        run_dir = None
        if trainer.is_global_zero:
            parent = Path(self.output_dir)
            parent.mkdir(parents=True, exist_ok=True)
            index = 0
            while (parent / f"predict_{index}").exists():
                index += 1
            run_dir = parent / f"predict_{index}"
            run_dir.mkdir()
        self.run_dir = Path(trainer.strategy.broadcast(str(run_dir) if run_dir else None))

    def write_on_batch_end(
        self, trainer, pl_module, prediction: dict[str, Any], batch_indices, batch, batch_idx, dataloader_idx
    ) -> None:
        if prediction is None:  # a batch of skipped images
            return
        class_names = pl_module.hparams.get("class_names")
        for i, path in enumerate(prediction["image_paths"]):
            keep = (prediction["scores"][i] >= self.score_threshold).cpu().numpy()
            bboxes = prediction["bboxes"][i].cpu().numpy()[keep]
            labels = prediction["labels"][i].cpu().numpy()[keep]
            scores = prediction["scores"][i].cpu().numpy()[keep]
            self.results.append(
                {
                    "image_path": str(path),
                    "image_id": int(prediction["image_ids"][i]),
                    "bboxes": np.round(bboxes.astype(np.float64), 2).tolist(),
                    "labels": labels.tolist(),
                    "class_names": [class_names[label] for label in labels] if class_names else None,
                    "scores": np.round(scores.astype(np.float64), 4).tolist(),
                }
            )
            if self.draw:
                drawn = draw_boxes(read_image(path), bboxes, labels, scores, class_names)
                name = f"{int(prediction['image_ids'][i]):06d}_{Path(path).stem}.jpg"
                cv2.imwrite(str(self.run_dir / name), cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        results = self.results
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            per_rank: list[Any] = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(per_rank, results)
            results = sorted((r for rank in per_rank for r in rank), key=lambda r: r["image_id"])
        if not trainer.is_global_zero:
            return
        target = self.run_dir / "predictions.json"
        temporary = target.with_suffix(".json.tmp")
        temporary.write_text(json.dumps(results))
        os.replace(temporary, target)
        print(f"Wrote {len(results)} images' predictions to {self.run_dir}")
