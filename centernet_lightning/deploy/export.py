"""Exporting a CenterNet or FairMOT to ONNX or TorchScript with the decoding inside the graph.

The exported graph is :class:`~centernet_lightning.models.InferenceNetwork`: the network, then
the decoding of validation without NMS (sigmoid, 3x3 max-pool peaks, top-K, gather, box
arithmetic; K constant), so the graph has no data-dependent shapes (no NonZero, Loop or If) and
every runtime gets fixed-size outputs ``boxes`` [B, K, 4] (XYXY input pixels), ``scores`` [B, K],
``labels`` [B, K], for a model with a re-ID head (FairMOT) ``embeddings`` [B, K, D], and for a
keypoint model ``keypoints`` [B, K, J, 3] (joints in input pixels and their scores). With
``decode=False`` the outputs are the raw head maps.

The file's metadata (ONNX ``metadata_props`` / a TorchScript extra file, both under ``centernet``)
holds the graph's description, the model's
:class:`~centernet_lightning.structures.InferenceSpec` (input size, letterbox, class names,
category ids) and its predictor settings (score threshold, NMS, tracker), so that
``centernet predict --model best.onnx`` and ``centernet track --model fairmot.onnx`` need nothing else.

ONNX goes through the dynamo exporter (``torch.onnx.export(..., dynamo=True)``). It maps
torchvision's deformable convolution to ONNX ``DeformConv`` (opset 19), so the DCN paper models
(ResNet-DCN, DLA-34) export and run in ONNX Runtime. The default opset is 18, the lowest the
exporter implements; 17 goes through ONNX's version converter; models with DCN need 19.

``half`` stores the network in float16 and runs it in float16; the input and the decoding stay
float32. It is meant for GPU runtimes (CUDA, TensorRT). ONNX Runtime's CPU provider runs such a
graph (1.31 has float16 Conv and DeformConv kernels) but gains no speed, and TorchScript's trace
runs float16 kernels on the CPU while tracing. Float16 moves scores by a few 1e-3 (4e-3 on a small
DCN model), so the float32 parity tolerances do not apply to it.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import numbers
import tempfile
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..atomic_files import write_new_file
from ..checks import MAX_INPUT_SIZE, MIN_INPUT_SIZE, check_int_min, check_int_range
from ..inference.backends import METADATA_KEY, _import_openvino
from ..inference.tensorrt import ENGINE_SUFFIX
from ..models.detector import CenterNetDetector
from ..models.inference_network import INPUT_NAME, InferenceNetwork
from ..models.layers import DeformConvBNReLU
from .quantize import Calibration, batched_inputs, calibration_inputs, quantize_onnx, quantize_openvino
from .quiet_logging import quiet_loggers, root_logging_kept

__all__ = [
    "FORBIDDEN_ONNX_OPS",
    "FORMAT_SUFFIXES",
    "SUFFIXES",
    "build_inference_network",
    "export_onnx",
    "export_openvino",
    "export_torchscript",
    "model_metadata",
]

# Ops with data-dependent control flow or output size: compilers (TensorRT, NPU toolchains) handle
# them badly or not at all, and the decoding is written to need none of them.
FORBIDDEN_ONNX_OPS = frozenset({"NonZero", "Loop", "If"})
MIN_OPSET = 17
DEFAULT_OPSET = 18  # the lowest opset torch's dynamo exporter implements; 17 is converted down
DEFORM_CONV_OPSET = 19  # ONNX DeformConv appeared in opset 19
# The suffixes each format's files may take, the default first: a runtime picks its loader by the
# suffix, so a graph under another format's suffix would fail there, far from the export that named it.
FORMAT_SUFFIXES = {
    "onnx": (".onnx",),
    "torchscript": (".torchscript", ".pt", ".ts"),
    "openvino": (".xml",),
    "engine": (ENGINE_SUFFIX,),
}
SUFFIXES = {name: suffixes[0] for name, suffixes in FORMAT_SUFFIXES.items()}  # export formats and their default suffix
# Loggers of the dynamo exporter's graph passes: each export logs a dozen INFO lines (nodes removed,
# initializers deduplicated) that say nothing about the model.
EXPORTER_LOGGERS = ("onnxscript", "onnx_ir", "torch.onnx")


def _detector_of(model: nn.Module) -> CenterNetDetector:
    """The network of a CenterNet/FairMOT LightningModule, or the detector itself."""
    detector = model if isinstance(model, CenterNetDetector) else getattr(model, "detector", None)
    if not isinstance(detector, CenterNetDetector):
        raise TypeError(f"Expected a CenterNet, a FairMOT or a CenterNetDetector, got {type(model).__name__}")
    return detector


def model_metadata(model: nn.Module) -> dict[str, Any]:
    """What a predictor of the exported file needs beside the graph: a LightningModule's inference
    spec and predictor settings (score threshold, NMS, tracker); {} for a bare detector."""
    spec = getattr(model, "inference_spec", None)
    if spec is None:
        return {}
    hparams = getattr(model, "hparams", {})
    settings = {key: hparams.get(key) for key in ("score_threshold", "nms_iou", "tracker")}
    return {**{k: v for k, v in spec.to_dict().items() if k != "input_size"}, "predictor": settings}


def build_inference_network(
    model: nn.Module, decode: bool = True, max_det: int = 100, raw_input: bool = False, half: bool = False
) -> InferenceNetwork:
    """An :class:`InferenceNetwork` around an eval-mode float32 CPU copy of ``model``'s network (a
    CenterNet, a FairMOT or a CenterNetDetector, on any device and in any precision), frozen, for
    export (its example input is on the CPU; ``half`` converts the copy); the caller's model is left
    as it was."""
    detector = copy.deepcopy(_detector_of(model)).to("cpu", torch.float32).eval()
    module = InferenceNetwork(detector, max_det, decode, raw_input, half).eval()
    module.requires_grad_(False)
    return module


def _check_options(imgsz: int | Sequence[int], batch: int, max_det: int) -> None:
    """The arguments both exports share, checked before any work: ``imgsz`` one side or ``(height,
    width)`` in [32, 8192], ``batch`` and ``max_det`` integers >= 1 (ValueError / TypeError naming them)."""
    sides = [imgsz] if isinstance(imgsz, numbers.Integral) else imgsz
    if isinstance(sides, (str, bytes)) or not isinstance(sides, Sequence) or not 1 <= len(sides) <= 2:
        raise ValueError(f"imgsz must be one side or (height, width), got {imgsz!r}")
    for side in sides:
        check_int_range("imgsz", side, MIN_INPUT_SIZE, MAX_INPUT_SIZE)
    check_int_min("batch", batch, 1)
    check_int_min("max_det", max_det, 1)


def _new_output(path: str | Path, file_format: str) -> Path:
    """``path`` as a Path, after checking its suffix suits ``file_format`` (ValueError) and that
    nothing is there yet (FileExistsError): both before the export's work, not after it."""
    path = Path(path)
    suffixes = FORMAT_SUFFIXES[file_format]
    if path.suffix.lower() not in suffixes:
        raise ValueError(f"{file_format} files end in {' or '.join(suffixes)}; got {path}")
    _refuse_existing(path)
    return path


