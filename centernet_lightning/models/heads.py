"""Head types: each one knows its output channels, its loss on the shared targets and its decoding.

For each head there are three things to understand: its target, its loss, its decoding.

==========  ========  ====================================================  ========================
head        channels  target (grid cells)                                   decoding
==========  ========  ====================================================  ========================
heatmap     C         Gaussian peaks at object centres (CornerNet/TTFNet)   3x3 max-pool peaks, top-K
box_2d      4         left/top/right/bottom distances from the peak cell    cell centre -/+ distances
size        2         ``(w, h)`` of the box (paper: L1, weight 0.1)         centre -/+ size / 2
offset      2         ``centre - floor(centre)`` (paper: L1, weight 1)      refines the peak's centre
reid        D         the object's identity (FairMOT, loss in ``reid.py``)  unit embedding at the peak
==========  ========  ====================================================  ========================

Every head is ``depth`` x (3x3 conv + ReLU) and a 1x1 conv on the stride-4 feature map, as in the
original CenterNet (``head_conv``). Losses return the *unweighted* value; the head's ``weight``
scales it in the total. For the flip test (``tta.py``) each head also says how its output merges
with the output of the mirrored image (``merge_flipped``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..decode import Peaks, decode_ltrb, gather_cells, topk_peaks
from ..losses import get_box_loss, get_heatmap_loss
from ..targets import CenterTargets, box_target_indices

__all__ = [
    "Head",
    "HeatmapHead",
    "Box2DHead",
    "SizeHead",
    "OffsetHead",
    "ReIDHead",
    "regression_loss",
]


def _head_layers(in_channels: int, out_channels: int, width: int, depth: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    channels = in_channels
    for _ in range(depth):
        layers += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(inplace=True)]
        channels = width
    layers.append(nn.Conv2d(channels, out_channels, 1))
    return nn.Sequential(*layers)


class Head(nn.Module):
    """A conv head with a loss. Subclasses set ``out_channels`` and define ``loss`` and decoding.

    Args:
        in_channels: channels of the feature map.
        width, depth: hidden channels and number of 3x3 conv + ReLU before the 1x1 conv.
        loss: name of the loss (each head type lists its valid names).
        weight: factor of this head's loss in the total.
        init_bias: initial bias of the last conv.
    """

    out_channels: int
    # True: the loss needs parts only a task's criterion owns, so a task must name the head in its
    # ``task_heads`` (FairMOT's reid head: the identity classifier).
    trained_by_task: bool = False

    def __init__(self, in_channels: int, width: int, depth: int, loss: str, weight: float, init_bias: float) -> None:
        super().__init__()
        self.layers = _head_layers(in_channels, self.out_channels, width, depth)
        nn.init.constant_(self.layers[-1].bias, init_bias)
        self.loss_name = loss
        self.weight = weight

    def forward(self, features: Tensor) -> Tensor:
        """Raw output [B, out_channels, H, W]."""
        return self.layers(features)

    def loss(self, output: Tensor, targets: CenterTargets) -> Tensor:
        """This head's unweighted loss for its raw ``output`` against the shared ``targets``."""
        raise NotImplementedError

    def merge_flipped(self, output: Tensor, mirrored_output: Tensor) -> Tensor:
        """Flip test: merge the raw output [B, D, H, W] of the images with ``mirrored_output``, the raw
        output of the same images mirrored left-right (still in the mirrored layout). Returns the
        merged map in the un-mirrored layout, decoded like this head's raw output unless it says
        otherwise. Head types that can be flip-tested override this (see ``tta.py``)."""
        raise NotImplementedError(
            f"The {type(self).__name__} head has no merge_flipped: flip test-time augmentation does not know how to "
            "merge its outputs for an image and its mirror; turn flip off (tta.flip: false)"
        )


