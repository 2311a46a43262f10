"""``centernet export``: a checkpoint as an ONNX, TorchScript, OpenVINO IR or TensorRT engine file, with the
decoding in the graph; ONNX and OpenVINO optionally quantised to int8 (``--int8 --calib SOURCE``).

See :mod:`centernet_lightning.deploy.export` for what the graph holds. The file keeps the
model's inference spec and predictor settings, so ``centernet predict --model FILE.onnx``, ``FILE.xml`` or
``FILE.engine`` (and ``centernet track`` for a FairMOT) need nothing else.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..checks import MAX_INPUT_SIZE, MIN_INPUT_SIZE
from .predict import (
    CALIBRATION_BOUNDS,
    Bound,
    CommandParser,
    add_calibration_arguments,
    calibration_of,
    check_options,
)

if TYPE_CHECKING:
    from ..models.inference_network import InferenceNetwork

__all__ = ["EXPORT_FORMATS", "export_main"]

# deploy.export.SUFFIXES's keys, written out so that parsing needs no torch (a test keeps them equal)
EXPORT_FORMATS = ("onnx", "torchscript", "openvino", "engine")
INT8_FORMATS = ("onnx", "openvino")
# deploy.export.MIN_OPSET: the lowest opset the exporter writes (a model with DCN needs 19)
MIN_OPSET = 17
EXPORT_BOUNDS = {
    "imgsz": Bound(int, MIN_INPUT_SIZE, MAX_INPUT_SIZE),
    "batch": Bound(int, 1),
    "max_det": Bound(int, 1),
    "opset": Bound(int, MIN_OPSET),
    "max_batch": Bound(int, 1),
    **CALIBRATION_BOUNDS,
}


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


def _openvino_signature(path: Path) -> list[str]:
    """``input/output name dtype [dims]`` lines read back from the written IR."""
    import openvino as ov

    model = ov.Core().read_model(str(path))

    def describe(value: Any) -> str:
        dims = ", ".join(str(dim.get_length()) if dim.is_static else "batch" for dim in value.get_partial_shape())
        return f"{value.get_any_name()} {value.get_element_type().to_dtype()} [{dims}]"

    return [f"  input  {describe(value)}" for value in model.inputs] + [
        f"  output {describe(value)}" for value in model.outputs
    ]


def _module_signature(module: InferenceNetwork, imgsz: int | Sequence[int]) -> list[str]:
    from ..models.inference_network import INPUT_NAME

    example = module.example_input(imgsz)
    input_shape = ", ".join(["batch", *map(str, example.shape[1:])])
    lines = [f"  input  {INPUT_NAME} {str(example.dtype).removeprefix('torch.')} [{input_shape}]"]
    for name, shape in module.output_shapes(imgsz, batch="batch").items():
        dtype = "int64" if name == "labels" else "float32"
        lines.append(f"  output {name} {dtype} [{', '.join(map(str, shape))}]")
    return lines


def export_main(argv: list[str]) -> None:
    """``centernet export``: a training checkpoint as an ONNX, TorchScript, OpenVINO IR or TensorRT engine file,
    decoding in the graph."""
    parser = CommandParser(prog="centernet export", description=export_main.__doc__)
    parser.add_argument("--ckpt_path", "--ckpt-path", required=True, help="a CenterNet or FairMOT checkpoint")
    parser.add_argument(
        "--format",
        choices=EXPORT_FORMATS,
        default="onnx",
        help="default: onnx; openvino: OpenVINO IR (.xml + .bin); engine: TensorRT fp16 engine (needs a CUDA GPU and "
        "the tensorrt package; it runs only with the TensorRT version and GPU model it was built on)",
    )
    parser.add_argument(
        "--output",
        default=None,
        help="file to write, never overwritten, ending in its format's suffix: .onnx, .torchscript (.pt and .ts too), "
        ".xml or .engine (default: the checkpoint's path with that suffix, _int8 added to the name with --int8; an "
        "OpenVINO IR is the .xml and a .bin beside it)",
    )
    parser.add_argument(
        "--imgsz",
        nargs="+",
        default=None,
        metavar="PX",
        help=f"input side, or height and width (multiples of 32 in {MIN_INPUT_SIZE}..{MAX_INPUT_SIZE}; default: the "
        "checkpoint's data input_size, else 512); centernet predict, track and benchmark letterbox to squares, so "
        "a height other than the width is for your own pipeline",
    )
    parser.add_argument("--batch", default=1, help="batch size of the graph, >= 1 (default 1)")
    parser.add_argument("--dynamic", action="store_true", help="a free batch size (TorchScript always has one)")
    parser.add_argument(
        "--max-batch",
        default=None,
        metavar="N",
        help="engine with --dynamic: the largest batch it takes, >= --batch (default 32)",
    )
    parser.add_argument("--no-decode", dest="decode", action="store_false", help="output the raw head maps")
    parser.add_argument(
        "--max-det", default=None, metavar="K", help="K, detections per image, >= 1 (default: the model's)"
    )
    parser.add_argument("--half", action="store_true", help="float16 network, for GPU runtimes")
    parser.add_argument("--raw-input", action="store_true", help="uint8 RGB [B, H, W, 3] input, normalised in graph")
    parser.add_argument("--opset", default=None, help="ONNX opset >= 17 (default 18; 19 with DCN)")
    parser.add_argument(
        "--int8",
        action="store_true",
        help="quantise to int8 (onnx: ONNX Runtime QDQ; openvino: NNCF), the heatmap head and decoding kept float32; "
        "needs --calib",
    )
    add_calibration_arguments(parser, "with --int8, the calibration images")
    parser.add_argument("--verbose", action="store_true", help="show the ONNX exporter's INFO messages too")
    args = parser.parse_args(argv)
    if args.imgsz is not None and len(args.imgsz) > 2:
        parser.error(f"--imgsz takes one side, or height and width, got {' '.join(args.imgsz)}")
    check_options(parser, args, EXPORT_BOUNDS)
    if args.int8 and args.format not in INT8_FORMATS:
        parser.error(f"--int8 quantises the {' and '.join(INT8_FORMATS)} formats, not {args.format}")
    if args.int8 and args.half:
        parser.error("--half and --int8 exclude each other: int8 keeps its float parts in float32")
    if args.int8 and args.calib is None:
        parser.error("--int8 needs calibration images: --calib data.yaml or --calib FOLDER")
    if not args.int8 and (args.calib is not None or args.calib_images is not None):
        parser.error("--calib and --calib-images go with --int8")
    if args.max_batch is not None and not (args.format == "engine" and args.dynamic):
        parser.error("--max-batch goes with --format engine --dynamic (the largest batch of the engine's profile)")
    from ..deploy.engine import export_engine
    from ..deploy.export import FORMAT_SUFFIXES, SUFFIXES, export_onnx, export_openvino, export_torchscript
    from ..models.inference_network import InferenceNetwork
    from ..tasks.loading import load_model

    ckpt_path = Path(args.ckpt_path)
    default_name = ckpt_path.with_name(f"{ckpt_path.stem}{'_int8' if args.int8 else ''}{SUFFIXES[args.format]}")
    output = Path(args.output) if args.output else default_name
    if output.suffix.lower() not in FORMAT_SUFFIXES[args.format]:
        parser.error(f"--output: {args.format} files end in {' or '.join(FORMAT_SUFFIXES[args.format])}; got {output}")
    try:
        calibration = calibration_of(args)  # None without --int8 (--calib goes with it, checked above)
        if output.exists():
            raise FileExistsError(f"{output} exists; choose another output path (nothing was written)")
        model = load_model(ckpt_path)
        imgsz = args.imgsz or model.inference_spec.input_size
        max_det = int(model.hparams.num_detections) if args.max_det is None else args.max_det
        options = dict(
            imgsz=imgsz,
            batch=args.batch,
            decode=args.decode,
            max_det=max_det,
            half=args.half,
            raw_input=args.raw_input,
            metadata={"checkpoint": ckpt_path.name},
        )
        if args.format in ("onnx", "openvino"):
            export, describe = (
                (export_onnx, _onnx_signature) if args.format == "onnx" else (export_openvino, _openvino_signature)
            )
            graph_options = dict(dynamic=args.dynamic, opset=args.opset, verbose=args.verbose, calibration=calibration)
            path = export(model, output, **graph_options, **options)
            signature = describe(path)
        elif args.format == "engine":
            options["half"] = True  # TensorRT's precision: an fp16 engine, float32 input and decoding
            largest = {"max_batch": args.max_batch} if args.max_batch is not None else {}
            path = export_engine(model, output, dynamic=args.dynamic, verbose=args.verbose, **largest, **options)
            signature = _module_signature(InferenceNetwork(model.detector, max_det, args.decode, args.raw_input), imgsz)
        else:
            path = export_torchscript(model, output, **options)
            # Shapes only: the export's own copy is gone, and the checkpoint's network needs no copy.
            signature = _module_signature(InferenceNetwork(model.detector, max_det, args.decode, args.raw_input), imgsz)
    # OSError: missing or existing files, a full disk; RuntimeError: a quantiser or TensorRT that could not finish
    except (OSError, ValueError, ImportError, RuntimeError) as error:
        sys.exit(f"centernet export: {error}")
    print(f"Exported {ckpt_path} to {path} ({args.format}{', int8' if args.int8 else ''})")
    print("\n".join(signature))
    if isinstance(imgsz, Sequence) and len(set(map(int, imgsz))) > 1:
        print(
            f"Note: a {imgsz[0]}x{imgsz[1]} input is for your own pipeline: centernet predict, track and benchmark "
            "letterbox images to a square and run square exports only"
        )
