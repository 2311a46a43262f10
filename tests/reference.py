"""The original CenterNet ``ctdet`` heatmap target, one object at a time in numpy.

A plain re-statement of the reference code (xingyizhou/CenterNet, ``src/lib/utils/image.py`` and
``src/lib/datasets/sample/ctdet.py``) that the vectorised :mod:`centernet_lightning.targets` must
reproduce. Used by ``tests/test_targets.py`` and by ``benchmarks/targets.py`` (which measures the
vectorised renderer against this loop), so it is kept deliberately literal and slow.
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["gaussian_radius", "gaussian2d", "draw_umich_gaussian", "ctdet_heatmap", "ctdet_heatmaps"]


def gaussian_radius(height: float, width: float, min_overlap: float = 0.7) -> float:
    """The smallest of CornerNet's three radius cases, with the reference code's root.

    Each case solves ``a r^2 - b r + c = 0`` (or ``+ b r`` for the third) and the reference takes
    ``(b + sqrt(b^2 - 4ac)) / 2``, i.e. it does not divide by ``2a``. That quirk is reproduced.
    """
    a1 = 1
    b1 = height + width
    c1 = width * height * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + np.sqrt(b1**2 - 4 * a1 * c1)) / 2

    a2 = 4
    b2 = 2 * (height + width)
    c2 = (1 - min_overlap) * width * height
    r2 = (b2 + np.sqrt(b2**2 - 4 * a2 * c2)) / 2

    a3 = 4 * min_overlap
    b3 = -2 * min_overlap * (height + width)
    c3 = (min_overlap - 1) * width * height
    r3 = (b3 + np.sqrt(b3**2 - 4 * a3 * c3)) / 2
    return min(r1, r2, r3)


def gaussian2d(shape: tuple[int, int], sigma: float) -> np.ndarray:
    """An unnormalised 2-D Gaussian of the given (odd) shape centred in the array, float64.

    Values below ``eps * max`` are set to 0, as the reference does.
    """
    half_h, half_w = ((size - 1.0) / 2.0 for size in shape)
    y, x = np.ogrid[-half_h : half_h + 1, -half_w : half_w + 1]
    gaussian = np.exp(-(x * x + y * y) / (2 * sigma * sigma))
    gaussian[gaussian < np.finfo(gaussian.dtype).eps * gaussian.max()] = 0
    return gaussian


def draw_umich_gaussian(heatmap: np.ndarray, center: tuple[int, int], radius: int) -> np.ndarray:
    """Max-merge a ``(2r+1)``-wide Gaussian with ``sigma = (2r+1)/6`` into ``heatmap`` [H, W] at
    ``center = (x, y)``, cutting the window at the heatmap borders. Modifies and returns ``heatmap``."""
    diameter = 2 * radius + 1
    gaussian = gaussian2d((diameter, diameter), sigma=diameter / 6)
    x, y = int(center[0]), int(center[1])
    height, width = heatmap.shape[:2]
    left, right = min(x, radius), min(width - x, radius + 1)
    top, bottom = min(y, radius), min(height - y, radius + 1)
    heatmap_window = heatmap[y - top : y + bottom, x - left : x + right]
    gaussian_window = gaussian[radius - top : radius + bottom, radius - left : radius + right]
    if min(gaussian_window.shape) > 0 and min(heatmap_window.shape) > 0:
        np.maximum(heatmap_window, gaussian_window, out=heatmap_window)
    return heatmap


def ctdet_heatmap(
    boxes: np.ndarray, labels: np.ndarray, num_classes: int, height: int, width: int, min_overlap: float = 0.7
) -> np.ndarray:
    """One image's heatmap float32 [C, H, W] from boxes [N, 4] XYXY in grid pixels, as ``ctdet``.

    Per object: clip to ``[0, W-1] x [0, H-1]``, skip when the clipped box has no area, radius
    ``max(0, int(gaussian_radius(ceil(h), ceil(w))))``, centre truncated to int.
    """
    heatmap = np.zeros((num_classes, height, width), dtype=np.float32)
    for box, label in zip(np.asarray(boxes, dtype=np.float32), labels):
        box = box.copy()
        box[[0, 2]] = np.clip(box[[0, 2]], 0, width - 1)
        box[[1, 3]] = np.clip(box[[1, 3]], 0, height - 1)
        box_h, box_w = box[3] - box[1], box[2] - box[0]
        if box_h > 0 and box_w > 0:
            radius = max(0, int(gaussian_radius(math.ceil(box_h), math.ceil(box_w), min_overlap)))
            center = np.array([(box[0] + box[2]) / 2, (box[1] + box[3]) / 2], dtype=np.float32)
            draw_umich_gaussian(heatmap[int(label)], center.astype(np.int32), radius)
    return heatmap


def ctdet_heatmaps(
    boxes: np.ndarray,
    labels: np.ndarray,
    mask: np.ndarray,
    num_classes: int,
    height: int,
    width: int,
    min_overlap: float = 0.7,
) -> np.ndarray:
    """A padded batch (boxes [B, N, 4], labels [B, N], mask [B, N]) -> float32 [B, C, H, W]."""
    return np.stack(
        [
            ctdet_heatmap(image_boxes[image_mask], image_labels[image_mask], num_classes, height, width, min_overlap)
            for image_boxes, image_labels, image_mask in zip(boxes, labels, mask)
        ]
    )
