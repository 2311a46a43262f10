"""Drawing detections (boxes, class names, scores) and tracks (ids, trails) on images with OpenCV."""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Sequence
from typing import Any

import cv2
import numpy as np

__all__ = ["color_for", "draw_boxes", "TrackDrawer"]


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
) -> np.ndarray:
    """Draw XYXY pixel boxes with ``name score`` captions on a copy of an RGB uint8 image.

    ``color`` None colours by class; pass one colour to tell sets apart (e.g. ground truth).
    Boxes with a negative label (padding) are skipped.
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
    return canvas


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

    def __init__(self, trail: int = 20) -> None:
        self.trails: dict[int, deque] = defaultdict(lambda: deque(maxlen=trail))

    def draw(self, image: np.ndarray, tracks: Any) -> np.ndarray:
        """A copy of the uint8 HWC RGB ``image`` with ``tracks`` (``ids``, ``boxes`` XYXY pixels) drawn."""
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
        return canvas
