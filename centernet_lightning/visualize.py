"""Drawing boxes and labels on images with OpenCV."""

from __future__ import annotations

from collections.abc import Sequence

import cv2
import numpy as np

__all__ = ["color_for", "draw_boxes"]


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
        (text_w, text_h), baseline = cv2.getTextSize(caption, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
        top = max(y1, text_h + baseline)
        cv2.rectangle(canvas, (x1, top - text_h - baseline), (x1 + text_w, top), box_color, -1)
        cv2.putText(canvas, caption, (x1, top - baseline), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA)
    return canvas
