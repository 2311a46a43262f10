"""The tracker's additions to FairMOT / ByteTrack: a clear appearance match overriding the motion gate,
confidence-weighted embedding updates, OC-SORT's recovery and re-update of lost tracks, twins merged,
NSA Kalman, camera-motion compensation, class-aware association, and the presets."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
import pytest

from centernet_lightning.tracking import (
    TRACKER_PRESETS,
    CameraMotion,
    KalmanFilter,
    Tracker,
    TrackState,
    fuse_motion,
    tracker_settings,
)
from centernet_lightning.tracking.observation_centric import add_direction_cost

WIDTH, HEIGHT = 40.0, 100.0


def box(cx: float, cy: float = 200.0) -> list[float]:
    return [cx - WIDTH / 2, cy - HEIGHT / 2, cx + WIDTH / 2, cy + HEIGHT / 2]


def unit(index: int, dimension: int = 8) -> np.ndarray:
    return np.eye(dimension)[[index]]


# --- appearance against motion ------------------------------------------------------------------


def test_a_clear_appearance_match_overrides_the_motion_gate_by_hand() -> None:
    appearance = np.array([[0.1, 0.9, 0.3], [0.8, 0.2, 0.9]])
    gating = np.array([[50.0, 50.0, 2.0], [50.0, 50.0, 50.0]])  # all but one far outside the 9.49 gate
    fused = fuse_motion(appearance, gating, 9.4877, 0.98, strong_appearance_thresh=0.25)
    # (0, 0) and (1, 1): below 0.25 and at most half the second best of their row and column, so
    # never gated and costing their appearance distance; (0, 2) inside the gate: 0.98 * 0.3 + 0.02 * 2
    np.testing.assert_allclose(fused, [[0.1, np.inf, 0.334], [np.inf, 0.2, np.inf]])
    np.testing.assert_allclose(fuse_motion(appearance, gating, 9.4877, 0.98)[0, 0], np.inf)
    # two detections that look alike (0.1 and 0.15): not a clear match, the gate stays
    alike = fuse_motion(np.array([[0.1, 0.15]]), np.array([[50.0, 50.0]]), 9.4877, 0.98, 0.25)
    np.testing.assert_allclose(alike, [[np.inf, np.inf]])


def test_the_same_object_far_away_keeps_its_identity_a_different_one_does_not() -> None:
    for embedding, expected in ((unit(0), [1]), (unit(1), [])):
        tracker = Tracker()
        for frame in range(5):
            tracker.update(np.array([box(100 + frame)]), np.array([0.9]), unit(0))
        # 400 px away (FairMOT's gate says no): the same embedding is the same object
        assert tracker.update(np.array([box(500)]), np.array([0.9]), embedding)["ids"].tolist() == expected


def test_a_re_id_head_that_puts_objects_close_gets_a_stricter_clear_match() -> None:
    """Two objects tracked side by side whose embeddings are 0.2 apart: a clear match must now be
    below 0.1, so the far jump of one of them at 0.15 is left to FairMOT's gate."""
    close = np.array([[1.0, 0.0], [0.8, 0.6]])  # cosine 0.8: distance 0.2
    tracker = Tracker()
    assert tracker.clear_match_thresh == 0.25
    for frame in range(5):
        tracker.update(np.array([box(100 + frame), box(300)]), np.array([0.9, 0.9]), close)
    assert tracker.clear_match_thresh == pytest.approx(0.1)
    jump = np.array([[np.cos(-0.55), np.sin(-0.55)]])  # 0.15 from the first object, 0.63 from the second
    assert tracker.update(np.array([box(700)]), np.array([0.9]), jump)["ids"].tolist() == []
    loose = Tracker()  # the same jump where the objects' embeddings are far apart: re-identified
    for frame in range(5):
        loose.update(np.array([box(100 + frame), box(300)]), np.array([0.9, 0.9]), np.array([[1.0, 0.0], [-0.6, 0.8]]))
    assert loose.update(np.array([box(700)]), np.array([0.9]), jump)["ids"].tolist() == [1]


