"""``centernet benchmark``: latency, images/s, FLOP rate and decoding share per backend and batch size, and
with ``--data CONFIG`` the AP50 / AP of each backend on that data's validation split.

The timing itself is :func:`centernet_lightning.deploy.benchmark_detector`'s, the scoring
:func:`centernet_lightning.deploy.accuracy.evaluate_backend`'s.
"""

from __future__ import annotations

import sys

from ..checks import MAX_INPUT_SIZE, MIN_INPUT_SIZE
from .predict import CALIBRATION_BOUNDS, Bound, CommandParser, add_calibration_arguments, calibration_of, check_options

__all__ = ["benchmark_main"]


def _batch_sizes(text: str) -> list[str]:
    """``1,8``: the comma-separated batch sizes, checked by :func:`check_options` as ``--batch``."""
    return [part.strip() for part in text.split(",") if part.strip()] or [text]


BENCHMARK_BOUNDS = {
    "num_classes": Bound(int, 1),
    "imgsz": Bound(int, MIN_INPUT_SIZE, MAX_INPUT_SIZE),
    "batch": Bound(int, 1),
    "warmup": Bound(int, 0),
    "iterations": Bound(int, 1),
    "max_det": Bound(int, 1),
    **CALIBRATION_BOUNDS,
}


def benchmark_main(argv: list[str]) -> None:
    """``centernet benchmark``: latency, images/s, FLOP rate and decoding share per backend and batch size; with
    --data, AP50 and AP per backend."""
    parser = CommandParser(prog="centernet benchmark", description=benchmark_main.__doc__)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--ckpt_path", "--ckpt-path", help="a CenterNet or FairMOT checkpoint")
    source.add_argument("--config", help="a fit config (or model section): its model with random weights")
    parser.add_argument("--num-classes", default=None, help="with --config, when the config leaves it to the data (80)")
    parser.add_argument(
        "--imgsz",
        default=None,
        help=f"square input side, a multiple of 32 in {MIN_INPUT_SIZE}..{MAX_INPUT_SIZE} (default: the checkpoint's "
        "input_size, else 512)",
    )
    parser.add_argument("--batch", type=_batch_sizes, default=[1, 8], help="batch sizes >= 1, e.g. 1,8 (default)")
    parser.add_argument(
        "--device", choices=("cpu", "cuda"), default=None, help="default: cuda when available, else cpu"
    )
    parser.add_argument(
        "--backend",
        default=None,
        help="comma-separated names (default: every backend that runs on the device: on the CPU eager, channels_last, "
        "compile, onnxruntime, openvino, openvino_bf16, and onnxruntime_int8, openvino_int8 with --calib; on CUDA "
        "eager, channels_last, compile, onnxruntime, tensorrt)",
    )
    parser.add_argument(
        "--data",
        default=None,
        metavar="CONFIG",
        help="a data config (.yaml, e.g. the fit config): also score each backend's AP50 and AP on its validation "
        "split",
    )
    add_calibration_arguments(parser, "for the int8 backends, the calibration images")
    parser.add_argument("--half", action="store_true", help="float16 network (CUDA only)")
    parser.add_argument("--warmup", default=3, help="untimed rounds after the first call, >= 0 (default 3)")
    parser.add_argument("--iterations", default=20, help="timed rounds, one call of each backend, >= 1 (default 20)")
    parser.add_argument(
        "--max-det", default=None, metavar="K", help="K, detections per image, >= 1 (default: the model's)"
    )
    parser.add_argument("--compile-mode", default=None, help="torch.compile mode, e.g. max-autotune (default: none)")
    args = parser.parse_args(argv)
    check_options(parser, args, BENCHMARK_BOUNDS)
    import torch
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..deploy.accuracy import ValidationSplit
    from ..deploy.backends import default_backends, parse_backends
    from ..deploy.benchmark import benchmark_detector, benchmark_table
    from ..inference.backends import INT8_BACKENDS, check_compile_mode, resolve_device
    from ..tasks.loading import build_untrained_model, load_model

    try:
        device = resolve_device(args.device, args.half)
        calibration = calibration_of(args)
        backends = parse_backends(args.backend or default_backends(device, calibrated=calibration is not None))
        check_compile_mode(args.compile_mode)
        int8 = [name for name in backends if name in INT8_BACKENDS]
        if calibration is not None and not int8:
            raise ValueError(f"--calib calibrates the int8 backends ({', '.join(INT8_BACKENDS)}); none is benchmarked")
        if calibration is None and int8:
            needs = "needs" if len(int8) == 1 else "need"
            raise ValueError(
                f"{' and '.join(int8)} {needs} calibration images: give --calib data.yaml or --calib FOLDER"
            )
        if "tensorrt" in backends and device.type != "cuda":  # an option error, not a row's runtime failure
            raise ValueError(f"the tensorrt backend runs on a CUDA GPU, not {device}")
    except ValueError as error:
        parser.error(str(error).replace("compile_mode", "--compile-mode", 1))

    try:
        if args.ckpt_path:
            model = load_model(args.ckpt_path)
            imgsz, source_name = args.imgsz or model.inference_spec.input_size, args.ckpt_path
        else:  # random weights: nothing is downloaded
            model = build_untrained_model(args.config, args.num_classes)
            imgsz, source_name = args.imgsz or 512, args.config
        detector = model.detector
        data = ValidationSplit(args.data, imgsz) if args.data else None
        if data is not None:
            data.check_classes(detector.num_classes)  # before the timing
        max_det = int(model.hparams.num_detections) if args.max_det is None else args.max_det
        dtype = torch.float16 if args.half else torch.float32
        console = Console()
        if not console.is_terminal:
            console.width = max(console.width, 150)  # a log file gets the whole table on one line per row
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=True) as progress:
            rows = benchmark_detector(
                model,
                imgsz,
                args.batch,
                backends,
                device,
                args.half,
                args.warmup,
                args.iterations,
                max_det,
                compile_mode=args.compile_mode,
                progress=progress,
                calibration=calibration,
                data=data,
            )
    except (ValueError, OSError, TypeError, ImportError, RuntimeError) as error:
        sys.exit(f"centernet benchmark: {error}")
    if device.type == "cpu":
        threads = torch.get_num_threads()
        machine = f"cpu ({threads} thread{'s' if threads > 1 else ''})"
    else:
        machine = f"{device} ({torch.cuda.get_device_name(device)})"
    console.print(
        f"{source_name}: {detector.num_classes} classes, {imgsz}x{imgsz}, {machine}, "
        f"{str(dtype).removeprefix('torch.')}; matmul peak {rows[0].matmul_peak:.0f} GFLOP/s",
        soft_wrap=True,
    )
    console.print(benchmark_table(rows))
