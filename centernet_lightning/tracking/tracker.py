"""The multi-object tracker: FairMOT's appearance + motion association with ByteTrack's low-score stage.

One :class:`Tracker` follows one video; :meth:`Tracker.update` takes one frame's detections and
returns the tracks reported at that frame, :meth:`Tracker.reset` starts the next video. Tracks are
kept as arrays (struct of arrays: ids, states, Kalman means and covariances, smoothed embeddings),
so prediction, gating, cost matrices and Kalman updates run once per frame over all tracks; Python
only touches the matched pairs' indices.
"""

from __future__ import annotations

import logging
from enum import IntEnum
from typing import TypedDict

import numpy as np
import torch

from centernet_lightning.checks import check_bool, check_int_min, check_known_keys, check_range, setting_types
from centernet_lightning.tracking.kalman import GATING_THRESHOLD, KalmanFilter
from centernet_lightning.tracking.matching import (
    embedding_distance,
    fuse_motion,
    fuse_score,
    iou_distance,
    linear_assignment,
)

__all__ = ["THRESHOLD_SETTINGS", "TrackState", "Tracker", "Tracks"]

log = logging.getLogger(__name__)

# FairMOT / ByteTrack drop the younger of a tracked and a lost track whose boxes overlap with
# 1 - IoU below this (``remove_duplicate_stracks``): they are one object tracked twice.
DUPLICATE_IOU_DISTANCE = 0.15
# The score thresholds, which ``relative_thresholds`` scales by the sequence's peak score.
THRESHOLD_SETTINGS = ("high_thresh", "low_thresh", "new_track_thresh")
# The smallest peak score relative thresholds are scaled by: on frames of background alone (a video
# that opens on an empty scene) the thresholds stay at least this fraction of their values, instead
# of sinking to the noise.
MIN_PEAK_SCORE = 0.1


class TrackState(IntEnum):
    """Life cycle of a track: tentative -> confirmed -> lost -> (removed, no longer stored)."""

    TENTATIVE = 0  # started from one detection, not reported until matched again
    CONFIRMED = 1  # matched at its last frame; reported
    LOST = 2  # unmatched for up to ``track_buffer`` frames; kept for re-identification


class Tracks(TypedDict):
    """Tracks reported at one frame (M of them), ordered by id.

    ``ids`` int64 [M], unique within a sequence, from 1; ``boxes`` float32 [M, 4] XYXY pixels, the
    Kalman-filtered box after this frame's update (as FairMOT / ByteTrack report); ``scores``
    float32 [M], the score of the detection matched this frame; ``detection_indices`` int64 [M], the
    row of that detection in the frame's input arrays.
    """

    ids: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    detection_indices: np.ndarray