def test_dynamic_appearance_weighs_the_embedding_update_by_the_score() -> None:
    # Deep OC-SORT: alpha_t = 0.9 + 0.1 * (1 - (0.7 - 0.4) / 0.6) = 0.95 of the old embedding
    tracker = Tracker(ema_alpha=0.9, high_thresh=0.4, low_thresh=0.1)
    tracker.update(np.array([box(100)]), np.array([0.9]), np.array([[1.0, 0.0]]))
    tracker.update(np.array([box(101)]), np.array([0.7]), np.array([[0.0, 1.0]]))
    np.testing.assert_allclose(tracker._tracks.features, [[0.95, 0.05] / np.hypot(0.95, 0.05)])
    # a low-score match (the second stage) keeps the embedding as it was
    before = tracker._tracks.features.copy()
    assert tracker.update(np.array([box(102)]), np.array([0.2]), np.array([[0.0, 1.0]]))["ids"].tolist() == [1]
    np.testing.assert_allclose(tracker._tracks.features, before)


def test_a_lost_twin_sharing_the_identity_is_merged_away() -> None:
    # FairMOT's strict gate makes the object come back as track 2 after a jump; the lost track 1
    # carries the same embedding and is removed once track 2 is confirmed, instead of trading
    settings = {**tracker_settings("fairmot"), "merge_thresh": 0.15}
    tracker = Tracker(**settings)
    for frame in range(5):
        tracker.update(np.array([box(100 + frame)]), np.array([0.9]), unit(0))
    tracker.update(np.array([box(500)]), np.array([0.9]), unit(0))
    assert tracker.track_states == {1: TrackState.LOST, 2: TrackState.TENTATIVE}
    assert tracker.update(np.array([box(501)]), np.array([0.9]), unit(0))["ids"].tolist() == [2]
    assert tracker.track_states == {2: TrackState.CONFIRMED}
    without = Tracker(**{**settings, "merge_thresh": None})
    for frame in range(5):
        without.update(np.array([box(100 + frame)]), np.array([0.9]), unit(0))
    without.update(np.array([box(500)]), np.array([0.9]), unit(0))
    without.update(np.array([box(501)]), np.array([0.9]), unit(0))
    assert without.track_states == {1: TrackState.LOST, 2: TrackState.CONFIRMED}


def test_a_lost_track_is_re_identified_by_appearance_for_the_reid_buffer() -> None:
    """Past track_buffer (5 frames here) a lost track is dormant: a clear appearance match brings
    it back wherever the object reappears, nothing else does, and past reid_buffer it is gone."""

    def run(gap: int, embedding: np.ndarray, **settings) -> list[int]:
        tracker = Tracker(**{"track_buffer": 5, "reid_buffer": 20, **settings})
        for frame in range(3):
            tracker.update(np.array([box(100 + frame)]), np.array([0.9]), unit(0))
        for _ in range(gap):
            tracker.update(np.empty((0, 4)), np.empty(0), np.empty((0, 8)))
        return tracker.update(np.array([box(600)]), np.array([0.9]), embedding)["ids"].tolist()

    assert run(10, unit(0)) == [1]  # dormant, re-identified 500 px away
    assert run(10, unit(1)) == []  # another object: a new (tentative) track
    assert run(25, unit(0)) == []  # past reid_buffer: removed
    assert run(10, unit(0), reid_buffer=0) == []  # FairMOT's: removed after track_buffer
    assert run(10, unit(0), strong_appearance_thresh=None) == []  # no clear-match rule, no dormancy


# --- lost tracks --------------------------------------------------------------------------------


def stop_and_go(tracker: Tracker) -> list[list[int]]:
    """An object walks right at 15 px/frame, is hidden 2 frames while it stops, and reappears
    where it was last seen: the Kalman prediction has run 45 px ahead, past IoU 0.2."""
    reported = []
    for frame in range(16):
        if frame < 10:
            boxes = np.array([box(100 + 15 * frame)])
        elif frame < 16 - 4:
            boxes = np.empty((0, 4))
        else:
            boxes = np.array([box(100 + 15 * 9)])
        reported.append(tracker.update(boxes, np.full(len(boxes), 0.9))["ids"].tolist())
    return reported


def test_observation_recovery_brings_a_lost_track_back_from_its_last_observation() -> None:
    assert stop_and_go(Tracker())[-1] == [1]  # OC-SORT's recovery
    assert stop_and_go(Tracker(**tracker_settings("bytetrack")))[-1] == [2]  # ByteTrack starts over


