"""Multi-object tracking: a batched Kalman filter, association costs, camera motion, and the tracker.

:class:`Tracker` is FairMOT's appearance + motion association followed by ByteTrack's low-score
stage and OC-SORT's recovery of lost tracks, with BoT-SORT's camera-motion compensation as an
option; without embeddings it is ByteTrack. :func:`tracker_settings` reads the presets
(``bytetrack``, ``fairmot``, ``botsort``, ``ocsort``) and YAML files of settings.
"""

from centernet_lightning.tracking.camera_motion import CAMERA_MOTION_METHODS, CameraMotion
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
from centernet_lightning.tracking.presets import TRACKER_PRESETS, tracker_settings
from centernet_lightning.tracking.tracker import THRESHOLD_SETTINGS, Tracker
from centernet_lightning.tracking.tracks import Tracks, TrackState

__all__ = [
    "CAMERA_MOTION_METHODS",
    "CameraMotion",
    "GATING_THRESHOLD",
    "KALMAN_STATES",
    "KalmanFilter",
    "THRESHOLD_SETTINGS",
    "TRACKER_PRESETS",
    "TrackState",
    "Tracker",
    "Tracks",
    "embedding_distance",
    "fuse_motion",
    "fuse_score",
    "iou_distance",
    "linear_assignment",
    "tracker_settings",
    "xyah_to_xyxy",
    "xyxy_to_xyah",
]
