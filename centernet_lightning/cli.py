"""The ``centernet`` command.

``centernet fit|validate|test|predict`` are LightningCLI subcommands (``--config``, dotted
overrides, ``--print_config``); ``centernet data synth`` writes the synthetic dataset and
``centernet demo`` runs the whole job on it.
"""

from __future__ import annotations

import argparse
import inspect
import logging
import sys
import warnings
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import torch
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, RichProgressBar
from lightning.pytorch.cli import LightningCLI

from .callbacks import PredictionWriter, ValidationImageLogger
from .checkpoint import check_checkpoint_classes, describe_hparam_changes, read_checkpoint, save_checkpoint
from .datasets.coco import COCO_CATEGORY_IDS, COCO_CLASSES
from .datasets.datamodule import DetectionDataModule
from .datasets.synthetic import generate_synthetic_dataset
from .eval import COCOEvaluation
from .eval.mot_callback import MOTEvaluation
from .inference import InferenceSpec
from .models.centernet import CenterNet, build_centernet
from .models.fairmot import FairMOT
from .models.info import format_info, model_info
from .models.original_weights import load_original_weights, read_original_state_dict

__all__ = ["CenterNetCLI", "TrackingCLI", "is_tracking_config", "main"]

log = logging.getLogger("centernet_lightning")

DESCRIPTION = """CenterNet object detection.

Subcommands: fit, validate, test, predict (Lightning; see `centernet fit --help`),
`centernet data synth --out DIR` (write the synthetic dataset),
`centernet demo --out runs/demo` (generate data, train, evaluate, draw predictions),
`centernet demo-track --out runs/demo_track` (the same for FairMOT tracking: HOTA/MOTA/IDF1),
`centernet info --config X` (parameters and GFLOPs per part) and
`centernet convert-weights ORIG.pth --config X --out model.ckpt` (original CenterNet weights) and
`centernet export --ckpt_path best.ckpt --format onnx|torchscript` (decoding inside the graph),
`centernet predict --ckpt_path best.ckpt --source PATH` (images, folders, globs or videos; no config) and
`centernet benchmark --ckpt_path best.ckpt` (latency, images/s and GFLOPs per backend) and
`centernet track --ckpt_path model.ckpt --source VIDEO_OR_FRAMES` (MOTChallenge results + drawn video)."""


def _is_local_path(ckpt_path: str) -> bool:
    """False for Lightning's own checkpoint forms: last/best/hpc, registry:..., remote URLs."""
    return ckpt_path not in ("last", "best", "hpc") and not ckpt_path.startswith("registry") and "://" not in ckpt_path


def _as_dict(namespace: Any) -> dict[str, Any]:
    if namespace is None:
        return {}
    return namespace.as_dict() if hasattr(namespace, "as_dict") else dict(namespace)


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


@contextmanager
def _command_line_consumed() -> Iterator[None]:
    """Hide the process's own arguments while LightningCLI parses ``args`` built from them (it
    warns when it sees both)."""
    saved = sys.argv
    sys.argv = saved[:1]
    try:
        yield
    finally:
        sys.argv = saved


