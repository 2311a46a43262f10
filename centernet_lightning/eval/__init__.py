"""Evaluation: COCO box mAP (:mod:`centernet_lightning.eval.coco`) and its Lightning callback."""

from centernet_lightning.eval.callbacks import COCOEvaluation
from centernet_lightning.eval.coco import BACKENDS, METRIC_NAMES, COCOEvaluator, build_coco_gt, format_table

__all__ = ["BACKENDS", "METRIC_NAMES", "COCOEvaluation", "COCOEvaluator", "build_coco_gt", "format_table"]
