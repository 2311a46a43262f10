"""The batched Kalman filter (both states) against hand-computed values and the textbook matrix formulas."""

from __future__ import annotations

import numpy as np
import pytest

from centernet_lightning.structures import box_cxcywh_to_xyxy, box_xyxy_to_cxcywh
from centernet_lightning.tracking.kalman import GATING_THRESHOLD, KalmanFilter, xyah_to_xyxy, xyxy_to_xyah

F = np.eye(8) + np.eye(8, k=4)  # constant velocity, one frame per step
H = np.eye(4, 8)


STATES = ["xyah", "xywh"]


def noise_std(box: np.ndarray, weight: float, aspect: float, state: str = "xyah") -> np.ndarray:
    """The reference filters' standard deviations for one box: DeepSORT's (``xyah``: ``weight * h``,
    fixed for the aspect ratio) or BoT-SORT's (``xywh``: ``weight * w`` for x and w, ``weight * h``
    for y and h)."""
    width, height = box[2], box[3]
    if state == "xywh":
        return weight * np.array([width, height, width, height])
    return np.array([weight * height, weight * height, aspect, weight * height])


def random_states(count: int, seed: int = 0, state: str = "xyah") -> tuple[np.ndarray, np.ndarray]:
    """Plausible states: boxes 20-200 px tall (aspect 0.3-1, or 10-150 px wide) with velocities,
    and random SPD covariances."""
    rng = np.random.default_rng(seed)
    shape = rng.uniform(0.3, 1.0, (count, 1)) if state == "xyah" else rng.uniform(10, 150, (count, 1))
    mean = np.concatenate((rng.uniform(0, 500, (count, 2)), shape, rng.uniform(20, 200, (count, 1))), axis=1)
    mean = np.concatenate((mean, rng.normal(0, 2, (count, 4))), axis=1)
    factors = rng.normal(0, 1, (count, 8, 8))
    covariance = factors @ factors.transpose(0, 2, 1) + np.eye(8)
    return mean, covariance


def test_gating_threshold_is_deepsorts_chi2_quantile() -> None:
    assert GATING_THRESHOLD == pytest.approx(9.4877, abs=1e-4)


def test_box_conversions_by_hand_and_round_trip() -> None:
    boxes = np.array([[10.0, 20.0, 30.0, 60.0], [0.0, 0.0, 50.0, 25.0]])
    np.testing.assert_allclose(xyxy_to_xyah(boxes), [[20, 40, 0.5, 40], [25, 12.5, 2.0, 25]])
    np.testing.assert_allclose(xyah_to_xyxy(xyxy_to_xyah(boxes)), boxes)
    np.testing.assert_allclose(box_xyxy_to_cxcywh(boxes), [[20, 40, 20, 40], [25, 12.5, 50, 25]])
    np.testing.assert_allclose(box_cxcywh_to_xyxy(box_xyxy_to_cxcywh(boxes)), boxes)
    for state in STATES:
        kalman = KalmanFilter(state=state)
        np.testing.assert_allclose(kalman.boxes(kalman.initiate(kalman.measure(boxes))[0]), boxes)


def test_unknown_state_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown Kalman state 'xyxy'; valid: xyah, xywh"):
        KalmanFilter(state="xyxy")


def test_initiate_by_hand() -> None:
    mean, covariance = KalmanFilter().initiate(np.array([[20.0, 40.0, 0.5, 40.0]]))
    np.testing.assert_array_equal(mean, [[20, 40, 0.5, 40, 0, 0, 0, 0]])
    # position std 2 * h / 20 = 4 px, velocity std 10 * h / 160 = 2.5 px/frame; aspect 1e-2, 1e-5
    np.testing.assert_allclose(covariance[0], np.diag([16, 16, 1e-4, 16, 6.25, 6.25, 1e-10, 6.25]))


