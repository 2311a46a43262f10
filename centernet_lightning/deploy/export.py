"""Exporting a CenterNet to ONNX or TorchScript with the decoding inside the graph.

The exported graph runs the network, then the decoding of validation
(:func:`~centernet_lightning.models.detector.decode_outputs` without NMS): sigmoid, 3x3 max-pool
peaks, top-K, gather and box arithmetic. K is a constant, so the graph has no data-dependent
shapes (no NonZero, Loop or If) and every runtime gets fixed-size outputs:

==========  ==================  =============================================================
output      shape               meaning
==========  ==================  =============================================================
``boxes``   float32 [B, K, 4]   XYXY, pixels of the network input (the letterboxed image)
``scores``  float32 [B, K]      peak probabilities, sorted descending
``labels``  int64 [B, K]        class indices
==========  ==================  =============================================================

K = ``min(max_det, num_classes * H/stride * W/stride)``. With ``decode=False`` the outputs are
the raw head maps instead (``heatmap`` logits, then ``box_2d`` or ``size``/``offset``, grid cells;
see :class:`~centernet_lightning.models.CenterNetDetector`).

The input ``images`` is float32 [B, 3, H, W] RGB normalised with the ImageNet mean and std (what
the ``val`` transform gives), or with ``raw_input`` uint8 [B, H, W, 3] RGB with the normalisation
inside the graph. The letterbox (resize and pad) stays outside the graph.

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

import argparse
import copy
import json
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor, nn

from ..atomic_files import write_file_atomically
from ..inference.spec import InferenceSpec
from ..models.detector import CenterNetDetector, decode_outputs
from ..models.layers import DeformConvBNReLU
from ..preprocess import IMAGENET_MEAN, IMAGENET_STD

__all__ = [
    "DECODED_OUTPUTS",
    "FORBIDDEN_ONNX_OPS",
    "INPUT_NAME",
    "METADATA_KEY",
    "CheckpointModel",
    "ExportModule",
    "build_export_module",
    "export_main",
    "export_onnx",
    "export_torchscript",
    "load_checkpoint_model",
]

INPUT_NAME = "images"
DECODED_OUTPUTS = ("boxes", "scores", "labels")
# Ops with data-dependent control flow or output size: compilers (TensorRT, NPU toolchains) handle
# them badly or not at all, and the decoding is written to need none of them.
FORBIDDEN_ONNX_OPS = frozenset({"NonZero", "Loop", "If"})
MIN_OPSET = 17
DEFAULT_OPSET = 18  # the lowest opset torch's dynamo exporter implements; 17 is converted down
DEFORM_CONV_OPSET = 19  # ONNX DeformConv appeared in opset 19
SUFFIXES = {"onnx": ".onnx", "torchscript": ".torchscript"}  # export formats and their default suffix
METADATA_KEY = "centernet"  # ONNX metadata_props key and TorchScript extra file: ExportModule.metadata()


class ExportModule(nn.Module):
    """A detector wrapped for export: optional in-graph normalisation, the network, optional decoding.

    Args:
        detector: the network (its heads decide the box decoding). It is used as is: pass a copy
            to keep the original out of eval mode and float16.
        decode: decode to ``(boxes, scores, labels)``; False returns the raw head maps.
        max_det: K, detections per image (capped at ``num_classes * h * w``).
        raw_input: take uint8 [B, H, W, 3] RGB and normalise inside the graph.
        half: float16 weights and activations (the input and the decoding stay float32).

    ``forward(images)`` returns ``(boxes [B, K, 4], scores [B, K], labels [B, K])`` (see the module
    docstring), or with ``decode=False`` one float32 map per name in :attr:`output_names`.
    """

    def __init__(
        self,
        detector: CenterNetDetector,
        decode: bool = True,
        max_det: int = 100,
        raw_input: bool = False,
        half: bool = False,
    ) -> None:
        super().__init__()
        if max_det < 1:
            raise ValueError(f"max_det must be >= 1, got {max_det}")
        self.detector = detector.half() if half else detector
        self.decode = decode
        self.max_det = max_det
        self.raw_input = raw_input
        self.half = half
        # The val transform's float32 arithmetic, so both inputs give the same network input:
        # (pixel - 255 * mean) * (1 / (255 * std)).
        mean = torch.tensor(IMAGENET_MEAN, dtype=torch.float32) * 255
        inv_std = 1.0 / (torch.tensor(IMAGENET_STD, dtype=torch.float32) * 255)
        self.register_buffer("mean", mean.view(1, 3, 1, 1), persistent=False)
        self.register_buffer("inv_std", inv_std.view(1, 3, 1, 1), persistent=False)
        self.head_names: tuple[str, ...] = tuple(detector.heads[-1].keys())
        self.output_names: tuple[str, ...] = DECODED_OUTPUTS if decode else self.head_names

    def forward(self, images: Tensor) -> tuple[Tensor, ...]:
        if self.raw_input:
            images = (images.permute(0, 3, 1, 2).to(torch.float32) - self.mean) * self.inv_std
        outputs = self.detector(images.to(torch.float16) if self.half else images)
        if not self.decode:
            return tuple(outputs[name].to(torch.float32) for name in self.head_names)
        detections = decode_outputs(outputs, self.detector.stride, self.max_det, score_threshold=0.0, nms_iou=None)
        return detections["bboxes"], detections["scores"], detections["labels"]

    def input_size(self, imgsz: int | Sequence[int]) -> tuple[int, int]:
        """``(height, width)`` from one side or two; ValueError unless multiples of the size divisor."""
        height, width = (imgsz, imgsz) if isinstance(imgsz, int) else (int(imgsz[0]), int(imgsz[-1]))
        divisor = self.detector.size_divisor
        if height < divisor or width < divisor or height % divisor or width % divisor:
            raise ValueError(f"Input size {height}x{width}: both sides must be positive multiples of {divisor}")
        return height, width

    def example_input(self, imgsz: int | Sequence[int], batch: int = 1) -> Tensor:
        """A mid-grey input in the graph's layout: float32 [B, 3, H, W] or uint8 [B, H, W, 3]."""
        height, width = self.input_size(imgsz)
        if self.raw_input:
            return torch.full((batch, height, width, 3), 128, dtype=torch.uint8)
        return torch.zeros(batch, 3, height, width)

    def output_shapes(self, imgsz: int | Sequence[int], batch: int | str = 1) -> dict[str, list[int | str]]:
        """The shape of every output for this input size, without running the network."""
        height, width = self.input_size(imgsz)
        stride = self.detector.stride
        grid = [height // stride, width // stride]
        if not self.decode:
            heads = self.detector.heads[-1]
            return {name: [batch, heads[name].out_channels, *grid] for name in self.head_names}
        k = min(self.max_det, self.detector.num_classes * grid[0] * grid[1])
        return {"boxes": [batch, k, 4], "scores": [batch, k], "labels": [batch, k]}

    def metadata(self, imgsz: int | Sequence[int], batch: int | None, **extra: Any) -> dict[str, Any]:
        """What a runtime needs to know about the graph (stored in the exported file); ``batch``
        None: free."""
        return {
            "input_size": list(self.input_size(imgsz)),
            "batch": batch,
            "raw_input": self.raw_input,
            "decode": self.decode,
            "max_det": self.max_det,
            "half": self.half,
            "stride": self.detector.stride,
            "num_classes": self.detector.num_classes,
            "outputs": list(self.output_names),
            **extra,
        }


def _detector_of(model: nn.Module) -> CenterNetDetector:
    """The network of a CenterNet LightningModule, or the detector itself."""
    detector = model if isinstance(model, CenterNetDetector) else getattr(model, "detector", None)
    if not isinstance(detector, CenterNetDetector):
        raise TypeError(f"Expected a CenterNet or a CenterNetDetector, got {type(model).__name__}")
    return detector


def build_export_module(
    model: nn.Module, decode: bool = True, max_det: int = 100, raw_input: bool = False, half: bool = False
) -> ExportModule:
    """An :class:`ExportModule` around an eval-mode copy of ``model``'s network (a CenterNet or a
    CenterNetDetector), frozen; the caller's model is left as it was."""
    detector = copy.deepcopy(_detector_of(model)).eval()
    module = ExportModule(detector, decode, max_det, raw_input, half).eval()
    module.requires_grad_(False)
    return module


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
) -> Path:
    """Export ``model`` (a CenterNet or CenterNetDetector) to a new ONNX file; returns its path.

    Args:
        imgsz: input side in pixels, or ``(height, width)``; multiples of the size divisor (32).
        batch: the graph's batch size; ``dynamic`` makes it a free dimension named ``batch``.
        decode, max_det, half, raw_input: see :class:`ExportModule`.
        opset: ONNX opset >= 17; None: 18, or 19 when the model has deformable convolutions.
        metadata: extra JSON-able entries of the file's ``centernet`` metadata (class names, ...).

    The graph is checked with ``onnx.checker`` (full check) and for NonZero/Loop/If nodes.
    Raises FileExistsError when ``path`` exists: nothing is ever overwritten.
    """
    import onnx

    path = Path(path)
    _refuse_existing(path)  # before the export's work, not after it
    if batch < 1:
        raise ValueError(f"batch must be >= 1, got {batch}")
    module = build_export_module(model, decode, max_det, raw_input, half)
    deformable = any(isinstance(layer, DeformConvBNReLU) for layer in module.modules())
    if opset is None:
        opset = DEFORM_CONV_OPSET if deformable else DEFAULT_OPSET
    if opset < (DEFORM_CONV_OPSET if deformable else MIN_OPSET):
        needs = "deformable convolutions need ONNX DeformConv (opset 19)" if deformable else "the minimum is 17"
        raise ValueError(f"Cannot export with opset {opset}: {needs}")
    # torch.export specialises dimensions of size 1, so a free batch is traced with two images.
    example = module.example_input(imgsz, max(batch, 2) if dynamic else batch)
    dynamic_shapes = {INPUT_NAME: {0: torch.export.Dim("batch", min=1)}} if dynamic else None
    with torch.no_grad():
        program = torch.onnx.export(
            module,
            (example,),
            dynamo=True,
            opset_version=opset,
            input_names=[INPUT_NAME],
            output_names=list(module.output_names),
            dynamic_shapes=dynamic_shapes,
            verbose=False,
        )
    proto = program.model_proto
    info = module.metadata(imgsz, None if dynamic else batch, opset=opset, **(metadata or {}))
    onnx.helper.set_model_props(proto, {METADATA_KEY: json.dumps(info)})
    onnx.checker.check_model(proto, full_check=True)
    op_types = {node.op_type for node in proto.graph.node}
    op_types |= {node.op_type for function in proto.functions for node in function.node}
    forbidden = sorted(op_types & FORBIDDEN_ONNX_OPS)
    if forbidden:
        raise RuntimeError(f"The exported graph has data-dependent ops {forbidden}; it would not run everywhere")
    return write_file_atomically(path, lambda temporary: onnx.save(proto, str(temporary)))


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
    convolutions). ``metadata`` goes into the extra file ``centernet`` (JSON) beside
    :meth:`ExportModule.metadata`. Raises FileExistsError when ``path`` exists.
    """
    path = Path(path)
    _refuse_existing(path)
    module = build_export_module(model, decode, max_det, raw_input, half)
    example = module.example_input(imgsz, batch)
    with torch.no_grad(), warnings.catch_warnings():
        # The Python values the tracer freezes (the grid check, K's cap, DCN's offset groups)
        # depend only on the input size, which the traced file fixes anyway.
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        traced = torch.jit.trace(module, (example,), check_trace=False)
    extra_files = {METADATA_KEY: json.dumps(module.metadata(imgsz, None, **(metadata or {})))}
    return write_file_atomically(
        path, lambda temporary: torch.jit.save(traced, str(temporary), _extra_files=extra_files)
    )


# --------------------------------------------------------------------------- the `centernet export` command
class CheckpointModel(NamedTuple):
    """What export needs from a training checkpoint."""

    detector: CenterNetDetector
    hparams: dict[str, Any]  # the CenterNet's hyperparameters (class_names, num_detections, ...)
    spec: InferenceSpec  # input size, normalisation, class names, category ids


def load_checkpoint_model(ckpt_path: str | Path) -> CheckpointModel:
    """The network of a training checkpoint, without Lightning's loader or a Trainer (see
    :func:`~centernet_lightning.models.centernet.load_centernet`). ValueError when the file does not
    describe a model."""
    from ..models.centernet import load_centernet

    model = load_centernet(ckpt_path)
    return CheckpointModel(model.detector, dict(model.hparams), model.inference_spec)


def _onnx_signature(path: Path) -> list[str]:
    """``input/output name dtype [dims]`` lines read back from the written graph."""
    import onnx

    graph = onnx.load(str(path), load_external_data=False).graph

    def describe(value: Any) -> str:
        tensor = value.type.tensor_type
        dims = ", ".join(dim.dim_param or str(dim.dim_value) for dim in tensor.shape.dim)
        return f"{value.name} {onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type)} [{dims}]"

    return [f"  input  {describe(value)}" for value in graph.input] + [
        f"  output {describe(value)}" for value in graph.output
    ]


def _module_signature(module: ExportModule, imgsz: int | Sequence[int]) -> list[str]:
    example = module.example_input(imgsz)
    input_shape = ", ".join(["batch", *map(str, example.shape[1:])])
    lines = [f"  input  {INPUT_NAME} {str(example.dtype).removeprefix('torch.')} [{input_shape}]"]
    for name, shape in module.output_shapes(imgsz, batch="batch").items():
        dtype = "int64" if name == "labels" else "float32"
        lines.append(f"  output {name} {dtype} [{', '.join(map(str, shape))}]")
    return lines


def export_main(argv: list[str]) -> None:
    """``centernet export``: a training checkpoint as an ONNX or TorchScript file, decoding in the graph."""
    parser = argparse.ArgumentParser(prog="centernet export", description=export_main.__doc__)
    parser.add_argument("--ckpt_path", "--ckpt-path", required=True, help="a checkpoint written by training")
    parser.add_argument("--format", choices=sorted(SUFFIXES), default="onnx", help="default: onnx")
    parser.add_argument(
        "--output",
        default=None,
        help="file to write, never overwritten (default: the checkpoint's path with .onnx / .torchscript)",
    )
    parser.add_argument(
        "--imgsz",
        type=int,
        nargs="+",
        default=None,
        metavar="PX",
        help="input side, or height and width (multiples of 32; default: the checkpoint's data input_size, else 512)",
    )
    parser.add_argument("--batch", type=int, default=1, help="batch size of the graph (default 1)")
    parser.add_argument("--dynamic", action="store_true", help="a free batch size (TorchScript always has one)")
    parser.add_argument("--no-decode", dest="decode", action="store_false", help="output the raw head maps")
    parser.add_argument("--max-det", type=int, default=None, help="K, detections per image (default: the model's)")
    parser.add_argument("--half", action="store_true", help="float16 network, for GPU runtimes")
    parser.add_argument("--raw-input", action="store_true", help="uint8 RGB [B, H, W, 3] input, normalised in graph")
    parser.add_argument("--opset", type=int, default=None, help="ONNX opset >= 17 (default 18; 19 with DCN)")
    args = parser.parse_args(argv)
    if args.imgsz is not None and len(args.imgsz) > 2:
        parser.error("--imgsz takes one side, or height and width")

    ckpt_path = Path(args.ckpt_path)
    output = Path(args.output) if args.output else ckpt_path.with_suffix(SUFFIXES[args.format])
    try:
        _refuse_existing(output)
        loaded = load_checkpoint_model(ckpt_path)
        imgsz = args.imgsz or loaded.spec.input_size
        max_det = args.max_det or int(loaded.hparams.get("num_detections") or 100)
        options = dict(
            imgsz=imgsz,
            batch=args.batch,
            decode=args.decode,
            max_det=max_det,
            half=args.half,
            raw_input=args.raw_input,
            # The graph's own input size is stored by ExportModule.metadata; the rest of the spec travels.
            metadata={
                **{k: v for k, v in loaded.spec.to_dict().items() if k != "input_size"},
                "checkpoint": ckpt_path.name,
            },
        )
        if args.format == "onnx":
            path = export_onnx(loaded.detector, output, dynamic=args.dynamic, opset=args.opset, **options)
            signature = _onnx_signature(path)
        else:
            path = export_torchscript(loaded.detector, output, **options)
            # Shapes only: the export's own copy is gone, and the checkpoint's network needs no copy.
            signature = _module_signature(ExportModule(loaded.detector, args.decode, max_det, args.raw_input), imgsz)
    except (FileNotFoundError, FileExistsError, ValueError) as error:
        sys.exit(f"centernet export: {error}")
    print(f"Exported {ckpt_path} to {path} ({args.format})")
    print("\n".join(signature))
