"""COCO keypoint AP (OKS) during ``fit``/``validate``/``test`` as a Lightning callback.

The steps of :class:`~centernet_lightning.callbacks.coco.COCOEvaluation` with a
:class:`~centernet_lightning.eval.keypoints.KeypointEvaluator`: the detections' ``keypoints``
[B, K, J, 3] (original-image pixels, as the steps give them) are scored against the dataset's COCO
keypoints json, the 10 metrics are logged as ``val/kp_AP``, ``val/kp_AP50``, ..., ``val/kp_ARl``
and, after ``validate``/``test``, printed as a table (after the box table when this callback comes
after ``COCOEvaluation``) and written as ``keypoints_<val|test>.json``.

A dataset without a ``keypoint_layout`` attribute (or with None there) or without a COCO
keypoints json, and a model whose detections carry no ``keypoints``, are skipped with one info log
each.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from ..datasets.coco import COCODataset, load_coco_json
from ..eval.coco_gt import coco_ground_truth
from ..eval.keypoints import KeypointEvaluator, format_keypoint_table
from .coco import _COCOProtocolEvaluation

__all__ = ["KeypointEvaluation"]

logger = logging.getLogger(__name__)


class KeypointEvaluation(_COCOProtocolEvaluation):
    """Evaluate keypoint detections with COCO's OKS metrics at the end of every validation and test epoch.

    Args:
        print_table: print the keypoint metrics table after ``validate``/``test`` runs.
        save_results: write ``keypoints_<val|test>.json`` (COCO keypoint results) into the trainer's log dir.
        sigmas: one OKS sigma per joint; None for COCO's 17-joint sigmas (any other joint count
            needs its own).
        backend: ``"faster_coco_eval"`` or ``"pycocotools"``.

    The dataset gives the ground truth: a COCO dataset's own json (images it dropped left out), or
    the json at its ``coco_gt_path`` with its ``label_to_category_id``. After an epoch,
    ``last_metrics`` holds the 10 metrics and ``last_per_class_ap`` the keypoint AP per class.
    """

    metric_prefix = "kp_"
    results_name = "keypoints"
    log_per_class = False  # keypoint datasets have one class, as a rule: its AP is kp_AP

    def __init__(
        self,
        print_table: bool = True,
        save_results: bool = True,
        sigmas: Sequence[float] | None = None,
        backend: str = "faster_coco_eval",
    ) -> None:
        super().__init__(print_table=print_table, save_results=save_results)
        self.sigmas = None if sigmas is None else list(sigmas)
        self.backend = backend
        self._skips_logged: set[str] = set()

    def _build_evaluator(self, dataset: Any) -> tuple[KeypointEvaluator, list[int]] | None:
        if getattr(dataset, "keypoint_layout", None) is None:
            self._log_skip(f"the {type(dataset).__name__} dataset has no keypoint_layout")
            return None
        if isinstance(dataset, COCODataset):
            coco_gt, label_to_category_id = coco_ground_truth(dataset)
        elif getattr(dataset, "coco_gt_path", None) is None:
            self._log_skip(f"the {type(dataset).__name__} dataset has no coco_gt_path (a COCO keypoints json)")
            return None
        else:
            coco_gt = load_coco_json(Path(dataset.coco_gt_path))
            label_to_category_id = list(getattr(dataset, "label_to_category_id", range(dataset.num_classes)))
        evaluator = KeypointEvaluator(coco_gt, self.backend, sigmas=self.sigmas)
        return evaluator, label_to_category_id

    def _add_detections(self, detections: Mapping[str, Any], batch: Mapping[str, Any], category_ids: Any) -> None:
        if "keypoints" not in detections:
            self._log_skip("the model's detections carry no keypoints")
            self.evaluator = None  # nothing to score this epoch
            return
        self.evaluator.add(
            batch["image_ids"], detections["bboxes"], detections["scores"], category_ids, detections["keypoints"]
        )

    def _format_table(self, metrics: Mapping[str, float], per_class: Mapping[str, float]) -> str:
        return format_keypoint_table(metrics, per_class if len(per_class) > 1 else None)

    def _log_skip(self, reason: str) -> None:
        if reason not in self._skips_logged:
            self._skips_logged.add(reason)
            logger.info("Keypoint evaluation skipped: %s", reason)
