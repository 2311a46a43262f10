"""Keypoint heads (the original's hps, hm_hp, hp_offset): targets, losses, decoding and flip merging
against hand-computed cases."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from centernet_lightning.decode import Peaks
from centernet_lightning.models import CenterNetLoss, InferenceNetwork, build_detector
from centernet_lightning.models.head_table import build_heads
from centernet_lightning.models.keypoint_heads import (
    KeypointHeatmapHead,
    KeypointOffsetsHead,
    KeypointPeakOffsetHead,
    decode_keypoints,
)
from centernet_lightning.structures import KeypointLayout
from centernet_lightning.targets import encode_targets
from tests.reference import draw_umich_gaussian, gaussian_radius

STRIDE = 4
LAYOUT = KeypointLayout(("nose", "left_eye", "right_eye"), ((0, 1), (0, 2)))
KEYPOINT_HEADS = {"size": {}, "offset": {}, "keypoint_offsets": {}, "keypoint_heatmap": {}, "keypoint_peak_offset": {}}


def one_person_targets(joints: list[list[float]], box=(8.0, 8.0, 24.0, 40.0), grid: int = 16):
    """Targets of one image holding one object with ``joints`` [J, 3] (input pixels, visibility)."""
    return encode_targets(
        torch.tensor([[box]]),
        torch.zeros(1, 1, dtype=torch.long),
        torch.ones(1, 1, dtype=torch.bool),
        1,
        grid,
        grid,
        STRIDE,
        keypoints=torch.tensor([[joints]]),
    )


def test_offset_targets_and_l1_normalisation_by_hand():
    # Box [8, 8, 24, 40] px -> grid [2, 2, 6, 10]: centre (4, 6), the peak cell (4, 6).
    # Joint 0 at (10, 14) px = (2.5, 3.5) cells -> displacement (-1.5, -2.5); joint 1 unlabelled;
    # joint 2 labelled but past the grid (x = 70 px = 17.5 cells): not learnt.
    targets = one_person_targets([[10.0, 14.0, 2.0], [0.0, 0.0, 0.0], [70.0, 20.0, 1.0]])
    head = KeypointOffsetsHead(8, num_keypoints=3)
    output = torch.zeros(1, 6, 16, 16)
    output[0, 0, 6, 4], output[0, 1, 6, 4] = -1.5, -2.5  # exact for joint 0
    output[0, 2:, 6, 4] = 7.0  # joints 1 and 2 are not learnt: any value
    assert head.loss(output, targets).item() == pytest.approx(0.0, abs=1e-6)
    output[0, 0, 6, 4] = -0.5  # error 1 in x; the original's RegWeightedL1Loss: sum / (2 coords + 1e-4)
    assert head.loss(output, targets).item() == pytest.approx(1.0 / (2 + 1e-4), rel=1e-6)


def test_an_object_without_labelled_joints_has_a_peak_but_no_box_regression():
    targets = one_person_targets([[0.0, 0.0, 0.0]] * 3)
    assert targets.heatmap.max().item() == 1.0  # still a peak, as the original's hm
    assert not targets.valid.any()  # the original zeroes reg_mask when num_kpts == 0


def test_joint_heatmap_equals_the_original_drawing():
    joints = [[10.0, 14.0, 2.0], [13.0, 30.0, 1.0], [0.0, 0.0, 0.0]]
    targets = one_person_targets(joints)
    heatmap = KeypointHeatmapHead(8, num_keypoints=3).encode(targets)
    # The original: hp_radius = max(0, int(gaussian_radius((ceil(h), ceil(w))))) of the output-grid box.
    radius = max(0, int(gaussian_radius(math.ceil(8.0), math.ceil(4.0))))
    expected = np.zeros((3, 16, 16), dtype=np.float32)
    draw_umich_gaussian(expected[0], (2, 3), radius)
    draw_umich_gaussian(expected[1], (3, 7), radius)
    np.testing.assert_array_equal(heatmap[0].numpy(), expected)


def test_peak_offset_targets_by_hand():
    targets = one_person_targets([[10.0, 14.0, 2.0], [13.0, 29.0, 2.0], [0.0, 0.0, 0.0]])
    head = KeypointPeakOffsetHead(8)
    output = torch.zeros(1, 2, 16, 16)
    output[0, :, 3, 2] = torch.tensor([0.5, 0.5])  # joint 0: (2.5, 3.5) cells at cell (2, 3)
    output[0, :, 7, 3] = torch.tensor([0.25, 0.25])  # joint 1: (3.25, 7.25) cells at cell (3, 7)
    assert head.loss(output, targets).item() == pytest.approx(0.0, abs=1e-6)
    output[0, 0, 7, 3] = 0.75  # error 0.5 over 4 learnt coordinates (the original's RegL1Loss)
    assert head.loss(output, targets).item() == pytest.approx(0.5 / (4 + 1e-4), rel=1e-6)


def test_keypoint_heads_refuse_a_batch_without_joints_or_with_other_joints():
    targets = encode_targets(torch.tensor([[[8.0, 8, 24, 40]]]), torch.zeros(1, 1, dtype=torch.long),
                             torch.ones(1, 1, dtype=torch.bool), 1, 16, 16, STRIDE)  # fmt: skip
    with pytest.raises(ValueError, match="keypoint dataset"):
        KeypointOffsetsHead(8, num_keypoints=3).loss(torch.zeros(1, 6, 16, 16), targets)
    with pytest.raises(ValueError, match="predicts 5 joints but the data has 3"):
        KeypointHeatmapHead(8, num_keypoints=5).loss(torch.zeros(1, 5, 16, 16), one_person_targets([[0, 0, 0]] * 3))


def _peaks(x: int, y: int, score: float = 0.9, width: int = 16) -> Peaks:
    def one(value):
        return torch.tensor([[value]])

    return Peaks(one(score), one(0), one(y), one(x), one(y * width + x))


def test_decoding_snaps_to_joint_peaks_by_the_original_rules():
    # One detection at cell (8, 8), box [4, 4, 12, 14] cells (longer side 10: snap distance 3).
    width = 16
    offsets = torch.zeros(1, 8, width, width)
    regressed = [(-2.0, -2.0), (2.0, 2.0), (-1.0, 4.0), (3.0, -3.0)]  # joints at (6,6) (10,10) (7,12) (11,5)
    for joint, (dx, dy) in enumerate(regressed):
        offsets[0, 2 * joint, 8, 8], offsets[0, 2 * joint + 1, 8, 8] = dx, dy
    heatmap = torch.full((1, 4, width, width), -10.0)  # logits: probability ~0 everywhere
    peak_offsets = torch.zeros(1, 2, width, width)
    logit = math.log(0.8 / 0.2)
    heatmap[0, 0, 7, 5] = logit  # joint 0: a confident peak 1.1 cells away -> snapped
    peak_offsets[0, :, 7, 5] = torch.tensor([0.25, 0.5])  # -> (5.25, 7.5)
    heatmap[0, 1, 10, 13] = logit  # joint 1: confident but outside the box (x 13.x > 12) -> regressed
    heatmap[0, 2, 12, 2] = logit  # joint 2: 5 cells away, more than 0.3 x 10 -> regressed
    heatmap[0, 3, 5, 11] = math.log(0.05 / 0.95)  # joint 3: under the 0.1 threshold -> regressed
    outputs = {"keypoint_offsets": offsets, "keypoint_heatmap": heatmap, "keypoint_peak_offset": peak_offsets}
    keypoints = decode_keypoints(outputs, _peaks(8, 8), torch.tensor([[[4.0, 4.0, 12.0, 14.0]]]))
    assert keypoints.shape == (1, 1, 4, 3)
    xy, scores = keypoints[0, 0, :, :2], keypoints[0, 0, :, 2]
    torch.testing.assert_close(xy, torch.tensor([[5.25, 7.5], [10.0, 10.0], [7.0, 12.0], [11.0, 5.0]]))
    assert scores[0].item() == pytest.approx(0.8, abs=1e-6)  # the snapped peak's probability
    assert scores[3].item() == pytest.approx(0.05, abs=1e-6)  # the joint heatmap at the regressed joint's cell
    assert scores[1].item() < 1e-3 and scores[2].item() < 1e-3


def test_decoding_without_a_joint_heatmap_keeps_the_regressed_joints_scored_by_the_detection():
    offsets = torch.zeros(1, 2, 16, 16)
    offsets[0, :, 8, 8] = torch.tensor([1.5, -2.0])
    keypoints = decode_keypoints({"keypoint_offsets": offsets}, _peaks(8, 8, 0.7), torch.tensor([[[0, 0, 16, 16.0]]]))
    torch.testing.assert_close(keypoints[0, 0, 0], torch.tensor([9.5, 6.0, 0.7]))


def test_flip_merge_reflects_the_mirrors_displacements_exactly():
    """An image and its mirror whose outputs are both exact give the exact joint once merged: the
    left eye at x = 3.3 cells of an object peaking at cell 2 (displacement 1.3) is, in the mirror of
    an 8-cell grid, a right eye at 4.7 of an object peaking at cell 5 (displacement -0.3)."""
    head = KeypointOffsetsHead(8, num_keypoints=3, flip_pairs=LAYOUT.flip_pairs)
    output = torch.zeros(1, 6, 4, 8)
    output[0, 2:4, 1, 2] = torch.tensor([1.3, 0.75])  # left eye (joint 1)
    mirrored = torch.zeros(1, 6, 4, 8)
    mirrored[0, 4:6, 1, 5] = torch.tensor([-0.3, 0.75])  # the mirror's right eye (joint 2)
    merged = head.merge_flipped(output, mirrored)
    torch.testing.assert_close(merged[0, 2:4, 1, 2], torch.tensor([1.3, 0.75]))


def test_flip_merge_of_joint_heatmaps_swaps_pairs_and_mirrors_columns():
    heat = KeypointHeatmapHead(8, num_keypoints=3, flip_pairs=LAYOUT.flip_pairs)
    logits = torch.full((1, 3, 4, 4), -30.0)
    mirrored_logits = logits.clone()
    mirrored_logits[0, 1, 2, 0] = 30.0
    probabilities = heat.merge_flipped(logits, mirrored_logits)
    assert probabilities[0, 2, 2, 3].item() == pytest.approx(0.5, abs=1e-6)
    assert probabilities[0, 1].max().item() < 1e-6


def test_build_heads_takes_the_joints_from_the_layout_and_checks_them():
    heads = build_heads(
        {"heatmap": {}, "size": {}, **{k: {} for k in KEYPOINT_HEADS if k != "size"}}, 8, 1, 8, 1, LAYOUT
    )
    assert heads["keypoint_offsets"].out_channels == 6 and heads["keypoint_heatmap"].out_channels == 3
    assert heads["keypoint_heatmap"].flip_permutation == [0, 2, 1]
    with pytest.raises(ValueError, match="keypoint dataset"):
        build_heads({"heatmap": {}, "size": {}, "keypoint_offsets": {}}, 8, 1, 8, 1)
    with pytest.raises(ValueError, match="add a 'keypoint_offsets' head"):
        build_heads({"heatmap": {}, "size": {}, "keypoint_peak_offset": {}}, 8, 1, 8, 1, LAYOUT)


def test_detector_decodes_keypoints_in_input_pixels_and_declares_them_as_an_output():
    torch.manual_seed(0)
    detector = build_detector(1, "resnet18", "fpn", KEYPOINT_HEADS, 16, 1, LAYOUT).eval()
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        outputs = detector(images)
        detections = detector.decode(outputs, 5)
        expected = decode_keypoints(
            outputs,
            Peaks(
                detections["scores"],
                detections["labels"],
                detections["indices"] // 16,
                detections["indices"] % 16,
                detections["indices"],
            ),  # fmt: skip
            detections["bboxes"] / STRIDE,
        )
    assert detections["keypoints"].shape == (2, 5, 3, 3)
    torch.testing.assert_close(detections["keypoints"][..., :2], expected[..., :2] * STRIDE)
    network = InferenceNetwork(detector, 5)
    assert network.output_names == ("boxes", "scores", "labels", "keypoints")
    assert network.output_shapes(64)["keypoints"] == [1, 5, 3, 3]


def test_loss_of_a_keypoint_model_has_every_head_term():
    detector = build_detector(1, "resnet18", "fpn", KEYPOINT_HEADS, 16, 1, LAYOUT)
    joints = torch.zeros(1, 1, 3, 3)
    joints[0, 0] = torch.tensor([[20.0, 20.0, 2.0], [18.0, 18.0, 2.0], [22.0, 18.0, 1.0]])
    batch = {
        "images": torch.randn(1, 3, 64, 64),
        "bboxes": torch.tensor([[[10.0, 10.0, 30.0, 34.0]]]),
        "labels": torch.zeros(1, 1, dtype=torch.long),
        "mask": torch.ones(1, 1, dtype=torch.bool),
        "keypoints": joints,
    }
    losses = CenterNetLoss(detector)(detector(batch["images"]), batch)
    assert set(losses) == {"heatmap", "size", "offset", "keypoint_offsets", "keypoint_heatmap",
                           "keypoint_peak_offset", "total"}  # fmt: skip
    weights = {name: head.weight for name, head in detector.heads[-1].items()}
    total = sum(weights[name] * losses[name] for name in weights)
    torch.testing.assert_close(losses["total"], total)
    losses["total"].backward()
