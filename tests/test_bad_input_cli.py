"""Bad configs and checkpoints given to the `centernet` command: each error names the culprit."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
from tiny_models import TINY_CLI_OPTIONS

from centernet_lightning.cli.lightning import make_cli
from centernet_lightning.tasks import CenterNet
from centernet_lightning.weights import load_matching_weights

TINY = [
    *TINY_CLI_OPTIONS,
    "--data.dataset=synthetic",
    "--trainer.limit_val_batches=1",
]


def synthetic(data_dir: Path, num_classes: int) -> list[str]:
    spec = f"{{num_train: 2, num_val: 2, image_size: 64, num_classes: {num_classes}}}"
    return [f"--data.data_dir={data_dir}", f"--data.synthetic={spec}"]


@pytest.fixture(scope="module")
def two_class_run(tmp_path_factory) -> tuple[Path, Path]:
    """A checkpoint trained one step on 2 synthetic classes, and that data's folder."""
    root = tmp_path_factory.mktemp("two_classes")
    data = root / "data"
    make_cli(
        [
            "fit",
            *TINY,
            *synthetic(data, 2),
            "--trainer.max_steps=1",
            f"--trainer.default_root_dir={root / 'runs'}",
        ]
    )
    return next((root / "runs").rglob("last.ckpt")), data


def validate(ckpt: Path, data_args: list[str], tmp_path: Path, *extra: str) -> None:
    make_cli(
        [
            "validate",
            *TINY,
            *data_args,
            f"--ckpt_path={ckpt}",
            f"--trainer.default_root_dir={tmp_path}",
            *extra,
        ]
    )


def test_checkpoint_of_another_class_count_names_both(two_class_run, tmp_path: Path) -> None:
    ckpt, _ = two_class_run
    with pytest.raises(ValueError) as error:
        validate(ckpt, synthetic(tmp_path / "three", 3), tmp_path)
    message = str(error.value)
    assert str(ckpt) in message
    assert "trained on 2 classes (circle, rectangle) but the data has 3 (circle, rectangle, triangle)" in message


def test_checkpoint_architecture_overriding_the_config_is_warned(two_class_run, tmp_path: Path, caplog) -> None:
    ckpt, data = two_class_run
    with caplog.at_level(logging.WARNING):
        validate(ckpt, synthetic(data, 2), tmp_path, "--model.head_width=32", "--model.box_loss=l1")
    warning = next(r.getMessage() for r in caplog.records if "replace the configured ones" in r.getMessage())
    assert str(ckpt) in warning and "head_width: 32 -> 16" in warning and "box_loss: 'l1' -> 'giou'" in warning


