"""OpenVINO IR export and the ``openvino`` backends: parity with PyTorch, metadata, the commands,
and the refusals (no openvino, a file that is no IR, a DCN model)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

pytest.importorskip("onnxscript")
pytest.importorskip("onnx")
pytest.importorskip("openvino", reason="openvino is not installed (pip install 'centernet-lightning[export]')")

from tiny_models import tiny_centernet  # noqa: E402

from centernet_lightning import CenterNet  # noqa: E402
from centernet_lightning.cli.export import export_main  # noqa: E402
from centernet_lightning.cli.predict import predict_main  # noqa: E402
from centernet_lightning.deploy import build_backend, export_openvino, load_predictor  # noqa: E402
from centernet_lightning.inference import BACKENDS, OpenVINOBackend, parse_tta  # noqa: E402
from centernet_lightning.models.detector import decode_outputs  # noqa: E402
from centernet_lightning.tasks import save_checkpoint  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

SIZE = 64
MAX_DET = 20
SCORE_TOL = 1e-4
BOX_TOL = 0.05  # input pixels
CLASS_NAMES = ["cat", "dog"]
CATEGORY_IDS = [3, 7]


@pytest.fixture(scope="module")
def model() -> CenterNet:
    return tiny_centernet(CLASS_NAMES, SIZE, CATEGORY_IDS, num_detections=MAX_DET)


@pytest.fixture(scope="module")
def exported(model: CenterNet, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tiny model as an IR with a free batch size."""
    return export_openvino(model, tmp_path_factory.mktemp("openvino") / "tiny.xml", SIZE, dynamic=True, max_det=MAX_DET)


def pictures(count: int, seed: int = 0) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8) for _ in range(count)]


