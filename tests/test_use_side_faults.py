"""The fault corpus of the use side: a full disk under every writer, SIGKILL mid-run then a rerun or
resume, damaged and malicious checkpoints under every loader, and tracking files that lie.

A full disk is a file-size limit (RLIMIT_FSIZE with SIGXFSZ ignored, so writes fail with EFBIG as
they would with ENOSPC): in a subprocess for the exports (torch's C++ writer aborted the process
there), in this process for the large writers, and a write that stores half its bytes then raises
ENOSPC for the small ones.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch
from tiny_models import TINY_CLI_OPTIONS, tiny_centernet

from centernet_lightning import atomic_files
from centernet_lightning.atomic_files import TEMPORARY_PATTERN, DiskFullError
from centernet_lightning.callbacks.results import TrainingResults
from centernet_lightning.cli.lightning import make_cli
from centernet_lightning.datasets.kitti_tracking import KITTITrackingDataset
from centernet_lightning.datasets.mot import MOTDataset
from centernet_lightning.datasets.mot_io import write_mot_txt
from centernet_lightning.eval.coco import COCOEvaluator
from centernet_lightning.eval.mot import evaluate_mot
from centernet_lightning.inference.outputs import PredictionFiles, VideoSink
from centernet_lightning.structures import InferenceSpec
from centernet_lightning.tasks import CenterNet, load_model, save_checkpoint
from centernet_lightning.tasks.loading import AtomicCheckpointIO
from centernet_lightning.weights import read_checkpoint

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.*deprecated:FutureWarning")

ROOT = Path(__file__).resolve().parents[1]
CENTERNET = [sys.executable, "-m", "centernet_lightning.cli"]
SIZE = 64
CLASS_NAMES = ["circle", "rectangle"]
DISK_FULL = "no space left on device writing"


# ----------------------------------------------------------------------------- helpers
def tiny_model() -> CenterNet:
    return tiny_centernet(CLASS_NAMES, SIZE, backbone="mobilenet_v3_small", num_detections=10)


@pytest.fixture(scope="module")
def checkpoint(tmp_path_factory) -> Path:
    return save_checkpoint(tiny_model(), tmp_path_factory.mktemp("ckpt") / "tiny.ckpt")


def leftovers(folder: Path) -> list[str]:
    """Names in ``folder`` (recursively) that are the project's temporaries."""
    return sorted(p.name for p in folder.rglob(".*") if TEMPORARY_PATTERN.match(p.name))


