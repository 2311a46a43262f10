"""Inference on whole images and videos: the predictor, `inference_detection2d`, `centernet predict
--source`, and the agreement of validation, Python, the command and every backend."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from tiny_models import tiny_centernet

from centernet_lightning.datasets import InferenceDataset, build_transforms, collate_detection
from centernet_lightning.deploy import build_backend, load_predictor
from centernet_lightning.inference import Predictor, new_run_dir, open_source
from centernet_lightning.structures import InferenceSpec
from centernet_lightning.tasks import CenterNet, load_model, save_checkpoint
from centernet_lightning.weights import read_checkpoint

SIZE = 128
CATEGORY_IDS = [5, 9, 2]
CLASS_NAMES = ["cat", "dog", "bird"]


def picture(seed: int, height: int, width: int) -> np.ndarray:
    """A smooth background with a few filled shapes (uint8 HWC RGB)."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    image = rng.uniform(40, 200, 3) + ys[..., None] * rng.uniform(-0.5, 0.5, 3) + xs[..., None] * 0.2
    image = np.clip(image, 0, 255).astype(np.uint8)
    for _ in range(4):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        x, y = int(rng.integers(0, width - 20)), int(rng.integers(0, height - 20))
        cv2.rectangle(image, (x, y), (x + int(rng.integers(8, 40)), y + int(rng.integers(8, 40))), colour, -1)
    return image


def write_rgb(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return path


def tiny_model() -> CenterNet:
    return tiny_centernet(CLASS_NAMES, SIZE, CATEGORY_IDS, channels=32, head_width=16)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_checkpoint(tiny_model(), tmp_path_factory.mktemp("ckpt") / "tiny.ckpt")


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    """Three readable images of different sizes (PNG: lossless) and one corrupt file."""
    images = tmp_path / "images"
    for index, (height, width) in enumerate([(96, 160), (128, 128), (150, 90)]):
        write_rgb(images / f"img{index}.png", picture(index, height, width))
    (images / "broken.jpg").write_bytes(b"not an image at all")
    return images


def run_cli(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "centernet_lightning.cli", "predict", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=300,
    )


def test_checkpoint_keeps_the_inference_spec(checkpoint: Path):
    stored = read_checkpoint(checkpoint)["inference"]
    assert stored["input_size"] == SIZE and stored["category_ids"] == CATEGORY_IDS
    assert stored["class_names"] == CLASS_NAMES and stored["pad_position"] == "center"
    loaded = load_model(checkpoint)
    assert loaded.inference_spec == InferenceSpec(input_size=SIZE, class_names=CLASS_NAMES, category_ids=CATEGORY_IDS)
    assert not loaded.training


def test_old_checkpoints_take_the_input_size_of_their_data_module():
    spec = InferenceSpec.from_checkpoint({"datamodule_hyper_parameters": {"input_size": 256}, "hyper_parameters": {}})
    assert spec.input_size == 256 and spec.category_ids is None
    assert spec.label_to_category_id(3) == [0, 1, 2]
    with pytest.raises(ValueError, match="ImageNet"):
        InferenceSpec(mean=(0.5, 0.5, 0.5))


def test_inference_detection2d_matches_validation_preprocessing(folder: Path):
    """The boxes of `inference_detection2d` equal those of the datamodule path (val transform,
    collate, predict_step) on the same files."""
    model = tiny_model()
    paths = sorted(p for p in folder.iterdir() if p.suffix == ".png")
    dataset = InferenceDataset(folder, img_names=[p.name for p in paths], transforms=build_transforms("val", SIZE))
    batch = collate_detection([dataset[i] for i in range(len(paths))])
    expected = model.predict_step(batch, 0)

    found = model.inference_detection2d([str(p) for p in paths], num_detections=20)
    assert found["bboxes"].shape == (3, 20, 4) and found["labels"].dtype == np.int64
    np.testing.assert_array_equal(found["labels"], expected["labels"].numpy())
    np.testing.assert_allclose(found["scores"], expected["scores"].numpy(), atol=1e-6)
    np.testing.assert_allclose(found["bboxes"], expected["bboxes"].numpy(), atol=1e-3)
    # Boxes are in each image's own pixels: inside the original sizes, not the 128 px input.
    assert found["bboxes"][0, :, 2].max() <= 160 and found["bboxes"][2, :, 3].max() <= 150


def test_inference_detection2d_on_arrays_folder_and_skipped_files(folder: Path):
    model = tiny_model()
    paths = sorted(p for p in folder.iterdir() if p.suffix == ".png")
    arrays = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in paths]
    from_arrays = model.inference_detection2d(arrays, num_detections=10)
    from_paths = model.inference_detection2d([str(p) for p in paths], num_detections=10)
    for key in from_arrays:
        np.testing.assert_array_equal(from_arrays[key], from_paths[key])
    in_pairs = model.inference_detection2d(arrays, num_detections=10, batch_size=2)  # other batch, same boxes
    np.testing.assert_array_equal(in_pairs["labels"], from_paths["labels"])
    np.testing.assert_allclose(in_pairs["bboxes"], from_paths["bboxes"], atol=1e-3)
    with pytest.raises(OSError, match="broken.jpg"):
        model.inference_detection2d(folder)
    skipped = model.inference_detection2d(folder, num_detections=10, skip_bad_images=True)
    assert skipped["scores"].shape == (4, 10)
    assert (skipped["scores"][0] == 0).all() and (skipped["labels"][0] == -1).all()  # broken.jpg sorts first
    np.testing.assert_array_equal(skipped["bboxes"][1:], from_paths["bboxes"])
    with pytest.raises(TypeError, match="uint8"):
        model.inference_detection2d([np.zeros((8, 8), np.float32)])


