"""What a tracker stores of its tracks, and what it reports per frame.

:class:`TrackTable` keeps every stored track as one row of parallel arrays (struct of arrays), so
that prediction, gating, costs and Kalman updates run once per frame over all tracks.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from enum import IntEnum
from typing import NotRequired, TypedDict

import numpy as np

__all__ = ["RECENT_OBSERVATIONS", "TrackState", "TrackTable", "Tracks"]

# Observations kept per track: OC-SORT's delta_t = 3, the span its motion direction is measured over.
RECENT_OBSERVATIONS = 3


class TrackState(IntEnum):
    """Life cycle of a track: tentative -> confirmed -> lost -> (removed, no longer stored)."""

    TENTATIVE = 0  # started from one detection, not reported until matched again
    CONFIRMED = 1  # matched at its last frame; reported
    LOST = 2  # unmatched for up to ``track_buffer`` frames; kept for re-identification


class Tracks(TypedDict):
    """Tracks reported at one frame (M of them), ordered by id.

    ``ids`` int64 [M], unique within a sequence, from 1; ``boxes`` float32 [M, 4] XYXY pixels, the
    Kalman-filtered box after this frame's update (as FairMOT / ByteTrack report); ``scores``
    float32 [M], the score of the detection matched this frame; ``classes`` int64 [M], the track's
    class (the ``classes`` given to the tracker; 0 when none were); ``detection_indices`` int64 [M],
    the row of that detection in the frame's input arrays. ``keypoints`` float32 [M, J, 3]: the
    joints of that detection, added by :func:`~centernet_lightning.inference.track_source` for a
    keypoint model (the tracker itself does not use them).
    """

    ids: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    classes: np.ndarray
    detection_indices: np.ndarray
    keypoints: NotRequired[np.ndarray]


@dataclass
class TrackTable:
    """Every stored track, one row each (T rows); all arrays share the first dimension.

    ``means`` / ``covariances``: Kalman state ``[T, 8]`` / ``[T, 8, 8]`` now; ``observed_means`` /
    ``observed_covariances``: the state right after the last matched detection (for OC-SORT's
    re-update over an occlusion); ``recent_boxes`` ``[T, 3, 4]`` XYXY pixels and ``recent_frames``
    ``[T, 3]`` the last three matched detections, oldest first (frame 0: none yet), the last one
    being :attr:`observed_boxes`; ``directions`` ``[T, 2]`` the unit direction of the track's motion
    over them (OC-SORT's velocity direction; zero while unknown); ``features`` ``[T, D]`` the
    smoothed unit embeddings (D = 0 without embeddings); frames count from 1.
    """

    ids: np.ndarray  # int64 [T]
    states: np.ndarray  # int8 [T], TrackState
    classes: np.ndarray  # int64 [T]
    means: np.ndarray
    covariances: np.ndarray
    observed_means: np.ndarray
    observed_covariances: np.ndarray
    recent_boxes: np.ndarray
    recent_frames: np.ndarray  # int64 [T, 3]
    directions: np.ndarray
    features: np.ndarray
    scores: np.ndarray  # float64 [T], the last matched detection's
    start_frames: np.ndarray  # int64 [T]
    last_frames: np.ndarray  # int64 [T], the last frame with a match

    @classmethod
    def empty(cls, embedding_dim: int = 0) -> TrackTable:
        return cls(
            ids=np.empty(0, dtype=np.int64),
            states=np.empty(0, dtype=np.int8),
            classes=np.empty(0, dtype=np.int64),
            means=np.empty((0, 8)),
            covariances=np.empty((0, 8, 8)),
            observed_means=np.empty((0, 8)),
            observed_covariances=np.empty((0, 8, 8)),
            recent_boxes=np.empty((0, RECENT_OBSERVATIONS, 4)),
            recent_frames=np.empty((0, RECENT_OBSERVATIONS), dtype=np.int64),
            directions=np.empty((0, 2)),
            features=np.empty((0, embedding_dim)),
            scores=np.empty(0),
            start_frames=np.empty(0, dtype=np.int64),
            last_frames=np.empty(0, dtype=np.int64),
        )

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def observed_boxes(self) -> np.ndarray:
        """``[T, 4]`` the box of each track's last matched detection (XYXY pixels)."""
        return self.recent_boxes[:, -1]

    def reference_boxes(self, rows: np.ndarray, frame: int) -> tuple[np.ndarray, np.ndarray]:
        """OC-SORT's ``k_previous_obs``: for each of ``rows``, the observation 3, else 2, else 1 frames
        before ``frame``, else the latest one; returns boxes ``[R, 4]`` and whether one exists ``[R]``."""
        frames = self.recent_frames[rows]  # [R, 3], oldest first
        recent_enough = (frames > 0) & (frames >= frame - RECENT_OBSERVATIONS)
        # the oldest observation within delta_t frames; failing that the latest
        column = np.where(recent_enough.any(axis=1), recent_enough.argmax(axis=1), RECENT_OBSERVATIONS - 1)
        picked = np.arange(len(rows))
        return self.recent_boxes[rows][picked, column], frames[picked, column] > 0

    def observe(self, rows: np.ndarray, boxes: np.ndarray, frame: int) -> None:
        """Record a matched detection's box for each of ``rows``: the motion direction from the
        reference observation (:meth:`reference_boxes`) to it, then the box as the latest one."""
        reference, known = self.reference_boxes(rows, frame)
        motion = _centres(boxes) - _centres(reference)
        # OC-SORT's speed_direction: a track that did not move has no direction (zero)
        unit = motion / (np.linalg.norm(motion, axis=1, keepdims=True) + 1e-6)
        self.directions[rows[known]] = unit[known]
        self.recent_boxes[rows] = np.concatenate((self.recent_boxes[rows, 1:], boxes[:, None]), axis=1)
        self.recent_frames[rows] = np.concatenate((self.recent_frames[rows, 1:], np.full((len(rows), 1), frame)), 1)

    def keep(self, mask: np.ndarray) -> None:
        """Drop the rows where ``mask`` is False (those tracks are removed)."""
        if mask.all():
            return
        for field in fields(self):
            setattr(self, field.name, getattr(self, field.name)[mask])

    def append(self, rows: TrackTable) -> None:
        """Add the tracks of ``rows`` after the stored ones."""
        for field in fields(self):
            setattr(self, field.name, np.concatenate((getattr(self, field.name), getattr(rows, field.name))))


def _centres(boxes: np.ndarray) -> np.ndarray:
    """``[N, 2]`` centres of XYXY boxes ``[N, 4]``."""
    return (boxes[:, :2] + boxes[:, 2:]) / 2