@contextlib.contextmanager
def file_size_limit(limit: int) -> Iterator[None]:
    """In this process, writes past ``limit`` bytes of a file fail with EFBIG (a full disk)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    previous = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, previous)


def limited_file_size(limit: int):
    """preexec_fn of a subprocess with a full disk after ``limit`` bytes of any file."""

    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # inherited through exec: EFBIG, not death
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.getrlimit(resource.RLIMIT_FSIZE)[1]))

    return apply


@pytest.fixture
def full_disk(monkeypatch) -> None:
    """Every file the project writes gets half its bytes, then ENOSPC."""
    real_open = open

    class HalfWritten:
        def __init__(self, file) -> None:
            self.file = file

        def __enter__(self):
            return self

        def __exit__(self, *exc) -> None:
            self.file.close()

        def write(self, data) -> int:
            self.file.write(bytes(data)[: len(data) // 2])
            self.file.flush()
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))

    monkeypatch.setattr(atomic_files, "open", lambda *a, **k: HalfWritten(real_open(*a, **k)), raising=False)


def assert_disk_full(error: pytest.ExceptionInfo, path: Path) -> None:
    assert isinstance(error.value, OSError)
    assert str(error.value).startswith(f"{DISK_FULL} {path} ")
    assert not path.exists() and not leftovers(path.parent)


def env() -> dict[str, str]:
    return {**os.environ, "PYTHONUNBUFFERED": "1", "CUDA_VISIBLE_DEVICES": "", "OMP_NUM_THREADS": "1"}


def dead_pid() -> int:
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


# ----------------------------------------------------------------------------- a full disk
@pytest.mark.parametrize("fmt", ["torchscript", "onnx"])
def test_export_on_a_full_disk_exits_with_one_line_and_no_file(checkpoint: Path, tmp_path: Path, fmt: str) -> None:
    if fmt == "onnx":
        pytest.importorskip("onnxscript")
    out = tmp_path / f"m.{fmt}"
    result = subprocess.run(
        [*CENTERNET, "export", "--ckpt_path", str(checkpoint), "--format", fmt, "--output", str(out)],
        capture_output=True,
        text=True,
        env=env(),
        cwd=ROOT,
        timeout=120,
        preexec_fn=limited_file_size(1 << 20),  # the model takes 4 MB
    )
    assert result.returncode == 1, result.stderr[-3000:]  # not SIGABRT (-6)
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(f"centernet export: {DISK_FULL} {out} ("), result.stderr[-3000:]
    assert "Traceback" not in result.stderr
    assert sorted(os.listdir(tmp_path)) == []


def test_save_checkpoint_on_a_full_disk(tmp_path: Path) -> None:
    path = tmp_path / "model.ckpt"
    model = tiny_model()
    with file_size_limit(1 << 20), pytest.raises(DiskFullError) as error:
        save_checkpoint(model, path)
    assert_disk_full(error, path)


def test_lightning_checkpoint_on_a_full_disk_keeps_the_previous_one(checkpoint: Path, tmp_path: Path) -> None:
    io = AtomicCheckpointIO()
    last = tmp_path / "last.ckpt"
    content = read_checkpoint(checkpoint)
    io.save_checkpoint({**content, "global_step": 4}, last)
    with file_size_limit(1 << 20), pytest.raises(DiskFullError) as error:
        io.save_checkpoint({**content, "global_step": 6}, last)
    assert str(error.value).startswith(f"{DISK_FULL} {last} ")
    assert sorted(os.listdir(tmp_path)) == ["last.ckpt"]  # no partial file beside it
    assert io.load_checkpoint(last)["global_step"] == 4  # what a resume reads: the earlier, complete file


def test_video_on_a_full_disk(tmp_path: Path) -> None:
    path = tmp_path / "clip.mp4"
    frames = np.random.default_rng(0).integers(0, 256, (40, SIZE, SIZE, 3), dtype=np.uint8)  # noise: no compression
    with file_size_limit(20_000):
        sink = VideoSink(path, 25.0, (SIZE, SIZE))
        for frame in frames:
            sink.write(frame)
        with pytest.raises(DiskFullError) as error:
            sink.close()
    assert_disk_full(error, path)


def test_predictions_json_on_a_full_disk(tmp_path: Path, full_disk) -> None:
    files = PredictionFiles(tmp_path, InferenceSpec(class_names=CLASS_NAMES), 2, draw=False)
    files.add(np.zeros((32, 32, 3), np.uint8), "a.jpg", 0, np.array([[1.0, 2, 10, 12]]), np.array([0.9]), np.array([1]))
    with pytest.raises(DiskFullError) as error:
        files.close()
    assert_disk_full(error, tmp_path / "predictions.json")


@pytest.mark.parametrize("output", ["labels", "drawn image"])
def test_labels_and_drawn_images_on_a_full_disk(tmp_path: Path, full_disk, output: str) -> None:
    files = PredictionFiles(
        tmp_path, InferenceSpec(class_names=CLASS_NAMES), 2, draw=output == "drawn image", save_txt=output == "labels"
    )
    with pytest.raises(DiskFullError) as error:
        files.add(
            np.zeros((32, 32, 3), np.uint8), "a.jpg", 0, np.array([[1.0, 2, 9, 9]]), np.array([0.9]), np.array([1])
        )
    assert_disk_full(error, tmp_path / ("labels/a.txt" if output == "labels" else "a.jpg"))


def test_mot_results_on_a_full_disk(tmp_path: Path, full_disk) -> None:
    path = tmp_path / "SEQ.txt"
    with pytest.raises(DiskFullError) as error:
        write_mot_txt(path, [1, 2], [1, 1], [[0, 0, 5, 5], [1, 1, 6, 6]])
    assert_disk_full(error, path)


def test_coco_detections_json_on_a_full_disk(tmp_path: Path, full_disk) -> None:
    path = tmp_path / "detections_val.json"
    with pytest.raises(DiskFullError) as error:
        gt = {"images": [{"id": 1, "width": 9, "height": 9}], "annotations": [], "categories": [{"id": 1, "name": "a"}]}
        COCOEvaluator(gt).save_results(path)
    assert_disk_full(error, path)


@pytest.mark.parametrize("hook", ["on_train_epoch_end", "on_fit_end"])
def test_training_results_on_a_full_disk(tmp_path: Path, full_disk, hook: str) -> None:
    pytest.importorskip("matplotlib")
    results = TrainingResults(print_summary=False)
    results.rows = [{"epoch": 0, "step": 2, "train/total_loss": 3.0}]
    trainer = SimpleNamespace(log_dir=str(tmp_path), is_global_zero=True, current_epoch=1, global_step=4, optimizers=[])
    with pytest.raises(DiskFullError) as error:
        getattr(results, hook)(trainer, None)
    assert_disk_full(error, tmp_path / ("results.csv" if hook == "on_train_epoch_end" else "results.png"))


# ----------------------------------------------------------------------------- SIGKILL, then again
def write_video(path: Path, frames: int) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), 25.0, (SIZE, SIZE))
    rng = np.random.default_rng(0)
    for _ in range(frames):
        writer.write(rng.integers(0, 256, (SIZE, SIZE, 3), dtype=np.uint8))
    writer.release()
    return path


def kill_when(process: subprocess.Popen, ready, timeout: float = 90.0) -> None:
    """SIGKILL ``process`` as soon as ``ready()`` holds."""
    deadline = time.monotonic() + timeout
    while not ready():
        assert process.poll() is None, process.communicate()[1][-3000:]
        assert time.monotonic() < deadline, "the run never reached the point to kill it at"
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()


def test_sigkill_mid_video_then_the_next_run_removes_the_partial_file(
    checkpoint: Path, tmp_path: Path, monkeypatch, caplog
) -> None:
    from centernet_lightning.cli.predict import predict_main

    video = write_video(tmp_path / "clip.mp4", 1500)
    project = tmp_path / "runs"
    first = project / "predict"
    arguments = ["--model", str(checkpoint), "--source", str(video), "--project", str(project), "--device", "cpu"]
    process = subprocess.Popen(
        [*CENTERNET, "predict", *arguments],
        env=env(),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    kill_when(process, lambda: bool(leftovers(first)))
    partial = leftovers(first)
    assert len(partial) == 1 and partial[0].startswith(".clip.mp4.partial-") and partial[0].endswith(".mp4")
    assert not (first / "clip.mp4").exists() and not (first / "predictions.json").exists()
    # Files no run of ours wrote: alike in name, but not the pattern, or a writer still running (us).
    mine = [first / ".clip.mp4.partial-notes.mp4", first / f".x.mp4.partial-{os.getpid()}-abcdefgh.mp4"]
    for path in mine:
        path.write_bytes(b"keep")

    monkeypatch.setattr(atomic_files, "_STARTED", time.time())  # this process plays the rerun, started now
    with caplog.at_level(logging.WARNING):
        predict_main([*arguments, "--max-frames", "2"])
    assert not leftovers(first) or leftovers(first) == [mine[1].name]
    assert all(path.read_bytes() == b"keep" for path in mine)
    assert "partial file(s) left by an interrupted run" in caplog.text and partial[0] in caplog.text
    second = project / "predict2"
    assert (second / "clip.mp4").is_file() and (second / "predictions.json").is_file()


TINY_FIT = [
    *TINY_CLI_OPTIONS,
    "--data.dataset=synthetic",
    "--trainer.limit_val_batches=0",
    "--checkpoint.monitor=null",
    "--last_checkpoint.every_n_train_steps=2",
]


def test_sigkill_mid_training_then_resume_continues_from_the_saved_step(tmp_path: Path, monkeypatch) -> None:
    data = [f"--data.data_dir={tmp_path / 'data'}", "--data.synthetic={num_train: 4, num_val: 2, image_size: 64}"]
    common = [*TINY_FIT, *data, f"--trainer.default_root_dir={tmp_path / 'runs'}"]
    process = subprocess.Popen(
        [*CENTERNET, "fit", *common, "--trainer.max_steps=400"],
        env=env(),
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    killed_dir = tmp_path / "runs" / "centernet" / "version_0" / "checkpoints"
    kill_when(process, lambda: (killed_dir / "last.ckpt").is_file())
    saved = read_checkpoint(killed_dir / "last.ckpt")["global_step"]
    assert saved >= 2 and saved % 2 == 0
    # What a kill during a checkpoint write leaves: a temporary of a process that is gone, which
    # Lightning's "last" never matches; resuming from the folder removes it.
    stale = killed_dir / f".last.ckpt.partial-{dead_pid()}-abcdefgh.ckpt"
    stale.write_bytes(b"PK\x03\x04 half a checkpoint")
    monkeypatch.setattr(atomic_files, "_STARTED", time.time())

    make_cli(["fit", *common, f"--trainer.max_steps={saved + 2}", f"--ckpt_path={killed_dir / 'last.ckpt'}"])
    assert not stale.exists()
    resumed = tmp_path / "runs" / "centernet" / "version_1" / "checkpoints" / "last.ckpt"
    assert read_checkpoint(resumed)["global_step"] == saved + 2


# ----------------------------------------------------------------------------- damaged and malicious checkpoints
class Payload:
    """Unpickling this creates ``marker``: code a checkpoint must never get to run."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (open, (str(self.marker), "w"))