def _refuse_existing(path: Path) -> None:
    if path.exists():
        raise FileExistsError(f"{path} exists; choose another output path (nothing was written)")


def export_onnx(
    model: nn.Module,
    path: str | Path,
    imgsz: int | Sequence[int] = 512,
    batch: int = 1,
    dynamic: bool = False,
    decode: bool = True,
    max_det: int = 100,
    half: bool = False,
    raw_input: bool = False,
    opset: int | None = None,
    metadata: dict[str, Any] | None = None,
    verbose: bool = False,
    calibration: Calibration | None = None,
) -> Path:
    """Export ``model`` (a CenterNet, FairMOT or CenterNetDetector) to a new ONNX file; returns its path.

    Args:
        imgsz: input side in pixels, or ``(height, width)``; multiples of the size divisor (32).
        batch: the graph's batch size; ``dynamic`` makes it a free dimension named ``batch``.
        decode, max_det, half, raw_input: see :class:`~centernet_lightning.models.InferenceNetwork`.
        opset: ONNX opset >= 17; None: 18, or 19 when the model has deformable convolutions.
        metadata: extra JSON-able entries of the file's ``centernet`` metadata, beside
            :func:`model_metadata` and the graph's description.
        verbose: let the exporter's INFO messages (graph passes) through; by default only its
            warnings and errors show.
        calibration: quantise the graph to int8 (QDQ, :func:`~centernet_lightning.deploy.quantize_onnx`)
            with ranges calibrated on these images; the decoding and the heatmap head stay float32.
            Needs a square ``imgsz``; not with ``half``.

    The graph is checked with ``onnx.checker`` (full check) and for NonZero/Loop/If nodes.
    Raises FileExistsError when ``path`` exists: nothing is ever overwritten; on a full disk
    :class:`~centernet_lightning.atomic_files.DiskFullError` (an OSError) naming it, and no file.
    """
    try:
        import onnx
    except ImportError:
        raise ImportError("onnx is not installed (pip install 'centernet-lightning[export]')") from None

    _check_options(imgsz, batch, max_det)
    path = _new_output(path, "onnx")
    int8_inputs, int8_record = _calibration_inputs(
        model, calibration, imgsz, half, raw_input, 1 if dynamic else batch, opset
    )
    module = build_inference_network(model, decode, max_det, raw_input, half)
    deformable = any(isinstance(layer, DeformConvBNReLU) for layer in module.modules())
    if opset is None:
        opset = DEFORM_CONV_OPSET if deformable else DEFAULT_OPSET
    if opset < (DEFORM_CONV_OPSET if deformable else MIN_OPSET):
        needs = "deformable convolutions need ONNX DeformConv (opset 19)" if deformable else "the minimum is 17"
        raise ValueError(f"Cannot export with opset {opset}: {needs}")
    # torch.export specialises dimensions of size 1, so a free batch is traced with two images.
    example = module.example_input(imgsz, max(batch, 2) if dynamic else batch)
    dynamic_shapes = {INPUT_NAME: {0: torch.export.Dim("batch", min=1)}} if dynamic else None
    with torch.no_grad(), quiet_loggers(EXPORTER_LOGGERS, verbose):
        program = torch.onnx.export(
            module,
            (example,),
            dynamo=True,
            opset_version=opset,
            input_names=[INPUT_NAME],
            output_names=list(module.output_names),
            dynamic_shapes=dynamic_shapes,
            verbose=verbose,
        )
    proto = program.model_proto
    info = module.metadata(imgsz, None if dynamic else batch, opset=opset, **model_metadata(model), **(metadata or {}))
    if int8_record is not None:
        info["int8"] = int8_record
    onnx.helper.set_model_props(proto, {METADATA_KEY: json.dumps(info)})
    onnx.checker.check_model(proto, full_check=True)
    op_types = {node.op_type for node in proto.graph.node}
    op_types |= {node.op_type for function in proto.functions for node in function.node}
    forbidden = sorted(op_types & FORBIDDEN_ONNX_OPS)
    if forbidden:
        raise RuntimeError(f"The exported graph has data-dependent ops {forbidden}; it would not run everywhere")
    if int8_inputs is not None:  # the quantiser reads the float graph from a file and writes path itself
        with tempfile.TemporaryDirectory(prefix="centernet-int8-") as workdir:
            float_path = Path(workdir) / "float.onnx"
            float_path.write_bytes(proto.SerializeToString())
            return quantize_onnx(float_path, path, int8_inputs)
    # Serialised in memory and written from Python: a full disk is then an error, not a half file.
    return write_new_file(path, proto.SerializeToString())