@pytest.mark.parametrize("damage", ["truncated", "random bytes", "empty", "text"])
def test_unreadable_checkpoint_is_named(two_class_run, tmp_path: Path, damage: str) -> None:
    ckpt, data = two_class_run
    content = ckpt.read_bytes()
    bad = tmp_path / "bad.ckpt"
    bad.write_bytes(
        {
            "truncated": content[: len(content) // 2],
            "random bytes": np.random.default_rng(0).bytes(4096),
            "empty": b"",
            "text": b"epoch: 3\n",
        }[damage]
    )
    for attempt in (
        lambda: validate(bad, synthetic(data, 2), tmp_path),
        lambda: load_matching_weights(CenterNet(2, neck="simple", head_width=8), bad),
    ):
        with pytest.raises(ValueError, match="is not a readable checkpoint") as error:
            attempt()
        assert str(bad) in str(error.value) and "weights_only=False" not in str(error.value)


@pytest.mark.parametrize(
    ("option", "message"),
    [
        ("--model.optimizer={name: AdamW, lr: fast}", "model.optimizer.lr must be a number, got 'fast'"),
        ("--model.optimizer={name: AdamW, lrr: 0.1}", "model.optimizer.lrr: AdamW has no parameter 'lrr'"),
        ("--model.optimizer={name: SGD, lr: 0.1, nesterov: maybe}", "model.optimizer.nesterov must be true or false"),
        ("--model.optimizer={name: Adam, betas: 0.9}", "model.optimizer.betas must be a list like"),
        ("--model.optimizer={name: AdamW, lr: -1.0}", "model.optimizer: AdamW rejects the settings .*Invalid learning"),
        ("--model.lr_scheduler={name: StepLR, step_size: ten}", "model.lr_scheduler.step_size must be a number"),
        ("--model.lr_scheduler={name: warmup_cosine, warmup: 5}", "model.lr_scheduler: unknown warmup_cosine"),
        ("--model.lr_scheduler={name: warmup_cosine, warmup_steps: soon}", "model.lr_scheduler: warmup_steps must be"),
        ("--model.lr_scheduler={name: StepLR, step_size: 2, gammma: 0.5}", "StepLR has no parameter .gammma."),
    ],
)
def test_bad_optimization_settings_name_key_and_value(option: str, message: str, tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=message):
        make_cli([*TINY, *synthetic(tmp_path, 2), option], run=False)


def test_numbers_written_as_strings_are_accepted(tmp_path: Path) -> None:
    cli = make_cli([*TINY, *synthetic(tmp_path, 2), "--model.optimizer={name: AdamW, lr: '1e-3'}"], run=False)
    assert cli.model.configure_optimizers()["optimizer"].param_groups[0]["lr"] == pytest.approx(1e-3)


def test_predict_skips_a_corrupt_image_when_asked(two_class_run, tmp_path: Path, caplog) -> None:
    ckpt, _ = two_class_run
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ("a.png", "c.png"):
        cv2.imwrite(str(folder / name), np.full((40, 50, 3), 128, np.uint8))
    (folder / "b.png").write_bytes(b"not a png")
    args = [
        "predict",
        *TINY,
        f"--data.data_dir={tmp_path / 'nonexistent'}",
        "--data.train_split=null",
        "--data.val_split=null",
        "--data.class_names=[circle, rectangle]",
        f"--data.predict_dir={folder}",
        f"--ckpt_path={ckpt}",
        f"--prediction_writer.output_dir={tmp_path / 'out'}",
        "--prediction_writer.score_threshold=0",
        f"--trainer.default_root_dir={tmp_path}",
    ]
    with pytest.raises(OSError, match="b.png"):
        make_cli(args)
    with caplog.at_level(logging.WARNING):
        make_cli([*args, "--data.skip_bad_images=true"])
    written = sorted((tmp_path / "out").glob("predict*/predictions.json"))[-1]
    assert {Path(entry["file_name"]).name for entry in json.loads(written.read_text())} == {"a.png", "c.png"}
    assert any("b.png" in r.getMessage() and "Skipping bad image" in r.getMessage() for r in caplog.records)


def test_checkpoint_settings_this_version_lacks_are_dropped_and_init_weights_kept(two_class_run, tmp_path, caplog):
    import torch

    ckpt, data = two_class_run
    checkpoint = torch.load(ckpt, map_location="cpu", weights_only=True)
    checkpoint["hyper_parameters"]["old_option"] = 3
    checkpoint["hyper_parameters"]["init_weights"] = "/machine/that/trained/it/base.ckpt"
    edited = tmp_path / "edited.ckpt"
    torch.save(checkpoint, edited)
    with caplog.at_level(logging.WARNING):
        validate(edited, synthetic(data, 2), tmp_path)  # neither aborts nor looks for base.ckpt
    assert any("does not know, ignored: ['old_option']" in r.getMessage() for r in caplog.records)


def test_resuming_from_a_weights_only_checkpoint_says_to_fine_tune(two_class_run, tmp_path):
    from centernet_lightning.tasks import save_checkpoint
    from centernet_lightning.weights import read_checkpoint

    ckpt, data = two_class_run
    model = CenterNet(**{k: v for k, v in read_checkpoint(ckpt)["hyper_parameters"].items() if not k.startswith("_")})
    weights_only = save_checkpoint(model, tmp_path / "converted.ckpt")
    with pytest.raises(ValueError, match=r"holds weights only .* use --model.init_args.init_weights"):
        make_cli(
            [
                "fit",
                *TINY,
                *synthetic(data, 2),
                f"--ckpt_path={weights_only}",
                "--trainer.max_steps=1",
                f"--trainer.default_root_dir={tmp_path}",
            ]
        )


def test_an_error_of_what_the_user_gave_is_one_line_from_the_command(tmp_path: Path) -> None:
    """From the command line (exit_on_error): the model's own error, not the parser's report of the
    Union it could not build (every type tried, the whole configuration repeated), and no traceback;
    the run folder of a fit that failed before its first step is removed."""
    missing = tmp_path / "missing.ckpt"
    args = ["fit", *TINY, *synthetic(tmp_path / "data", 2), f"--model.init_args.init_weights={missing}"]
    args.append(f"--trainer.default_root_dir={tmp_path / 'runs'}")
    with pytest.raises(FileNotFoundError):
        make_cli(args)  # from Python: the exception itself
    with pytest.raises(SystemExit) as exit_info:
        make_cli(args, exit_on_error=True)
    assert exit_info.value.code == f"centernet fit: Checkpoint file not found: {missing}"
    assert not (tmp_path / "runs").exists()
