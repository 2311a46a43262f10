import cv2
import numpy as np
import pytest

from centernet_lightning.datasets import SHAPE_NAMES, COCODataset, generate_synthetic_dataset
from centernet_lightning.datasets.synthetic import DrawnObject, _render_image


def all_files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def render_many(count, image_size=128, num_classes=3, seed=5):
    """``count`` images drawn straight from the renderer, with their objects (fill colours included)."""
    return [
        _render_image(np.random.default_rng([seed, index]), image_size, num_classes, (8.0, 100.0), (3, 8))
        for index in range(count)
    ]


def ks_statistic(first, second):
    """Two-sample Kolmogorov-Smirnov statistic: the largest gap between the empirical CDFs."""
    values = np.sort(np.concatenate([first, second]))
    cdf_first = np.searchsorted(np.sort(first), values, side="right") / len(first)
    cdf_second = np.searchsorted(np.sort(second), values, side="right") / len(second)
    return float(np.abs(cdf_first - cdf_second).max())


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
    assert sides.min() >= 4 and sides.max() <= 200
    assert np.median(sides) > 20


def test_boxes_are_tight_around_pixels_of_the_object_colour():
    """Pixels of an object's fill colour touch each box edge from inside and rarely lie just outside.

    Occlusion by later shapes, shading, noise and clutter make single edges fail, so the check is
    on rates over ~700 box edges; boxes that were shifted or 2 px too large or too small fail it.
    """
    inside, outside = [], []
    for image, objects in render_many(30):
        pixels = image.astype(np.float32)
        for drawn in objects:
            assert isinstance(drawn, DrawnObject)
            x1, y1, x2, y2 = drawn.box.astype(int)
            assert 0 <= x1 < x2 <= image.shape[1] and 0 <= y1 < y2 <= image.shape[0]
            near = np.linalg.norm(pixels - np.asarray(drawn.colour, dtype=np.float32), axis=-1) < 35
            inside += [
                near[y1 : y1 + 2, x1:x2].any(),
                near[y2 - 2 : y2, x1:x2].any(),
                near[y1:y2, x1 : x1 + 2].any(),
                near[y1:y2, x2 - 2 : x2].any(),
            ]
            outside += [
                near[max(y1 - 3, 0) : max(y1 - 1, 0), x1:x2].any(),
                near[y2 + 1 : y2 + 3, x1:x2].any(),
                near[y1:y2, max(x1 - 3, 0) : max(x1 - 1, 0)].any(),
                near[y1:y2, x2 + 1 : x2 + 3].any(),
            ]
    assert len(inside) >= 400
    assert np.mean(inside) > 0.95 and np.mean(outside) < 0.1


def test_colour_does_not_tell_the_class():
    """Hue, saturation and brightness of the fills have the same distribution for every class.

    With ~700 objects per class, the KS statistic of two samples of one distribution stays below
    ~0.07 (5% level) and 0.1 is a rare outlier (~0.1%); a class hue band would push the hue
    statistic towards 1. A nearest-mean classifier on the fill colour must do no better than chance.
    """
    colours = {label: [] for label in range(3)}
    for _, objects in render_many(400, image_size=64):
        for drawn in objects:
            colours[drawn.label].append(drawn.colour)
    hsv = {
        label: cv2.cvtColor(np.array([values], dtype=np.float32) / 255, cv2.COLOR_RGB2HSV)[0]
        for label, values in colours.items()
    }
    assert min(len(values) for values in hsv.values()) >= 500
    for first, second in ((0, 1), (0, 2), (1, 2)):
        for channel in range(3):  # hue (degrees), saturation, value
            assert ks_statistic(hsv[first][:, channel], hsv[second][:, channel]) < 0.1, (first, second, channel)
    # Nearest class mean in RGB guesses the class no better than chance (1/3).
    means = np.stack([np.mean(colours[label], axis=0) for label in range(3)])
    samples = np.concatenate([np.asarray(colours[label]) for label in range(3)])
    truth = np.concatenate([np.full(len(colours[label]), label) for label in range(3)])
    guess = np.linalg.norm(samples[:, None] - means[None], axis=-1).argmin(axis=1)
    assert np.mean(guess == truth) < 0.45


def test_objects_touch_the_border_and_overlap_moderately():
    boxes_per_image = [np.stack([drawn.box for drawn in objects]) for _, objects in render_many(40) if objects]
    all_boxes = np.concatenate(boxes_per_image)
    touching = (all_boxes[:, :2] <= 0).any(axis=1) | (all_boxes[:, 2:] >= 128).any(axis=1)
    assert 0.05 < touching.mean() < 0.5
    overlapping_images, largest_cover = 0, 0.0
    for boxes in boxes_per_image:
        width = np.minimum(boxes[:, None, 2], boxes[None, :, 2]) - np.maximum(boxes[:, None, 0], boxes[None, :, 0])
        height = np.minimum(boxes[:, None, 3], boxes[None, :, 3]) - np.maximum(boxes[:, None, 1], boxes[None, :, 1])
        intersection = np.clip(width, 0, None) * np.clip(height, 0, None)
        np.fill_diagonal(intersection, 0)
        areas = (boxes[:, 2] - boxes[:, 0]) * (boxes[:, 3] - boxes[:, 1])
        overlapping_images += bool(intersection.any())
        # Row i is the later box when i > j: it may cover at most 30% of the earlier box j.
        later = np.tril(intersection, k=-1) / areas[None, :]
        largest_cover = max(largest_cover, float(later.max()))
    assert overlapping_images >= 0.2 * len(boxes_per_image)
    assert 0.05 < largest_cover <= 0.3 + 1e-6


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
