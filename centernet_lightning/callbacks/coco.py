"""COCO evaluation during ``fit``/``validate``/``test`` as a Lightning callback.

The LightningModule's validation/test steps return detections in ORIGINAL image pixels (the
predictor maps them back); this callback maps their labels to the dataset's category ids, feeds a
:class:`~centernet_lightning.eval.coco.COCOEvaluator`, and at the end of the epoch logs the 12
COCO metrics and per-class AP (``val/AP``, ``val/AP50``, ..., ``val/AP_class/<name>``), prints
the table after ``validate``/``test`` and writes the detections as COCO results JSON.

The ground truth is that of the dataset being evaluated (its dataloader's ``dataset``, see
:func:`~centernet_lightning.eval.coco_gt.coco_ground_truth`), built once per dataset.
:class:`~centernet_lightning.callbacks.keypoints.KeypointEvaluation` shares this callback's steps
(:class:`_COCOProtocolEvaluation`) for keypoint AP.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback

from ..datasets.common import DetectionDataset
from ..eval.coco import COCOEvaluator, format_table
from ..eval.coco_gt import category_ids_of, coco_ground_truth

__all__ = ["COCOEvaluation"]


class _COCOProtocolEvaluation(Callback):
    """The steps of a COCO-protocol evaluation callback; :class:`COCOEvaluation` (boxes) and
    :class:`~centernet_lightning.callbacks.keypoints.KeypointEvaluation` (OKS) fill in
    :meth:`_build_evaluator` (which datasets, which evaluator) and :meth:`_add_detections`.

    Metrics are logged as ``<stage>/<metric_prefix><name>``; per-class AP as
    ``<stage>/<metric_prefix>AP_class/<name>`` when ``log_per_class``; results are written to
    ``<results_name>_<stage>.json``.
    """

    metric_prefix = ""
    results_name = "detections"
    log_per_class = True

    def __init__(self, print_table: bool = True, save_results: bool = True) -> None:
        self.print_table = print_table
        self.save_results = save_results
        self.evaluator: Any = None
        self.last_metrics: dict[str, float] = {}
        self.last_per_class_ap: dict[str, float] = {}
        # The evaluator indexes its ground truth once; later epochs on the same dataset reuse it.
        self._cache: dict[str, tuple[Any, Any, list[int]]] = {}
        self._category_ids = torch.zeros(0, dtype=torch.int64)

    # --------------------------------------------------------------------------- seams
    def _build_evaluator(self, dataset: Any) -> tuple[Any, list[int]] | None:
        """``(evaluator, label -> dataset category id)`` for ``dataset``, or None to skip it."""
        raise NotImplementedError

    def _add_detections(self, detections: Mapping[str, Any], batch: Mapping[str, Any], category_ids: Any) -> None:
        """Feed one batch to ``self.evaluator``; ``category_ids`` [B, K] are the labels mapped back."""
        raise NotImplementedError

    def _format_table(self, metrics: Mapping[str, float], per_class: Mapping[str, float]) -> str:
        return format_table(metrics, per_class)

    # --------------------------------------------------------------------------- hooks
    def on_validation_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start(trainer, trainer.val_dataloaders, "val")

    def on_test_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._start(trainer, trainer.test_dataloaders, "test")

    def on_validation_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._add(outputs, batch)

    def on_test_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        self._add(outputs, batch)

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._finish(trainer, pl_module, "val")

    def on_test_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._finish(trainer, pl_module, "test")

    # --------------------------------------------------------------------------- steps
    def _start(self, trainer: L.Trainer, loaders: Any, stage: str) -> None:
        self.evaluator = None
        loader = loaders[0] if isinstance(loaders, (list, tuple)) and loaders else loaders
        dataset = getattr(loader, "dataset", None)
        if trainer.sanity_checking or dataset is None:
            return
        cached = self._cache.get(stage)
        if cached is None or cached[0] is not dataset:
            built = self._build_evaluator(dataset)
            if built is None:
                return
            cached = (dataset, *built)
            self._cache[stage] = cached
        _, evaluator, label_to_category_id = cached
        evaluator.reset()
        self.evaluator = evaluator
        self._category_ids = torch.tensor(label_to_category_id, dtype=torch.int64)

    def _add(self, detections: Any, batch: Any) -> None:
        if self.evaluator is None or detections is None or batch is None:
            return
        # The steps' detections are in ORIGINAL image pixels; the dataset's own category ids here.
        self._add_detections(detections, batch, category_ids_of(detections["labels"], self._category_ids))

    def _finish(self, trainer: L.Trainer, pl_module: L.LightningModule, prefix: str) -> None:
        evaluator, self.evaluator = self.evaluator, None
        if evaluator is None:
            return
        metrics = evaluator.evaluate()
        logged = {f"{prefix}/{self.metric_prefix}{name}": value for name, value in metrics.items()}
        pl_module.log_dict(logged, sync_dist=False)
        self.last_metrics = metrics
        self.last_per_class_ap = evaluator.per_class_ap()
        if self.log_per_class:
            per_class_prefix = f"{prefix}/{self.metric_prefix}AP_class"
            per_class = {f"{per_class_prefix}/{name}": ap for name, ap in self.last_per_class_ap.items() if ap == ap}
            pl_module.log_dict(per_class, sync_dist=False)  # classes without ground truth (nan) are left out
        if trainer.state.fn not in ("validate", "test"):
            return
        log_dir = trainer.log_dir if self.save_results else None  # on every rank: trainer.log_dir broadcasts
        if trainer.is_global_zero:
            if self.print_table:
                print(self._format_table(metrics, self.last_per_class_ap))
            if log_dir:
                path = Path(log_dir) / f"{self.results_name}_{prefix}.json"
                evaluator.save_results(path)
                print(f"{self.results_name.capitalize()} (COCO results format) written to {path}")


class COCOEvaluation(_COCOProtocolEvaluation):
    """Evaluate detections with COCO metrics at the end of every validation and test epoch.

    Args:
        print_table: print the metrics table after ``validate``/``test`` runs.
        save_results: write ``detections_<val|test>.json`` into the trainer's log dir.

    After an epoch, ``last_metrics`` holds the 12 metrics and ``last_per_class_ap`` the AP per
    class name.
    """

    def _build_evaluator(self, dataset: Any) -> tuple[COCOEvaluator, list[int]] | None:
        if not isinstance(dataset, DetectionDataset):
            return None
        coco_gt, label_to_category_id = coco_ground_truth(dataset)
        return COCOEvaluator(coco_gt), label_to_category_id

    def _add_detections(self, detections: Mapping[str, Any], batch: Mapping[str, Any], category_ids: Any) -> None:
        self.evaluator.add(batch["image_ids"], detections["bboxes"], detections["scores"], category_ids)
