"""Inference speed of a CenterNet on each runtime: latency, throughput, FLOP rate and decoding share.

Every backend runs the same end-to-end module, the network followed by the decoding of
:class:`~centernet_lightning.deploy.ExportModule` (top-K peaks and boxes, no NMS):

=================  ==========================================================================
backend            what runs
=================  ==========================================================================
``eager``          the module as it is (NCHW)
``channels_last``  the module and the input in ``torch.channels_last`` (NHWC) memory format
``compile``        ``channels_last`` + ``torch.compile`` (Inductor, ``dynamic=False``) with
                   Inductor's ``freezing`` on: the weights become constants, so BatchNorm folds
                   into the convolutions
``onnxruntime``    the ONNX graph of :func:`~centernet_lightning.deploy.export_onnx` (decoding
                   in the graph, one file per batch size) in an ONNX Runtime session (the one
                   :class:`OnnxDetector` holds), with as many threads as PyTorch on the CPU
=================  ==========================================================================

All of it runs under ``torch.inference_mode()`` (freezing needs inference). A row's latency is
the wall time of one end-to-end call on a fixed batch of random images: after one untimed call
each (which compiles or initialises) and ``warmup`` untimed rounds, ``iterations`` timed rounds
run every backend once in turn, so that the load of a shared machine falls on all of them alike;
p50 and p90 over the rounds. On CUDA every call is bracketed by ``torch.cuda.synchronize()``;
ONNX Runtime's time includes its copies from and to host memory: a session takes and returns
numpy arrays.

The decoding share times :func:`~centernet_lightning.models.detector.decode_outputs` alone (eager
PyTorch, as the ``eager`` and ``channels_last`` backends run it) on the raw head maps of the same
batch in the backend's memory format, and divides its p50 by the end-to-end p50. For ``compile``
and ``onnxruntime`` the decoding inside the timed call is Inductor's or ONNX Runtime's own, so
the share there tells what eager decoding would cost beside that network.

GFLOPs per image are :func:`~centernet_lightning.models.model_info`'s count (FlopCounterMode, 2
FLOPs per multiply-accumulate, deformable convolutions by hand); the decoding adds none. The
achieved rate, GFLOPs x images/s, is given as a share of a large matmul's rate measured on the
same device in the same run (:func:`measure_matmul_peak`), a practical ceiling for convolutions.
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import logging
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from torch import Tensor, nn

from ..models.detector import CenterNetDetector, Outputs, decode_outputs
from ..models.info import model_info
from .export import ExportModule, _detector_of, build_export_module

__all__ = [
    "BACKENDS",
    "BenchmarkRow",
    "benchmark_detector",
    "benchmark_main",
    "benchmark_table",
    "measure_matmul_peak",
    "parse_backends",
]

log = logging.getLogger(__name__)

BACKENDS = ("eager", "channels_last", "compile", "onnxruntime")
MATMUL_SIZE = {"cpu": 2048, "cuda": 8192}  # square side: large enough to reach the kernel's plateau
ORT_PROVIDERS = {"cpu": "CPUExecutionProvider", "cuda": "CUDAExecutionProvider"}


@dataclass(frozen=True)
class BenchmarkRow:
    """One backend at one batch size. Times in milliseconds per batch; shares are fractions (0.05 = 5 %).

    A backend that could not run has ``error`` (the reason) and None for every measured field.
    """

    backend: str
    batch: int
    gflops: float  # per image, network only (the decoding has no multiply-accumulates)
    matmul_peak: float | None = None  # GFLOP/s of the matmul that peak_share divides by
    p50_ms: float | None = None  # end-to-end latency of one batch: network + decoding
    p90_ms: float | None = None
    images_per_s: float | None = None  # batch / p50
    gflops_per_s: float | None = None  # achieved: gflops x images_per_s
    peak_share: float | None = None  # gflops_per_s / the matmul peak
    decode_ms: float | None = None  # p50 of decode_outputs alone on this batch's raw maps
    decode_share: float | None = None  # decode_ms / p50_ms
    speedup: float | None = None  # the eager p50 at this batch size / p50 (None without an eager row)
    error: str | None = None


def parse_backends(names: str | Sequence[str]) -> tuple[str, ...]:
    """Backend names from a comma-separated string or a list; ValueError naming the valid ones."""
    if isinstance(names, str):
        names = names.split(",")
    backends = tuple(dict.fromkeys(name.strip() for name in names if name.strip()))  # ordered, no repeats
    unknown = [name for name in backends if name not in BACKENDS]
    if unknown or not backends:
        raise ValueError(f"Unknown backend(s) {unknown or list(names)}; valid names: {', '.join(BACKENDS)}")
    return backends


def _synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _MatmulProbe:
    """A ``size`` x ``size`` matmul on ``device`` whose rate can be sampled between other work."""

    def __init__(self, device: torch.device, dtype: torch.dtype, size: int | None = None) -> None:
        self.device = device
        size = size or MATMUL_SIZE.get(device.type, 2048)
        generator = torch.Generator().manual_seed(0)
        self.left = torch.randn(size, size, generator=generator).to(device, dtype)
        self.right = torch.randn(size, size, generator=generator).to(device, dtype)
        self.flop = 2 * size**3
        torch.mm(self.left, self.right)  # warm-up: thread pool, cuBLAS handle and kernel choice

    def gflops_per_s(self) -> float:
        """The rate of one matmul, GFLOP/s."""
        return self.flop / _time_ms(partial(torch.mm, self.left, self.right), self.device) * 1e3 / 1e9


@torch.inference_mode()
def measure_matmul_peak(
    device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32, size: int | None = None, repeats: int = 5
) -> float:
    """GFLOP/s of a ``size`` x ``size`` matmul (2 * size**3 FLOPs) on ``device``: the best of ``repeats``.

    ``size`` defaults to 2048 on CPU and 8192 on CUDA. On CUDA, float32 runs on TF32 tensor cores
    when ``torch.backends.cuda.matmul.allow_tf32`` is on (``centernet`` sets matmul precision "high").
    """
    probe = _MatmulProbe(torch.device(device), dtype, size)
    return max(probe.gflops_per_s() for _ in range(repeats))


def _time_ms(call: Callable[[], Any], device: torch.device) -> float:
    """Wall time of ``call()`` in milliseconds; on CUDA from an idle device to the end of its work."""
    _synchronize(device)  # nothing queued before may land in this call's time
    start = time.perf_counter()
    call()
    _synchronize(device)
    return (time.perf_counter() - start) * 1000


# --------------------------------------------------------------------------- backends
@dataclass
class _Backend:
    """A backend ready to run batches.

    ``module``: the eager module in the backend's memory format, whose detector gives the raw maps
    of the decoding timing; ``prepare(images)``: the zero-argument end-to-end call on that batch.
    """

    module: ExportModule
    memory_format: torch.memory_format
    prepare: Callable[[Tensor], Callable[[], Any]]
    context: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext


class _Setup(NamedTuple):
    """What every backend builder receives."""

    module: ExportModule  # network + decoding on the device (float16 network with half)
    detector: CenterNetDetector  # the caller's network, untouched
    device: torch.device
    workdir: Path  # a temporary folder for files (ONNX graphs)
    compile_mode: str | None


def _eager(setup: _Setup) -> _Backend:
    module = setup.module
    return _Backend(module, torch.contiguous_format, lambda images: partial(module, images))


def _channels_last(setup: _Setup) -> _Backend:
    module = copy.deepcopy(setup.module).to(memory_format=torch.channels_last)
    return _Backend(module, torch.channels_last, lambda images: partial(module, images))


def _compile(setup: _Setup) -> _Backend:
    module = copy.deepcopy(setup.module).to(memory_format=torch.channels_last)
    # dynamic=False: each batch size gets its own static-shape kernels (PyTorch would otherwise
    # switch to dynamic shapes at the second size, which are slower).
    compiled = torch.compile(module, dynamic=False, mode=setup.compile_mode)
    # Freezing is read when the first call compiles, so it has to be on around the calls.
    return _Backend(module, torch.channels_last, lambda images: partial(compiled, images), _inductor_freezing)


@contextlib.contextmanager
def _inductor_freezing() -> Iterator[None]:
    import torch._inductor.config

    with torch._inductor.config.patch(freezing=True):
        yield


def _onnxruntime(setup: _Setup) -> _Backend:
    try:
        import onnxruntime
    except ImportError:
        raise RuntimeError("onnxruntime is not installed (pip install centernet-lightning[export])") from None
    from .export import INPUT_NAME, export_onnx

    provider = ORT_PROVIDERS[setup.device.type]
    if provider not in onnxruntime.get_available_providers():
        raise RuntimeError(
            f"ONNX Runtime has no {provider} here (available: {', '.join(onnxruntime.get_available_providers())})"
        )
    # The exporter traces a float32 copy on the CPU (its example input is a CPU tensor).
    detector = copy.deepcopy(setup.detector).to("cpu", torch.float32)
    options = onnxruntime.SessionOptions()
    if setup.device.type == "cpu":  # as many threads as PyTorch's backends get, for a fair comparison
        options.intra_op_num_threads = torch.get_num_threads()

    def prepare(images: Tensor) -> Callable[[], Any]:
        batch, _, height, width = images.shape
        path = export_onnx(
            detector,
            setup.workdir / f"batch{batch}.onnx",
            imgsz=(height, width),
            batch=batch,
            max_det=setup.module.max_det,
            half=setup.module.half,
        )
        session = onnxruntime.InferenceSession(str(path), options, providers=[provider])
        return partial(session.run, None, {INPUT_NAME: images.cpu().numpy()})

    return _Backend(setup.module, torch.contiguous_format, prepare)


BACKEND_BUILDERS: dict[str, Callable[[_Setup], _Backend]] = {
    "eager": _eager,
    "channels_last": _channels_last,
    "compile": _compile,
    "onnxruntime": _onnxruntime,
}


# --------------------------------------------------------------------------- measuring
def _checked_device(device: str | torch.device, half: bool) -> torch.device:
    """``device`` as a torch.device; ValueError unless it is the CPU or a visible CUDA device, and
    for ``half`` on the CPU."""
    device = torch.device(device)
    if device.type not in ("cpu", "cuda"):
        raise ValueError(f"device must be cpu or cuda, got {device}")
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("device cuda: PyTorch sees no CUDA device here")
    if half and device.type != "cuda":
        raise ValueError("half (float16) needs device cuda: CPU float16 convolutions are slower than float32")
    return device


def _describe(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return f"{type(error).__name__}: {lines[0]}" if lines else type(error).__name__


@torch.inference_mode()
def benchmark_detector(
    model: nn.Module,
    imgsz: int = 512,
    batch_sizes: Sequence[int] = (1, 8),
    backends: str | Sequence[str] = BACKENDS,
    device: str | torch.device = "cpu",
    half: bool = False,
    warmup: int = 3,
    iterations: int = 20,
    max_det: int = 100,
    matmul_peak: float | None = None,
    compile_mode: str | None = None,
    progress: Progress | None = None,
) -> list[BenchmarkRow]:
    """Time ``model`` end to end (network + decoding) and its decoding alone, per backend and batch size.

    The backends take turns: each round runs every backend once on the same batch, each call
    followed by the decoding alone on that batch's raw maps, and (when ``matmul_peak`` is None)
    one matmul of the peak measurement. A slow spell of a shared machine slows them all alike, so
    their ratios hold.

    Args:
        model: a CenterNet or its CenterNetDetector; it is copied, never changed.
        imgsz: square input side in pixels, a multiple of the size divisor (32).
        batch_sizes: images per call.
        backends: names from :data:`BACKENDS` (see the module docstring), a list or "a,b".
        device: ``cpu`` or ``cuda``.
        half: float16 network (input and decoding stay float32, as ``export --half``); CUDA only.
        warmup, iterations: untimed and timed rounds per batch size (after one untimed first call).
        max_det: K, the detections per image the decoding keeps.
        matmul_peak: GFLOP/s that ``peak_share`` divides by; None: the best rate of a large matmul
            (:func:`measure_matmul_peak`; float16 with ``half``) sampled before and during the run.
        compile_mode: ``torch.compile``'s ``mode`` for the ``compile`` backend (None: the default).
        progress: a Rich progress display to report on; None: none.

    Returns:
        One :class:`BenchmarkRow` per backend and batch size, ordered by backend (as given), then
        batch size. A backend that cannot run (ONNX Runtime missing, compilation failing) gives
        rows with ``error`` instead of ending the run.
    """
    backends = parse_backends(backends)
    batch_sizes = list(dict.fromkeys(int(batch) for batch in batch_sizes))
    device = _checked_device(device, half)
    if warmup < 0 or iterations < 1 or not batch_sizes or min(batch_sizes) < 1:
        raise ValueError(
            f"Need warmup >= 0, iterations >= 1 and batch sizes >= 1; got {warmup}, {iterations}, {list(batch_sizes)}"
        )
    detector = _detector_of(model)
    module = build_export_module(detector, max_det=max_det, half=half).to(device)
    module.input_size(imgsz)  # ValueError for a size the network cannot take, before any work
    gflops = model_info(detector, imgsz)[-1]["gflops"]
    peak_samples = [matmul_peak] if matmul_peak else []
    probe = None
    if matmul_peak is None:
        probe = _MatmulProbe(device, torch.float16 if half else torch.float32)
        peak_samples += [probe.gflops_per_s() for _ in range(3)]

    task = None
    steps_per_batch = len(backends) * (1 + warmup + iterations)
    if progress is not None:
        task = progress.add_task("benchmark", total=len(batch_sizes) * steps_per_batch)

    def report(description: str | None = None, steps: int = 1) -> None:
        if progress is not None:
            progress.update(task, advance=steps, **({"description": description} if description else {}))

    errors: dict[tuple[str, int], str] = {}  # (backend, batch) -> why it has no figures
    latencies: dict[tuple[str, int], list[float]] = {}  # end to end, ms
    decode_latencies: dict[tuple[str, int], list[float]] = {}
    generator = torch.Generator().manual_seed(0)
    with tempfile.TemporaryDirectory(prefix="centernet-benchmark-") as workdir:
        built: dict[str, _Backend] = {}
        for name in backends:
            report(f"{name}: preparing", 0)
            try:
                built[name] = BACKEND_BUILDERS[name](_Setup(module, detector, device, Path(workdir), compile_mode))
            except Exception as error:  # any failure is this backend's result, not the run's end
                log.debug("Backend %s failed", name, exc_info=True)
                errors.update({(name, batch): _describe(error) for batch in batch_sizes})
        for batch_index, batch in enumerate(batch_sizes):
            images = torch.randn(batch, 3, imgsz, imgsz, generator=generator).to(device)
            calls: dict[str, Callable[[], Any]] = {}
            decodes: dict[str, Callable[[], Any]] = {}
            raw_outputs: dict[str, Outputs] = {}  # memory format -> the eager network's maps of this batch
            for name, backend in built.items():
                report(f"{name} batch {batch}: {'compiling' if name == 'compile' else 'first call'}")
                network_input = images.contiguous(memory_format=backend.memory_format)
                try:
                    with backend.context():
                        call = backend.prepare(network_input)
                        call()  # compiles, or initialises the session
                except Exception as error:
                    log.debug("Backend %s failed at batch %d", name, batch, exc_info=True)
                    errors[name, batch] = _describe(error)
                    continue
                calls[name] = call
                layout = str(backend.memory_format)  # every backend's module holds the same weights
                if layout not in raw_outputs:
                    raw_outputs[layout] = backend.module.detector(
                        network_input.to(torch.float16) if half else network_input
                    )
                decodes[name] = partial(
                    decode_outputs,
                    raw_outputs[layout],
                    module.detector.stride,
                    max_det,
                    score_threshold=0.0,
                    nms_iou=None,
                )
                latencies[name, batch], decode_latencies[name, batch] = [], []
            for round_index in range(warmup + iterations):
                timed = round_index >= warmup
                report(f"batch {batch}: {'timing' if timed else 'warm-up'} round {round_index + 1}", 0)
                for name in list(calls):
                    try:
                        with built[name].context():
                            milliseconds = _time_ms(calls[name], device)
                    except Exception as error:
                        errors[name, batch] = _describe(error)
                        del calls[name]
                        continue
                    decode_milliseconds = _time_ms(decodes[name], device)
                    if timed:
                        latencies[name, batch].append(milliseconds)
                        decode_latencies[name, batch].append(decode_milliseconds)
                    report()
                if probe is not None:
                    peak_samples.append(probe.gflops_per_s())
            if progress is not None:  # failed backends skipped their steps
                progress.update(task, completed=(batch_index + 1) * steps_per_batch)
    peak = max(peak_samples)
    rows = {
        key: _row(*key, gflops, latencies[key], decode_latencies[key], peak) for key in latencies if key not in errors
    }
    eager = {batch: row.p50_ms for (name, batch), row in rows.items() if name == "eager"}
    ordered = []
    for name in backends:
        for batch in batch_sizes:
            if (name, batch) in errors:
                ordered.append(BenchmarkRow(name, batch, gflops, matmul_peak=peak, error=errors[name, batch]))
            else:
                row = rows[name, batch]
                ordered.append(replace(row, speedup=eager[batch] / row.p50_ms) if batch in eager else row)
    return ordered


def _row(
    backend: str, batch: int, gflops: float, latencies: list[float], decode_latencies: list[float], peak: float
) -> BenchmarkRow:
    p50, p90 = (float(value) for value in np.percentile(latencies, [50, 90]))
    decode_ms = float(np.percentile(decode_latencies, 50))
    images_per_s = batch / (p50 / 1000)
    return BenchmarkRow(
        backend,
        batch,
        gflops,
        matmul_peak=peak,
        p50_ms=p50,
        p90_ms=p90,
        images_per_s=images_per_s,
        gflops_per_s=gflops * images_per_s,
        peak_share=gflops * images_per_s / peak,
        decode_ms=decode_ms,
        decode_share=decode_ms / p50,
    )


# --------------------------------------------------------------------------- presentation
COLUMNS = (
    "backend",
    "batch",
    "p50 ms",
    "p90 ms",
    "images/s",
    "vs eager",
    "GFLOPs/img",
    "GFLOP/s",
    "% of peak",
    "decode ms",
    "decode %",
)


def benchmark_table(rows: Sequence[BenchmarkRow], title: str | None = None) -> Table:
    """A Rich table of :func:`benchmark_detector` rows (columns :data:`COLUMNS`); failed rows give their reason."""
    table = Table(*COLUMNS, title=title)
    for column in table.columns[1:]:
        column.justify = "right"
    for row in rows:
        if row.error:
            table.add_row(row.backend, str(row.batch), f"[red]{row.error}[/red]", *[""] * (len(COLUMNS) - 3))
            continue
        table.add_row(
            row.backend,
            str(row.batch),
            f"{row.p50_ms:.1f}",
            f"{row.p90_ms:.1f}",
            f"{row.images_per_s:.1f}",
            f"{row.speedup:.2f}x" if row.speedup else "",
            f"{row.gflops:.2f}",
            f"{row.gflops_per_s:.1f}",
            f"{100 * row.peak_share:.1f}",
            f"{row.decode_ms:.2f}",
            f"{100 * row.decode_share:.1f}",
        )
    return table


def _batch_sizes(text: str) -> list[int]:
    try:
        sizes = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"batch sizes are comma-separated integers, got {text!r}") from None
    if not sizes or min(sizes) < 1:
        raise argparse.ArgumentTypeError(f"batch sizes must be >= 1, got {text!r}")
    return sizes


def _backend_names(text: str) -> tuple[str, ...]:
    try:
        return parse_backends(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def benchmark_main(argv: list[str]) -> None:
    """``centernet benchmark``: latency, images/s, FLOP rate and decoding share per backend and batch size."""
    parser = argparse.ArgumentParser(prog="centernet benchmark", description=benchmark_main.__doc__)
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument("--ckpt_path", "--ckpt-path", help="a checkpoint written by training")
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
        "--backend", type=_backend_names, default=BACKENDS, help=f"comma-separated (default: {','.join(BACKENDS)})"
    )
    parser.add_argument("--half", action="store_true", help="float16 network (CUDA only)")
    parser.add_argument("--warmup", type=int, default=3, help="untimed rounds after the first call (default 3)")
    parser.add_argument(
        "--iterations", type=int, default=20, help="timed rounds, one call of each backend (default 20)"
    )
    parser.add_argument("--max-det", type=int, default=None, help="K, detections per image (default: the model's)")
    parser.add_argument("--compile-mode", default=None, help="torch.compile mode, e.g. max-autotune (default: none)")
    args = parser.parse_args(argv)
    try:
        device = _checked_device(args.device or ("cuda" if torch.cuda.is_available() else "cpu"), args.half)
    except ValueError as error:
        parser.error(str(error))

    try:
        if args.ckpt_path:
            from .export import load_checkpoint_model

            loaded = load_checkpoint_model(args.ckpt_path)
            detector, hparams, imgsz = loaded.detector, loaded.hparams, args.imgsz or loaded.spec.input_size
            source_name = args.ckpt_path
        else:
            from ..cli import _model_from_config, _model_section

            num_classes = args.num_classes or _model_section(args.config).get("num_classes") or 80
            model = _model_from_config(args.config, num_classes)  # random backbone: nothing is downloaded
            detector, hparams, imgsz, source_name = model.detector, dict(model.hparams), args.imgsz or 512, args.config
        max_det = args.max_det or int(hparams.get("num_detections") or 100)
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
                args.backend,
                device,
                args.half,
                args.warmup,
                args.iterations,
                max_det,
                compile_mode=args.compile_mode,
                progress=progress,
            )
    except (FileNotFoundError, ValueError) as error:
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
