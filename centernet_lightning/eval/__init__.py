"""Evaluation: COCO box mAP (:mod:`centernet_lightning.eval.coco`)."""

from centernet_lightning.eval.coco import BACKENDS, METRIC_NAMES, COCOEvaluator, build_coco_gt, format_table

__all__ = ["BACKENDS", "METRIC_NAMES", "COCOEvaluator", "build_coco_gt", "format_table"]
