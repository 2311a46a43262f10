"""Inference speed of a CenterNet on each backend: latency, throughput, FLOP rate and decoding share.

Every backend is built by :func:`~centernet_lightning.deploy.build_backend`, as ``centernet
predict`` builds it, and runs the network followed by the decoding of
:class:`~centernet_lightning.models.InferenceNetwork` (top-K peaks and boxes, no NMS):

=================  ==========================================================================
backend            what runs
=================  ==========================================================================
``eager``          the module as it is (NCHW)
``channels_last``  the module and the input in ``torch.channels_last`` (NHWC) memory format
``compile``        ``channels_last`` + ``torch.compile`` (Inductor, ``dynamic=False``) with
                   Inductor's ``freezing`` on: the weights become constants, so BatchNorm folds
                   into the convolutions
``onnxruntime``    the ONNX graph of :func:`~centernet_lightning.deploy.export_onnx` (decoding
                   in the graph, a free batch size) in an ONNX Runtime session, with as many
                   threads as PyTorch on the CPU
``openvino``       that ONNX graph converted to an OpenVINO IR and compiled for the CPU with
                   as many threads as PyTorch, inference precision f32
``openvino_bf16``  the same in bfloat16 (CPUs with AMX / AVX-512 BF16)
``onnxruntime_int8``, ``openvino_int8``
                   those graphs quantised to int8 on the calibration images (``calibration``)
``tensorrt``       an fp16 TensorRT engine of that ONNX graph (CUDA)
=================  ==========================================================================

With ``data`` (a :class:`~centernet_lightning.deploy.accuracy.ValidationSplit`), every backend
that ran is also scored on that validation split after the timing (``ap50``, ``ap``): the
accuracy a format costs, beside its speed.

All of it runs under ``torch.inference_mode()`` (freezing needs inference). A row's latency is
the wall time of one end-to-end call on a fixed batch of random images: after one untimed call
each (which compiles or initialises) and ``warmup`` untimed rounds, ``iterations`` timed rounds
run every backend once in turn, so that the load of a shared machine falls on all of them alike;
p50 and p90 over the rounds. On CUDA every call is bracketed by ``torch.cuda.synchronize()``;
ONNX Runtime's and OpenVINO's times include their copies from and to host memory: they take
and return numpy arrays.

The decoding share times :func:`~centernet_lightning.models.decode_outputs` alone (eager
PyTorch, as the ``eager`` and ``channels_last`` backends run it) on the raw head maps of the same
batch in the backend's memory format, and divides its p50 by the end-to-end p50. For ``compile``,
``onnxruntime`` and ``openvino`` the decoding inside the timed call is Inductor's or ONNX Runtime's own, so
the share there tells what eager decoding would cost beside that network.

GFLOPs per image are :func:`~centernet_lightning.models.model_info`'s count (FlopCounterMode, 2
FLOPs per multiply-accumulate, deformable convolutions by hand); the decoding adds none. The
achieved rate, GFLOPs x images/s, is given as a share of a large matmul's rate measured on the
same device in the same run (:func:`measure_matmul_peak`), a practical ceiling for convolutions.
"""

from __future__ import annotations

import copy
import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from functools import partial
from typing import Any

import numpy as np
import torch
from rich.progress import Progress
from rich.table import Table
from torch import nn

from ..checks import MAX_INPUT_SIZE, MIN_INPUT_SIZE, check_int_min, check_int_range, check_memory, check_range
from ..inference.backends import BACKENDS, NETWORK_BACKENDS, NetworkBackend, check_compile_mode, resolve_device
from ..inference.predictor import NETWORK_BYTES_PER_PIXEL, Backend
from ..models.detector import Outputs, decode_outputs
from ..models.info import model_info
from .accuracy import ValidationSplit, evaluate_backend, spec_and_settings
from .backends import build_backend, parse_backends
from .export import _detector_of, build_inference_network
from .quantize import Calibration

__all__ = ["BenchmarkRow", "COLUMNS", "benchmark_detector", "benchmark_table", "measure_matmul_peak"]

log = logging.getLogger(__name__)

MATMUL_SIZE = {"cpu": 2048, "cuda": 8192}  # square side: large enough to reach the kernel's plateau


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
    peak_share: float | None = None  # gflops_per_s / the matmul peak; None where the arithmetic differs
    decode_ms: float | None = None  # p50 of decode_outputs alone on this batch's raw maps
    decode_share: float | None = None  # decode_ms / p50_ms
    speedup: float | None = None  # the eager p50 at this batch size / p50 (None without an eager row)
    ap50: float | None = None  # COCO box AP at IoU 0.5 on the benchmark's validation data (None without)
    ap: float | None = None  # COCO box AP, IoU 0.5:0.95
    error: str | None = None


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