def test_parity_with_eager(model: CenterNet, exported: Path) -> None:
    """Scores within 1e-4 and boxes within 0.05 px of PyTorch, position by position (f32 pinned)."""
    backend = OpenVINOBackend(exported, threads=1)
    assert backend.precision == "f32" and backend.name == "openvino"
    assert backend.compiled.get_property("INFERENCE_PRECISION_HINT").to_string() == "f32"
    images = torch.randn(3, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected = decode_outputs(model.detector(images), model.detector.stride, MAX_DET)
    actual = backend(images)
    assert actual["scores"].shape == (3, MAX_DET)
    np.testing.assert_allclose(actual["scores"].numpy(), expected["scores"].numpy(), atol=SCORE_TOL)
    assert_same_detections(actual, expected)


def assert_same_detections(actual: dict, expected: dict) -> None:
    """Every expected detection above the K-th score is found with its label, score and box (a
    random tiny model scores many peaks alike, so equal scores may take each other's places)."""
    for image in range(len(expected["scores"])):
        boxes, scores, labels = (actual[key][image].numpy() for key in ("bboxes", "scores", "labels"))
        last = float(expected["scores"][image, -1])
        for box, score, label in zip(*(expected[key][image].numpy() for key in ("bboxes", "scores", "labels"))):
            if score <= last + SCORE_TOL:
                continue  # may have swapped with a peak beyond K
            match = (labels == label) & (np.abs(scores - score) <= SCORE_TOL)
            match &= np.abs(boxes - box).max(axis=1) <= BOX_TOL
            assert match.any(), f"image {image}: no match for label {label} score {score:.5f} box {box}"


def test_load_predictor_keeps_spec_and_settings(model: CenterNet, exported: Path) -> None:
    """``load_predictor("x.xml")`` works as for an .onnx file: spec, class names, ids, settings."""
    predictor = load_predictor(exported, device="cpu")
    assert predictor.backend.name == "openvino"
    assert predictor.spec.class_names == CLASS_NAMES
    assert predictor.spec.category_ids == CATEGORY_IDS
    assert predictor.spec.input_size == SIZE
    assert predictor.num_detections == MAX_DET
    assert predictor.score_threshold == model.hparams.score_threshold
    eager = load_predictor_of(model)
    found, reference = predictor.predict(pictures(2)), eager.predict(pictures(2))
    np.testing.assert_allclose(found["scores"], reference["scores"], atol=SCORE_TOL)  # both sorted, descending
    with pytest.raises(ValueError, match="--imgsz"):
        load_predictor(exported, device="cpu", imgsz=128)
    with pytest.raises(ValueError, match="runs on the openvino"):
        load_predictor(exported, backend="onnxruntime", device="cpu")


def load_predictor_of(model: CenterNet):
    from centernet_lightning.inference import NetworkBackend, Predictor

    backend = NetworkBackend(model.detector, MAX_DET)
    return Predictor(backend, model.inference_spec, model.hparams.score_threshold, model.hparams.nms_iou)


def test_build_backend_refusals(model: CenterNet) -> None:
    """``openvino`` is a backend name like the others; it refuses --half and TTA with a reason
    (the build itself runs in the command test below)."""
    assert {"openvino", "openvino_bf16"} <= set(BACKENDS)
    with pytest.raises(ValueError, match="not --half"):
        build_backend("openvino", model.detector, "cpu", MAX_DET, SIZE, half=True)
    with pytest.raises(ValueError, match="not openvino"):
        build_backend("openvino", model.detector, "cpu", MAX_DET, SIZE, tta=parse_tta("flip"))


def test_refusals(model: CenterNet, exported: Path, tmp_path: Path) -> None:
    """A file that is no IR, an IR without its weights, an existing output: errors naming the file."""
    text = tmp_path / "notes.xml"
    text.write_text("hello")
    (tmp_path / "notes.bin").write_bytes(b"")
    with pytest.raises(ValueError, match="notes.xml is not an OpenVINO IR"):
        OpenVINOBackend(text)
    lonely = tmp_path / "lonely.xml"
    lonely.write_bytes(exported.read_bytes())
    with pytest.raises(ValueError, match="lonely.bin is missing"):
        OpenVINOBackend(lonely)
    with pytest.raises(ValueError, match="not an OpenVINO IR"):
        OpenVINOBackend(tmp_path / "notes.bin")
    with pytest.raises(FileExistsError):
        export_openvino(model, exported, SIZE)
    with pytest.raises(ValueError, match=r"\.xml"):
        export_openvino(model, tmp_path / "model.onnx", SIZE)


def test_dcn_model_converts_through_the_pytorch_front_end(tmp_path: Path) -> None:
    """OpenVINO's ONNX front end has no DeformConv, its PyTorch front end has: a DCN model's IR holds
    DeformableConvolution and gives PyTorch's head maps (raw outputs: a random tiny model's equal
    scores would let decoded detections swap places) for a free batch size; int8 is refused with a
    reason and nothing is written."""
    import openvino as ov

    torch.manual_seed(0)
    dcn = CenterNet(
        2,
        backbone={"name": "resnet18", "pretrained": False},
        neck={"name": "simple", "upsample_channels": [16] * 3, "conv_type": "dcn"},
        head_width=8,
    ).eval()
    path = export_openvino(dcn, tmp_path / "dcn.xml", SIZE, dynamic=True, decode=False, max_det=MAX_DET)
    assert "DeformableConvolution" in {op.get_type_name() for op in ov.Core().read_model(str(path)).get_ordered_ops()}
    backend = OpenVINOBackend(path, threads=1)
    assert backend.batch is None and backend.output_names == ["heatmap", "box_2d"]
    images = torch.randn(3, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(2))
    maps = backend._infer(images.numpy())
    with torch.no_grad():
        expected = dcn.detector(images)
    for name, value in zip(backend.output_names, maps):
        np.testing.assert_allclose(value, expected[name].numpy(), atol=1e-4)
    decoded = export_openvino(dcn, tmp_path / "dcn_decoded.xml", SIZE, max_det=MAX_DET)
    assert OpenVINOBackend(decoded, threads=1)(images[:1])["scores"].shape == (1, MAX_DET)
    folder = tmp_path / "calib"
    folder.mkdir()
    cv2.imwrite(str(folder / "a.png"), np.zeros((SIZE, SIZE, 3), np.uint8))
    from centernet_lightning.deploy import Calibration

    with pytest.raises(ValueError, match="deformable convolutions .*--format onnx --int8"):
        export_openvino(dcn, tmp_path / "dcn_int8.xml", SIZE, calibration=Calibration(folder, 1))
    assert not (tmp_path / "dcn_int8.xml").exists() and not (tmp_path / "dcn_int8.bin").exists()


def test_missing_openvino_names_the_extra(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setitem(sys.modules, "openvino", None)  # import openvino raises ImportError
    with pytest.raises(ImportError, match=r"centernet-lightning\[export\]"):
        OpenVINOBackend(tmp_path / "any.xml")


# ------------------------------------------------------------------------------------ commands
def centernet(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "centernet_lightning.cli", *args]
    result = subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300, env=env)
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    return result


def test_export_then_predict_commands(
    model: CenterNet, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    """``export --format openvino`` writes the .xml/.bin pair; ``predict --model x.xml`` (in a fresh
    process, end to end) and ``predict --backend openvino`` from the checkpoint find the same detections."""
    ckpt = save_checkpoint(model, tmp_path / "tiny.ckpt")
    for index, picture in enumerate(pictures(2)):
        cv2.imwrite(str(tmp_path / f"{index}.png"), picture)
    export_main(["--ckpt_path", str(ckpt), "--format", "openvino"])
    assert "output scores float32 [1, 20]" in capsys.readouterr().out
    assert (tmp_path / "tiny.xml").is_file() and (tmp_path / "tiny.bin").is_file()
    common = ["--source", "*.png", "--conf", "0.05", "--no-draw", "--device", "cpu"]
    from_ir = centernet("predict", "--model", "tiny.xml", *common, "--name", "ir", cwd=tmp_path)
    assert "openvino" in from_ir.stdout
    monkeypatch.chdir(tmp_path)
    predict_main(["--model", "tiny.ckpt", "--backend", "openvino", *common, "--name", "ckpt"])
    ir = json.loads((tmp_path / "runs" / "ir" / "predictions.json").read_text())
    ckpt_run = json.loads((tmp_path / "runs" / "ckpt" / "predictions.json").read_text())
    assert ir and len(ir) == len(ckpt_run)
    assert {item["category_id"] for item in ir} <= set(CATEGORY_IDS)
    np.testing.assert_allclose([d["score"] for d in ir], [d["score"] for d in ckpt_run], atol=SCORE_TOL)