def test_predict_and_update_by_hand_xywh() -> None:
    kalman = KalmanFilter(state="xywh")
    mean, covariance = kalman.initiate(np.array([[20.0, 40.0, 20.0, 40.0]]))
    mean[0, 4:] = [1.0, 2.0, -1.0, 0.5]
    predicted_mean, predicted_covariance = kalman.predict(mean, covariance)
    np.testing.assert_allclose(predicted_mean, [[21, 42, 19, 40.5, 1, 2, -1, 0.5]])
    # x: 4 (initial) + 1.5625 (velocity) + (20 / 20)^2 (noise from the width before the step);
    # y: 16 + 6.25 + (40 / 20)^2
    assert predicted_covariance[0, 0, 0] == pytest.approx(4 + 1.5625 + 1)
    assert predicted_covariance[0, 1, 1] == pytest.approx(16 + 6.25 + 4)
    assert predicted_covariance[0, 2, 2] == pytest.approx(4 + 1.5625 + 1)
    # update from the initial state: var(w) = 4, observation noise (20 / 20)^2 = 1, gain 0.8 on x
    # and w; var(h) = 16, noise (40 / 20)^2 = 4, gain 0.8 on y and h
    new_mean, new_covariance = kalman.update(
        *kalman.initiate(np.array([[20.0, 40.0, 20.0, 40.0]])), [[25.0, 40.0, 10.0, 45.0]]
    )
    np.testing.assert_allclose(new_mean, [[24, 40, 12, 44, 0, 0, 0, 0]])
    assert new_covariance[0, 2, 2] == pytest.approx(4 - 0.8 * 5 * 0.8)


def test_initiate_by_hand_xywh() -> None:
    mean, covariance = KalmanFilter(state="xywh").initiate(np.array([[20.0, 40.0, 20.0, 40.0]]))
    np.testing.assert_array_equal(mean, [[20, 40, 20, 40, 0, 0, 0, 0]])
    # x, w: std 2 * 20 / 20 = 2 px and 10 * 20 / 160 = 1.25 px/frame; y, h: 4 px and 2.5 px/frame
    np.testing.assert_allclose(covariance[0], np.diag([4, 16, 4, 16, 1.5625, 6.25, 1.5625, 6.25]))


def test_predict_by_hand() -> None:
    kalman = KalmanFilter()
    mean, covariance = kalman.initiate(np.array([[20.0, 40.0, 0.5, 40.0]]))
    mean[0, 4:] = [1.0, 2.0, 0.0, 0.5]
    predicted_mean, predicted_covariance = kalman.predict(mean, covariance)
    np.testing.assert_allclose(predicted_mean, [[21, 42, 0.5, 40.5, 1, 2, 0, 0.5]])
    # var(cx) = 16 + 6.25 (velocity) + (40 / 20)^2 (noise) ; cov(cx, vcx) = 6.25 ; var(vcx) = 6.25 + (40/160)^2
    assert predicted_covariance[0, 0, 0] == pytest.approx(16 + 6.25 + 4)
    assert predicted_covariance[0, 0, 4] == pytest.approx(6.25)
    assert predicted_covariance[0, 4, 4] == pytest.approx(6.25 + 0.0625)


@pytest.mark.parametrize("state", STATES)
def test_predict_matches_the_matrix_formula_for_every_track(state: str) -> None:
    kalman = KalmanFilter(state=state)
    mean, covariance = random_states(5, state=state)
    predicted_mean, predicted_covariance = kalman.predict(mean, covariance)
    for index in range(5):
        box = mean[index]
        q = np.diag(np.concatenate((noise_std(box, 1 / 20, 1e-2, state), noise_std(box, 1 / 160, 1e-5, state))) ** 2)
        np.testing.assert_allclose(predicted_mean[index], F @ mean[index])
        np.testing.assert_allclose(predicted_covariance[index], F @ covariance[index] @ F.T + q)


def test_update_by_hand_from_a_new_track() -> None:
    kalman = KalmanFilter()
    mean, covariance = kalman.initiate(np.array([[20.0, 40.0, 0.5, 40.0]]))
    # var(cx) = 16, observation noise (40 / 20)^2 = 4: gain 16 / 20 = 0.8 on cx, cy and h; the
    # initial covariance has no position-velocity terms, so velocities stay 0.
    new_mean, new_covariance = kalman.update(mean, covariance, np.array([[30.0, 40.0, 0.5, 45.0]]))
    np.testing.assert_allclose(new_mean, [[28, 40, 0.5, 44, 0, 0, 0, 0]])
    assert new_covariance[0, 0, 0] == pytest.approx(16 - 0.8 * 20 * 0.8)


