"""Association costs between tracks and detections, and the thresholded optimal assignment.

Every cost is a distance in ``[0, 1]`` (``inf`` where a pair is ruled out), ``[T, N]`` for T tracks
and N detections: 1 - IoU, the cosine distance of re-ID embeddings, and FairMOT's fusion of the
embedding distance with the Kalman gating distance. :func:`linear_assignment` then matches with
the Hungarian algorithm (``scipy.optimize.linear_sum_assignment``), never pairing above a cost
threshold, the semantics of ``lap.lapjv(cost, extend_cost=True, cost_limit=thresh)`` that
FairMOT and ByteTrack call.
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import linear_sum_assignment

__all__ = ["clear_matches", "embedding_distance", "fuse_motion", "fuse_score", "iou_distance", "linear_assignment"]


def iou_distance(boxes_a: np.ndarray, boxes_b: np.ndarray) -> np.ndarray:
    """``1 - IoU`` of XYXY pixel boxes, ``[A, 4]`` x ``[B, 4]`` -> ``[A, B]`` float64 (computed in float32).

    The same values as ``torchvision.ops.box_iou`` (a test pins them), written in numpy with
    in-place steps because the tracker's state is numpy and this runs on every frame: at
    1000 x 1000 boxes it is about twice as fast as ``box_iou`` after conversion, in float32 (IoU
    needs no more precision). Boxes of zero area overlap nothing.
    """
    if len(boxes_a) == 0 or len(boxes_b) == 0:
        return np.ones((len(boxes_a), len(boxes_b)))
    a = np.asarray(boxes_a, dtype=np.float32)
    b = np.asarray(boxes_b, dtype=np.float32)
    area_a = (a[:, 2] - a[:, 0]) * (a[:, 3] - a[:, 1])
    area_b = (b[:, 2] - b[:, 0]) * (b[:, 3] - b[:, 1])
    inter = np.minimum(a[:, None, 2], b[None, :, 2])  # [A, B] overlap width, then area
    inter -= np.maximum(a[:, None, 0], b[None, :, 0])
    np.maximum(inter, 0, out=inter)
    height = np.minimum(a[:, None, 3], b[None, :, 3])
    height -= np.maximum(a[:, None, 1], b[None, :, 1])
    np.maximum(height, 0, out=height)
    inter *= height
    union = area_a[:, None] + area_b[None, :]
    union -= inter
    with np.errstate(invalid="ignore", divide="ignore"):
        iou = np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)
    return 1.0 - iou.astype(np.float64)


def embedding_distance(track_features: np.ndarray, detection_features: np.ndarray) -> np.ndarray:
    """Cosine distance ``1 - cos`` of unit-norm embeddings, ``[T, D]`` x ``[N, D]`` -> ``[T, N]``.

    Clipped at 0 below as FairMOT (``max(0, cdist(..., "cosine"))``); the inputs must already be
    L2-normalised, which the tracker guarantees, so the distance is one matrix product.
    """
    if len(track_features) == 0 or len(detection_features) == 0:
        return np.ones((len(track_features), len(detection_features)))
    return np.maximum(0.0, 1.0 - track_features @ detection_features.T)


def fuse_motion(
    cost: np.ndarray,
    gating_distance: np.ndarray,
    gating_threshold: float,
    appearance_weight: float = 0.98,
    strong_appearance_thresh: float | None = None,
    distinct_ratio: float = 0.5,
) -> np.ndarray:
    """FairMOT's ``fuse_motion``: gate by motion, then blend appearance with motion.

    ``cost = w * cost + (1 - w) * d^2`` where ``d^2`` is the squared Mahalanobis distance of the
    detection to the track's Kalman prediction, and ``inf`` where ``d^2 > gating_threshold``.

    With ``strong_appearance_thresh``, a *clear* re-identification is never gated and costs at most
    its appearance distance (``min(fused, cost)``): the pair's distance is below the threshold, and
    it is the best of both its track and its detection by a ratio (Lowe's ratio test: below
    ``distinct_ratio`` times the second best of its row and of its column). It then wins even when
    the motion model disagrees (a turn, a fast object, an object back after an occlusion), where
    FairMOT would reject it and start a second track for the same object; objects that look alike
    (a weak re-ID head) never pass the ratio test and stay under the gate.

    Args:
        cost: ``[T, N]`` appearance (embedding) distance.
        gating_distance: ``[T, N]`` squared Mahalanobis distance (``KalmanFilter.gating_distance``).
        gating_threshold: chi-square 0.95 quantile with 4 degrees of freedom (9.4877) in FairMOT.
        appearance_weight: ``lambda_`` of FairMOT, 0.98.
        strong_appearance_thresh: None (FairMOT) or an appearance distance.
        distinct_ratio: the ratio test's bound, in (0, 1].
    """
    fused = appearance_weight * cost
    fused += (1.0 - appearance_weight) * gating_distance
    gated = gating_distance > gating_threshold
    if strong_appearance_thresh is not None and cost.size:
        strong = clear_matches(cost, strong_appearance_thresh, distinct_ratio)
        gated &= ~strong
        fused[strong] = np.minimum(fused[strong], cost[strong])
    fused[gated] = np.inf
    return fused


def clear_matches(cost: np.ndarray, thresh: float, ratio: float = 0.5) -> np.ndarray:
    """``[T, N]`` the clear re-identifications of an appearance distance ``cost``: below ``thresh``
    and below ``ratio`` times the second-smallest distance of their row and of their column."""
    return (cost < thresh) & _distinct(cost, ratio)


def _distinct(cost: np.ndarray, ratio: float) -> np.ndarray:
    """``[T, N]`` pairs that are the smallest of their row and of their column, below ``ratio``
    times the second smallest of each (inf where a row or column has a single entry)."""
    mask = np.ones(cost.shape, dtype=bool)
    if cost.size == 0:
        return mask
    for axis in (0, 1):
        if cost.shape[axis] < 2:
            best, second = cost.min(axis=axis, keepdims=True), np.inf
        else:
            two = np.partition(cost, 1, axis=axis)
            best, second = (np.take(two, [index], axis=axis) for index in (0, 1))
        mask &= (cost <= best) & (cost < ratio * second)  # strict: two equal distances are not distinct
    return mask


def fuse_score(cost: np.ndarray, scores: np.ndarray) -> np.ndarray:
    """ByteTrack's ``fuse_score``: ``1 - (1 - cost) * score``, so confident detections match first.

    Args:
        cost: ``[T, N]`` IoU distance; scores: ``[N]`` detection scores in [0, 1].
    """
    return 1.0 - (1.0 - cost) * np.asarray(scores)[None, :]


def linear_assignment(cost: np.ndarray, thresh: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Minimum-cost matching of rows to columns that never uses a pair costing ``thresh`` or more.

    FairMOT and ByteTrack solve this with ``lap.lapjv(extend_cost=True, cost_limit=thresh)``, which
    pads the matrix with dummy rows and columns of cost ``thresh / 2``: leaving a row and a column
    unmatched costs ``thresh`` together, so the optimum maximises ``sum(thresh - cost)`` over the
    matched pairs. The same optimum is a plain rectangular assignment on the gains
    ``min(cost - thresh, 0)`` (pairs of gain 0 are not matches), which needs no padding, and rows or
    columns without any pair below the threshold can be left out of the solve altogether.

    Args:
        cost: ``[R, C]`` float, ``inf`` allowed (never matched).
        thresh: a pair matches only if its cost is below this.

    Returns:
        ``matches`` int64 ``[K, 2]`` (row, column), sorted by row; ``unmatched_rows`` int64 and
        ``unmatched_cols`` int64, ascending.
    """
    cost = np.asarray(cost, dtype=np.float64)
    num_rows, num_cols = cost.shape
    gain = np.fmin(cost - thresh, 0.0)  # < 0: a pair worth matching; inf and NaN never match
    feasible = gain < 0
    per_row, per_col = feasible.sum(axis=1), feasible.sum(axis=0)
    # A pair that is the only option of both its row and its column is a component of its own:
    # it is matched in every optimum. In sparse scenes that is most pairs, and the Hungarian
    # solve is left with the few contested rows and columns.
    alone_rows, alone_cols = np.nonzero(feasible & (per_row == 1)[:, None] & (per_col == 1)[None, :])
    contested = np.ones(num_rows, dtype=bool)
    contested[alone_rows] = False
    rows = np.flatnonzero(contested & (per_row > 0))
    contested = np.ones(num_cols, dtype=bool)
    contested[alone_cols] = False
    cols = np.flatnonzero(contested & (per_col > 0))
    matched_rows, matched_cols = [alone_rows], [alone_cols]
    if len(rows) and len(cols):
        sub_rows, sub_cols = linear_sum_assignment(gain[np.ix_(rows, cols)])
        keep = gain[rows[sub_rows], cols[sub_cols]] < 0
        matched_rows.append(rows[sub_rows[keep]])
        matched_cols.append(cols[sub_cols[keep]])
    matches = np.stack((np.concatenate(matched_rows), np.concatenate(matched_cols)), axis=1).astype(np.int64)
    matches = matches[np.argsort(matches[:, 0], kind="stable")]
    row_matched = np.zeros(num_rows, dtype=bool)
    col_matched = np.zeros(num_cols, dtype=bool)
    row_matched[matches[:, 0]] = True
    col_matched[matches[:, 1]] = True
    return matches, np.flatnonzero(~row_matched), np.flatnonzero(~col_matched)
