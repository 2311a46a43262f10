"""The keypoint heads against a port of the original CenterNet's multi_pose code (tests/reference_multi_pose.py):
targets, the loss, decoding and the flip test on random cases."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from centernet_lightning.models import CenterNetLoss, build_detector
from centernet_lightning.models.detector import decode_outputs
from centernet_lightning.structures import KeypointLayout
from tests.reference_multi_pose import (
    COCO_FLIP_IDX,
    collate_targets,
    flip_test_outputs,
    multi_pose_decode,
    multi_pose_loss,
    multi_pose_targets,
)

STRIDE = 4
GRID = 24
NAMES = ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder", "left_elbow",
         "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
         "right_ankle")  # fmt: skip
LAYOUT = KeypointLayout(NAMES)
HEADS = {
    "size": {"weight": 0.1},
    "offset": {},
    "keypoint_offsets": {},
    "keypoint_heatmap": {},
    "keypoint_peak_offset": {},
}
# our head name -> the original's
ORIGINAL_NAMES = {
    "heatmap": "hm",
    "size": "wh",
    "offset": "reg",
    "keypoint_offsets": "hps",
    "keypoint_heatmap": "hm_hp",
    "keypoint_peak_offset": "hp_offset",
}


def random_people(rng: np.random.Generator, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Boxes [N, 4] and joints [N, 17, 3] in grid cells: some boxes past the border, joints labelled
    (v 1 or 2), unlabelled (v 0) or off the grid, one person without labelled joints."""
    corners = rng.uniform(-3, GRID + 1, (count, 2))
    sizes = rng.uniform(1.5, 10, (count, 2))
    boxes = np.concatenate([corners, corners + sizes], axis=1).astype(np.float32)
    joints = np.zeros((count, 17, 3), np.float32)
    joints[..., :2] = corners[:, None] + rng.uniform(-1, 1.2, (count, 17, 2)) * sizes[:, None]
    joints[..., 2] = rng.choice([0, 1, 2], (count, 17), p=[0.3, 0.2, 0.5])
    joints[0, :, 2] = 0
    joints[joints[..., 2] == 0] = 0.0  # unlabelled joints at (0, 0), as COCO writes them
    return boxes, joints


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_targets_and_loss_equal_the_original(seed: int) -> None:
    rng = np.random.default_rng(seed)
    people = [random_people(rng, count) for count in (7, 12)]
    reference = collate_targets([multi_pose_targets(boxes, joints, GRID, GRID) for boxes, joints in people])
    count = max(len(boxes) for boxes, _ in people)
    batch = {
        "bboxes": torch.zeros(2, count, 4),
        "labels": torch.zeros(2, count, dtype=torch.long),
        "mask": torch.zeros(2, count, dtype=torch.bool),
        "keypoints": torch.zeros(2, count, 17, 3),
    }
    for image, (boxes, joints) in enumerate(people):
        batch["bboxes"][image, : len(boxes)] = torch.from_numpy(boxes) * STRIDE  # input pixels
        batch["keypoints"][image, : len(boxes)] = torch.from_numpy(joints * [STRIDE, STRIDE, 1])
        batch["mask"][image, : len(boxes)] = True

    torch.manual_seed(seed)
    detector = build_detector(1, "resnet18", "simple", HEADS, 8, 1, LAYOUT)
    criterion = CenterNetLoss(detector)
    targets = criterion.encode_targets(batch, GRID, GRID)
    np.testing.assert_array_equal(targets.heatmap.numpy(), reference["hm"].numpy())
    joint_heatmap = detector.heads[-1]["keypoint_heatmap"].encode(targets)
    np.testing.assert_array_equal(joint_heatmap.numpy(), reference["hm_hp"].numpy())
    np.testing.assert_array_equal(targets.valid.numpy(), reference["reg_mask"].numpy()[:, :count].astype(bool))

    outputs = {name: torch.randn(2, head.out_channels, GRID, GRID) for name, head in detector.heads[-1].items()}
    ours = criterion(outputs, batch)
    _, theirs = multi_pose_loss([{ORIGINAL_NAMES[name]: value for name, value in outputs.items()}], reference)
    pairs = {"heatmap": "hm_loss", "size": "wh_loss", "offset": "off_loss", "keypoint_offsets": "hp_loss",
             "keypoint_heatmap": "hm_hp_loss", "keypoint_peak_offset": "hp_offset_loss"}  # fmt: skip
    for name, original in pairs.items():
        # the focal losses differ from the original's clamped sigmoid by rounding only (logits in [-4, 4])
        assert ours[name].item() == pytest.approx(theirs[original].item(), rel=1e-5), name
    assert ours["total"].item() == pytest.approx(theirs["loss"].item(), rel=1e-5)


