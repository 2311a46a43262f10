"""The ``centernet`` command: a table of subcommands, each in its own module, imported when run.

``fit``, ``validate`` and ``test`` are Lightning's CLI (:mod:`.lightning`: ``--config``, dotted
overrides, ``--print_config``); ``predict`` is the one prediction command on images, folders, globs,
videos and streams (:mod:`.predict`), and Lightning's datamodule-driven predict when given a
``--config`` and no ``--source``; the others are small commands of their own. Nothing heavy is
imported before a command runs, so ``centernet --help``, ``--version`` and ``COMMAND --help`` answer
at once (``benchmarks/cli_startup.py``).
"""

from __future__ import annotations

import importlib
import logging
import sys
import warnings

__all__ = ["COMMANDS", "main", "quiet_library_noise"]

# name: (module under centernet_lightning.cli, its entry point, one line of help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "fit": ("lightning", "", "train a model from a config (Lightning CLI)"),
    "validate": ("lightning", "", "COCO (and tracking) metrics of a checkpoint on the validation split"),
    "test": ("lightning", "", "the same on the test split"),
    "predict": ("predict", "predict_main", "detect objects in images, folders, globs or videos (--source)"),
    "track": ("track", "track_main", "track objects in a video or a frame folder (MOTChallenge txt + video)"),
    "eval-mot": ("eval_mot", "eval_mot_main", "HOTA/MOTA/IDF1 of MOTChallenge results against ground truth"),
    "export": ("export", "export_main", "export a checkpoint to ONNX or TorchScript, decoding in the graph"),
    "benchmark": ("benchmark", "benchmark_main", "latency, images/s and GFLOPs per inference backend"),
    "info": ("info", "info_main", "parameters and GFLOPs per part of a config's model"),
    "convert-weights": ("convert_weights", "convert_weights_main", "original CenterNet weights as a checkpoint"),
    "data": ("data", "data_main", "write the built-in synthetic dataset (data synth --out DIR)"),
    "demo": ("demos", "demo_main", "synthetic data, training, COCO AP and drawn predictions"),
    "demo-track": ("demos", "demo_track_main", "the same for FairMOT tracking: HOTA/MOTA/IDF1 and a video"),
    "demo-pose": ("demos", "demo_pose_main", "the same for keypoints (human pose): keypoint AP and drawn skeletons"),
}
LIGHTNING_COMMANDS = ("fit", "validate", "test")
# Commands that run no model: they check their inputs first and import what they need themselves.
MODEL_FREE_COMMANDS = ("eval-mot",)
HELP_FLAGS = ("-h", "--help")


class _DropMessages(logging.Filter):
    """Drops log records whose message contains one of ``fragments`` (advertising, not information)."""

    def __init__(self, *fragments: str) -> None:
        super().__init__()
        self.fragments = fragments

    def filter(self, record: logging.LogRecord) -> bool:
        return not any(fragment in record.getMessage() for fragment in self.fragments)


def quiet_library_noise() -> None:
    """Silence what a newcomer should not see: Lightning's litlogger tip and deprecation
    warnings raised inside the libraries we call (not in this package's own code)."""
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.pytorch"):
        logging.getLogger(name).addFilter(_DropMessages("litlogger"))
    warnings.filterwarnings("ignore", category=DeprecationWarning, module=r"(lightning|torch|jsonargparse|timm)\b")
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\)")


def _usage() -> str:
    width = max(len(name) for name in COMMANDS)
    lines = [f"  {name:<{width}}  {help_line}" for name, (_, _, help_line) in COMMANDS.items()]
    return (
        "usage: centernet COMMAND [options]  (centernet COMMAND --help for its options)\n"
        "       centernet --version\n\ncommands:\n" + "\n".join(lines)
    )


def _version() -> str:
    from importlib.metadata import version

    return f"centernet-lightning {version('centernet-lightning')}"


def _has_option(argv: list[str], *names: str) -> bool:
    """Whether ``argv`` holds one of the options ``names`` (``--name value`` or ``--name=value``)."""
    return any(arg.split("=")[0] in names for arg in argv)


def _lightning_predict(argv: list[str]) -> bool:
    """Lightning's datamodule-driven predict: no ``--source``, but a ``--config`` or a dotted option
    of Lightning's CLI (``--data.predict_dir``, ``--trainer.*``); everything else (``--help``
    included) is the everyday command."""
    dotted = any(arg.startswith("--") and "." in arg.split("=")[0] for arg in argv)
    return not _has_option(argv, "--source") and (dotted or _has_option(argv, "--config", "-c"))


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``centernet`` console script."""
    from_command_line = argv is None
    argv = sys.argv[1:] if argv is None else list(argv)
    if not argv or argv[0] in HELP_FLAGS:
        print(_usage())
        return
    if argv[0] in ("-V", "--version"):
        print(_version())
        return
    command, options = argv[0], argv[1:]
    if command not in COMMANDS:
        sys.exit(f"centernet: unknown command {command!r}\n\n{_usage()}")
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    quiet_library_noise()
    if command not in MODEL_FREE_COMMANDS and not _has_option(options, *HELP_FLAGS):  # help needs no torch
        import torch

        torch.set_float32_matmul_precision("high")
    module_name, entry, _ = COMMANDS[command]
    lightning = command in LIGHTNING_COMMANDS or (command == "predict" and _lightning_predict(options))
    if lightning:
        module_name, entry = "lightning", ""
    module = importlib.import_module(f"{__name__}.{module_name}")
    if entry:
        getattr(module, entry)(options)
        return
    if _has_option(options, "--tta"):
        # `--tta flip` is short for `--model.init_args.tta flip` (test-time augmentation of this run)
        argv = [f"--model.init_args.tta{arg[5:]}" if arg.split("=")[0] == "--tta" else arg for arg in argv]
        from_command_line = False
    module.make_cli(None if from_command_line else argv, exit_on_error=True)