def test_reupdate_equals_filtering_the_virtual_path() -> None:
    """OC-SORT's re-update: a track found again 6 frames after its last detection ends in the state
    of a track that saw the straight path between the two detections (the object turned back
    while hidden, so the plain prediction ran the wrong way; the recovery stage finds it)."""
    seen = [box(100 + 5 * frame) for frame in range(10)]
    found = box(100 + 5 * 9 - 15)  # 6 frames later, 15 px back
    path = [np.array(seen[-1]) + (np.array(found) - seen[-1]) * step / 6 for step in range(1, 6)]

    def final_state(tracker: Tracker, hidden: list) -> np.ndarray:
        for boxes in [[b] for b in seen] + hidden + [[found]]:
            tracker.update(np.array(boxes).reshape(-1, 4), np.full(len(boxes), 0.9))
        assert tracker.track_states == {1: TrackState.CONFIRMED}
        return tracker._tracks.means[0]

    reupdated = final_state(Tracker(observation_reupdate=True), [[]] * 5)
    virtual = final_state(Tracker(observation_reupdate=False), [[b] for b in path])
    predicted_only = final_state(Tracker(observation_reupdate=False), [[]] * 5)
    np.testing.assert_allclose(reupdated, virtual)
    assert reupdated[4] < predicted_only[4]  # slower to the right: it turned back while hidden


def test_direction_term_by_hand() -> None:
    """OC-SORT's momentum: a track walking right at 10 px/frame; a detection straight ahead gains
    0.2 * 0.5 * score, one straight behind loses 0.2 * 0.5 * score, a pair past the IoU threshold
    stays unmatched."""
    tracker = Tracker(direction_weight=0.2)
    for frame in range(4):  # frames 1-4
        tracker.update(np.array([box(100 + 10 * frame)]), np.array([0.9]))
    np.testing.assert_allclose(tracker._tracks.directions, [[1.0, 0.0]], atol=1e-6)
    reference, known = tracker._tracks.reference_boxes(np.array([0]), 5)  # frame 2's box: 3 frames back
    np.testing.assert_allclose(reference, [box(110)])
    assert known.all()
    detections = np.array([box(140), box(60)])
    cost = add_direction_cost(
        np.array([[0.3, 0.3]]), tracker._tracks, np.array([0]), detections, [1.0, 0.5], 5, 0.2, 0.8
    )
    np.testing.assert_allclose(cost, [[0.3 - 0.1, 0.3 + 0.05]], atol=1e-4)  # OC-SORT's 1e-6 in the norm
    cost = add_direction_cost(
        np.array([[0.9, 0.3]]), tracker._tracks, np.array([0]), detections, [1.0, 0.5], 5, 0.2, 0.8
    )
    assert cost[0, 0] == np.inf
    # behind the track, near the threshold: raised, but never past it (its IoU passed)
    cost = add_direction_cost(np.array([[0.78]]), tracker._tracks, np.array([0]), detections[1:], [1.0], 5, 0.2, 0.8)
    assert 0.78 < cost[0, 0] < 0.8
    # a track that stopped has no direction any more (OC-SORT's speed_direction of no motion)
    for _ in range(4):
        tracker.update(np.array([box(130)]), np.array([0.9]))
    np.testing.assert_allclose(tracker._tracks.directions, [[0.0, 0.0]], atol=1e-6)


# --- Kalman filter ------------------------------------------------------------------------------


def test_nsa_kalman_trusts_confident_detections() -> None:
    kalman = KalmanFilter()
    mean, covariance = kalman.initiate(np.array([[100.0, 200.0, 0.4, 100.0]]))
    measurement = np.array([[110.0, 190.0, 0.4, 100.0]])
    certain, _ = kalman.update(mean, covariance, measurement, confidences=np.array([1.0]))
    np.testing.assert_allclose(certain[0, :4], measurement[0])  # no observation noise left
    unweighted, _ = kalman.update(mean, covariance, measurement)
    np.testing.assert_allclose(kalman.update(mean, covariance, measurement, np.array([0.0]))[0], unweighted)
    half, _ = kalman.update(mean, covariance, measurement, np.array([0.5]))
    assert unweighted[0, 0] < half[0, 0] < certain[0, 0]


