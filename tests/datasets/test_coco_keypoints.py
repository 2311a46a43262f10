"""COCOKeypointsDataset (person_keypoints_{split}.json), keypoint records, and the keypoint datasets of
the data module."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import write_rgb

from centernet_lightning.datasets import COCO_PERSON_KEYPOINTS, COCOKeypointsDataset, ImageRecord
from centernet_lightning.datasets.datamodule import DetectionDataModule
from centernet_lightning.structures import KeypointLayout

JOINTS = ["nose", "left_eye", "right_eye"]
LAYOUT = KeypointLayout(tuple(JOINTS), ((0, 1), (0, 2)))


def person(annotation_id: int, image_id: int, bbox: list, keypoints: list, **extra) -> dict:
    return {"id": annotation_id, "image_id": image_id, "category_id": 1, "bbox": bbox, "keypoints": keypoints, **extra}


def keypoint_json() -> dict:
    """Image 7 (40x60): two people and a crowd region; image 8 (30x30): nobody."""
    return {
        "images": [
            {"id": 7, "file_name": "a.png", "height": 40, "width": 60},
            {"id": 8, "file_name": "b.png", "height": 30, "width": 30},
        ],
        "annotations": [
            person(11, 7, [0, 0, 60, 40], [0, 0, 0] * 3, iscrowd=1),  # the crowd first in the file
            # The right eye is unlabelled (v = 0) but has a position in the file: read as 0, 0, 0.
            person(12, 7, [5, 4, 20, 26], [15, 10, 2, 12, 8, 1, 18, 8, 0]),
            person(13, 7, [30, 10, 30, 30], [45, 20, 2, 40, 18, 2, 50.5, 18.25, 2]),
        ],
        "categories": [{"id": 1, "name": "person", "keypoints": JOINTS, "skeleton": [[1, 2], [1, 3]]}],
    }


def write_dataset(root: Path, data: dict, split: str = "train") -> Path:
    write_rgb(root / "images" / split / "a.png", np.full((40, 60, 3), 100, dtype=np.uint8))
    write_rgb(root / "images" / split / "b.png", np.full((30, 30, 3), 50, dtype=np.uint8))
    (root / "annotations").mkdir(parents=True, exist_ok=True)
    (root / "annotations" / f"person_keypoints_{split}.json").write_text(json.dumps(data))
    return root


def edited(edit) -> dict:
    data = keypoint_json()
    edit(data)
    return data


def test_reads_boxes_joints_layout_and_crowds(tmp_path):
    root = write_dataset(tmp_path, keypoint_json())
    dataset = COCOKeypointsDataset(root, "train")
    assert dataset.keypoint_layout == LAYOUT and dataset.keypoint_layout.flip_pairs == ((1, 2),)
    assert dataset.coco_gt_path == root / "annotations" / "person_keypoints_train.json"
    assert dataset.class_names == ["person"] and dataset.label_to_category_id == [1]
    sample = dataset[0]
    # Objects first, then the crowd region (ignore), as COCODataset orders them.
    np.testing.assert_array_equal(sample["bboxes"], [[5, 4, 25, 30], [30, 10, 60, 40], [0, 0, 60, 40]])
    assert sample["ignore"].tolist() == [False, False, True]
    assert sample["keypoints"].dtype == np.float32 and sample["keypoints"].shape == (3, 3, 3)
    # COCO's pixel indices plus half a pixel (the frame of the boxes)
    expected = [
        [[15.5, 10.5, 2], [12.5, 8.5, 1], [0, 0, 0]],  # unlabelled: forced to 0, 0, 0
        [[45.5, 20.5, 2], [40.5, 18.5, 2], [51, 18.75, 2]],
        [[0, 0, 0], [0, 0, 0], [0, 0, 0]],  # the crowd region has no joints
    ]
    np.testing.assert_array_equal(sample["keypoints"], expected)
    empty = dataset[1]  # no annotations: an empty [0, J, 3], so every sample holds the field
    assert empty["keypoints"].shape == (0, 3, 3) and empty["bboxes"].shape == (0, 4)


def test_crowd_joints_are_zeroed_and_missing_joints_unlabelled(tmp_path):
    def edit(data):
        data["annotations"][0]["keypoints"] = [3, 4, 2] * 3  # a crowd with joints: not targets
        del data["annotations"][2]["keypoints"]  # a person annotated with a box only

    sample = COCOKeypointsDataset(write_dataset(tmp_path, edited(edit)), "train")[0]
    assert not sample["keypoints"][1:].any() and sample["keypoints"][0, 0].tolist() == [15.5, 10.5, 2]


def test_keypoint_categories_of_one_layout_are_classes(tmp_path):
    def edit(data):
        data["categories"].append({"id": 4, "name": "statue", "keypoints": JOINTS})
        data["annotations"][2]["category_id"] = 4

    dataset = COCOKeypointsDataset(write_dataset(tmp_path, edited(edit)), "train")
    assert dataset.class_names == ["person", "statue"] and dataset.keypoint_layout == LAYOUT  # skeleton of id 1
    assert dataset[0]["labels"].tolist() == [0, 1, 0]


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (
            lambda d: d["annotations"][1].update(keypoints=[15, 10, 2, 12, 8]),
            r"person_keypoints_train\.json: annotation 12 has 'keypoints' of 5 values, not a list of 9",
        ),
        (
            lambda d: d["annotations"][2].update(keypoints="45 20 2"),
            r"person_keypoints_train\.json: annotation 13 has 'keypoints' of a str",
        ),
        (
            lambda d: d["annotations"][2]["keypoints"].__setitem__(5, 3),
            r"annotation 13 has a visibility other than 0, 1 or 2 at joint 1 \(left_eye\)",
        ),
        (
            lambda d: d["categories"].append({"id": 2, "name": "cat", "keypoints": ["nose", "tail"]}),
            r"person_keypoints_train\.json: the keypoint categories name different joints",
        ),
        (
            lambda d: (d["categories"].append({"id": 3, "name": "car"}), d["annotations"][2].update(category_id=3)),
            r"person_keypoints_train\.json: annotation 13 is of category 3 \('car'\), which has no joints",
        ),
        (
            lambda d: d["categories"][0].pop("keypoints"),
            r"person_keypoints_train\.json: no category has a 'keypoints' list",
        ),
        (
            lambda d: d["categories"][0].update(skeleton=[[0, 1]]),
            r"person_keypoints_train\.json: category 1 has a bad keypoint layout",
        ),
    ],
)
def test_malformed_keypoint_files_name_the_file(tmp_path, edit, message):
    root = write_dataset(tmp_path, edited(edit))
    with pytest.raises(ValueError, match=message):
        COCOKeypointsDataset(root, "train")


def test_a_missing_file_names_the_keypoints_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"data_dir/annotations/person_keypoints_val\.json"):
        COCOKeypointsDataset(write_dataset(tmp_path, keypoint_json()), "val")


def test_records_select_evaluate_and_pad_joints_on_their_first_axis(tmp_path):
    joints = np.arange(2 * 3 * 3, dtype=np.float32).reshape(2, 3, 3)
    record = ImageRecord(
        tmp_path / "a.png",
        1,
        np.array([[0, 0, 5, 5], [2, 2, 2, 9]], dtype=np.float32),  # the second box has no width
        np.array([0, 0]),
        fields={"keypoints": joints.copy()},
        size=(10, 10),
    )
    boxes, objects, _ = record.evaluated_objects()
    assert len(boxes) == 1 and np.array_equal(objects["keypoints"], joints[:1])
    record.add_ignore_regions(np.array([[1, 1, 3, 3]]))
    assert record.fields["keypoints"].shape == (3, 3, 3) and not record.fields["keypoints"][2].any()
    assert record.fields["ignore"].tolist() == [False, False, True]
    record.select(np.array([False, True, True]))
    assert np.array_equal(record.fields["keypoints"], np.concatenate([joints[1:], np.zeros((1, 3, 3))]))


def test_datamodule_reads_coco_keypoints_and_gives_transforms_the_layout(tmp_path):
    root = write_dataset(tmp_path, keypoint_json())
    datamodule = DetectionDataModule(
        dataset="coco_keypoints",
        data_dir=str(root),
        train_split="train",
        val_split="train",
        input_size=64,
        train_transforms=[{"name": "HorizontalFlip", "p": 1.0}],
        batch_size=2,
        num_workers=0,
    )
    assert datamodule.keypoint_layout == LAYOUT.to_dict() and datamodule.class_names == ["person"]
    assert datamodule.category_ids == [1]
    datamodule.setup("fit")
    assert datamodule.datasets["train"].transforms.keypoint_layout == LAYOUT
    nose, left, right = datamodule.datasets["train"][0]["keypoints"][0]
    # 40x60 -> 64: scale 16/15, pad (0, 10); read + 0.5 (COCO's indices), flipped x -> 60 - x; the eyes
    # swap (the right one unlabelled).
    torch.testing.assert_close(nose, torch.tensor([44.5 * 16 / 15, 10.5 * 16 / 15 + 10, 2]))
    assert left.tolist() == [0, 0, 0]
    torch.testing.assert_close(right, torch.tensor([47.5 * 16 / 15, 8.5 * 16 / 15 + 10, 1]))
    batch = next(iter(datamodule.train_dataloader()))  # shuffled: a.png's 3 objects, b.png's none
    assert batch["keypoints"].shape == (2, 3, 3, 3) and batch["mask"].sum() == 3
    assert batch["keypoints"][~batch["mask"]].abs().sum() == 0


def test_datamodule_of_other_datasets_has_no_keypoint_layout(coco_root):
    datamodule = DetectionDataModule(dataset="coco", data_dir=str(coco_root), num_workers=0)
    assert datamodule.keypoint_layout is None


def test_datamodule_generates_synthetic_keypoints_with_coco_layout(tmp_path):
    data_dir = tmp_path / "people"
    datamodule = DetectionDataModule(
        dataset="synthetic_keypoints",
        data_dir=str(data_dir),
        input_size=64,
        batch_size=2,
        num_workers=0,
        synthetic={"num_train": 2, "num_val": 2, "image_size": 64},
    )
    # Known without generating anything, as the synthetic shapes' class names.
    assert datamodule.keypoint_layout == COCO_PERSON_KEYPOINTS.to_dict() and datamodule.class_names == ["person"]
    assert not data_dir.exists()
    assert COCO_PERSON_KEYPOINTS.num_keypoints == 17 and len(COCO_PERSON_KEYPOINTS.flip_pairs) == 8
    assert COCO_PERSON_KEYPOINTS.skeleton[0] == (15, 13)  # COCO's 1-based [16, 14]
    datamodule.setup("validate")
    dataset = datamodule.datasets["val"]
    assert isinstance(dataset, COCOKeypointsDataset) and dataset.keypoint_layout == COCO_PERSON_KEYPOINTS
    assert dataset.transforms.keypoint_layout == COCO_PERSON_KEYPOINTS and datamodule.category_ids == [1]
    batch = next(iter(datamodule.val_dataloader()))
    assert batch["keypoints"].shape[0] == 2 and batch["keypoints"].shape[2:] == (17, 3)


def test_the_data_module_takes_given_joints_for_data_without_and_checks_them_against_data_with():
    names = {"names": ["left_eye", "right_eye"]}
    assert DetectionDataModule(dataset="coco", keypoint_layout=names).keypoint_layout == {
        "names": ["left_eye", "right_eye"],
        "skeleton": [],
    }
    assert DetectionDataModule(dataset="coco").keypoint_layout is None
    with pytest.raises(ValueError, match="differ from the model's"):
        _ = DetectionDataModule(dataset="synthetic_keypoints", keypoint_layout=names).keypoint_layout
