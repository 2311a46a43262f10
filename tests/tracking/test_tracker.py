"""The tracker on small hand-built scenes, its matching step, and its input checks."""

from __future__ import annotations

import itertools
import logging

import numpy as np
import pytest
import torch
from torchvision.ops import box_iou

from centernet_lightning.tracking import KalmanFilter, Tracker, TrackState, linear_assignment, tracker_settings
from centernet_lightning.tracking.matching import fuse_motion, iou_distance

WIDTH, HEIGHT = 40.0, 100.0  # box size of every object, pixels


def box(cx: float, cy: float = 200.0) -> list[float]:
    return [cx - WIDTH / 2, cy - HEIGHT / 2, cx + WIDTH / 2, cy + HEIGHT / 2]


def embedding_pair(dimension: int = 16, noise: float = 0.1, seed: int = 0):
    """Two distinct appearances and a sampler of noisy observations of them."""
    rng = np.random.default_rng(seed)
    prototypes = np.eye(dimension)[:2]

    def observe(*objects: int) -> np.ndarray:
        return prototypes[list(objects)] + rng.normal(0, noise, (len(objects), dimension))

    return observe


def identities(reported: list[dict], objects_per_frame: list[list[int]]) -> dict[int, set[int]]:
    """Track ids each ground-truth object was reported under (via the detection rows)."""
    ids: dict[int, set[int]] = {}
    for tracks, objects in zip(reported, objects_per_frame):
        for track_id, row in zip(tracks["ids"], tracks["detection_indices"]):
            ids.setdefault(objects[row], set()).add(int(track_id))
    return ids


def crossing_frames(bounce: bool, frames: int = 50, speed: float = 4.0):
    """Objects 0 and 1 walk towards each other, overlap fully at frame 25, then go on (or bounce back)."""
    for frame in range(frames):
        step = frame if not bounce or frame <= 25 else 50 - frame
        yield [box(100 + speed * step), box(300 - speed * step)]


# --- matching ---------------------------------------------------------------------------------


def test_linear_assignment_follows_lapjv_cost_limit_not_hungarian_then_threshold() -> None:
    # Hungarian alone pairs (0, 1) + (1, 0) = 0.97 < 1.0, both under 0.5; with a cost limit two
    # weak matches (gain 0.01 + 0.02) lose to one strong one (gain 0.4), as lap.lapjv(cost_limit=0.5).
    cost = np.array([[0.1, 0.49], [0.48, 0.9]])
    matches, rows, cols = linear_assignment(cost, 0.5)
    np.testing.assert_array_equal(matches, [[0, 0]])
    np.testing.assert_array_equal(rows, [1])
    np.testing.assert_array_equal(cols, [1])


def test_linear_assignment_is_the_optimal_thresholded_matching() -> None:
    rng = np.random.default_rng(0)
    for trial in range(60):
        cost = rng.uniform(0, 1, (3, 4))
        cost[rng.uniform(size=cost.shape) < (0.2 if trial % 2 else 0.6)] = np.inf  # dense and sparse
        matches, rows, cols = linear_assignment(cost, 0.6)
        best = 0.0  # brute force over every partial matching: maximise sum(thresh - cost)
        for size in range(1, 4):
            for chosen_rows in itertools.combinations(range(3), size):
                for chosen_cols in itertools.permutations(range(4), size):
                    pairs = cost[list(chosen_rows), list(chosen_cols)]
                    if (pairs < 0.6).all():
                        best = max(best, float((0.6 - pairs).sum()))
        gain = float((0.6 - cost[matches[:, 0], matches[:, 1]]).sum()) if len(matches) else 0.0
        assert gain == pytest.approx(best)
        assert sorted([*matches[:, 0], *rows]) == [0, 1, 2]
        assert sorted([*matches[:, 1], *cols]) == [0, 1, 2, 3]


def test_linear_assignment_empty_and_all_infeasible() -> None:
    matches, rows, cols = linear_assignment(np.empty((0, 3)), 0.5)
    assert matches.shape == (0, 2) and len(rows) == 0 and list(cols) == [0, 1, 2]
    matches, rows, cols = linear_assignment(np.full((2, 2), np.inf), 0.5)
    assert matches.shape == (0, 2) and list(rows) == [0, 1] and list(cols) == [0, 1]


