"""The multi-object tracker: FairMOT's appearance + motion association with ByteTrack's low-score stage,
OC-SORT's recovery of lost tracks and BoT-SORT's camera-motion compensation.

One :class:`Tracker` follows one video; :meth:`Tracker.update` takes one frame's detections and
returns the tracks reported at that frame, :meth:`Tracker.reset` starts the next video. Tracks are
kept as arrays (:class:`~centernet_lightning.tracking.tracks.TrackTable`), so prediction, gating,
cost matrices and Kalman updates run once per frame over all tracks; Python only touches the
matched pairs' indices.
"""

from __future__ import annotations

import logging

import numpy as np
import torch

from centernet_lightning.checks import check_bool, check_int_min, check_known_keys, check_range, setting_types
from centernet_lightning.tracking.camera_motion import CAMERA_MOTION_METHODS, CameraMotion
from centernet_lightning.tracking.frame_inputs import FrameDetections, check_frame_detections, normalize_rows
from centernet_lightning.tracking.kalman import GATING_THRESHOLD, KalmanFilter
from centernet_lightning.tracking.matching import (
    clear_matches,
    embedding_distance,
    fuse_motion,
    fuse_score,
    iou_distance,
    linear_assignment,
)
from centernet_lightning.tracking.observation_centric import add_direction_cost, reupdate_over_gaps
from centernet_lightning.tracking.tracks import RECENT_OBSERVATIONS, Tracks, TrackState, TrackTable

__all__ = ["THRESHOLD_SETTINGS", "Tracker"]

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


