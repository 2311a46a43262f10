"""Multi-object tracking: a batched Kalman filter, association costs, and the tracker.

:class:`Tracker` is FairMOT's appearance + motion association followed by ByteTrack's second
association of low-score detections; without embeddings it is ByteTrack.
"""

from centernet_lightning.tracking.kalman import (
    GATING_THRESHOLD,
    KALMAN_STATES,
    KalmanFilter,
    xyah_to_xyxy,
    xyxy_to_xyah,
)
from centernet_lightning.tracking.matching import (
    embedding_distance,
    fuse_motion,
    fuse_score,
    iou_distance,
    linear_assignment,
)
from centernet_lightning.tracking.tracker import THRESHOLD_SETTINGS, Tracker, Tracks, TrackState

__all__ = [
    "GATING_THRESHOLD",
    "KALMAN_STATES",
    "KalmanFilter",
    "THRESHOLD_SETTINGS",
    "TrackState",
    "Tracker",
    "Tracks",
    "embedding_distance",
    "fuse_motion",
    "fuse_score",
    "iou_distance",
    "linear_assignment",
    "xyah_to_xyxy",
    "xyxy_to_xyah",
]
