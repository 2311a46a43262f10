"""DetectionTransform with keypoints: joints follow the boxes through Albumentations (in the boxes'
frame, pixel i spanning [i, i + 1)), mirrors swap left and right, joints leaving the image become
unlabelled, the letterbox maps them as boxes."""

import cv2
import numpy as np
import pytest
import torch

from centernet_lightning.datasets import build_transforms, collate_detection
from centernet_lightning.preprocess import denormalize_image
from centernet_lightning.structures import KeypointLayout

# left_eye / right_eye are the one flip pair; left_ear has no right_ear, so it stays in place.
LAYOUT = KeypointLayout(("nose", "left_eye", "right_eye", "left_ear"))
HEIGHT, WIDTH = 40, 60


def keypoint_sample(seed: int = 0) -> dict:
    """A 40x60 image with two people; the right eye of the first is hidden (1), its ear unlabelled."""
    return {
        "image": np.random.default_rng(seed).integers(0, 256, (HEIGHT, WIDTH, 3), dtype=np.uint8),
        "bboxes": np.array([[5, 4, 25, 30], [30, 10, 60, 40]], dtype=np.float32),
        "labels": np.array([2, 0], dtype=np.int64),
        "keypoints": np.array(
            [
                [[15, 10, 2], [12, 8, 2], [18, 8, 1], [0, 0, 0]],
                [[45, 20, 2], [40, 18, 2], [50, 18, 2], [55, 30, 1]],
            ],
            dtype=np.float32,
        ),
        "image_id": 3,
        "image_path": "people.jpg",
        "original_size": (HEIGHT, WIDTH),
        "letterbox": np.array([1.0, 0.0, 0.0], dtype=np.float32),
    }


def transform(spec, input_size=None, **kwargs):
    """No letterbox by default (``input_size=None``, no padding): joints stay in augmented-image pixels."""
    size_divisor = None if input_size is None else 32
    return build_transforms(spec, input_size, size_divisor=size_divisor, keypoint_layout=LAYOUT, **kwargs)


def test_horizontal_flip_then_letterbox_by_hand():
    out = transform([{"name": "HorizontalFlip", "p": 1.0}], input_size=120)(keypoint_sample())
    # Letterbox of 40x60 into 120: scale 2, pad (0, 20). The flip maps x -> 60 - x, as for boxes;
    # then the eyes swap: the left slot gets the flipped right eye.
    assert out["letterbox"].tolist() == [2.0, 0.0, 20.0]
    expected = [
        # nose (15,10)->(45,10)->(90,40); left <- right eye (18,8,v1)->(42,8)->(84,36); right <- left eye
        [[90, 40, 2], [84, 36, 1], [96, 36, 2], [0, 0, 0]],  # the unlabelled ear stays all zero (no pad)
        [[30, 60, 2], [20, 56, 2], [40, 56, 2], [10, 80, 1]],  # the ear (55,30)->(5,30)->(10,80) has no pair
    ]
    torch.testing.assert_close(out["keypoints"], torch.tensor(expected, dtype=torch.float32))
    torch.testing.assert_close(out["bboxes"], torch.tensor([[70.0, 28, 110, 80], [0, 40, 60, 100]]))
    assert out["keypoints"].dtype == torch.float32 and out["labels"].tolist() == [2, 0]


@pytest.mark.parametrize(
    ("spec", "mirrored", "nose"),
    [
        ([{"name": "HorizontalFlip", "p": 1.0}], True, (45, 10)),  # x -> 60 - x
        ([{"name": "VerticalFlip", "p": 1.0}], True, (15, 30)),  # y -> 40 - y
        ([{"name": "Transpose", "p": 1.0}], True, (10, 15)),  # x <-> y
        ([{"name": "HorizontalFlip", "p": 1.0}, {"name": "VerticalFlip", "p": 1.0}], False, (45, 30)),  # 180 deg
        ([{"name": "Affine", "rotate": [180, 180], "p": 1.0}], False, (45, 30)),  # about the centre (30, 20)
        ([{"name": "HorizontalFlip", "p": 1.0}, {"name": "HorizontalFlip", "p": 1.0}], False, (15, 10)),
        ([{"name": "RandomRotate90", "p": 1.0}], False, None),  # a rotation, of a random quarter
    ],
)
def test_only_orientation_reversing_augmentations_swap_left_and_right(spec, mirrored, nose):
    out = transform(spec, seed=1)(keypoint_sample())
    # The first person's left eye is visible (2), its right eye hidden (1): a swap shows in the order.
    assert out["keypoints"][0, :, 2].tolist() == ([2, 1, 2, 0] if mirrored else [2, 2, 1, 0])
    if nose is not None:
        expected = torch.tensor(nose, dtype=torch.float32)
        torch.testing.assert_close(out["keypoints"][0, 0, :2], expected, atol=1e-4, rtol=0)