def test_tta_setting_drives_validation_and_inference(folder: Path):
    """`model.tta` (config / `--tta`) changes the detections of the evaluation steps and of
    inference; a mirror-symmetric image gives mirror-symmetric boxes under the flip test."""
    from centernet_lightning.inference.tta import detect_with_tta, parse_tta

    plain, flipped = tiny_model(), tiny_model()
    flipped.tta = parse_tta("flip")
    half = picture(3, 96, 64)
    symmetric = np.ascontiguousarray(np.concatenate([half, half[:, ::-1]], axis=1))  # 96 x 128, mirror-symmetric
    found = flipped.inference_detection2d([symmetric], num_detections=20)
    boxes = found["bboxes"][0][found["labels"][0] >= 0]
    mirrored = boxes[:, [2, 1, 0, 3]] * [-1, 1, -1, 1] + [128, 0, 128, 0]
    distance = np.abs(boxes[:, None, :] - mirrored[None, :, :]).max(-1)  # every box has its mirror image
    assert distance.min(axis=1).max() < 0.05

    paths = sorted(p for p in folder.iterdir() if p.suffix == ".png")
    dataset = InferenceDataset(folder, img_names=[p.name for p in paths], transforms=build_transforms("val", SIZE))
    batch = collate_detection([dataset[i] for i in range(len(paths))])
    batch.update(
        bboxes=torch.zeros(3, 0, 4),
        labels=torch.zeros(3, 0, dtype=torch.long),
        mask=torch.zeros(3, 0, dtype=torch.bool),
    )
    with torch.no_grad():
        evaluated = flipped.validation_step(batch, 0)  # original pixels
        expected = detect_with_tta(flipped.detector, batch["images"], parse_tta("flip"), num_detections=20)
        unaugmented = plain.validation_step(batch, 0)
    original = Predictor.to_original_pixels(expected, batch["letterbox"], batch["original_sizes"])
    torch.testing.assert_close(evaluated["scores"], original["scores"])
    torch.testing.assert_close(evaluated["bboxes"], original["bboxes"])
    assert not torch.allclose(evaluated["scores"], unaugmented["scores"])
    with pytest.raises(ValueError, match="bogus"):
        CenterNet(num_classes=3, tta="bogus")


