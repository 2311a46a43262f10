import cv2
import numpy as np
import pytest

from centernet_lightning.datasets import SHAPE_NAMES, COCODataset, generate_synthetic_dataset


def all_files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_identical_files(tmp_path):
    first = generate_synthetic_dataset(tmp_path / "a", num_train=6, num_val=2, image_size=96, seed=3)
    second = generate_synthetic_dataset(tmp_path / "b", num_train=6, num_val=2, image_size=96, seed=3)
    other = generate_synthetic_dataset(tmp_path / "c", num_train=6, num_val=2, image_size=96, seed=4)
    files = all_files(first)
    assert len(files) == 6 + 2 + 2
    assert files == all_files(second)
    assert files["annotations/instances_train.json"] != all_files(other)["annotations/instances_train.json"]


def test_output_loads_with_coco_reader(tmp_path):
    root = generate_synthetic_dataset(tmp_path / "synth", num_train=20, num_val=4, num_classes=5, seed=0)
    train = COCODataset(root, "train")
    assert len(train) == 20 and len(COCODataset(root, "val")) == 4
    assert train.class_names == list(SHAPE_NAMES[:5])
    counts = [len(r.labels) for r in train.records]
    assert min(counts) >= 1 and max(counts) <= 8 and np.mean(counts) >= 3
    all_labels = np.concatenate([r.labels for r in train.records])
    assert set(all_labels.tolist()) == set(range(5))
    sample = train[0]
    assert sample["image"].shape == (256, 256, 3) and sample["image"].dtype == np.uint8
    boxes = np.concatenate([r.bboxes for r in train.records])
    assert (boxes >= 0).all() and (boxes <= 256).all()
    sides = np.maximum(boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1])
    assert sides.min() >= 2 and sides.max() <= 200
    assert np.median(sides) > 16


def test_boxes_are_tight_around_class_coloured_pixels(tmp_path):
    """Class-hued pixels touch each box edge from inside and rarely lie just outside it.

    Each class has its own hue band (OpenCV hue ``label * 60`` for 3 classes). Occlusion, JPEG and
    clutter lines make single edges fail, so the check is on rates over ~200 boxes; boxes that were
    shifted or 2 px too large or too small would fail it.
    """
    root = generate_synthetic_dataset(tmp_path / "synth", num_train=12, num_val=0, seed=1)
    dataset = COCODataset(root, "train")
    inside, outside = [], []
    for index, record in enumerate(dataset.records):
        hsv = cv2.cvtColor(dataset[index]["image"], cv2.COLOR_RGB2HSV).astype(int)
        for (x1, y1, x2, y2), label in zip(record.bboxes.astype(int), record.labels, strict=True):
            hue_distance = np.abs(hsv[..., 0] - label * 60)
            coloured = (np.minimum(hue_distance, 180 - hue_distance) <= 20) & (hsv[..., 1] > 100)
            inside += [
                coloured[y1 : y1 + 2, x1:x2].any(),
                coloured[y2 - 2 : y2, x1:x2].any(),
                coloured[y1:y2, x1 : x1 + 2].any(),
                coloured[y1:y2, x2 - 2 : x2].any(),
            ]
            outside += [
                coloured[max(y1 - 3, 0) : max(y1 - 1, 0), x1:x2].any(),
                coloured[y2 + 1 : y2 + 3, x1:x2].any(),
                coloured[y1:y2, max(x1 - 3, 0) : max(x1 - 1, 0)].any(),
                coloured[y1:y2, x2 + 1 : x2 + 3].any(),
            ]
    assert len(inside) >= 150
    assert np.mean(inside) > 0.95 and np.mean(outside) < 0.3


def test_refuses_non_empty_folder_and_never_deletes(tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not empty"):
        generate_synthetic_dataset(tmp_path, num_train=1, num_val=1)
    generate_synthetic_dataset(tmp_path, num_train=1, num_val=1, overwrite=True)
    assert (tmp_path / "mine.txt").read_text() == "keep me"
    assert (tmp_path / "annotations" / "instances_val.json").is_file()


def test_rejects_bad_arguments(tmp_path):
    with pytest.raises(ValueError, match="num_classes"):
        generate_synthetic_dataset(tmp_path / "x", num_classes=len(SHAPE_NAMES) + 1)
    with pytest.raises(ValueError, match="min_size"):
        generate_synthetic_dataset(tmp_path / "y", min_size=50, max_size=10)
