"""A corpus of broken datasets: every case must give an error or warning that names the culprit."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import pytest

from centernet_lightning.datasets import COCODataset, InferenceDataset, VOCDataset, YOLODataset
from centernet_lightning.datasets.crowdhuman import CrowdHumanDataset


def edit_coco(root: Path, edit: Callable[[dict], None]) -> Path:
    path = root / "annotations" / "instances_train.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data, indent=1))
    return path


def _drop_key(key: str, index: int = 1) -> Callable[[dict], None]:
    return lambda data: data["images"][index].pop(key)


COCO_ERRORS = {
    "image without file_name": (_drop_key("file_name"), r"images\[1\] \(id 101\) has no 'file_name' key"),
    "image without id": (_drop_key("id"), r"images\[1\] \(id \?\) has no 'id' key"),
    "image id not a number": (
        lambda d: d["images"][0].update(id="abc"),
        r"images\[0\]: 'id', 'height' and 'width' must be integers, got id='abc'",
    ),
    "duplicate image ids": (
        lambda d: d["images"][2].update(id=100),
        r"image ids must be unique, but 1 ids are repeated: \[100\] \(id 100 is used by \['img0.png', 'img2.png'\]\)",
    ),
    "empty image list": (lambda d: d.update(images=[], annotations=[]), "the 'images' list is empty"),
    "annotation of an unknown image": (
        lambda d: d["annotations"][0].update(image_id=999),
        "refers to unknown image id 999",
    ),
    "annotation of an unknown category": (
        lambda d: d["annotations"][0].update(category_id=77),
        "unknown category id 77",
    ),
    "bbox of 3 numbers": (lambda d: d["annotations"][0].update(bbox=[1, 2, 3]), "4-number 'bbox'"),
}


@pytest.mark.parametrize("case", COCO_ERRORS, ids=list(COCO_ERRORS))
def test_coco_errors_name_file_and_entry(coco_root: Path, case: str) -> None:
    edit, message = COCO_ERRORS[case]
    path = edit_coco(coco_root, edit)
    with pytest.raises(ValueError, match=message) as error:
        COCODataset(coco_root, "train")
    assert str(path) in str(error.value)


def test_coco_malformed_json_names_line(coco_root: Path) -> None:
    path = coco_root / "annotations" / "instances_train.json"
    path.write_text('{"images": [\n{"id": 1,,}\n]}')
    with pytest.raises(ValueError, match=rf"{path}: malformed JSON at line 2"):
        COCODataset(coco_root, "train")


def test_coco_image_resized_on_disk_is_warned_and_resized_back(coco_root: Path, caplog) -> None:
    """A dataset whose images were halved without rewriting the json keeps its boxes valid."""
    image_path = coco_root / "images" / "train" / "img0.png"
    original = cv2.imread(str(image_path))
    cv2.imwrite(str(image_path), cv2.resize(original, (32, 24), interpolation=cv2.INTER_AREA))
    dataset = COCODataset(coco_root, "train")
    with caplog.at_level(logging.WARNING):
        sample = dataset[0]
    assert sample["image"].shape[:2] == (48, 64) and sample["original_size"] == (48, 64)
    np.testing.assert_array_equal(sample["bboxes"], [[2, 3, 20, 30], [30, 10, 64, 47]])
    messages = [r.getMessage() for r in caplog.records]
    assert any("img0.png is 32x24 (WxH) on disk but 64x48 in its annotation" in m and "resized" in m for m in messages)
    assert dataset.num_resized == 1


def test_voc_empty_split_names_the_list(voc_root: Path) -> None:
    split_file = voc_root / "ImageSets" / "Main" / "train.txt"
    split_file.write_text("\n\n")
    with pytest.raises(ValueError, match=rf"VOC split file {split_file} lists no image ids"):
        VOCDataset(voc_root, "train", name_to_label=["cat", "dog", "bird"])


def test_voc_unknown_class_and_bad_number_name_the_file(voc_root: Path, make_voc_xml) -> None:
    xml_path = voc_root / "Annotations" / "img0.xml"
    xml_path.write_text(make_voc_xml("img0.png", 48, 64, [{"name": "zebra", "box": (1, 1, 5, 5)}]))
    with pytest.raises(ValueError, match=rf"{xml_path}: class 'zebra' is not in name_to_label"):
        VOCDataset(voc_root, "train", name_to_label=["cat", "dog", "bird"])
    xml_path.write_text(make_voc_xml("img0.png", 48, 64, [{"name": "cat", "box": (1, "a", 5, 5)}]))
    with pytest.raises(ValueError, match=rf"{xml_path}: <ymin> must be a number, got 'a'"):
        VOCDataset(voc_root, "train", name_to_label=["cat", "dog", "bird"])


def test_yolo_folder_of_unreadable_extensions_lists_what_it_found(yolo_root: Path) -> None:
    image_dir = yolo_root / "images" / "train"
    for path in image_dir.iterdir():
        path.rename(path.with_suffix(".gif"))
    with pytest.raises(
        ValueError, match=rf"{image_dir} holds no images: it has only files with the extensions \['.gif'\]"
    ):
        YOLODataset(yolo_root, "train", names=["cat", "dog", "bird"])


def test_yolo_reads_tiff_images(yolo_root: Path) -> None:
    image_dir = yolo_root / "images" / "train"
    for path in sorted(image_dir.iterdir()):
        image = cv2.imread(str(path))
        assert cv2.imwrite(str(path.with_suffix(".tif")), image)
        path.unlink()
    dataset = YOLODataset(yolo_root, "train", names=["cat", "dog", "bird"])
    assert len(dataset) == 3 and dataset[0]["image"].shape == (48, 64, 3)
    np.testing.assert_allclose(dataset[0]["bboxes"], [[2, 3, 20, 30], [30, 10, 64, 47]], atol=1e-3)


def test_yolo_label_without_image_is_warned_once(yolo_root: Path, caplog) -> None:
    labels = yolo_root / "labels" / "train"
    for name in ("ghost1.txt", "ghost2.txt"):
        (labels / name).write_text("0 0.5 0.5 0.1 0.1\n")
    with caplog.at_level(logging.WARNING):
        dataset = YOLODataset(yolo_root, "train", names=["cat", "dog", "bird"])
    assert len(dataset) == 3
    warnings = [r.getMessage() for r in caplog.records if "no image" in r.getMessage()]
    assert len(warnings) == 1 and "2 label files" in warnings[0] and str(labels / "ghost1.txt") in warnings[0]


def test_yolo_bad_line_names_file_and_line(yolo_root: Path) -> None:
    label_path = yolo_root / "labels" / "train" / "img0.txt"
    label_path.write_text("0 0.5 0.5 0.1 0.1\n7 0.5 0.5 0.1 0.1\n")
    with pytest.raises(ValueError, match=rf"{label_path}, line 2: class 7 is not an index in \[0, 3\)"):
        YOLODataset(yolo_root, "train", names=["cat", "dog", "bird"])


def test_crowdhuman_bad_line_names_file_and_line(tmp_path: Path, write_image) -> None:
    write_image(tmp_path / "Images" / "a.jpg", np.zeros((8, 8, 3), np.uint8))
    odgt = tmp_path / "annotation_train.odgt"
    odgt.write_text('{"ID": "a", "gtboxes": []}\n{"ID": "b", "gtboxes": \n')
    with pytest.raises(ValueError, match=rf"{odgt}.*line 2"):
        CrowdHumanDataset(tmp_path, "train")


def test_inference_folder_without_images_names_it(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(FileNotFoundError, match=rf"No images .* found in {tmp_path}"):
        InferenceDataset(tmp_path)


def test_exif_rotated_photo_annotated_on_its_stored_pixels_is_read_unrotated(coco_root: Path, caplog) -> None:
    from PIL import Image

    image_path = coco_root / "images" / "train" / "img0.jpg"
    stored = np.random.default_rng(0).integers(0, 255, (48, 64, 3), dtype=np.uint8)  # as annotated: 64x48
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees on display: decoders that apply it give 48x64
    Image.fromarray(stored).save(image_path, exif=exif, quality=95)
    edit_coco(coco_root, lambda d: d["images"][0].update(file_name="img0.jpg"))
    dataset = COCODataset(coco_root, "train")
    with caplog.at_level(logging.WARNING):
        sample = dataset[0]
    assert sample["image"].shape == (48, 64, 3) and dataset.num_resized == 0
    assert not [r for r in caplog.records if "on disk" in r.getMessage()]
    np.testing.assert_array_equal(sample["bboxes"], [[2, 3, 20, 30], [30, 10, 64, 47]])


def test_collate_refuses_boxes_without_labels() -> None:
    import torch

    from centernet_lightning.datasets import collate_detection

    sample = {
        "image": torch.zeros(3, 8, 8),
        "bboxes": torch.ones(1, 4),
        "image_id": 1,
        "image_path": "a.png",
        "original_size": (8, 8),
    }
    with pytest.raises(ValueError, match="a.png has 1 boxes but no 'labels'"):
        collate_detection([sample])
