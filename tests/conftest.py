"""Tiny on-disk datasets: the same three images written as COCO, VOC and YOLO."""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

CLASSES = ["cat", "dog", "bird"]
# (height, width, XYXY integer boxes, labels); integer coordinates so every format round-trips.
SCENE = [
    (48, 64, [[2, 3, 20, 30], [30, 10, 64, 47]], [0, 2]),
    (40, 80, [[0, 0, 80, 40], [10, 5, 15, 9]], [1, 1]),
    (50, 50, [], []),
]


def scene_image(index: int) -> np.ndarray:
    """Deterministic RGB uint8 image of SCENE[index]."""
    height, width = SCENE[index][:2]
    return np.random.default_rng(index).integers(0, 256, (height, width, 3), dtype=np.uint8)


def write_rgb(path: Path, image: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))


@pytest.fixture
def coco_root(tmp_path: Path) -> Path:
    """COCO layout with category ids 5, 9, 2 (cat, dog, bird), so labels follow sorted ids."""
    root = tmp_path / "coco"
    category_ids = [5, 9, 2]
    images, annotations = [], []
    for index, (height, width, boxes, labels) in enumerate(SCENE):
        file_name = f"img{index}.png"
        write_rgb(root / "images" / "train" / file_name, scene_image(index))
        images.append({"id": 100 + index, "file_name": file_name, "height": height, "width": width})
        for box, label in zip(boxes, labels, strict=True):
            x1, y1, x2, y2 = box
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": 100 + index,
                    "category_id": category_ids[label],
                    "bbox": [x1, y1, x2 - x1, y2 - y1],
                    "iscrowd": 0,
                }
            )
    categories = [{"id": cid, "name": name} for cid, name in zip(category_ids, CLASSES, strict=True)]
    (root / "annotations").mkdir(parents=True)
    data = {"images": images, "annotations": annotations, "categories": categories}
    (root / "annotations" / "instances_train.json").write_text(json.dumps(data, indent=1))
    return root


def voc_xml(filename: str, height: int | None, width: int | None, objects: list[dict]) -> str:
    """A VOC annotation; objects hold name, 1-based (xmin, ymin, xmax, ymax) and optional difficult."""
    size = f"<size><width>{width}</width><height>{height}</height><depth>3</depth></size>" if height else ""
    parts = []
    for obj in objects:
        xmin, ymin, xmax, ymax = obj["box"]
        difficult = obj.get("difficult", "<difficult>0</difficult>")
        parts.append(
            f"<object><name>{obj['name']}</name>{difficult}<truncated/>"
            f"<bndbox><xmin>{xmin}</xmin><ymin>{ymin}</ymin><xmax>{xmax}</xmax><ymax>{ymax}</ymax></bndbox></object>"
        )
    return f"<annotation><folder>x</folder><filename>{filename}</filename>{size}{''.join(parts)}</annotation>"


@pytest.fixture
def voc_root(tmp_path: Path) -> Path:
    root = tmp_path / "voc"
    (root / "Annotations").mkdir(parents=True)
    (root / "ImageSets" / "Main").mkdir(parents=True)
    ids = []
    for index, (height, width, boxes, labels) in enumerate(SCENE):
        image_id = f"img{index}"
        ids.append(image_id)
        write_rgb(root / "JPEGImages" / f"{image_id}.png", scene_image(index))
        # VOC is 1-based with inclusive max: our XYXY (x1, y1, x2, y2) is written (x1+1, y1+1, x2, y2).
        objects = [
            {"name": CLASSES[label], "box": (b[0] + 1, b[1] + 1, b[2], b[3])}
            for b, label in zip(boxes, labels, strict=True)
        ]
        (root / "Annotations" / f"{image_id}.xml").write_text(voc_xml(f"{image_id}.png", height, width, objects))
    (root / "ImageSets" / "Main" / "train.txt").write_text("\n".join(ids) + "\n")
    return root


@pytest.fixture
def yolo_root(tmp_path: Path) -> Path:
    root = tmp_path / "yolo"
    for index, (height, width, boxes, labels) in enumerate(SCENE):
        write_rgb(root / "images" / "train" / f"img{index}.png", scene_image(index))
        lines = []
        for (x1, y1, x2, y2), label in zip(boxes, labels, strict=True):
            cx, cy = (x1 + x2) / 2 / width, (y1 + y2) / 2 / height
            lines.append(f"{label} {cx:.10f} {cy:.10f} {(x2 - x1) / width:.10f} {(y2 - y1) / height:.10f}")
        if lines:  # the empty image has no label file at all, which means "no objects"
            label_path = root / "labels" / "train" / f"img{index}.txt"
            label_path.parent.mkdir(parents=True, exist_ok=True)
            label_path.write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture
def scene() -> list[dict]:
    """SCENE as the samples every reader should return: image, XYXY float32 boxes, labels."""
    return [
        {
            "image": scene_image(index),
            "bboxes": np.array(boxes, dtype=np.float32).reshape(-1, 4),
            "labels": np.array(labels, dtype=np.int64),
        }
        for index, (_, _, boxes, labels) in enumerate(SCENE)
    ]


@pytest.fixture
def classes() -> list[str]:
    return list(CLASSES)


@pytest.fixture
def write_image():
    """``write_image(path, rgb_array)``: write an image file, creating folders."""
    return write_rgb


@pytest.fixture
def make_voc_xml():
    """``make_voc_xml(filename, height, width, objects) -> str`` (see voc_xml)."""
    return voc_xml


@pytest.fixture(scope="module")
def one_thread():
    """One intra-op thread for a module's tests: the tests share the 2-core machine, 64 px inputs
    need no more, and more threads oversubscribe it (modules opt in with
    ``pytestmark = pytest.mark.usefixtures("one_thread")``)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