@pytest.mark.parametrize("state", ["xyah", "xywh"])
def test_warp_moves_states_with_the_camera(state: str) -> None:
    kalman = KalmanFilter(state=state)
    mean = np.array([[100.0, 50.0, 0.5 if state == "xyah" else 20.0, 40.0, 3.0, 0.0, 0.0, 1.0]])
    covariance = np.eye(8)[None]
    shifted, shifted_covariance = kalman.warp(mean, covariance, np.array([[1.0, 0, 7], [0, 1.0, -4]]))
    np.testing.assert_allclose(shifted, mean + [[7, -4, 0, 0, 0, 0, 0, 0]])
    np.testing.assert_allclose(shifted_covariance, covariance)
    # a quarter turn and a zoom of 2: centre and velocity turn, the box doubles
    turned, _ = kalman.warp(mean, covariance, np.array([[0.0, -2.0, 0], [2.0, 0.0, 0]]))
    np.testing.assert_allclose(turned[0, [0, 1, 4, 5]], [-100.0, 200.0, 0.0, 6.0])
    if state == "xyah":
        np.testing.assert_allclose(turned[0, [2, 3, 7]], [0.5, 80.0, 2.0])
    else:  # BoT-SORT turns the (w, h) pair and its velocity like a vector: kron(I4, A)
        np.testing.assert_allclose(turned[0, [2, 3, 6, 7]], [-80.0, 40.0, -2.0, 0.0])


# --- camera motion ------------------------------------------------------------------------------


