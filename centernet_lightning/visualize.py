"""Drawing detections (boxes, class names, scores, skeletons) and tracks (ids, trails) on images with OpenCV."""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

__all__ = ["color_for", "draw_boxes", "draw_keypoints", "TrackDrawer", "JOINT_DRAW_THRESHOLD"]

JOINT_DRAW_THRESHOLD = 0.1  # joints scored lower (unsure, mostly hidden) are not drawn


def color_for(index: int) -> tuple[int, int, int]:
    """A distinct, stable RGB colour per class (golden-ratio hue steps)."""
    hue = int((index * 0.618033988749895 % 1.0) * 179)
    hsv = np.array([[[hue, 220, 255]]], dtype=np.uint8)
    r, g, b = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0]
    return int(r), int(g), int(b)


def draw_boxes(
    image: np.ndarray,
    bboxes: np.ndarray,
    labels: np.ndarray,
    scores: np.ndarray | None = None,
    class_names: Sequence[str] | None = None,
    color: tuple[int, int, int] | None = None,
    thickness: int = 2,
    keypoints: np.ndarray | None = None,
    skeleton: Sequence[Sequence[int]] = (),
) -> np.ndarray:
    """Draw XYXY pixel boxes with ``name score`` captions on a copy of an RGB uint8 image.

    ``color`` None colours by class; pass one colour to tell sets apart (e.g. ground truth).
    Boxes with a negative label (padding) are skipped. ``keypoints`` [N, J, 3] (x, y pixels,
    score or visibility) draws each box's joints and the ``skeleton``'s limbs (see :func:`draw_keypoints`).
    """
    canvas = np.ascontiguousarray(image.copy())
    bboxes = np.asarray(bboxes, dtype=np.float32).reshape(-1, 4)
    labels = np.asarray(labels).reshape(-1)
    scale = max(0.35, min(canvas.shape[:2]) / 800)
    for i, (box, label) in enumerate(zip(bboxes, labels)):
        if label < 0:
            continue
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        box_color = color or color_for(int(label))
        cv2.rectangle(canvas, (x1, y1), (x2, y2), box_color, thickness)
        name = class_names[label] if class_names is not None and label < len(class_names) else str(int(label))
        caption = name if scores is None else f"{name} {float(scores[i]):.2f}"
        _draw_caption(canvas, caption, x1, y1, box_color, scale)
    if keypoints is not None:
        real = labels >= 0
        _draw_joints(canvas, np.asarray(keypoints, np.float32)[real], skeleton, thickness, color)
    return canvas


def draw_keypoints(
    image: np.ndarray,
    keypoints: np.ndarray,
    skeleton: Sequence[Sequence[int]] = (),
    thickness: int = 2,
    color: tuple[int, int, int] | None = None,
) -> np.ndarray:
    """A copy of the RGB uint8 ``image`` with the joints of ``keypoints`` [N, J, 3] (x, y pixels and a
    score or a COCO visibility) drawn as dots, and the ``skeleton``'s ``(joint, joint)`` pairs as
    lines. Joints under :data:`JOINT_DRAW_THRESHOLD` are left out (visibility 0: unlabelled).
    ``color`` None colours the limbs by their index in the skeleton."""
    canvas = np.ascontiguousarray(image.copy())
    _draw_joints(canvas, np.asarray(keypoints, np.float32).reshape(-1, *np.shape(keypoints)[-2:]), skeleton,
                 thickness, color)  # fmt: skip
    return canvas


def _draw_joints(
    canvas: np.ndarray,
    keypoints: np.ndarray,
    skeleton: Sequence[Sequence[int]],
    thickness: int,
    color: tuple[int, int, int] | None,
) -> None:
    shown = keypoints[..., 2] >= JOINT_DRAW_THRESHOLD  # [N, J]
    points = np.round(keypoints[..., :2]).astype(np.int32)
    radius = max(2, thickness + 1)
    for joints, visible in zip(points, shown):  # over the kept detections (a few dozen at most)
        for limb, (first, second) in enumerate(skeleton):
            if visible[first] and visible[second]:
                limb_color = color or color_for(limb)
                cv2.line(canvas, tuple(joints[first]), tuple(joints[second]), limb_color, thickness, cv2.LINE_AA)
        for joint in joints[visible]:
            cv2.circle(canvas, tuple(joint), radius, (255, 255, 255), -1, cv2.LINE_AA)
            cv2.circle(canvas, tuple(joint), radius, (0, 0, 0), 1, cv2.LINE_AA)


def _draw_caption(
    canvas: np.ndarray, caption: str, x1: int, y1: int, colour: tuple[int, int, int], scale: float
) -> None:
    """Black text on a filled ``colour`` box at a box's top-left corner (inside the image)."""
    (text_w, text_h), baseline = cv2.getTextSize(caption, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
    top = max(y1, text_h + baseline)
    cv2.rectangle(canvas, (x1, top - text_h - baseline), (x1 + text_w, top), colour, -1)
    cv2.putText(canvas, caption, (x1, top - baseline), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)


class TrackDrawer:
    """Draws tracks with a stable colour per id, the id, and a trail of the last ``trail`` foot points."""

    def __init__(self, trail: int = 20, skeleton: Sequence[Sequence[int]] = ()) -> None:
        self.trails: dict[int, deque] = defaultdict(lambda: deque(maxlen=trail))
        self.skeleton = skeleton

    def draw(self, image: np.ndarray, tracks: Any) -> np.ndarray:
        """A copy of the uint8 HWC RGB ``image`` with ``tracks`` (``ids``, ``boxes`` XYXY pixels, and
        ``keypoints`` [M, J, 3] when they carry joints: drawn with the ``skeleton``) drawn."""
        canvas = np.ascontiguousarray(image.copy())
        scale = max(0.4, min(canvas.shape[:2]) / 700)
        for track_id, box in zip(np.asarray(tracks["ids"]).tolist(), np.asarray(tracks["boxes"]).tolist()):
            colour = color_for(int(track_id))
            x1, y1, x2, y2 = (int(round(v)) for v in box)
            self.trails[track_id].append(((x1 + x2) // 2, y2))  # the foot point, as MOT viewers draw trails
            points = np.array(self.trails[track_id], dtype=np.int32).reshape(-1, 1, 2)
            cv2.polylines(canvas, [points], False, colour, 2, cv2.LINE_AA)
            cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, 2)
            _draw_caption(canvas, str(track_id), x1, y1, colour, scale)
        if "keypoints" in tracks:
            _draw_joints(canvas, np.asarray(tracks["keypoints"], np.float32), self.skeleton, 2, None)
        return canvas
