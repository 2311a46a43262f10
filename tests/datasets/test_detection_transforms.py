import numpy as np
import pytest
import torch

from centernet_lightning.datasets import DetectionTransform, build_transforms, collate_detection
from centernet_lightning.datasets.transforms import PRESETS
from centernet_lightning.preprocess import IMAGENET_MEAN, IMAGENET_STD, denormalize_image
from centernet_lightning.structures import letterbox_inverse


def raw_sample(height=40, width=60, seed=0) -> dict:
    image = np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)
    return {
        "image": image,
        "bboxes": np.array([[5, 4, 25, 30], [30, 10, 60, 40]], dtype=np.float32),
        "labels": np.array([2, 0], dtype=np.int64),
        "image_id": 3,
        "image_path": "x.jpg",
        "original_size": (height, width),
        "letterbox": np.array([1.0, 0.0, 0.0], dtype=np.float32),
    }


def with_fields(sample: dict) -> dict:
    """The sample plus an ignore region and track ids: per-object fields beside the labels."""
    return {
        **sample,
        "bboxes": np.concatenate([sample["bboxes"], [[0, 0, 10, 8]]]).astype(np.float32),
        "labels": np.array([2, 0, 1], dtype=np.int64),
        "ignore": np.array([False, False, True]),
        "track_ids": np.array([7, 8, -1], dtype=np.int64),
    }


def normalised(image: np.ndarray) -> torch.Tensor:
    mean, std = np.array(IMAGENET_MEAN) * 255, np.array(IMAGENET_STD) * 255
    return torch.from_numpy(((image - mean) / std).astype(np.float32).transpose(2, 0, 1))


def test_no_augmentation_no_letterbox_is_normalisation_only():
    sample = raw_sample()
    out = build_transforms(None, input_size=None, size_divisor=None)(sample)
    torch.testing.assert_close(out["image"], normalised(sample["image"]), atol=1e-5, rtol=0)
    torch.testing.assert_close(out["bboxes"], torch.from_numpy(sample["bboxes"]))
    assert out["letterbox"].tolist() == [1.0, 0.0, 0.0] and out["image_id"] == 3
    np.testing.assert_array_equal(denormalize_image(out["image"]), sample["image"])


def test_horizontal_flip_once_mirrors_and_twice_is_identity():
    sample = with_fields(raw_sample())
    once = build_transforms([{"name": "HorizontalFlip", "p": 1.0}], input_size=None, size_divisor=None)(sample)
    torch.testing.assert_close(once["image"], normalised(sample["image"][:, ::-1]), atol=1e-5, rtol=0)
    expected = np.array([[35, 4, 55, 30], [0, 10, 30, 40], [50, 0, 60, 8]], dtype=np.float32)  # x -> 60 - x
    torch.testing.assert_close(once["bboxes"], torch.from_numpy(expected), atol=1e-4, rtol=0)
    # Every per-object field travels with its box.
    assert once["labels"].tolist() == [2, 0, 1] and once["ignore"].tolist() == [False, False, True]
    assert once["track_ids"].tolist() == [7, 8, -1]

    spec = [{"name": "HorizontalFlip", "p": 1.0}, {"name": "HorizontalFlip", "p": 1.0}]
    twice = build_transforms(spec, input_size=None, size_divisor=None)(sample)
    torch.testing.assert_close(twice["image"], normalised(sample["image"]), atol=1e-5, rtol=0)
    torch.testing.assert_close(twice["bboxes"], torch.from_numpy(sample["bboxes"]), atol=1e-4, rtol=0)
    assert twice["ignore"].tolist() == [False, False, True]


@pytest.mark.parametrize("pad_position", ["center", "top_left"])
@pytest.mark.parametrize(("height", "width"), [(40, 60), (75, 30), (64, 64)])
def test_val_letterbox_and_its_inverse(pad_position, height, width):
    sample = raw_sample(height, width)
    sample["bboxes"] = np.array([[1, 2, 20, 30], [3.5, 7.25, width, height]], dtype=np.float32)
    out = build_transforms("val", 128, pad_position=pad_position)(sample)
    assert out["image"].shape == (3, 128, 128)
    scale, pad_x, pad_y = out["letterbox"].tolist()
    assert scale == pytest.approx(128 / max(height, width))
    if pad_position == "center":
        assert pad_x == (128 - round(width * scale)) // 2 and pad_y == (128 - round(height * scale)) // 2
    else:
        assert pad_x == pad_y == 0
    restored = letterbox_inverse(out["bboxes"], out["letterbox"])
    torch.testing.assert_close(restored, torch.from_numpy(sample["bboxes"]), atol=1e-3, rtol=0)
    # padding is the mean colour, which normalises to ~0
    if pad_y >= 1:
        assert out["image"][:, 0, :].abs().max() < 0.02


def test_letterbox_inverse_batched_and_clipped():
    samples = [raw_sample(40, 60, seed=0), raw_sample(90, 30, seed=1)]
    transform = build_transforms("val", 96)
    batch = collate_detection([transform(s) for s in samples])
    restored = letterbox_inverse(batch["bboxes"], batch["letterbox"])
    # The second image is 30 px wide: its box [30, 10, 60, 40] lies past it, and the sanitise step
    # drops it rather than letting it into the letterbox padding.
    kept = [samples[0]["bboxes"], samples[1]["bboxes"][:1]]
    for i, boxes in enumerate(kept):
        torch.testing.assert_close(restored[i][batch["mask"][i]], torch.from_numpy(boxes), atol=1e-3, rtol=0)
    outside = torch.tensor([[[-50.0, -50.0, 500.0, 500.0]], [[-50.0, -50.0, 500.0, 500.0]]])
    clipped = letterbox_inverse(outside, batch["letterbox"], batch["original_sizes"])
    assert clipped.tolist() == [[[0, 0, 60, 40]], [[0, 0, 30, 90]]]