class CenterNetCLI(LightningCLI):
    """LightningCLI for CenterNet + DetectionDataModule with the library's default callbacks.

    Extra config groups: ``coco_eval`` (COCOEvaluation: COCO metrics of every validation),
    ``checkpoint`` (ModelCheckpoint: best ``val/AP``), ``last_checkpoint``
    (ModelCheckpoint: ``last.ckpt``, refreshed at every validation or epoch end),
    ``val_images`` (ValidationImageLogger), ``prediction_writer`` (PredictionWriter),
    ``progress_bar`` (RichProgressBar) and ``lr_monitor`` (LearningRateMonitor).
    """

    def _parse_ckpt_path(self) -> None:
        """Read ``--ckpt_path``'s hyperparameters into the config, as LightningCLI does, but safely.

        A truncated or foreign file gets an error naming it (not torch's deserialiser errors);
        model settings the checkpoint replaces are listed in a warning (LightningCLI replaces
        them silently); settings this version no longer knows are dropped with a warning instead
        of aborting; ``init_weights`` stays as configured (the checkpoint holds the weights, and
        the file it was fine-tuned from need not exist here). Lightning's own forms (``last``,
        ``best``, ``registry:...``, remote URLs) go to Lightning unchanged.
        """
        self.checkpoint: dict[str, Any] | None = None
        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if not ckpt_path or not _is_local_path(str(ckpt_path)):
            return super()._parse_ckpt_path()
        self.checkpoint = read_checkpoint(ckpt_path)
        hparams = dict(self.checkpoint.get("hyper_parameters") or {})
        hparams.pop("_instantiator", None)
        if not hparams:
            return
        known = set(inspect.signature(CenterNet.__init__).parameters) - {"self"}
        unknown = sorted(set(hparams) - known)
        if unknown:
            log.warning("Checkpoint %s has model settings this version does not know, ignored: %s", ckpt_path, unknown)
        configured = _as_dict(self.config[subcommand].get("model"))
        # init_weights: the checkpoint holds the weights; tta: an inference choice of this run
        from_checkpoint = {k: v for k, v in hparams.items() if k in known and k not in ("init_weights", "tta")}
        self.config = self.parser.parse_object({subcommand: {"model": from_checkpoint}}, self.config)
        changes = describe_hparam_changes(configured, _as_dict(self.config[subcommand].get("model")))
        if changes:
            log.warning(
                "The model settings of checkpoint %s replace the configured ones: %s",
                ckpt_path,
                "; ".join(changes),
            )

    def _check_checkpoint_fits(self) -> None:
        if self.checkpoint is not None:
            ckpt_path = self.config[self.subcommand]["ckpt_path"]
            check_checkpoint_classes(ckpt_path, self.checkpoint, self.model.num_classes, self.datamodule.class_names)

    def before_fit(self) -> None:
        self._check_checkpoint_fits()
        if self.checkpoint is not None and "optimizer_states" not in self.checkpoint:
            ckpt_path = self.config[self.subcommand]["ckpt_path"]
            raise ValueError(
                f"{ckpt_path} holds weights only (no optimizer state, e.g. from convert-weights), so training "
                f"cannot resume from it; to fine-tune from it use --model.init_weights {ckpt_path}"
            )

    def before_validate(self) -> None:
        self._check_checkpoint_fits()

    def before_test(self) -> None:
        self._check_checkpoint_fits()

    def before_predict(self) -> None:
        self._check_checkpoint_fits()

    def add_arguments_to_parser(self, parser) -> None:
        parser.link_arguments("data.num_classes", "model.num_classes", apply_on="instantiate")
        parser.link_arguments("data.class_names", "model.class_names", apply_on="instantiate")
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults(
            {
                "checkpoint.monitor": "val/AP",
                "checkpoint.mode": "max",
                "checkpoint.save_last": False,
                "checkpoint.filename": "best-epoch{epoch:03d}",
                "checkpoint.auto_insert_metric_name": False,
            }
        )
        # last.ckpt comes from a second, unmonitored ModelCheckpoint: since Lightning 2.6 the
        # monitored one refreshes its save_last file only in epochs whose metric improved, so
        # resuming from it could silently go back several epochs.
        parser.add_lightning_class_args(ModelCheckpoint, "last_checkpoint")
        parser.set_defaults(
            {
                "last_checkpoint.filename": "last",
                "last_checkpoint.monitor": None,
                "last_checkpoint.save_top_k": 1,
                "last_checkpoint.enable_version_counter": False,
            }
        )
        parser.add_lightning_class_args(COCOEvaluation, "coco_eval")
        parser.add_lightning_class_args(ValidationImageLogger, "val_images")
        parser.add_lightning_class_args(PredictionWriter, "prediction_writer")
        parser.add_lightning_class_args(RichProgressBar, "progress_bar")
        parser.add_lightning_class_args(LearningRateMonitor, "lr_monitor")
        parser.set_defaults({"lr_monitor.logging_interval": "step"})


class TrackingCLI(LightningCLI):
    """LightningCLI for FairMOT + DetectionDataModule (a tracking dataset), chosen by ``main`` for
    configs whose ``model.class_path`` is ``centernet_lightning.models.FairMOT``.

    Extra config groups: ``mot_eval`` (MOTEvaluation: HOTA/MOTA/IDF1 of every validation),
    ``checkpoint`` (best ``val/IDF1``), ``last_checkpoint``, ``progress_bar``, ``lr_monitor``. The
    class count, class names and identity count come from the data.
    """

    def _parse_ckpt_path(self) -> None:
        """The config describes the model; ``--ckpt_path`` only gives the weights (read safely)."""
        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if ckpt_path and _is_local_path(str(ckpt_path)):
            read_checkpoint(ckpt_path)  # a clear error for an unreadable file, before any work

    def add_arguments_to_parser(self, parser) -> None:
        parser.link_arguments("data.num_classes", "model.init_args.num_classes", apply_on="instantiate")
        parser.link_arguments("data.class_names", "model.init_args.class_names", apply_on="instantiate")
        parser.link_arguments("data.num_identities", "model.init_args.num_identities", apply_on="instantiate")
        parser.add_lightning_class_args(MOTEvaluation, "mot_eval")
        parser.add_lightning_class_args(ModelCheckpoint, "checkpoint")
        parser.set_defaults(
            {
                "checkpoint.monitor": "val/IDF1",
                "checkpoint.mode": "max",
                "checkpoint.filename": "best-epoch{epoch:03d}",
                "checkpoint.auto_insert_metric_name": False,
            }
        )
        parser.add_lightning_class_args(ModelCheckpoint, "last_checkpoint")
        parser.set_defaults(
            {
                "last_checkpoint.filename": "last",
                "last_checkpoint.monitor": None,
                "last_checkpoint.save_top_k": 1,
                "last_checkpoint.enable_version_counter": False,
            }
        )
        parser.add_lightning_class_args(RichProgressBar, "progress_bar")
        parser.add_lightning_class_args(LearningRateMonitor, "lr_monitor")
        parser.set_defaults({"lr_monitor.logging_interval": "step"})