class Tracker:
    """Online multi-object tracker over per-frame detections with optional re-ID embeddings.

    Each frame (``update``):

    1. Kalman prediction of every confirmed and lost track (lost tracks with their size velocity
       zeroed, as the references).
    2. Detections are split by score: *high* (``score > high_thresh``) and *low*
       (``low_thresh < score <= high_thresh``); lower ones are dropped.
    3. **First association** of the high detections with confirmed and lost tracks.
       With embeddings (FairMOT): cosine distance of the detection embedding to the track's
       smoothed embedding, fused with motion (``appearance_weight * cos + (1 - appearance_weight)
       * d^2``, pairs whose squared Mahalanobis distance ``d^2`` exceeds ``gating_threshold`` ruled
       out), Hungarian matching below ``embedding_match_thresh``; then the still-unmatched
       confirmed tracks and high detections by IoU below ``iou_match_thresh`` (``1 - IoU``).
       Without embeddings (ByteTrack): ``1 - IoU`` (times the detection score if ``fuse_score``)
       below ``motion_match_thresh``.
    4. **Second association** (ByteTrack): the confirmed tracks still unmatched with the *low*
       detections by IoU below ``low_score_match_thresh``. Tracks left over become lost.
    5. Tentative tracks with the high detections left, by IoU below ``unconfirmed_match_thresh``;
       a tentative track left over is removed.
    6. High detections left with ``score >= new_track_thresh`` start tentative tracks (confirmed
       at once on the first frame of a sequence).

    With ``relative_thresholds`` the three score thresholds are fractions of the sequence's peak
    score (the highest detection score seen since :meth:`reset`, at least 0.1): 0.4, 0.1 and 0.5
    of it by default; ``fuse_score`` then weighs IoUs by the score divided by that peak. A
    detector whose scores all run low (a CenterNet without a re-ID head, or one trained briefly)
    then still starts and keeps tracks of its best detections; for a detector whose peaks reach
    0.9 the thresholds are close to the absolute ones. It is the preset of
    :meth:`~centernet_lightning.inference.Predictor.build_tracker` for models with no re-ID head.
    7. Lost tracks unmatched for more than ``track_buffer * frame_rate / 30`` frames are removed,
       and of a tracked and a lost track overlapping with IoU above 0.85 the younger is removed.

    Matched tracks get a Kalman update with their detection's box, its score, and (embeddings)
    an exponential moving average of their embedding. Confirmed tracks matched this frame are
    reported; unmatched (lost) and tentative tracks are not. Without embeddings the tracker is
    ByteTrack; with them, FairMOT's tracker with ByteTrack's low-score stage.

    Args (keyword only; defaults and where they come from):
        high_thresh: 0.4, FairMOT's ``conf_thres``. Detections above it take part in the first
            association and may start tracks. (ByteTrack uses 0.6 with YOLOX scores; CenterNet
            heatmap scores run lower.)
        low_thresh: 0.1, ByteTrack's floor for the second association.
        new_track_thresh: ``None`` = ``high_thresh + 0.1``, ByteTrack's ``det_thresh =
            track_thresh + 0.1``. (FairMOT starts tracks at ``conf_thres`` itself.)
        embedding_match_thresh: 0.4, FairMOT's first ``linear_assignment`` threshold on the fused
            appearance + motion cost.
        appearance_weight: 0.98, ``lambda_`` of FairMOT's ``fuse_motion``.
        gating_threshold: 9.4877, the chi-square 0.95 quantile for 4 degrees of freedom
            (DeepSORT's ``chi2inv95[4]``, FairMOT's gate).
        iou_match_thresh: 0.5, FairMOT's IoU association threshold (``1 - IoU``).
        motion_match_thresh: 0.8, ByteTrack's ``match_thresh`` for its first (IoU) association,
            used when there are no embeddings.
        fuse_score: True, ByteTrack's ``fuse_score`` (off only for MOT20) in the IoU association of
            high detections when there are no embeddings.
        low_score_match_thresh: 0.5, ByteTrack's second association threshold (``1 - IoU``).
        unconfirmed_match_thresh: 0.7, FairMOT / ByteTrack threshold for tentative tracks.
        track_buffer: 30 frames at 30 fps (FairMOT / ByteTrack ``track_buffer``), how long a lost
            track is kept; scaled to ``int(frame_rate / 30 * track_buffer)`` frames.
        frame_rate: 30, frames per second of the sequence.
        ema_alpha: 0.9, FairMOT's ``alpha``: ``smooth = alpha * smooth + (1 - alpha) * new``,
            renormalised.
        kalman_state: ``None`` = ``xyah``, the Kalman state of DeepSORT / FairMOT / ByteTrack
            (centre, aspect ratio, height); ``xywh`` is BoT-SORT's (centre, width, height), whose
            width follows fast changes of shape (see :mod:`~centernet_lightning.tracking.kalman`).
        kalman_filter: ``None`` = :class:`KalmanFilter` with DeepSORT's noise weights (1/20, 1/160)
            and ``kalman_state``; or a filter of your own (``kalman_state`` must then be None or
            its ``state``).
        relative_thresholds: False; True reads ``high_thresh``, ``low_thresh`` and
            ``new_track_thresh`` as fractions of the sequence's peak score (see above).

    Every setting is checked: score thresholds and IoU costs in [0, 1], ``embedding_match_thresh``
    in [0, 2] (a cosine distance), ``gating_threshold`` and ``frame_rate`` > 0, ``track_buffer``
    an integer >= 0; a value of the wrong type is a TypeError, one out of range a ValueError, an
    unknown setting a ValueError listing the valid ones (all naming the setting and the value).

    Attributes:
        peak_score: the highest detection score seen since :meth:`reset` (0 before any).
    """

    def __init__(
        self,
        *,
        high_thresh: float = 0.4,
        low_thresh: float = 0.1,
        new_track_thresh: float | None = None,
        embedding_match_thresh: float = 0.4,
        appearance_weight: float = 0.98,
        gating_threshold: float = GATING_THRESHOLD,
        iou_match_thresh: float = 0.5,
        motion_match_thresh: float = 0.8,
        fuse_score: bool = True,
        low_score_match_thresh: float = 0.5,
        unconfirmed_match_thresh: float = 0.7,
        track_buffer: int = 30,
        frame_rate: float = 30,
        ema_alpha: float = 0.9,
        kalman_state: str | None = None,
        kalman_filter: KalmanFilter | None = None,
        relative_thresholds: bool = False,
        **unknown: object,
    ) -> None:
        if unknown:  # Python's own TypeError would not list the valid settings
            check_known_keys("Tracker", unknown, setting_types(Tracker))
        # Scores and 1 - IoU costs lie in [0, 1], a cosine distance in [0, 2].
        check_range("embedding_match_thresh", embedding_match_thresh, 0.0, 2.0)
        for name, value in (
            ("high_thresh", high_thresh),
            ("low_thresh", low_thresh),
            ("new_track_thresh", 0.0 if new_track_thresh is None else new_track_thresh),
            ("iou_match_thresh", iou_match_thresh),
            ("motion_match_thresh", motion_match_thresh),
            ("low_score_match_thresh", low_score_match_thresh),
            ("unconfirmed_match_thresh", unconfirmed_match_thresh),
            ("appearance_weight", appearance_weight),
            ("ema_alpha", ema_alpha),
        ):
            check_range(name, value, 0.0, 1.0)
        check_range("gating_threshold", gating_threshold, 0.0, low_open=True)
        check_range("frame_rate", frame_rate, 0.0, low_open=True)
        check_int_min("track_buffer", track_buffer, 0)
        check_bool("fuse_score", fuse_score)
        check_bool("relative_thresholds", relative_thresholds)
        if not low_thresh <= high_thresh:
            raise ValueError(f"low_thresh ({low_thresh}) must not exceed high_thresh ({high_thresh})")
        if kalman_filter is not None and not isinstance(kalman_filter, KalmanFilter):
            raise TypeError(f"kalman_filter must be a KalmanFilter or None, got {type(kalman_filter).__name__}")
        self.high_thresh = high_thresh
        self.low_thresh = low_thresh
        self.new_track_thresh = high_thresh + 0.1 if new_track_thresh is None else new_track_thresh
        if self.new_track_thresh > 1.0:  # scores are probabilities: no track could ever start
            raise ValueError(
                f"high_thresh {high_thresh} makes the default new_track_thresh (high_thresh + 0.1 = "
                f"{self.new_track_thresh:g}) exceed 1, so no track could start: set new_track_thresh (at most 1)"
            )
        self.embedding_match_thresh = embedding_match_thresh
        self.appearance_weight = appearance_weight
        self.gating_threshold = gating_threshold
        self.iou_match_thresh = iou_match_thresh
        self.motion_match_thresh = motion_match_thresh
        self.fuse_score = fuse_score
        self.low_score_match_thresh = low_score_match_thresh
        self.unconfirmed_match_thresh = unconfirmed_match_thresh
        self.max_time_lost = int(frame_rate / 30.0 * track_buffer)
        self.ema_alpha = ema_alpha
        if kalman_filter is None:
            kalman_filter = KalmanFilter(state="xyah" if kalman_state is None else kalman_state)
        elif kalman_state is not None and kalman_state != kalman_filter.state:
            raise ValueError(
                f"kalman_state={kalman_state!r} contradicts the given kalman_filter's state {kalman_filter.state!r}"
            )
        self.kalman_filter = kalman_filter
        self.relative_thresholds = relative_thresholds
        self.reset()

    def reset(self) -> None:
        """Forget every track and start a new sequence: frame 0, next id 1."""
        self.frame_id = 0
        self.peak_score = 0.0
        self._next_id = 1
        self._embedding_dim: int | None = None  # fixed by the first frame with detections
        self._ids = np.empty(0, dtype=np.int64)
        self._states = np.empty(0, dtype=np.int8)
        self._means = np.empty((0, 8))
        self._covariances = np.empty((0, 8, 8))
        self._features = np.empty((0, 0))  # [T, D] unit vectors; D = 0 without embeddings
        self._scores = np.empty(0)
        self._start_frames = np.empty(0, dtype=np.int64)
        self._last_frames = np.empty(0, dtype=np.int64)  # last frame with a match

    @property
    def score_scale(self) -> float:
        """What the score settings are fractions of: ``max(peak_score, 0.1)`` with
        ``relative_thresholds``, else 1."""
        return max(self.peak_score, MIN_PEAK_SCORE) if self.relative_thresholds else 1.0

    def score_thresholds(self) -> dict[str, float]:
        """The score thresholds in effect now (:data:`THRESHOLD_SETTINGS`): the settings times
        :attr:`score_scale`."""
        return {name: getattr(self, name) * self.score_scale for name in THRESHOLD_SETTINGS}

    @property
    def track_states(self) -> dict[int, TrackState]:
        """State of every stored track (tentative, confirmed or lost) by id; removed ones are gone."""
        return {int(i): TrackState(s) for i, s in zip(self._ids, self._states)}

    def update(
        self,
        boxes: np.ndarray | torch.Tensor,
        scores: np.ndarray | torch.Tensor,
        embeddings: np.ndarray | torch.Tensor | None = None,
    ) -> Tracks:
        """Advance one frame.

        Args:
            boxes: float ``[N, 4]`` XYXY pixels of this frame's detections (N may be 0). Boxes without
                positive width and height are skipped with a warning.
            scores: float ``[N]`` detection scores.
            embeddings: ``[N, D]`` re-ID embeddings (any scale; L2-normalised here) or ``None``. Within
                a sequence either every frame with detections has them (same D) or none has.

        Returns:
            The confirmed tracks matched at this frame (:class:`Tracks`, numpy arrays).

        Raises:
            ValueError: on wrong shapes, mismatched lengths, non-finite values, or embeddings that
                appear, disappear or change size within a sequence.
        """
        boxes, scores, embeddings = self._check_inputs(boxes, scores, embeddings)
        self.frame_id += 1
        frame = self.frame_id

        if len(scores):
            self.peak_score = max(self.peak_score, float(scores.max()))
        thresholds = self.score_thresholds()
        high_thresh, low_thresh = thresholds["high_thresh"], thresholds["low_thresh"]
        # ByteTrack's fuse_score weighs IoU by the score; relative to the peak, so that a detector
        # whose best scores are 0.2 still matches its tracks
        fusion_scores = np.minimum(scores / self.score_scale, 1.0)

        usable = (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
        if not usable.all():
            log.warning(
                "Tracker frame %d: skipping detections %s without positive width and height",
                frame,
                np.flatnonzero(~usable).tolist(),
            )
        measurements = np.zeros((len(boxes), 4))
        measurements[usable] = self.kalman_filter.measure(boxes[usable])
        high = np.flatnonzero(usable & (scores > high_thresh))
        low = np.flatnonzero(usable & (scores > low_thresh) & (scores <= high_thresh))

        states = self._states
        was_lost = states == TrackState.LOST
        pool = np.flatnonzero((states == TrackState.CONFIRMED) | was_lost)
        tentative = np.flatnonzero(states == TrackState.TENTATIVE)
        if len(pool):
            # Tentative tracks are not predicted (nor in the references): they have no velocity yet.
            mean = self._means[pool]
            # A lost box keeps its size (the references zero vh; BoT-SORT vw and vh).
            mean[np.ix_(was_lost[pool], self.kalman_filter.size_velocity_columns)] = 0.0
            self._means[pool], self._covariances[pool] = self.kalman_filter.predict(mean, self._covariances[pool])
        track_boxes = self.kalman_filter.boxes(self._means)

        matched_tracks: list[np.ndarray] = []
        matched_detections: list[np.ndarray] = []

        def assign(tracks: np.ndarray, detections: np.ndarray, cost: np.ndarray, thresh: float):
            matches, rest_tracks, rest_detections = linear_assignment(cost, thresh)
            matched_tracks.append(tracks[matches[:, 0]])
            matched_detections.append(detections[matches[:, 1]])
            return tracks[rest_tracks], detections[rest_detections]

        # First association: high detections with confirmed and lost tracks.
        if self._embedding_dim:
            cost = embedding_distance(self._features[pool], embeddings[high])
            gating = self.kalman_filter.gating_distance(self._means[pool], self._covariances[pool], measurements[high])
            cost = fuse_motion(cost, gating, self.gating_threshold, self.appearance_weight)
            rest, rest_high = assign(pool, high, cost, self.embedding_match_thresh)
            rest = rest[self._states[rest] == TrackState.CONFIRMED]  # lost tracks return only by appearance
            cost = iou_distance(track_boxes[rest], boxes[rest_high])
            rest, rest_high = assign(rest, rest_high, cost, self.iou_match_thresh)
        else:
            cost = iou_distance(track_boxes[pool], boxes[high])
            if self.fuse_score:
                cost = fuse_score(cost, fusion_scores[high])
            rest, rest_high = assign(pool, high, cost, self.motion_match_thresh)
            rest = rest[self._states[rest] == TrackState.CONFIRMED]

        # Second association (ByteTrack): low-score detections keep occluded tracks alive.
        rest, _ = assign(rest, low, iou_distance(track_boxes[rest], boxes[low]), self.low_score_match_thresh)
        newly_lost = rest

        # Tentative tracks: one more match confirms them, none removes them.
        cost = iou_distance(track_boxes[tentative], boxes[rest_high])
        if not self._embedding_dim and self.fuse_score:
            cost = fuse_score(cost, fusion_scores[rest_high])
        failed_tentative, rest_high = assign(tentative, rest_high, cost, self.unconfirmed_match_thresh)

        track_rows = np.concatenate(matched_tracks)
        detection_rows = np.concatenate(matched_detections)
        matched_detection = np.full(len(self._ids), -1, dtype=np.int64)
        matched_detection[track_rows] = detection_rows
        self._apply_matches(track_rows, detection_rows, measurements, scores, embeddings)
        self._states[newly_lost] = TrackState.LOST

        expired = was_lost & (self._states == TrackState.LOST) & (frame - self._last_frames > self.max_time_lost)
        keep = ~expired
        keep[failed_tentative] = False
        self._keep(keep)
        matched_detection = matched_detection[keep]

        new = rest_high[scores[rest_high] >= thresholds["new_track_thresh"]]
        self._start_tracks(new, measurements, scores, embeddings)
        matched_detection = np.concatenate((matched_detection, new))

        keep = self._duplicate_free()
        self._keep(keep)
        matched_detection = matched_detection[keep]

        reported = (self._states == TrackState.CONFIRMED) & (matched_detection >= 0)
        return Tracks(
            ids=self._ids[reported].copy(),
            boxes=self.kalman_filter.boxes(self._means[reported]).astype(np.float32),
            scores=self._scores[reported].astype(np.float32),
            detection_indices=matched_detection[reported],
        )

    def _apply_matches(
        self,
        track_rows: np.ndarray,
        detection_rows: np.ndarray,
        measurements: np.ndarray,
        scores: np.ndarray,
        embeddings: np.ndarray | None,
    ) -> None:
        """Kalman update, state, score and embedding EMA of all matched tracks at once."""
        if len(track_rows) == 0:
            return
        self._means[track_rows], self._covariances[track_rows] = self.kalman_filter.update(
            self._means[track_rows], self._covariances[track_rows], measurements[detection_rows]
        )
        self._states[track_rows] = TrackState.CONFIRMED
        self._last_frames[track_rows] = self.frame_id
        self._scores[track_rows] = scores[detection_rows]
        if self._embedding_dim:
            smoothed = self.ema_alpha * self._features[track_rows] + (1 - self.ema_alpha) * embeddings[detection_rows]
            self._features[track_rows] = _normalize(smoothed)

    def _start_tracks(
        self, detection_rows: np.ndarray, measurements: np.ndarray, scores: np.ndarray, embeddings: np.ndarray | None
    ) -> None:
        """Append one track per detection row; confirmed at once on a sequence's first frame."""
        count = len(detection_rows)
        if count == 0:
            return
        mean, covariance = self.kalman_filter.initiate(measurements[detection_rows])
        state = TrackState.CONFIRMED if self.frame_id == 1 else TrackState.TENTATIVE
        features = embeddings[detection_rows] if self._embedding_dim else np.empty((count, 0))
        self._ids = np.concatenate((self._ids, np.arange(self._next_id, self._next_id + count)))
        self._next_id += count
        self._states = np.concatenate((self._states, np.full(count, state, dtype=np.int8)))
        self._means = np.concatenate((self._means, mean))
        self._covariances = np.concatenate((self._covariances, covariance))
        self._features = np.concatenate((self._features, features))
        self._scores = np.concatenate((self._scores, scores[detection_rows]))
        self._start_frames = np.concatenate((self._start_frames, np.full(count, self.frame_id)))
        self._last_frames = np.concatenate((self._last_frames, np.full(count, self.frame_id)))

    def _duplicate_free(self) -> np.ndarray:
        """Keep-mask dropping the younger of each tracked / lost pair of near-identical boxes."""
        keep = np.ones(len(self._ids), dtype=bool)
        tracked = np.flatnonzero(self._states != TrackState.LOST)
        lost = np.flatnonzero(self._states == TrackState.LOST)
        if len(tracked) == 0 or len(lost) == 0:
            return keep
        boxes = self.kalman_filter.boxes(self._means)
        pairs_tracked, pairs_lost = np.nonzero(iou_distance(boxes[tracked], boxes[lost]) < DUPLICATE_IOU_DISTANCE)
        tracked, lost = tracked[pairs_tracked], lost[pairs_lost]
        ages = self._last_frames - self._start_frames
        tracked_older = ages[tracked] > ages[lost]
        keep[lost[tracked_older]] = False
        keep[tracked[~tracked_older]] = False
        return keep

    def _keep(self, keep: np.ndarray) -> None:
        """Drop the tracks where ``keep`` is False (they are removed)."""
        if keep.all():
            return
        self._ids = self._ids[keep]
        self._states = self._states[keep]
        self._means = self._means[keep]
        self._covariances = self._covariances[keep]
        self._features = self._features[keep]
        self._scores = self._scores[keep]
        self._start_frames = self._start_frames[keep]
        self._last_frames = self._last_frames[keep]

    def _check_inputs(
        self, boxes: object, scores: object, embeddings: object
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
        """Validate one frame's inputs; boxes, scores as float64, embeddings L2-normalised (or None)."""
        frame = self.frame_id + 1
        boxes = _to_numpy(boxes, "boxes")
        scores = _to_numpy(scores, "scores")
        if boxes.shape == (0,):  # an empty list
            boxes = boxes.reshape(0, 4)
        if boxes.ndim != 2 or boxes.shape[1] != 4:
            raise ValueError(f"Tracker frame {frame}: boxes must have shape [N, 4] (XYXY), got {list(boxes.shape)}")
        count = len(boxes)
        if scores.ndim != 1 or len(scores) != count:
            raise ValueError(
                f"Tracker frame {frame}: scores must have shape [{count}] like boxes, got {list(scores.shape)}"
            )
        _check_finite(boxes, "boxes", frame)
        _check_finite(scores, "scores", frame)
        if embeddings is not None:
            embeddings = _to_numpy(embeddings, "embeddings")
            if embeddings.ndim != 2 or len(embeddings) != count or embeddings.shape[1] == 0:
                raise ValueError(
                    f"Tracker frame {frame}: embeddings must have shape [{count}, D] with D >= 1 like boxes, "
                    f"got {list(embeddings.shape)}"
                )
            _check_finite(embeddings, "embeddings", frame)
            embeddings = _normalize(embeddings)
        elif count == 0 and self._embedding_dim:
            embeddings = np.empty((0, self._embedding_dim))  # an empty frame of an embedding sequence
        dimension = 0 if embeddings is None else embeddings.shape[1]
        if count and self._embedding_dim is None:
            self._embedding_dim = dimension
            self._features = np.empty((len(self._ids), dimension))
        elif (count or dimension) and self._embedding_dim is not None and dimension != self._embedding_dim:
            started = f"{self._embedding_dim}-d embeddings" if self._embedding_dim else "no embeddings"
            given = f"{dimension}-d embeddings" if dimension else "embeddings=None"
            raise ValueError(
                f"Tracker frame {frame}: got {given} but this sequence started with {started}; pass the same "
                "kind on every frame, or call reset() to start a new sequence"
            )
        return boxes, scores, embeddings


def _to_numpy(value: object, name: str) -> np.ndarray:
    """A float64 numpy copy of an array-like or tensor (any device)."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().double().numpy()
    try:
        return np.array(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"Tracker: {name} must be a numeric array or tensor, got {type(value).__name__}") from error


def _check_finite(values: np.ndarray, name: str, frame: int) -> None:
    bad = ~np.isfinite(values)
    if bad.any():
        row = int(np.flatnonzero(bad.reshape(len(values), -1).any(axis=1))[0])
        raise ValueError(f"Tracker frame {frame}: {name}[{row}] is not finite: {values[row].tolist()}")


def _normalize(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero, as ``F.normalize``)."""
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
