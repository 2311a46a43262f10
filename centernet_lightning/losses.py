"""Heatmap and box losses.

Heatmap losses take raw logits and are computed with ``logsigmoid`` so that they stay finite
for any logit, in float16 autocast too. Box losses take XYXY boxes and return one value per box
(``reduction="none"``); the caller averages over supervised positions.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import complete_box_iou_loss, distance_box_iou_loss, generalized_box_iou_loss

__all__ = [
    "cornernet_focal_loss",
    "quality_focal_loss",
    "HEATMAP_LOSSES",
    "l1_box_loss",
    "smooth_l1_box_loss",
    "iou_box_loss",
    "giou_box_loss",
    "diou_box_loss",
    "ciou_box_loss",
    "BOX_LOSSES",
    "get_heatmap_loss",
    "get_box_loss",
]

_EPS = 1e-7


def cornernet_focal_loss(logits: Tensor, targets: Tensor, alpha: float = 2.0, beta: float = 4.0) -> Tensor:
    """Penalty-reduced pixel-wise focal loss (CornerNet eq. 1, CenterNet eq. 1).

    ``logits`` and ``targets`` are [B, C, H, W]; targets are Gaussian heatmaps with 1 at object
    centres. The loss is summed over the batch and divided by ``max(1, number of positives)``,
    which equals the original code's ``neg_loss`` (it returns the negative term alone when there
    is no positive). The original clamps ``sigmoid`` to [1e-4, 1 - 1e-4]; computing from logits
    makes that clamp unnecessary and differs from it only where a probability passes the clamp.
    """
    logits = logits.float()
    targets = targets.float()
    log_p = F.logsigmoid(logits)
    log_not_p = F.logsigmoid(-logits)
    prob = log_p.exp()
    positives = targets.eq(1).float()
    positive_loss = log_p * (1 - prob) ** alpha * positives
    negative_loss = log_not_p * prob**alpha * (1 - targets) ** beta * (1 - positives)
    num_positives = positives.sum().clamp(min=1)
    return -(positive_loss.sum() + negative_loss.sum()) / num_positives


def quality_focal_loss(logits: Tensor, targets: Tensor, beta: float = 2.0) -> Tensor:
    """Quality focal loss (Generalized Focal Loss, Li et al. 2020, eq. 5) on soft heatmap targets.

    ``BCE(sigmoid(logits), targets) * |targets - sigmoid(logits)|^beta``, summed and divided by
    ``max(1, number of pixels whose target is 1)`` like the CornerNet loss.
    """
    logits = logits.float()
    targets = targets.float()
    prob = torch.sigmoid(logits)
    bce = F.binary_cross_entropy_with_logits(logits, targets, reduction="none")
    loss = bce * (targets - prob).abs().pow(beta)
    num_positives = targets.eq(1).sum().clamp(min=1)
    return loss.sum() / num_positives


HEATMAP_LOSSES: dict[str, Callable[..., Tensor]] = {
    "cornernet_focal": cornernet_focal_loss,
    "quality_focal": quality_focal_loss,
}


def _ensure_ordered(boxes: Tensor) -> Tensor:
    # A predicted box of zero width or height makes CIoU's aspect term atan(w / h) = 0 / 0.
    # Giving it an epsilon extent keeps every IoU loss finite and is a no-op for proper boxes.
    # The epsilon scales with the coordinate: a fixed 1e-7 vanishes in float32 once |x| >~ 1
    # (x + 1e-7 == x), which left a zero-size box at e.g. x = 10 with a NaN CIoU.
    x1, y1, x2, y2 = boxes.unbind(-1)
    min_x2 = x1 + _EPS * (1 + x1.abs())
    min_y2 = y1 + _EPS * (1 + y1.abs())
    return torch.stack((x1, y1, torch.maximum(x2, min_x2), torch.maximum(y2, min_y2)), -1)


def l1_box_loss(pred: Tensor, target: Tensor) -> Tensor:
    """Sum of absolute coordinate errors per box, [..., 4] -> [...] (pixels)."""
    return (pred - target).abs().sum(-1)


def smooth_l1_box_loss(pred: Tensor, target: Tensor, beta: float = 1.0) -> Tensor:
    """Smooth-L1 (Huber) coordinate error per box, summed over the 4 coordinates."""
    return F.smooth_l1_loss(pred, target, reduction="none", beta=beta).sum(-1)


def iou_box_loss(pred: Tensor, target: Tensor) -> Tensor:
    """``1 - IoU`` per box pair; torchvision has pairwise ``box_iou`` but no element-wise IoU loss."""
    pred = _ensure_ordered(pred.float())
    target = target.float()
    left_top = torch.maximum(pred[..., :2], target[..., :2])
    right_bottom = torch.minimum(pred[..., 2:], target[..., 2:])
    intersection = (right_bottom - left_top).clamp(min=0).prod(-1)
    area_pred = (pred[..., 2:] - pred[..., :2]).prod(-1)
    area_target = (target[..., 2:] - target[..., :2]).prod(-1)
    union = area_pred + area_target - intersection
    return 1 - intersection / (union + _EPS)


def giou_box_loss(pred: Tensor, target: Tensor) -> Tensor:
    """Generalized IoU loss (torchvision ``generalized_box_iou_loss``)."""
    return generalized_box_iou_loss(_ensure_ordered(pred.float()), target.float(), eps=_EPS)


def diou_box_loss(pred: Tensor, target: Tensor) -> Tensor:
    """Distance IoU loss (torchvision ``distance_box_iou_loss``)."""
    return distance_box_iou_loss(_ensure_ordered(pred.float()), target.float(), eps=_EPS)


def ciou_box_loss(pred: Tensor, target: Tensor) -> Tensor:
    """Complete IoU loss (torchvision ``complete_box_iou_loss``)."""
    return complete_box_iou_loss(_ensure_ordered(pred.float()), target.float(), eps=_EPS)


BOX_LOSSES: dict[str, Callable[[Tensor, Tensor], Tensor]] = {
    "l1": l1_box_loss,
    "smooth_l1": smooth_l1_box_loss,
    "iou": iou_box_loss,
    "giou": giou_box_loss,
    "diou": diou_box_loss,
    "ciou": ciou_box_loss,
}


def get_heatmap_loss(name: str) -> Callable[..., Tensor]:
    """Look up a heatmap loss by name, with an error listing the valid names."""
    if name not in HEATMAP_LOSSES:
        raise ValueError(f"Unknown heatmap loss {name!r}; valid names: {sorted(HEATMAP_LOSSES)}")
    return HEATMAP_LOSSES[name]


def get_box_loss(name: str) -> Callable[[Tensor, Tensor], Tensor]:
    """Look up a box loss by name, with an error listing the valid names."""
    if name not in BOX_LOSSES:
        raise ValueError(f"Unknown box loss {name!r}; valid names: {sorted(BOX_LOSSES)}")
    return BOX_LOSSES[name]
