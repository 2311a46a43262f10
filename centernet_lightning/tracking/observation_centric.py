"""OC-SORT's observation-centric pieces (Cao et al. 2023, "Observation-Centric SORT"), batched over tracks.

- :func:`reupdate_over_gaps` (ORU): a track found again after an occlusion is re-filtered along a
  virtual path between its last observation and the new one, so its velocity is the one the
  occlusion implies rather than the prediction's guess.
- :func:`add_direction_cost` (OCM, "momentum"): IoU costs lowered where a detection lies in the
  direction the track has been moving.

The recovery step (OCR: matching leftover tracks by their last observed box) is one IoU cost in
the tracker itself.
"""

from __future__ import annotations

import numpy as np

from centernet_lightning.tracking.kalman import KalmanFilter
from centernet_lightning.tracking.tracks import TrackTable

__all__ = ["add_direction_cost", "reupdate_over_gaps"]


def reupdate_over_gaps(
    tracks: TrackTable, kalman: KalmanFilter, track_rows: np.ndarray, boxes: np.ndarray, frame: int
) -> None:
    """Re-filter the tracks of ``track_rows`` matched at ``frame`` after ``g > 1`` frames without
    a detection: back to their state at the last observation, predicted and updated along ``g - 1``
    virtual boxes, linear between that observation and ``boxes`` ``[R, 4]`` (XYXY pixels), then
    predicted once more; the caller's update with ``boxes`` follows. The loop runs over the gap's
    frames, batched over the tracks; tracks matched at the previous frame are left as they are."""
    gaps = frame - tracks.last_frames[track_rows]
    returning = gaps > 1
    if not returning.any():
        return
    rows, gaps, end = track_rows[returning], gaps[returning], boxes[returning]
    start = tracks.observed_boxes[rows]
    mean, covariance = tracks.observed_means[rows], tracks.observed_covariances[rows]
    for step in range(1, int(gaps.max())):
        active = gaps > step
        fraction = (step / gaps[active])[:, None]
        virtual = kalman.measure(start[active] + (end[active] - start[active]) * fraction)
        predicted = kalman.predict(mean[active], covariance[active])
        mean[active], covariance[active] = kalman.update(*predicted, virtual)
    tracks.means[rows], tracks.covariances[rows] = kalman.predict(mean, covariance)


def add_direction_cost(
    cost: np.ndarray,
    tracks: TrackTable,
    track_rows: np.ndarray,
    boxes: np.ndarray,
    scores: np.ndarray,
    frame: int,
    weight: float,
    thresh: float,
) -> np.ndarray:
    """OC-SORT's momentum term on an IoU cost ``[T, N]`` of ``track_rows`` against detections
    ``boxes`` ``[N, 4]`` (XYXY pixels) with ``scores`` ``[N]``.

    The cost is lowered by ``weight * score * (pi/2 - angle) / pi``, where ``angle`` lies between
    the track's direction of motion (:attr:`TrackTable.directions`) and the direction from its
    reference observation (3 frames back, :meth:`TrackTable.reference_boxes`) to the detection:
    +1/2 straight ahead, -1/2 straight back, so the cost may rise as well as fall. Pairs whose cost
    alone is not below ``thresh`` stay unmatched and those below stay below it, as OC-SORT applies
    its IoU threshold to the IoU alone; tracks without a known direction get no term.
    """
    reference, known = tracks.reference_boxes(track_rows, frame)
    directions = tracks.directions[track_rows]  # [T, 2] unit, zero when unknown
    known &= np.abs(directions).sum(axis=1) > 0
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2  # [N, 2]
    towards = centres[None] - ((reference[:, :2] + reference[:, 2:]) / 2)[:, None]  # [T, N, 2]
    towards /= np.maximum(np.linalg.norm(towards, axis=2, keepdims=True), 1e-6)
    cosine = np.clip(np.einsum("tk,tnk->tn", directions, towards), -1.0, 1.0)
    consistency = (np.pi / 2 - np.arccos(cosine)) / np.pi
    bonus = weight * consistency * known[:, None] * np.asarray(scores)[None]
    # The term ranks the pairs; it never takes a pair past the threshold its IoU passed (OC-SORT
    # filters matches by IoU alone), nor makes one that failed it feasible.
    return np.where(cost < thresh, np.minimum(cost - bonus, np.nextafter(thresh, -np.inf)), np.inf)