def damaged(checkpoint: Path, folder: Path, damage: str) -> tuple[Path, Path]:
    """A damaged copy of ``checkpoint`` and the marker file its payload would create."""
    marker = folder / "MARKER"
    bad = folder / f"{damage}.ckpt"
    content = checkpoint.read_bytes()
    if damage == "truncated":
        bad.write_bytes(content[: len(content) // 2])
    elif damage == "corrupt":  # the zip's headers and pickled dict overwritten; its directory intact
        bad.write_bytes(np.random.default_rng(0).bytes(4096) + content[4096:])
    else:
        torch.save({**read_checkpoint(checkpoint), "callbacks": Payload(marker)}, bad)
    return bad, marker


def _load_predictor(path: Path) -> None:
    from centernet_lightning.deploy import load_predictor

    load_predictor(path, device="cpu")


def _init_weights(path: Path) -> None:
    model = CenterNet(2, backbone={"name": "mobilenet_v3_small", "pretrained": False}, neck="simple", head_width=8)
    model.hparams.init_weights = str(path)
    model.setup("fit")


def _convert_weights(path: Path) -> None:
    from centernet_lightning.cli.convert_weights import convert_weights_main

    out = path.with_name("converted.ckpt")
    with pytest.raises(SystemExit) as exit_info:
        convert_weights_main([str(path), "--config", str(ROOT / "configs/paper/res18.yaml"), "--out", str(out)])
    assert not out.exists()
    raise ValueError(str(exit_info.value.code))


def _ckpt_path_option(path: Path) -> None:
    spec = "{num_train: 2, num_val: 2, image_size: 64, num_classes: 2}"
    make_cli(
        [
            "validate",
            *TINY_FIT[:4],
            f"--data.data_dir={path.parent / 'data'}",
            f"--data.synthetic={spec}",
            f"--ckpt_path={path}",
        ]
    )  # refused while parsing, before any data or validation


LOADERS = {
    "read_checkpoint": read_checkpoint,
    "load_model": load_model,
    "load_predictor": _load_predictor,
    "init_weights": _init_weights,
    "convert-weights": _convert_weights,
    "--ckpt_path": _ckpt_path_option,
}


@pytest.mark.parametrize("damage", ["corrupt", "truncated", "pickle payload"])
@pytest.mark.parametrize("loader", LOADERS)
def test_every_loader_names_a_bad_checkpoint_and_never_runs_its_code(
    checkpoint: Path, tmp_path: Path, loader: str, damage: str
) -> None:
    bad, marker = damaged(checkpoint, tmp_path, damage)
    with pytest.raises(ValueError) as error:
        LOADERS[loader](bad)
    message = str(error.value)
    assert str(bad) in message and "weights_only=False" not in message
    expected = "holds pickled Python objects that are not weights" if damage == "pickle payload" else "not a readable"
    assert expected in message
    assert not marker.exists()


# ----------------------------------------------------------------------------- tracking files that lie
def mot_sequence(root: Path, gt: list[str], frames: int = 3) -> Path:
    folder = root / "train" / "SEQ"
    for frame in range(1, frames + 1):
        (folder / "img1").mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(folder / "img1" / f"{frame:06d}.png"), np.zeros((40, 60, 3), np.uint8))
    (folder / "seqinfo.ini").write_text(f"[Sequence]\nname=SEQ\nimDir=img1\nframeRate=25\nseqLength={frames}\n")
    (folder / "gt").mkdir()
    (folder / "gt" / "gt.txt").write_text("\n".join(gt) + "\n")
    return folder / "gt" / "gt.txt"


def test_mot_gt_with_the_detection_id_minus_one_is_refused(tmp_path: Path) -> None:
    gt = mot_sequence(tmp_path, ["1,1,10,5,20,30,1,1,1", "2,-1,12,5,20,30,1,1,1"])
    with pytest.raises(ValueError, match=r"line 2: id -1 \(column 2\) in ground truth; -1 marks .*det\.txt") as error:
        MOTDataset(tmp_path, "train")
    assert str(gt) in str(error.value)
    results = tmp_path / "results.txt"
    results.write_text("1,1,10,5,20,30,1,-1,-1,-1\n")
    with pytest.raises(ValueError, match=r"line 2: id -1") as error:
        evaluate_mot(gt, results)  # the evaluation reads ground truth the same way
    assert str(gt) in str(error.value)


def test_kitti_target_with_the_dont_care_id_is_refused(tmp_path: Path) -> None:
    three_d = "1.5 1.6 3.9 1.0 1.5 10.0 0.1"
    (tmp_path / "training" / "image_02" / "0000").mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "training" / "image_02" / "0000" / "000000.png"), np.zeros((40, 60, 3), np.uint8))
    labels = tmp_path / "training" / "label_02" / "0000.txt"
    labels.parent.mkdir(parents=True)
    labels.write_text(
        f"0 -1 DontCare -1 -1 -10 0 0 8 8 {three_d}\n0 0 Pedestrian 0 0 -1.5 1 1 9 20 {three_d}\n"
        f"0 -1 Car 0 0 -1.5 10 5 30 35 {three_d}\n"
    )
    with pytest.raises(ValueError, match=r"line 3: a Car with track id -1; KITTI gives -1 only to DontCare") as error:
        KITTITrackingDataset(tmp_path)
    assert str(labels) in str(error.value)