def test_fuse_motion_and_iou_distance_by_hand() -> None:
    fused = fuse_motion(np.array([[0.5, 0.5]]), np.array([[5.0, 10.0]]), 9.4877, 0.98)
    np.testing.assert_allclose(fused, [[0.98 * 0.5 + 0.02 * 5, np.inf]])
    # two 10x10 boxes overlapping by half: IoU 50 / 150
    distance = iou_distance(np.array([[0.0, 0, 10, 10]]), np.array([[5.0, 0, 15, 10], [20, 20, 30, 30]]))
    np.testing.assert_allclose(distance, [[1 - 1 / 3, 1.0]], rtol=1e-6)


def test_iou_distance_equals_torchvision() -> None:
    rng = np.random.default_rng(0)
    corners = rng.uniform(0, 500, (2, 30, 2))
    sizes = rng.uniform(0, 80, (2, 30, 2))
    sizes[0, :3] = 0  # zero-area boxes overlap nothing
    boxes_a, boxes_b = (np.concatenate((c, c + s), axis=1) for c, s in zip(corners, sizes))
    expected = torch.nan_to_num(box_iou(torch.from_numpy(boxes_a), torch.from_numpy(boxes_b)), nan=0.0).numpy()
    np.testing.assert_allclose(iou_distance(boxes_a, boxes_b), 1 - expected, atol=1e-6)
    assert (iou_distance(boxes_a, boxes_b)[:3] == 1).all()


# --- life cycle and association ------------------------------------------------------------


def test_crossing_objects_with_distinct_embeddings_keep_their_identities() -> None:
    observe = embedding_pair()
    tracker = Tracker()
    reported = [
        tracker.update(np.array(boxes), np.array([0.9, 0.9]), observe(0, 1)) for boxes in crossing_frames(False)
    ]
    ids = identities(reported, [[0, 1]] * 50)
    assert ids == {0: {1}, 1: {2}}
    assert all(len(tracks["ids"]) == 2 for tracks in reported)


def test_embeddings_not_motion_decide_when_objects_bounce_back() -> None:
    observe = embedding_pair(seed=1)
    frames = list(crossing_frames(True))
    with_embeddings = Tracker()
    reported = [with_embeddings.update(np.array(boxes), np.array([0.9, 0.9]), observe(0, 1)) for boxes in frames]
    assert identities(reported, [[0, 1]] * 50) == {0: {1}, 1: {2}}
    # The motion model alone expects them to pass through each other: ids swap. This is what the
    # appearance stage above prevents.
    motion_only = Tracker()
    reported = [motion_only.update(np.array(boxes), np.array([0.9, 0.9])) for boxes in frames]
    assert identities(reported, [[0, 1]] * 50) == {0: {1, 2}, 1: {1, 2}}


@pytest.mark.parametrize("use_embeddings", [True, False])
def test_track_survives_a_short_occlusion_and_is_not_reported_during_it(use_embeddings: bool) -> None:
    observe = embedding_pair(seed=2)
    tracker = Tracker()
    for frame in range(30):
        hidden = 10 <= frame < 15
        boxes = np.array([box(100 + 5 * frame)]) if not hidden else np.empty((0, 4))
        embeddings = (observe(0) if not hidden else np.empty((0, 16))) if use_embeddings else None
        tracks = tracker.update(boxes, np.full(len(boxes), 0.9), embeddings)
        if hidden:
            assert len(tracks["ids"]) == 0
            assert tracker.track_states == {1: TrackState.LOST}
        else:
            assert tracks["ids"].tolist() == [1]


def test_lost_track_is_removed_after_the_track_buffer() -> None:
    tracker = Tracker(track_buffer=3)
    for frame in range(12):
        boxes = np.array([box(100 + 2 * frame)]) if not 3 <= frame < 8 else np.empty((0, 4))
        tracks = tracker.update(boxes, np.full(len(boxes), 0.9))
        if frame == 6:  # lost at frame 3, last matched at frame 2: removed once 4 frames passed
            assert tracker.track_states == {}
    # the object comes back as a new track: tentative at its first frame, confirmed at the second
    assert tracks["ids"].tolist() == [2]


