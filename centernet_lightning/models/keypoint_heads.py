"""Keypoint head types: the original CenterNet's ``multi_pose`` heads (human pose, face landmarks).

=======================  ========  ===============================================  ======================
head (original name)     channels  target (grid cells)                              decoding
=======================  ========  ===============================================  ======================
keypoint_offsets [hps]   2J        each joint's displacement from the object's       peak cell + displacement
                                   integer centre cell (x, y per joint)
keypoint_heatmap         J         a Gaussian per joint (the object's radius)        snaps regressed joints
[hm_hp]                                                                             to joint peaks
keypoint_peak_offset     2         ``joint - floor(joint)`` at each joint's cell     refines joint peaks
[hp_offset]
=======================  ========  ===============================================  ======================

Targets, losses and decoding are the original's (``datasets/sample/multi_pose.py``,
``trains/multi_pose.py``, ``models/decode.py: multi_pose_decode``): a joint is learnt when it is
labelled (visibility > 0) and inside the output grid; displacements and peak offsets are L1 losses
normalised by the number of supervised coordinates (``RegWeightedL1Loss`` / ``RegL1Loss``), joint
heatmaps the focal loss with the CornerNet radius of the object's box. Decoding regresses every
joint from the detection's peak cell, then moves it to the nearest joint-heatmap peak scoring over
0.1 that lies inside the box and within 0.3 x the box's longer side, as the original does. Every
step is a gather, top-K or arithmetic on fixed shapes, so the keypoints come out of exported graphs.

``num_keypoints`` and the left/right ``flip_pairs`` come from the data (:class:`KeypointLayout`);
the flip test uses the pairs to swap the joints of the mirrored image's output.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from ..decode import Peaks, gather_cells, suppress_non_peaks
from ..losses import get_heatmap_loss
from ..structures import flip_permutation
from ..targets import CenterTargets, draw_gaussians, gaussian_radii
from .heads import Head, regression_loss

__all__ = [
    "KeypointOffsetsHead",
    "KeypointHeatmapHead",
    "KeypointPeakOffsetHead",
    "decode_keypoints",
    "JOINT_PEAK_THRESHOLD",
    "SNAP_DISTANCE",
]

JOINT_PEAK_THRESHOLD = 0.1  # multi_pose_decode's ``thresh``: joint peaks scoring less are never snapped to
SNAP_DISTANCE = 0.3  # ... nor peaks farther than this fraction of the box's longer side


def _learnt_joints(targets: CenterTargets, num_keypoints: int, head: str) -> tuple[Tensor, Tensor]:
    """The batch's joints [B, N, J, 2] (grid cells) and which are learnt [B, N, J]: labelled, inside
    the grid, of an object with a peak (the original's ``pts[j, 2] > 0`` and ``0 <= pt < output_res``)."""
    if targets.keypoints is None:
        raise ValueError(
            f"The {head} head learns joints, but the batch has no 'keypoints': train it on a keypoint dataset "
            "(data.dataset: coco_keypoints or synthetic_keypoints)"
        )
    joints = targets.keypoints
    if joints.shape[-2] != num_keypoints:
        raise ValueError(f"The {head} head predicts {num_keypoints} joints but the data has {joints.shape[-2]}")
    xy = joints[..., :2]
    inside = (xy[..., 0] >= 0) & (xy[..., 0] < targets.width) & (xy[..., 1] >= 0) & (xy[..., 1] < targets.height)
    learnt = (joints[..., 2] > 0) & inside & targets.valid.unsqueeze(-1)
    return xy, learnt


class _JointsHead(Head):
    """A head with ``channels_per_joint`` channels per joint, which the data's layout sizes."""

    keypoint_arguments = ("num_keypoints", "flip_pairs")  # build_heads fills them from the data
    channels_per_joint: int

    def __init__(
        self,
        in_channels: int,
        num_keypoints: int,
        flip_pairs: Sequence[Sequence[int]],
        width: int,
        depth: int,
        loss: str,
        weight: float,
        init_bias: float,
    ) -> None:
        if num_keypoints < 1:
            raise ValueError(f"num_keypoints must be >= 1, got {num_keypoints}")
        self.out_channels = self.channels_per_joint * num_keypoints
        super().__init__(in_channels, width, depth, loss, weight, init_bias)
        self.num_keypoints = num_keypoints
        self.flip_permutation = flip_permutation(num_keypoints, flip_pairs)


class KeypointOffsetsHead(_JointsHead):
    """Joint displacements [B, 2J, H, W] from the object's peak cell, grid cells, the original's ``hps``.

    Channels are ``(x_0, y_0, x_1, y_1, ...)``. The target at an object's centre cell ``c`` is
    ``joint - c`` for each learnt joint (L1, weight 1, normalised by the number of learnt
    coordinates). Decoding: :func:`decode_keypoints`.
    """

    channels_per_joint = 2

    def __init__(
        self,
        in_channels: int,
        num_keypoints: int,
        flip_pairs: Sequence[Sequence[int]] = (),
        width: int = 256,
        depth: int = 1,
        loss: str = "l1",
        weight: float = 1.0,
    ) -> None:
        super().__init__(in_channels, num_keypoints, flip_pairs, width, depth, loss, weight, init_bias=0.0)
        self.loss_fn = regression_loss(loss)

    def loss(self, output: Tensor, targets: CenterTargets) -> Tensor:
        joints, learnt = _learnt_joints(targets, self.num_keypoints, "keypoint_offsets")
        cells = targets.cells.clamp(min=0).to(joints.dtype).unsqueeze(2)  # [B, N, 1, 2]
        predicted = gather_cells(output.float(), targets.indices)  # [B, N, 2J]
        predicted = predicted.view(*predicted.shape[:2], self.num_keypoints, 2)
        return self.loss_fn(predicted, joints - cells, learnt)

    def merge_flipped(self, output: Tensor, mirrored_output: Tensor) -> Tensor:
        """Displacements [B, 2J, H, W]: the mean with the mirror's flipped back, its left/right joints
        swapped and its x displacements reflected.

        A joint at x cells lies at ``W - x`` in the mirror, and an object's peak cell ``c`` at cell
        ``W - 1 - c``, so the mirror's displacement ``d'`` is ``1 - d``: ``d = 1 - d'``. (The
        original's ``flip_lr_off`` takes ``-d'``, which in its pixel frame, where a mirror maps x to
        ``W - 1 - x``, leaves the merged joints 3/8 of a cell to the left; here it would be half a cell.)
        """
        batch_size, _, height, width = mirrored_output.shape
        mirrored = mirrored_output.flip(-1).view(batch_size, self.num_keypoints, 2, height, width)
        reflected_x = 1.0 - mirrored[:, :, :1]
        mirrored = torch.cat((reflected_x, mirrored[:, :, 1:]), dim=2)
        mirrored = mirrored[:, self.flip_permutation].reshape(batch_size, -1, height, width)
        return (output + mirrored) / 2

    @staticmethod
    def decode_fields(outputs: dict[str, Tensor], peaks: Peaks, boxes: Tensor, stride: int, logits: bool) -> dict:
        """``{"keypoints": [B, K, J, 3]}``: each detection's joints ``(x, y, score)``, x and y in input
        pixels (``boxes`` [B, K, 4] are the detections' boxes in grid cells)."""
        keypoints = decode_keypoints(outputs, peaks, boxes, logits)
        scale = keypoints.new_tensor([stride, stride, 1.0])
        return {"keypoints": keypoints * scale}

    def field_shapes(self) -> dict[str, list[int]]:
        """Per-detection shapes of what :meth:`decode_fields` adds."""
        return {"keypoints": [self.num_keypoints, 3]}


class KeypointHeatmapHead(_JointsHead):
    """Joint heatmap logits [B, J, H, W], the original's ``hm_hp``.

    Each learnt joint gets a Gaussian peak at its cell ``floor(joint)`` in its joint's channel, with
    the CornerNet radius (min overlap 0.7) of its object's box, as the original draws ``hm_hp`` with
    the box's ``gaussian_radius``; the focal loss from logits, as the class heatmap. The last bias
    starts at -2.19 like the class heatmap's (the original's ``'hm' in head`` test covers ``hm_hp``).
    """

    channels_per_joint = 1

    def __init__(
        self,
        in_channels: int,
        num_keypoints: int,
        flip_pairs: Sequence[Sequence[int]] = (),
        width: int = 256,
        depth: int = 1,
        loss: str = "cornernet_focal",
        weight: float = 1.0,
        init_bias: float = -2.19,
    ) -> None:
        super().__init__(in_channels, num_keypoints, flip_pairs, width, depth, loss, weight, init_bias)
        self.loss_fn = get_heatmap_loss(loss)

    def loss(self, output: Tensor, targets: CenterTargets) -> Tensor:
        return self.loss_fn(output, self.encode(targets))

    def encode(self, targets: CenterTargets) -> Tensor:
        """The joint heatmaps [B, J, H, W] of the batch (float32, peak 1 at each learnt joint's cell)."""
        joints, learnt = _learnt_joints(targets, self.num_keypoints, "keypoint_heatmap")
        batch_size, num_objects = learnt.shape[:2]
        radius, _ = gaussian_radii(targets.sizes[..., 1], targets.sizes[..., 0], "cornernet", 0.7)  # [B, N]
        radius = radius.unsqueeze(-1).expand(-1, -1, self.num_keypoints)
        cells = joints.clamp(min=0).floor().long()  # truncation, as the original's astype(np.int32)
        channels = torch.arange(self.num_keypoints, device=joints.device).expand(batch_size, num_objects, -1)
        flat = (batch_size, num_objects * self.num_keypoints)
        return draw_gaussians(
            cells[..., 0].reshape(flat),
            cells[..., 1].reshape(flat),
            radius.reshape(flat),
            radius.reshape(flat),
            channels.reshape(flat),
            learnt.reshape(flat),
            self.num_keypoints,
            targets.height,
            targets.width,
        )

    def merge_flipped(self, output: Tensor, mirrored_output: Tensor) -> Tensor:
        """PROBABILITIES [B, J, H, W]: the mean of both sigmoids, the mirror's flipped back with its
        left/right joints swapped (the original's ``flip_lr`` on ``hm_hp`` after sigmoid)."""
        mirrored = mirrored_output.float().sigmoid().flip(-1)[:, self.flip_permutation]
        return (output.float().sigmoid() + mirrored) / 2


class KeypointPeakOffsetHead(Head):
    """Sub-cell joint offsets [B, 2, H, W], the original's ``hp_offset``: ``joint - floor(joint)`` at
    each learnt joint's cell (L1, weight 1). Decoding adds it to the joint-heatmap peaks."""

    out_channels = 2

    def __init__(
        self, in_channels: int, width: int = 256, depth: int = 1, loss: str = "l1", weight: float = 1.0
    ) -> None:
        super().__init__(in_channels, width, depth, loss, weight, init_bias=0.0)
        self.loss_fn = regression_loss(loss)

    def loss(self, output: Tensor, targets: CenterTargets) -> Tensor:
        num_joints = targets.keypoints.shape[-2] if targets.keypoints is not None else 0
        joints, learnt = _learnt_joints(targets, num_joints, "keypoint_peak_offset")
        cells = joints.clamp(min=0).floor()
        batch_size = joints.shape[0]
        # joints off the grid are not learnt; their cells are clamped onto it only to gather safely
        columns, rows = cells[..., 0].clamp(max=targets.width - 1), cells[..., 1].clamp(max=targets.height - 1)
        indices = (rows * targets.width + columns).long().reshape(batch_size, -1)  # [B, N*J]
        predicted = gather_cells(output.float(), indices)  # [B, N*J, 2]
        return self.loss_fn(predicted, (joints - cells).reshape(batch_size, -1, 2), learnt.reshape(batch_size, -1))

    def merge_flipped(self, output: Tensor, mirrored_output: Tensor) -> Tensor:
        """The un-mirrored offsets alone, as the original flip test keeps ``hp_offset`` of the image."""
        return output


def decode_keypoints(outputs: dict[str, Tensor], peaks: Peaks, boxes: Tensor, logits: bool = True) -> Tensor:
    """The joints [B, K, J, 3] ``(x, y, score)`` of K detections, x and y in grid cells, as the
    original's ``multi_pose_decode``.

    Args:
        outputs: ``keypoint_offsets`` [B, 2J, H, W], optional ``keypoint_heatmap`` [B, J, H, W] (logits,
            or probabilities with ``logits`` False) and ``keypoint_peak_offset`` [B, 2, H, W].
        peaks: the detections' heatmap peaks ([B, K] fields).
        boxes: the detections' XYXY boxes [B, K, 4] in grid cells.

    Each joint is regressed from the detection's peak cell (``cell + displacement``). With a joint
    heatmap, its K best 3x3 peaks per joint (refined by ``keypoint_peak_offset``, else at the cell
    centre) are candidates: a regressed joint moves to the nearest candidate unless that candidate
    scores under :data:`JOINT_PEAK_THRESHOLD`, lies outside the box, or is farther than
    :data:`SNAP_DISTANCE` x the box's longer side. The score is the snapped peak's probability, or
    the joint heatmap's probability at a joint's cell when it stays where it was regressed, or the
    detection's score without a joint heatmap.
    """
    displacements = outputs["keypoint_offsets"].float()
    batch_size, channels, height, width = displacements.shape
    num_joints, k = channels // 2, peaks.indices.shape[1]
    cells = torch.stack((peaks.xs, peaks.ys), dim=-1).to(torch.float32)  # [B, K, 2] integer cells
    regressed = gather_cells(displacements, peaks.indices).view(batch_size, k, num_joints, 2) + cells.unsqueeze(2)
    if "keypoint_heatmap" not in outputs:
        scores = peaks.scores.unsqueeze(-1).expand(batch_size, k, num_joints)
        return torch.cat((regressed, scores.unsqueeze(-1)), dim=-1)

    heatmap = outputs["keypoint_heatmap"].float()
    probabilities = heatmap.sigmoid() if logits else heatmap  # [B, J, H, W]
    candidates = min(k, height * width)
    flat_scores = suppress_non_peaks(probabilities).reshape(batch_size, num_joints, height * width)
    peak_scores, peak_cells = flat_scores.topk(candidates)  # [B, J, P], the original's _topk_channel
    peak_ys = torch.div(peak_cells, width, rounding_mode="floor")
    peak_xy = torch.stack((peak_cells - peak_ys * width, peak_ys), dim=-1).to(torch.float32)  # [B, J, P, 2]
    if "keypoint_peak_offset" in outputs:
        refinement = gather_cells(outputs["keypoint_peak_offset"].float(), peak_cells.reshape(batch_size, -1))
        peak_xy = peak_xy + refinement.view(batch_size, num_joints, candidates, 2)
    else:
        peak_xy = peak_xy + 0.5
    confident = peak_scores > JOINT_PEAK_THRESHOLD
    peak_scores = torch.where(confident, peak_scores, torch.full_like(peak_scores, -1.0))
    peak_xy = torch.where(confident.unsqueeze(-1), peak_xy, torch.full_like(peak_xy, -10000.0))

    joints = regressed.permute(0, 2, 1, 3)  # [B, J, K, 2]
    distances = (joints.unsqueeze(3) - peak_xy.unsqueeze(2)).pow(2).sum(-1).sqrt()  # [B, J, K, P]
    nearest_distance, nearest = distances.min(dim=3)  # [B, J, K]
    nearest_scores = peak_scores.gather(2, nearest)
    nearest_xy = peak_xy.gather(2, nearest.unsqueeze(-1).expand(-1, -1, -1, 2))  # [B, J, K, 2]
    left, top, right, bottom = (side.unsqueeze(1) for side in boxes.float().unbind(-1))  # [B, 1, K]
    longer_side = torch.maximum(bottom - top, right - left)
    x, y = nearest_xy.unbind(-1)
    kept_regressed = (
        (x < left)
        | (x > right)
        | (y < top)
        | (y > bottom)
        | (nearest_scores < JOINT_PEAK_THRESHOLD)
        | (nearest_distance > longer_side * SNAP_DISTANCE)
    )
    final_xy = torch.where(kept_regressed.unsqueeze(-1), joints, nearest_xy)  # [B, J, K, 2]
    # A joint left where it was regressed is scored by the joint heatmap at its cell.
    final_cells = final_xy.floor().long()
    column = final_cells[..., 0].clamp(0, width - 1)
    row = final_cells[..., 1].clamp(0, height - 1)
    at_cell = probabilities.reshape(batch_size, num_joints, -1).gather(2, row * width + column)  # [B, J, K]
    scores = torch.where(kept_regressed, at_cell, nearest_scores)
    return torch.cat((final_xy, scores.unsqueeze(-1)), dim=-1).permute(0, 2, 1, 3)  # [B, K, J, 3]