def test_sources_name_what_matches_nothing(tmp_path: Path):
    with pytest.raises(FileNotFoundError, match="nothing_here"):
        open_source(tmp_path / "nothing_here")
    with pytest.raises(FileNotFoundError, match=r"\*\.png"):
        open_source(str(tmp_path / "*.png"))
    (tmp_path / "clip.mp4").write_bytes(b"\x00" * 100)
    with pytest.raises(OSError, match="clip.mp4"):
        open_source(tmp_path / "clip.mp4")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="neither an image"):
        open_source(tmp_path / "notes.txt")


def test_run_folders_are_never_reused(tmp_path: Path):
    assert [new_run_dir(tmp_path, "predict").name for _ in range(3)] == ["predict", "predict2", "predict3"]


@pytest.mark.slow
def test_predict_command_on_a_folder_with_a_corrupt_file(checkpoint: Path, folder: Path, tmp_path: Path):
    result = run_cli("--ckpt_path", str(checkpoint), "--source", str(folder), "--conf", "0", "--save-txt", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "broken.jpg" in result.stderr and "Skipping" in result.stderr
    assert "3 images in" in result.stdout and "images/s" in result.stdout
    run = tmp_path / "runs" / "predict"
    assert sorted(p.name for p in run.glob("*.png")) == ["img0.png", "img1.png", "img2.png"]
    assert sorted(p.name for p in (run / "labels").iterdir()) == ["img0.txt", "img1.txt", "img2.txt"]

    # The JSON holds what inference_detection2d finds, with the dataset's category ids.
    entries = json.loads((run / "predictions.json").read_text())
    paths = sorted(p for p in folder.iterdir() if p.suffix == ".png")
    expected = load_model(checkpoint).inference_detection2d([str(p) for p in paths], num_detections=20)
    for image_id, path in enumerate(paths, start=1):  # image ids are positions in the source: broken.jpg is 0
        mine = [e for e in entries if e["image_id"] == image_id]
        assert {e["file_name"] for e in mine} == {str(path)}
        keep = expected["labels"][image_id - 1] >= 0
        boxes = expected["bboxes"][image_id - 1][keep]
        assert len(mine) == len(boxes)
        xywh = np.array([e["bbox"] for e in mine])
        np.testing.assert_allclose(xywh[:, :2], boxes[:, :2], atol=2e-3)
        np.testing.assert_allclose(xywh[:, :2] + xywh[:, 2:], boxes[:, 2:], atol=4e-3)
        np.testing.assert_allclose([e["score"] for e in mine], expected["scores"][image_id - 1][keep], atol=1e-5)
        assert [e["category_id"] for e in mine] == [
            CATEGORY_IDS[label] for label in expected["labels"][image_id - 1][keep]
        ]
    lines = (run / "labels" / "img0.txt").read_text().splitlines()
    assert len(lines) == len([e for e in entries if e["image_id"] == 1]) and len(lines[0].split()) == 5

    again = run_cli("--ckpt_path", str(checkpoint), "--source", str(folder / "img1.png"), cwd=tmp_path)
    assert again.returncode == 0 and (tmp_path / "runs" / "predict2" / "img1.png").is_file()


@pytest.mark.slow
def test_predict_command_on_a_video(checkpoint: Path, tmp_path: Path):
    video = tmp_path / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 7.0, (160, 96))
    for index in range(9):
        writer.write(cv2.cvtColor(picture(index, 96, 160), cv2.COLOR_RGB2BGR))
    writer.release()
    result = run_cli("--ckpt_path", str(checkpoint), "--source", str(video), "--batch", "4", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "9 frames in" in result.stdout
    drawn = cv2.VideoCapture(str(tmp_path / "runs" / "predict" / "clip.mp4"))
    assert int(drawn.get(cv2.CAP_PROP_FRAME_COUNT)) == 9
    assert drawn.get(cv2.CAP_PROP_FPS) == pytest.approx(7.0)
    assert (int(drawn.get(cv2.CAP_PROP_FRAME_WIDTH)), int(drawn.get(cv2.CAP_PROP_FRAME_HEIGHT))) == (160, 96)
    frames = {e["image_id"] for e in json.loads((tmp_path / "runs" / "predict" / "predictions.json").read_text())}
    assert frames <= set(range(9))


def test_predict_command_errors_name_the_source(checkpoint: Path, tmp_path: Path):
    result = run_cli("--ckpt_path", str(checkpoint), "--source", str(tmp_path / "missing.mp4"), cwd=tmp_path)
    assert result.returncode != 0 and "missing.mp4" in result.stderr
    assert not (tmp_path / "runs").exists()  # nothing is written for a source that does not exist


@pytest.mark.parametrize("backend", ["channels_last", "onnxruntime"])
def test_fast_backends_give_the_eager_detections(backend: str, folder: Path):
    """The backend changes the speed, not the boxes (the ONNX graph decodes inside; parity
    tolerances of the export tests)."""
    if backend == "onnxruntime":
        pytest.importorskip("onnxruntime")
    images = [cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB) for p in sorted(folder.glob("*.png"))]
    model = tiny_model()
    eager = model.predictor().predict(images)
    fast_backend = build_backend(backend, model.detector, "cpu", 20, SIZE)
    fast = Predictor(fast_backend, model.inference_spec).predict(images)
    # Random weights give near-equal scores (~0.10) whose order, and even which of two neighbouring
    # cells is the 3x3 peak, float rounding may change: match entry by entry, and ask for nearly all.
    matched = total = 0
    for image in range(len(images)):
        for box, score, label in zip(eager["bboxes"][image], eager["scores"][image], eager["labels"][image]):
            close = (
                (fast["labels"][image] == label)
                & (np.abs(fast["scores"][image] - score) < 1e-4)
                & (np.abs(fast["bboxes"][image] - box).max(axis=1) < 0.05)
            )
            matched, total = matched + bool(close.any()), total + 1
    assert matched >= 0.8 * total, f"{matched} of {total} detections agree"
    np.testing.assert_allclose(fast["scores"][:, 0], eager["scores"][:, 0], atol=1e-4)  # the best of each image
    assert eager["labels"].dtype == fast["labels"].dtype == np.int64
    with pytest.raises(ValueError, match="augmentation"):
        build_backend("onnxruntime", model.detector, "cpu", 20, SIZE, tta=parse_tta_flip())


