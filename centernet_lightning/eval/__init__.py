"""Evaluation: COCO box mAP (:mod:`centernet_lightning.eval.coco`) and its Lightning callback, and
tracking metrics HOTA / MOTA / IDF1 (:mod:`centernet_lightning.eval.mot`, TrackEval's metric classes)."""

from centernet_lightning.eval.callbacks import COCOEvaluation
from centernet_lightning.eval.coco import BACKENDS, METRIC_NAMES, COCOEvaluator, build_coco_gt, format_table
from centernet_lightning.eval.mot import (
    MOT_METRIC_NAMES,
    MOTEvaluator,
    MOTResults,
    evaluate_mot,
    evaluate_mot_sequences,
    evaluate_tracks,
)
from centernet_lightning.eval.mot_callback import MOTEvaluation
from centernet_lightning.eval.mot_io import MOTRows, read_mot_txt, write_mot_txt

__all__ = [
    "BACKENDS",
    "METRIC_NAMES",
    "MOT_METRIC_NAMES",
    "COCOEvaluation",
    "COCOEvaluator",
    "MOTEvaluation",
    "MOTEvaluator",
    "MOTResults",
    "MOTRows",
    "build_coco_gt",
    "evaluate_mot",
    "evaluate_mot_sequences",
    "evaluate_tracks",
    "format_table",
    "read_mot_txt",
    "write_mot_txt",
]
