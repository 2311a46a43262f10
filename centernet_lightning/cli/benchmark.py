"""``centernet benchmark``: latency, images/s, FLOP rate and decoding share per backend and batch size.

The timing itself is :func:`centernet_lightning.deploy.benchmark_detector`'s.
"""

from __future__ import annotations

import sys

from ..checks import MAX_INPUT_SIZE, MIN_INPUT_SIZE
from .predict import BACKEND_CHOICES, Bound, CommandParser, check_options

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
}


def benchmark_main(argv: list[str]) -> None:
    """``centernet benchmark``: latency, images/s, FLOP rate and decoding share per backend and batch size."""
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
        default=",".join(BACKEND_CHOICES),
        help=f"comma-separated (default: {','.join(BACKEND_CHOICES)})",
    )
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

    from ..deploy.backends import parse_backends
    from ..deploy.benchmark import benchmark_detector, benchmark_table
    from ..inference.backends import check_compile_mode, resolve_device
    from ..tasks.loading import build_untrained_model, load_model

    try:
        device = resolve_device(args.device, args.half)
        backends = parse_backends(args.backend)
        check_compile_mode(args.compile_mode)
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
        max_det = int(model.hparams.num_detections) if args.max_det is None else args.max_det
        dtype = torch.float16 if args.half else torch.float32
        console = Console()
        if not console.is_terminal:
            console.width = max(console.width, 150)  # a log file gets the whole table on one line per row
        columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn())
        with Progress(*columns, console=console, transient=True) as progress:
            rows = benchmark_detector(
                detector,
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
            )
    except (FileNotFoundError, ValueError, ImportError) as error:
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
