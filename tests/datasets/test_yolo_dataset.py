import numpy as np
import pytest

from centernet_lightning.datasets import YOLODataset, build_transforms


def test_reads_normalised_boxes_as_pixels(yolo_root, scene, classes):
    dataset = YOLODataset(yolo_root, "train", classes)
    assert len(dataset) == 3 and dataset.class_names == classes
    for index, expected in enumerate(scene):
        sample = dataset[index]
        np.testing.assert_allclose(sample["bboxes"], expected["bboxes"], atol=1e-4)
        assert sample["labels"].tolist() == expected["labels"].tolist()
    # img2 has no label file: no objects
    assert dataset[2]["bboxes"].shape == (0, 4) and dataset[2]["labels"].dtype == np.int64


def test_names_as_dict_and_order(yolo_root):
    dataset = YOLODataset(yolo_root, "train", {1: "dog", 0: "cat", 2: "bird"})
    assert dataset.class_names == ["cat", "dog", "bird"]
    with pytest.raises(ValueError, match="contiguous"):
        YOLODataset(yolo_root, "train", {0: "cat", 3: "dog"})


def test_malformed_line_names_file_and_line(yolo_root):
    (yolo_root / "labels" / "train" / "img1.txt").write_text("1 0.5 0.5 0.2 0.2\n\n0 0.5 0.5 0.2\n")
    with pytest.raises(ValueError, match=r"img1\.txt, line 3: expected 5 values"):
        YOLODataset(yolo_root, "train", ["cat", "dog", "bird"])
    (yolo_root / "labels" / "train" / "img1.txt").write_text("1 0.5 zero 0.2 0.2\n")
    with pytest.raises(ValueError, match=r"img1\.txt, line 1: non-numeric"):
        YOLODataset(yolo_root, "train", ["cat", "dog", "bird"])


def test_class_out_of_range_is_an_error(yolo_root):
    (yolo_root / "labels" / "train" / "img0.txt").write_text("0 0.5 0.5 0.2 0.2\n3 0.5 0.5 0.2 0.2\n")
    with pytest.raises(ValueError, match=r"img0\.txt, line 2: class 3 is not an index in \[0, 3\)"):
        YOLODataset(yolo_root, "train", ["cat", "dog", "bird"])


def test_out_of_image_boxes_reported_once_and_clipped_by_the_transform(yolo_root, caplog):
    # centre at the right edge, half the box outside; and a zero-width box
    (yolo_root / "labels" / "train" / "img0.txt").write_text("0 1.0 0.5 0.5 0.5\n1 0.5 0.5 0.0 0.2\n")
    dataset = YOLODataset(yolo_root, "train", ["cat", "dog", "bird"])
    assert "dropped 1 boxes that are no boxes" in caplog.text and "1 boxes reach past their image" in caplog.text
    np.testing.assert_allclose(dataset[0]["bboxes"], [[48, 12, 80, 36]], atol=1e-4)  # as annotated
    dataset.transforms = build_transforms(None, input_size=None, size_divisor=1)
    np.testing.assert_allclose(dataset[0]["bboxes"].numpy(), [[48, 12, 64, 36]], atol=1e-4)


def test_wrong_layout_error(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"images/train"):
        YOLODataset(tmp_path, "train", ["a"])
