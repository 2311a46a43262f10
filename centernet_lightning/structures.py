"""The data structures that flow through the library, defined once.

Box format: everywhere inside the library a box is ``[x1, y1, x2, y2]`` (XYXY) in absolute
pixels of the image it belongs to, float32. Readers convert from COCO xywh, YOLO normalised
cxcywh and VOC 1-based coordinates exactly once; nothing downstream converts again.

A *sample* (one image, what a dataset returns) is a dict:

==================  ===========================================================================
``image``           uint8 HWC RGB array before transforms; float32 CHW tensor after
``bboxes``          float32 [N, 4] XYXY pixels of ``image``
``labels``          int64 [N], contiguous class indices in ``[0, num_classes)``
``ignore``          bool [N] (optional), regions that are neither object nor background
``track_ids``       int64 [N] (optional), identities across the frames of a sequence
``image_id``        int, the source dataset's id (COCO image id; the index for other formats)
``image_path``      str
``original_size``   ``(height, width)`` of the image on disk
``letterbox``       float32 [3] ``(scale, pad_x, pad_y)``: ``image_px = orig_px * scale + pad``
==================  ===========================================================================

Per-object fields (``labels``, ``ignore``, ``track_ids``, ...) are arrays parallel to ``bboxes``,
declared once in :data:`OBJECT_FIELDS`: readers fill them, and sanitising, augmentation and
collation carry every declared field along, so adding one is one entry here and the reader
that fills it.

A *batch* (what :func:`~centernet_lightning.datasets.collate.collate_detection` returns and the
models consume) is the :class:`Batch` dict below. Objects are padded to the largest count in the
batch; ``mask`` marks the real ones.
"""

from __future__ import annotations

from typing import NamedTuple, TypedDict, TypeVar

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "OBJECT_FIELDS",
    "ObjectField",
    "Batch",
    "Detections",
    "clip_boxes",
    "valid_box_mask",
    "box_xywh_to_xyxy",
    "box_xyxy_to_xywh",
    "box_cxcywh_to_xyxy",
    "box_xyxy_to_cxcywh",
    "letterbox_inverse",
]


class ObjectField(NamedTuple):
    """A per-object field: its dtype and the value of padding (and of objects a reader left unset)."""

    dtype: torch.dtype
    pad: int | bool


OBJECT_FIELDS: dict[str, ObjectField] = {
    "labels": ObjectField(torch.int64, 0),
    # crowd / difficult / ignore regions: no training target (background to the heatmap loss, as
    # in the original), crowd boxes in evaluation (neither a miss nor a false positive)
    "ignore": ObjectField(torch.bool, False),
    "track_ids": ObjectField(torch.int64, -1),  # -1: no identity
}


class Batch(TypedDict, total=False):
    """A collated batch of B images holding up to N objects each.

    Keys: ``images`` float32 [B, 3, H, W]; ``bboxes`` float32 [B, N, 4] XYXY input pixels;
    ``mask`` bool [B, N] (True for real objects); every per-object field of :data:`OBJECT_FIELDS`
    that a sample holds, [B, N] padded with its ``pad`` value (``labels`` int64 always,
    ``ignore`` bool, ``track_ids`` int64); ``image_ids`` int64 [B];
    ``original_sizes`` int64 [B, 2] (h, w); ``letterbox`` float32 [B, 3] (scale, pad_x, pad_y);
    ``image_paths`` list[str] of length B.
    """

    images: Tensor
    bboxes: Tensor
    labels: Tensor
    ignore: Tensor
    track_ids: Tensor
    mask: Tensor
    image_ids: Tensor
    original_sizes: Tensor
    letterbox: Tensor
    image_paths: list[str]


class Detections(TypedDict):
    """Decoded detections for B images, padded to K per image, sorted by score.

    ``bboxes`` float32 [B, K, 4] XYXY input-image pixels; ``labels`` int64 [B, K];
    ``scores`` float32 [B, K]; ``indices`` int64 [B, K] flat output-grid cell ``y * W + x`` of each
    detection's peak, where other heads' outputs (re-ID embeddings) are gathered. Entries removed
    by a score threshold or NMS have score 0 and label -1 (padding), so shapes stay fixed for export.
    """

    bboxes: Tensor
    labels: Tensor
    scores: Tensor
    indices: Tensor


