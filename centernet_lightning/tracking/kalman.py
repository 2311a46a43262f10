"""A constant-velocity Kalman filter over boxes, batched over tracks (DeepSORT / FairMOT / ByteTrack / BoT-SORT).

The state of a track is an 8-vector: four box coordinates and their velocities per frame. Two
parameterisations (``state``):

- ``xyah`` (DeepSORT, FairMOT, ByteTrack): ``(cx, cy, a, h, vcx, vcy, va, vh)``, box centre
  (pixels), aspect ratio ``a = w / h`` and height (pixels). Noise scales with the box height
  (``std_weight_position = 1/20``, ``std_weight_velocity = 1/160``); the aspect ratio gets fixed
  standard deviations 1e-2 and 1e-5 of process noise and 1e-1 of observation noise, so it is
  nearly constant: right for pedestrians, slow where a box changes shape fast (an object
  leaving the image, its box cut at the border).
- ``xywh`` (BoT-SORT, Aharon et al. 2022): ``(cx, cy, w, h, vcx, vcy, vw, vh)``; the noise of x
  and w scales with the box width, that of y and h with its height (same weights), so the width
  follows the detections as closely as the height.

A detection is observed directly as the first four coordinates (the observation matrix
``H = [I4 0]``); :meth:`KalmanFilter.measure` and :meth:`KalmanFilter.boxes` convert from and to
XYXY pixels.

Every method works on N tracks at once: means ``[N, 8]``, covariances ``[N, 8, 8]``, float64
numpy. The reference filters loop over tracks in Python for the update and the gating distance;
here both are batched matrix algebra (``np.linalg.solve`` / ``np.linalg.inv`` on stacks of 4x4).
"""

from __future__ import annotations

import numpy as np
from scipy.stats import chi2

from centernet_lightning.structures import box_cxcywh_to_xyxy, box_xyxy_to_cxcywh

__all__ = ["GATING_THRESHOLD", "KALMAN_STATES", "KalmanFilter", "xyah_to_xyxy", "xyxy_to_xyah"]

# 0.95 quantile of the chi-square distribution with 4 degrees of freedom (the 4 measured
# coordinates): squared Mahalanobis distances above it are implausible under the motion model.
# DeepSORT's table gives 9.4877.
GATING_THRESHOLD: float = float(chi2.ppf(0.95, df=4))

STATE_DIM = 8
MEASUREMENT_DIM = 4
KALMAN_STATES = ("xyah", "xywh")


def xyxy_to_xyah(boxes: np.ndarray) -> np.ndarray:
    """XYXY pixel boxes ``[N, 4]`` to ``(cx, cy, w / h, h)`` ``[N, 4]``."""
    boxes = np.asarray(boxes, dtype=np.float64)
    width = boxes[:, 2] - boxes[:, 0]
    height = boxes[:, 3] - boxes[:, 1]
    return np.stack(((boxes[:, 0] + boxes[:, 2]) / 2, (boxes[:, 1] + boxes[:, 3]) / 2, width / height, height), axis=1)


def xyah_to_xyxy(xyah: np.ndarray) -> np.ndarray:
    """``(cx, cy, w / h, h)`` ``[N, 4]`` (or a state ``[N, 8]``, whose first 4 are used) to XYXY ``[N, 4]``."""
    xyah = np.asarray(xyah, dtype=np.float64)
    half_height = xyah[:, 3] / 2
    half_width = xyah[:, 2] * half_height
    return np.stack(
        (xyah[:, 0] - half_width, xyah[:, 1] - half_height, xyah[:, 0] + half_width, xyah[:, 1] + half_height),
        axis=1,
    )