def is_tracking_config(args: list[str]) -> bool:
    """Whether a ``--config`` among ``args`` is a tracking config (``model.class_path`` FairMOT)."""
    import yaml

    for index, arg in enumerate(args):
        if arg in ("--config", "-c") and index + 1 < len(args):
            path = Path(args[index + 1])
        elif arg.startswith("--config="):
            path = Path(arg.split("=", 1)[1])
        else:
            continue
        if path.is_file():
            model = (yaml.safe_load(path.read_text()) or {}).get("model")
            if isinstance(model, dict) and str(model.get("class_path", "")).rsplit(".", 1)[-1] == "FairMOT":
                return True
    return False


def make_cli(args: list[str] | None, run: bool = True) -> LightningCLI:
    """Build (and by default run) the Lightning CLI on ``args`` (None: the command line): the
    tracking CLI for a FairMOT config, else the detection CLI."""
    with _command_line_consumed() if args is not None else nullcontext():
        return _make_cli(args, run)


def _make_cli(args: list[str] | None, run: bool) -> LightningCLI:
    tracking = is_tracking_config(sys.argv[1:] if args is None else args)
    options: dict[str, Any] = dict(
        args=args,
        run=run,
        seed_everything_default=0,
        save_config_kwargs={"overwrite": True},
        trainer_defaults={
            "logger": {
                "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
                "init_args": {"save_dir": "runs", "name": "fairmot" if tracking else "centernet"},
            }
        },
        parser_kwargs={"description": DESCRIPTION},
    )
    if tracking:
        return TrackingCLI(FairMOT, DetectionDataModule, subclass_mode_model=True, **options)
    return CenterNetCLI(CenterNet, DetectionDataModule, **options)


