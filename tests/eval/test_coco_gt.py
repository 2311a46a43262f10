"""The COCO ground truth the evaluator scores against, for every dataset format, in original pixels."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from conftest import CLASSES, SCENE

from centernet_lightning.datasets import COCODataset, VOCDataset, YOLODataset
from centernet_lightning.eval import coco_ground_truth


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