def test_low_score_stage_recovers_a_detection() -> None:
    scores = [0.9] * 5 + [0.2] * 3 + [0.9] * 2

    def run(tracker: Tracker) -> list[list[int]]:
        return [
            tracker.update(np.array([box(100 + 3 * f)]), np.array([s]))["ids"].tolist() for f, s in enumerate(scores)
        ]

    assert run(Tracker()) == [[1]] * 10  # 0.2 is above low_thresh 0.1: the second association keeps it
    tracker = Tracker()
    run(tracker)
    assert tracker.update(np.array([box(130)]), np.array([0.2]))["scores"].tolist() == pytest.approx([0.2])
    # without the second stage the track is lost while the score is low, and found again after
    assert run(Tracker(low_thresh=0.3)) == [[1]] * 5 + [[]] * 3 + [[1]] * 2


def test_low_score_detections_never_start_tracks() -> None:
    tracker = Tracker()
    for frame in range(3):
        assert len(tracker.update(np.array([box(100 + frame)]), np.array([0.3]))["ids"]) == 0
    assert tracker.track_states == {}


def test_without_embeddings_tracks_by_iou_and_motion_with_tentative_tracks() -> None:
    tracker = Tracker()
    first = tracker.update(np.array([box(100), box(300)]), np.array([0.9, 0.8]))
    # the first frame confirms at once and reports the detections' own boxes and scores
    assert first["ids"].tolist() == [1, 2]
    np.testing.assert_allclose(first["boxes"], [box(100), box(300)])
    np.testing.assert_allclose(first["scores"], [0.9, 0.8])
    # frame 2: a third object appears; it is tentative (not reported); a 1-frame false positive too
    second = tracker.update(np.array([box(305), box(500), box(105), box(100, 600)]), np.array([0.85, 0.95, 0.7, 0.6]))
    assert second["ids"].tolist() == [1, 2]
    assert second["detection_indices"].tolist() == [2, 0]
    np.testing.assert_allclose(second["scores"], [0.7, 0.85])
    assert tracker.track_states == {1: 1, 2: 1, 3: TrackState.TENTATIVE, 4: TrackState.TENTATIVE}
    # frame 3: the third object is matched again and confirmed; the false positive is gone
    third = tracker.update(np.array([box(110), box(310), box(505)]), np.array([0.9, 0.9, 0.9]))
    assert third["ids"].tolist() == [1, 2, 3]
    assert set(tracker.track_states) == {1, 2, 3}
    # boxes follow the detections (Kalman-filtered, so within a few pixels)
    np.testing.assert_allclose(third["boxes"], [box(110), box(310), box(505)], atol=3)


def test_fairmots_motion_gate_stops_a_far_jump_despite_the_same_embedding() -> None:
    observe = embedding_pair(seed=3)
    tracker = Tracker(**tracker_settings("fairmot"))
    for frame in range(5):
        tracker.update(np.array([box(100 + frame)]), np.array([0.9]), observe(0))
    # same appearance 400 px away: outside the chi-square gate, so not track 1
    tracks = tracker.update(np.array([box(500)]), np.array([0.9]), observe(0))
    assert len(tracks["ids"]) == 0
    assert tracker.track_states == {1: TrackState.LOST, 2: TrackState.TENTATIVE}


def test_lost_track_returns_only_by_appearance() -> None:
    observe = embedding_pair(seed=5)
    tracker = Tracker()
    for frame in range(5):
        tracker.update(np.array([box(100 + frame)]), np.array([0.9]), observe(0))
    tracker.update(np.zeros((0, 4)), np.zeros(0), np.zeros((0, 16)))
    # another object where track 1 is predicted: IoU alone would take it (FairMOT's IoU stage only
    # serves confirmed tracks), and its new track duplicates the older lost one, so it is dropped
    tracks = tracker.update(np.array([box(106)]), np.array([0.9]), observe(1))
    assert len(tracks["ids"]) == 0
    assert tracker.track_states == {1: TrackState.LOST}
    # the object itself comes back
    assert tracker.update(np.array([box(107)]), np.array([0.9]), observe(0))["ids"].tolist() == [1]


def test_embeddings_are_smoothed_by_ema() -> None:
    tracker = Tracker(ema_alpha=0.9, dynamic_appearance=False)
    first, second = np.array([[3.0, 0.0]]), np.array([[0.0, 2.0]])  # any scale: normalised on input
    tracker.update(np.array([box(100)]), np.array([0.9]), first)
    tracker.update(np.array([box(101)]), np.array([0.9]), second)
    np.testing.assert_allclose(tracker._tracks.features, [[0.9, 0.1] / np.hypot(0.9, 0.1)])


