"""``centernet benchmark``: latency, images/s, FLOP rate and decoding share per backend and batch size.

The timing itself is :func:`centernet_lightning.deploy.benchmark_detector`'s.
"""

from __future__ import annotations

import argparse
import sys

from .predict import BACKEND_CHOICES

__all__ = ["benchmark_main"]


def _batch_sizes(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"batch sizes are comma-separated integers, got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"batch sizes must be >= 1, got {text!r}")
    return sizes


def benchmark_main(argv: list[str]) -> None:
    """``centernet benchmark``: latency, images/s, FLOP rate and decoding share per backend and batch size."""
    parser = argparse.ArgumentParser(prog="centernet benchmark", description=benchmark_main.__doc__)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--ckpt_path", "--ckpt-path", help="a CenterNet or FairMOT checkpoint")
    source.add_argument("--config", help="a fit config (or model section): its model with random weights")
    parser.add_argument(
        "--num-classes", type=int, default=None, help="with --config, when the config leaves it to the data (80)"
    )
    parser.add_argument(
        "--imgsz", type=int, default=None, help="square input side (default: the checkpoint's input_size, else 512)"
    )
    parser.add_argument("--batch", type=_batch_sizes, default=[1, 8], help="batch sizes, e.g. 1,8 (default)")
    parser.add_argument(
        "--device", choices=("cpu", "cuda"), default=None, help="default: cuda when available, else cpu"
    )
    parser.add_argument(
        "--backend",
        default=",".join(BACKEND_CHOICES),
        help=f"comma-separated (default: {','.join(BACKEND_CHOICES)})",
    )
    parser.add_argument("--half", action="store_true", help="float16 network (CUDA only)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed rounds after the first call (default 3)")
    parser.add_argument(
        "--iterations", type=int, default=20, help="timed rounds, one call of each backend (default 20)"
    )
    parser.add_argument("--max-det", type=int, default=None, help="K, detections per image (default: the model's)")
    parser.add_argument("--compile-mode", default=None, help="torch.compile mode, e.g. max-autotune (default: none)")
    args = parser.parse_args(argv)
    import torch
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from ..deploy.backends import parse_backends
    from ..deploy.benchmark import benchmark_detector, benchmark_table
    from ..inference.backends import resolve_device
    from ..tasks.loading import build_model, load_model

    try:
        device = resolve_device(args.device, args.half)
        backends = parse_backends(args.backend)
    except ValueError as error:
        parser.error(str(error))

    try:
        if args.ckpt_path:
            model = load_model(args.ckpt_path)
            imgsz, source_name = args.imgsz or model.inference_spec.input_size, args.ckpt_path
        else:  # random weights: nothing is downloaded
            model = build_model(args.config, args.num_classes, untrained=True, default_num_classes=80)
            imgsz, source_name = args.imgsz or 512, args.config
        detector = model.detector
        max_det = args.max_det or int(model.hparams.num_detections)
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
