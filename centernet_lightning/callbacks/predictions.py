"""Writing the predictions of ``centernet predict`` over a data module, as a Lightning callback."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import BasePredictionWriter

from ..image_io import read_image
from ..inference.outputs import PredictionFiles, new_run_dir
from ..structures import to_numpy

PREDICTION_DTYPES = {"bboxes": np.float32, "scores": np.float32, "labels": np.int64}

__all__ = ["PredictionWriter"]


class PredictionWriter(BasePredictionWriter):
    """Write the predictions of the datamodule-driven ``centernet predict`` as ``centernet predict
    --source`` writes them (:class:`~centernet_lightning.inference.PredictionFiles`): drawn images
    with the sources' names and ``predictions.json`` in COCO-results format (the dataset's image and
    category ids, XYWH original pixels), in a new folder ``output_dir/name``, ``name2``, ...

    Under DDP every process draws its own images into the same folder, named
    ``<image_id>_<name>`` so that ranks cannot collide, and rank 0 writes the gathered JSON.

    Args:
        output_dir: parent folder of the run folders (``--project`` of ``centernet predict``); None:
            the trainer's ``default_root_dir`` (``runs`` unless configured), where the run writes.
        name: the run folder's name (``--name``).
        score_threshold: smallest score kept in the JSON and drawn (``--conf``).
        draw: also write each image with its detections drawn.
    """

    def __init__(
        self, output_dir: str | None = None, name: str = "predict", score_threshold: float = 0.25, draw: bool = True
    ) -> None:
        super().__init__(write_interval="batch")
        self.output_dir = output_dir
        self.name = name
        self.score_threshold = score_threshold
        self.draw = draw
        self.files: PredictionFiles | None = None
        self.run_dir: Path | None = None
        self.images = 0

    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        output_dir = self.output_dir if self.output_dir is not None else trainer.default_root_dir
        run_dir = new_run_dir(output_dir, self.name) if trainer.is_global_zero else None
        self.run_dir = Path(trainer.strategy.broadcast(str(run_dir) if run_dir else None))
        self.files = PredictionFiles(
            self.run_dir,
            pl_module.inference_spec,
            pl_module.num_classes,
            self.score_threshold,
            self.draw,
            id_in_names=trainer.world_size > 1,
        )
        self.images = 0

    def write_on_batch_end(
        self, trainer, pl_module, prediction: dict[str, Any], batch_indices, batch, batch_idx, dataloader_idx
    ) -> None:
        if prediction is None:  # a batch of skipped images
            return
        self.images += len(prediction["image_paths"])
        for i, path in enumerate(prediction["image_paths"]):
            self.files.add(
                read_image(path) if self.draw else None,
                str(path),
                int(prediction["image_ids"][i]),
                *(to_numpy(prediction[key][i], dtype) for key, dtype in PREDICTION_DTYPES.items()),
                keypoints=to_numpy(prediction["keypoints"][i], np.float32) if "keypoints" in prediction else None,
            )

    def on_predict_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        entries, images = self.files.entries, self.images
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            per_rank: list[Any] = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(per_rank, (entries, images))
            entries = sorted((e for part, _ in per_rank for e in part), key=lambda e: (e["image_id"], -e["score"]))
            images = sum(count for _, count in per_rank)
        if not trainer.is_global_zero:
            return
        path = self.files.close(entries)
        print(
            f"Wrote the predictions of {images} images ({len(entries)} detections >= {self.score_threshold}) to {path}"
        )
