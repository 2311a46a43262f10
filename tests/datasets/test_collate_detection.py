import numpy as np
import pytest
import torch

from centernet_lightning.datasets import collate_detection
from centernet_lightning.structures import OBJECT_FIELDS, Batch


def make_sample(num_objects: int, image_id: int, size=(3, 16, 16)) -> dict:
    boxes = torch.arange(num_objects * 4, dtype=torch.float32).reshape(num_objects, 4)
    return {
        "image": torch.full(size, float(image_id)),
        "bboxes": boxes,
        "labels": torch.arange(num_objects) + 1,
        "ignore": torch.arange(num_objects) % 2 == 1,
        "image_id": image_id,
        "image_path": f"/data/{image_id}.jpg",
        "original_size": (20 + image_id, 30),
        "letterbox": torch.tensor([0.5, 1.0, 2.0]),
    }


def test_pads_objects_and_builds_mask():
    batch = collate_detection([make_sample(2, 7), make_sample(0, 8), make_sample(3, 9)])
    assert set(batch) == set(Batch.__annotations__) - {"track_ids", "keypoints"}  # no sample has either
    assert batch["images"].shape == (3, 3, 16, 16) and batch["images"].dtype == torch.float32
    assert batch["images"][1].unique().tolist() == [8.0]
    assert batch["bboxes"].shape == (3, 3, 4) and batch["labels"].shape == (3, 3)
    assert batch["mask"].tolist() == [[True, True, False], [False, False, False], [True, True, True]]
    torch.testing.assert_close(batch["bboxes"][0, :2], torch.arange(8.0).reshape(2, 4))
    assert batch["bboxes"][0, 2].tolist() == [0, 0, 0, 0] and batch["labels"][1].tolist() == [0, 0, 0]
    assert batch["labels"][2].tolist() == [1, 2, 3] and batch["labels"].dtype == torch.int64
    assert batch["image_ids"].tolist() == [7, 8, 9] and batch["image_ids"].dtype == torch.int64
    assert batch["original_sizes"].tolist() == [[27, 30], [28, 30], [29, 30]]
    assert batch["original_sizes"].dtype == torch.int64
    assert batch["letterbox"].shape == (3, 3) and batch["letterbox"].dtype == torch.float32
    assert batch["image_paths"] == ["/data/7.jpg", "/data/8.jpg", "/data/9.jpg"]


def test_every_declared_object_field_is_padded_with_its_own_value():
    with_ids = make_sample(2, 1)
    with_ids["track_ids"] = torch.tensor([11, 12])
    batch = collate_detection([with_ids, make_sample(1, 2), make_sample(0, 3)])
    assert batch["ignore"].tolist() == [[False, True], [False, False], [False, False]]
    assert batch["ignore"].dtype == torch.bool
    # A sample without the field, and padding, get the field's pad value (-1: no identity).
    assert batch["track_ids"].tolist() == [[11, 12], [-1, -1], [-1, -1]]
    assert batch["track_ids"].dtype == torch.int64
    assert set(OBJECT_FIELDS) == {"labels", "ignore", "track_ids", "keypoints"}


def test_no_objects_anywhere_gives_zero_width_shapes():
    batch = collate_detection([make_sample(0, 1), make_sample(0, 2)])
    assert batch["bboxes"].shape == (2, 0, 4)
    assert batch["labels"].shape == (2, 0) and batch["mask"].shape == (2, 0)
    assert batch["mask"].dtype == torch.bool


def test_numpy_boxes_are_accepted():
    sample = make_sample(1, 1)
    sample["bboxes"] = np.array([[1, 2, 3, 4]], dtype=np.float32)
    sample["labels"] = np.array([2])
    batch = collate_detection([sample])
    assert batch["bboxes"].tolist() == [[[1, 2, 3, 4]]] and batch["labels"].tolist() == [[2]]


def test_errors_are_clear():
    with pytest.raises(ValueError, match="share one size"):
        collate_detection([make_sample(1, 1), make_sample(1, 2, size=(3, 16, 32))])
    untransformed = make_sample(1, 1)
    untransformed["image"] = np.zeros((16, 16, 3), dtype=np.uint8)
    with pytest.raises(ValueError, match="apply a DetectionTransform"):
        collate_detection([untransformed])
    with pytest.raises(ValueError, match="at least one"):
        collate_detection([])
    broken = make_sample(2, 1)
    broken["labels"] = torch.tensor([1])
    with pytest.raises(ValueError, match="2 boxes but 1 labels"):
        collate_detection([broken])


def with_keypoints(sample: dict, num_joints: int = 2) -> dict:
    """The sample plus joints [N, J, 3]: object n's joint j at (10n + j, 20n + j), visible (2)."""
    count = len(sample["bboxes"])
    objects, joints = torch.meshgrid(torch.arange(count), torch.arange(num_joints), indexing="ij")
    keypoints = torch.stack([10.0 * objects + joints, 20.0 * objects + joints, torch.full(objects.shape, 2.0)], -1)
    return {**sample, "keypoints": keypoints}


def test_keypoints_are_collated_per_object_and_padded_with_zeros():
    without = make_sample(1, 2)  # a reader that fills no keypoints: its object gets none labelled
    empty = with_keypoints(make_sample(0, 3))  # [0, 2, 3]
    batch = collate_detection([with_keypoints(make_sample(2, 1)), without, empty])
    keypoints = batch["keypoints"]
    assert keypoints.shape == (3, 2, 2, 3) and keypoints.dtype == torch.float32
    assert keypoints[0].tolist() == [[[0, 0, 2], [1, 1, 2]], [[10, 20, 2], [11, 21, 2]]]
    assert not keypoints[1:].any()  # the sample without the field and the padding: all zero
    assert batch["mask"].tolist() == [[True, True], [True, False], [False, False]]
    assert set(batch) == set(Batch.__annotations__) - {"track_ids"}


def test_keypoints_of_samples_without_objects_keep_their_tail():
    batch = collate_detection([with_keypoints(make_sample(0, 1), 17), with_keypoints(make_sample(0, 2), 17)])
    assert batch["keypoints"].shape == (2, 0, 17, 3) and batch["bboxes"].shape == (2, 0, 4)
    # An empty array of another shape is accepted beside samples with objects (nothing to copy).
    odd_empty = {**make_sample(0, 3), "keypoints": torch.zeros(0)}
    batch = collate_detection([with_keypoints(make_sample(1, 4), 17), odd_empty])
    assert batch["keypoints"].shape == (2, 1, 17, 3) and batch["keypoints"][0, 0, 16].tolist() == [16, 16, 2]


def test_keypoints_of_another_layout_or_count_name_the_image():
    with pytest.raises(ValueError, match=r"/data/2\.jpg has keypoints of shape \[1, 5, 3\].*/data/1\.jpg"):
        collate_detection([with_keypoints(make_sample(2, 1), 17), with_keypoints(make_sample(1, 2), 5)])
    short = {**make_sample(2, 3), "keypoints": torch.zeros(1, 17, 3)}
    with pytest.raises(ValueError, match=r"/data/3\.jpg has 2 boxes but keypoints of shape \[1, 17, 3\]"):
        collate_detection([short])
    flat = {**make_sample(2, 4), "keypoints": torch.zeros(2, 51)}
    with pytest.raises(ValueError, match=r"/data/4\.jpg has 2 boxes but keypoints of shape \[2, 51\]"):
        collate_detection([flat])