@pytest.mark.parametrize("state", STATES)
def test_update_matches_the_matrix_formula_for_every_track(state: str) -> None:
    kalman = KalmanFilter(state=state)
    mean, covariance = random_states(6, seed=1, state=state)
    measurements = mean[:, :4] + np.random.default_rng(2).normal(0, 3, (6, 4))
    new_mean, new_covariance = kalman.update(mean, covariance, measurements)
    for index in range(6):
        r = np.diag(noise_std(mean[index], 1 / 20, 1e-1, state) ** 2)
        s = H @ covariance[index] @ H.T + r
        gain = covariance[index] @ H.T @ np.linalg.inv(s)
        np.testing.assert_allclose(new_mean[index], mean[index] + gain @ (measurements[index] - H @ mean[index]))
        np.testing.assert_allclose(new_covariance[index], covariance[index] - gain @ s @ gain.T, atol=1e-9)
    # one track at a time gives the same as the batch
    single_mean, single_covariance = kalman.update(mean[2:3], covariance[2:3], measurements[2:3])
    np.testing.assert_allclose(single_mean[0], new_mean[2])
    np.testing.assert_allclose(single_covariance[0], new_covariance[2])


@pytest.mark.parametrize("state", STATES)
def test_gating_distance_matches_the_mahalanobis_formula_for_every_pair(state: str) -> None:
    kalman = KalmanFilter(state=state)
    mean, covariance = random_states(4, seed=3, state=state)
    measurements = np.random.default_rng(4).uniform(0, 500, (7, 4))
    distance = kalman.gating_distance(mean, covariance, measurements)
    assert distance.shape == (4, 7)
    for track in range(4):
        r = np.diag(noise_std(mean[track], 1 / 20, 1e-1, state) ** 2)
        precision = np.linalg.inv(H @ covariance[track] @ H.T + r)
        for detection in range(7):
            difference = measurements[detection] - H @ mean[track]
            assert distance[track, detection] == pytest.approx(difference @ precision @ difference, rel=1e-9)


def test_gating_distance_by_hand_and_empty() -> None:
    kalman = KalmanFilter()
    mean, covariance = kalman.initiate(np.array([[20.0, 40.0, 0.5, 40.0]]))
    # S = diag(16 + 4, 16 + 4, 1e-4 + 1e-2, 16 + 4): 10 px off in x -> 100 / 20 = 5
    distance = kalman.gating_distance(mean, covariance, np.array([[30.0, 40.0, 0.5, 40.0]]))
    assert distance[0, 0] == pytest.approx(5.0)
    assert kalman.gating_distance(mean, covariance, np.empty((0, 4))).shape == (1, 0)
    assert kalman.gating_distance(np.empty((0, 8)), np.empty((0, 8, 8)), np.ones((3, 4))).shape == (0, 3)


def test_xywh_follows_a_box_that_narrows_where_xyah_lags() -> None:
    """An object leaving the image at the left: its box (cut at the border) loses 3 px of width a
    frame at a constant height. BoT-SORT's state keeps the width within a pixel of the detections;
    DeepSORT's nearly constant aspect ratio lags by over 10 px (20 px here)."""
    widths = np.arange(40.0, 10.0, -3.0)  # 40 ... 13 px
    boxes = np.stack((np.zeros_like(widths), np.full_like(widths, 50.0), widths, np.full_like(widths, 90.0)), axis=1)
    errors = {}
    for state in STATES:
        kalman = KalmanFilter(state=state)
        mean, covariance = kalman.initiate(kalman.measure(boxes[:1]))
        for box in boxes[1:]:
            mean, covariance = kalman.predict(mean, covariance)
            mean, covariance = kalman.update(mean, covariance, kalman.measure(box[None]))
        filtered = kalman.boxes(mean)[0]
        errors[state] = abs((filtered[2] - filtered[0]) - (boxes[-1, 2] - boxes[-1, 0]))
    assert errors["xywh"] < 1.0
    assert errors["xyah"] > 10.0


def test_size_velocity_columns() -> None:
    assert KalmanFilter().size_velocity_columns == [7]  # vh (FairMOT / ByteTrack)
    assert KalmanFilter(state="xywh").size_velocity_columns == [6, 7]  # vw, vh (BoT-SORT)