def _calibration_inputs(
    model: nn.Module,
    calibration: Calibration | None,
    imgsz: int | Sequence[int],
    half: bool,
    raw_input: bool,
    batch: int,
    opset: int | None,
) -> tuple[list[Any] | None, dict[str, Any] | None]:
    """The int8 calibration batches of an export, ``batch`` images each, and what the file records
    about them (the images actually read); ``(None, None)`` without ``calibration``. Read before
    the export's work so that a bad source fails first; ValueError for ``half``, a non-square size
    or an opset below 18."""
    if calibration is None:
        return None, None
    if half:
        raise ValueError("int8 quantisation starts from the float32 graph: --int8 and --half exclude each other")
    if opset is not None and opset < DEFAULT_OPSET:
        # ONNX's version converter drops the module paths the quantisation finds the float nodes by.
        raise ValueError(f"int8 quantisation needs opset {DEFAULT_OPSET} or later, not {opset}")
    sides = [imgsz] if isinstance(imgsz, numbers.Integral) else list(imgsz)
    if len(set(sides)) != 1:
        raise ValueError(f"int8 calibration letterboxes to a square input: give one side, not {imgsz}")
    spec = getattr(model, "inference_spec", None)
    if spec is not None:  # a CenterNet / FairMOT letterboxes its own way
        calibration = replace(calibration, pad_position=spec.pad_position)
    images = calibration_inputs(calibration, int(sides[0]), raw_input)
    return batched_inputs(images, batch), {**calibration.describe(), "images": len(images)}


