"""The original CenterNet ``multi_pose`` task (COCO human pose), restated literally for parity tests.

A plain re-statement of xingyizhou/CenterNet (``src/lib/``), kept as close to the original's control
flow as numpy/torch allow, so that the keypoint heads, their targets, losses, decoding and flip test
can be checked against it. Each piece restates:

- :func:`multi_pose_targets`: ``datasets/sample/multi_pose.py`` ``MultiPoseDataset.__getitem__``,
  the part after the affine transform (boxes and joints arrive in output-grid coordinates), with the
  default options (``mse_loss``, ``dense_hp`` off, ``aug_rot`` 0 so ``rot == 0``; ``hm_hp`` and
  ``reg_hp_offset`` on). Gaussians come from ``utils/image.py`` (``gaussian_radius``,
  ``draw_umich_gaussian``) through :mod:`reference`.
- :func:`multi_pose_loss`: ``trains/multi_pose.py`` ``MultiPoseLoss.forward`` with
  ``models/losses.py`` ``FocalLoss`` (``_neg_loss``), ``RegL1Loss``, ``RegWeightedL1Loss`` and
  ``models/utils.py`` ``_sigmoid``, ``_gather_feat``, ``_transpose_and_gather_feat``.
- :func:`multi_pose_decode`: ``models/decode.py`` ``multi_pose_decode`` with ``_nms``, ``_topk``
  and ``_topk_channel``.
- :func:`flip_lr`, :func:`flip_lr_off`, :func:`flip_test_outputs`: ``models/utils.py``
  (``flip_tensor``, ``flip_lr``, ``flip_lr_off``) and the flip-test merge of
  ``detectors/multi_pose.py`` ``MultiPoseDetector.process``.

Facts of the original that these reproduce (and that are easy to get wrong):

- ``hps`` (our ``keypoint_offsets``) holds, for joint ``j``, channels ``2j`` (x) and ``2j + 1`` (y):
  the joint minus the *integer* centre cell, in grid cells; it is learnt only at the centre cell
  (``ind``), masked per coordinate (``hps_mask``) and normalised by the number of unmasked
  coordinates (``RegWeightedL1Loss``), whereas ``RegL1Loss`` (``wh``, ``reg``, ``hp_offset``)
  divides by ``mask.sum()`` after expanding the mask over the 2 channels, i.e. 2 x the objects.
- A joint counts when its visibility ``v > 0`` and it lies in ``[0, W) x [0, H)`` of the grid;
  the box is clipped to ``[0, W - 1] x [0, H - 1]`` first and skipped without area.
- Joints use the *box's* radius (``gaussian_radius((ceil(h), ceil(w)))``, truncated), not a
  per-joint one, and peaks at ``int(joint)``.
- ``num_kpts == 0`` (an annotation with no labelled joint) writes ``0.9999`` at the centre and
  clears ``reg_mask``; the centre's Gaussian drawn afterwards lifts that cell back to 1.0, so the
  object stays a positive of the heatmap and only its size and offset go unlearnt.
- The ``hp_offset`` loss is weighted by ``off_weight`` (there is no option of its own).
- ``multi_pose_decode`` expects ``heat`` and ``hm_hp`` after the sigmoid; the detector uses a plain
  ``sigmoid_`` (no clamp), the loss ``_sigmoid`` (clamped to ``[1e-4, 1 - 1e-4]``).
- The flip test averages ``hm``, ``wh``, ``hps`` and ``hm_hp`` over the image and its mirror
  (joints swapped by ``flip_idx``, x displacements negated) and keeps ``reg`` and ``hp_offset``
  of the un-flipped image only.

Slow and literal on purpose: loops where the original loops; not a model to use.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F
from reference import draw_umich_gaussian, gaussian_radius
from torch import Tensor

__all__ = [
    "COCO_FLIP_IDX",
    "MAX_OBJECTS",
    "NUM_JOINTS",
    "LOSS_WEIGHTS",
    "multi_pose_targets",
    "collate_targets",
    "multi_pose_loss",
    "multi_pose_decode",
    "flip_tensor",
    "flip_lr",
    "flip_lr_off",
    "flip_test_outputs",
]

NUM_JOINTS = 17  # datasets/dataset/coco_hp.py COCOHP.num_joints
MAX_OBJECTS = 32  # COCOHP.max_objs
# COCOHP.flip_idx: (left, right) joint pairs of COCO's 17 keypoints (eyes, ears, shoulders, ...).
COCO_FLIP_IDX = [[1, 2], [3, 4], [5, 6], [7, 8], [9, 10], [11, 12], [13, 14], [15, 16]]
# opts.py defaults: hm_weight, wh_weight, off_weight (also weights hp_offset), hp_weight, hm_hp_weight.
LOSS_WEIGHTS = {"hm": 1.0, "wh": 0.1, "off": 1.0, "hp": 1.0, "hm_hp": 1.0}


# --------------------------------------------------------------------------- targets (sample/multi_pose.py)
def multi_pose_targets(
    boxes: np.ndarray,
    keypoints: np.ndarray,
    height: int,
    width: int,
    labels: np.ndarray | None = None,
    num_classes: int = 1,
    max_objects: int = MAX_OBJECTS,
) -> dict[str, np.ndarray]:
    """One image's training targets, as ``MultiPoseDataset.__getitem__`` returns them.

    Args:
        boxes: float [N, 4] XYXY in output-grid cells (after the affine transform, before clipping).
        keypoints: float [N, J, 3] ``(x, y, v)`` per joint, x and y in output-grid cells; joints
            with ``v == 0`` are ignored whatever their coordinates.
        height, width: output grid size (the original's square ``output_res`` for both).
        labels: int [N] class index (``category_id - 1``); default all 0 (person).
        num_classes: heatmap channels (1 for COCO persons).
        max_objects: slots; objects past it are dropped (``num_objs = min(len(anns), max_objs)``).

    Returns:
        ``hm`` float32 [C, H, W], ``hm_hp`` float32 [J, H, W], ``wh`` float32 [M, 2] (w, h),
        ``reg`` float32 [M, 2], ``ind`` int64 [M] (``y * W + x`` of the centre cell),
        ``reg_mask`` uint8 [M], ``hps`` float32 [M, 2J] and ``hps_mask`` uint8 [M, 2J] (the
        original's local ``kps`` / ``kps_mask``), ``hp_offset`` float32 [M * J, 2], ``hp_ind``
        int64 [M * J], ``hp_mask`` int64 [M * J] (slot ``k * J + j``). M = ``max_objects``.
    """
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    keypoints = np.asarray(keypoints, dtype=np.float32)
    num_joints = keypoints.shape[1]
    labels = np.zeros(len(boxes), dtype=np.int64) if labels is None else np.asarray(labels)
    num_objs = min(len(boxes), max_objects)

    hm = np.zeros((num_classes, height, width), dtype=np.float32)
    hm_hp = np.zeros((num_joints, height, width), dtype=np.float32)
    wh = np.zeros((max_objects, 2), dtype=np.float32)
    kps = np.zeros((max_objects, num_joints * 2), dtype=np.float32)
    reg = np.zeros((max_objects, 2), dtype=np.float32)
    ind = np.zeros((max_objects), dtype=np.int64)
    reg_mask = np.zeros((max_objects), dtype=np.uint8)
    kps_mask = np.zeros((max_objects, num_joints * 2), dtype=np.uint8)
    hp_offset = np.zeros((max_objects * num_joints, 2), dtype=np.float32)
    hp_ind = np.zeros((max_objects * num_joints), dtype=np.int64)
    hp_mask = np.zeros((max_objects * num_joints), dtype=np.int64)

    for k in range(num_objs):
        bbox = boxes[k].copy()
        cls_id = int(labels[k])
        pts = keypoints[k].copy()
        # The original clips all four coordinates to [0, output_res - 1] (square grid).
        bbox[[0, 2]] = np.clip(bbox[[0, 2]], 0, width - 1)
        bbox[[1, 3]] = np.clip(bbox[[1, 3]], 0, height - 1)
        h, w = bbox[3] - bbox[1], bbox[2] - bbox[0]
        if h > 0 and w > 0:  # the original also enters with rot != 0 (aug_rot, off by default)
            radius = gaussian_radius(math.ceil(h), math.ceil(w))
            radius = max(0, int(radius))
            ct = np.array([(bbox[0] + bbox[2]) / 2, (bbox[1] + bbox[3]) / 2], dtype=np.float32)
            ct_int = ct.astype(np.int32)
            wh[k] = 1.0 * w, 1.0 * h
            ind[k] = ct_int[1] * width + ct_int[0]
            reg[k] = ct - ct_int
            reg_mask[k] = 1
            num_kpts = pts[:, 2].sum()
            if num_kpts == 0:
                hm[cls_id, ct_int[1], ct_int[0]] = 0.9999
                reg_mask[k] = 0

            hp_radius = gaussian_radius(math.ceil(h), math.ceil(w))
            hp_radius = max(0, int(hp_radius))
            for j in range(num_joints):
                if pts[j, 2] > 0:
                    if pts[j, 0] >= 0 and pts[j, 0] < width and pts[j, 1] >= 0 and pts[j, 1] < height:
                        kps[k, j * 2 : j * 2 + 2] = pts[j, :2] - ct_int
                        kps_mask[k, j * 2 : j * 2 + 2] = 1
                        pt_int = pts[j, :2].astype(np.int32)
                        hp_offset[k * num_joints + j] = pts[j, :2] - pt_int
                        hp_ind[k * num_joints + j] = pt_int[1] * width + pt_int[0]
                        hp_mask[k * num_joints + j] = 1
                        draw_umich_gaussian(hm_hp[j], pt_int, hp_radius)
            draw_umich_gaussian(hm[cls_id], ct_int, radius)
    return {
        "hm": hm,
        "reg_mask": reg_mask,
        "ind": ind,
        "wh": wh,
        "hps": kps,
        "hps_mask": kps_mask,
        "reg": reg,
        "hm_hp": hm_hp,
        "hp_offset": hp_offset,
        "hp_ind": hp_ind,
        "hp_mask": hp_mask,
    }


def collate_targets(targets: list[dict[str, np.ndarray]]) -> dict[str, Tensor]:
    """Per-image targets -> a batch of tensors (the default collate: stacked on a new first axis)."""
    return {key: torch.from_numpy(np.stack([t[key] for t in targets])) for key in targets[0]}


# ---------------------------------------------------------------------- loss (trains/multi_pose.py, losses.py)
def _sigmoid(x: Tensor) -> Tensor:
    """``models/utils.py`` ``_sigmoid``, without the original's in-place ``sigmoid_``."""
    return torch.clamp(x.sigmoid(), min=1e-4, max=1 - 1e-4)


def _gather_feat(feat: Tensor, ind: Tensor) -> Tensor:
    dim = feat.size(2)
    ind = ind.unsqueeze(2).expand(ind.size(0), ind.size(1), dim)
    return feat.gather(1, ind)


def _transpose_and_gather_feat(feat: Tensor, ind: Tensor) -> Tensor:
    feat = feat.permute(0, 2, 3, 1).contiguous()
    feat = feat.view(feat.size(0), -1, feat.size(3))
    return _gather_feat(feat, ind)


def _neg_loss(pred: Tensor, gt: Tensor) -> Tensor:
    """``FocalLoss``: CornerNet's focal loss on probabilities, normalised by the positives (gt == 1)."""
    pos_inds = gt.eq(1).float()
    neg_inds = gt.lt(1).float()
    neg_weights = torch.pow(1 - gt, 4)
    loss = 0
    pos_loss = torch.log(pred) * torch.pow(1 - pred, 2) * pos_inds
    neg_loss = torch.log(1 - pred) * torch.pow(pred, 2) * neg_weights * neg_inds
    num_pos = pos_inds.float().sum()
    pos_loss = pos_loss.sum()
    neg_loss = neg_loss.sum()
    if num_pos == 0:
        loss = loss - neg_loss
    else:
        loss = loss - (pos_loss + neg_loss) / num_pos
    return loss


def reg_l1_loss(output: Tensor, mask: Tensor, ind: Tensor, target: Tensor) -> Tensor:
    """``RegL1Loss``: mask [B, M] expanded over the channels; sum |diff| / (mask.sum() + 1e-4)."""
    pred = _transpose_and_gather_feat(output, ind)
    mask = mask.unsqueeze(2).expand_as(pred).float()
    loss = F.l1_loss(pred * mask, target * mask, reduction="sum")
    return loss / (mask.sum() + 1e-4)


def reg_weighted_l1_loss(output: Tensor, mask: Tensor, ind: Tensor, target: Tensor) -> Tensor:
    """``RegWeightedL1Loss``: mask [B, M, D] per coordinate; sum |diff| / (mask.sum() + 1e-4)."""
    pred = _transpose_and_gather_feat(output, ind)
    mask = mask.float()
    loss = F.l1_loss(pred * mask, target * mask, reduction="sum")
    return loss / (mask.sum() + 1e-4)


def multi_pose_loss(
    outputs: list[dict[str, Tensor]], batch: dict[str, Tensor], weights: dict[str, float] = LOSS_WEIGHTS
) -> tuple[Tensor, dict[str, Tensor]]:
    """``MultiPoseLoss.forward`` with the default options (focal ``hm_hp``, L1 regressions).

    Args:
        outputs: one dict of raw logits per stack: ``hm`` [B, C, H, W], ``wh`` [B, 2, H, W],
            ``hps`` [B, 2J, H, W], ``reg`` [B, 2, H, W], ``hm_hp`` [B, J, H, W], ``hp_offset``
            [B, 2, H, W]. Not modified (the original applies ``sigmoid_`` in place).
        batch: the collated targets of :func:`multi_pose_targets`.
        weights: ``hm``, ``wh``, ``off`` (both offsets), ``hp``, ``hm_hp``.

    Returns:
        (total, stats with ``loss``, ``hm_loss``, ``hp_loss``, ``hm_hp_loss``, ``hp_offset_loss``,
        ``wh_loss``, ``off_loss``); each term is averaged over the stacks.
    """
    num_stacks = len(outputs)
    hm_loss, wh_loss, off_loss = 0, 0, 0
    hp_loss, off_loss, hm_hp_loss, hp_offset_loss = 0, 0, 0, 0
    for s in range(num_stacks):
        output = dict(outputs[s])
        output["hm"] = _sigmoid(output["hm"])
        output["hm_hp"] = _sigmoid(output["hm_hp"])
        hm_loss += _neg_loss(output["hm"], batch["hm"]) / num_stacks
        hp_loss += reg_weighted_l1_loss(output["hps"], batch["hps_mask"], batch["ind"], batch["hps"]) / num_stacks
        if weights["wh"] > 0:
            wh_loss += reg_l1_loss(output["wh"], batch["reg_mask"], batch["ind"], batch["wh"]) / num_stacks
        if weights["off"] > 0:
            off_loss += reg_l1_loss(output["reg"], batch["reg_mask"], batch["ind"], batch["reg"]) / num_stacks
            hp_offset_loss += (
                reg_l1_loss(output["hp_offset"], batch["hp_mask"], batch["hp_ind"], batch["hp_offset"]) / num_stacks
            )
        if weights["hm_hp"] > 0:
            hm_hp_loss += _neg_loss(output["hm_hp"], batch["hm_hp"]) / num_stacks
    loss = (
        weights["hm"] * hm_loss
        + weights["wh"] * wh_loss
        + weights["off"] * off_loss
        + weights["hp"] * hp_loss
        + weights["hm_hp"] * hm_hp_loss
        + weights["off"] * hp_offset_loss
    )
    stats = {
        "loss": loss,
        "hm_loss": hm_loss,
        "hp_loss": hp_loss,
        "hm_hp_loss": hm_hp_loss,
        "hp_offset_loss": hp_offset_loss,
        "wh_loss": wh_loss,
        "off_loss": off_loss,
    }
    return loss, stats


# --------------------------------------------------------------------------- decoding (models/decode.py)
def _nms(heat: Tensor, kernel: int = 3) -> Tensor:
    pad = (kernel - 1) // 2
    hmax = F.max_pool2d(heat, (kernel, kernel), stride=1, padding=pad)
    keep = (hmax == heat).float()
    return heat * keep


def _topk_channel(scores: Tensor, K: int = 40) -> tuple[Tensor, Tensor, Tensor, Tensor]:  # noqa: N803
    """Top K per channel: scores, flat indices, ys, xs, each [B, C, K]."""
    batch, cat, height, width = scores.size()
    topk_scores, topk_inds = torch.topk(scores.view(batch, cat, -1), K)
    topk_inds = topk_inds % (height * width)
    # The original's ``(topk_inds / width).int()``: integer division in the PyTorch it was written for.
    topk_ys = (topk_inds // width).int().float()
    topk_xs = (topk_inds % width).int().float()
    return topk_scores, topk_inds, topk_ys, topk_xs


def _topk(scores: Tensor, K: int = 40) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:  # noqa: N803
    """Top K per channel, then top K over those: scores, flat indices, classes, ys, xs, each [B, K]."""
    batch, cat, height, width = scores.size()
    topk_scores, topk_inds = torch.topk(scores.view(batch, cat, -1), K)
    topk_inds = topk_inds % (height * width)
    topk_ys = (topk_inds // width).int().float()
    topk_xs = (topk_inds % width).int().float()
    topk_score, topk_ind = torch.topk(topk_scores.view(batch, -1), K)
    topk_clses = (topk_ind // K).int()
    topk_inds = _gather_feat(topk_inds.view(batch, -1, 1), topk_ind).view(batch, K)
    topk_ys = _gather_feat(topk_ys.view(batch, -1, 1), topk_ind).view(batch, K)
    topk_xs = _gather_feat(topk_xs.view(batch, -1, 1), topk_ind).view(batch, K)
    return topk_score, topk_inds, topk_clses, topk_ys, topk_xs


def multi_pose_decode(
    heat: Tensor,
    wh: Tensor,
    kps: Tensor,
    reg: Tensor | None = None,
    hm_hp: Tensor | None = None,
    hp_offset: Tensor | None = None,
    K: int = 100,  # noqa: N803 (the original's name)
) -> Tensor:
    """``multi_pose_decode``: float [B, K, 4 + 1 + 2J + 1] in grid cells.

    Columns: box XYXY (4), score (1), joints ``x0, y0, x1, y1, ...`` (2J), class (1). ``heat`` and
    ``hm_hp`` are probabilities (after the sigmoid). Each joint starts as centre + ``hps``; with
    ``hm_hp`` it snaps to the nearest of its channel's top-K peaks (3x3 NMS, plus ``hp_offset``)
    unless that peak scores under 0.1, lies outside the box, or is farther than 0.3 x the box's
    longer side.
    """
    batch, cat, height, width = heat.size()
    num_joints = kps.shape[1] // 2
    heat = _nms(heat)
    scores, inds, clses, ys, xs = _topk(heat, K=K)

    kps = _transpose_and_gather_feat(kps, inds)
    kps = kps.view(batch, K, num_joints * 2)
    kps[..., ::2] += xs.view(batch, K, 1).expand(batch, K, num_joints)
    kps[..., 1::2] += ys.view(batch, K, 1).expand(batch, K, num_joints)
    if reg is not None:
        reg = _transpose_and_gather_feat(reg, inds)
        reg = reg.view(batch, K, 2)
        xs = xs.view(batch, K, 1) + reg[:, :, 0:1]
        ys = ys.view(batch, K, 1) + reg[:, :, 1:2]
    else:
        xs = xs.view(batch, K, 1) + 0.5
        ys = ys.view(batch, K, 1) + 0.5
    wh = _transpose_and_gather_feat(wh, inds)
    wh = wh.view(batch, K, 2)
    clses = clses.view(batch, K, 1).float()
    scores = scores.view(batch, K, 1)

    bboxes = torch.cat(
        [xs - wh[..., 0:1] / 2, ys - wh[..., 1:2] / 2, xs + wh[..., 0:1] / 2, ys + wh[..., 1:2] / 2], dim=2
    )
    if hm_hp is not None:
        hm_hp = _nms(hm_hp)
        thresh = 0.1
        kps = kps.view(batch, K, num_joints, 2).permute(0, 2, 1, 3).contiguous()  # b x J x K x 2
        reg_kps = kps.unsqueeze(3).expand(batch, num_joints, K, K, 2)
        hm_score, hm_inds, hm_ys, hm_xs = _topk_channel(hm_hp, K=K)  # b x J x K
        if hp_offset is not None:
            hp_offset = _transpose_and_gather_feat(hp_offset, hm_inds.view(batch, -1))
            hp_offset = hp_offset.view(batch, num_joints, K, 2)
            hm_xs = hm_xs + hp_offset[:, :, :, 0]
            hm_ys = hm_ys + hp_offset[:, :, :, 1]
        else:
            hm_xs = hm_xs + 0.5
            hm_ys = hm_ys + 0.5

        mask = (hm_score > thresh).float()
        hm_score = (1 - mask) * -1 + mask * hm_score
        hm_ys = (1 - mask) * (-10000) + mask * hm_ys  # weak peaks moved far away: never the nearest
        hm_xs = (1 - mask) * (-10000) + mask * hm_xs
        hm_kps = torch.stack([hm_xs, hm_ys], dim=-1).unsqueeze(2).expand(batch, num_joints, K, K, 2)
        dist = ((reg_kps - hm_kps) ** 2).sum(dim=4) ** 0.5
        min_dist, min_ind = dist.min(dim=3)  # b x J x K
        hm_score = hm_score.gather(2, min_ind).unsqueeze(-1)  # b x J x K x 1
        min_dist = min_dist.unsqueeze(-1)
        min_ind = min_ind.view(batch, num_joints, K, 1, 1).expand(batch, num_joints, K, 1, 2)
        hm_kps = hm_kps.gather(3, min_ind)
        hm_kps = hm_kps.view(batch, num_joints, K, 2)
        l = bboxes[:, :, 0].view(batch, 1, K, 1).expand(batch, num_joints, K, 1)  # noqa: E741
        t = bboxes[:, :, 1].view(batch, 1, K, 1).expand(batch, num_joints, K, 1)
        r = bboxes[:, :, 2].view(batch, 1, K, 1).expand(batch, num_joints, K, 1)
        b = bboxes[:, :, 3].view(batch, 1, K, 1).expand(batch, num_joints, K, 1)
        # The original adds uint8 comparisons; summed as floats here, "any of them" either way.
        mask = (
            (hm_kps[..., 0:1] < l).float()
            + (hm_kps[..., 0:1] > r).float()
            + (hm_kps[..., 1:2] < t).float()
            + (hm_kps[..., 1:2] > b).float()
            + (hm_score < thresh).float()
            + (min_dist > (torch.max(b - t, r - l) * 0.3)).float()
        )
        mask = (mask > 0).float().expand(batch, num_joints, K, 2)
        kps = (1 - mask) * hm_kps + mask * kps
        kps = kps.permute(0, 2, 1, 3).contiguous().view(batch, K, num_joints * 2)
    return torch.cat([bboxes, scores, kps, clses], dim=2)


# ------------------------------------------------------------------ flip test (utils.py, detectors/multi_pose.py)
def flip_tensor(x: Tensor) -> Tensor:
    """Mirror along the width axis."""
    return torch.flip(x, [3])


def flip_lr(x: Tensor, flip_idx: list[list[int]]) -> Tensor:
    """Mirror a per-joint map [B, J, H, W] and swap the left/right channels of ``flip_idx``."""
    tmp = x.detach().cpu().numpy()[..., ::-1].copy()
    shape = tmp.shape
    for e in flip_idx:
        tmp[:, e[0], ...], tmp[:, e[1], ...] = tmp[:, e[1], ...].copy(), tmp[:, e[0], ...].copy()
    return torch.from_numpy(tmp.reshape(shape)).to(x.device)


def flip_lr_off(x: Tensor, flip_idx: list[list[int]]) -> Tensor:
    """Mirror a joint displacement map [B, 2J, H, W]: negate the x channels and swap the pairs.

    The original reshapes to a hard-coded 17 joints; here J = channels // 2 (the same for COCO).
    """
    tmp = x.detach().cpu().numpy()[..., ::-1].copy()
    shape = tmp.shape
    tmp = tmp.reshape(tmp.shape[0], shape[1] // 2, 2, tmp.shape[2], tmp.shape[3])
    tmp[:, :, 0, :, :] *= -1
    for e in flip_idx:
        tmp[:, e[0], ...], tmp[:, e[1], ...] = tmp[:, e[1], ...].copy(), tmp[:, e[0], ...].copy()
    return torch.from_numpy(tmp.reshape(shape)).to(x.device)


def flip_test_outputs(output: dict[str, Tensor], flip_idx: list[list[int]] = COCO_FLIP_IDX) -> dict[str, Tensor]:
    """``MultiPoseDetector.process`` with ``flip_test``: the inputs of :func:`multi_pose_decode`.

    Args:
        output: raw logits of the last stack for a batch of 2: the image, then its mirror.

    Returns:
        ``hm``, ``wh``, ``hps``, ``reg``, ``hm_hp``, ``hp_offset`` with batch 1; ``hm`` and
        ``hm_hp`` as probabilities (plain sigmoid, averaged after it).
    """
    hm = output["hm"].sigmoid()
    hm_hp = output["hm_hp"].sigmoid()
    return {
        "hm": (hm[0:1] + flip_tensor(hm[1:2])) / 2,
        "wh": (output["wh"][0:1] + flip_tensor(output["wh"][1:2])) / 2,
        "hps": (output["hps"][0:1] + flip_lr_off(output["hps"][1:2], flip_idx)) / 2,
        "reg": output["reg"][0:1],
        "hm_hp": (hm_hp[0:1] + flip_lr(hm_hp[1:2], flip_idx)) / 2,
        "hp_offset": output["hp_offset"][0:1],
    }
