"""TensorRT engines: the engine file layout and the refusals on any machine; export and parity with
PyTorch where there is a CUDA GPU and the ``tensorrt`` package (skipped elsewhere, with the reason)."""

from __future__ import annotations

import importlib.util
import json
import struct
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from tiny_models import tiny_centernet

from centernet_lightning import CenterNet
from centernet_lightning.deploy import engine as engine_module
from centernet_lightning.deploy.engine import export_engine, read_engine_file, write_engine_file
from centernet_lightning.inference import NetworkBackend
from centernet_lightning.inference.tensorrt import TensorRTBackend
from centernet_lightning.preprocess import normalize

pytestmark = pytest.mark.usefixtures("one_thread")

SIZE = 64
MAX_DET = 20
SCORE_TOL = 1e-3  # TensorRT picks other float32 kernels than PyTorch's CPU ones
HALF_SCORE_TOL = 1e-2
BOX_TOL = 0.05  # input pixels
HALF_BOX_TOL = 1.0
METADATA = {"input_size": [SIZE, SIZE], "stride": 4, "outputs": ["boxes", "scores", "labels"], "class_names": ["cat"]}

HAS_TENSORRT = importlib.util.find_spec("tensorrt") is not None
needs_tensorrt = pytest.mark.skipif(
    not torch.cuda.is_available() or not HAS_TENSORRT,
    reason="TensorRT needs a CUDA GPU and the tensorrt package; none here",
)


@pytest.fixture(scope="module")
def model() -> CenterNet:
    return tiny_centernet(["cat", "dog"], SIZE, [3, 7], num_detections=MAX_DET)


# The file layout, on any machine.


def test_engine_file_round_trip(tmp_path: Path) -> None:
    """Metadata and engine bytes come back as written; the layout is length, JSON, engine."""
    engine = bytes(range(256)) * 3
    path = write_engine_file(tmp_path / "model.engine", METADATA, engine)
    assert read_engine_file(path) == (METADATA, engine)
    data = path.read_bytes()
    (length,) = struct.unpack("<I", data[:4])
    assert json.loads(data[4 : 4 + length]) == METADATA and data[4 + length :] == engine
    with pytest.raises(FileExistsError):
        write_engine_file(path, METADATA, b"other")
    assert path.read_bytes() == data


def engine_bytes(blob: bytes, length: int | None = None, engine: bytes = b"ENGINE") -> bytes:
    return struct.pack("<I", len(blob) if length is None else length) + blob + engine


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (b"\x01\x00", "too few"),
        (engine_bytes(b"{}", length=1000), "runs past"),
        (engine_bytes(b"{not json"), "not JSON"),
        (engine_bytes(b"\xff\xfe"), "not JSON"),
        (engine_bytes(b"[1, 2]"), "not a JSON object"),
        (engine_bytes(json.dumps({"input_size": [SIZE, SIZE]}).encode()), "lacks stride, outputs"),
        (engine_bytes(json.dumps(METADATA).encode(), engine=b""), "no engine follows"),
    ],
    ids=["truncated", "impossible_length", "bad_json", "not_utf8", "not_object", "no_stride", "no_engine"],
)
def test_read_engine_file_refuses(tmp_path: Path, data: bytes, reason: str) -> None:
    path = tmp_path / "broken.engine"
    path.write_bytes(data)
    with pytest.raises(ValueError, match=rf"broken\.engine is not a CenterNet TensorRT engine.*{reason}"):
        read_engine_file(path)


# The refusals of the export, before any work, on any machine.


@pytest.fixture
def no_export(monkeypatch: pytest.MonkeyPatch) -> None:
    """The ONNX export fails the test if it is reached: the refusals come before it."""

    def refuse(*args, **kwargs):
        raise AssertionError("export_onnx ran before the refusal")

    monkeypatch.setattr(engine_module, "export_onnx", refuse)


@pytest.mark.usefixtures("no_export")
def test_export_refuses_an_existing_file(model: CenterNet, tmp_path: Path) -> None:
    path = tmp_path / "model.engine"
    path.write_bytes(b"precious")
    with pytest.raises(FileExistsError, match="model.engine exists"):
        export_engine(model, path, SIZE)
    assert path.read_bytes() == b"precious"


@pytest.mark.usefixtures("no_export")
def test_export_refuses_bad_options(model: CenterNet, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=r"end in \.engine"):
        export_engine(model, tmp_path / "model.onnx", SIZE)
    with pytest.raises(ValueError, match="max_batch must be >= 4"):
        export_engine(model, tmp_path / "model.engine", SIZE, batch=4, dynamic=True, max_batch=2)
    with pytest.raises(ValueError, match="workspace_gib"):
        export_engine(model, tmp_path / "model.engine", SIZE, workspace_gib=0)
    with pytest.raises(ValueError, match="max_det 3840: TensorRT's TopK takes at most 3840 .* K <= 3839"):
        export_engine(model, tmp_path / "model.engine", SIZE, max_det=3840)
    assert not list(tmp_path.iterdir())