def clip_boxes(boxes: Tensor, height: float, width: float) -> Tensor:
    """Clamp XYXY boxes [..., 4] to the image ``[0, width] x [0, height]``."""
    x1, y1, x2, y2 = boxes.unbind(-1)
    return torch.stack((x1.clamp(0, width), y1.clamp(0, height), x2.clamp(0, width), y2.clamp(0, height)), dim=-1)


def valid_box_mask(boxes: Tensor, min_size: float = 0.0) -> Tensor:
    """True where an XYXY box [..., 4] is finite and wider and taller than ``min_size``."""
    widths = boxes[..., 2] - boxes[..., 0]
    heights = boxes[..., 3] - boxes[..., 1]
    return torch.isfinite(boxes).all(-1) & (widths > min_size) & (heights > min_size)


BoxArray = TypeVar("BoxArray", Tensor, np.ndarray)


def _concat(first: BoxArray, second: BoxArray) -> BoxArray:
    if isinstance(first, Tensor):
        return torch.cat((first, second), dim=-1)
    return np.concatenate((first, second), axis=-1)


def box_xywh_to_xyxy(boxes: BoxArray) -> BoxArray:
    """COCO ``[x, y, w, h]`` to ``[x1, y1, x2, y2]``; torch tensors or numpy arrays [..., 4]."""
    return _concat(boxes[..., :2], boxes[..., :2] + boxes[..., 2:])


def box_xyxy_to_xywh(boxes: BoxArray) -> BoxArray:
    """``[x1, y1, x2, y2]`` to COCO ``[x, y, w, h]``; torch tensors or numpy arrays [..., 4]."""
    return _concat(boxes[..., :2], boxes[..., 2:] - boxes[..., :2])


def box_cxcywh_to_xyxy(boxes: BoxArray) -> BoxArray:
    """``[cx, cy, w, h]`` (YOLO, once scaled) to ``[x1, y1, x2, y2]``; tensors or numpy arrays."""
    half = boxes[..., 2:] / 2
    return _concat(boxes[..., :2] - half, boxes[..., :2] + half)


def box_xyxy_to_cxcywh(boxes: BoxArray) -> BoxArray:
    """``[x1, y1, x2, y2]`` to ``[cx, cy, w, h]``; torch tensors or numpy arrays [..., 4]."""
    return _concat((boxes[..., :2] + boxes[..., 2:]) / 2, boxes[..., 2:] - boxes[..., :2])


def letterbox_inverse(bboxes: Tensor, letterbox: Tensor, original_sizes: Tensor | None = None) -> Tensor:
    """Map XYXY boxes from transformed-image pixels back to original-image pixels.

    Args:
        bboxes: [B, K, 4] (or [K, 4]) XYXY in the transformed (input) image.
        letterbox: [B, 3] (or [3]) ``(scale, pad_x, pad_y)`` from the sample/batch.
        original_sizes: optional [B, 2] (or [2]) ``(h, w)``; when given, boxes are clipped to it.

    Returns:
        Boxes of the same shape in original pixels: ``(box - pad) / scale``.
    """
    letterbox = letterbox.to(bboxes.dtype)
    if bboxes.ndim == letterbox.ndim + 1:  # one letterbox per image for its K boxes
        letterbox = letterbox.unsqueeze(-2)
    scale, pad_x, pad_y = letterbox.unbind(-1)
    pad = torch.stack((pad_x, pad_y, pad_x, pad_y), dim=-1)
    boxes = (bboxes - pad) / scale.unsqueeze(-1)
    if original_sizes is not None:
        sizes = original_sizes.to(bboxes.dtype)
        if bboxes.ndim == sizes.ndim + 1:
            sizes = sizes.unsqueeze(-2)
        upper = torch.stack((sizes[..., 1], sizes[..., 0], sizes[..., 1], sizes[..., 0]), dim=-1)
        boxes = torch.minimum(boxes.clamp(min=0), upper)
    return boxes
