"""Training targets: Gaussian radii, heatmaps and box targets, vectorised over a padded batch.

All functions work on the device of their inputs, with no Python loop over objects or pixels.
Heatmap targets are rendered in *grid* pixels (input pixels / output stride); the targets
:func:`encode_targets` gives every head are in grid cells too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

__all__ = [
    "cornernet_radius",
    "cornernet_fixed_radius",
    "ttfnet_radius",
    "RADIUS_METHODS",
    "gaussian_radii",
    "render_heatmap",
    "render_heatmaps",
    "draw_gaussians",
    "box_target_indices",
    "CenterTargets",
    "encode_targets",
]


def cornernet_radius(heights: Tensor, widths: Tensor, min_overlap: float = 0.7) -> Tensor:
    """Gaussian radius of the original CenterNet/CornerNet code (``gaussian_radius``).

    The radius is the smallest of three cases (both corners moved inward, outward, or one of
    each) so that a box shifted by it still has IoU >= ``min_overlap`` with the ground truth
    (CornerNet, Law & Deng 2018, sec. 3.2). Each quadratic root is taken as
    ``(b + sqrt(b^2 - 4ac)) / 2`` without dividing by ``2a``: a known quirk of the reference
    code that CenterNet's published results depend on, kept here on purpose.
    """
    heights, widths = heights.double(), widths.double()
    b1 = heights + widths
    c1 = widths * heights * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 + torch.sqrt(b1**2 - 4 * c1)) / 2

    b2 = 2 * (heights + widths)
    c2 = (1 - min_overlap) * widths * heights
    r2 = (b2 + torch.sqrt(b2**2 - 4 * 4 * c2)) / 2

    a3 = 4 * min_overlap
    b3 = -2 * min_overlap * (heights + widths)
    c3 = (min_overlap - 1) * widths * heights
    r3 = (b3 + torch.sqrt(b3**2 - 4 * a3 * c3)) / 2
    return torch.minimum(torch.minimum(r1, r2), r3)


def cornernet_fixed_radius(heights: Tensor, widths: Tensor, min_overlap: float = 0.3) -> Tensor:
    """Corrected CornerNet radius: the proper roots of the three quadratics, divided by ``2a``.

    This is the form mmdetection's ``gaussian_radius`` uses (with ``min_overlap=0.3`` in its
    CenterNet config): the smaller root for the two cases whose parabola opens upwards and the
    larger root for the third.
    """
    heights, widths = heights.double(), widths.double()
    b1 = heights + widths
    c1 = widths * heights * (1 - min_overlap) / (1 + min_overlap)
    r1 = (b1 - torch.sqrt(b1**2 - 4 * c1)) / 2

    b2 = 2 * (heights + widths)
    c2 = (1 - min_overlap) * widths * heights
    r2 = (b2 - torch.sqrt(b2**2 - 4 * 4 * c2)) / (2 * 4)

    a3 = 4 * min_overlap
    b3 = -2 * min_overlap * (heights + widths)
    c3 = (min_overlap - 1) * widths * heights
    r3 = (b3 + torch.sqrt(b3**2 - 4 * a3 * c3)) / (2 * a3)
    return torch.minimum(torch.minimum(r1, r2), r3)


def ttfnet_radius(heights: Tensor, widths: Tensor, alpha: float = 0.54) -> tuple[Tensor, Tensor]:
    """TTFNet's elliptical radii ``(radius_y, radius_x) = int(alpha * h / 2), int(alpha * w / 2)``.

    TTFNet (Liu et al. 2020, eq. 2) uses ``alpha = 0.54``.
    """
    return (heights.double() / 2 * alpha).floor(), (widths.double() / 2 * alpha).floor()


def _cornernet_radii(heights: Tensor, widths: Tensor, min_overlap: float) -> tuple[Tensor, Tensor]:
    # The reference code evaluates the radius on the ceiled box size and truncates it to int.
    radius = cornernet_radius(heights.ceil(), widths.ceil(), min_overlap).floor().clamp(min=0)
    return radius, radius


def _cornernet_fixed_radii(heights: Tensor, widths: Tensor, min_overlap: float) -> tuple[Tensor, Tensor]:
    radius = cornernet_fixed_radius(heights.ceil(), widths.ceil(), min_overlap).floor().clamp(min=0)
    return radius, radius


def _ttfnet_radii(heights: Tensor, widths: Tensor, alpha: float) -> tuple[Tensor, Tensor]:
    radius_y, radius_x = ttfnet_radius(heights, widths, alpha)
    return radius_y.clamp(min=0), radius_x.clamp(min=0)


# Each method maps (heights, widths, parameter) to integer (radius_y, radius_x). The parameter is
# ``min_overlap`` for the CornerNet variants and ``alpha`` for TTFNet.
RADIUS_METHODS: dict[str, Callable[[Tensor, Tensor, float], tuple[Tensor, Tensor]]] = {
    "cornernet": _cornernet_radii,
    "cornernet_fixed": _cornernet_fixed_radii,
    "ttfnet": _ttfnet_radii,
}
_CHUNK_ELEMENTS = 1 << 25  # at most 32M elements (256 MB of float64) in the per-object Gaussian tensor

DEFAULT_PARAMETER = {"cornernet": 0.7, "cornernet_fixed": 0.3, "ttfnet": 0.54}


def gaussian_radii(
    heights: Tensor, widths: Tensor, method: str = "cornernet", parameter: float | None = None
) -> tuple[Tensor, Tensor]:
    """Integer Gaussian radii ``(radius_y, radius_x)`` (float64 tensors) for boxes of the given size.

    ``parameter`` is ``min_overlap`` (CornerNet variants, defaults 0.7 / 0.3) or ``alpha``
    (TTFNet, default 0.54).
    """
    if method not in RADIUS_METHODS:
        raise ValueError(f"Unknown heatmap method {method!r}; valid names: {sorted(RADIUS_METHODS)}")
    if parameter is None:
        parameter = DEFAULT_PARAMETER[method]
    return RADIUS_METHODS[method](heights, widths, parameter)


def render_heatmaps(
    boxes: Tensor,
    labels: Tensor,
    mask: Tensor,
    num_classes: int,
    height: int,
    width: int,
    method: str = "cornernet",
    parameter: float | None = None,
) -> tuple[Tensor, Tensor]:
    """Render class heatmaps for a padded batch.

    Args:
        boxes: float [B, N, 4] XYXY in heatmap-grid pixels.
        labels: int64 [B, N] class indices.
        mask: bool [B, N], True for real objects.
        method, parameter: see :func:`gaussian_radii`.

    Returns:
        ``(heatmaps, centers)``: heatmaps float32 [B, C, H, W] with a peak of 1 at each object's
        centre, and centers int64 [B, N, 2] ``(x, y)`` grid cells of those peaks. Objects that are
        masked out or degenerate after clipping have no peak and a False entry in the returned
        validity (``centers`` is -1 there).

    As in the original CenterNet ``ctdet`` target: boxes are clipped to ``[0, W-1] x [0, H-1]``,
    the peak sits on the integer-truncated centre, the Gaussian has ``sigma = (2r + 1) / 6`` and
    is cut to the ``(2r+1)``-wide window, and overlapping Gaussians of one class are max-merged.
    """
    x1 = boxes[..., 0].clamp(0, width - 1)
    y1 = boxes[..., 1].clamp(0, height - 1)
    x2 = boxes[..., 2].clamp(0, width - 1)
    y2 = boxes[..., 3].clamp(0, height - 1)
    box_w, box_h = x2 - x1, y2 - y1
    valid = mask & (box_w > 0) & (box_h > 0) & (labels >= 0) & (labels < num_classes)
    # Objects that are not drawn (padding, inverted or non-finite boxes) become an empty box at the
    # origin: a box with one negative side makes the CornerNet radius sqrt(negative) = NaN, and
    # NaN * 0 would leak into the heatmap through the max-merge.
    x1, y1, x2, y2 = (torch.where(valid, coord, torch.zeros_like(coord)) for coord in (x1, y1, x2, y2))
    box_w, box_h = x2 - x1, y2 - y1

    radius_y, radius_x = gaussian_radii(box_h, box_w, method, parameter)  # [B, N] float64
    center_x = ((x1 + x2) / 2).floor().long()  # truncation == floor for non-negative coords
    center_y = ((y1 + y2) / 2).floor().long()
    channels = labels.clamp(0, num_classes - 1)
    heatmaps = draw_gaussians(center_x, center_y, radius_y, radius_x, channels, valid, num_classes, height, width)

    centers = torch.stack((center_x, center_y), dim=-1)
    centers = centers.masked_fill(~valid.unsqueeze(-1), -1)
    return heatmaps, centers


def draw_gaussians(
    center_x: Tensor,
    center_y: Tensor,
    radius_y: Tensor,
    radius_x: Tensor,
    channels: Tensor,
    valid: Tensor,
    num_channels: int,
    height: int,
    width: int,
) -> Tensor:
    """Max-merged Gaussians at integer grid points of a padded batch: [B, num_channels, H, W] float32.

    Args:
        center_x, center_y: int64 [B, M] grid cells of the peaks (a peak of exactly 1).
        radius_y, radius_x: [B, M] integer radii (float64, from :func:`gaussian_radii`); the window
            is ``(2r + 1)`` wide and ``sigma = (2r + 1) / 6``, as the original ``draw_umich_gaussian``.
        channels: int64 [B, M] channel of each point (in ``[0, num_channels)``).
        valid: bool [B, M]; points that are False draw nothing.

    Shared by the class heatmaps (:func:`render_heatmaps`) and the joint heatmaps of keypoint models.
    """
    batch_size, num_points = channels.shape
    device = center_x.device

    # Each object only touches its (2ry+1) x (2rx+1) window, so Gaussians are rendered in windows
    # of the batch's largest radius (well under the full grid: r <~ 0.3 of the box side) and
    # max-merged into the flat heatmap by one scatter. The window is separable,
    # exp(-(dx^2/2sx^2 + dy^2/2sy^2)) = gx * gy; the factors and their product are float64 like
    # the reference (numpy) code and rounded once to float32, so the heatmap equals the original.
    radius_y = radius_y * valid  # objects not drawn: radius 0 and an all-zero window
    radius_x = radius_x * valid
    max_radius_y = min(int(radius_y.max().item()) if radius_y.numel() else 0, height - 1)
    max_radius_x = min(int(radius_x.max().item()) if radius_x.numel() else 0, width - 1)
    offsets_y = torch.arange(-max_radius_y, max_radius_y + 1, device=device)  # [Dy]
    offsets_x = torch.arange(-max_radius_x, max_radius_x + 1, device=device)  # [Dx]
    rows = center_y.unsqueeze(-1) + offsets_y  # [B, N, Dy] grid rows of each window
    columns = center_x.unsqueeze(-1) + offsets_x  # [B, N, Dx]
    sigma_y = ((2 * radius_y + 1) / 6).unsqueeze(-1)
    sigma_x = ((2 * radius_x + 1) / 6).unsqueeze(-1)
    offsets_y64, offsets_x64 = offsets_y.double(), offsets_x.double()
    keep_y = (offsets_y.abs() <= radius_y.unsqueeze(-1)) & (rows >= 0) & (rows < height) & valid.unsqueeze(-1)
    keep_x = (offsets_x.abs() <= radius_x.unsqueeze(-1)) & (columns >= 0) & (columns < width)
    gaussian_y = torch.exp(-(offsets_y64**2) / (2 * sigma_y**2)) * keep_y  # [B, N, Dy]
    gaussian_x = torch.exp(-(offsets_x64**2) / (2 * sigma_x**2)) * keep_x  # [B, N, Dx]

    heatmaps = torch.zeros(batch_size * num_channels * height * width, device=device)
    # Flat index of every window cell; cells outside the grid are clamped onto a border cell, where
    # their value 0 cannot change a max.
    image_rows = torch.arange(batch_size, device=device).unsqueeze(1) * num_channels + channels
    row_index = (image_rows.unsqueeze(-1) * height + rows.clamp(0, height - 1)) * width  # [B, N, Dy]
    column_index = columns.clamp(0, width - 1)  # [B, N, Dx]
    # Objects go in chunks so the [B, n, Dy, Dx] window tensors stay bounded (one chunk usually).
    window = (2 * max_radius_y + 1) * (2 * max_radius_x + 1)
    chunk = max(1, _CHUNK_ELEMENTS // max(1, batch_size * window))
    for start in range(0, num_points, chunk):
        part = slice(start, start + chunk)
        values = (gaussian_y[:, part].unsqueeze(-1) * gaussian_x[:, part].unsqueeze(-2)).float()  # [B, n, Dy, Dx]
        index = row_index[:, part].unsqueeze(-1) + column_index[:, part].unsqueeze(-2)
        heatmaps.scatter_reduce_(0, index.reshape(-1), values.reshape(-1), reduce="amax")
    return heatmaps.view(batch_size, num_channels, height, width)


def render_heatmap(
    boxes: Tensor,
    labels: Tensor,
    num_classes: int,
    height: int,
    width: int,
    method: str = "cornernet",
    min_overlap: float | None = None,
) -> Tensor:
    """Render one image's heatmap [C, H, W] from boxes [N, 4] XYXY in grid pixels and labels [N].

    ``min_overlap`` is the method's parameter (``alpha`` for TTFNet). See :func:`render_heatmaps`.
    """
    mask = torch.ones(labels.shape, dtype=torch.bool, device=boxes.device)
    heatmaps, _ = render_heatmaps(
        boxes[None], labels[None], mask[None], num_classes, height, width, method, min_overlap
    )
    return heatmaps[0]


def box_target_indices(
    centers: Tensor, height: int, width: int, center_sampling: bool = False
) -> tuple[Tensor, Tensor]:
    """Flat grid indices where each object's box is supervised.

    Args:
        centers: int64 [B, N, 2] ``(x, y)`` peak cells from :func:`render_heatmaps` (-1 = none).
        center_sampling: also supervise the 8 neighbours of the centre (3x3 centre sampling).

    Returns:
        ``(indices, valid)``: int64 [B, N, S] flat indices ``y * W + x`` and bool [B, N, S],
        with S = 1, or 9 with centre sampling (neighbours outside the grid are invalid).
    """
    offsets = [(0, 0)]
    if center_sampling:
        offsets += [(dx, dy) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if (dx, dy) != (0, 0)]
    offsets_t = torch.tensor(offsets, device=centers.device)  # [S, 2]
    points = centers.unsqueeze(2) + offsets_t  # [B, N, S, 2]
    valid = (centers[..., :1] >= 0).unsqueeze(2).squeeze(-1)  # [B, N, 1]
    inside = (points[..., 0] >= 0) & (points[..., 0] < width) & (points[..., 1] >= 0) & (points[..., 1] < height)
    valid = valid & inside
    indices = points[..., 1].clamp(0, height - 1) * width + points[..., 0].clamp(0, width - 1)
    return indices, valid


@dataclass
class CenterTargets:
    """Targets of one batch, encoded once and shared by every head.

    All coordinates are in output-grid cells (input pixels / stride). N is the padded object count.

    Attributes:
        heatmap: float32 [B, C, H, W] class heatmaps (peak 1 at each object's centre cell).
        boxes: float32 [B, N, 4] XYXY boxes in grid cells, inside the grid (box heads' targets).
        sizes: float32 [B, N, 2] ``(w, h)`` of the box clipped to ``[0, W-1] x [0, H-1]``, as the
            original ``ctdet`` target computes the size regression target.
        centers: float32 [B, N, 2] ``(x, y)`` centre of that clipped box.
        cells: int64 [B, N, 2] ``(x, y)`` = ``floor(centers)``, the peak cell (-1 where not valid).
        indices: int64 [B, N] flat cell index ``y * W + x`` (0 where not valid).
        valid: bool [B, N], objects that have a peak (real, not ignored, not degenerate) and, for
            keypoint data, at least one labelled joint: the objects whose box is regressed.
        height, width: grid size.
        keypoints: float32 [B, N, J, 3] joints ``(x, y, visibility)`` with x, y in grid cells, for
            keypoint data (the keypoint heads encode their targets from it); None otherwise.
    """

    heatmap: Tensor
    boxes: Tensor
    sizes: Tensor
    centers: Tensor
    cells: Tensor
    indices: Tensor
    valid: Tensor
    height: int
    width: int
    keypoints: Tensor | None = None


def encode_targets(
    bboxes: Tensor,
    labels: Tensor,
    mask: Tensor,
    num_classes: int,
    height: int,
    width: int,
    stride: int,
    method: str = "cornernet",
    parameter: float | None = None,
    keypoints: Tensor | None = None,
) -> CenterTargets:
    """Encode a padded batch of boxes once for all heads.

    Args:
        bboxes: float [B, N, 4] XYXY input pixels, inside the input image (the transform's
            sanitise step makes them so: targets trust their input, they do not clip it again).
        labels: int64 [B, N] class indices.
        mask: bool [B, N], True for objects to learn (real and not ignore regions).
        num_classes, height, width: heatmap shape; ``stride``: input pixels per grid cell.
        method, parameter: Gaussian radius rule (see :func:`gaussian_radii`).
        keypoints: optional float [B, N, J, 3] joints ``(x, y, visibility)`` in input pixels.

    Objects whose box is degenerate on the grid get no peak and ``valid`` False (see
    :func:`render_heatmaps`). With keypoints, an object without a labelled joint keeps its peak but
    is not regressed (``valid`` False), as the original ``multi_pose`` target zeroes its
    ``reg_mask`` when ``num_kpts == 0``.
    """
    boxes = bboxes.float() / stride
    heatmap, cells = render_heatmaps(boxes, labels, mask, num_classes, height, width, method, parameter)
    valid = mask & (cells[..., 0] >= 0)
    if keypoints is not None:
        keypoints = keypoints.float()
        keypoints = torch.cat((keypoints[..., :2] / stride, keypoints[..., 2:]), dim=-1)
        valid = valid & (keypoints[..., 2] > 0).any(dim=-1)
    # The original ctdet target: the box clipped to [0, W-1] x [0, H-1] gives size and centre.
    upper = boxes.new_tensor([width - 1, height - 1, width - 1, height - 1])
    clipped = torch.minimum(boxes.clamp(min=0), upper)
    sizes = clipped[..., 2:] - clipped[..., :2]
    centers = (clipped[..., :2] + clipped[..., 2:]) / 2
    indices = (cells[..., 1] * width + cells[..., 0]).clamp(min=0)
    return CenterTargets(heatmap, boxes, sizes, centers, cells, indices, valid, height, width, keypoints)
