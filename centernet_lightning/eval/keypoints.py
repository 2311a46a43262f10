"""COCO keypoint AP: Object Keypoint Similarity (OKS) of the library's detections, computed by
faster-coco-eval (or pycocotools).

OKS takes the place of box IoU (COCO keypoint challenge, cocodataset.org/#keypoints-eval):

    OKS = sum_i exp(-d_i^2 / (2 s^2 k_i^2)) [v_i > 0] / sum_i [v_i > 0],   k_i = 2 sigma_i,

over the joints i labelled in the ground truth (v > 0), with d_i the pixel distance between the
predicted and the true joint and s^2 the ground truth's ``area``. Everything else is COCO's box
protocol (:mod:`~centernet_lightning.eval.coco`) with 20 detections per image and no "small" area
range; ground truth without labelled joints (``num_keypoints == 0``) is ignored like a crowd region.

Detections enter as the boxes do (original-image pixels, original category ids) plus their joints
``(x, y, score)`` [B, K, J, 3]; the joint score is written to the results but OKS does not use it.
A result carries its ``bbox`` too, so a detection's area (which decides whether an unmatched one
counts in APm/APl) is its box's, as in Detectron2's keypoint results.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ..datasets.coco_keypoints import to_coco_keypoints
from ..structures import to_numpy
from .coco import _COCOProtocolEvaluator, _load_gt, format_table

__all__ = ["COCO_KEYPOINT_SIGMAS", "KEYPOINT_METRIC_NAMES", "KeypointEvaluator", "format_keypoint_table"]

# The 10 numbers of COCOeval.stats for iouType "keypoints", in its order.
KEYPOINT_METRIC_NAMES: tuple[str, ...] = ("AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl")

# COCO's per-joint OKS sigmas for its 17 person joints (nose, eyes, ears, shoulders, elbows, wrists,
# hips, knees, ankles), computed as pycocotools computes them so that the floats are identical.
COCO_KEYPOINT_SIGMAS: tuple[float, ...] = tuple(
    (
        np.array([0.26, 0.25, 0.25, 0.35, 0.35, 0.79, 0.79, 0.72, 0.72, 0.62, 0.62, 1.07, 1.07, 0.87, 0.87, 0.89, 0.89])
        / 10.0
    ).tolist()
)


class KeypointEvaluator(_COCOProtocolEvaluator):
    """Accumulates keypoint detections batch by batch and scores them with COCO's OKS protocol.

    Args:
        coco_gt: COCO keypoints ground truth (``person_keypoints_*.json`` or its dict): categories
            with a ``keypoints`` list of joint names; annotations with ``keypoints`` ``[x1, y1, v1,
            ...]`` (v = 0 not labelled, 1 hidden, 2 visible), ``num_keypoints``, ``area``, ``bbox``,
            ``iscrowd``. Only the categories with ``keypoints`` are evaluated. A dict is copied.
        backend: ``"faster_coco_eval"`` (default) or ``"pycocotools"``; both give the same numbers.
        sigmas: one OKS sigma per joint; default :data:`COCO_KEYPOINT_SIGMAS`, which only fits
            COCO's 17 joints: another joint count needs its own.

    :meth:`add`, :meth:`gather`, :meth:`evaluate` (the 10 metrics of
    :data:`KEYPOINT_METRIC_NAMES`), :meth:`per_class_ap`, :meth:`results` and :meth:`save_results`
    work as :class:`~centernet_lightning.eval.coco.COCOEvaluator`'s, DDP included.
    """

    iou_type = "keypoints"
    metric_names = KEYPOINT_METRIC_NAMES
    result_keys = (*_COCOProtocolEvaluator.result_keys, "keypoints")

    def __init__(
        self,
        coco_gt: dict | str | os.PathLike,
        backend: str = "faster_coco_eval",
        *,
        sigmas: Sequence[float] | None = None,
    ) -> None:
        gt = _keypoint_ground_truth(_load_gt(coco_gt))
        self.num_keypoints = len(gt["categories"][0]["keypoints"])
        self._oks_sigmas = _oks_sigmas(self.num_keypoints, sigmas)  # J values, read by the base's evaluate
        super().__init__(gt, backend)

    @property
    def sigmas(self) -> tuple[float, ...]:
        """The OKS sigma of each joint."""
        return self._oks_sigmas

    def add(self, image_ids: Any, bboxes: Any, scores: Any, category_ids: Any, keypoints: Any) -> None:
        """Add the detections of one batch of B images, padded to K detections each.

        Args:
            image_ids: int [B], the GT's image ids.
            bboxes: float [B, K, 4] XYXY in pixels of the original image.
            scores: float [B, K], the detections' scores (they rank the detections).
            category_ids: int [B, K], original dataset category ids (not contiguous labels).
            keypoints: float [B, K, J, 3], each detection's joints ``(x, y, score)``, x and y in
                pixels of the original image (the library's continuous frame; written to the
                results as COCO's pixel indices, half a pixel less).

        Tensors (any device) or numpy arrays; entries with ``score <= 0`` or ``category_id < 0``
        are padding and are dropped. Only the images added are evaluated.
        """
        keypoints = to_numpy(keypoints, np.float64)
        if keypoints.ndim != 4 or keypoints.shape[2:] != (self.num_keypoints, 3):
            raise ValueError(
                f"keypoints must be [B, K, J={self.num_keypoints}, 3] (x, y, score), got {list(keypoints.shape)}"
            )
        keypoints = to_coco_keypoints(keypoints)
        self._append(image_ids, bboxes, scores, category_ids, keypoints)  # kept as [N, 3J]: x1, y1, s1, ...

    def _empty_arrays(self) -> tuple[np.ndarray, ...]:
        return (*super()._empty_arrays(), np.empty((0, 3 * self.num_keypoints), np.float64))

    def _is_scored(self, annotation: Mapping[str, Any]) -> bool:
        return super()._is_scored(annotation) and annotation.get("num_keypoints", 0) > 0


def _keypoint_ground_truth(gt: dict) -> dict:
    """``gt`` reduced to its keypoint categories and their annotations, checked: every keypoint
    category has the same joint count J and every annotation 3J values (``num_keypoints`` is
    filled in where absent). Modifies and returns ``gt``."""
    categories = [category for category in gt["categories"] if category.get("keypoints")]
    if not categories:
        raise ValueError(
            "keypoint evaluation needs a COCO keypoints ground truth (person_keypoints_*.json): "
            "no category has a 'keypoints' list of joint names"
        )
    joint_counts = {len(category["keypoints"]) for category in categories}
    if len(joint_counts) > 1:
        raise ValueError(f"keypoint categories have different joint counts {sorted(joint_counts)}; evaluate them apart")
    num_values = 3 * joint_counts.pop()
    category_ids = {int(category["id"]) for category in categories}
    annotations = [ann for ann in gt["annotations"] if int(ann["category_id"]) in category_ids]
    for annotation in annotations:
        values = annotation.setdefault("keypoints", [0.0] * num_values)  # crowd regions may have none
        if len(values) != num_values:
            raise ValueError(
                f"annotation {annotation.get('id')}: {len(values)} keypoint values, expected {num_values} "
                f"(x, y, v for each of the category's {num_values // 3} joints)"
            )
        annotation.setdefault("num_keypoints", int(np.count_nonzero(np.asarray(values[2::3]) > 0)))
    gt["categories"] = categories
    gt["annotations"] = annotations
    return gt


def _oks_sigmas(num_keypoints: int, sigmas: Sequence[float] | None) -> tuple[float, ...]:
    """The sigmas to use for ``num_keypoints`` joints, checked."""
    if sigmas is None:
        if num_keypoints != len(COCO_KEYPOINT_SIGMAS):
            raise ValueError(
                f"the ground truth has {num_keypoints} joints per object, but COCO's default OKS sigmas are for "
                f"its {len(COCO_KEYPOINT_SIGMAS)} person joints: pass sigmas=[...] with one value per joint"
            )
        return COCO_KEYPOINT_SIGMAS
    values = tuple(float(sigma) for sigma in to_numpy(sigmas, np.float64).reshape(-1))
    if len(values) != num_keypoints or not all(value > 0 for value in values):
        raise ValueError(
            f"sigmas must be {num_keypoints} positive values (one per joint), got {len(values)}: {list(values)}"
        )
    return values


def format_keypoint_table(metrics: Mapping[str, float], per_class: Mapping[str, float] | None = None) -> str:
    """:func:`~centernet_lightning.eval.coco.format_table` of the keypoint metrics, titled for them."""
    return format_table(metrics, per_class, title="COCO keypoint metrics (OKS, %)")