# --------------------------------------------------------------------------- measuring
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
    calibration: Calibration | None = None,
    data: ValidationSplit | None = None,
) -> list[BenchmarkRow]:
    """Time ``model`` end to end (network + decoding) and its decoding alone, per backend and batch size.

    The backends take turns: each round runs every backend once on the same batch, each call
    followed by the decoding alone on that batch's raw maps, and (when ``matmul_peak`` is None)
    one matmul of the peak measurement. A slow spell of a shared machine slows them all alike, so
    their ratios hold.

    Args:
        model: a CenterNet or its CenterNetDetector; it is copied, never changed.
        imgsz: square input side in pixels, a multiple of the size divisor (32), at most 8192.
        batch_sizes: images per call, each >= 1.
        backends: names from :data:`BACKENDS` (see the module docstring), a list or "a,b".
        device: ``cpu`` or ``cuda``.
        half: float16 network (input and decoding stay float32, as ``export --half``); CUDA only.
        warmup, iterations: untimed and timed rounds per batch size (after one untimed first call).
        max_det: K, the detections per image the decoding keeps.
        matmul_peak: GFLOP/s that ``peak_share`` divides by; None: the best rate of a large matmul
            (:func:`measure_matmul_peak`; float16 with ``half``) sampled before and during the run.
        compile_mode: ``torch.compile``'s ``mode`` for the ``compile`` backend (None: the default).
        progress: a Rich progress display to report on; None: none.
        calibration: the images the int8 backends calibrate on (they fail without, as a row's error).
        data: score every backend that ran on this validation split (``ap50``, ``ap``); the model's
            inference spec, score threshold and NMS (of a CenterNet; defaults for a bare detector)
            apply, at ``imgsz``.

    Returns:
        One :class:`BenchmarkRow` per backend and batch size, ordered by backend (as given), then
        batch size. A backend that cannot run (ONNX Runtime missing, compilation failing) gives
        rows with ``error`` instead of ending the run.
    """
    backends = parse_backends(backends)
    if isinstance(batch_sizes, (str, bytes)) or not isinstance(batch_sizes, Sequence) or not batch_sizes:
        raise ValueError(f"batch_sizes must be a non-empty list of integers >= 1, got {batch_sizes!r}")
    batch_sizes = list(dict.fromkeys(check_int_min("batch size", batch, 1) for batch in batch_sizes))
    device = resolve_device(device, half)
    check_int_range("imgsz", imgsz, MIN_INPUT_SIZE, MAX_INPUT_SIZE)
    check_int_min("warmup", warmup, 0)
    check_int_min("iterations", iterations, 1)
    check_int_min("max_det", max_det, 1)
    if matmul_peak is not None:
        check_range("matmul_peak", matmul_peak, 0.0, low_open=True)
    check_compile_mode(compile_mode)
    largest = max(batch_sizes)
    check_memory(  # the random input batch and the network's first feature map, at the least
        f"A batch of {largest} image{'s' if largest > 1 else ''} at {imgsz}x{imgsz} px",
        largest * imgsz * imgsz * NETWORK_BYTES_PER_PIXEL,
        device,
        "lower the batch sizes (--batch) or the input size (--imgsz)",
    )
    detector = copy.deepcopy(_detector_of(model)).eval().to(device)  # the caller's model is never changed
    if data is not None:
        data.check_classes(detector.num_classes)  # before the timing's minutes
    spec = getattr(model, "inference_spec", None)
    if calibration is not None and spec is not None:  # calibrate on images letterboxed as the model's
        calibration = replace(calibration, pad_position=spec.pad_position)
    # The raw maps the decoding alone is timed on come from this float32/float16 NCHW copy's twin
    # in each backend's memory format.
    reference = build_inference_network(detector, max_det=max_det, half=half).to(device)
    reference.input_size(imgsz)  # ValueError for a size the network cannot take, before any work
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
    built: dict[str, Backend] = {}
    for name in backends:
        report(f"{name}: {'preparing' if name in NETWORK_BACKENDS else 'exporting'}", 0)
        try:
            built[name] = build_backend(
                name, detector, device, max_det, imgsz, half=half, compile_mode=compile_mode, calibration=calibration
            )
        except Exception as error:  # any failure is this backend's result, not the run's end
            log.debug("Backend %s failed", name, exc_info=True)
            errors.update({(name, batch): _describe(error) for batch in batch_sizes})
    networks = {  # memory format -> a network giving the raw maps of the decoding timing
        str(torch.contiguous_format): reference.detector,
        **{str(b.memory_format): b.network.detector for b in built.values() if isinstance(b, NetworkBackend)},
    }
    for batch_index, batch in enumerate(batch_sizes):
        images = torch.randn(batch, 3, imgsz, imgsz, generator=generator).to(device)
        calls: dict[str, Callable[[], Any]] = {}
        decodes: dict[str, Callable[[], Any]] = {}
        raw_outputs: dict[str, Outputs] = {}  # memory format -> the network's maps of this batch
        for name, backend in built.items():
            report(f"{name} batch {batch}: {'compiling' if name == 'compile' else 'first call'}")
            call = partial(backend, images)
            try:
                call()  # compiles, or initialises the session
            except Exception as error:
                log.debug("Backend %s failed at batch %d", name, batch, exc_info=True)
                errors[name, batch] = _describe(error)
                continue
            calls[name] = call
            layout = str(getattr(backend, "memory_format", torch.contiguous_format))
            if layout not in raw_outputs:  # every backend's network holds the same weights
                network_input = images.contiguous(
                    memory_format=getattr(backend, "memory_format", torch.contiguous_format)
                )
                raw_outputs[layout] = networks[layout](network_input.to(torch.float16) if half else network_input)
            decodes[name] = partial(
                decode_outputs, raw_outputs[layout], detector.stride, max_det, score_threshold=0.0, nms_iou=None
            )
            latencies[name, batch], decode_latencies[name, batch] = [], []
        for round_index in range(warmup + iterations):
            timed = round_index >= warmup
            report(f"batch {batch}: {'timing' if timed else 'warm-up'} round {round_index + 1}", 0)
            for name in list(calls):
                try:
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
        key: _row(*key, gflops, latencies[key], decode_latencies[key], peak, half)
        for key in latencies
        if key not in errors
    }
    if data is not None:
        scores = _score_backends(model, {name: built[name] for name, _ in rows}, data, imgsz, report)
        rows = {key: replace(row, **scores.get(key[0], {})) for key, row in rows.items()}
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


