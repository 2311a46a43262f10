"""`centernet fit` / `validate` / `demo` as a newcomer meets them, in subprocesses on tiny data: where
a run writes, what it reports, evaluating a checkpoint alone, and one-line errors."""

from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from tiny_models import TINY_CLI_OPTIONS

CENTERNET = [sys.executable, "-m", "centernet_lightning.cli"]
pytestmark = pytest.mark.slow

TINY = [
    *TINY_CLI_OPTIONS,
    "--val_images.num_images=0",
]
SYNTHETIC = "--data.synthetic={num_train: 4, num_val: 2, image_size: 64, num_classes: 3}"


def centernet(args: list[str], cwd: Path, ok: bool = True, **env: str) -> subprocess.CompletedProcess:
    environment = {**os.environ, "PYTHONUNBUFFERED": "1", "CUDA_VISIBLE_DEVICES": "", **env}
    result = subprocess.run([*CENTERNET, *args], cwd=cwd, capture_output=True, text=True, timeout=300, env=environment)
    if ok:
        assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout[-3000:]}\n{result.stderr[-5000:]}"
    return result


def one_line_error(result: subprocess.CompletedProcess) -> str:
    """The error line a failed command ends with, after checking that it failed without a traceback."""
    assert result.returncode == 1, result.stderr[-3000:]
    assert "Traceback" not in result.stderr, result.stderr[-3000:]
    return result.stderr.strip().splitlines()[-1]


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess]:
    """Two one-step epochs on generated shapes, validated after each, with per-class AP on request:
    (the work folder, the fit's result); the run folder is ``work/out``."""
    work = tmp_path_factory.mktemp("training")
    args = [
        "fit",
        *TINY,
        "--data.dataset=synthetic",
        f"--data.data_dir={work / 'data'}",
        SYNTHETIC,
        f"--trainer.default_root_dir={work / 'out'}",
        "--trainer.max_epochs=2",
        "--trainer.limit_train_batches=1",
        "--trainer.check_val_every_n_epoch=1",
        "--results.per_class=true",
    ]
    return work, centernet(args, work)


def test_default_root_dir_decides_where_a_run_writes(trained) -> None:
    work, _ = trained
    assert (work / "out" / "centernet" / "version_0" / "checkpoints" / "last.ckpt").is_file()
    assert not (work / "runs").exists()  # the logger follows default_root_dir, not a save_dir of its own


