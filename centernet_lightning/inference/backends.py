"""Inference backends: what runs a network input batch and returns its detections.

Every backend takes a batch of letterboxed network inputs and returns padded
:class:`~centernet_lightning.structures.Detections` in input pixels, K per image, without score
threshold or NMS (the :class:`~centernet_lightning.inference.Predictor` applies those, the same
way for all of them):

=================  ==========================================================================
backend            what runs
=================  ==========================================================================
``eager``          the detector's :class:`~centernet_lightning.models.InferenceNetwork` (network +
                   decoding) in PyTorch, NCHW; with test-time augmentation when one is set
``channels_last``  the same in ``torch.channels_last`` (NHWC) memory format, input included
``compile``        ``channels_last`` + ``torch.compile`` (Inductor, ``dynamic=False``: each batch
                   size compiles once) with Inductor's ``freezing`` on: the weights become
                   constants, so BatchNorm folds into the convolutions
``onnxruntime``    an exported ONNX file (:func:`~centernet_lightning.deploy.export_onnx`,
                   decoding in the graph) in an ONNX Runtime session
``openvino``       an OpenVINO IR (:func:`~centernet_lightning.deploy.export_openvino`: the ONNX
                   graph converted) compiled for the CPU, inference precision pinned to f32
``openvino_bf16``  the same in bfloat16 (faster where the CPU has AMX / AVX-512 BF16; scores
                   move by up to about 0.1)
``onnxruntime_int8``  the ONNX graph quantised to int8 (QDQ, calibrated on the user's images;
                   the heatmap head and the decoding stay float32) in ONNX Runtime
``openvino_int8``  the IR quantised to int8 by NNCF (likewise), compiled in f32 for the rest
``tensorrt``       a TensorRT engine (fp16) built from the ONNX graph, on a CUDA GPU
=================  ==========================================================================

:class:`NetworkBackend` runs the first three, :class:`OnnxRuntimeBackend` the ONNX Runtime ones,
:class:`OpenVINOBackend` the OpenVINO ones and
:class:`~centernet_lightning.inference.tensorrt.TensorRTBackend` the engine. An exported file
says itself whether it is int8 (its metadata's ``int8`` entry), and the backend is named after
it. Building one by name, including the export (and quantisation) a checkpoint needs first, is
:func:`centernet_lightning.deploy.build_backend`'s job, so that ``benchmark`` times what
``predict`` runs.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..checks import check_choice, check_int_min
from ..models.detector import CenterNetDetector, Outputs, decode_outputs
from ..models.inference_network import DETECTION_OUTPUTS, InferenceNetwork
from ..structures import Detections, InferenceSpec
from .tta import TTAConfig, detect_with_tta

__all__ = [
    "BACKENDS",
    "INT8_BACKENDS",
    "NETWORK_BACKENDS",
    "ONNXRUNTIME_BACKENDS",
    "OPENVINO_BACKENDS",
    "ExportedGraphBackend",
    "NetworkBackend",
    "OnnxRuntimeBackend",
    "OpenVINOBackend",
    "METADATA_KEY",
    "check_compile_mode",
    "resolve_device",
]

NETWORK_BACKENDS = ("eager", "channels_last", "compile")
# OpenVINO's CPU inference precision of each OpenVINO backend: f32 for parity with PyTorch, bf16 as its own choice
OPENVINO_BACKENDS = {"openvino": "f32", "openvino_bf16": "bf16", "openvino_int8": "f32"}
OPENVINO_PRECISIONS = ("f32", "bf16")
ONNXRUNTIME_BACKENDS = ("onnxruntime", "onnxruntime_int8")
INT8_BACKENDS = ("onnxruntime_int8", "openvino_int8")  # quantised at export: they need calibration images
BACKENDS = (*NETWORK_BACKENDS, *ONNXRUNTIME_BACKENDS, *OPENVINO_BACKENDS, "tensorrt")
METADATA_KEY = "centernet"  # ONNX metadata_props key and TorchScript extra file of an export
ORT_PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


def resolve_device(device: str | torch.device | None, half: bool = False) -> torch.device:
    """The torch.device to run on: ``auto``/None is CUDA when available, else the CPU.

    ValueError for another device type, ``cuda`` without a GPU, ``cuda:N`` past the visible GPUs,
    and ``half`` (float16) on the CPU, where its convolutions are slower than float32.
    """
    if device is None or str(device) == "auto":
        device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(device)
    except RuntimeError:
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {device!r}") from None
    if device.type not in ORT_PROVIDERS:
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {device}")
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device {device} was asked for, but PyTorch sees no CUDA GPU (use cpu or auto)")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device {device}: PyTorch sees {torch.cuda.device_count()} CUDA GPU(s)")
    if half and device.type != "cuda":
        raise ValueError("half (float16) needs a CUDA device: CPU float16 convolutions are slower than float32")
    return device


def check_compile_mode(mode: str | None) -> str | None:
    """``mode`` if it is one of ``torch.compile``'s modes (or None), else ValueError listing them:
    checked when a backend is built, not at its first call."""
    if mode is not None:
        import torch._inductor

        check_choice("compile_mode", mode, torch._inductor.list_mode_options())
    return mode


def detections_of(output_names: Sequence[str], outputs: Sequence[Tensor]) -> Detections:
    """The Detections dict of an :class:`InferenceNetwork`'s (or its graph's) decoded outputs."""
    return {DETECTION_OUTPUTS[name]: value for name, value in zip(output_names, outputs)}  # type: ignore[return-value]


class NetworkBackend:
    """A :class:`~centernet_lightning.models.CenterNetDetector` run by PyTorch on its own device.

    Args:
        detector: the network. ``channels_last`` and ``compile`` convert it in place to NHWC
            (pass a copy to keep the caller's).
        num_detections: K, detections per image.
        backend: ``eager``, ``channels_last`` or ``compile`` (see the module docstring).
        compile_mode: ``torch.compile``'s ``mode`` (None: the default).
        tta: test-time augmentation (eager and channels_last only).
        half: a float16 network (the input and the decoding stay float32), for GPUs.

    Calls run under ``torch.inference_mode()`` with the network in eval mode (restored after).
    """

    def __init__(
        self,
        detector: CenterNetDetector,
        num_detections: int = 100,
        backend: str = "eager",
        compile_mode: str | None = None,
        tta: TTAConfig | None = None,
        half: bool = False,
    ) -> None:
        if backend not in NETWORK_BACKENDS:
            raise ValueError(f"Unknown PyTorch backend {backend!r}; valid names: {', '.join(NETWORK_BACKENDS)}")
        check_int_min("num_detections", num_detections, 1)
        check_compile_mode(compile_mode)
        if tta is not None and tta.enabled and (backend == "compile" or half):
            raise ValueError("Test-time augmentation runs on the eager or channels_last backends in float32")
        self.name = backend
        self.detector = detector
        self.network = InferenceNetwork(detector, num_detections, half=half)
        self.memory_format = torch.contiguous_format if backend == "eager" else torch.channels_last
        if backend != "eager":
            self.network.to(memory_format=torch.channels_last)
        # dynamic=False: each batch size gets its own static-shape kernels (PyTorch would otherwise
        # switch to dynamic shapes at the second size, which are slower).
        self._run = (
            torch.compile(self.network, dynamic=False, mode=compile_mode) if backend == "compile" else self.network
        )
        self.tta = tta if tta is not None and tta.enabled else None
        self.num_detections = num_detections
        self.num_classes = detector.num_classes
        # Per-detection fields beyond boxes, scores, labels: {"embeddings": [D], "keypoints": [J, 3]}.
        self.field_shapes: dict[str, list[int]] = dict(self.network.field_shapes)
        self.has_embeddings = "embeddings" in self.field_shapes
        self.raw_input = False
        self.input_size: tuple[int, int] | None = None  # any multiple of the size divisor
        self.size_divisor = detector.size_divisor
        self.spec: InferenceSpec | None = None

    @property
    def device(self) -> torch.device:
        return next(self.detector.parameters()).device

    def __call__(self, inputs: Tensor) -> Detections:
        """Detections of float32 normalised inputs [B, 3, H, W] (moved to the network's device)."""
        inputs = inputs.to(self.device).contiguous(memory_format=self.memory_format)
        with torch.inference_mode(), _eval_mode(self.detector), self.context():
            if self.tta is not None:
                detections = detect_with_tta(self.detector, inputs, self.tta, self.num_detections)
                return {key: value for key, value in detections.items() if key != "indices"}  # type: ignore[return-value]
            return detections_of(self.network.output_names, self._run(inputs))

    def decode(self, outputs: Outputs) -> Detections:
        """The detections of raw outputs the caller already has (validation computes them for the loss)."""
        return detections_of(self.network.output_names, self.network.decode(outputs))

    def context(self) -> contextlib.AbstractContextManager:
        """What every call runs in: Inductor's freezing for ``compile``, read when a batch size first compiles."""
        if self.name != "compile":
            return contextlib.nullcontext()
        import torch._inductor.config

        return torch._inductor.config.patch(freezing=True)


@contextlib.contextmanager
def _eval_mode(module: torch.nn.Module) -> Iterator[None]:
    """``module`` in eval mode inside, and in training mode again after if it was (a module that is
    in eval mode already is not touched: its parts may hold modes of their own)."""
    was_training = module.training
    if was_training:
        module.eval()
    try:
        yield
    finally:
        if was_training:
            module.train()


def _open_session(ort: Any, path: Path, options: Any, provider: str, provider_options: Any) -> Any:
    """ONNX Runtime's session of ``path``; ValueError naming the file when it is no ONNX model
    (a text file, a checkpoint, a truncated download) or one ONNX Runtime cannot load."""
    if path.stat().st_size == 0:
        raise ValueError(f"{path} is not an ONNX model (the file is empty)")
    try:
        return ort.InferenceSession(str(path), options, providers=[provider], provider_options=provider_options)
    except Exception as error:  # ONNX Runtime raises its own exception types, all plain Exceptions
        if not type(error).__module__.startswith("onnxruntime"):
            raise
        # "[ONNXRuntimeError] : 7 : INVALID_PROTOBUF : Load model from PATH failed:Protobuf parsing failed."
        text = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        reason = text.rpartition(" failed:")[2].strip() or text
        if type(error).__name__ in ("InvalidProtobuf", "NoModel") or "No graph was found" in reason:
            raise ValueError(f"{path} is not an ONNX model (ONNX Runtime: {reason})") from None
        raise ValueError(f"ONNX Runtime cannot load {path}: {reason}") from None


def _centernet_metadata(path: Path, session: Any) -> dict[str, Any]:
    """The ``centernet`` metadata of an ONNX export, after :func:`_checked_metadata`'s checks."""
    inputs = [(value.name, value.type == "tensor(uint8)", value.type, value.shape) for value in session.get_inputs()]
    outputs = [output.name for output in session.get_outputs()]
    text = session.get_modelmeta().custom_metadata_map.get(METADATA_KEY)
    return _checked_metadata(path, "an ONNX model", text, inputs, outputs)


def _checked_metadata(
    path: Path, kind: str, text: str | None, inputs: Sequence[tuple[str, bool, str, Sequence[Any]]], outputs: list[str]
) -> dict[str, Any]:
    """The ``centernet`` metadata ``text`` of an export (ONNX or OpenVINO IR), after checking that
    the graph is one: its metadata readable, one image input [B, 3, H, W] float or [B, H, W, 3]
    uint8 of fixed size (``inputs``: name, is uint8, type, shape), and detections (``boxes``,
    ``scores``, ``labels``) or raw head maps with the stride to decode them as outputs. ValueError
    naming the file and what is missing otherwise."""
    not_ours = f"{path} is {kind} but not a CenterNet export (centernet export writes one)"
    if text is None:
        raise ValueError(f"{not_ours}: it has no {METADATA_KEY!r} metadata")
    try:
        metadata = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"{not_ours}: its {METADATA_KEY!r} metadata is not JSON ({error})") from None
    if not isinstance(metadata, dict):
        raise ValueError(f"{not_ours}: its {METADATA_KEY!r} metadata is not a mapping")
    shape = list(inputs[0][3]) if len(inputs) == 1 else []
    raw_input = len(inputs) == 1 and inputs[0][1]
    sides = shape[1:3] if raw_input else shape[2:4]
    channels = shape[3] if raw_input and len(shape) == 4 else shape[1] if len(shape) == 4 else None
    if len(shape) != 4 or channels != 3 or not all(isinstance(side, int) and side > 0 for side in sides):
        described = ", ".join(f"{name} {kind_} {list(dims)}" for name, _, kind_, dims in inputs)
        raise ValueError(f"{not_ours}: it takes {described or 'no input'}, not one image batch of a fixed size")
    detections = {"boxes", "scores", "labels"}
    if set(outputs) <= set(DETECTION_OUTPUTS):
        if not detections <= set(outputs):
            raise ValueError(f"{not_ours}: its outputs {outputs} lack {sorted(detections - set(outputs))}")
    elif "stride" not in metadata:
        raise ValueError(f"{path} outputs {outputs}, not detections, and has no metadata to decode them")
    return metadata


class ExportedGraphBackend:
    """What the backends of an exported graph share (:class:`OnnxRuntimeBackend`,
    :class:`OpenVINOBackend`): the attributes read from the graph and its ``centernet`` metadata,
    the input check, the chunking of a fixed batch size and the decoding of raw head maps. A
    subclass opens the graph, sets ``path`` and ``metadata``, calls :meth:`_describe_graph` and
    implements ``_infer(images) -> list of output arrays``."""

    name: str
    path: Path
    metadata: dict[str, Any]

    def _describe_graph(
        self, input_name: str, raw_input: bool, shape: Sequence[Any], output_shapes: dict[str, Sequence[Any]]
    ) -> None:
        self.input_name: str = input_name
        self.raw_input: bool = raw_input
        self.input_size: tuple[int, int] | None = tuple(shape[1:3] if raw_input else shape[2:4])
        self.batch: int | None = shape[0] if isinstance(shape[0], int) else None
        self.output_names: list[str] = list(output_shapes)
        self.decoded: bool = set(self.output_names) <= set(DETECTION_OUTPUTS)
        shapes = output_shapes
        self.num_detections: int = int(shapes["scores"][1]) if self.decoded else int(self.metadata.get("max_det", 100))
        self.num_classes: int | None = self.metadata.get("num_classes")
        self.field_shapes: dict[str, list[int]] = _field_shapes(shapes)
        self.has_embeddings = "embeddings" in self.field_shapes
        self.size_divisor = int(self.metadata.get("size_divisor", 32))
        self.spec = InferenceSpec.from_dict({**self.metadata, "input_size": self.input_size[0]})
        self.int8: bool = "int8" in self.metadata  # quantised at export (deploy.quantize)

    def _infer(self, images: np.ndarray) -> list[np.ndarray]:
        raise NotImplementedError

    def __call__(self, inputs: Tensor | np.ndarray) -> Detections:
        """Detections of a batch: float32 [N, 3, H, W] normalised or, for a raw-input graph, uint8
        [N, H, W, 3]; (H, W) = :attr:`input_size`. A graph with a fixed batch size runs N images
        in chunks of it. Returns CPU tensors."""
        images = inputs.detach().cpu().numpy() if isinstance(inputs, Tensor) else np.asarray(inputs)
        self._check_input(images)
        chunk = self.batch or len(images)
        parts = [self._run(images[start : start + chunk]) for start in range(0, len(images), chunk)]
        return {key: torch.cat([part[key] for part in parts]) for key in parts[0]}  # type: ignore[return-value]

    def _check_input(self, images: np.ndarray) -> None:
        height, width = self.input_size
        expected = ("uint8", (height, width, 3)) if self.raw_input else ("float32", (3, height, width))
        if images.ndim != 4 or not len(images) or images.dtype != expected[0] or tuple(images.shape[1:]) != expected[1]:
            layout = "uint8 [N, H, W, 3] RGB" if self.raw_input else "normalised float32 [N, 3, H, W]"
            raise ValueError(
                f"{self.path} takes {layout} images with (H, W) = {self.input_size}; "
                f"got {images.dtype} {list(images.shape)}"
            )

    def _run(self, images: np.ndarray) -> Detections:
        """One run of the graph; a short last chunk of a fixed-batch graph is padded with zeros."""
        count = len(images)
        if self.batch is not None and count < self.batch:
            padding = np.zeros((self.batch - count, *images.shape[1:]), dtype=images.dtype)
            images = np.concatenate([images, padding])
        values = self._infer(np.ascontiguousarray(images))
        outputs = {name: torch.from_numpy(value[:count]) for name, value in zip(self.output_names, values)}
        if self.decoded:
            return detections_of(list(outputs), list(outputs.values()))
        detections = decode_outputs(outputs, int(self.metadata["stride"]), self.num_detections)
        return {key: value for key, value in detections.items() if key != "indices"}  # type: ignore[return-value]


def _field_shapes(output_shapes: dict[str, Sequence[Any]]) -> dict[str, list[int]]:
    """Per-detection shapes of the embeddings and keypoints a graph gives, decoded or as raw head maps."""
    shapes: dict[str, list[int]] = {}
    if "embeddings" in output_shapes or "reid" in output_shapes:
        shapes["embeddings"] = [
            int(output_shapes["embeddings"][-1]) if "embeddings" in output_shapes else int(output_shapes["reid"][1])
        ]
    if "keypoints" in output_shapes:
        shapes["keypoints"] = [int(size) for size in output_shapes["keypoints"][-2:]]
    elif "keypoint_offsets" in output_shapes:
        shapes["keypoints"] = [int(output_shapes["keypoint_offsets"][1]) // 2, 3]
    return shapes


class OnnxRuntimeBackend(ExportedGraphBackend):
    """An exported CenterNet graph in an ONNX Runtime session.

    Args:
        path: a file written by :func:`~centernet_lightning.deploy.export_onnx`; ValueError naming it
            when it is not an ONNX model, or not such an export (no ``centernet`` metadata, no
            image input of a fixed size, no detections as outputs).
        device: ``cpu`` or ``cuda`` (ONNX Runtime's CUDA provider, which must be installed).
        threads: intra-op threads on the CPU (None: ONNX Runtime's default).

    Attributes (read from the graph and its ``centernet`` metadata): ``input_size`` ``(height,
    width)``; ``batch`` (None when free); ``raw_input`` (uint8 [B, H, W, 3] RGB input rather than
    normalised float32 [B, 3, H, W]); ``num_detections``; ``field_shapes`` (the per-detection
    shape of ``embeddings`` and ``keypoints`` when the graph gives them) and ``has_embeddings``;
    ``spec`` (the model's :class:`~centernet_lightning.structures.InferenceSpec`); ``metadata`` (everything the
    exporter stored: stride, num_classes, opset, the predictor settings, ...).
    """

    name = "onnxruntime"  # onnxruntime_int8 for a quantised graph

    def __init__(self, path: str | Path, device: str | torch.device = "cpu", threads: int | None = None) -> None:
        try:
            import onnxruntime as ort
        except ImportError:
            raise ImportError("onnxruntime is not installed (pip install 'centernet-lightning[export]')") from None
        if not Path(path).is_file():
            raise FileNotFoundError(f"ONNX file not found: {path}")
        if threads is not None:
            check_int_min("threads", threads, 1)
        self.device = resolve_device(device)
        provider = ORT_PROVIDERS[self.device.type]
        if provider not in ort.get_available_providers():
            raise ValueError(
                f"ONNX Runtime has no {provider} here (available: {', '.join(ort.get_available_providers())})"
            )
        options = ort.SessionOptions()
        if threads is not None:
            options.intra_op_num_threads = threads
        self.path = Path(path)
        # The CUDA provider runs on GPU 0 unless told its device_id.
        provider_options = [{"device_id": self.device.index}] if self.device.index is not None else None
        self.session = _open_session(ort, self.path, options, provider, provider_options)
        self.metadata: dict[str, Any] = _centernet_metadata(self.path, self.session)
        graph_input = self.session.get_inputs()[0]
        self._describe_graph(
            graph_input.name,
            graph_input.type == "tensor(uint8)",
            graph_input.shape,
            {output.name: output.shape for output in self.session.get_outputs()},
        )
        if self.int8:
            self.name = "onnxruntime_int8"

    def _infer(self, images: np.ndarray) -> list[np.ndarray]:
        return self.session.run(None, {self.input_name: images})


def _import_openvino() -> Any:
    try:
        import openvino
    except ImportError:
        raise ImportError("openvino is not installed (pip install 'centernet-lightning[export]')") from None
    return openvino


def _static_dims(shape: Any) -> list[int | None]:
    """An OpenVINO partial shape as a list: its static dimensions, None for a dynamic one."""
    return [dim.get_length() if dim.is_static else None for dim in shape]


class OpenVINOBackend(ExportedGraphBackend):
    """An exported CenterNet graph as an OpenVINO IR (``.xml`` + ``.bin``) compiled for the CPU.

    Args:
        path: the ``.xml`` of :func:`~centernet_lightning.deploy.export_openvino`; ValueError
            naming it when it is not an OpenVINO IR, or not such an export (no ``centernet``
            entry in its ``rt_info``, no image input of a fixed size, no detections as outputs).
        device: ``cpu`` (OpenVINO's CPU plugin; its GPU plugin is for Intel GPUs, not CUDA).
        threads: inference threads (None: OpenVINO's default).
        precision: ``f32`` (default: the scores of PyTorch within 1e-5) or ``bf16`` (faster on CPUs
            with AMX / AVX-512 BF16, scores off by up to about 0.1). Pinned either way, since the
            CPU plugin's own default is bf16 wherever the CPU supports it.

    Attributes: as :class:`OnnxRuntimeBackend`'s, read from the IR and its ``centernet`` rt_info.
    """

    def __init__(
        self,
        path: str | Path,
        device: str | torch.device = "cpu",
        threads: int | None = None,
        precision: str = "f32",
    ) -> None:
        ov = _import_openvino()
        check_choice("precision", precision, OPENVINO_PRECISIONS)
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"OpenVINO IR file not found: {path}")
        if threads is not None:
            check_int_min("threads", threads, 1)
        self.device = resolve_device(device)
        if self.device.type != "cpu":
            raise ValueError(f"The OpenVINO backend runs on the CPU, not {self.device}")
        self.name = "openvino" if precision == "f32" else f"openvino_{precision}"
        self.path = path
        self.precision = precision
        core = ov.Core()
        if precision == "bf16" and "BF16" not in core.get_property("CPU", "OPTIMIZATION_CAPABILITIES"):
            raise ValueError("This CPU has no bfloat16 support in OpenVINO; use the openvino backend (f32)")
        model = _read_ir(core, path)
        key = METADATA_KEY
        text = model.get_rt_info(key).astype(str) if model.has_rt_info(key) else None
        inputs = [
            (
                value.get_any_name(),
                value.get_element_type() == ov.Type.u8,
                str(value.get_element_type()),
                _static_dims(value.get_partial_shape()),
            )
            for value in model.inputs
        ]
        output_shapes = {value.get_any_name(): _static_dims(value.get_partial_shape()) for value in model.outputs}
        self.metadata: dict[str, Any] = _checked_metadata(path, "an OpenVINO IR", text, inputs, list(output_shapes))
        self._describe_graph(inputs[0][0], inputs[0][1], inputs[0][3], output_shapes)
        if self.int8:
            self.name = "openvino_int8" if precision == "f32" else f"openvino_int8_{precision}"
        config: dict[str, Any] = {"INFERENCE_PRECISION_HINT": precision, "PERFORMANCE_HINT": "LATENCY"}
        if threads is not None:
            config["INFERENCE_NUM_THREADS"] = threads
        self.compiled = core.compile_model(model, "CPU", config)
        self.request = self.compiled.create_infer_request()

    def _infer(self, images: np.ndarray) -> list[np.ndarray]:
        results = self.request.infer({self.input_name: images})  # copies of the output tensors
        return [results[name] for name in self.output_names]


def _read_ir(core: Any, path: Path) -> Any:
    """OpenVINO's model of the IR ``path`` (its weights read into memory, so the files may go);
    ValueError naming the file when it is no IR or its ``.bin`` is missing."""
    if path.suffix.lower() != ".xml":
        raise ValueError(f"{path} is not an OpenVINO IR (centernet export --format openvino writes a .xml and .bin)")
    weights = path.with_suffix(".bin")
    if not weights.is_file():
        raise ValueError(f"{path} is an OpenVINO IR without its weights: {weights.name} is missing beside it")
    try:
        return core.read_model(str(path), str(weights), {"ENABLE_MMAP": False})
    except RuntimeError as error:
        lines = [line for line in str(error).strip().splitlines() if line.strip()]
        raise ValueError(
            f"{path} is not an OpenVINO IR that OpenVINO can read ({lines[-1] if lines else error})"
        ) from None