class HeatmapHead(Head):
    """Class heatmap logits [B, C, H, W]; the focal loss is computed from logits.

    The last bias starts at -2.19 so that every pixel begins at probability ~0.1 (CenterNet
    sec. 4; RetinaNet's prior, Lin et al. 2017 sec. 4.1), which keeps the focal loss from being
    swamped by easy negatives early on. Losses: ``cornernet_focal`` or ``quality_focal``.
    """

    def __init__(
        self,
        in_channels: int,
        num_classes: int,
        width: int = 256,
        depth: int = 1,
        loss: str = "cornernet_focal",
        weight: float = 1.0,
        init_bias: float = -2.19,
    ) -> None:
        self.out_channels = num_classes
        super().__init__(in_channels, width, depth, loss, weight, init_bias)
        self.loss_fn = get_heatmap_loss(loss)
        self.num_classes = num_classes

    def loss(self, output: Tensor, targets: CenterTargets) -> Tensor:
        return self.loss_fn(output, targets.heatmap)

    def merge_flipped(self, output: Tensor, mirrored_output: Tensor) -> Tensor:
        """PROBABILITIES [B, C, H, W], not logits (decode them with ``logits=False``): the mean of both
        sigmoids, the mirror's flipped back, as the original flip test averages ``hm`` after sigmoid."""
        return (output.float().sigmoid() + mirrored_output.float().sigmoid().flip(-1)) / 2

    @staticmethod
    def decode(output: Tensor, num_detections: int, kernel: int = 3, logits: bool = True) -> Peaks:
        """The top ``num_detections`` peaks of the heatmap (see :func:`~centernet_lightning.decode.topk_peaks`)."""
        # logits go in as they are: topk_peaks takes the sigmoid image by image (no batch-sized temporary)
        return topk_peaks(output.float(), num_detections, kernel, logits=logits)


class Box2DHead(Head):
    """Left/top/right/bottom distances [B, 4, H, W] from each cell's centre to the box sides.

    Distances are in grid cells and non-negative (ReLU, as TTFNet's box head); the last bias
    starts at 1 cell so the ReLU begins open. The loss (``l1``, ``smooth_l1``, ``iou``, ``giou``,
    ``diou``, ``ciou``) compares XYXY boxes in grid cells, at the centre cell or, with
    ``center_sampling``, at the 3x3 cells around it.
    """

    out_channels = 4

    def __init__(
        self,
        in_channels: int,
        width: int = 256,
        depth: int = 1,
        loss: str = "giou",
        weight: float = 5.0,
        center_sampling: bool = False,
        init_bias: float = 1.0,
    ) -> None:
        super().__init__(in_channels, width, depth, loss, weight, init_bias)
        self.loss_fn = get_box_loss(loss)
        self.center_sampling = center_sampling

    def forward(self, features: Tensor) -> Tensor:
        return F.relu(self.layers(features))

    def loss(self, output: Tensor, targets: CenterTargets) -> Tensor:
        batch_size = output.shape[0]
        cells = targets.cells.masked_fill(~targets.valid.unsqueeze(-1), -1)
        indices, supervised = box_target_indices(cells, targets.height, targets.width, self.center_sampling)
        num_objects, num_samples = indices.shape[1:]
        flat = indices.reshape(batch_size, -1)
        predicted = decode_ltrb(output.float(), flat, targets.width, stride=1)
        predicted = predicted.view(batch_size, num_objects, num_samples, 4)
        target = targets.boxes.unsqueeze(2).expand_as(predicted)
        per_box = self.loss_fn(predicted[supervised], target[supervised])
        return per_box.sum() / supervised.sum().clamp(min=1)

    def merge_flipped(self, output: Tensor, mirrored_output: Tensor) -> Tensor:
        """Distances [B, 4, H, W]: the mean with the mirror's, flipped back with left and right swapped.

        Cell ``W-1-x`` of the mirror has its centre at the mirror image of cell x's centre, so its
        right distance is cell x's left one (and the other way round); top/bottom are unchanged.
        """
        flipped_back = mirrored_output.flip(-1)[:, [2, 1, 0, 3]]
        return (output + flipped_back) / 2

    @staticmethod
    def decode_boxes(output: Tensor, peaks: Peaks, centers: Tensor | None = None) -> Tensor:
        """XYXY boxes [B, K, 4] in grid cells around each peak cell's centre (``centers`` unused:
        the distances are measured from the cell centre the head was trained on)."""
        return decode_ltrb(output.float(), peaks.indices, output.shape[-1], stride=1)