def test_a_joint_in_the_last_pixel_column_stays_in_the_image_when_flipped():
    sample = keypoint_sample()
    sample["keypoints"][1, 0] = [59.5, 39.5, 2]  # the centre of the bottom-right pixel
    out = transform([{"name": "HorizontalFlip", "p": 1.0}, {"name": "VerticalFlip", "p": 1.0}])(sample)
    assert out["keypoints"][1, 0].tolist() == [0.5, 0.5, 2]  # the centre of the top-left pixel


def test_a_mirror_without_a_layout_is_refused_and_a_rotation_needs_none():
    sample = keypoint_sample()
    flip = build_transforms([{"name": "HorizontalFlip", "p": 1.0}], None, size_divisor=None)
    with pytest.raises(ValueError, match=r"people\.jpg.*keypoint_layout"):
        flip(sample)
    rotate = build_transforms([{"name": "Affine", "rotate": [180, 180], "p": 1.0}], None, size_divisor=None)
    assert rotate(sample)["keypoints"][0, :, 2].tolist() == [2, 2, 1, 0]
    other_layout = build_transforms(None, None, keypoint_layout=KeypointLayout(("a", "b")))
    with pytest.raises(
        ValueError, match=r"people\.jpg has 4 joints per object but the transform's keypoint layout has 2"
    ):
        other_layout(sample)


def test_a_crop_unlabels_the_joints_it_cuts_off_and_drops_those_of_dropped_boxes():
    sample = keypoint_sample()
    # Joints at the crop's edge: x = 29.5 is inside a 30 px wide image, x = 30 is not (0 <= x < W).
    sample["keypoints"][0, 2] = [29.5, 29.9, 1]
    sample["keypoints"][0, 3] = [30, 10, 1]
    out = transform([{"name": "Crop", "x_min": 0, "y_min": 0, "x_max": 30, "y_max": 30}])(sample)
    assert out["image"].shape == (3, 30, 30)
    # The second box lies right of the crop: dropped, its label and its joints with it.
    assert out["labels"].tolist() == [2] and out["keypoints"].shape == (1, 4, 3)
    expected = torch.tensor([[[15, 10, 2], [12, 8, 2], [29.5, 29.9, 1], [0, 0, 0]]], dtype=torch.float32)
    torch.testing.assert_close(out["keypoints"], expected)


def test_random_crop_moves_joints_by_the_crop_offset_found_in_the_image():
    sample = keypoint_sample(seed=4)
    spec = [{"name": "RandomCrop", "height": 30, "width": 30, "pad_if_needed": True}]  # smaller: no padding
    out = transform(spec, seed=7)(sample)
    crop = denormalize_image(out["image"])
    offsets = [(x, y) for y in range(HEIGHT - 29) for x in range(WIDTH - 29)]
    (x0, y0), *others = [(x, y) for x, y in offsets if np.array_equal(sample["image"][y : y + 30, x : x + 30], crop)]
    assert not others
    kept = out["labels"].tolist()
    joints = sample["keypoints"][[[2, 0].index(label) for label in kept]]
    moved = joints[..., :2] - np.array([x0, y0], dtype=np.float32)
    inside = (joints[..., 2] > 0) & (moved >= 0).all(-1) & (moved < 30).all(-1)
    expected = np.where(inside[..., None], np.concatenate([moved, joints[..., 2:]], -1), 0)
    torch.testing.assert_close(out["keypoints"], torch.from_numpy(expected.astype(np.float32)))