def test_reset_restarts_ids_and_frames() -> None:
    tracker = Tracker()
    for frame in range(3):
        tracker.update(np.array([box(100 + frame), box(300)]), np.array([0.9, 0.9]), np.eye(2))
    tracker.reset()
    assert tracker.frame_id == 0 and tracker.track_states == {}
    # a new sequence may use embeddings differently
    tracks = tracker.update(np.array([box(700)]), np.array([0.9]))
    assert tracks["ids"].tolist() == [1]


def test_empty_frames() -> None:
    tracker = Tracker()
    tracks = tracker.update(np.zeros((0, 4)), np.zeros(0))
    assert tracks["ids"].dtype == np.int64 and tracks["ids"].shape == (0,)
    assert tracks["boxes"].dtype == np.float32 and tracks["boxes"].shape == (0, 4)
    assert tracks["scores"].shape == (0,) and tracks["detection_indices"].shape == (0,)
    tracker.update(np.array([box(100)]), np.array([0.9]), np.ones((1, 8)))
    tracker.update(np.array([box(100)]), np.array([0.9]), np.ones((1, 8)))
    # an empty frame may leave out embeddings, or pass [] as boxes
    assert len(tracker.update([], [])["ids"]) == 0
    assert len(tracker.update(np.zeros((0, 4)), np.zeros(0), np.zeros((0, 8)))["ids"]) == 0
    assert tracker.update(np.array([box(100)]), np.array([0.9]), np.ones((1, 8)))["ids"].tolist() == [1]


def test_tensors_give_the_same_tracks_as_numpy() -> None:
    observe = embedding_pair(seed=4)
    frames = [(np.array(boxes), np.array([0.9, 0.8]), observe(0, 1)) for boxes in crossing_frames(False, 10)]
    numpy_tracker, torch_tracker = Tracker(), Tracker()
    for boxes, scores, embeddings in frames:
        expected = numpy_tracker.update(boxes, scores, embeddings)
        got = torch_tracker.update(
            torch.from_numpy(boxes).float(), torch.from_numpy(scores).float(), torch.from_numpy(embeddings).float()
        )
        assert got["ids"].tolist() == expected["ids"].tolist()
        np.testing.assert_allclose(got["boxes"], expected["boxes"], atol=1e-3)


