"""Building inference backends by name, and predictors from model files: the one place for both.

``centernet predict``, ``centernet track`` and ``centernet benchmark`` build their backends here,
so the benchmark times exactly what prediction runs. A backend named ``onnxruntime`` of a
checkpoint's network is its export (decoding in the graph, free batch size) in an ONNX Runtime
session; ``openvino`` / ``openvino_bf16`` that export converted to an OpenVINO IR and compiled for
the CPU in float32 / bfloat16; ``onnxruntime_int8`` / ``openvino_int8`` those exports quantised
to int8 on calibration images (:mod:`~centernet_lightning.deploy.quantize`); ``tensorrt`` a fp16
TensorRT engine built from the export (CUDA only); the others run the network in PyTorch
(:class:`~centernet_lightning.inference.NetworkBackend`).
"""

from __future__ import annotations

import copy
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from ..checks import MAX_INPUT_SIZE, MIN_INPUT_SIZE, check_choice, check_int_min, check_int_range
from ..inference.backends import (
    BACKENDS,
    INT8_BACKENDS,
    NETWORK_BACKENDS,
    ONNXRUNTIME_BACKENDS,
    OPENVINO_BACKENDS,
    NetworkBackend,
    OnnxRuntimeBackend,
    OpenVINOBackend,
    _import_openvino,
    check_compile_mode,
    resolve_device,
)
from ..inference.predictor import Backend, Predictor, check_input_size, class_indices
from ..inference.tensorrt import ENGINE_SUFFIX
from ..inference.tta import TTAConfig, parse_tta
from ..models.detector import CenterNetDetector
from ..tasks.loading import load_model
from .export import export_onnx, export_openvino
from .quantize import Calibration

__all__ = ["build_backend", "default_backends", "load_predictor", "parse_backends"]

ONNX_SUFFIX = ".onnx"
OPENVINO_SUFFIX = ".xml"  # an OpenVINO IR: the .xml graph and the .bin weights beside it


def parse_backends(names: str | list[str] | tuple[str, ...]) -> tuple[str, ...]:
    """Backend names from a comma-separated string or a list; ValueError naming the valid ones."""
    if isinstance(names, str):
        names = names.split(",")
    backends = tuple(dict.fromkeys(name.strip() for name in names if name.strip()))  # ordered, no repeats
    unknown = [name for name in backends if name not in BACKENDS]
    if unknown or not backends:
        raise ValueError(f"Unknown backend(s) {unknown or list(names)}; valid names: {', '.join(BACKENDS)}")
    return backends


def default_backends(device: str | torch.device, calibrated: bool = False) -> tuple[str, ...]:
    """The backends a benchmark runs when none are named: every one that can run on ``device``'s
    type, the int8 ones only when calibration images were given (``calibrated``)."""
    if torch.device(device).type == "cuda":
        return (*NETWORK_BACKENDS, "onnxruntime", "tensorrt")
    cpu = tuple(name for name in BACKENDS if name != "tensorrt")
    return cpu if calibrated else tuple(name for name in cpu if name not in INT8_BACKENDS)


def _onnx_threads(device: torch.device) -> int | None:
    """ONNX Runtime's intra-op threads: on the CPU as many as PyTorch's (a fair comparison, and
    ``torch.set_num_threads`` / ``OMP_NUM_THREADS`` limit both); None (its default) on a GPU."""
    return torch.get_num_threads() if device.type == "cpu" else None


