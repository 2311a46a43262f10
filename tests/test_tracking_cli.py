"""The tracking side of the `centernet` command: a FairMOT config through fit and validate (HOTA,
MOTA, IDF1 logged), then `centernet track` on a generated video and on a frame folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from centernet_lightning.datasets import generate_tracking_sequences
from centernet_lightning.datasets.mot_io import read_mot_txt
from centernet_lightning.eval.mot import evaluate_mot

ROOT = Path(__file__).resolve().parents[1]
CENTERNET = [sys.executable, "-m", "centernet_lightning.cli"]
pytestmark = pytest.mark.slow


def run(args: list[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    return result


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A FairMOT config fitted for one short epoch on generated sequences: (work dir, checkpoint)."""
    work = tmp_path_factory.mktemp("tracking")
    data = generate_tracking_sequences(
        work / "data", num_sequences=2, num_val_sequences=1, frames_per_sequence=8, image_size=64, seed=3
    )
    demo = yaml.safe_load((ROOT / "configs" / "demo_track.yaml").read_text())
    demo["model"]["init_args"].update(neck={"name": "fpn", "upsample_channels": [32, 32, 32]}, head_width=16)
    demo["data"].update(dataset="mot", data_dir=str(data), input_size=64, batch_size=4, num_workers=0)
    demo["data"]["dataset_params"] = {"class_names": ["object"]}
    demo["data"].pop("synthetic")
    demo["trainer"].update(
        max_epochs=1, check_val_every_n_epoch=1, precision="32-true", accelerator="cpu", default_root_dir=str(work)
    )
    config = work / "fairmot.yaml"
    config.write_text(yaml.safe_dump(demo))
    fit = run([*CENTERNET, "fit", "--config", str(config), f"--trainer.logger.init_args.save_dir={work}"], work)
    assert "val/IDF1" in fit.stdout + fit.stderr or list(work.rglob("events.out.tfevents*"))
    checkpoints = sorted(work.rglob("last.ckpt"))
    assert checkpoints, "fit wrote no last.ckpt"
    return work, checkpoints[0]


def test_validate_a_tracking_config_reports_mot_metrics(trained: tuple[Path, Path]) -> None:
    work, checkpoint = trained
    result = run([*CENTERNET, "validate", "--config", str(work / "fairmot.yaml"), "--ckpt_path", str(checkpoint)], work)
    printed = result.stdout
    for name in ("val/HOTA", "val/MOTA", "val/IDF1"):
        assert name in printed, printed[-2000:]


def test_validate_with_a_fairmot_checkpoint_of_the_old_layout(trained: tuple[Path, Path]) -> None:
    """A checkpoint written before the redesign (old keys, another identity count, another model):
    its class and settings replace the config's, its classifier keeps its size, its weights load;
    no training split is needed (the identity count is the checkpoint's)."""
    work, _ = trained
    old = ROOT / "tests" / "fixtures" / "fairmot_v0_1.ckpt"
    config = ["--config", str(work / "fairmot.yaml"), "--data.train_split=null"]
    result = run([*CENTERNET, "validate", *config, "--ckpt_path", str(old)], work)
    assert "val/IDF1" in result.stdout and "replace the configured ones" in result.stderr