def test_random_crop_padding_and_random_scale_by_hand():
    sample = keypoint_sample()
    spec = [
        {
            "name": "RandomCrop",
            "height": 80,
            "width": 80,
            "pad_if_needed": True,
            "pad_position": "center",
            "border_mode": cv2.BORDER_CONSTANT,
            "fill": 0,
        }
    ]
    padded = transform(spec)(sample)  # 40x60 padded to 80x80: 10 px left, 20 px on top; the crop is all of it
    torch.testing.assert_close(padded["keypoints"][0, :3], torch.tensor([[25.0, 30, 2], [22, 28, 2], [28, 28, 1]]))
    torch.testing.assert_close(padded["bboxes"][0], torch.tensor([15.0, 24, 35, 50]))
    scaled = transform([{"name": "RandomScale", "scale_limit": [0.5, 0.5], "p": 1.0}])(sample)  # x 1.5
    assert scaled["image"].shape == (3, 60, 90)
    torch.testing.assert_close(scaled["bboxes"][0], torch.tensor([7.5, 6, 37.5, 45]))
    # Albumentations scales pixel indices as x * s: (x - 0.5) * 1.5 + 0.5, 0.25 px short of 1.5 x.
    expected = torch.tensor([[22.25, 14.75, 2], [17.75, 11.75, 2], [26.75, 11.75, 1]])
    torch.testing.assert_close(scaled["keypoints"][0, :3], expected)
    torch.testing.assert_close(scaled["keypoints"][1, 3], torch.tensor([82.25, 44.75, 1]))


def test_affine_zoom_unlabels_the_joints_it_pushes_out():
    sample = keypoint_sample()
    sample["keypoints"][0, 0] = [15.25, 10.25, 2]
    # Scale 2 about the image centre (30, 20): x -> 2x - 30, y -> 2y - 20.
    out = transform([{"name": "Affine", "scale": 2.0, "p": 1.0}])(sample)
    expected = [
        [[0.5, 0.5, 2], [0, 0, 0], [0, 0, 0], [0, 0, 0]],  # eyes at (-6, -4) and (6, -4): outside
        [[0, 0, 0], [50, 16, 2], [0, 0, 0], [0, 0, 0]],  # (60, 20), (70, 16), (80, 40): outside (x >= 60)
    ]
    torch.testing.assert_close(out["keypoints"], torch.tensor(expected, dtype=torch.float32), atol=1e-4, rtol=0)


def test_without_augmentation_joints_are_letterboxed_and_those_outside_unlabelled():
    sample = keypoint_sample()
    sample["keypoints"][1, 3] = [60, 30, 1]  # x = W: outside the image
    out = build_transforms("val", 120)(sample)  # no mirror can happen: no layout needed
    expected = [[[30, 40, 2], [24, 36, 2], [36, 36, 1], [0, 0, 0]], [[90, 60, 2], [80, 56, 2], [100, 56, 2], [0, 0, 0]]]
    torch.testing.assert_close(out["keypoints"], torch.tensor(expected, dtype=torch.float32))
    assert sample["keypoints"][1, 3].tolist() == [60, 30, 1]  # the input sample is left as it was


def test_samples_without_keypoints_draw_the_same_augmentations_as_before():
    """Joints do not change what a seeded transform draws, and a sample without them gets none."""
    with_joints, without = transform("centernet", 64, seed=5), transform("centernet", 64, seed=5)
    for seed in range(3):
        sample = keypoint_sample(seed)
        plain = {key: value for key, value in sample.items() if key != "keypoints"}
        a, b = with_joints(sample), without(plain)
        assert "keypoints" not in b and a["keypoints"].shape[1:] == (4, 3)
        assert torch.equal(a["image"], b["image"]) and torch.equal(a["bboxes"], b["bboxes"])
        assert torch.equal(a["labels"], b["labels"]) and torch.equal(a["letterbox"], b["letterbox"])


def test_transformed_keypoint_samples_collate():
    sample = keypoint_sample()
    empty = {**keypoint_sample(1), "bboxes": np.zeros((0, 4), np.float32), "labels": np.zeros(0, np.int64)}
    empty["keypoints"] = np.zeros((0, 4, 3), np.float32)
    augment = transform("light", 64, seed=0)
    batch = collate_detection([augment(sample), augment(empty)])
    assert batch["keypoints"].shape == (2, 2, 4, 3) and not batch["keypoints"][1].any()
    visible = batch["keypoints"][0, :, :, 2] > 0
    assert visible.sum() == 7 and (batch["keypoints"][0][visible][:, :2] < 64).all()