def build_backend(
    name: str,
    detector: CenterNetDetector,
    device: str | torch.device = "cpu",
    num_detections: int = 100,
    imgsz: int = 512,
    tta: TTAConfig | None = None,
    half: bool = False,
    compile_mode: str | None = None,
    verbose: bool = False,
    calibration: Calibration | None = None,
) -> Backend:
    """The backend ``name`` of :data:`~centernet_lightning.inference.BACKENDS` for ``detector``.

    ``eager`` in float32 runs the caller's detector itself, moved to ``device``; the other
    backends convert their network's memory format or precision, so they get a copy and leave the
    caller's network as it was.
    ``imgsz`` is the square input side of the ONNX export; ``tta`` runs on eager and
    channels_last only; ``half`` (float16 network) is for CUDA. On the CPU ONNX Runtime gets as
    many threads as PyTorch, for a fair comparison. ``verbose`` shows the ONNX exporter's INFO
    messages. ``calibration``: the images the int8 backends calibrate on (required by them,
    ValueError without).
    """
    device = resolve_device(device)
    if name not in BACKENDS:
        raise ValueError(f"Unknown backend {name!r}; valid names: {', '.join(BACKENDS)}")
    check_int_min("num_detections", num_detections, 1)
    check_int_range("imgsz", imgsz, MIN_INPUT_SIZE, MAX_INPUT_SIZE)
    if name in NETWORK_BACKENDS:
        network = detector if name == "eager" and not half else copy.deepcopy(detector)
        return NetworkBackend(network.to(device), num_detections, name, compile_mode, tta, half)
    if tta is not None and tta.enabled:
        raise ValueError(f"Test-time augmentation runs on the eager or channels_last backends, not {name}")
    if name in INT8_BACKENDS and calibration is None:
        raise ValueError(
            f"The {name} backend quantises the model on calibration images: give --calib (a data config or a "
            "folder of images)"
        )
    if name == "tensorrt":
        return _tensorrt_backend(detector, device, num_detections, imgsz, verbose)
    if name in OPENVINO_BACKENDS:
        return _openvino_backend(name, detector, device, num_detections, imgsz, half, verbose, calibration)
    try:  # before the export's seconds of work
        import onnxruntime  # noqa: F401
    except ImportError:
        raise ImportError("onnxruntime is not installed (pip install 'centernet-lightning[export]')") from None
    # The exporter traces a float32 CPU copy of the network, whatever its device and precision.
    with tempfile.TemporaryDirectory(prefix="centernet-onnx-") as workdir:
        path = export_onnx(
            detector,
            Path(workdir) / "model.onnx",
            imgsz,
            dynamic=True,
            max_det=num_detections,
            half=half,
            verbose=verbose,
            calibration=calibration if name in INT8_BACKENDS else None,
        )
        return OnnxRuntimeBackend(path, device, _onnx_threads(device))  # the session holds the graph


def _openvino_backend(
    name: str,
    detector: CenterNetDetector,
    device: torch.device,
    num_detections: int,
    imgsz: int,
    half: bool,
    verbose: bool,
    calibration: Calibration | None,
) -> OpenVINOBackend:
    """The OpenVINO backend ``name`` of ``detector``: its ONNX export (free batch size) converted
    to an IR in a temporary folder (quantised to int8 for ``openvino_int8``), compiled for the CPU."""
    if device.type != "cpu":
        raise ValueError(f"The {name} backend runs on the CPU, not {device}")
    if half:
        raise ValueError(f"The {name} backend runs float32 weights (bfloat16 compute with openvino_bf16), not --half")
    _import_openvino()  # before the export's seconds of work
    with tempfile.TemporaryDirectory(prefix="centernet-openvino-") as workdir:
        path = export_openvino(
            detector,
            Path(workdir) / "model.xml",
            imgsz,
            dynamic=True,
            max_det=num_detections,
            verbose=verbose,
            calibration=calibration if name in INT8_BACKENDS else None,
        )
        # The compiled model holds the weights (the IR is read without memory mapping).
        return OpenVINOBackend(path, device, _onnx_threads(device), OPENVINO_BACKENDS[name])


def _tensorrt_backend(
    detector: CenterNetDetector, device: torch.device, num_detections: int, imgsz: int, verbose: bool
) -> Backend:
    """The TensorRT backend of ``detector``: an fp16 engine (batch sizes 1 to 32) built in a
    temporary folder from its float32 ONNX export, deserialised on ``device`` (CUDA)."""
    from ..inference.tensorrt import TensorRTBackend
    from .engine import export_engine

    if device.type != "cuda":
        raise ValueError(f"The tensorrt backend runs on a CUDA GPU, not {device}")
    with tempfile.TemporaryDirectory(prefix="centernet-tensorrt-") as workdir:
        path = export_engine(
            detector, Path(workdir) / "model.engine", imgsz, dynamic=True, max_det=num_detections, verbose=verbose
        )
        return TensorRTBackend(path, device)


