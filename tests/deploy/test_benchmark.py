"""The benchmark: rows per backend and batch size whose figures agree with each other and with the
FLOP count of ``models/info.py``, failed backends as rows, the command on a checkpoint and a config.

A tiny resnet18 model at 64 px with few iterations; the figures are checked for consistency, not
for speed (the machine is shared).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from rich.console import Console

from centernet_lightning.cli.benchmark import benchmark_main
from centernet_lightning.deploy import BenchmarkRow, benchmark_detector, benchmark_table, parse_backends
from centernet_lightning.deploy.benchmark import COLUMNS, _row, measure_matmul_peak
from centernet_lightning.inference import BACKENDS
from centernet_lightning.models import model_info
from centernet_lightning.tasks import CenterNet, save_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")

SIZE = 64
PEAK = 100.0  # GFLOP/s given, so that the peak share is known exactly
NECK = {"name": "simple", "upsample_channels": [32, 32, 32]}


def tiny_model() -> CenterNet:
    torch.manual_seed(0)
    return CenterNet(3, backbone={"name": "resnet18", "pretrained": False}, neck=NECK, head_width=16).eval()


@pytest.fixture(scope="module")
def model() -> CenterNet:
    return tiny_model()


@pytest.fixture(scope="module")
def rows(model: CenterNet) -> list[BenchmarkRow]:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    return benchmark_detector(
        model,
        SIZE,
        batch_sizes=[1, 2],
        backends="eager,channels_last,onnxruntime",
        warmup=1,
        iterations=5,
        max_det=20,
        matmul_peak=PEAK,
    )


def render(table) -> str:
    console = Console(record=True, width=220)
    console.print(table)
    return console.export_text()


def test_one_row_per_backend_and_batch_with_consistent_figures(rows: list[BenchmarkRow], model: CenterNet) -> None:
    assert [(row.backend, row.batch) for row in rows] == [
        (backend, batch) for backend in ("eager", "channels_last", "onnxruntime") for batch in (1, 2)
    ]
    gflops = model_info(model, SIZE)[-1]["gflops"]
    eager_p50 = {row.batch: row.p50_ms for row in rows if row.backend == "eager"}
    for row in rows:
        assert row.error is None, row
        assert row.gflops == pytest.approx(gflops, rel=1e-9)  # info.py's count, per image
        assert 0 < row.p50_ms <= row.p90_ms
        assert row.images_per_s == pytest.approx(row.batch / (row.p50_ms / 1000))
        assert row.gflops_per_s == pytest.approx(gflops * row.images_per_s)
        assert row.matmul_peak == PEAK and row.peak_share == pytest.approx(row.gflops_per_s / PEAK)
        # The decoding is part of the timed call and far cheaper than the network.
        assert 0 < row.decode_ms < row.p50_ms
        assert row.decode_share == pytest.approx(row.decode_ms / row.p50_ms)
        assert row.speedup == pytest.approx(eager_p50[row.batch] / row.p50_ms)
    assert {row.speedup for row in rows if row.backend == "eager"} == {1.0}


def test_gflops_are_the_whole_network_at_this_size(model: CenterNet) -> None:
    # resnet18's stem alone: a 7x7 conv, 3 -> 64 channels, stride 2: 2 * 64 * 3 * 49 * 32 * 32 FLOPs.
    stem = 2 * 64 * 3 * 49 * (SIZE // 2) ** 2 / 1e9
    rows = benchmark_detector(model, SIZE, [1], "eager", warmup=0, iterations=1, matmul_peak=PEAK)
    assert rows[0].gflops > stem
    assert rows[0].gflops == pytest.approx(sum(row["gflops"] for row in model_info(model, SIZE)[:-1]))
    bigger = benchmark_detector(model, 2 * SIZE, [1], "eager", warmup=0, iterations=1, matmul_peak=PEAK)
    assert bigger[0].gflops == pytest.approx(4 * rows[0].gflops, rel=1e-6)  # convolutions scale with the area


def test_table_has_the_columns_and_the_figures(rows: list[BenchmarkRow]) -> None:
    failed = BenchmarkRow("compile", 8, rows[0].gflops, error="RuntimeError: no compiler")
    text = render(benchmark_table([*rows, failed], title="tiny"))
    for column in COLUMNS:
        assert column in text
    assert f"{rows[0].p50_ms:.1f}" in text and f"{rows[0].images_per_s:.1f}" in text
    assert "RuntimeError: no compiler" in text
    assert "1.00x" in text


def test_backend_names_are_checked() -> None:
    assert parse_backends("onnxruntime, eager,eager") == ("onnxruntime", "eager")
    assert parse_backends(["compile"]) == ("compile",)
    with pytest.raises(ValueError, match="valid names: eager, channels_last, compile, onnxruntime") as caught:
        parse_backends("eager,tflite")
    assert "tflite" in str(caught.value)
    with pytest.raises(ValueError, match="valid names"):
        parse_backends("")


def test_command_rejects_bad_backends_and_half_on_the_cpu(capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        benchmark_main(["--config", "unused.yaml", "--backend", "eager,tflite"])
    assert exit_info.value.code == 2
    error = capsys.readouterr().err
    assert "tflite" in error and all(name in error for name in BACKENDS)
    with pytest.raises(SystemExit) as exit_info:
        benchmark_main(["--config", "unused.yaml", "--device", "cpu", "--half"])
    assert exit_info.value.code == 2
    assert "half (float16) needs a CUDA device" in capsys.readouterr().err


def test_a_backend_that_cannot_run_gives_a_row_with_the_reason(model: CenterNet, monkeypatch) -> None:
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # as if not installed: import fails

    def failing_compile(module, **options):
        def run(images):
            raise RuntimeError("Inductor could not build a kernel\nsecond line")

        return run

    monkeypatch.setattr(torch, "compile", failing_compile)
    rows = benchmark_detector(model, SIZE, [1], "onnxruntime,compile,eager", warmup=0, iterations=2, matmul_peak=PEAK)
    assert [row.backend for row in rows] == ["onnxruntime", "compile", "eager"]
    assert rows[0].error == "ImportError: onnxruntime is not installed (pip install 'centernet-lightning[export]')"
    assert rows[1].error == "RuntimeError: Inductor could not build a kernel"
    assert rows[0].p50_ms is None and rows[1].images_per_s is None
    assert rows[2].error is None and rows[2].p50_ms > 0


def test_bad_settings_are_refused_before_any_work(model: CenterNet) -> None:
    with pytest.raises(ValueError, match="half .* needs a CUDA device"):
        benchmark_detector(model, SIZE, [1], "eager", half=True)
    with pytest.raises(ValueError, match="multiples of 32"):
        benchmark_detector(model, 100, [1], "eager")
    with pytest.raises(ValueError, match="batch size must be >= 1, got 0"):
        benchmark_detector(model, SIZE, [0], "eager")
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="PyTorch sees no CUDA GPU"):
            benchmark_detector(model, SIZE, [1], "eager", device="cuda")


def test_no_share_of_the_float_peak_for_other_arithmetic() -> None:
    """The peak is a float32 matmul's (float16 with --half): int8, bf16 and TensorRT's fp16 rows have no share of it."""
    names = ("onnxruntime", "onnxruntime_int8", "openvino_bf16", "tensorrt")
    rows = [_row(name, 1, 2.0, [10.0, 10.0], [1.0], 400.0) for name in names]
    assert rows[0].peak_share == pytest.approx(0.5)  # 2 GFLOPs x 100 images/s of a 400 GFLOP/s peak
    assert [row.peak_share for row in rows[1:]] == [None, None, None]
    half = {name: _row(name, 1, 2.0, [10.0, 10.0], [1.0], 400.0, half=True).peak_share for name in names}
    assert half["tensorrt"] == pytest.approx(0.5) and half["onnxruntime_int8"] is None  # a float16 peak
    share_column = COLUMNS.index("% of peak")
    cells = {
        line.split("│")[1].strip(): [cell.strip() for cell in line.split("│")[1:-1]]
        for line in render(benchmark_table(rows)).splitlines()
        if line.startswith("│") and line.split("│")[1].strip() in names
    }
    assert {name: cells[name][share_column] for name in names} == {
        "onnxruntime": "50.0",
        "onnxruntime_int8": "",
        "openvino_bf16": "",
        "tensorrt": "",
    }


def test_matmul_peak_is_a_rate() -> None:
    peak = measure_matmul_peak("cpu", size=256, repeats=2)
    # One 2-core machine does a few to a few hundred GFLOP/s in float32; far outside is a unit error.
    assert 0.5 < peak < 20_000


def test_without_a_given_peak_the_matmul_is_sampled_during_the_run(model: CenterNet) -> None:
    rows = benchmark_detector(model, SIZE, [1, 2], "eager", warmup=0, iterations=2)
    peak = rows[0].matmul_peak
    assert 0.5 < peak < 20_000 and rows[1].matmul_peak == peak  # one peak for the whole run
    for row in rows:
        assert row.peak_share == pytest.approx(row.gflops_per_s / peak)


def test_command_on_a_checkpoint_written_by_a_test(tmp_path: Path, capsys) -> None:
    ckpt = save_checkpoint(tiny_model(), tmp_path / "best.ckpt")
    benchmark_main(
        ["--ckpt_path", str(ckpt), "--imgsz", str(SIZE), "--batch", "1,2", "--backend", "eager,channels_last"]
        + ["--device", "cpu", "--warmup", "0", "--iterations", "2"]
    )
    output = capsys.readouterr().out
    assert f"best.ckpt: 3 classes, {SIZE}x{SIZE}, cpu (1 thread), float32; matmul peak" in output
    for column in COLUMNS:
        assert column in output
    table_rows = [line for line in output.splitlines() if line.startswith(("│ eager", "│ channels_last"))]
    assert len(table_rows) == 4


@pytest.mark.slow  # a process of its own: imports torch and the library again
def test_command_in_its_own_process_on_a_config(tmp_path: Path) -> None:
    config = tmp_path / "model.yaml"
    # pretrained: true would download ImageNet weights; the benchmark builds it randomly initialised.
    config.write_text(
        "model:\n  backbone: {name: resnet18, pretrained: true}\n"
        "  neck: {name: simple, upsample_channels: [32, 32, 32]}\n  head_width: 16\n"
    )
    # `centernet benchmark` in a process of its own.
    program = "import sys; from centernet_lightning.cli.benchmark import benchmark_main; benchmark_main(sys.argv[1:])"
    command = [sys.executable, "-c", program, "--config", str(config)]
    options = ["--imgsz", str(SIZE), "--batch", "1", "--backend", "eager", "--warmup", "0", "--iterations", "2"]
    environment = {**os.environ, "OMP_NUM_THREADS": "1"}  # a shared machine
    result = subprocess.run(
        [*command, *options, "--device", "cpu"], capture_output=True, text=True, timeout=300, env=environment
    )
    assert result.returncode == 0, result.stderr
    assert "80 classes" in result.stdout and "│ eager" in result.stdout
    missing = subprocess.run([*command[:-1], str(tmp_path / "nope.yaml")], capture_output=True, text=True, timeout=300)
    assert missing.returncode != 0 and "nope.yaml" in missing.stderr


@pytest.mark.slow  # Inductor compiles C++ kernels for the whole graph: 10-30 s on 2 shared cores
def test_compile_backend_runs_with_freezing(model: CenterNet) -> None:
    rows = benchmark_detector(model, SIZE, [1], "eager,compile", warmup=1, iterations=3, matmul_peak=PEAK)
    assert rows[1].backend == "compile" and rows[1].error is None, rows[1]
    assert rows[1].p50_ms > 0 and rows[1].speedup == pytest.approx(rows[0].p50_ms / rows[1].p50_ms)
