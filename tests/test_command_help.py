"""The ``centernet`` command's surface: every command listed, ``--version``, and help that answers
without importing torch or Lightning (the start-up times are in benchmarks/cli_startup.py)."""

from __future__ import annotations

import subprocess
import sys

import pytest

from centernet_lightning.cli import COMMANDS, _lightning_predict

HEAVY = ("torch", "lightning", "torchvision", "timm", "cv2")
PROGRAM = """
import sys
from centernet_lightning.cli import main
try:
    main({argv!r})
except SystemExit as exit:
    print("EXIT", exit.code)
print("HEAVY", sorted(name for name in {heavy!r} if name in sys.modules))
"""


def run_main(argv: list[str]) -> subprocess.CompletedProcess:
    """``centernet ARGV`` in a fresh interpreter that reports the heavy modules it imported."""
    program = PROGRAM.format(argv=argv, heavy=HEAVY)
    return subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120)


def test_help_lists_every_command_with_a_line_and_imports_nothing_heavy() -> None:
    done = run_main(["--help"])
    assert done.returncode == 0, done.stderr
    for name, (_, _, help_line) in COMMANDS.items():
        assert f"  {name} " in done.stdout and help_line in done.stdout, name
    assert "--version" in done.stdout
    assert "HEAVY []" in done.stdout


def test_version_is_the_installed_distributions() -> None:
    from importlib.metadata import version

    done = subprocess.run(
        [sys.executable, "-m", "centernet_lightning.cli", "--version"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and done.stdout.strip() == f"centernet-lightning {version('centernet-lightning')}"


def test_unknown_command_names_it_and_lists_the_commands() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "centernet_lightning.cli", "trian"], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 1
    assert "unknown command 'trian'" in done.stderr and "convert-weights" in done.stderr


@pytest.mark.parametrize(
    "command", ["predict", "track", "eval-mot", "export", "benchmark", "convert-weights", "info", "data"]
)
def test_command_help_imports_neither_torch_nor_lightning(command: str) -> None:
    done = run_main([command, "--help"])
    assert "EXIT 0" in done.stdout, done.stderr[-2000:]
    assert "HEAVY []" in done.stdout, done.stdout[-500:]


def test_predict_help_shows_the_everyday_options() -> None:
    done = run_main(["predict", "--help"])
    for option in ("--model", "--source", "--conf", "--backend", "--imgsz", "--classes"):
        assert option in done.stdout, option
    assert "--trainer" not in done.stdout  # not Lightning's 1,000-line help


def test_import_of_the_package_is_lazy_and_names_resolve() -> None:
    program = (
        "import sys, centernet_lightning as c; assert 'torch' not in sys.modules; "
        "from centernet_lightning.tasks.centernet import CenterNet; assert c.CenterNet is CenterNet; "
        "assert 'CenterNet' in dir(c); print('OK')"
    )
    done = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120)
    assert done.stdout.strip() == "OK", done.stderr[-2000:]


@pytest.mark.parametrize(
    ("argv", "lightning"),
    [
        (["--help"], False),
        (["--model", "best.ckpt", "--source", "photos/"], False),
        (["--config", "configs/demo.yaml"], True),
        (["--ckpt_path=last.ckpt", "--data.predict_dir=photos/"], True),
        (["--config", "configs/demo.yaml", "--source", "photos/"], False),
    ],
)
def test_predict_runs_lightnings_datamodule_path_only_for_its_options(argv: list[str], lightning: bool) -> None:
    assert _lightning_predict(argv) is lightning