# --- bad input --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("boxes", "scores", "embeddings", "message"),
    [
        (np.zeros((2, 5)), np.zeros(2), None, r"boxes must have shape \[N, 4\]"),
        (np.zeros(4), np.zeros(1), None, r"boxes must have shape \[N, 4\]"),
        (np.array([box(1), box(2)]), np.zeros(3), None, r"scores must have shape \[2\]"),
        (np.array([box(1), box(2)]), np.zeros((2, 1)), None, r"scores must have shape \[2\]"),
        (np.array([box(1), [np.nan, 0, 1, 1]]), np.zeros(2), None, r"boxes\[1\] is not finite"),
        (np.array([box(1)]), np.array([np.inf]), None, r"scores\[0\] is not finite"),
        (np.array([box(1)]), np.ones(1), np.ones((2, 4)), r"embeddings must have shape \[1, D\]"),
        (np.array([box(1)]), np.ones(1), np.ones(4), r"embeddings must have shape \[1, D\]"),
        (np.array([box(1)]), np.ones(1), np.array([[0.0, np.nan]]), r"embeddings\[0\] is not finite"),
        (np.array([box(1)]), "high", None, "scores must be a numeric array"),
    ],
)
def test_bad_input_names_the_culprit(boxes, scores, embeddings, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        Tracker().update(boxes, scores, embeddings)


def test_embeddings_must_be_used_consistently_within_a_sequence() -> None:
    tracker = Tracker()
    tracker.update(np.array([box(100)]), np.array([0.9]), np.ones((1, 8)))
    with pytest.raises(ValueError, match="frame 2: got embeddings=None but this sequence started with 8-d"):
        tracker.update(np.array([box(100)]), np.array([0.9]))
    with pytest.raises(ValueError, match="got 4-d embeddings but this sequence started with 8-d"):
        tracker.update(np.array([box(100)]), np.array([0.9]), np.ones((1, 4)))
    tracker = Tracker()
    tracker.update(np.array([box(100)]), np.array([0.9]))
    with pytest.raises(ValueError, match="got 8-d embeddings but this sequence started with no embeddings"):
        tracker.update(np.array([box(100)]), np.array([0.9]), np.ones((1, 8)))


def test_bad_parameters() -> None:
    with pytest.raises(ValueError, match="low_thresh"):
        Tracker(low_thresh=0.5, high_thresh=0.4)
    with pytest.raises(ValueError, match="ema_alpha"):
        Tracker(ema_alpha=1.5)
    with pytest.raises(ValueError, match="unknown Kalman state 'xyxy'"):
        Tracker(kalman_state="xyxy")
    with pytest.raises(ValueError, match="unknown Kalman state ''"):
        Tracker(kalman_state="")
    with pytest.raises(ValueError, match="kalman_state='xywh' contradicts the given kalman_filter's state 'xyah'"):
        Tracker(kalman_state="xywh", kalman_filter=KalmanFilter())
    assert Tracker(kalman_filter=KalmanFilter(state="xywh")).kalman_filter.state == "xywh"


def leaving_left_frames(frames: int = 15) -> list[np.ndarray]:
    """One object 60 px tall walking left at 3 px a frame out of the image; its box is cut at x = 0
    (as KITTI's and the synthetic sequences' are), so from the fourth frame on it narrows from
    40 px to 8 px."""
    centres = 30.0 - 3.0 * np.arange(frames)
    return [np.array([[max(cx - 20, 0.0), 100.0, cx + 20, 160.0]]) for cx in centres]


def test_xywh_state_reports_the_boxes_of_an_object_leaving_the_image() -> None:
    """The reported boxes of the narrowing object against its detections: BoT-SORT's width state
    follows them; the nearly constant aspect ratio of DeepSORT's state lags until IoU < 0.5, which
    the benchmarks count as a miss plus a false positive."""
    frames = leaving_left_frames()
    lowest_iou = {}
    for state in ("xyah", "xywh"):
        tracker = Tracker(kalman_state=state)
        ious = []
        for detection in frames:
            tracks = tracker.update(detection, np.array([0.9]))
            assert tracks["ids"].tolist() == [1]
            ious.append(box_iou(torch.as_tensor(tracks["boxes"]), torch.as_tensor(detection).float()).item())
        lowest_iou[state] = min(ious)
    assert lowest_iou["xywh"] > 0.8
    assert lowest_iou["xyah"] < 0.5


@pytest.mark.parametrize(("state", "frozen"), [("xyah", "height"), ("xywh", "width and height")])
def test_lost_track_keeps_its_size(state: str, frozen: str) -> None:
    """While lost, a track's predicted box keeps its size (the references zero its size velocity:
    vh for the xyah state, vw and vh for xywh) but goes on moving."""
    tracker = Tracker(kalman_state=state)
    for frame in range(8):  # narrowing and shrinking: the size velocities grow negative
        tracker.update(np.array([[100.0 + 2 * frame, 100.0 + frame, 160.0, 160.0]]), np.array([0.9]))
    sizes, centres = [], []
    for _ in range(3):
        tracker.update(np.empty((0, 4)), np.empty(0))
        assert tracker.track_states == {1: TrackState.LOST}
        ((x0, y0, x1, y1),) = tracker.kalman_filter.boxes(tracker._tracks.means)
        sizes.append((x1 - x0, y1 - y0))
        centres.append(((x0 + x1) / 2, (y0 + y1) / 2))
    widths, heights = np.array(sizes).T
    np.testing.assert_allclose(heights, heights[0])
    assert (np.diff(np.array(centres), axis=0) > 0.1).all()  # still moving right and down
    if frozen == "width and height":
        np.testing.assert_allclose(widths, widths[0])


def test_boxes_without_area_are_skipped_with_a_warning(caplog: pytest.LogCaptureFixture) -> None:
    tracker = Tracker()
    with caplog.at_level(logging.WARNING, logger="centernet_lightning.tracking.tracker"):
        tracks = tracker.update(np.array([[10.0, 10, 10, 50], box(100)]), np.array([0.9, 0.9]))
    assert "skipping detections [0]" in caplog.text
    assert tracks["ids"].tolist() == [1] and tracks["detection_indices"].tolist() == [1]