@pytest.mark.parametrize("form", ["file", "folder"])
def test_results_past_the_ground_truth_warn_in_both_forms_and_seqinfo_refuses_in_both(
    tmp_path: Path, caplog, form: str
) -> None:
    gt_rows = ["1,1,10,5,20,30,1,-1,-1,-1", "2,1,11,5,20,30,1,-1,-1,-1"]
    results_rows = [*gt_rows, "3,1,12,5,20,30,1,-1,-1,-1", "4,1,13,5,20,30,1,-1,-1,-1"]
    gt_dir, results_dir = tmp_path / "gt", tmp_path / "results"
    gt = gt_dir / "SEQ" / "gt" / "gt.txt"
    gt.parent.mkdir(parents=True)
    gt.write_text("\n".join(gt_rows) + "\n")
    results = results_dir / "SEQ.txt"
    results.parent.mkdir()
    results.write_text("\n".join(results_rows) + "\n")
    arguments = (gt, results) if form == "file" else (gt_dir, results_dir)

    with caplog.at_level(logging.WARNING):
        metrics = evaluate_mot(*arguments, benchmark="MOT15")
    assert f"{results}: 2 rows in frames 3..4, past the last frame of the ground truth {gt} (2)" in caplog.text
    assert (metrics["TP"], metrics["FP"]) == (2, 2)

    (gt_dir / "SEQ" / "seqinfo.ini").write_text("[Sequence]\nname=SEQ\nseqLength=3\n")
    with pytest.raises(ValueError, match=r"SEQ\.txt: frame 4 is past the sequence's seqLength=3 \(seqinfo\.ini\)"):
        evaluate_mot(*arguments, benchmark="MOT15")