def synth_main(argv: list[str]) -> None:
    """``centernet data synth``: write the built-in synthetic dataset in COCO format."""
    parser = argparse.ArgumentParser(prog="centernet data synth", description=generate_synthetic_dataset.__doc__)
    parser.add_argument("--out", required=True, help="destination folder (must be missing or empty)")
    parser.add_argument("--num-train", type=int, default=300)
    parser.add_argument("--num-val", type=int, default=100)
    parser.add_argument("--image-size", type=int, default=256)
    parser.add_argument("--num-classes", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--overwrite", action="store_true", help="allow writing into a non-empty folder")
    args = parser.parse_args(argv)
    out = generate_synthetic_dataset(
        args.out,
        num_train=args.num_train,
        num_val=args.num_val,
        image_size=args.image_size,
        num_classes=args.num_classes,
        seed=args.seed,
        overwrite=args.overwrite,
    )
    print(f"Synthetic dataset written to {out} (COCO format: annotations/instances_{{train,val}}.json)")


def _model_from_config(config: str, num_classes: int | None) -> CenterNet:
    """The config's model with a randomly initialised backbone (no ImageNet download: ``info``
    needs none, ``convert-weights`` overwrites every weight)."""
    return build_centernet(_untrained_section(config), num_classes=num_classes)


def _untrained_section(config: str) -> dict[str, Any]:
    """The config's model arguments with ``pretrained: false`` and no ``init_weights``."""
    section = _model_section(config)
    backbone = section.get("backbone", "resnet18")
    section["backbone"] = {**({"name": backbone} if isinstance(backbone, str) else backbone), "pretrained": False}
    section.pop("init_weights", None)
    return section


def _model_section(config: str) -> dict[str, Any]:
    import yaml

    path = Path(config)
    if not path.is_file():
        sys.exit(f"Config not found: {config}")
    data = yaml.safe_load(path.read_text()) or {}
    section = dict(data.get("model") or {}) if "model" in data else dict(data)
    return dict(section.get("init_args") or section)


def info_main(argv: list[str]) -> None:
    """``centernet info``: parameters and GFLOPs per part of a config's model."""
    parser = argparse.ArgumentParser(prog="centernet info", description=info_main.__doc__)
    parser.add_argument("--config", required=True, help="a fit config (or a model section) YAML file")
    parser.add_argument("--input-size", type=int, default=512, help="square input side in pixels")
    parser.add_argument(
        "--num-classes", type=int, default=None, help="class count when the config leaves it to the data (default 80)"
    )
    args = parser.parse_args(argv)
    tracking = is_tracking_config(["--config", args.config])
    num_classes = args.num_classes or _model_section(args.config).get("num_classes") or (1 if tracking else 80)
    if tracking:  # FairMOT: the detector and its re-ID head; the identity classifier (training only) is not listed
        section = {"num_identities": 1, "embedding_scale": 1.0, **_untrained_section(args.config)}
        model = FairMOT(**{**section, "num_classes": num_classes})
    else:
        model = _model_from_config(args.config, num_classes)
    rows = model_info(model, args.input_size)
    print(f"{args.config}: {model.num_classes} classes, input {args.input_size}x{args.input_size}")
    print(format_info(rows))


def convert_weights_main(argv: list[str]) -> None:
    """``centernet convert-weights``: an original CenterNet checkpoint as a checkpoint of ours."""
    parser = argparse.ArgumentParser(prog="centernet convert-weights", description=convert_weights_main.__doc__)
    parser.add_argument(
        "original", help="original file, e.g. ctdet_coco_resdcn18.pth / ctdet_coco_dla_2x.pth / ctdet_coco_hg.pth"
    )
    parser.add_argument("--config", required=True, help="the matching configs/paper/*.yaml")
    parser.add_argument("--out", required=True, help="the checkpoint to write (never overwritten)")
    args = parser.parse_args(argv)
    original = read_original_state_dict(args.original)
    heatmap_keys = [key for key in original if key.endswith("weight") and key.split(".")[0] == "hm"]
    num_classes = int(original[sorted(heatmap_keys)[-1]].shape[0]) if heatmap_keys else 80
    model = _model_from_config(args.config, num_classes)
    if num_classes == len(COCO_CLASSES):  # the original models are trained on COCO at 512 px
        model.hparams.class_names = list(COCO_CLASSES)
        model.inference_spec = InferenceSpec(class_names=list(COCO_CLASSES), category_ids=list(COCO_CATEGORY_IDS))
    untouched = load_original_weights(model, args.original)
    out = save_checkpoint(model, args.out)
    print(
        f"Converted {args.original} ({num_classes} classes) into {out}"
        + (f"; {len(untouched)} tensors kept their initialisation" if untouched else "")
    )
    print(f"Use it with: centernet validate --config {args.config} --ckpt_path {out}")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``centernet`` console script."""
    from_command_line = argv is None
    argv = sys.argv[1:] if argv is None else list(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    quiet_library_noise()
    torch.set_float32_matmul_precision("high")
    if argv[:2] == ["data", "synth"]:
        synth_main(argv[2:])
    elif argv[:1] == ["data"]:
        sys.exit("usage: centernet data synth --out DIR [--num-train N] [--num-val N] [--image-size PX] ...")
    elif argv[:1] == ["demo"]:
        from .demos import demo_main

        demo_main(argv[1:])
    elif argv[:1] == ["demo-track"]:
        from .demos import demo_track_main

        demo_track_main(argv[1:])
    elif argv[:1] == ["info"]:
        info_main(argv[1:])
    elif argv[:1] == ["convert-weights"]:
        convert_weights_main(argv[1:])
    elif argv[:1] == ["predict"] and any(arg.split("=")[0] == "--source" for arg in argv[1:]):
        from .inference.command import predict_main

        predict_main(argv[1:])
    elif argv[:1] == ["track"]:
        from .inference.track_command import track_main

        track_main(argv[1:])
    elif argv[:1] == ["benchmark"]:
        from .deploy.benchmark import benchmark_main  # ONNX tools are an optional extra: import on use

        benchmark_main(argv[1:])
    elif argv[:1] == ["export"]:
        from .deploy.export import export_main  # ONNX tools are an optional extra: import on use

        export_main(argv[1:])
    else:
        if argv[:1] in (["validate"], ["test"], ["predict"]) and any(a.split("=")[0] == "--tta" for a in argv):
            # `--tta flip` is short for `--model.tta flip` (test-time augmentation of this run)
            argv = [f"--model.tta{arg[5:]}" if arg.split("=")[0] == "--tta" else arg for arg in argv]
            from_command_line = False
        make_cli(None if from_command_line else argv)


if __name__ == "__main__":
    main()