def export_torchscript(
    model: nn.Module,
    path: str | Path,
    imgsz: int | Sequence[int] = 512,
    batch: int = 1,
    decode: bool = True,
    max_det: int = 100,
    half: bool = False,
    raw_input: bool = False,
    metadata: dict[str, Any] | None = None,
) -> Path:
    """Export ``model`` to a new TorchScript file (``torch.jit.trace``) with the ONNX graph's outputs.

    The traced batch size stays free; the input size is fixed. Load the file with
    ``torch.jit.load(path)`` (import torchvision first when the model has deformable
    convolutions). The metadata goes into the extra file ``centernet`` (JSON), as for ONNX.
    Raises FileExistsError when ``path`` exists, DiskFullError (an OSError) on a full disk.
    """
    _check_options(imgsz, batch, max_det)
    path = _new_output(path, "torchscript")
    module = build_inference_network(model, decode, max_det, raw_input, half)
    example = module.example_input(imgsz, batch)
    info = module.metadata(imgsz, None, **model_metadata(model), **(metadata or {}))
    buffer = io.BytesIO()
    with torch.no_grad(), warnings.catch_warnings():
        # The Python values the tracer freezes (the grid check, K's cap, DCN's offset groups)
        # depend only on the input size, which the traced file fixes anyway.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        # PyTorch deprecates TorchScript (a warning per trace, trace_method and save): the user asked
        # for this format, and the docs say so once.
        warnings.filterwarnings("ignore", message=r"`torch\.jit\.\w+` is deprecated", category=FutureWarning)
        traced = torch.jit.trace(module, (example,), check_trace=False)
        # Into memory, not the file: torch's C++ writer aborts the process when the disk fills.
        torch.jit.save(traced, buffer, _extra_files={METADATA_KEY: json.dumps(info)})
    return write_new_file(path, buffer.getbuffer())


def export_openvino(
    model: nn.Module,
    path: str | Path,
    imgsz: int | Sequence[int] = 512,
    batch: int = 1,
    dynamic: bool = False,
    decode: bool = True,
    max_det: int = 100,
    half: bool = False,
    raw_input: bool = False,
    opset: int | None = None,
    metadata: dict[str, Any] | None = None,
    verbose: bool = False,
    calibration: Calibration | None = None,
) -> Path:
    """Export ``model`` to a new OpenVINO IR: ``path`` (``.xml``, the graph) and the ``.bin`` beside
    it (the float32 weights); returns the ``.xml`` path.

    The graph is :func:`export_onnx`'s (same arguments; ``half`` is refused: OpenVINO chooses its
    CPU precision at compile time, see :class:`~centernet_lightning.inference.OpenVINOBackend`)
    converted by ``openvino.convert_model``; the ``centernet`` metadata goes into the IR's
    ``rt_info``. A model with deformable convolutions (DCN) is converted from PyTorch instead
    (OpenVINO's PyTorch front end maps torchvision's ``deform_conv2d`` to its
    ``DeformableConvolution``; its ONNX front end has no ``DeformConv``), the same module traced;
    ``opset`` does not apply to it. The ``.bin`` is written first and the ``.xml`` last, each
    atomically, so an ``.xml`` never appears without its weights. ``calibration``: quantise to int8
    with NNCF (:func:`~centernet_lightning.deploy.quantize_openvino`; the decoding and the heatmap
    head stay float32), ranges calibrated on these images; not for a DCN model (the PyTorch front
    end's node names do not tell which nodes to keep float: use ONNX Runtime's int8). Raises
    FileExistsError when either file exists, ValueError for a model OpenVINO cannot convert,
    ImportError without openvino.
    """
    ov = _import_openvino()
    path = _new_output(path, "openvino")
    if half:
        raise ValueError("OpenVINO IR is exported in float32: --half is for GPU runtimes of the ONNX graph")
    weights = path.with_suffix(".bin")
    _refuse_existing(weights)
    _check_options(imgsz, batch, max_det)
    deformable = any(isinstance(layer, DeformConvBNReLU) for layer in _detector_of(model).modules())
    if deformable and calibration is not None:
        raise ValueError(
            "int8 OpenVINO IRs of models with deformable convolutions (DCN) are not supported: quantise the ONNX "
            "export (--format onnx --int8) for ONNX Runtime"
        )
    int8_inputs, int8_record = _calibration_inputs(
        model, calibration, imgsz, half, raw_input, 1 if dynamic else batch, opset
    )
    if int8_record is not None:
        metadata = {**(metadata or {}), "int8": int8_record}
    with tempfile.TemporaryDirectory(prefix="centernet-openvino-") as workdir:
        if deformable:
            module = build_inference_network(model, decode, max_det, raw_input)
            converted = _convert_from_pytorch(ov, module, imgsz, batch, dynamic)
            info = module.metadata(imgsz, None if dynamic else batch, **model_metadata(model), **(metadata or {}))
            return _save_ir(ov, converted, json.dumps(info), path, Path(workdir))
        onnx_path = export_onnx(
            model,
            Path(workdir) / "model.onnx",
            imgsz,
            batch,
            dynamic,
            decode,
            max_det,
            False,
            raw_input,
            opset,
            metadata,
            verbose,
        )
        graph, metadata_text = _read_exported_onnx(onnx_path)
        with _openvino_conversion("this model"):
            converted = ov.convert_model(str(onnx_path))
        if int8_inputs is not None:
            converted = quantize_openvino(converted, graph, int8_inputs, verbose)
        return _save_ir(ov, converted, metadata_text, path, Path(workdir))