class SizeHead(Head):
    """Box width and height [B, 2, H, W] in grid cells, as the paper's ``wh`` head (L1, weight 0.1).

    Decoded around the (offset-refined) centre: ``centre -/+ size / 2``.
    """

    out_channels = 2

    def __init__(
        self, in_channels: int, width: int = 256, depth: int = 1, loss: str = "l1", weight: float = 0.1
    ) -> None:
        super().__init__(in_channels, width, depth, loss, weight, init_bias=0.0)
        self.loss_fn = regression_loss(loss)

    def loss(self, output: Tensor, targets: CenterTargets) -> Tensor:
        return self.loss_fn(gather_cells(output.float(), targets.indices), targets.sizes, targets.valid)

    def merge_flipped(self, output: Tensor, mirrored_output: Tensor) -> Tensor:
        """Sizes [B, 2, H, W]: the mean with the mirror's flipped back (a width is the same in a
        mirror), as the original flip test averages ``wh``."""
        return (output + mirrored_output.flip(-1)) / 2

    @staticmethod
    def decode_boxes(output: Tensor, peaks: Peaks, centers: Tensor) -> Tensor:
        """XYXY boxes [B, K, 4] in grid cells from ``centers`` [B, K, 2] and the gathered sizes."""
        half = gather_cells(output.float(), peaks.indices) / 2
        return torch.cat((centers - half, centers + half), dim=-1)


class OffsetHead(Head):
    """Sub-cell centre offset [B, 2, H, W]: ``centre - floor(centre)`` in grid cells, as the paper's
    ``reg`` head (L1, weight 1). Decoding adds it to the peak cell instead of the cell centre."""

    out_channels = 2

    def __init__(
        self, in_channels: int, width: int = 256, depth: int = 1, loss: str = "l1", weight: float = 1.0
    ) -> None:
        super().__init__(in_channels, width, depth, loss, weight, init_bias=0.0)
        self.loss_fn = regression_loss(loss)

    def loss(self, output: Tensor, targets: CenterTargets) -> Tensor:
        target = targets.centers - targets.cells.clamp(min=0).to(targets.centers.dtype)
        return self.loss_fn(gather_cells(output.float(), targets.indices), target, targets.valid)

    def merge_flipped(self, output: Tensor, mirrored_output: Tensor) -> Tensor:
        """The un-mirrored offsets [B, 2, H, W] alone, as the original flip test keeps ``reg`` of the
        image only (the mirror's x offset is measured from the other side of a cell)."""
        return output

    @staticmethod
    def decode_centers(output: Tensor, peaks: Peaks) -> Tensor:
        """Refined centres [B, K, 2] ``(x, y)`` in grid cells: the peak cell plus its offset."""
        cells = torch.stack((peaks.xs, peaks.ys), dim=-1).to(torch.float32)
        return cells + gather_cells(output.float(), peaks.indices)