def test_letterbox_composes_with_an_existing_one():
    sample = raw_sample(40, 60)
    sample["letterbox"] = np.array([2.0, 1.0, 3.0], dtype=np.float32)
    out = build_transforms("val", 120)(sample)  # scale 2, pad_y 20
    assert out["letterbox"].tolist() == pytest.approx([4.0, 2.0, 26.0])


def test_centernet_preset_outputs_input_size_with_valid_boxes():
    transform = build_transforms("centernet", 64, seed=0)
    for seed in range(10):
        out = transform(raw_sample(40, 90, seed=seed))
        assert out["image"].shape == (3, 64, 64)
        boxes = out["bboxes"]
        assert len(boxes) == len(out["labels"]) and set(out["labels"].tolist()) <= {0, 2}
        assert (boxes >= 0).all() and (boxes <= 64).all()
        assert (boxes[:, 2] > boxes[:, 0]).all() and (boxes[:, 3] > boxes[:, 1]).all()
    first = build_transforms("centernet", 64, seed=5)(raw_sample())
    second = build_transforms("centernet", 64, seed=5)(raw_sample())
    assert torch.equal(first["image"], second["image"]) and torch.equal(first["bboxes"], second["bboxes"])


def test_light_preset_and_compositions_from_config():
    out = build_transforms("light", 64)(raw_sample())
    assert out["image"].shape == (3, 64, 64) and len(out["bboxes"]) == 2
    spec = [{"name": "OneOf", "p": 1.0, "transforms": [{"name": "VerticalFlip", "p": 1.0}]}]
    flipped = build_transforms(spec, input_size=None, size_divisor=None)(raw_sample())
    torch.testing.assert_close(flipped["bboxes"][0], torch.tensor([5.0, 10, 25, 36]), atol=1e-4, rtol=0)


def test_boxes_leaving_the_image_are_removed():
    spec = [{"name": "Crop", "x_min": 0, "y_min": 0, "x_max": 28, "y_max": 40}]
    out = build_transforms(spec, input_size=None, size_divisor=None)(raw_sample())
    assert out["image"].shape == (3, 40, 28)
    assert out["labels"].tolist() == [2]  # the box at x >= 30 is gone
    torch.testing.assert_close(out["bboxes"], torch.tensor([[5.0, 4, 25, 30]]))


def test_size_divisor_pads_without_resizing():
    out = build_transforms(None, input_size=None, size_divisor=32)(raw_sample(40, 60))
    assert out["image"].shape == (3, 64, 64)
    assert out["letterbox"].tolist() == [1.0, 2.0, 12.0]  # width 60 -> 64, height 40 -> 64


def test_config_errors_list_valid_names():
    with pytest.raises(ValueError, match="HorizontalFlip"):
        build_transforms([{"name": "HorizontalFlp", "p": 0.5}])
    with pytest.raises(ValueError, match=r"valid presets: \['centernet', 'light', 'val'\]"):
        build_transforms("heavy")
    with pytest.raises(ValueError, match=r"HorizontalFlip got unknown arguments \['probability'\]"):
        build_transforms([{"name": "HorizontalFlip", "probability": 0.5}])
    with pytest.raises(ValueError, match="pad_position"):
        DetectionTransform(pad_position="bottom")
    with pytest.raises(TypeError, match="uint8 HWC"):
        build_transforms("val", 32)(build_transforms("val", 32)(raw_sample()))


def test_pca_lighting_adds_the_imagenet_eigenvector_shift_in_bgr_order():
    from centernet_lightning.datasets.transforms import IMAGENET_EIGENVALUES, IMAGENET_EIGENVECTORS, PCALighting

    image = np.full((4, 5, 3), 100, dtype=np.uint8)
    alpha = np.array([0.1, -0.2, 0.05], dtype=np.float32)
    out = PCALighting().apply(image, alpha=alpha)
    # The original: image_bgr += eigvec @ (eigval * alpha) on [0, 1] images; hand-computed here.
    shift_bgr = [
        sum(IMAGENET_EIGENVECTORS[c, k] * IMAGENET_EIGENVALUES[k] * alpha[k] for k in range(3)) for c in range(3)
    ]
    expected_rgb = np.rint(100 + np.array(shift_bgr[::-1]) * 255).astype(np.uint8)
    assert (out == expected_rgb).all()
    np.testing.assert_allclose(IMAGENET_EIGENVALUES, [0.2141788, 0.01817699, 0.00341571])
    # From a config by name, and in the paper's preset.
    transform = build_transforms([{"name": "PCALighting", "alpha_std": 0.1, "p": 1.0}], input_size=None)
    assert transform(raw_sample())["image"].shape == (3, 64, 64)
    assert any(isinstance(t, PCALighting) for t in PRESETS["centernet"](64))


def test_the_sanitise_step_clips_to_the_image_not_to_the_letterbox_canvas():
    """A box reaching past the image is clipped at the image's border, before the letterbox, so no
    box reaches into the padding (the 40 x 60 image is padded to 96 x 96)."""
    sample = {**raw_sample(40, 60), "bboxes": np.array([[20, 10, 80, 30], [-9, -9, -1, 5]], dtype=np.float32)}
    out = build_transforms("val", 96)(sample)
    scale, pad_x, pad_y = out["letterbox"].tolist()
    assert pad_y > 0 and out["labels"].tolist() == [2]  # the second box lies wholly outside: dropped
    expected = torch.tensor([[20.0, 10.0, 60.0, 30.0]]) * scale + torch.tensor([pad_x, pad_y, pad_x, pad_y])
    torch.testing.assert_close(out["bboxes"], expected)