def test_export_command_max_batch_goes_with_a_dynamic_engine(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    from centernet_lightning.cli.export import export_main

    for extra in (["--format", "onnx", "--dynamic"], ["--format", "engine"]):
        with pytest.raises(SystemExit) as exit_info:
            export_main(["--ckpt_path", str(tmp_path / "any.ckpt"), "--max-batch", "8", *extra])
        assert exit_info.value.code == 2
        assert "--max-batch goes with --format engine --dynamic" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        export_main(["--ckpt_path", str(tmp_path / "any.ckpt"), "--format", "engine", "--dynamic", "--max-batch", "0"])
    assert exit_info.value.code == 2 and "--max-batch" in capsys.readouterr().err


@pytest.mark.usefixtures("no_export")
def test_export_without_a_gpu_says_so(model: CenterNet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(ValueError, match="built and run on a CUDA GPU; PyTorch sees none here"):
        export_engine(model, tmp_path / "model.engine", SIZE)
    assert not list(tmp_path.iterdir())


@pytest.mark.usefixtures("no_export")
def test_export_without_tensorrt_says_how_to_install(
    model: CenterNet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setitem(sys.modules, "tensorrt", None)  # import tensorrt raises ImportError
    with pytest.raises(ImportError, match="pip install tensorrt"):
        export_engine(model, tmp_path / "model.engine", SIZE)
    assert not list(tmp_path.iterdir())


def test_backend_refuses_the_cpu(tmp_path: Path) -> None:
    path = write_engine_file(tmp_path / "model.engine", METADATA, b"ENGINE")
    with pytest.raises(ValueError, match=r"model\.engine runs on a CUDA GPU"):
        TensorRTBackend(path, device="cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the machine without a GPU")
def test_backend_without_a_gpu_says_so(tmp_path: Path) -> None:
    path = write_engine_file(tmp_path / "model.engine", METADATA, b"ENGINE")
    for device in ("cuda", "auto"):
        with pytest.raises(ValueError, match=r"model\.engine runs on a CUDA GPU"):
            TensorRTBackend(path, device=device)


# Export and run, where TensorRT can.


def assert_same_detections(actual: dict, expected: dict, score_tol: float, box_tol: float) -> None:
    """Every expected detection above the K-th score is found with its label, score and box (a
    random tiny model scores many peaks alike, so equal scores may take each other's places)."""
    assert actual["scores"].shape == expected["scores"].shape
    for image in range(len(expected["scores"])):
        boxes, scores, labels = (actual[key][image].numpy() for key in ("bboxes", "scores", "labels"))
        last = float(expected["scores"][image, -1])
        for box, score, label in zip(*(expected[key][image].numpy() for key in ("bboxes", "scores", "labels"))):
            if score <= last + score_tol:
                continue  # may have swapped with a peak beyond K
            match = (labels == label) & (np.abs(scores - score) <= score_tol)
            match &= np.abs(boxes - box).max(axis=1) <= box_tol
            assert match.any(), f"image {image}: no match for label {label} score {score:.5f} box {box}"


def eager(model: CenterNet, images: torch.Tensor) -> dict:
    return NetworkBackend(model.detector, MAX_DET)(images)


def inputs(count: int, seed: int = 1) -> torch.Tensor:
    return torch.randn(count, 3, SIZE, SIZE, generator=torch.Generator().manual_seed(seed))


@needs_tensorrt
def test_float32_engine_matches_eager(model: CenterNet, tmp_path: Path) -> None:
    """A fixed batch of 2 runs 3 images in two chunks; scores within 1e-3, boxes within 0.05 px."""
    path = export_engine(model, tmp_path / "tiny.engine", SIZE, batch=2, max_det=MAX_DET, half=False)
    backend = TensorRTBackend(path)
    assert backend.name == "tensorrt" and backend.batch == 2 and backend.input_size == (SIZE, SIZE)
    assert backend.metadata["tensorrt"]["fp16"] is False
    assert backend.spec.class_names == ["cat", "dog"] and backend.spec.category_ids == [3, 7]
    images = inputs(3)
    assert_same_detections(backend(images), eager(model, images), SCORE_TOL, BOX_TOL)


@needs_tensorrt
def test_float16_engine_is_close(model: CenterNet, tmp_path: Path) -> None:
    path = export_engine(model, tmp_path / "tiny16.engine", SIZE, max_det=MAX_DET, half=True)
    backend = TensorRTBackend(path)
    assert backend.metadata["tensorrt"]["fp16"] is True
    images = inputs(1)
    assert_same_detections(backend(images), eager(model, images), HALF_SCORE_TOL, HALF_BOX_TOL)


@needs_tensorrt
def test_dynamic_batch(model: CenterNet, tmp_path: Path) -> None:
    """A free batch of 1 to 3 runs 1 and 3 images at once, and 5 in chunks of 3."""
    path = export_engine(
        model, tmp_path / "dynamic.engine", SIZE, batch=2, dynamic=True, max_batch=3, max_det=MAX_DET, half=False
    )
    backend = TensorRTBackend(path)
    assert backend.batch is None and backend.max_batch == 3
    for count in (1, 3, 5):
        images = inputs(count, seed=count)
        assert_same_detections(backend(images), eager(model, images), SCORE_TOL, BOX_TOL)


@needs_tensorrt
def test_raw_input_engine(model: CenterNet, tmp_path: Path) -> None:
    """uint8 [N, H, W, 3] in, normalised inside the engine."""
    path = export_engine(model, tmp_path / "raw.engine", SIZE, max_det=MAX_DET, half=False, raw_input=True)
    backend = TensorRTBackend(path)
    assert backend.raw_input
    pictures = torch.randint(0, 256, (1, SIZE, SIZE, 3), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
    assert_same_detections(backend(pictures), eager(model, normalize(pictures)), SCORE_TOL, BOX_TOL)


@needs_tensorrt
def test_backend_refuses_files(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        TensorRTBackend(tmp_path / "missing.engine")
    path = write_engine_file(tmp_path / "foreign.engine", METADATA, b"not a TensorRT plan" * 10)
    with pytest.raises(ValueError, match=r"foreign\.engine: it was built by another TensorRT version"):
        TensorRTBackend(path)