class KalmanFilter:
    """Constant-velocity Kalman filter on boxes, vectorised over tracks (module docstring).

    Args:
        std_weight_position: standard deviation of position noise per pixel of box size
            (DeepSORT / FairMOT / BoT-SORT: 1/20).
        std_weight_velocity: standard deviation of velocity noise per pixel of box size
            (DeepSORT / FairMOT / BoT-SORT: 1/160).
        state: ``xyah`` (DeepSORT / FairMOT / ByteTrack) or ``xywh`` (BoT-SORT).

    Attributes:
        motion_matrix: ``F`` [8, 8], ``x_t = F x_{t-1}`` with a time step of one frame.
        observation_matrix: ``H`` [4, 8], ``z = H x``.
    """

    def __init__(
        self, std_weight_position: float = 1.0 / 20, std_weight_velocity: float = 1.0 / 160, state: str = "xyah"
    ) -> None:
        if state not in KALMAN_STATES:
            raise ValueError(f"unknown Kalman state {state!r}; valid: {', '.join(KALMAN_STATES)}")
        self.std_weight_position = std_weight_position
        self.std_weight_velocity = std_weight_velocity
        self.state = state
        self.motion_matrix = np.eye(STATE_DIM)
        self.motion_matrix[:MEASUREMENT_DIM, MEASUREMENT_DIM:] = np.eye(MEASUREMENT_DIM)
        self.observation_matrix = np.eye(MEASUREMENT_DIM, STATE_DIM)

    @property
    def size_velocity_columns(self) -> list[int]:
        """The state columns a lost track's prediction zeroes (its box keeps its size): ``vh`` for
        ``xyah`` (FairMOT / ByteTrack), ``vw`` and ``vh`` for ``xywh`` (BoT-SORT)."""
        return [7] if self.state == "xyah" else [6, 7]

    def measure(self, boxes: np.ndarray) -> np.ndarray:
        """XYXY pixel boxes ``[N, 4]`` to measurements ``[N, 4]`` of this filter's ``state``."""
        if self.state == "xyah":
            return xyxy_to_xyah(boxes)
        return box_xyxy_to_cxcywh(np.asarray(boxes, dtype=np.float64))

    def boxes(self, mean: np.ndarray) -> np.ndarray:
        """XYXY pixel boxes ``[N, 4]`` of states ``[N, 8]`` (or measurements ``[N, 4]``)."""
        if self.state == "xyah":
            return xyah_to_xyxy(mean)
        return box_cxcywh_to_xyxy(np.asarray(mean, dtype=np.float64)[:, :MEASUREMENT_DIM])

    def _std(self, boxes: np.ndarray, weight: float, aspect_std: float) -> np.ndarray:
        """Per-coordinate standard deviations ``[N, 4]`` for states or measurements ``[N, >=4]``.

        ``xyah``: ``weight * h`` for cx, cy and h, ``aspect_std`` for a. ``xywh``: ``weight * w``
        for cx and w, ``weight * h`` for cy and h (``aspect_std`` unused).
        """
        heights = boxes[:, 3]
        if self.state == "xywh":
            widths = boxes[:, 2]
            return weight * np.stack((widths, heights, widths, heights), axis=1)
        std = np.repeat((weight * heights)[:, None], MEASUREMENT_DIM, axis=1)
        std[:, 2] = aspect_std
        return std

    def process_noise(self, mean: np.ndarray) -> np.ndarray:
        """Diagonal process noise ``Q`` [N, 8, 8] for states ``[N, 8]`` (scaled by their size)."""
        std = np.concatenate(
            (self._std(mean, self.std_weight_position, 1e-2), self._std(mean, self.std_weight_velocity, 1e-5)),
            axis=1,
        )
        return _diagonal(std**2)

    def observation_noise(self, mean: np.ndarray) -> np.ndarray:
        """Diagonal observation noise ``R`` [N, 4, 4] for states ``[N, 8]`` (scaled by their size)."""
        return _diagonal(self._std(mean, self.std_weight_position, 1e-1) ** 2)

    def initiate(self, measurements: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Start tracks from unmatched detections.

        Args:
            measurements: ``[N, 4]`` in this filter's ``state`` (see :meth:`measure`).

        Returns:
            mean ``[N, 8]`` (velocities 0) and covariance ``[N, 8, 8]`` (diagonal: twice the position
            and ten times the velocity noise of one step, so the first matches are loose).
        """
        measurements = np.asarray(measurements, dtype=np.float64).reshape(-1, MEASUREMENT_DIM)
        mean = np.concatenate((measurements, np.zeros_like(measurements)), axis=1)
        std = np.concatenate(
            (
                self._std(measurements, 2 * self.std_weight_position, 1e-2),
                self._std(measurements, 10 * self.std_weight_velocity, 1e-5),
            ),
            axis=1,
        )
        return mean, _diagonal(std**2)

    def predict(self, mean: np.ndarray, covariance: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """One frame ahead: ``x = F x``, ``P = F P F^T + Q`` for ``[N, 8]`` / ``[N, 8, 8]``."""
        motion = self.motion_matrix
        noise = self.process_noise(mean)  # Q from the size before the step, as the references
        return mean @ motion.T, motion @ covariance @ motion.T + noise

    def project(
        self, mean: np.ndarray, covariance: np.ndarray, confidences: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """States into measurement space: ``H x`` ``[N, 4]`` and ``S = H P H^T + R`` ``[N, 4, 4]``.

        ``confidences`` ``[N]`` in [0, 1] (detection scores) scale the observation noise's standard
        deviations by ``1 - confidence``: the NSA Kalman filter of GIAOTracker / StrongSORT, which
        trusts a confident detection more. None: DeepSORT's noise, the same for every detection.
        """
        noise = self.observation_noise(mean)
        if confidences is not None:
            noise = noise * ((1.0 - np.asarray(confidences, dtype=np.float64)) ** 2)[:, None, None]
        return mean[:, :MEASUREMENT_DIM], covariance[:, :MEASUREMENT_DIM, :MEASUREMENT_DIM] + noise

    def update(
        self,
        mean: np.ndarray,
        covariance: np.ndarray,
        measurements: np.ndarray,
        confidences: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Correct N predicted states with one measurement each.

        ``K = P H^T S^-1``, ``x = x + K (z - H x)``, ``P = P - K S K^T``.

        Args:
            mean: ``[N, 8]``; covariance: ``[N, 8, 8]``; measurements: ``[N, 4]`` (see :meth:`measure`).
            confidences: ``[N]`` detection scores for the NSA filter (see :meth:`project`), or None.

        Returns:
            The corrected mean ``[N, 8]`` and covariance ``[N, 8, 8]``.
        """
        projected_mean, projected_covariance = self.project(mean, covariance, confidences)
        cross_covariance = covariance[:, :, :MEASUREMENT_DIM]  # P H^T, [N, 8, 4]
        # S is symmetric, so S^-1 (P H^T)^T = K^T: one batched solve instead of an inverse.
        gain_t = np.linalg.solve(projected_covariance, cross_covariance.transpose(0, 2, 1))  # [N, 4, 8]
        innovation = np.asarray(measurements, dtype=np.float64) - projected_mean  # [N, 4]
        new_mean = mean + np.einsum("ni,nij->nj", innovation, gain_t)
        new_covariance = covariance - gain_t.transpose(0, 2, 1) @ projected_covariance @ gain_t
        return new_mean, new_covariance

    def gating_distance(self, mean: np.ndarray, covariance: np.ndarray, measurements: np.ndarray) -> np.ndarray:
        """Squared Mahalanobis distance of every measurement to every track, ``[N, M]``.

        ``d^2 = (z - H x)^T S^-1 (z - H x)`` with the projected covariance ``S`` of each track, for
        all N tracks x M measurements at once. Compare with :data:`GATING_THRESHOLD`.

        Args:
            mean: ``[N, 8]``; covariance: ``[N, 8, 8]``; measurements: ``[M, 4]`` (see :meth:`measure`).
        """
        measurements = np.asarray(measurements, dtype=np.float64).reshape(-1, MEASUREMENT_DIM)
        if len(mean) == 0 or len(measurements) == 0:
            return np.zeros((len(mean), len(measurements)))
        projected_mean, projected_covariance = self.project(mean, covariance)
        precision = np.linalg.inv(projected_covariance)  # S^-1, [N, 4, 4]
        # Expanded, d^2 = z^T S^-1 z - 2 (S^-1 mu)^T z + mu^T S^-1 mu: two matrix products over
        # all pairs (inner sizes 16 and 4) instead of an [N, M, 4] difference tensor, 5-10x faster
        # at 1000 x 1000. Coordinates are centred first to keep the cancellation small.
        origin = measurements.mean(axis=0)
        measurements = measurements - origin
        projected_mean = projected_mean - origin
        outer = (measurements[:, :, None] * measurements[:, None, :]).reshape(len(measurements), -1)  # [M, 16]
        weighted_mean = np.einsum("nij,nj->ni", precision, projected_mean)  # S^-1 mu, [N, 4]
        distance = precision.reshape(len(mean), -1) @ outer.T - 2.0 * weighted_mean @ measurements.T
        distance += np.einsum("ni,ni->n", weighted_mean, projected_mean)[:, None]
        return np.maximum(distance, 0.0)

    def warp(self, mean: np.ndarray, covariance: np.ndarray, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """States moved by a camera's motion between two frames (BoT-SORT's camera-motion compensation).

        ``matrix`` [2, 3] maps pixels of the previous frame to this one (``[A | t]``, a similarity or
        affine warp). Centres move as points (``A c + t``), velocities as vectors (``A v``). ``xywh``:
        the width and height pair and its velocity are multiplied by ``A`` too, as BoT-SORT does;
        ``xyah``: the height and its velocity are scaled by ``sqrt(|det A|)`` and the aspect ratio kept.
        Covariances transform alike (``P = M P M^T``).

        Args:
            mean: ``[N, 8]``; covariance: ``[N, 8, 8]``; matrix: ``[2, 3]``.
        """
        matrix = np.asarray(matrix, dtype=np.float64)
        linear, translation = matrix[:, :2], matrix[:, 2]
        transform = np.zeros((STATE_DIM, STATE_DIM))
        for start in (0, 4):  # centre, centre velocity
            transform[start : start + 2, start : start + 2] = linear
        if self.state == "xywh":
            for start in (2, 6):
                transform[start : start + 2, start : start + 2] = linear
        else:
            scale = np.sqrt(abs(np.linalg.det(linear)))
            transform[2, 2] = transform[6, 6] = 1.0
            transform[3, 3] = transform[7, 7] = scale
        new_mean = mean @ transform.T
        new_mean[:, :2] += translation
        return new_mean, transform @ covariance @ transform.T


def _diagonal(values: np.ndarray) -> np.ndarray:
    """Stack of diagonal matrices ``[N, D, D]`` from ``[N, D]``."""
    matrices = np.zeros(values.shape + values.shape[-1:])
    index = np.arange(values.shape[-1])
    matrices[:, index, index] = values
    return matrices