def texture(seed: int = 0, size: tuple[int, int] = (600, 900)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    noise = rng.uniform(0, 255, size).astype(np.float32)
    return cv2.GaussianBlur(noise, (0, 0), 3).astype(np.uint8)


@pytest.mark.parametrize("method", ["sparse_flow", "ecc"])
def test_camera_motion_measures_a_pan(method: str) -> None:
    world = cv2.normalize(texture(), None, 0, 255, cv2.NORM_MINMAX)
    estimator = CameraMotion(method)
    np.testing.assert_allclose(estimator.estimate(world[100:460, 100:740]), np.eye(2, 3))  # the first frame
    # the camera moves 12 px right and 5 px down: the scene moves 12 px left and 5 px up
    warp = estimator.estimate(world[105:465, 112:752])
    np.testing.assert_allclose(warp, [[1, 0, -12], [0, 1, -5]], atol=0.3)


def test_camera_motion_keeps_tracks_through_a_jerky_pan() -> None:
    """A parked object filmed by a camera that jumps 50 px between two frames: IoU alone loses it,
    the compensated prediction keeps it."""
    world = cv2.normalize(texture(1), None, 0, 255, cv2.NORM_MINMAX)
    offsets = [0, 2, 4, 6, 56, 58, 60]  # camera x position per frame

    def run(camera_motion: str | None) -> list[list[int]]:
        tracker = Tracker(camera_motion=camera_motion, observation_recovery=False)
        reported = []
        for offset in offsets:
            image = world[100:460, 100 + offset : 740 + offset]
            boxes = np.array([box(300 - offset)])
            reported.append(tracker.update(boxes, np.array([0.9]), image=image)["ids"].tolist())
        return reported

    assert run("sparse_flow") == [[1]] * len(offsets)
    assert run(None)[4] == []  # the jump breaks the IoU match


# --- classes ------------------------------------------------------------------------------------


def test_each_class_is_tracked_on_its_own() -> None:
    tracker = Tracker()
    first = tracker.update(np.array([box(100), box(300)]), np.array([0.9, 0.9]), classes=np.array([0, 1]))
    assert first["classes"].tolist() == [0, 1]
    # the class-1 object steps onto the class-0 track's box: it must not take it
    second = tracker.update(np.array([box(102)]), np.array([0.9]), classes=np.array([1]))
    assert second["ids"].tolist() == []
    agnostic = Tracker(class_aware=False)
    agnostic.update(np.array([box(100), box(300)]), np.array([0.9, 0.9]), classes=np.array([0, 1]))
    assert agnostic.update(np.array([box(102)]), np.array([0.9]), classes=np.array([1]))["ids"].tolist() == [1]


def test_a_look_alike_of_another_class_does_not_spoil_a_clear_match() -> None:
    tracker = Tracker()
    for frame in range(5):
        tracker.update(np.array([box(100 + frame)]), np.array([0.9]), unit(0), classes=[0])
    embeddings = np.concatenate((unit(0), unit(0) + 0.01))  # the class-1 object looks the same
    tracks = tracker.update(np.array([box(500), box(800)]), np.array([0.9, 0.9]), embeddings, classes=[0, 1])
    assert tracks["ids"].tolist() == [1] and tracks["classes"].tolist() == [0]


@pytest.mark.parametrize(
    ("image", "message"),
    [
        (np.zeros((3, 64, 64)), r"an \[H, W\] or \[H, W, 3\] image, got shape \[3, 64, 64\]"),
        (np.array([["a"]]), "a numeric image"),
    ],
)
def test_camera_motion_names_a_bad_image(image: np.ndarray, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        CameraMotion().estimate(image)


def test_camera_motion_takes_float_frames() -> None:
    world = cv2.normalize(texture(), None, 0, 255, cv2.NORM_MINMAX)
    estimator = CameraMotion()
    estimator.estimate(world[100:460, 100:740].astype(np.float64) / 255)  # [0, 1] floats, 1 channel
    frame = np.repeat(world[105:465, 112:752, None], 3, axis=2).astype(np.float64)  # [0, 255], 3 channels
    np.testing.assert_allclose(estimator.estimate(frame), [[1, 0, -12], [0, 1, -5]], atol=0.3)


def test_bad_classes_and_warps_are_named() -> None:
    tracker = Tracker()
    with pytest.raises(ValueError, match=r"classes must have shape \[2\]"):
        tracker.update(np.array([box(1), box(2)]), np.array([0.9, 0.9]), classes=[0])
    with pytest.raises(ValueError, match="classes must be whole numbers"):
        tracker.update(np.array([box(1)]), np.array([0.9]), classes=[0.5])
    with pytest.raises(ValueError, match=r"warp must be a finite \[2, 3\] matrix"):
        tracker.update(np.array([box(1)]), np.array([0.9]), warp=np.eye(3))
    assert tracker.frame_id == 0 and tracker.track_states == {}  # a refused frame changes nothing
    with pytest.raises(ValueError, match="warp's 2x2 part is singular"):
        tracker.update(np.array([box(1)]), np.array([0.9]), warp=np.zeros((2, 3)))
    with pytest.raises(ValueError, match=r"warp must be a finite \[2, 3\] matrix"):
        tracker.update(np.array([box(1)]), np.array([0.9]), warp="abc")
    with pytest.raises(ValueError, match=r"scores\[1\] is 1.5, not a probability in \[0, 1\]"):
        tracker.update(np.array([box(1), box(2)]), np.array([0.9, 1.5]))
    with pytest.raises(ValueError, match="camera_motion must be None or one of sparse_flow, ecc"):
        Tracker(camera_motion="orb")


# --- presets ------------------------------------------------------------------------------------


@pytest.mark.parametrize("name", TRACKER_PRESETS)
def test_every_preset_builds_a_tracker(name: str) -> None:
    tracker = Tracker(**tracker_settings(name))
    assert tracker.update(np.array([box(100)]), np.array([0.9]))["ids"].tolist() == [1]


def test_presets_files_and_overrides(tmp_path: Path) -> None:
    assert tracker_settings("bytetrack")["use_embeddings"] is False
    assert tracker_settings("botsort", ["high_thresh=0.5", "camera_motion=ecc"]) == {
        **tracker_settings("botsort"),
        "high_thresh": 0.5,
        "camera_motion": "ecc",
    }
    settings_file = tmp_path / "mine.yaml"
    settings_file.write_text("track_buffer: 60\nkalman_state: xywh\n")
    assert tracker_settings(settings_file, {"low_thresh": 0.2}) == {
        "track_buffer": 60,
        "kalman_state": "xywh",
        "low_thresh": 0.2,
    }
    with pytest.raises(ValueError, match="unknown tracker preset 'deepsort'; presets: default, bytetrack"):
        tracker_settings("deepsort")
    with pytest.raises(FileNotFoundError, match="missing.yaml does not exist"):
        tracker_settings(tmp_path / "missing.yaml")
    settings_file.write_text("track_bufer: 60\n")
    with pytest.raises(ValueError, match=r"mine\.yaml.*track_bufer"):
        tracker_settings(settings_file)
    settings_file.write_text("- a list\n")
    with pytest.raises(ValueError, match=r"mine\.yaml: a tracker settings file holds KEY: VALUE lines"):
        tracker_settings(settings_file)
    with pytest.raises(ValueError, match="track_buffer must be"):
        tracker_settings("default", ["track_buffer=many"])
    settings_file.write_text("high_thresh: abc\n")  # the wrong type, named with its file when read
    with pytest.raises(ValueError, match=r"mine\.yaml: high_thresh must be a number"):
        tracker_settings(settings_file)
    with pytest.raises(TypeError, match="overrides must be a list of KEY=VALUE texts"):
        tracker_settings("botsort", "high_thresh=0.5")