def parse_tta_flip():
    from centernet_lightning.inference.tta import parse_tta

    return parse_tta("flip")


def test_one_predictor_serves_checkpoints_and_exported_files(checkpoint: Path, folder: Path, tmp_path: Path):
    """A checkpoint and its ONNX export give the same predictor: spec, settings and detections."""
    pytest.importorskip("onnxruntime")
    from centernet_lightning.deploy import export_onnx

    onnx_path = export_onnx(load_model(checkpoint), tmp_path / "tiny.onnx", imgsz=SIZE, dynamic=True, max_det=20)
    from_checkpoint = load_predictor(checkpoint, device="cpu")
    from_onnx = load_predictor(onnx_path, device="cpu")
    assert from_onnx.backend.name == "onnxruntime" and from_onnx.spec == from_checkpoint.spec
    assert from_onnx.num_detections == from_checkpoint.num_detections == 20
    paths = sorted(str(p) for p in folder.glob("*.png"))
    expected, found = from_checkpoint(paths), from_onnx(paths)  # every source inference_detection2d takes
    # Near-equal scores of random weights may swap places (see above): the best of each image.
    np.testing.assert_allclose(found["scores"][:, 0], expected["scores"][:, 0], atol=1e-4)
    assert found["bboxes"].shape == expected["bboxes"].shape and found["labels"].dtype == np.int64
    with pytest.raises(ValueError, match="runs on the onnxruntime or onnxruntime_int8 backend, not compile"):
        load_predictor(onnx_path, backend="compile")
    with pytest.raises(ValueError, match="--imgsz"):
        load_predictor(onnx_path, imgsz=256)