class Tracker:
    """Online multi-object tracker over per-frame detections with optional re-ID embeddings.

    Each frame (``update``):

    1. Kalman prediction of every confirmed and lost track (lost tracks with their size velocity
       zeroed, as the references); with ``camera_motion``, every track then moved by the camera's
       motion since the last frame (BoT-SORT).
    2. Detections are split by score: *high* (``score > high_thresh``) and *low*
       (``low_thresh < score <= high_thresh``); lower ones are dropped.
    3. **First association** of the high detections with confirmed and lost tracks.
       With embeddings (FairMOT): cosine distance of the detection embedding to the track's
       smoothed embedding, fused with motion (``appearance_weight * cos + (1 - appearance_weight)
       * d^2``, pairs whose squared Mahalanobis distance ``d^2`` exceeds ``gating_threshold`` ruled
       out unless the pair is a clear re-identification: appearance distance below
       ``strong_appearance_thresh`` and passing a ratio test, see :func:`fuse_motion`), Hungarian
       matching below ``embedding_match_thresh``; then the still-unmatched confirmed tracks and
       high detections by IoU below ``iou_match_thresh`` (``1 - IoU``).
       Without embeddings (ByteTrack): ``1 - IoU`` (times the detection score if ``fuse_score``)
       below ``motion_match_thresh``. With ``direction_weight``, these IoU costs are lowered where
       the detection lies in the track's direction of motion and raised where it lies behind
       (OC-SORT's momentum; never past the threshold).
    4. **Second association** (ByteTrack): the confirmed tracks still unmatched with the *low*
       detections by IoU below ``low_score_match_thresh``.
    5. **Recovery** (``observation_recovery``, OC-SORT): the tracks still unmatched, lost ones
       included, with the high detections left, by IoU with each track's last observed box below
       ``recovery_match_thresh`` (with embeddings, never onto a detection whose appearance distance
       exceeds ``embedding_match_thresh``). Confirmed tracks left over become lost.
    6. Tentative tracks with the high detections left, by IoU below ``unconfirmed_match_thresh``;
       a tentative track left over is removed.
    7. High detections left with ``score >= new_track_thresh`` start tentative tracks (confirmed
       at once on the first frame of a sequence).
    8. Lost tracks unmatched for more than ``track_buffer * frame_rate / 30`` frames are removed
       (with embeddings and ``strong_appearance_thresh``: kept dormant up to ``reid_buffer``,
       matched only by a clear appearance match in step 3, never by IoU);
       of a tracked and a lost track of one class overlapping with IoU above 0.85 the younger is
       removed; with ``merge_thresh``, a lost track whose embedding is that close to a track matched
       this frame which started after it was last seen (one object, two tracks) is removed.

    With ``class_aware`` (the default) every association runs within each class. Matched tracks
    get a Kalman update with their detection's box (``nsa_kalman``: observation noise standard
    deviations scaled by ``1 - score``), after a re-update along the straight path from their last observation when
    they were unmatched in between (``observation_reupdate``, OC-SORT), their score, and
    (embeddings) a moving average of their embedding, ``ema_alpha`` of the old one, or with
    ``dynamic_appearance`` Deep OC-SORT's ``alpha + (1 - alpha) * (1 - (s - high) / (1 - high))``.
    Confirmed tracks matched this frame are reported; unmatched (lost) and tentative tracks are not.
    :func:`~centernet_lightning.tracking.tracker_settings` gives the presets (``bytetrack``,
    ``fairmot``: the published associations; ``botsort``, ``ocsort``).

    With ``relative_thresholds`` the three score thresholds are fractions of the sequence's peak
    score (the highest detection score seen since :meth:`reset`, at least 0.1): 0.4, 0.1 and 0.5
    of it by default; ``fuse_score`` then weighs IoUs by the score divided by that peak. A
    detector whose scores all run low (a CenterNet without a re-ID head, or one trained briefly)
    then still starts and keeps tracks of its best detections. It is the preset of
    :meth:`~centernet_lightning.inference.Predictor.build_tracker` for models with no re-ID head.

    Args (keyword only; defaults and where they come from):
        high_thresh: 0.4, FairMOT's ``conf_thres``. Detections above it take part in the first
            association and may start tracks. (ByteTrack uses 0.6 with YOLOX scores; CenterNet
            heatmap scores run lower.)
        low_thresh: 0.1, ByteTrack's floor for the second association.
        new_track_thresh: ``None`` = ``high_thresh + 0.1``, ByteTrack's ``det_thresh =
            track_thresh + 0.1``. (FairMOT starts tracks at ``conf_thres`` itself.)
        use_embeddings: True; False ignores the embeddings given (ByteTrack).
        embedding_match_thresh: 0.4, FairMOT's first ``linear_assignment`` threshold on the fused
            appearance + motion cost.
        appearance_weight: 0.98, ``lambda_`` of FairMOT's ``fuse_motion``.
        gating_threshold: 9.4877, the chi-square 0.95 quantile for 4 degrees of freedom
            (DeepSORT's ``chi2inv95[4]``, FairMOT's gate).
        strong_appearance_thresh: 0.25 (ours); a clear appearance match (below it, and passing a
            ratio test against the second best: :func:`~centernet_lightning.tracking.fuse_motion`)
            overrides the motion gate. Lowered to half the smallest distance seen between two
            different objects of the sequence (:attr:`clear_match_thresh`). None is FairMOT's
            strict gate.
        dynamic_appearance: True, Deep OC-SORT's confidence-weighted embedding update; False is
            FairMOT's fixed ``ema_alpha``.
        merge_thresh: None (never); an appearance distance under which a lost track and a newer
            track are one object, and the lost one is removed.
        iou_match_thresh: 0.5, FairMOT's IoU association threshold (``1 - IoU``).
        motion_match_thresh: 0.8, ByteTrack's ``match_thresh`` for its first (IoU) association,
            used when there are no embeddings.
        fuse_score: True, ByteTrack's ``fuse_score`` (off only for MOT20) in the IoU association of
            high detections when there are no embeddings.
        low_score_match_thresh: 0.5, ByteTrack's second association threshold (``1 - IoU``).
        unconfirmed_match_thresh: 0.7, FairMOT / ByteTrack threshold for tentative tracks.
        observation_recovery: True, OC-SORT's observation-centric recovery (OCR).
        recovery_match_thresh: 0.7, its ``1 - IoU`` threshold (OC-SORT's IoU 0.3).
        observation_reupdate: False; True is OC-SORT's observation-centric re-update (ORU; no gain
            in ``benchmarks/tracker_peers.py``, so off unless asked for: the ``ocsort`` preset).
        direction_weight: 0.0 (off), OC-SORT's ``inertia`` (0.2 there) for its direction term.
        track_buffer: 30 frames at 30 fps (FairMOT / ByteTrack ``track_buffer``), how long a lost
            track is kept; scaled to ``int(frame_rate / 30 * track_buffer)`` frames.
        reid_buffer: 300 frames at 30 fps (ours): with embeddings and ``strong_appearance_thresh``,
            a lost track past ``track_buffer`` stays *dormant* until then, and comes back only by a
            clear appearance match (an object that left the view and returns); 0 (or at most
            ``track_buffer``) removes lost tracks after ``track_buffer``, as the references.
        frame_rate: 30, frames per second of the sequence.
        ema_alpha: 0.9, FairMOT's ``alpha``: ``smooth = alpha * smooth + (1 - alpha) * new``,
            renormalised.
        kalman_state: ``None`` = ``xyah``, the Kalman state of DeepSORT / FairMOT / ByteTrack
            (centre, aspect ratio, height); ``xywh`` is BoT-SORT's (centre, width, height), whose
            width follows fast changes of shape (see :mod:`~centernet_lightning.tracking.kalman`).
        nsa_kalman: False; True scales the observation noise's standard deviations by ``1 - score``
            (StrongSORT's code for the NSA Kalman filter of GIAOTracker; the variance by its square).
        kalman_filter: ``None`` = :class:`KalmanFilter` with DeepSORT's noise weights (1/20, 1/160)
            and ``kalman_state``; or a filter of your own (``kalman_state`` must then be None or
            its ``state``).
        camera_motion: None (a static camera); ``sparse_flow`` or ``ecc`` estimate the camera's
            motion from the ``image`` given to :meth:`update` (:class:`CameraMotion`, BoT-SORT's).
        camera_motion_downscale: 2, the factor frames are shrunk by for that estimate.
        class_aware: True, a track only matches detections of its class.
        relative_thresholds: False; True reads ``high_thresh``, ``low_thresh`` and
            ``new_track_thresh`` as fractions of the sequence's peak score (see above).

    Every setting is checked: score thresholds and IoU costs in [0, 1], appearance distances in
    [0, 2] (cosine), ``gating_threshold`` and ``frame_rate`` > 0, ``track_buffer`` an integer >= 0;
    a value of the wrong type is a TypeError, one out of range a ValueError, an unknown setting a
    ValueError listing the valid ones (all naming the setting and the value).

    Attributes:
        peak_score: the highest detection score seen since :meth:`reset` (0 before any).
    """

    def __init__(
        self,
        *,
        high_thresh: float = 0.4,
        low_thresh: float = 0.1,
        new_track_thresh: float | None = None,
        use_embeddings: bool = True,
        embedding_match_thresh: float = 0.4,
        appearance_weight: float = 0.98,
        gating_threshold: float = GATING_THRESHOLD,
        strong_appearance_thresh: float | None = 0.25,
        dynamic_appearance: bool = True,
        merge_thresh: float | None = None,
        iou_match_thresh: float = 0.5,
        motion_match_thresh: float = 0.8,
        fuse_score: bool = True,
        low_score_match_thresh: float = 0.5,
        unconfirmed_match_thresh: float = 0.7,
        observation_recovery: bool = True,
        recovery_match_thresh: float = 0.7,
        observation_reupdate: bool = False,
        direction_weight: float = 0.0,
        track_buffer: int = 30,
        reid_buffer: int = 300,
        frame_rate: float = 30,
        ema_alpha: float = 0.9,
        kalman_state: str | None = None,
        nsa_kalman: bool = False,
        kalman_filter: KalmanFilter | None = None,
        camera_motion: str | None = None,
        camera_motion_downscale: float = 2.0,
        class_aware: bool = True,
        relative_thresholds: bool = False,
        **unknown: object,
    ) -> None:
        if unknown:  # Python's own TypeError would not list the valid settings
            check_known_keys("Tracker", unknown, setting_types(Tracker))
        # Scores and 1 - IoU costs lie in [0, 1], a cosine distance in [0, 2].
        for name, value in (
            ("embedding_match_thresh", embedding_match_thresh),
            ("strong_appearance_thresh", 0.0 if strong_appearance_thresh is None else strong_appearance_thresh),
            ("merge_thresh", 0.0 if merge_thresh is None else merge_thresh),
        ):
            check_range(name, value, 0.0, 2.0)
        for name, value in (
            ("high_thresh", high_thresh),
            ("low_thresh", low_thresh),
            ("new_track_thresh", 0.0 if new_track_thresh is None else new_track_thresh),
            ("iou_match_thresh", iou_match_thresh),
            ("motion_match_thresh", motion_match_thresh),
            ("low_score_match_thresh", low_score_match_thresh),
            ("unconfirmed_match_thresh", unconfirmed_match_thresh),
            ("recovery_match_thresh", recovery_match_thresh),
            ("direction_weight", direction_weight),
            ("appearance_weight", appearance_weight),
            ("ema_alpha", ema_alpha),
        ):
            check_range(name, value, 0.0, 1.0)
        check_range("gating_threshold", gating_threshold, 0.0, low_open=True)
        check_range("frame_rate", frame_rate, 0.0, low_open=True)
        check_range("camera_motion_downscale", camera_motion_downscale, 1.0)
        check_int_min("track_buffer", track_buffer, 0)
        check_int_min("reid_buffer", reid_buffer, 0)
        for name, flag in (
            ("use_embeddings", use_embeddings),
            ("dynamic_appearance", dynamic_appearance),
            ("fuse_score", fuse_score),
            ("observation_recovery", observation_recovery),
            ("observation_reupdate", observation_reupdate),
            ("nsa_kalman", nsa_kalman),
            ("class_aware", class_aware),
            ("relative_thresholds", relative_thresholds),
        ):
            check_bool(name, flag)
        if not low_thresh <= high_thresh:
            raise ValueError(f"low_thresh ({low_thresh}) must not exceed high_thresh ({high_thresh})")
        if kalman_filter is not None and not isinstance(kalman_filter, KalmanFilter):
            raise TypeError(f"kalman_filter must be a KalmanFilter or None, got {type(kalman_filter).__name__}")
        if camera_motion is not None and camera_motion not in CAMERA_MOTION_METHODS:
            valid = ", ".join(CAMERA_MOTION_METHODS)
            raise ValueError(f"camera_motion must be None or one of {valid}, got {camera_motion!r}")
        self.high_thresh = high_thresh
        self.low_thresh = low_thresh
        self.new_track_thresh = high_thresh + 0.1 if new_track_thresh is None else new_track_thresh
        if self.new_track_thresh > 1.0:  # scores are probabilities: no track could ever start
            raise ValueError(
                f"high_thresh {high_thresh} makes the default new_track_thresh (high_thresh + 0.1 = "
                f"{self.new_track_thresh:g}) exceed 1, so no track could start: set new_track_thresh (at most 1)"
            )
        self.use_embeddings = use_embeddings
        self.embedding_match_thresh = embedding_match_thresh
        self.appearance_weight = appearance_weight
        self.gating_threshold = gating_threshold
        self.strong_appearance_thresh = strong_appearance_thresh
        self.dynamic_appearance = dynamic_appearance
        self.merge_thresh = merge_thresh
        self.iou_match_thresh = iou_match_thresh
        self.motion_match_thresh = motion_match_thresh
        self.fuse_score = fuse_score
        self.low_score_match_thresh = low_score_match_thresh
        self.unconfirmed_match_thresh = unconfirmed_match_thresh
        self.observation_recovery = observation_recovery
        self.recovery_match_thresh = recovery_match_thresh
        self.observation_reupdate = observation_reupdate
        self.direction_weight = direction_weight
        self.max_time_lost = int(frame_rate / 30.0 * track_buffer)
        self.max_time_reid = int(frame_rate / 30.0 * max(track_buffer, reid_buffer))
        self.ema_alpha = ema_alpha
        if kalman_filter is None:
            kalman_filter = KalmanFilter(state="xyah" if kalman_state is None else kalman_state)
        elif kalman_state is not None and kalman_state != kalman_filter.state:
            raise ValueError(
                f"kalman_state={kalman_state!r} contradicts the given kalman_filter's state {kalman_filter.state!r}"
            )
        self.kalman_filter = kalman_filter
        self.nsa_kalman = nsa_kalman
        self.camera_motion = None if camera_motion is None else CameraMotion(camera_motion, camera_motion_downscale)
        self.class_aware = class_aware
        self.relative_thresholds = relative_thresholds
        self.reset()

    def reset(self) -> None:
        """Forget every track and start a new sequence: frame 0, next id 1."""
        self.frame_id = 0
        self.peak_score = 0.0
        self._next_id = 1
        self._embedding_dim: int | None = None  # fixed by the first frame with detections
        self._tracks = TrackTable.empty()
        self._warned_no_image = False
        # The smallest appearance distance seen between two different objects (tracks of one class
        # reported at one frame): how far apart this re-ID head puts objects that are not the same.
        self._distinct_floor = np.inf
        if self.camera_motion is not None:
            self.camera_motion.reset()

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
    def clear_match_thresh(self) -> float | None:
        """The appearance distance a clear re-identification must stay below now:
        ``strong_appearance_thresh``, lowered to half the smallest distance seen so far between two
        different objects of the sequence (a re-ID head that puts different objects close gets a
        stricter rule: the override then rarely fires, and FairMOT's gate decides); None when off."""
        if self.strong_appearance_thresh is None:
            return None
        return min(self.strong_appearance_thresh, 0.5 * self._distinct_floor)

    @property
    def track_states(self) -> dict[int, TrackState]:
        """State of every stored track (tentative, confirmed or lost) by id; removed ones are gone."""
        return {int(i): TrackState(s) for i, s in zip(self._tracks.ids, self._tracks.states)}

    def update(
        self,
        boxes: np.ndarray | torch.Tensor,
        scores: np.ndarray | torch.Tensor,
        embeddings: np.ndarray | torch.Tensor | None = None,
        *,
        classes: np.ndarray | torch.Tensor | None = None,
        image: np.ndarray | None = None,
        warp: np.ndarray | None = None,
    ) -> Tracks:
        """Advance one frame.

        Args:
            boxes: float ``[N, 4]`` XYXY pixels of this frame's detections (N may be 0). Boxes without
                positive width and height are skipped with a warning.
            scores: float ``[N]`` detection scores.
            embeddings: ``[N, D]`` re-ID embeddings (any scale; L2-normalised here) or ``None``. Within
                a sequence either every frame with detections has them (same D) or none has.
            classes: int ``[N]`` class indices, or None (one class). With ``class_aware`` a track
                only ever matches detections of its own class.
            image: the frame (``[H, W]`` or ``[H, W, 3]`` uint8), for ``camera_motion``.
            warp: ``[2, 3]`` the camera's motion from the previous frame to this one, if known
                (overrides the estimate from ``image``).

        Returns:
            The confirmed tracks matched at this frame (:class:`Tracks`, numpy arrays).

        Raises:
            ValueError: on wrong shapes, mismatched lengths, non-finite values, or embeddings that
                appear, disappear or change size within a sequence.
        """
        if not self.use_embeddings:
            embeddings = None
        detections = check_frame_detections(self.frame_id + 1, boxes, scores, embeddings, classes, self._embedding_dim)
        boxes, scores, embeddings, classes = detections
        warp = self._camera_warp(image, warp, boxes)  # before any state changes: it may raise
        if len(scores) and self._embedding_dim is None:
            self._embedding_dim = 0 if embeddings is None else embeddings.shape[1]
            self._tracks.features = np.empty((len(self._tracks), self._embedding_dim))
        self.frame_id += 1
        frame = self.frame_id
        tracks = self._tracks

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

        states = tracks.states
        was_lost = states == TrackState.LOST
        # With embeddings and the clear-match rule, lost tracks stay re-identifiable for reid_buffer:
        # past track_buffer they are dormant, back only by a clear appearance match.
        reidentifiable = bool(self._embedding_dim) and self.strong_appearance_thresh is not None
        dormant = was_lost & (frame - tracks.last_frames > self.max_time_lost) & reidentifiable
        pool = np.flatnonzero((states == TrackState.CONFIRMED) | was_lost)
        tentative = np.flatnonzero(states == TrackState.TENTATIVE)
        if len(pool):
            # Tentative tracks are not predicted (nor in the references): they have no velocity yet.
            mean = tracks.means[pool]
            # A lost box keeps its size (the references zero vh; BoT-SORT vw and vh).
            mean[np.ix_(was_lost[pool], self.kalman_filter.size_velocity_columns)] = 0.0
            tracks.means[pool], tracks.covariances[pool] = self.kalman_filter.predict(mean, tracks.covariances[pool])
        if warp is not None:
            self._apply_camera_warp(warp)
        track_boxes = self.kalman_filter.boxes(tracks.means)

        matched_tracks: list[np.ndarray] = []
        matched_detections: list[np.ndarray] = []

        def other_class(rows: np.ndarray, columns: np.ndarray) -> np.ndarray | bool:
            """[R, C] pairs a class-aware tracker never matches (False when class-agnostic)."""
            return self.class_aware and tracks.classes[rows][:, None] != classes[columns][None, :]

        def assign(rows: np.ndarray, columns: np.ndarray, cost: np.ndarray, thresh: float):
            if cost.size:  # association within each class
                cost[other_class(rows, columns)] = np.inf
            matches, rest_rows, rest_columns = linear_assignment(cost, thresh)
            matched_tracks.append(rows[matches[:, 0]])
            matched_detections.append(columns[matches[:, 1]])
            return rows[rest_rows], columns[rest_columns]

        # First association: high detections with confirmed and lost tracks.
        if self._embedding_dim:
            appearance = embedding_distance(tracks.features[pool], embeddings[high])
            if appearance.size:  # before the ratio test: look-alikes of other classes are no rivals
                appearance[other_class(pool, high)] = np.inf
            gating = self.kalman_filter.gating_distance(
                tracks.means[pool], tracks.covariances[pool], measurements[high]
            )
            cost = fuse_motion(
                appearance, gating, self.gating_threshold, self.appearance_weight, self.clear_match_thresh
            )
            if dormant.any() and cost.size:
                clear = clear_matches(appearance, self.clear_match_thresh)
                cost[dormant[pool][:, None] & ~clear] = np.inf
            rest, rest_high = assign(pool, high, cost, self.embedding_match_thresh)
            rest_lost = rest[(tracks.states[rest] == TrackState.LOST) & ~dormant[rest]]
            rest = rest[tracks.states[rest] == TrackState.CONFIRMED]
            cost = iou_distance(track_boxes[rest], boxes[rest_high])
            cost = self._direction_cost(cost, rest, rest_high, boxes, fusion_scores, self.iou_match_thresh)
            rest, rest_high = assign(rest, rest_high, cost, self.iou_match_thresh)
        else:
            cost = iou_distance(track_boxes[pool], boxes[high])
            if self.fuse_score:
                cost = fuse_score(cost, fusion_scores[high])
            cost = self._direction_cost(cost, pool, high, boxes, fusion_scores, self.motion_match_thresh)
            rest, rest_high = assign(pool, high, cost, self.motion_match_thresh)
            rest_lost = rest[tracks.states[rest] == TrackState.LOST]
            rest = rest[tracks.states[rest] == TrackState.CONFIRMED]

        # Second association (ByteTrack): low-score detections keep occluded tracks alive.
        rest, _ = assign(rest, low, iou_distance(track_boxes[rest], boxes[low]), self.low_score_match_thresh)

        # OC-SORT's observation-centric recovery: the tracks still unmatched, lost ones included,
        # against the high detections left, by IoU with each track's last observed box (where the
        # object was last seen, not where a drifting prediction puts it).
        if self.observation_recovery:
            candidates = np.concatenate((rest, rest_lost))
            cost = iou_distance(tracks.observed_boxes[candidates], boxes[rest_high])
            if self._embedding_dim:  # never recover a track onto an object that looks different
                appearance = embedding_distance(tracks.features[candidates], embeddings[rest_high])
                cost[appearance > self.embedding_match_thresh] = np.inf
            unrecovered, rest_high = assign(candidates, rest_high, cost, self.recovery_match_thresh)
            rest = unrecovered[tracks.states[unrecovered] == TrackState.CONFIRMED]
        newly_lost = rest

        # Tentative tracks: one more match confirms them, none removes them.
        cost = iou_distance(track_boxes[tentative], boxes[rest_high])
        if not self._embedding_dim and self.fuse_score:
            cost = fuse_score(cost, fusion_scores[rest_high])
        failed_tentative, rest_high = assign(tentative, rest_high, cost, self.unconfirmed_match_thresh)

        track_rows = np.concatenate(matched_tracks)
        detection_rows = np.concatenate(matched_detections)
        matched_detection = np.full(len(tracks), -1, dtype=np.int64)
        matched_detection[track_rows] = detection_rows
        self._apply_matches(track_rows, detection_rows, measurements, detections, fusion_scores)
        tracks.states[newly_lost] = TrackState.LOST

        limit = self.max_time_reid if reidentifiable else self.max_time_lost
        expired = was_lost & (tracks.states == TrackState.LOST) & (frame - tracks.last_frames > limit)
        keep = ~expired
        keep[failed_tentative] = False
        tracks.keep(keep)
        matched_detection = matched_detection[keep]

        new = rest_high[scores[rest_high] >= thresholds["new_track_thresh"]]
        self._start_tracks(new, measurements, detections)
        matched_detection = np.concatenate((matched_detection, new))

        dormant = (tracks.states == TrackState.LOST) & (frame - tracks.last_frames > self.max_time_lost)
        keep = self._duplicate_free(matched_detection >= 0, dormant & reidentifiable)
        tracks.keep(keep)
        matched_detection = matched_detection[keep]

        reported = (tracks.states == TrackState.CONFIRMED) & (matched_detection >= 0)
        if self._embedding_dim and reported.sum() > 1:
            self._note_distinct_objects(np.flatnonzero(reported))
        return Tracks(
            ids=tracks.ids[reported].copy(),
            boxes=self.kalman_filter.boxes(tracks.means[reported]).astype(np.float32),
            scores=tracks.scores[reported].astype(np.float32),
            classes=tracks.classes[reported].copy(),
            detection_indices=matched_detection[reported],
        )

    def _direction_cost(
        self,
        cost: np.ndarray,
        rows: np.ndarray,
        columns: np.ndarray,
        boxes: np.ndarray,
        scores: np.ndarray,
        thresh: float,
    ) -> np.ndarray:
        """``cost`` with OC-SORT's direction term when ``direction_weight`` is set (:func:`add_direction_cost`)."""
        if not self.direction_weight or cost.size == 0:
            return cost
        return add_direction_cost(
            cost, self._tracks, rows, boxes[columns], scores[columns], self.frame_id, self.direction_weight, thresh
        )

    def _note_distinct_objects(self, rows: np.ndarray) -> None:
        """Lower :attr:`_distinct_floor` to the smallest appearance distance between the tracks of
        ``rows`` (different objects, all reported at this frame) of one class."""
        tracks = self._tracks
        distances = embedding_distance(tracks.features[rows], tracks.features[rows])
        distances[np.eye(len(rows), dtype=bool)] = np.inf
        distances[tracks.classes[rows][:, None] != tracks.classes[rows][None, :]] = np.inf
        self._distinct_floor = min(self._distinct_floor, float(distances.min()))

    def _camera_warp(self, image: np.ndarray | None, warp: object, boxes: np.ndarray) -> np.ndarray | None:
        """This frame's camera motion ``[2, 3]``: the ``warp`` given (checked), else estimated from
        ``image`` with ``camera_motion`` (masking the detections' ``boxes``), else None."""
        if warp is not None:
            try:
                warp = np.asarray(warp, dtype=np.float64)
            except (TypeError, ValueError):
                warp = np.full(1, np.nan)  # not numbers: refused below with the others
            frame = self.frame_id + 1
            if warp.shape != (2, 3) or not np.isfinite(warp).all():
                raise ValueError(f"Tracker frame {frame}: warp must be a finite [2, 3] matrix, got {warp.tolist()}")
            if abs(np.linalg.det(warp[:, :2])) < 1e-6:  # it would collapse every track's box
                raise ValueError(f"Tracker frame {frame}: warp's 2x2 part is singular: {warp.tolist()}")
            return warp
        if self.camera_motion is None:
            return None
        if image is None:
            if not self._warned_no_image:
                log.warning("Tracker: camera_motion is set but update() got no image: no compensation")
                self._warned_no_image = True
            return None
        return self.camera_motion.estimate(image, boxes)

    def _apply_camera_warp(self, warp: np.ndarray) -> None:
        """Move every track's state, recent observations and direction by the camera's motion."""
        tracks, kalman = self._tracks, self.kalman_filter
        tracks.means, tracks.covariances = kalman.warp(tracks.means, tracks.covariances, warp)
        tracks.observed_means, tracks.observed_covariances = kalman.warp(
            tracks.observed_means, tracks.observed_covariances, warp
        )
        corners = tracks.recent_boxes.reshape(-1, 2) @ warp[:, :2].T + warp[:, 2]
        tracks.recent_boxes = corners.reshape(tracks.recent_boxes.shape)
        turned = tracks.directions @ warp[:, :2].T
        tracks.directions = turned / np.maximum(np.linalg.norm(turned, axis=1, keepdims=True), 1e-12)

    def _apply_matches(
        self,
        track_rows: np.ndarray,
        detection_rows: np.ndarray,
        measurements: np.ndarray,
        detections: FrameDetections,
        relative_scores: np.ndarray,
    ) -> None:
        """Kalman update, state, score and embedding of all matched tracks at once."""
        if len(track_rows) == 0:
            return
        tracks, kalman = self._tracks, self.kalman_filter
        if self.observation_reupdate:
            reupdate_over_gaps(tracks, kalman, track_rows, detections.boxes[detection_rows], self.frame_id)
        # NSA: the detector's own score, as StrongSORT (not the relative one, which is 1 at the peak)
        confidences = np.clip(detections.scores[detection_rows], 0.0, 1.0) if self.nsa_kalman else None
        tracks.means[track_rows], tracks.covariances[track_rows] = kalman.update(
            tracks.means[track_rows], tracks.covariances[track_rows], measurements[detection_rows], confidences
        )
        tracks.observed_means[track_rows] = tracks.means[track_rows]
        tracks.observed_covariances[track_rows] = tracks.covariances[track_rows]
        tracks.observe(track_rows, detections.boxes[detection_rows], self.frame_id)
        tracks.states[track_rows] = TrackState.CONFIRMED
        tracks.last_frames[track_rows] = self.frame_id
        tracks.scores[track_rows] = detections.scores[detection_rows]
        if self._embedding_dim:
            weight = np.full(len(track_rows), self.ema_alpha)  # of the old embedding
            if self.dynamic_appearance:
                # Deep OC-SORT's dynamic appearance: alpha_t = alpha + (1 - alpha) * (1 - (s - sigma) / (1 - sigma)),
                # sigma the detection threshold: a detection at the threshold (or a low-score match)
                # leaves the embedding as it was, a certain one updates it by the full 1 - alpha.
                sigma = min(self.high_thresh, 1.0 - 1e-6)
                trust = np.clip((relative_scores[detection_rows] - sigma) / (1.0 - sigma), 0.0, 1.0)
                weight = weight + (1.0 - weight) * (1.0 - trust)
            smoothed = weight[:, None] * tracks.features[track_rows]
            smoothed += (1.0 - weight[:, None]) * detections.embeddings[detection_rows]
            tracks.features[track_rows] = normalize_rows(smoothed)

    def _start_tracks(self, detection_rows: np.ndarray, measurements: np.ndarray, detections: FrameDetections) -> None:
        """Append one track per detection row; confirmed at once on a sequence's first frame."""
        count = len(detection_rows)
        if count == 0:
            return
        mean, covariance = self.kalman_filter.initiate(measurements[detection_rows])
        state = TrackState.CONFIRMED if self.frame_id == 1 else TrackState.TENTATIVE
        features = detections.embeddings[detection_rows] if self._embedding_dim else np.empty((count, 0))
        self._tracks.append(
            TrackTable(
                ids=np.arange(self._next_id, self._next_id + count),
                states=np.full(count, state, dtype=np.int8),
                classes=detections.classes[detection_rows],
                means=mean,
                covariances=covariance,
                observed_means=mean.copy(),
                observed_covariances=covariance.copy(),
                recent_boxes=np.repeat(detections.boxes[detection_rows][:, None], RECENT_OBSERVATIONS, axis=1),
                recent_frames=np.concatenate(
                    (np.zeros((count, RECENT_OBSERVATIONS - 1), np.int64), np.full((count, 1), self.frame_id)), axis=1
                ),
                directions=np.zeros((count, 2)),
                features=features,
                scores=detections.scores[detection_rows],
                start_frames=np.full(count, self.frame_id),
                last_frames=np.full(count, self.frame_id),
            )
        )
        self._next_id += count

    def _duplicate_free(self, matched_now: np.ndarray, dormant: np.ndarray) -> np.ndarray:
        """Keep-mask dropping one track of each pair that follows one object twice.

        FairMOT / ByteTrack: of a tracked and a lost track of one class whose boxes overlap with
        ``1 - IoU < 0.15``, the younger. With ``merge_thresh`` and embeddings, also a lost track whose
        embedding is within ``merge_thresh`` of a track matched this frame that started after it was
        last seen: the object came back as a new track, and the lost twin would otherwise trade the
        object with it whenever one of them matches better. Dormant tracks (lost past
        ``track_buffer``, ``dormant`` [T]) are left out of the overlap rule: their predictions have
        drifted.
        """
        tracks = self._tracks
        keep = np.ones(len(tracks), dtype=bool)
        tracked = np.flatnonzero(tracks.states != TrackState.LOST)
        lost = np.flatnonzero((tracks.states == TrackState.LOST) & ~dormant)
        if len(tracked) == 0 or len(lost) == 0:
            return keep
        same_class = tracks.classes[tracked][:, None] == tracks.classes[lost][None, :]
        boxes = self.kalman_filter.boxes(tracks.means)
        overlapping = (iou_distance(boxes[tracked], boxes[lost]) < DUPLICATE_IOU_DISTANCE) & same_class
        pairs_tracked, pairs_lost = np.nonzero(overlapping)
        first, second = tracked[pairs_tracked], lost[pairs_lost]
        ages = tracks.last_frames - tracks.start_frames
        tracked_older = ages[first] > ages[second]
        keep[second[tracked_older]] = False
        keep[first[~tracked_older]] = False
        if self.merge_thresh is not None and self._embedding_dim:
            active = np.flatnonzero((tracks.states == TrackState.CONFIRMED) & matched_now)
            twins = embedding_distance(tracks.features[lost], tracks.features[active]) < self.merge_thresh
            twins &= tracks.start_frames[active][None, :] > tracks.last_frames[lost][:, None]
            twins &= tracks.classes[lost][:, None] == tracks.classes[active][None, :]
            keep[lost[twins.any(axis=1)]] = False
        return keep
