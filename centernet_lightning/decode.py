"""Turn CenterNet outputs into detections: peak extraction, box decoding, optional NMS.

The default path uses only max-pool, topk, gather and arithmetic so that it exports to ONNX
and TorchScript; score thresholding keeps shapes fixed by zeroing scores instead of indexing.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import batched_nms

from .structures import Detections

__all__ = ["topk_peaks", "decode_boxes", "decode_detections", "apply_nms", "anchor_points"]


def topk_peaks(scores: Tensor, k: int = 100, kernel: int = 3) -> tuple[Tensor, Tensor, Tensor, Tensor]:
    """The k best local maxima over all classes and positions, as the original CenterNet decodes.

    A pixel is a peak when it equals the max of its ``kernel x kernel`` neighbourhood (the
    max-pool replaces NMS); several classes may peak at the same location.

    Args:
        scores: [B, C, H, W] heatmap probabilities (after sigmoid).

    Returns:
        ``(scores, labels, ys, xs)``, each [B, k]: peak scores (descending), class indices and grid
        rows/columns (int64). ``k`` is capped at ``C * H * W``.
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
    return top_scores, labels, ys, xs


def anchor_points(ys: Tensor, xs: Tensor, stride: int) -> tuple[Tensor, Tensor]:
    """Input-pixel coordinates of grid cells: the cell centre ``(x + 0.5) * stride``.

    Grid cell x covers input pixels ``[x * stride, (x + 1) * stride)`` because targets put an
    object's peak at its truncated centre ``floor(cx / stride)``.
    """
    return (xs.to(torch.float32) + 0.5) * stride, (ys.to(torch.float32) + 0.5) * stride


def decode_boxes(box_map: Tensor, ys: Tensor, xs: Tensor, stride: int) -> Tensor:
    """Gather left/top/right/bottom distances at the given cells and make XYXY input-pixel boxes.

    Args:
        box_map: [B, 4, H, W] distances in grid cells (non-negative).
        ys, xs: int64 [B, K] grid cells.

    Returns:
        float [B, K, 4] XYXY boxes in input-image pixels.
    """
    batch_size, _, height, width = box_map.shape
    indices = (ys * width + xs).unsqueeze(1).expand(batch_size, 4, ys.shape[1])  # [B, 4, K]
    distances = box_map.reshape(batch_size, 4, height * width).gather(2, indices).transpose(1, 2)
    distances = distances * stride  # [B, K, 4] pixels
    anchor_x, anchor_y = anchor_points(ys, xs, stride)
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
    return _sort_padded(bboxes, labels, scores, kept)


def _sort_padded(bboxes: Tensor, labels: Tensor, scores: Tensor, kept: Tensor) -> Detections:
    scores = scores * kept.to(scores.dtype)
    labels = torch.where(kept, labels, torch.full_like(labels, -1))
    scores, order = scores.sort(dim=1, descending=True)
    labels = labels.gather(1, order)
    bboxes = bboxes.gather(1, order.unsqueeze(-1).expand_as(bboxes))
    return Detections(bboxes=bboxes, labels=labels, scores=scores)


def decode_detections(
    heatmap: Tensor,
    box_map: Tensor,
    stride: int,
    num_detections: int = 100,
    kernel: int = 3,
    score_threshold: float = 0.0,
    nms_iou: float | None = None,
) -> Detections:
    """Decode heatmap probabilities [B, C, H, W] and box distances [B, 4, H, W] to detections.

    Returns K = ``num_detections`` entries per image (see :class:`Detections`); boxes are XYXY in
    input-image pixels. Entries under ``score_threshold`` or suppressed by the optional class-wise
    NMS (``nms_iou``) are padding: score 0, label -1.
    """
    scores, labels, ys, xs = topk_peaks(heatmap, num_detections, kernel)
    bboxes = decode_boxes(box_map, ys, xs, stride)
    if score_threshold > 0:
        kept = scores >= score_threshold
        scores = scores * kept.to(scores.dtype)
        labels = torch.where(kept, labels, torch.full_like(labels, -1))
    detections = Detections(bboxes=bboxes, labels=labels, scores=scores)
    if nms_iou is not None:
        detections = apply_nms(detections, nms_iou)
    return detections
