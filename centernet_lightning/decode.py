"""The tensor operations of decoding: peak extraction, gathering at cells, box arithmetic, NMS.

Each head type (models/heads.py) decodes its own output with these; the detector composes them.

The default path uses only max-pool, topk, gather and arithmetic so that it exports to ONNX
and TorchScript; score thresholding keeps shapes fixed by zeroing scores instead of indexing.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import batched_nms

from .structures import Detections

__all__ = [
    "Peaks",
    "topk_peaks",
    "gather_cells",
    "anchor_points",
    "decode_ltrb",
    "finalize_detections",
    "apply_nms",
]


class Peaks(NamedTuple):
    """The top-K heatmap peaks of B images, each field [B, K], sorted by score (descending).

    ``scores`` float probabilities; ``labels`` int64 class indices; ``ys``/``xs`` int64 grid rows and
    columns; ``indices`` int64 flat cell indices ``ys * W + xs``, where every other head's output
    is gathered (boxes, sizes, offsets, re-ID embeddings).
    """

    scores: Tensor
    labels: Tensor
    ys: Tensor
    xs: Tensor
    indices: Tensor


def topk_peaks(scores: Tensor, k: int = 100, kernel: int = 3) -> Peaks:
    """The k best local maxima over all classes and positions, as the original CenterNet decodes.

    A pixel is a peak when it equals the max of its ``kernel x kernel`` neighbourhood (the
    max-pool replaces NMS); several classes may peak at the same location.

    Args:
        scores: [B, C, H, W] heatmap probabilities (after sigmoid).

    Returns:
        :class:`Peaks`, each field [B, k]; ``k`` is capped at ``C * H * W``.
    """
    batch_size, num_classes, height, width = scores.shape
    pooled = F.max_pool2d(scores, kernel, stride=1, padding=(kernel - 1) // 2)
    peaks = scores * (pooled == scores).to(scores.dtype)
    k = min(k, num_classes * height * width)
    top_scores, top_indices = peaks.reshape(batch_size, -1).topk(k)
    labels = torch.div(top_indices, height * width, rounding_mode="floor")
    spatial = top_indices - labels * (height * width)
    ys = torch.div(spatial, width, rounding_mode="floor")
    xs = spatial - ys * width
    return Peaks(top_scores, labels, ys, xs, spatial)


def gather_cells(output: Tensor, indices: Tensor) -> Tensor:
    """Values of a head's output [B, D, H, W] at flat cells ``indices`` [B, K]: [B, K, D]."""
    batch_size, channels = output.shape[:2]
    index = indices.unsqueeze(1).expand(batch_size, channels, indices.shape[1])  # [B, D, K]
    return output.reshape(batch_size, channels, -1).gather(2, index).transpose(1, 2)


def anchor_points(ys: Tensor, xs: Tensor, stride: int) -> tuple[Tensor, Tensor]:
    """Input-pixel coordinates of grid cells: the cell centre ``(x + 0.5) * stride``.

    Grid cell x covers input pixels ``[x * stride, (x + 1) * stride)`` because targets put an
    object's peak at its truncated centre ``floor(cx / stride)``.
    """
    return (xs.to(torch.float32) + 0.5) * stride, (ys.to(torch.float32) + 0.5) * stride


def decode_ltrb(box_map: Tensor, indices: Tensor, width: int, stride: int) -> Tensor:
    """Left/top/right/bottom distances gathered at flat cells, made into XYXY boxes.

    Args:
        box_map: [B, 4, H, W] distances in grid cells (non-negative).
        indices: int64 [B, K] flat cells ``y * W + x``; ``width``: W.
        stride: input pixels per cell (1 gives boxes in grid cells).

    Returns:
        float [B, K, 4] XYXY boxes, measured from each cell's centre, times ``stride``.
    """
    distances = gather_cells(box_map, indices) * stride  # [B, K, 4]
    ys = torch.div(indices, width, rounding_mode="floor")
    anchor_x, anchor_y = anchor_points(ys, indices - ys * width, stride)
    return torch.stack(
        (
            anchor_x - distances[..., 0],
            anchor_y - distances[..., 1],
            anchor_x + distances[..., 2],
            anchor_y + distances[..., 3],
        ),
        dim=-1,
    )


def apply_nms(detections: Detections, iou_threshold: float) -> Detections:
    """Class-wise NMS over a padded batch in one ``torchvision.ops.batched_nms`` call.

    Suppressed entries become padding (score 0, label -1) and the rest are re-sorted by score.
    Not part of the export path (NMS has a data-dependent output size).
    """
    bboxes, labels, scores = detections["bboxes"], detections["labels"], detections["scores"]
    batch_size, k = scores.shape
    num_groups = int(labels.max().item()) + 2 if labels.numel() else 1
    # One group per (image, class) so boxes of different images or classes never suppress each other.
    groups = (labels + 1) + torch.arange(batch_size, device=labels.device).unsqueeze(1) * num_groups
    keep = batched_nms(bboxes.reshape(-1, 4).float(), scores.reshape(-1).float(), groups.reshape(-1), iou_threshold)
    kept = torch.zeros(batch_size * k, dtype=torch.bool, device=scores.device)
    kept[keep] = True
    kept = kept.view(batch_size, k) & (scores > 0)
    return _sort_padded(bboxes, labels, scores, detections["indices"], kept)


def _sort_padded(bboxes: Tensor, labels: Tensor, scores: Tensor, indices: Tensor, kept: Tensor) -> Detections:
    scores = scores * kept.to(scores.dtype)
    labels = torch.where(kept, labels, torch.full_like(labels, -1))
    scores, order = scores.sort(dim=1, descending=True)
    labels = labels.gather(1, order)
    bboxes = bboxes.gather(1, order.unsqueeze(-1).expand_as(bboxes))
    return Detections(bboxes=bboxes, labels=labels, scores=scores, indices=indices.gather(1, order))


def finalize_detections(
    bboxes: Tensor, peaks: Peaks, score_threshold: float = 0.0, nms_iou: float | None = None
) -> Detections:
    """Detections from decoded boxes [B, K, 4] (input pixels) and their peaks.

    Entries under ``score_threshold`` or suppressed by the optional class-wise NMS (``nms_iou``)
    become padding (score 0, label -1), so shapes stay fixed; ``indices`` keeps each entry's cell.
    """
    scores, labels = peaks.scores, peaks.labels
    if score_threshold > 0:
        kept = scores >= score_threshold
        scores = scores * kept.to(scores.dtype)
        labels = torch.where(kept, labels, torch.full_like(labels, -1))
    detections = Detections(bboxes=bboxes, labels=labels, scores=scores, indices=peaks.indices)
    if nms_iou is not None:
        detections = apply_nms(detections, nms_iou)
    return detections