def test_track_command_on_a_video_and_a_frame_folder(trained: tuple[Path, Path]) -> None:
    work, checkpoint = trained
    frames_dir = work / "data" / "val" / "SEQ-01" / "img1"
    frames = sorted(frames_dir.glob("*.jpg"))
    video = work / "clip.avi"
    writer = cv2.VideoWriter(str(video), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 64))
    for path in frames:
        writer.write(cv2.imread(str(path)))
    writer.release()

    result = run([*CENTERNET, "track", "--ckpt_path", str(checkpoint), "--source", str(video)], work)
    assert f"{len(frames)} frames in" in result.stdout
    drawn = cv2.VideoCapture(str(work / "runs" / "track" / "clip.mp4"))
    assert int(drawn.get(cv2.CAP_PROP_FRAME_COUNT)) == len(frames)
    rows = read_mot_txt(work / "runs" / "track" / "clip.txt")
    assert rows.frames.size == 0 or (rows.frames.min() >= 1 and rows.frames.max() <= len(frames))

    # A frame folder in MOTChallenge layout: results named after the sequence, scored against its gt;
    # a preset with camera-motion compensation (the frames reach the tracker) and a setting over it.
    tracker = ["--tracker", "botsort", "track_buffer=10"]
    result = run(
        [*CENTERNET, "track", "--ckpt_path", str(checkpoint), "--source", str(frames_dir), "--no-draw", *tracker], work
    )
    assert "camera_motion is set but" not in result.stderr
    recorded = yaml.safe_load((work / "runs" / "track2" / "tracker.yaml").read_text())
    assert recorded["camera_motion"] == "sparse_flow" and recorded["track_buffer"] == 10  # what it ran with
    results = work / "runs" / "track2" / "SEQ-01.txt"
    assert results.is_file() and not list((work / "runs" / "track2").glob("*.mp4"))
    columns = np.loadtxt(results, delimiter=",", ndmin=2)
    assert len(columns) == 0 or (columns[:, 7] == -1).all()  # one class: no class column
    metrics = evaluate_mot(frames_dir.parent / "gt" / "gt.txt", results)
    assert {"HOTA", "MOTA", "IDF1", "IDSW"} <= set(metrics) and np.isfinite(metrics["IDF1"])


def test_track_command_names_a_missing_source(trained: tuple[Path, Path]) -> None:
    work, checkpoint = trained
    result = subprocess.run(
        [*CENTERNET, "track", "--ckpt_path", str(checkpoint), "--source", str(work / "nope.mp4")],
        capture_output=True,
        text=True,
        cwd=work,
    )
    assert result.returncode != 0 and "nope.mp4" in result.stderr


def test_inference_tracking2d_matches_the_track_command(trained: tuple[Path, Path]) -> None:
    from centernet_lightning.tasks import FairMOT, load_model

    work, checkpoint = trained
    frames_dir = work / "data" / "val" / "SEQ-01" / "img1"
    model = load_model(checkpoint)
    assert isinstance(model, FairMOT)
    assert model.inference_spec.input_size == 64 and model.inference_spec.class_names == ["object"]
    tracks = model.inference_tracking2d(frames_dir, batch_size=3)
    assert len(tracks) == len(list(frames_dir.glob("*.jpg")))
    assert all(set(t) >= {"ids", "boxes", "scores"} and np.asarray(t["boxes"]).shape[-1] == 4 for t in tracks)
    run([*CENTERNET, "track", "--ckpt_path", str(checkpoint), "--source", str(frames_dir), "--name", "same"], work)
    rows = read_mot_txt(work / "runs" / "same" / "SEQ-01.txt")
    assert rows.frames.size == sum(len(t["ids"]) for t in tracks)  # the command writes what Python returns


def test_demo_track_command_runs_end_to_end(tmp_path: Path) -> None:
    """`centernet demo-track` at a tiny size: generate, fit, track the held-out sequence, score it."""
    out = tmp_path / "demo_track"
    result = run(
        [
            *CENTERNET,
            "demo-track",
            "--out",
            str(out),
            "--trainer.max_epochs=1",
            "--trainer.check_val_every_n_epoch=1",
            "--trainer.precision=32-true",
            "--data.synthetic={num_sequences: 2, num_val_sequences: 1, frames_per_sequence: 3, "
            "val_frames_per_sequence: 6, image_size: 64}",
            "--data.input_size=64",
            "--data.batch_size=3",
            "--data.num_workers=0",
            "--model.neck={name: fpn, upsample_channels: [32, 32, 32]}",
            "--model.head_width=16",
            "--trainer.enable_model_summary=false",
            "--progress_bar.refresh_rate=0",
        ],
        ROOT,
    )
    assert "Demo tracking SEQ-01: HOTA = " in result.stdout and "MOTA >= 0.9" in result.stdout
    assert (out / "track" / "SEQ-01.txt").is_file() and (out / "track" / "SEQ-01.mp4").is_file()
    assert len(list((out / "data" / "val" / "SEQ-01" / "img1").glob("*.jpg"))) == 6
