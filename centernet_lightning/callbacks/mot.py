"""Tracking metrics (HOTA, MOTA, IDF1, ...) during ``fit``/``validate``/``test`` as a Lightning callback.

The module's validation/test steps return each frame's detections in ORIGINAL image pixels, with
their re-ID embeddings for a model with a re-ID head (:class:`~centernet_lightning.tasks.FairMOT`;
a detection-only model is tracked by motion and IoU). This callback keeps the ones the tracker
could use (score above its ``low_thresh``), keyed by image id. At the end of the epoch it runs a
fresh tracker (the module's ``predictor().build_tracker``) over each sequence of the evaluated
dataset in frame order, compares the tracks with the dataset's ground truth using
:class:`~centernet_lightning.eval.mot.MOTEvaluator` and logs the combined metrics (``val/HOTA``,
``val/MOTA``, ``val/IDF1``, ...). Datasets without sequences (detection datasets) are skipped.

Sequences, frame order, frame rates and ground truth come from the records of the dataset being
evaluated (``trainer.val_dataloaders`` / ``test_dataloaders``): frame records know their sequence
and position (:mod:`~centernet_lightning.datasets.tracking`); records of a plain detection dataset
form one sequence in index order. Ground-truth objects flagged ``ignore`` or without an identity
are distractors (a track on one is neither a hit nor a false positive).
"""

from __future__ import annotations

import logging
from typing import Any

import lightning as L
import numpy as np
import torch
from lightning.pytorch.callbacks import Callback

from ..datasets.tracking import FrameRecord, frames_by_sequence
from ..eval.mot import MOTEvaluator
from ..structures import is_detection, to_numpy

__all__ = ["MOTEvaluation"]

log = logging.getLogger(__name__)

# Metrics logged each epoch (``last_metrics`` holds all of eval.mot's MOT_METRIC_NAMES).
LOGGED_METRICS = ("HOTA", "DetA", "AssA", "MOTA", "MOTP", "IDF1", "IDSW")


