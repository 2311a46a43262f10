"""Camera-motion estimation between consecutive frames, for trackers filmed by a moving camera.

BoT-SORT (Aharon et al. 2022, "global motion compensation") estimates how the whole image moved
from the previous frame to this one and moves every track's Kalman state by it
(:meth:`~centernet_lightning.tracking.KalmanFilter.warp`) before association, so that a pan does not
look like every object jumping. Two of its estimators, both OpenCV:

- ``sparse_flow`` (BoT-SORT's default): corners (``cv2.goodFeaturesToTrack``: up to 1000, quality
  0.01, min distance 1, block 3) on the previous frame, followed into this one with pyramidal
  Lucas-Kanade (``cv2.calcOpticalFlowPyrLK``), and a 4-degree-of-freedom similarity (rotation,
  scale, translation) fitted to the pairs with RANSAC (``cv2.estimateAffinePartial2D``). About
  2-4 ms per 720p frame at half resolution.
- ``ecc``: ``cv2.findTransformECC`` with a Euclidean motion model (rotation and translation) on
  blurred frames, up to 100 iterations to 1e-5; denser and slower (tens of ms).

Frames are converted to grayscale and shrunk by ``downscale`` first (BoT-SORT: 2); the translation is
scaled back to full-resolution pixels. Corners inside the detections' boxes are left out: the
objects move by themselves, the background moves with the camera.
"""

from __future__ import annotations

import logging

import cv2
import numpy as np

__all__ = ["CAMERA_MOTION_METHODS", "CameraMotion"]

log = logging.getLogger(__name__)

CAMERA_MOTION_METHODS = ("sparse_flow", "ecc")
# Fewer point pairs than this: no estimate (RANSAC on a handful of points is noise).
MIN_POINT_PAIRS = 5
IDENTITY = np.eye(2, 3)


class CameraMotion:
    """Estimates the warp from the previous frame to the current one, one frame at a time.

    Args:
        method: ``sparse_flow`` or ``ecc`` (module docstring).
        downscale: frames are shrunk by this factor (>= 1) before estimating.

    Call :meth:`estimate` once per frame in order; :meth:`reset` between videos.
    """

    def __init__(self, method: str = "sparse_flow", downscale: float = 2.0) -> None:
        if method not in CAMERA_MOTION_METHODS:
            raise ValueError(f"unknown camera_motion {method!r}; valid: {', '.join(CAMERA_MOTION_METHODS)}")
        if not downscale >= 1:
            raise ValueError(f"camera motion downscale must be >= 1, got {downscale}")
        self.method = method
        self.downscale = float(downscale)
        self.reset()

    def reset(self) -> None:
        """Forget the previous frame: the next :meth:`estimate` returns the identity."""
        self._previous: np.ndarray | None = None
        self._previous_points: np.ndarray | None = None

    def estimate(self, image: np.ndarray, boxes: np.ndarray | None = None) -> np.ndarray:
        """The warp ``[2, 3]`` (float64) mapping pixels of the previous frame to this ``image``.

        Args:
            image: ``[H, W]`` grayscale or ``[H, W, 3]`` colour (any channel order), uint8, or
                float in [0, 1] or [0, 255].
            boxes: ``[N, 4]`` XYXY pixels of this frame's detections, masked out of the corners
                followed into the next frame; None masks nothing.

        Returns:
            The identity on the first frame, after a change of image size, or when the estimate
            fails (too few points, ECC not converging: logged at debug level).
        """
        gray = self._prepare(image)
        previous, previous_points = self._previous, self._previous_points
        self._previous = gray
        if self.method == "sparse_flow":
            self._previous_points = self._corners(gray, boxes)
        if previous is None or previous.shape != gray.shape:
            return IDENTITY.copy()
        warp = (
            self._sparse_flow(previous, previous_points, gray)
            if self.method == "sparse_flow"
            else self._ecc(previous, gray)
        )
        if warp is None:
            return IDENTITY.copy()
        warp[:, 2] *= self.downscale  # translation back in full-resolution pixels
        return warp

    def _prepare(self, image: np.ndarray) -> np.ndarray:
        image = np.asarray(image)
        if not (image.ndim == 2 or (image.ndim == 3 and image.shape[2] == 3)) or image.size == 0:
            raise ValueError(f"camera motion needs an [H, W] or [H, W, 3] image, got shape {list(image.shape)}")
        if not (np.issubdtype(image.dtype, np.number) or image.dtype == bool):
            raise ValueError(f"camera motion needs a numeric image, got dtype {image.dtype}")
        if image.dtype != np.uint8:  # floats in [0, 1] (a normalised frame) or [0, 255]
            scale = 255.0 if np.issubdtype(image.dtype, np.floating) and image.max() <= 1.0 else 1.0
            image = np.clip(image * scale, 0, 255).astype(np.uint8)
        if image.ndim == 3:
            image = cv2.cvtColor(image, cv2.COLOR_BGR2GRAY)  # the weights differ for RGB; corners don't care
        if self.downscale > 1:
            height, width = image.shape
            size = (max(1, int(width / self.downscale)), max(1, int(height / self.downscale)))
            image = cv2.resize(image, size, interpolation=cv2.INTER_AREA)
        return image

    def _corners(self, gray: np.ndarray, boxes: np.ndarray | None) -> np.ndarray | None:
        mask = None
        if boxes is not None and len(boxes):
            mask = np.full(gray.shape, 255, dtype=np.uint8)
            scaled = np.round(np.asarray(boxes, dtype=np.float64) / self.downscale).astype(np.int64)
            height, width = gray.shape
            scaled[:, 0::2] = scaled[:, 0::2].clip(0, width)
            scaled[:, 1::2] = scaled[:, 1::2].clip(0, height)
            for x1, y1, x2, y2 in scaled:  # a few dozen boxes per frame: cheap slicing
                mask[y1:y2, x1:x2] = 0
        return cv2.goodFeaturesToTrack(
            gray, maxCorners=1000, qualityLevel=0.01, minDistance=1, blockSize=3, mask=mask, useHarrisDetector=False
        )

    def _sparse_flow(
        self, previous: np.ndarray, previous_points: np.ndarray | None, gray: np.ndarray
    ) -> np.ndarray | None:
        if previous_points is None or len(previous_points) < MIN_POINT_PAIRS:
            log.debug("camera motion: too few corners on the previous frame")
            return None
        points, status, _ = cv2.calcOpticalFlowPyrLK(previous, gray, previous_points, None)
        found = status.reshape(-1).astype(bool)
        if found.sum() < MIN_POINT_PAIRS:
            log.debug("camera motion: too few corners followed")
            return None
        warp, _ = cv2.estimateAffinePartial2D(previous_points[found], points[found], method=cv2.RANSAC)
        return None if warp is None else warp.astype(np.float64)

    def _ecc(self, previous: np.ndarray, gray: np.ndarray) -> np.ndarray | None:
        warp = np.eye(2, 3, dtype=np.float32)
        criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 100, 1e-5)
        template = cv2.GaussianBlur(previous, (3, 3), 1.5)
        current = cv2.GaussianBlur(gray, (3, 3), 1.5)
        try:
            _, warp = cv2.findTransformECC(template, current, warp, cv2.MOTION_EUCLIDEAN, criteria, None, 1)
        except cv2.error:
            log.debug("camera motion: ECC did not converge")
            return None
        return warp.astype(np.float64)