def _read_exported_onnx(onnx_path: Path) -> tuple[Any, str]:
    """The graph (an ONNX ModelProto, weights included) :func:`export_onnx` wrote to ``onnx_path``
    and its ``centernet`` metadata (JSON text)."""
    import onnx

    graph = onnx.load(str(onnx_path), load_external_data=False)
    props = {prop.key: prop.value for prop in graph.metadata_props}
    return graph, props[METADATA_KEY]


@contextlib.contextmanager
def _openvino_conversion(what: str) -> Iterator[None]:
    """OpenVINO's conversion in the block, its failure (OpConversionFailure and kin, plain
    Exceptions with a page of log) as one line: ValueError ``OpenVINO cannot convert {what}: ...``;
    the root logger, which a failing converter rewires, kept as it was."""
    try:
        with root_logging_kept():
            yield
    except Exception as error:
        if not type(error).__module__.startswith("openvino"):
            raise
        lines = [line for line in str(error).strip().splitlines() if line.strip()]
        raise ValueError(f"OpenVINO cannot convert {what}: {lines[-1] if lines else error}") from None


def _convert_from_pytorch(
    ov: Any, module: InferenceNetwork, imgsz: int | Sequence[int], batch: int, dynamic: bool
) -> Any:
    """OpenVINO's model of ``module`` through its PyTorch front end (which traces it), with the
    input and output names of the ONNX graph; a free batch dimension when ``dynamic``."""
    example = module.example_input(imgsz, max(batch, 2) if dynamic else batch)
    shape = [-1 if dynamic and axis == 0 else size for axis, size in enumerate(example.shape)]
    element = ov.Type.u8 if module.raw_input else ov.Type.f32
    with torch.no_grad(), warnings.catch_warnings(), _openvino_conversion("this model from PyTorch"):
        # The tracer's checks compare two runs whose equal scores may take each other's places.
        warnings.simplefilter("ignore")
        converted = ov.convert_model(module, example_input=example, input=[(ov.PartialShape(shape), element)])
    converted.inputs[0].get_tensor().set_names({INPUT_NAME})
    for output, name in zip(converted.outputs, module.output_names, strict=True):
        output.get_tensor().set_names({name})
    return converted


def _save_ir(ov: Any, converted: Any, metadata: str, path: Path, workdir: Path) -> Path:
    """``converted`` with ``metadata`` (JSON) in its rt_info as the IR ``path`` (.xml) and its .bin:
    the weights first, the graph last, each atomically; no weights are left without their graph."""
    converted.set_rt_info(metadata, METADATA_KEY)
    ir_path = workdir / "model.xml"
    ov.save_model(converted, str(ir_path), compress_to_fp16=False)
    weights = path.with_suffix(".bin")
    write_new_file(weights, ir_path.with_suffix(".bin").read_bytes())
    try:
        return write_new_file(path, ir_path.read_bytes())
    except BaseException:
        weights.unlink(missing_ok=True)  # no weights without their graph
        raise