class MOTEvaluation(Callback):
    """Track every validation/test sequence at the end of the epoch and log HOTA, MOTA, IDF1, ...

    Args:
        iou_threshold: CLEAR's and Identity's match threshold (0.5 in every benchmark).

    The model must have a ``predictor()`` (CenterNet, FairMOT), whose ``build_tracker`` uses its
    ``tracker`` settings. After an epoch ``last_metrics`` holds the combined metrics and
    ``last_sequences`` the metrics of each sequence. Under DDP the frames of all ranks are
    gathered, so every rank tracks whole sequences and logs the same values.
    """

    def __init__(self, iou_threshold: float = 0.5) -> None:
        self.iou_threshold = iou_threshold
        self.last_metrics: dict[str, float] = {}
        self.last_sequences: dict[str, dict[str, float]] = {}
        self._frames: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] | None = None
        self._low_thresh = 0.0

    # --------------------------------------------------------------------------- hooks
    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start(trainer, pl_module, trainer.val_dataloaders)

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start(trainer, pl_module, trainer.test_dataloaders)

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._add(outputs, batch)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._add(outputs, batch)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._finish(trainer, pl_module, trainer.val_dataloaders, "val")

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._finish(trainer, pl_module, trainer.test_dataloaders, "test")

    # --------------------------------------------------------------------------- steps
    def _start(self, trainer: L.Trainer, pl_module: L.LightningModule, loaders: Any) -> None:
        self._frames = None
        records = getattr(_dataset(loaders), "records", None)
        if trainer.sanity_checking or not records or not isinstance(records[0], FrameRecord):
            return  # no sequences to track
        if not hasattr(pl_module, "predictor"):
            log.warning("MOTEvaluation: %s has no predictor(); no tracking metrics", type(pl_module).__name__)
            return
        self._frames = {}
        self._low_thresh = float(pl_module.predictor().build_tracker().low_thresh)

    def _add(self, detections: Any, batch: Any) -> None:
        if self._frames is None or detections is None or batch is None:
            return
        # The tracker drops the rest; boxes are in original pixels, as the ground truth of the records.
        keep = to_numpy((detections["scores"] > self._low_thresh) & is_detection(detections["labels"]), bool)
        bboxes, scores = to_numpy(detections["bboxes"], np.float32), to_numpy(detections["scores"], np.float32)
        embeddings = to_numpy(detections["embeddings"], np.float32) if "embeddings" in detections else None
        labels = to_numpy(detections["labels"], np.int64)
        for index, image_id in enumerate(batch["image_ids"].tolist()):
            kept = keep[index]
            frame_embeddings = embeddings[index][kept] if embeddings is not None else None
            frame = (bboxes[index][kept], scores[index][kept], frame_embeddings, labels[index][kept])
            self._frames[int(image_id)] = frame

    def _finish(self, trainer: L.Trainer, pl_module: L.LightningModule, loaders: Any, prefix: str) -> None:
        frames, self._frames = self._frames, None
        if frames is None:
            return
        if trainer.world_size > 1 and torch.distributed.is_available() and torch.distributed.is_initialized():
            gathered: list[dict | None] = [None] * trainer.world_size
            torch.distributed.all_gather_object(gathered, frames)
            frames = {image_id: frame for part in gathered for image_id, frame in (part or {}).items()}
        dataset = _dataset(loaders)
        records = getattr(dataset, "records", None)
        if not records or not frames:
            log.warning("MOTEvaluation: the %s dataset has no records or no frames were evaluated; skipped", prefix)
            return
        evaluator = self._track_and_collect(pl_module, dataset, records, frames)
        results = evaluator.evaluate()
        self.last_metrics = dict(results.combined)
        self.last_sequences = {name: dict(metrics) for name, metrics in results.sequences.items()}
        pl_module.log_dict({f"{prefix}/{name}": float(self.last_metrics[name]) for name in LOGGED_METRICS})

    def _track_and_collect(
        self, pl_module: L.LightningModule, dataset: Any, records: list, frames: dict
    ) -> MOTEvaluator:
        """Run a fresh tracker over each sequence in frame order; add its tracks and ground truth."""
        evaluator = MOTEvaluator(self.iou_threshold)
        sequences_info = getattr(dataset, "sequences", {}) or {}
        missing = 0
        for name, indices in frames_by_sequence(records).items():
            info = sequences_info.get(name)
            frame_rate = getattr(info, "frame_rate", None)
            tracker = pl_module.predictor().build_tracker(**({"frame_rate": frame_rate} if frame_rate else {}))
            for index in indices:
                record = records[index]
                frame = frames.get(int(record.image_id))
                if frame is None:  # skipped or not evaluated: the tracker still sees time pass
                    missing += 1
                    frame = (np.zeros((0, 4), np.float32), np.zeros(0, np.float32), None, np.zeros(0, np.int64))
                boxes, scores, embeddings, labels = frame
                tracks = tracker.update(boxes, scores, embeddings, classes=labels)
                gt_ids, gt_boxes, gt_ignore = _ground_truth(record)
                evaluator.add(gt_ids, gt_boxes, tracks["ids"], tracks["boxes"], gt_ignore=gt_ignore, sequence=name)
        if missing:
            log.warning("MOTEvaluation: %d frames of the dataset had no detections (skipped images?)", missing)
        return evaluator


def _dataset(loaders: Any) -> Any:
    """The dataset of a trainer's (first) evaluation dataloader, or None."""
    loader = loaders[0] if isinstance(loaders, (list, tuple)) and loaders else loaders
    return getattr(loader, "dataset", None)


def _ground_truth(record: Any) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(ids [N], boxes [N, 4] XYXY original pixels, ignore [N])`` of one frame record.

    Boxes are clipped to the image (:meth:`~centernet_lightning.datasets.common.ImageRecord.evaluated_objects`,
    as for COCO evaluation). Objects flagged ignore or without identity (-1) become distractors;
    they get distinct negative ids so that ids stay unique in the frame.
    """
    boxes, objects, _ = record.evaluated_objects()
    count = len(boxes)
    ids = np.asarray(objects.get("track_ids", np.full(count, -1)), dtype=np.int64)
    ignore = np.asarray(objects.get("ignore", np.zeros(count, bool)), dtype=bool) | (ids < 0)
    ids = np.where(ignore, -1 - np.arange(count), ids)
    return ids, boxes.astype(np.float64), ignore
