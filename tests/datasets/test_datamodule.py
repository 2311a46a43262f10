"""DetectionDataModule and the COCO ground truth it hands the evaluator."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import CLASSES, SCENE

from centernet_lightning.datasets import COCODataset, VOCDataset, YOLODataset, generate_tracking_sequences
from centernet_lightning.datasets.datamodule import DetectionDataModule, coco_ground_truth


def _gt_boxes(ground_truth: dict) -> dict[int, list[tuple[list[float], int, int]]]:
    """image id -> [(xyxy, category_id, iscrowd)] from a COCO dict."""
    boxes: dict[int, list] = {image["id"]: [] for image in ground_truth["images"]}
    for ann in ground_truth["annotations"]:
        x, y, w, h = ann["bbox"]
        boxes[ann["image_id"]].append(([x, y, x + w, y + h], ann["category_id"], ann.get("iscrowd", 0)))
    return boxes


def test_ground_truth_is_in_original_pixels_for_every_format(coco_root: Path, voc_root: Path, yolo_root: Path) -> None:
    coco = COCODataset(coco_root, "train")
    voc = VOCDataset(voc_root, "train", name_to_label=CLASSES)
    yolo = YOLODataset(yolo_root, "train", names=CLASSES)
    for dataset in (coco, voc, yolo):
        ground_truth, label_to_category_id = coco_ground_truth(dataset)
        assert len(label_to_category_id) == dataset.num_classes
        names = {category["id"]: category["name"] for category in ground_truth["categories"]}
        per_image = _gt_boxes(ground_truth)
        assert len(per_image) == len(SCENE)
        sizes = {image["id"]: (image["height"], image["width"]) for image in ground_truth["images"]}
        for record, (height, width, boxes, labels) in zip(dataset.records, SCENE):
            assert sizes[record.image_id] == (height, width)
            got = sorted((np.round(b, 3).tolist(), names[c]) for b, c, crowd in per_image[record.image_id] if not crowd)
            expected = sorted((list(map(float, b)), CLASSES[label]) for b, label in zip(boxes, labels))
            assert got == expected, type(dataset).__name__


def test_voc_difficult_objects_become_crowd_regions(tmp_path: Path, make_voc_xml, write_image) -> None:
    root = tmp_path / "voc"
    write_image(root / "JPEGImages" / "a.png", np.zeros((40, 60, 3), dtype=np.uint8))
    objects = [
        {"name": "cat", "box": (5, 5, 20, 20)},
        {"name": "dog", "box": (30, 10, 50, 35), "difficult": "<difficult>1</difficult>"},
    ]
    (root / "Annotations").mkdir(parents=True)
    (root / "Annotations" / "a.xml").write_text(make_voc_xml("a.png", 40, 60, objects))
    dataset = VOCDataset(root, None, name_to_label=CLASSES)
    ground_truth, _ = coco_ground_truth(dataset)
    crowd = [ann for ann in ground_truth["annotations"] if ann["iscrowd"]]
    assert len(ground_truth["annotations"]) == 2 and len(crowd) == 1
    assert crowd[0]["bbox"] == pytest.approx([29, 9, 21, 26])  # 1-based VOC corners -> 0-based xywh


def test_datamodule_builds_batches_and_names(coco_root: Path) -> None:
    datamodule = DetectionDataModule(
        dataset="coco",
        data_dir=str(coco_root),
        train_split="train",
        val_split="train",
        input_size=64,
        train_transforms="light",
        batch_size=2,
        num_workers=0,
    )
    assert datamodule.num_classes == 3 and datamodule.class_names == ["bird", "cat", "dog"]  # by category id
    datamodule.setup("fit")
    batch = next(iter(datamodule.val_dataloader()))
    assert batch["images"].shape == (2, 3, 64, 64)
    assert batch["mask"].dtype == torch.bool and batch["bboxes"].shape[:2] == batch["labels"].shape
    ground_truth, label_to_category_id = datamodule.ground_truth("validate")
    assert label_to_category_id == [2, 5, 9]  # labels follow sorted COCO category ids
    assert len(ground_truth["images"]) == len(SCENE)
    train = next(iter(datamodule.train_dataloader()))
    assert train["images"].shape[0] == 2


def test_datamodule_generates_synthetic_data_once(tmp_path: Path) -> None:
    data_dir = tmp_path / "shapes"
    datamodule = DetectionDataModule(
        dataset="synthetic",
        data_dir=str(data_dir),
        input_size=64,
        batch_size=2,
        num_workers=0,
        synthetic={"num_train": 3, "num_val": 2, "image_size": 64, "num_classes": 2},
    )
    assert datamodule.num_classes == 2 and datamodule.class_names == ["circle", "rectangle"]
    assert not data_dir.exists()  # class names are known without generating anything
    datamodule.prepare_data()
    assert not list(tmp_path.glob(".shapes-*"))  # the temporary folder was renamed into place
    stamp = (data_dir / "annotations" / "instances_train.json").stat().st_mtime_ns
    datamodule.prepare_data()  # already there: left alone
    assert (data_dir / "annotations" / "instances_train.json").stat().st_mtime_ns == stamp
    datamodule.setup("validate")
    assert len(datamodule.datasets["val"]) == 2


def test_a_generated_folder_made_otherwise_is_refused_not_reused(tmp_path: Path, caplog) -> None:
    def shapes(data_dir: Path, num_train: int) -> DetectionDataModule:
        synthetic = {"num_train": num_train, "num_val": 1, "image_size": 64, "num_classes": 1}
        return DetectionDataModule(dataset="synthetic", data_dir=str(data_dir), input_size=64, synthetic=synthetic)

    shapes(tmp_path / "a", 2).prepare_data()
    record = json.loads((tmp_path / "a" / "generated.json").read_text())
    assert record["dataset"] == "synthetic" and record["arguments"]["num_train"] == 2
    shapes(tmp_path / "a", 2).prepare_data()  # the same config: reused
    with pytest.raises(FileExistsError, match=r"a holds a generated synthetic dataset.*'num_train': 3"):
        shapes(tmp_path / "a", 3).prepare_data()
    (tmp_path / "a" / "generated.json").unlink()  # written before records were kept: version 1, reused
    shapes(tmp_path / "a", 3).prepare_data()
    assert "reusing it without checking" in caplog.text
    # The tracking generator is at version 2: an unrecorded folder is from before, so refused.
    tracking = {"num_sequences": 1, "num_val_sequences": 1, "frames_per_sequence": 2, "image_size": 64}
    generate_tracking_sequences(tmp_path / "old", **tracking)
    datamodule = DetectionDataModule(
        dataset="synthetic_tracking", data_dir=str(tmp_path / "old"), input_size=64, synthetic=tracking
    )
    with pytest.raises(FileExistsError, match="no record, so an older version"):
        datamodule.prepare_data()


def test_datamodule_rejects_bad_settings(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="valid names"):
        DetectionDataModule(dataset="kitti", data_dir=str(tmp_path))
    with pytest.raises(ValueError, match="multiple of 32"):
        DetectionDataModule(dataset="coco", data_dir=str(tmp_path), input_size=100)
    datamodule = DetectionDataModule(dataset="coco", data_dir=str(tmp_path / "missing"), input_size=64)
    with pytest.raises(FileNotFoundError, match="instances_train.json"):
        datamodule.setup("fit")


def test_synthetic_refuses_a_foreign_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("user data")
    datamodule = DetectionDataModule(dataset="synthetic", data_dir=str(tmp_path), input_size=64)
    with pytest.raises(FileExistsError, match="not empty"):
        datamodule.prepare_data()
    assert (tmp_path / "mine.txt").read_text() == "user data"


def test_class_names_can_be_given_for_prediction(tmp_path: Path) -> None:
    datamodule = DetectionDataModule(
        dataset="coco", data_dir=str(tmp_path / "none"), train_split=None, val_split=None, class_names=["a", "b"]
    )
    assert datamodule.num_classes == 2
    with pytest.raises(ValueError, match="predict_dir"):
        datamodule.setup("predict")