def load_predictor(
    model_path: str | Path,
    backend: str = "eager",
    device: str | torch.device = "auto",
    imgsz: int | None = None,
    max_det: int | None = None,
    tta: Any = None,
    compile_mode: str | None = None,
    classes: Sequence[str | int] | None = None,
    verbose: bool = False,
    calibration: Calibration | None = None,
) -> Predictor:
    """A :class:`~centernet_lightning.inference.Predictor` of any model file the project writes.

    Args:
        model_path: a checkpoint (CenterNet or FairMOT, from training or ``convert-weights``), an
            exported ``.onnx`` file (which runs on ``onnxruntime`` with the size, K and settings of
            its export; int8 when it was quantised), an exported OpenVINO IR ``.xml`` (on
            ``openvino``, f32, or ``openvino_bf16``, likewise) or a TensorRT ``.engine`` (CUDA).
        backend: one of :data:`~centernet_lightning.inference.BACKENDS`.
        device: ``auto`` (CUDA when present; the CPU for OpenVINO and int8), ``cpu``, ``cuda`` or ``cuda:N``.
        imgsz: the input side, in [32, 8192] (default: the model's training size); max_det: K >= 1
            (default: the model's ``num_detections``); tta: test-time augmentation (eager and
            channels_last).
        classes: keep only these classes (names or 0-based labels); None: all.
        verbose: show the ONNX exporter's INFO messages (the onnxruntime backend of a checkpoint).
        calibration: the images the int8 backends of a checkpoint calibrate on.

    Raises FileNotFoundError, ValueError or TypeError naming the file or the option at fault: a
    file that is no checkpoint, or no ONNX export of ours, is refused with its name.
    """
    path = Path(model_path)
    suffix = path.suffix.lower()
    cpu_only = backend in OPENVINO_BACKENDS or backend in INT8_BACKENDS or suffix == OPENVINO_SUFFIX
    # OpenVINO runs on the CPU, and int8 gains only there (ONNX Runtime's CUDA provider has no int8
    # convolutions): ``auto`` means the CPU for them, even where a CUDA GPU is present.
    device = resolve_device("cpu" if cpu_only and str(device) == "auto" else device)
    # Every option is checked before any work (loading, exporting) and named in the error.
    check_choice("backend", backend, BACKENDS)
    if imgsz is not None:
        check_int_range("imgsz", imgsz, MIN_INPUT_SIZE, MAX_INPUT_SIZE)
    if max_det is not None:
        check_int_min("max_det", max_det, 1)
    check_compile_mode(compile_mode)
    augment = parse_tta(tta) if tta is not None else None
    exported = {
        ONNX_SUFFIX: ("an ONNX file", ONNXRUNTIME_BACKENDS),
        OPENVINO_SUFFIX: ("an OpenVINO IR", tuple(OPENVINO_BACKENDS)),
        ENGINE_SUFFIX: ("a TensorRT engine", ("tensorrt",)),
    }
    if suffix in exported:
        what, runs_on = exported[suffix]
        if backend not in (*runs_on, "eager"):
            raise ValueError(f"{path} is {what}: it runs on the {' or '.join(runs_on)} backend, not {backend}")
        if augment is not None and augment.enabled:
            raise ValueError(f"{path} is {what}: test-time augmentation needs a checkpoint")
        # What an export fixes: each option names what it would change and how to get that.
        fixed = (
            ("--imgsz", imgsz, "has the input size of its export; export again at another size"),
            ("--max-det", max_det, "has the K of its export; export again with another --max-det"),
            ("--calib", calibration, "is an export: --calib quantises a checkpoint (export --int8 --calib writes one)"),
        )
        for option, value, reason in fixed:
            if value is not None:
                raise ValueError(f"{option}: {path} {reason}")
        if suffix == ONNX_SUFFIX:
            predictor = Predictor.from_onnx(path, device, _onnx_threads(device), classes)
        elif suffix == OPENVINO_SUFFIX:
            precision = OPENVINO_BACKENDS.get(backend, "f32")
            predictor = Predictor.from_openvino(path, device, _onnx_threads(device), classes, precision)
        else:
            from ..inference.tensorrt import TensorRTBackend

            predictor = Predictor.from_exported(TensorRTBackend(path, device), classes)
        if backend in INT8_BACKENDS and not predictor.backend.int8:
            raise ValueError(f"{path} is not quantised: export it with --int8 to run it in int8, or drop --backend")
        return predictor
    if calibration is not None and backend not in INT8_BACKENDS:
        raise ValueError(f"--calib calibrates the int8 backends ({', '.join(INT8_BACKENDS)}), not {backend}")
    model = load_model(path, map_location=device)
    spec = model.inference_spec if imgsz is None else replace(model.inference_spec, input_size=imgsz)
    try:
        check_input_size(spec.input_size, model.detector.size_divisor)  # before an export's work
    except ValueError as error:
        raise ValueError(f"--imgsz {imgsz}: {error}" if imgsz is not None else str(error)) from None
    if classes is not None:  # a clear error for a bad value before any work
        class_indices(classes, spec.class_names, model.detector.num_classes)
    hparams = model.hparams
    built = build_backend(
        backend,
        model.detector,
        device,
        int(hparams.num_detections) if max_det is None else max_det,
        spec.input_size,
        augment if augment is not None else model.tta,
        compile_mode=compile_mode,
        verbose=verbose,
        calibration=None if calibration is None else replace(calibration, pad_position=spec.pad_position),
    )
    return Predictor(built, spec, hparams.score_threshold, hparams.nms_iou, hparams.get("tracker"), classes)