def _score_backends(
    model: nn.Module,
    backends: dict[str, Backend],
    data: ValidationSplit,
    imgsz: int,
    report: Callable[..., None],
) -> dict[str, dict[str, float]]:
    """``{backend: {"ap50": .., "ap": ..}}`` of each backend on ``data``; a backend that fails there
    keeps its timing and gets no scores (the reason is logged)."""
    spec, score_threshold, nms_iou = spec_and_settings(model, imgsz)
    scores = {}
    for name, backend in backends.items():
        report(f"{name}: scoring {len(data)} validation images", 0)
        try:
            metrics = evaluate_backend(backend, data, spec, score_threshold, nms_iou)
        except Exception:
            log.warning("Backend %s could not be scored on %s", name, data.config, exc_info=True)
            continue
        scores[name] = {"ap50": metrics["AP50"], "ap": metrics["AP"]}
    return scores


def _row(
    backend: str,
    batch: int,
    gflops: float,
    latencies: list[float],
    decode_latencies: list[float],
    peak: float,
    half: bool = False,
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
        # The peak is a float32 (float16 with --half) matmul's: no measure of other arithmetic.
        peak_share=gflops * images_per_s / peak if _same_arithmetic_as_the_peak(backend, half) else None,
        decode_ms=decode_ms,
        decode_share=decode_ms / p50,
    )


def _same_arithmetic_as_the_peak(backend: str, half: bool) -> bool:
    """Whether ``backend`` computes in the matmul peak's precision (float16 with ``half``, else float32):
    not the int8 and bfloat16 backends, nor a TensorRT engine (always float16) without ``half``."""
    if "int8" in backend or "bf16" in backend:
        return False
    return half or backend != "tensorrt"


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
ACCURACY_COLUMNS = ("AP50", "AP")  # with validation data


def benchmark_table(rows: Sequence[BenchmarkRow], title: str | None = None) -> Table:
    """A Rich table of :func:`benchmark_detector` rows (columns :data:`COLUMNS`, then AP50 and AP when
    the run scored the backends); failed rows give their reason."""
    scored = any(row.ap is not None for row in rows)
    columns = (*COLUMNS, *ACCURACY_COLUMNS) if scored else COLUMNS
    table = Table(*columns, title=title)
    for column in table.columns[1:]:
        column.justify = "right"
    for row in rows:
        if row.error:
            table.add_row(row.backend, str(row.batch), f"[red]{row.error}[/red]", *[""] * (len(columns) - 3))
            continue
        accuracy = [f"{row.ap50:.3f}", f"{row.ap:.3f}"] if row.ap is not None else ["", ""]
        table.add_row(
            row.backend,
            str(row.batch),
            f"{row.p50_ms:.1f}",
            f"{row.p90_ms:.1f}",
            f"{row.images_per_s:.1f}",
            f"{row.speedup:.2f}x" if row.speedup else "",
            f"{row.gflops:.2f}",
            f"{row.gflops_per_s:.1f}",
            f"{100 * row.peak_share:.1f}" if row.peak_share is not None else "",
            f"{row.decode_ms:.2f}",
            f"{100 * row.decode_share:.1f}",
            *(accuracy if scored else []),
        )
    return table
