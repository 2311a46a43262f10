"""The tensor operations of decoding: peak extraction, gathering at cells, box arithmetic, NMS.

Each head type (models/heads.py) decodes its own output with these; the detector composes them.

The default path uses only max-pool, topk, gather and arithmetic so that it exports to ONNX
and TorchScript; score thresholding keeps shapes fixed by zeroing scores instead of indexing.
Peak extraction runs after every forward, so it is built for speed: the max-pool as shifted
maxima (eagerly; graphs keep one MaxPool node) and the top-K in two stages, with the result of a
plain max-pool + one top-K over all C*H*W scores bit for bit (see :func:`topk_peaks`).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.ops import batched_nms

from .structures import PADDING_LABEL, Detections

__all__ = [
    "Peaks",
    "topk_peaks",
    "suppress_non_peaks",
    "gather_cells",
    "anchor_points",
    "decode_ltrb",
    "threshold_detections",
    "apply_nms",
    "mask_detections",
    "sort_detections",
    "reorder_detections",
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


def topk_peaks(scores: Tensor, k: int = 100, kernel: int = 3, logits: bool = False) -> Peaks:
    """The k best local maxima over all classes and positions, as the original CenterNet decodes.

    A pixel is a peak when it equals the max of its ``kernel x kernel`` neighbourhood (the
    max-pool replaces NMS); several classes may peak at the same location. Ranked by score, the
    result is that of one ``topk`` over all ``C * H * W`` suppressed scores, bit for bit, in eager
    code (see :func:`_two_stage_topk` for how it gets there faster and what graphs do with ties).

    Args:
        scores: [B, C, H, W] heatmap probabilities (after sigmoid), or logits with ``logits``.
        k: peaks per image, capped at ``C * H * W``.
        kernel: odd side of the max-pool window, in grid cells.
        logits: ``scores`` holds logits (any float dtype): the sigmoid is taken here, in float32,
            image by image on the CPU (one image's map at a time instead of a batch-sized one).

    Returns:
        :class:`Peaks`, each field [B, k]; entries past the last peak have score 0.
    """
    if kernel < 1 or kernel % 2 == 0:
        raise ValueError(f"kernel must be a positive odd number of cells, got {kernel}")
    if _in_graph() or scores.device.type != "cpu" or scores.shape[0] <= 1:
        return _image_peaks(scores, k, kernel, logits)
    # On the CPU image by image: every batch-sized temporary (42 MB at 8 x 80 x 128 x 128) would be
    # a fresh mapping whose first touch page-faults (microseconds per 4 KB page), while one image's
    # buffers are reused by the allocator from image to image. A tie then re-runs only its own
    # image's topk, which on the CPU ranks each row independently, so the result is the batched
    # one's. On CUDA (no page faults to save) a batch's topk may pick another kernel than one image's.
    images = [_image_peaks(image, k, kernel, logits) for image in scores.split(1)]
    return Peaks(*(torch.cat(field) for field in zip(*images)))


def _image_peaks(scores: Tensor, k: int, kernel: int, logits: bool) -> Peaks:
    """:func:`topk_peaks` in one pass over the batch of ``scores`` [B, C, H, W]."""
    scores = scores.contiguous()  # an NHWC map would be copied by every reshape below
    if logits:
        scores = scores.float().sigmoid()
    batch_size, num_classes, height, width = scores.shape
    peaks = suppress_non_peaks(scores, kernel)
    k = min(k, num_classes * height * width)
    # Two stages when they can skip rows: their k + 1 best values, distinct, fix the single topk's answer.
    two_stage = k + 1 < num_classes * height
    if two_stage:
        top_scores, top_indices = _two_stage_topk(peaks, k + 1)
        # Eagerly, one host sync: sorted and distinct means strictly falling; ``>`` is False at a NaN
        # (topk puts NaN first), so NaN counts as a tie. Graphs cannot branch on data: they keep two stages.
        two_stage = _in_graph() or bool((top_scores[:, :-1] > top_scores[:, 1:]).all())
        top_scores, top_indices = top_scores[:, :k], top_indices[:, :k]
    if not two_stage:
        top_scores, top_indices = peaks.reshape(batch_size, num_classes * height * width).topk(k)
    labels = torch.div(top_indices, height * width, rounding_mode="floor")
    spatial = top_indices - labels * (height * width)
    ys = torch.div(spatial, width, rounding_mode="floor")
    xs = spatial - ys * width
    return Peaks(top_scores, labels, ys, xs, spatial)


def _in_graph() -> bool:
    """True while ``torch.jit.trace``, ``torch.export`` (the dynamo ONNX exporter) or ``torch.compile`` records."""
    is_compiling = getattr(torch.compiler, "is_compiling", None)  # torch >= 2.3; the exporter needs 2.5 anyway
    return torch.jit.is_tracing() or (is_compiling is not None and is_compiling())


def suppress_non_peaks(scores: Tensor, kernel: int = 3) -> Tensor:
    """``scores`` [B, C, H, W] where a cell equals the max of its ``kernel x kernel`` window, 0 elsewhere.

    Computed as ``scores * (max_pool2d(scores) == scores)``, the original's ``_nms``, so that NaN
    and the sign of zero come out as they always have.
    """
    if _in_graph() or scores.requires_grad:
        # One MaxPool node, which runtimes vectorise; autograd cannot follow the in-place path below.
        pooled = F.max_pool2d(scores, kernel, stride=1, padding=kernel // 2)
        return scores * (pooled == scores).to(scores.dtype)
    # The window max is a fresh buffer: the mask and the product overwrite it instead of allocating
    # two more maps (fewer first-touch page faults right after a forward); x * m == m * x exactly.
    return _window_max(scores, kernel).eq_(scores).mul_(scores)


def _window_max(scores: Tensor, kernel: int) -> Tensor:
    """``F.max_pool2d(scores, kernel, stride=1, padding=kernel // 2)`` [B, C, H, W], bit for bit.

    Hand-written because PyTorch's CPU max-pool over an NCHW tensor is not vectorised: at
    80 x 128 x 128 it takes 15-25 ms where these shifted ``torch.maximum``s (a column pass, then a
    row pass) take about 1 ms. A max is exact, so only the sign of a zero maximum can differ
    (+0 against -0), which no ``==`` sees; NaN propagates as in the pool.
    """
    reach = kernel // 2
    columns = scores.clone()
    for shift in range(1, reach + 1):  # over window offsets, not pixels
        torch.maximum(columns[..., shift:, :], scores[..., :-shift, :], out=columns[..., shift:, :])
        torch.maximum(columns[..., :-shift, :], scores[..., shift:, :], out=columns[..., :-shift, :])
    pooled = columns.clone()
    for shift in range(1, reach + 1):
        torch.maximum(pooled[..., shift:], columns[..., :-shift], out=pooled[..., shift:])
        torch.maximum(pooled[..., :-shift], columns[..., shift:], out=pooled[..., :-shift])
    return pooled


def _two_stage_topk(peaks: Tensor, k: int) -> tuple[Tensor, Tensor]:
    """The k best of suppressed scores [B, C, H, W] through a short list of candidates.

    Like the original's two-stage ``_topk`` (per class, then over the C*K candidates), with rows of
    the map (one class, one grid row) as the first stage, where a max over each row is one
    vectorised pass instead of C heap scans: the k rows with the largest maxima hold the k largest
    values (a value of any other row is at most its row's max, at most each chosen row's max, and
    those are k values), so the second ``topk`` looks at k * W candidates. The values are always
    those of ``peaks.reshape(B, -1).topk(k)``.

    Ties: ``torch.topk`` does not define the order of equal values (the CPU kernel's comes from
    ``std::partial_sort`` or ``std::nth_element`` over the whole row; CUDA's differs; ONNX's TopK
    puts the lower index first). :func:`topk_peaks` asks for k + 1 values: when those are distinct,
    the k best and their order are unique and this route gives them; otherwise (plateaus, score-0
    padding when there are fewer peaks than k, NaN) eager code runs the single ``topk`` again,
    which keeps it bit-identical to that. A traced or exported graph cannot branch on data, so it
    keeps this result, whose equal scores may be ordered differently from a single ``topk``. The
    chosen rows stay in index order, so under ONNX's lower-index-first rule the graph's order is
    that of a single TopK.

    Returns:
        scores float [B, k] (descending) and flat indices int64 [B, k] into ``C * H * W``.
    """
    batch_size, num_classes, height, width = peaks.shape
    rows = peaks.reshape(batch_size, num_classes * height, width)  # [B, C*H, W]
    chosen = rows.amax(dim=2).topk(k).indices.sort(dim=1).values  # [B, k] row numbers, ascending
    candidates = rows.gather(1, chosen.unsqueeze(-1).expand(-1, -1, width)).reshape(batch_size, k * width)
    top_scores, positions = candidates.topk(k)  # [B, k] positions among the k * W candidates
    row_of = torch.div(positions, width, rounding_mode="floor")
    return top_scores, chosen.gather(1, row_of) * width + (positions - row_of * width)


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


def threshold_detections(detections: Detections, score_threshold: float = 0.0) -> Detections:
    """Entries scored under ``score_threshold``, or 0 (no peak), become padding (score 0, label -1).

    Shapes stay fixed (no indexing), so this runs inside exported graphs too.
    """
    scores = detections["scores"]
    return mask_detections(detections, (scores > 0) & (scores >= score_threshold))


def apply_nms(detections: Detections, iou_threshold: float) -> Detections:
    """Class-wise NMS over a padded batch in one ``torchvision.ops.batched_nms`` call.

    Suppressed entries become padding (score 0, label -1) and the rest are re-sorted by score;
    every per-detection field (``indices``, ``embeddings``) follows its detection. Not part of the
    export path (NMS has a data-dependent output size).
    """
    bboxes, labels, scores = detections["bboxes"], detections["labels"], detections["scores"]
    batch_size, k = scores.shape
    num_groups = int(labels.max().item()) + 2 if labels.numel() else 1
    # One group per (image, class) so boxes of different images or classes never suppress each other.
    groups = (labels + 1) + torch.arange(batch_size, device=labels.device).unsqueeze(1) * num_groups
    keep = batched_nms(bboxes.reshape(-1, 4).float(), scores.reshape(-1).float(), groups.reshape(-1), iou_threshold)
    kept = torch.zeros(batch_size * k, dtype=torch.bool, device=scores.device)
    kept[keep] = True
    return sort_detections(mask_detections(detections, kept.view(batch_size, k)))


def mask_detections(detections: Detections, kept: Tensor) -> Detections:
    """``detections`` with every entry where ``kept`` [B, K] is False made padding (score 0, label -1);
    the entries keep their places, and padding stays padding. Runs inside exported graphs."""
    scores, labels = detections["scores"], detections["labels"]
    return {
        **detections,
        "scores": scores * kept.to(scores.dtype),
        "labels": torch.where(kept, labels, torch.full_like(labels, PADDING_LABEL)),
    }


def sort_detections(detections: Detections) -> Detections:
    """Every field [B, K, ...] of ``detections`` reordered by descending score."""
    return reorder_detections(detections, detections["scores"].sort(dim=1, descending=True).indices)


def reorder_detections(detections: Detections, order: Tensor) -> Detections:
    """Every field [B, K, ...] of ``detections`` with its K entries taken in ``order`` [B, K]."""
    return {key: _gather_entries(value, order) for key, value in detections.items()}  # type: ignore[return-value]


def _gather_entries(values: Tensor, order: Tensor) -> Tensor:
    """``values`` [B, K, ...] with its K entries taken in ``order`` [B, K]."""
    index = order.view(*order.shape, *([1] * (values.ndim - 2))).expand(*order.shape, *values.shape[2:])
    return values.gather(1, index)