def test_fit_prints_each_validation_and_writes_results(trained) -> None:
    work, fit = trained
    lines = [line for line in fit.stdout.splitlines() if line.startswith("Epoch ")]
    assert [line.split(":")[0] for line in lines] == ["Epoch 0, step 1", "Epoch 1, step 2"], fit.stdout[-2000:]
    assert all("AP " in line and "AP50 " in line and "AP75 " in line for line in lines)
    assert "AP per class: circle" in lines[0] and "val loss" in lines[0]
    run_dir = work / "out" / "centernet" / "version_0"
    rows = list(csv.DictReader((run_dir / "results.csv").open()))
    assert [(row["epoch"], row["step"]) for row in rows] == [("0", "1"), ("1", "2")]
    assert {"lr", "train/total_loss", "val/total_loss", "val/AP", "val/AP50", "val/AP_class/circle"} <= set(rows[0])
    assert all(float(row["train/total_loss"]) > 0 and row["val/AP"] != "" for row in rows)
    assert (run_dir / "results.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_validate_a_checkpoint_alone_in_a_folder_of_its_own(trained, tmp_path: Path) -> None:
    """No --config: the checkpoint's data section is its validation split; the results go to
    ``validate`` beside the training run, quietly."""
    work, _ = trained
    last = work / "out" / "centernet" / "version_0" / "checkpoints" / "last.ckpt"
    assert torch.load(last, map_location="cpu", weights_only=True)["datamodule_hyper_parameters"]["synthetic"]
    result = centernet(["validate", f"--ckpt_path={last}", f"--trainer.default_root_dir={work / 'out'}"], tmp_path)
    assert "AP50" in result.stdout and "circle" in result.stdout
    run_dirs = sorted(p.name for p in (work / "out" / "centernet").iterdir())
    assert run_dirs == ["validate", "version_0"], run_dirs
    assert (work / "out" / "centernet" / "validate" / "detections_val.json").is_file()
    assert "dirpath has changed" not in result.stderr + result.stdout
    assert "replace the configured ones" not in result.stderr  # nothing was configured to replace
    # A missing dataset is one line naming the path, and leaves no run folder.
    missing = tmp_path / "missing"
    args = ["validate", f"--ckpt_path={last}", "--data.dataset=coco", f"--data.data_dir={missing}"]
    error = one_line_error(centernet([*args, f"--trainer.default_root_dir={tmp_path / 'runs'}"], tmp_path, ok=False))
    assert error.startswith("centernet validate: COCO annotations not found") and str(missing) in error
    assert not (tmp_path / "runs").exists()


def test_generated_data_is_reused_for_validation_and_named_for_fit(trained, tmp_path: Path) -> None:
    """Other split sizes than fit's: validation evaluates the generated data; fit says which
    override to repeat, and leaves no run folder behind."""
    work, _ = trained
    last = work / "out" / "centernet" / "version_0" / "checkpoints" / "last.ckpt"
    other = "--data.synthetic={num_train: 2000, num_val: 100, image_size: 64, num_classes: 3}"
    common = [*TINY, f"--data.data_dir={work / 'data'}", other, f"--trainer.default_root_dir={tmp_path}"]
    validated = centernet(["validate", *common, f"--ckpt_path={last}"], tmp_path)
    assert "AP50" in validated.stdout
    assert len(list((work / "data" / "images" / "val").iterdir())) == 2  # nothing was generated again
    failed = centernet(["fit", "--data.dataset=synthetic", *common, "--trainer.max_steps=1"], tmp_path, ok=False)
    error = one_line_error(failed)
    assert "repeat --data.synthetic.num_train=4 --data.synthetic.num_val=2" in error and str(work / "data") in error
    assert sorted(p.name for p in (tmp_path / "centernet").iterdir()) == ["validate"]  # no empty version_0


def test_a_voc_export_without_image_sets_trains_from_a_config(voc_root: Path, classes: list[str]) -> None:
    import shutil

    shutil.rmtree(voc_root / "ImageSets")
    config = voc_root.parent / "labelme.yaml"
    config.write_text(
        f"data:\n  dataset: voc\n  data_dir: {voc_root}\n  train_split: '*'\n  val_split: null\n"
        f"  dataset_params: {{name_to_label: {classes}}}\n"
    )
    args = ["fit", "--config", str(config), *TINY, "--trainer.max_steps=1", f"--trainer.default_root_dir={voc_root}"]
    centernet(args, voc_root.parent)
    checkpoint = torch.load(next(voc_root.rglob("last.ckpt")), map_location="cpu", weights_only=True)
    assert checkpoint["hyper_parameters"]["class_names"] == classes


def test_a_yaml_syntax_error_names_file_and_line(tmp_path: Path) -> None:
    config = tmp_path / "broken.yaml"
    config.write_text("trainer:\n  max_epochs: 1\n model: [\n")
    error = one_line_error(centernet(["fit", "--config", str(config)], tmp_path, ok=False))
    assert error.startswith(f"centernet fit: {config}:3:2: YAML syntax error"), error
    assert not (tmp_path / "runs").exists()


def test_pretrained_weights_offline_is_one_line_saying_what_it_needs(tmp_path: Path) -> None:
    offline = {"TORCH_HOME": str(tmp_path / "torch"), "HTTPS_PROXY": "http://127.0.0.1:9", "NO_PROXY": ""}
    offline.update(https_proxy=offline["HTTPS_PROXY"], no_proxy="")  # a closed port: no download, at once
    args = ["fit", *TINY, "--model.backbone={name: resnet18, pretrained: true}", "--data.dataset=synthetic"]
    args += [f"--data.data_dir={tmp_path / 'data'}", SYNTHETIC, f"--trainer.default_root_dir={tmp_path / 'runs'}"]
    error = one_line_error(centernet(args, tmp_path, ok=False, **offline))
    assert error.startswith("centernet fit: Could not download pretrained weights for 'resnet18'"), error
    assert "needs a network connection" in error and "pretrained=<path to a state-dict file>" in error
    assert not (tmp_path / "runs").exists()


def test_demo_configs_ship_in_the_package_and_configs_links_to_them(tmp_path: Path) -> None:
    """`centernet demo` from any folder (the run itself: test_cli.py's demo test, from a temp folder)."""
    from centernet_lightning.cli.demos import packaged_config

    result = centernet(["demo", "--help"], tmp_path)
    assert "demo.yaml" in result.stdout and "Config not found" not in result.stdout + result.stderr
    root = Path(__file__).resolve().parents[2]
    for name in ("demo.yaml", "demo_track.yaml"):
        assert packaged_config(name) == root / "centernet_lightning" / "configs" / name
        assert (root / "configs" / name).resolve() == packaged_config(name).resolve()