def _many_peak_outputs(rng: np.random.Generator, batch: int, grid: int) -> dict[str, torch.Tensor]:
    """Raw outputs whose heatmaps have more local maxima than K, so both top-K pick real peaks (ties
    between score-0 cells are ordered differently by the two implementations)."""
    return {
        "heatmap": torch.from_numpy(rng.normal(-1, 2, (batch, 1, grid, grid)).astype(np.float32)),
        "size": torch.from_numpy(rng.uniform(2, 12, (batch, 2, grid, grid)).astype(np.float32)),
        "offset": torch.from_numpy(rng.uniform(0, 1, (batch, 2, grid, grid)).astype(np.float32)),
        "keypoint_offsets": torch.from_numpy(rng.normal(0, 3, (batch, 34, grid, grid)).astype(np.float32)),
        "keypoint_heatmap": torch.from_numpy(rng.normal(-2, 1.5, (batch, 17, grid, grid)).astype(np.float32)),
        "keypoint_peak_offset": torch.from_numpy(rng.uniform(0, 1, (batch, 2, grid, grid)).astype(np.float32)),
    }


@pytest.mark.parametrize("seed", [0, 1])
def test_decoding_equals_the_original_multi_pose_decode(seed: int) -> None:
    k = 20
    outputs = _many_peak_outputs(np.random.default_rng(seed), 2, GRID)
    ours = decode_outputs(outputs, STRIDE, num_detections=k)
    theirs = multi_pose_decode(
        outputs["heatmap"].sigmoid(),
        outputs["size"],
        outputs["keypoint_offsets"],
        outputs["offset"],
        outputs["keypoint_heatmap"].sigmoid(),
        outputs["keypoint_peak_offset"],
        K=k,
    )
    np.testing.assert_allclose(ours["bboxes"].numpy() / STRIDE, theirs[..., :4].numpy(), atol=1e-5)
    np.testing.assert_allclose(ours["scores"].numpy(), theirs[..., 4].numpy(), atol=1e-6)
    joints = theirs[..., 5:39].reshape(2, k, 17, 2).numpy()
    np.testing.assert_allclose(ours["keypoints"][..., :2].numpy() / STRIDE, joints, atol=1e-5)
    regressed = decode_outputs({k: v for k, v in outputs.items() if k != "keypoint_heatmap"}, STRIDE, num_detections=k)
    snapped = ~np.isclose(ours["keypoints"][..., :2].numpy(), regressed["keypoints"][..., :2].numpy()).all(-1)
    assert snapped.any() and (~snapped).any(), "the case should snap some joints and keep others"


def test_flip_test_equals_the_original_but_for_the_exact_reflection() -> None:
    """Every merged map is the original's, except the joint displacements' x: the mirror's ``d'``
    becomes ``1 - d'`` here (exact in this library's pixel frame) where the original takes ``-d'``,
    so the merged x is the original's + 0.5 cell."""
    outputs = _many_peak_outputs(np.random.default_rng(5), 2, GRID)  # the image, then its mirror
    detector = build_detector(1, "resnet18", "simple", HEADS, 8, 1, LAYOUT)
    heads = detector.heads[-1]
    merged = {name: heads[name].merge_flipped(value[:1], value[1:]) for name, value in outputs.items()}
    theirs = flip_test_outputs({ORIGINAL_NAMES[name]: value for name, value in outputs.items()}, COCO_FLIP_IDX)
    theirs["hps"][:, 0::2] += 0.5
    for name, value in merged.items():
        torch.testing.assert_close(value, theirs[ORIGINAL_NAMES[name]], rtol=0, atol=1e-6, msg=name)
    ours = decode_outputs(merged, STRIDE, num_detections=10, logits=False)
    reference = multi_pose_decode(theirs["hm"], theirs["wh"], theirs["hps"], theirs["reg"], theirs["hm_hp"],
                                  theirs["hp_offset"], K=10)  # fmt: skip
    np.testing.assert_allclose(
        ours["keypoints"][..., :2].numpy() / STRIDE, reference[..., 5:39].reshape(1, 10, 17, 2).numpy(), atol=1e-5
    )
