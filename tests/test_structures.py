"""The structures every layer shares: the one sanitise step, padding, the inference spec, conversions."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from centernet_lightning.structures import (
    InferenceSpec,
    KeypointLayout,
    flip_permutation,
    is_detection,
    letterbox_inverse,
    letterbox_inverse_points,
    sanitize_boxes,
    to_numpy,
)


def test_sanitize_boxes_clips_and_flags_degenerate():
    boxes = np.array([[-5, 2, 30, 8], [10, 10, 10, 20], [25, 5, 40, 9], [np.nan, 0, 1, 1], [1, 1, 3, 3]])
    clipped, keep = sanitize_boxes(boxes, np.full(5, 10.0), np.full(5, 20.0))
    np.testing.assert_allclose(clipped[0], [0, 2, 20, 8])
    np.testing.assert_allclose(clipped[4], [1, 1, 3, 3])
    # zero width, entirely right of the image (clips to zero width), non-finite
    assert keep.tolist() == [True, False, False, False, True]
    assert clipped.dtype == np.float32


def test_sanitize_boxes_unknown_size_only_clips_at_zero():
    clipped, keep = sanitize_boxes(np.array([[-3, -1, 500, 400]]), np.inf, np.inf)
    np.testing.assert_allclose(clipped, [[0, 0, 500, 400]])
    assert keep.all()


def test_padding_is_label_minus_one():
    labels = torch.tensor([[2, 0, -1]])
    assert is_detection(labels).tolist() == [[True, True, False]]
    assert is_detection(labels.numpy()).tolist() == [[True, True, False]]


def test_inference_spec_round_trips_and_refuses_another_normalisation():
    spec = InferenceSpec(input_size=256, class_names=["a", "b"], category_ids=[3, 7])
    assert InferenceSpec.from_dict({**spec.to_dict(), "stride": 4}) == spec  # other metadata keys ignored
    assert InferenceSpec.from_checkpoint({"inference": spec.to_dict()}) == spec
    assert spec.label_to_category_id(2) == [3, 7] and InferenceSpec().label_to_category_id(2) == [0, 1]
    with pytest.raises(ValueError, match="ImageNet"):
        InferenceSpec(mean=(0.5, 0.5, 0.5))
    with pytest.raises(ValueError, match="2 category_ids for 1 class_names"):
        InferenceSpec(class_names=["a"], category_ids=[1, 2])


def test_letterbox_inverse_maps_back_and_clips():
    boxes = torch.tensor([[[10.0, 20.0, 74.0, 84.0], [0.0, 0.0, 128.0, 128.0]]])
    letterbox = torch.tensor([[0.5, 0.0, 16.0]])  # a 256 x 192 (w x h) image letterboxed to 128
    original = letterbox_inverse(boxes, letterbox, torch.tensor([[192, 256]]))
    torch.testing.assert_close(original[0, 0], torch.tensor([20.0, 8.0, 148.0, 136.0]))
    torch.testing.assert_close(original[0, 1], torch.tensor([0.0, 0.0, 256.0, 192.0]))  # clipped to the image


def test_to_numpy_takes_bfloat16_and_arrays():
    np.testing.assert_array_equal(to_numpy(torch.tensor([1.5], dtype=torch.bfloat16), np.float64), [1.5])
    assert to_numpy([1, 2], np.int64).dtype == np.int64


def test_keypoint_layout_pairs_by_name_round_trips_and_checks():
    layout = KeypointLayout(("nose", "left_eye", "right_eye", "Left Hand", "right hand"), ((0, 1), (0, 2)))
    assert layout.flip_pairs == ((1, 2), (3, 4))  # any case, any separator
    assert layout.flip_permutation() == [0, 2, 1, 4, 3]
    assert KeypointLayout.from_dict(layout.to_dict()) == layout
    coco = KeypointLayout.from_coco_category({"keypoints": ["a", "b"], "skeleton": [[1, 2]]})
    assert coco.skeleton == ((0, 1),)  # COCO's skeleton is 1-based
    with pytest.raises(ValueError, match="outside 0..1"):
        KeypointLayout(("a", "b"), ((0, 2),))
    with pytest.raises(ValueError, match="unique"):
        KeypointLayout(("a", "a"))
    with pytest.raises(ValueError, match="outside 0..2"):
        flip_permutation(3, [(1, 3)])


def test_a_layout_whose_sided_names_do_not_pair_is_warned_about(caplog):
    with caplog.at_level("WARNING"):
        assert KeypointLayout(("l_eye", "r_eye", "nose")).flip_pairs == ()
    assert "l_eye" in caplog.text and "will not swap" in caplog.text


def test_letterbox_inverse_points_maps_xy_keeps_the_score_and_clips():
    points = torch.tensor([[[[30.0, 40.0, 0.7], [500.0, 2.0, 0.1]]]])  # [B=1, K=1, J=2, 3]
    letterbox = torch.tensor([[2.0, 10.0, 20.0]])  # input = original * 2 + (10, 20)
    mapped = letterbox_inverse_points(points, letterbox, torch.tensor([[50, 100]]))
    torch.testing.assert_close(mapped[0, 0], torch.tensor([[10.0, 10.0, 0.7], [100.0, 0.0, 0.1]]))