class ReIDHead(Head):
    """Re-ID embeddings [B, dim, H, W] at every output cell (raw, not normalised).

    As FairMOT's ``id`` head: ``depth`` x (3x3 conv + ReLU) and a 1x1 conv to ``dim`` channels,
    all biases starting at 0 (the original ``fill_fc_weights``). ``dim`` is 64 by default; the
    original code uses 128 (512 in its first release), and the paper finds low dimensions better
    when re-ID data is scarce. ``weight`` is the identity loss's factor when the detection and
    re-ID losses are summed with fixed weights.

    The head has no loss of its own: the identity loss needs the identity classifier of
    :class:`~centernet_lightning.models.reid.IdentityLoss`, which the FairMOT loss owns (it is
    training-only and sized by the training set). Decoding gathers the output at the detections'
    peak cells (:meth:`decode_embeddings`).
    """

    trained_by_task = True

    def __init__(
        self,
        in_channels: int,
        dim: int = 64,
        width: int = 256,
        depth: int = 1,
        loss: str = "cross_entropy",
        weight: float = 1.0,
        init_bias: float = 0.0,
    ) -> None:
        if dim < 1:
            raise ValueError(f"heads.reid.dim must be >= 1, got {dim}")
        if loss != "cross_entropy":
            raise ValueError(f"Unknown re-ID loss {loss!r}; valid names: ['cross_entropy']")
        self.out_channels = dim
        super().__init__(in_channels, width, depth, loss, weight, init_bias)
        for layer in self.layers:  # every conv bias at 0, the original's fill_fc_weights
            if isinstance(layer, nn.Conv2d):
                nn.init.zeros_(layer.bias)
        self.dim = dim

    def loss(self, output: Tensor, targets: CenterTargets) -> Tensor:
        raise RuntimeError(
            "The reid head's loss needs the identity classifier of IdentityLoss, which the FairMOT loss owns: "
            "train a re-ID head with centernet_lightning.FairMOT, not CenterNet"
        )

    def merge_flipped(self, output: Tensor, mirrored_output: Tensor) -> Tensor:
        """The un-mirrored embeddings [B, D, H, W] alone: an embedding describes one view of the
        object, and the original FairMOT has no flip test to follow."""
        return output

    @staticmethod
    def decode_fields(outputs: dict[str, Tensor], peaks: Peaks, boxes: Tensor, stride: int, logits: bool) -> dict:
        """``{"embeddings": [B, K, D]}``: the detections' unit embeddings (see :meth:`decode_embeddings`)."""
        return {"embeddings": ReIDHead.decode_embeddings(outputs["reid"], peaks.indices)}

    def field_shapes(self) -> dict[str, list[int]]:
        """Per-detection shapes of what :meth:`decode_fields` adds."""
        return {"embeddings": [self.dim]}

    @staticmethod
    def decode_embeddings(output: Tensor, indices: Tensor) -> Tensor:
        """Unit-norm embeddings [B, K, D] (float32) at the flat cells ``indices`` [B, K], as FairMOT's
        tracker normalises the ``id`` map and gathers it at the detections' peaks."""
        return F.normalize(gather_cells(output.float(), indices), dim=-1)


def _masked_l1(predicted: Tensor, target: Tensor, valid: Tensor) -> Tensor:
    """The original ``RegL1Loss``: sum |p - t| over valid objects / (number of valid values + 1e-4).

    Invalid objects are selected out with ``where`` (not multiplied by 0), so a NaN target of a
    degenerate box cannot leak into the loss.
    """
    mask = valid.unsqueeze(-1).expand_as(predicted)
    errors = torch.where(mask, predicted - target, torch.zeros_like(predicted)).abs()
    return errors.sum() / (mask.sum() + 1e-4)


def _masked_smooth_l1(predicted: Tensor, target: Tensor, valid: Tensor) -> Tensor:
    """Smooth-L1 (beta 1) with the same masking and normalisation as :func:`_masked_l1`."""
    mask = valid.unsqueeze(-1).expand_as(predicted)
    difference = torch.where(mask, predicted - target, torch.zeros_like(predicted))
    return F.smooth_l1_loss(difference, torch.zeros_like(difference), reduction="sum") / (mask.sum() + 1e-4)


REGRESSION_LOSSES = {"l1": _masked_l1, "smooth_l1": _masked_smooth_l1}


def regression_loss(name: str) -> Callable[[Tensor, Tensor, Tensor], Tensor]:
    """A masked regression loss ``(predicted [..., D], target [..., D], valid [...]) -> loss`` by name."""
    if name not in REGRESSION_LOSSES:
        raise ValueError(f"Unknown size/offset loss {name!r}; valid names: {sorted(REGRESSION_LOSSES)}")
    return REGRESSION_LOSSES[name]
