"""The `centernet` command in subprocesses: configs, synthetic data, fit, resume, DDP, predict."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from centernet_lightning.cli.lightning import make_cli
from centernet_lightning.tasks import CenterNet, FairMOT, build_model
from centernet_lightning.tasks.loading import build_untrained_model

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = sorted((ROOT / "configs").glob("*.yaml"))
CENTERNET = [sys.executable, "-m", "centernet_lightning.cli"]

TINY = [
    "--model.backbone=resnet18",
    "--model.neck={name: fpn, upsample_channels: [32, 32, 32]}",
    "--model.head_width=16",
    "--data.dataset=synthetic",
    "--data.input_size=64",
    "--data.train_transforms=light",
    "--data.batch_size=4",
    "--data.num_workers=0",
    "--trainer.accelerator=cpu",
    "--trainer.devices=1",
    "--trainer.log_every_n_steps=1",
    "--trainer.enable_model_summary=false",
    "--progress_bar.refresh_rate=0",
]


def run(args: list[str], cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "CUDA_VISIBLE_DEVICES": ""}
    result = subprocess.run(args, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)
    assert result.returncode == 0, (
        f"exit {result.returncode}\nSTDOUT:\n{result.stdout[-3000:]}\nSTDERR:\n{result.stderr[-5000:]}"
    )
    return result


@pytest.fixture(scope="module")
def tiny_data(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "data"
    run(
        [*CENTERNET, "data", "synth", "--out", str(out), "--num-train", "8", "--num-val", "4", "--image-size", "64"],
        ROOT,
    )
    return out


@pytest.mark.parametrize("config", CONFIGS, ids=[c.name for c in CONFIGS])
def test_every_config_parses(config: Path, capsys) -> None:
    with pytest.raises(SystemExit) as exit_info:
        make_cli(["fit", "--config", str(config), "--print_config"])
    assert exit_info.value.code in (0, None)
    printed = capsys.readouterr().out
    assert "model:" in printed and "data:" in printed and "trainer:" in printed


def test_every_config_has_one_schema_and_builds_its_model() -> None:
    """model: {class_path: CenterNet or FairMOT, init_args: {...}}, the class count left to the data."""
    for config in CONFIGS:
        section = yaml.safe_load(config.read_text())["model"]
        assert set(section) == {"class_path", "init_args"}, config.name
        if section["class_path"].endswith("CenterNet"):
            with pytest.raises(ValueError, match="num_classes"):
                build_model(config)  # the data section decides the class count
    model = build_model(ROOT / "configs" / "demo.yaml", num_classes=3)
    assert type(model) is CenterNet and model.detector.num_classes == 3
    assert model.hparams.neck["upsample_channels"] == [128, 64, 64]
    tracking = build_model(ROOT / "configs" / "demo_track.yaml", untrained=True)
    assert type(tracking) is FairMOT and tracking.hparams.tracker["kalman_state"] == "xywh"


def test_keypoint_configs_build_with_the_joints_they_name_or_cocos() -> None:
    """``info`` and ``benchmark`` build a keypoint config without its data: with the joints of its
    ``data.keypoint_layout`` (CenterFace's 5 landmarks), else COCO's 17 person joints (the pose models)."""
    face = build_untrained_model(ROOT / "configs" / "centerface_mobilenetv2.yaml", 1)
    assert face.detector.heads[-1]["keypoint_offsets"].num_keypoints == 5
    assert face.detector.heads[-1]["keypoint_offsets"].flip_permutation == [1, 0, 2, 4, 3]
    pose = build_untrained_model(ROOT / "configs" / "paper" / "pose_dla34.yaml", 1)
    assert pose.detector.heads[-1]["keypoint_heatmap"].num_keypoints == 17


def test_synth_refuses_to_overwrite(tiny_data: Path) -> None:
    result = subprocess.run(
        [*CENTERNET, "data", "synth", "--out", str(tiny_data), "--num-train", "2", "--num-val", "1"],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert result.returncode != 0
    assert "empty" in (result.stderr + result.stdout).lower()
    annotations = json.loads((tiny_data / "annotations" / "instances_train.json").read_text())
    assert len(annotations["images"]) == 8  # the first dataset is untouched


def _checkpoints(root: Path) -> list[Path]:
    return sorted(root.rglob("*.ckpt"))


def test_fit_validate_resume_predict(tiny_data: Path, tmp_path: Path) -> None:
    common = [*TINY, f"--data.data_dir={tiny_data}", f"--trainer.default_root_dir={tmp_path / 'runs'}"]
    # 8 training images in batches of 4: two steps per epoch.
    first = run([*CENTERNET, "fit", *common, "--trainer.max_epochs=2", "--trainer.check_val_every_n_epoch=1"], ROOT)
    last = next(p for p in _checkpoints(tmp_path / "runs") if p.name == "last.ckpt")
    assert any(p.name.startswith("best-epoch") for p in _checkpoints(tmp_path / "runs"))
    state = torch.load(last, map_location="cpu", weights_only=False)
    assert state["global_step"] == 4, first.stderr[-3000:]
    assert "val/AP" in state["callbacks"][next(k for k in state["callbacks"] if "ModelCheckpoint" in k)]["monitor"]
    assert "Traceback" not in first.stderr
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = EventAccumulator(str(next((tmp_path / "runs").rglob("events.out.tfevents*")))).Reload()
    assert "val/image_0" in events.Tags()["images"]  # ValidationImageLogger drew the first batch
    assert {"val/AP", "val/AP50", "train/total_loss", "lr-AdamW"} <= set(events.Tags()["scalars"])

    resumed = run([*CENTERNET, "fit", *common, "--trainer.max_epochs=3", f"--ckpt_path={last}"], ROOT)
    assert "Restored all states from the checkpoint" in resumed.stderr + resumed.stdout
    new_last = max((p for p in _checkpoints(tmp_path / "runs") if p.name == "last.ckpt"), key=os.path.getmtime)
    assert torch.load(new_last, map_location="cpu", weights_only=False)["global_step"] == 6

    validated = run([*CENTERNET, "validate", *common, f"--ckpt_path={new_last}"], ROOT)
    assert "AP50" in validated.stdout and "per class" in validated.stdout
    detections_json = next((tmp_path / "runs").rglob("detections_val.json"))
    detections = json.loads(detections_json.read_text())
    assert detections and {"image_id", "category_id", "bbox", "score"} <= set(detections[0])

    predicted = run(
        [
            *CENTERNET,
            "predict",
            *common,
            f"--ckpt_path={new_last}",
            f"--prediction_writer.output_dir={tmp_path / 'pred'}",
            "--prediction_writer.score_threshold=0",
        ],
        ROOT,
    )
    # The datamodule path writes what `centernet predict --source` writes: COCO results and drawn images.
    assert "predictions" in predicted.stdout
    predictions = json.loads((tmp_path / "pred" / "predict" / "predictions.json").read_text())
    assert predictions and {"image_id", "category_id", "bbox", "score", "file_name"} <= set(predictions[0])
    assert len(list((tmp_path / "pred" / "predict").glob("*.jpg"))) == 4

    # A folder of images with only a checkpoint: no annotations are read.
    folder = run(
        [
            *CENTERNET,
            "predict",
            *TINY,
            f"--data.data_dir={tmp_path / 'nonexistent'}",
            "--data.train_split=null",
            "--data.val_split=null",
            "--data.class_names=[circle, rectangle, triangle]",
            f"--data.predict_dir={tiny_data / 'images' / 'val'}",
            f"--ckpt_path={new_last}",
            f"--prediction_writer.output_dir={tmp_path / 'pred'}",
            "--prediction_writer.score_threshold=0",
            f"--trainer.default_root_dir={tmp_path / 'runs'}",
        ],
        ROOT,
    )
    assert "predictions of 4 images" in folder.stdout
    assert not (tmp_path / "nonexistent").exists()  # nothing is generated for a folder of images
    entries = json.loads((tmp_path / "pred" / "predict2" / "predictions.json").read_text())
    assert {entry["image_id"] for entry in entries} == {0, 1, 2, 3}


def test_fine_tune_with_another_class_count(tiny_data: Path, tmp_path: Path, caplog) -> None:
    from centernet_lightning.weights import load_matching_weights

    source = CenterNet(5, backbone="resnet18", neck={"name": "fpn", "upsample_channels": [32, 32, 32]}, head_width=16)
    path = tmp_path / "source.ckpt"
    torch.save({"state_dict": source.state_dict()}, path)
    target = CenterNet(3, backbone="resnet18", neck={"name": "fpn", "upsample_channels": [32, 32, 32]}, head_width=16)
    fresh_head = target.detector.heads[0]["heatmap"].layers[-1].weight.clone()
    load_matching_weights(target, path)
    assert torch.equal(next(target.detector.backbone.parameters()), next(source.detector.backbone.parameters()))
    assert torch.equal(target.detector.heads[0]["heatmap"].layers[-1].weight, fresh_head)  # 5 -> 3: re-initialised
    assert "Re-initialised" in caplog.text and "heads.0.heatmap" in caplog.text


@pytest.mark.slow
def test_ddp_two_cpu_processes(tiny_data: Path, tmp_path: Path) -> None:
    args = [
        *CENTERNET,
        "fit",
        *TINY,
        f"--data.data_dir={tiny_data}",
        f"--trainer.default_root_dir={tmp_path / 'runs'}",
        "--trainer.devices=2",
        "--trainer.strategy=ddp",
        "--trainer.max_epochs=1",  # 8 images, 2 processes, batches of 2: two steps
        "--trainer.check_val_every_n_epoch=1",
        "--data.batch_size=2",
    ]
    result = run(args, ROOT, timeout=400)
    assert "distributed_backend=gloo" in result.stderr + result.stdout
    last = next(p for p in _checkpoints(tmp_path / "runs") if p.name == "last.ckpt")
    assert torch.load(last, map_location="cpu", weights_only=False)["global_step"] == 2


def test_demo_command_runs_end_to_end(tmp_path: Path) -> None:
    """From a folder without configs/: the demo's config ships in the package."""
    out = tmp_path / "demo"
    result = run(
        [
            *CENTERNET,
            "demo",
            "--out",
            str(out),
            "--trainer.max_epochs=1",
            "--trainer.check_val_every_n_epoch=1",
            "--data.synthetic={num_train: 8, num_val: 4, image_size: 64, num_classes: 3}",
            "--data.input_size=64",
            "--data.batch_size=4",
            "--data.num_workers=0",
            "--model.neck={name: fpn, upsample_channels: [32, 32, 32]}",
            "--model.head_width=16",
            "--trainer.enable_model_summary=false",
            "--progress_bar.refresh_rate=0",
        ],
        tmp_path,
    )
    assert "Demo AP50 =" in result.stdout and "AP50" in result.stdout
    assert (out / "centernet" / "version_0" / "results.csv").is_file()  # logs under --out (default_root_dir)
    assert len(list((out / "predict").glob("*.jpg"))) == 4 and (out / "predict" / "predictions.json").is_file()
    assert (out / "data" / "annotations" / "instances_val.json").is_file()
