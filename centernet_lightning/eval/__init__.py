"""Evaluation: COCO box mAP (:mod:`~centernet_lightning.eval.coco`, its ground truth in
:mod:`~centernet_lightning.eval.coco_gt`), COCO keypoint AP by OKS
(:mod:`~centernet_lightning.eval.keypoints`) and tracking metrics HOTA / MOTA / IDF1
(:mod:`~centernet_lightning.eval.mot`, TrackEval's metric classes in
:mod:`~centernet_lightning.eval.mot_metrics`). The Lightning callbacks that run them during
``fit``/``validate`` are in :mod:`centernet_lightning.callbacks`."""

from centernet_lightning.eval.coco import BACKENDS, METRIC_NAMES, COCOEvaluator, format_table
from centernet_lightning.eval.coco_gt import build_coco_gt, coco_ground_truth
from centernet_lightning.eval.keypoints import (
    COCO_KEYPOINT_SIGMAS,
    KEYPOINT_METRIC_NAMES,
    KeypointEvaluator,
    format_keypoint_table,
)
from centernet_lightning.eval.mot import (
    MOT_METRIC_NAMES,
    MOTEvaluator,
    MOTResults,
    evaluate_mot,
    evaluate_mot_sequences,
    evaluate_tracks,
)

__all__ = [
    "BACKENDS",
    "COCO_KEYPOINT_SIGMAS",
    "KEYPOINT_METRIC_NAMES",
    "KeypointEvaluator",
    "format_keypoint_table",
    "METRIC_NAMES",
    "MOT_METRIC_NAMES",
    "COCOEvaluator",
    "MOTEvaluator",
    "MOTResults",
    "build_coco_gt",
    "coco_ground_truth",
    "evaluate_mot",
    "evaluate_mot_sequences",
    "evaluate_tracks",
    "format_table",
]
