import logging

import cv2
import numpy as np
import pytest

from centernet_lightning.datasets.common import DetectionDataset, ImageRecord
from centernet_lightning.image_io import read_image, read_image_size


def test_read_image_returns_rgb_uint8(tmp_path):
    bgr = np.zeros((5, 7, 3), dtype=np.uint8)
    bgr[..., 2] = 255  # pure red in OpenCV's BGR order
    cv2.imwrite(str(tmp_path / "red.png"), bgr)
    image = read_image(tmp_path / "red.png")
    assert image.shape == (5, 7, 3) and image.dtype == np.uint8
    assert image[0, 0].tolist() == [255, 0, 0]
    assert read_image_size(tmp_path / "red.png") == (5, 7)


def test_read_image_converts_grey_to_three_channels(tmp_path):
    cv2.imwrite(str(tmp_path / "grey.png"), np.full((4, 4), 77, dtype=np.uint8))
    image = read_image(tmp_path / "grey.png")
    assert image.shape == (4, 4, 3) and (image == 77).all()


def test_read_image_missing_and_corrupt_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.jpg"):
        read_image(tmp_path / "nothere.jpg")
    (tmp_path / "broken.jpg").write_bytes(b"not an image at all")
    with pytest.raises(OSError, match="broken.jpg"):
        read_image(tmp_path / "broken.jpg")
    (tmp_path / "empty.png").write_bytes(b"")
    with pytest.raises(OSError, match="empty.png"):
        read_image(tmp_path / "empty.png")


def test_base_dataset_reports_odd_boxes_once_and_drops_only_non_boxes(tmp_path, write_image, caplog):
    """Readers report: a box past the image is counted and kept (the transform's sanitise step
    clips it), a box with no area is dropped; one warning for the dataset, none per sample."""
    write_image(tmp_path / "a.png", np.zeros((10, 20, 3), dtype=np.uint8))
    records = [
        ImageRecord(
            tmp_path / "a.png",
            0,
            np.array([[-1, 0, 5, 5], [3, 3, 2, 9], [0, 0, 4, 4]], dtype=np.float32),
            np.array([0, 1, 2]),
            size=(10, 20),
        )
    ]
    with caplog.at_level(logging.WARNING):
        dataset = DetectionDataset(records, ["a", "b", "c"], source="unit")
    messages = [r.getMessage() for r in caplog.records]
    assert len(messages) == 1 and "dropped 1 boxes that are no boxes" in messages[0]
    assert "1 boxes reach past their image" in messages[0]
    caplog.clear()
    sample = dataset[0]
    assert not caplog.records  # nothing logged per sample
    np.testing.assert_allclose(sample["bboxes"], [[-1, 0, 5, 5], [0, 0, 4, 4]])
    assert sample["labels"].tolist() == [0, 2]
    assert sample["letterbox"].tolist() == [1.0, 0.0, 0.0]
    assert dataset.num_classes == 3
    with pytest.raises(IndexError):
        dataset[1]
