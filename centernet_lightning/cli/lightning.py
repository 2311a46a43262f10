"""``centernet fit|validate|test|predict``: Lightning's CLI over the models and the data module.

One :class:`CenterNetCLI` serves detection and tracking: the config's ``model.class_path`` names
the LightningModule (``centernet_lightning.CenterNet``, the default, or
``centernet_lightning.FairMOT``), ``init_args`` its arguments; the class count, class names and
identity count are linked from the data. ``--ckpt_path``'s hyperparameters and class replace the
configured ones (read safely, see :meth:`CenterNetCLI._parse_ckpt_path`).
"""

from __future__ import annotations

import inspect
import logging
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from typing import Any

from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, RichProgressBar
from lightning.pytorch.cli import LightningCLI

from ..callbacks import COCOEvaluation, MOTEvaluation, PredictionWriter, ValidationImageLogger
from ..datasets.datamodule import DetectionDataModule
from ..tasks import CenterNet
from ..tasks.loading import task_of_checkpoint
from ..weights import read_checkpoint

__all__ = ["CenterNetCLI", "make_cli", "describe_hparam_changes", "check_checkpoint_classes"]

log = logging.getLogger("centernet_lightning")

DESCRIPTION = """Train, validate, test or predict with a config: `centernet fit --config configs/demo.yaml`.
The config's model.class_path is centernet_lightning.CenterNet (detection, the default) or
centernet_lightning.FairMOT (tracking); every key can be overridden (--model.init_args.head_width 64)."""
# Tracking configs name their runs "fairmot" (configs/demo_track.yaml).
DEFAULT_LOGGER = {
    "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
    "init_args": {"save_dir": "runs", "name": "centernet"},
}


def _is_local_path(ckpt_path: str) -> bool:
    """False for Lightning's own checkpoint forms: last/best/hpc, registry:..., remote URLs."""
    return ckpt_path not in ("last", "best", "hpc") and not ckpt_path.startswith("registry") and "://" not in ckpt_path


def _as_dict(namespace: Any) -> dict[str, Any]:
    if namespace is None:
        return {}
    return namespace.as_dict() if hasattr(namespace, "as_dict") else dict(namespace)


def _class_path(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def describe_hparam_changes(configured: Mapping[str, Any], from_checkpoint: Mapping[str, Any]) -> list[str]:
    """``key: configured -> checkpoint`` for every model setting a checkpoint changes."""
    ignored = {"num_classes", "class_names", "num_identities", "init_weights"}  # linked from the data / fine-tuning
    changes = []
    for key in sorted(set(configured) & set(from_checkpoint) - ignored):
        if configured[key] != from_checkpoint[key]:
            changes.append(f"{key}: {configured[key]!r} -> {from_checkpoint[key]!r}")
    return changes


def check_checkpoint_classes(
    path: str, checkpoint: Mapping[str, Any], num_classes: int, class_names: Sequence[str] | None
) -> None:
    """ValueError when a checkpoint was trained on another number of classes than the data has;
    a warning when the counts agree but the names differ."""
    hparams = checkpoint.get("hyper_parameters") or {}
    trained_classes = hparams.get("num_classes")
    trained_names = hparams.get("class_names")
    if trained_classes is None:
        return
    if int(trained_classes) != int(num_classes):
        raise ValueError(
            f"Checkpoint {path} was trained on {trained_classes} classes ({_names(trained_names)}) but the data "
            f"has {num_classes} ({_names(class_names)}). Use a checkpoint of this dataset, or fine-tune from it "
            "with --model.init_args.init_weights (the heatmap head is then re-initialised)."
        )
    if trained_names and class_names and list(trained_names) != list(class_names):
        log.warning(
            "Checkpoint %s names its %d classes %s, the data %s: labels are matched by position.",
            path,
            num_classes,
            list(trained_names),
            list(class_names),
        )


def _names(names: Sequence[str] | None) -> str:
    if not names:
        return "names unknown"
    shown = ", ".join(map(str, list(names)[:10]))
    return shown + (", ..." if len(names) > 10 else "")


class CenterNetCLI(LightningCLI):
    """LightningCLI for CenterNet / FairMOT + DetectionDataModule with the library's callbacks.

    Extra config groups: ``checkpoint`` (ModelCheckpoint: the best ``val/AP``; tracking configs
    monitor ``val/IDF1``), ``last_checkpoint`` (ModelCheckpoint: ``last.ckpt``, refreshed at every
    validation or epoch end), ``coco_eval`` (COCOEvaluation: COCO metrics of every validation),
    ``mot_eval`` (MOTEvaluation: HOTA/MOTA/IDF1 of validation sequences, for tracking datasets),
    ``val_images`` (ValidationImageLogger), ``prediction_writer`` (PredictionWriter),
    ``progress_bar`` (RichProgressBar) and ``lr_monitor`` (LearningRateMonitor).
    """

    def _parse_ckpt_path(self) -> None:
        """Read ``--ckpt_path``'s class and hyperparameters into the config, as LightningCLI does,
        but safely (Lightning's own version loads them raw, which this replaces).

        A truncated or foreign file gets an error naming it (not torch's deserialiser errors); the
        checkpoint's class replaces the configured one (a warning says so when they differ); model
        settings the checkpoint replaces are listed in a warning (LightningCLI replaces them
        silently); settings this version no longer knows are dropped with a warning instead of
        aborting; ``init_weights`` and ``tta`` stay as configured (the checkpoint holds the
        weights, and the file it was fine-tuned from need not exist here; test-time augmentation
        is a choice of this run). Lightning's own forms (``last``, ``best``, ``registry:...``,
        remote URLs) go to Lightning unchanged.
        """
        self.checkpoint: dict[str, Any] | None = None
        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if not ckpt_path or not _is_local_path(str(ckpt_path)):
            return super()._parse_ckpt_path()
        self.checkpoint = read_checkpoint(ckpt_path)
        hparams = {k: v for k, v in (self.checkpoint.get("hyper_parameters") or {}).items() if not k.startswith("_")}
        if not hparams:
            return
        task = task_of_checkpoint(self.checkpoint)
        known = set(inspect.signature(task.__init__).parameters) - {"self"}
        unknown = sorted(set(hparams) - known)
        if unknown:
            log.warning("Checkpoint %s has model settings this version does not know, ignored: %s", ckpt_path, unknown)
        configured_model = _as_dict(self.config[subcommand].get("model"))
        configured = dict(configured_model.get("init_args") or {})
        configured_class = str(configured_model.get("class_path", _class_path(CenterNet)))
        if configured_class.rsplit(".", 1)[-1] != task.__name__:
            log.warning(
                "Checkpoint %s is a %s: it replaces the configured %s", ckpt_path, task.__name__, configured_class
            )
        keep = {k: configured[k] for k in ("init_weights", "tta") if k in configured and k in known}
        from_checkpoint = {k: v for k, v in hparams.items() if k in known and k not in ("init_weights", "tta")}
        model = {"class_path": _class_path(task), "init_args": {**from_checkpoint, **keep}}
        self.config = self.parser.parse_object({subcommand: {"model": model}}, self.config)
        changes = describe_hparam_changes(configured, from_checkpoint)
        if changes:
            log.warning(
                "The model settings of checkpoint %s replace the configured ones: %s", ckpt_path, "; ".join(changes)
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
                f"cannot resume from it; to fine-tune from it use --model.init_args.init_weights {ckpt_path}"
            )

    def before_validate(self) -> None:
        self._check_checkpoint_fits()

    def before_test(self) -> None:
        self._check_checkpoint_fits()

    def before_predict(self) -> None:
        self._check_checkpoint_fits()

    def add_arguments_to_parser(self, parser) -> None:
        parser.set_defaults({"model": {"class_path": _class_path(CenterNet)}})
        parser.link_arguments("data.num_classes", "model.init_args.num_classes", apply_on="instantiate")
        parser.link_arguments("data.class_names", "model.init_args.class_names", apply_on="instantiate")
        # FairMOT's identity classifier; a detection model drops it (CenterNet._keep_own_hyperparameters).
        parser.link_arguments("data.num_identities", "model.init_args.num_identities", apply_on="instantiate")
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
        parser.add_lightning_class_args(MOTEvaluation, "mot_eval")
        parser.add_lightning_class_args(ValidationImageLogger, "val_images")
        parser.add_lightning_class_args(PredictionWriter, "prediction_writer")
        parser.add_lightning_class_args(RichProgressBar, "progress_bar")
        parser.add_lightning_class_args(LearningRateMonitor, "lr_monitor")
        parser.set_defaults({"lr_monitor.logging_interval": "step"})


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


def make_cli(args: list[str] | None, run: bool = True) -> CenterNetCLI:
    """Build (and by default run) the Lightning CLI on ``args`` (None: the command line)."""
    with _command_line_consumed() if args is not None else nullcontext():
        return CenterNetCLI(
            CenterNet,
            DetectionDataModule,
            subclass_mode_model=True,
            args=args,
            run=run,
            seed_everything_default=0,
            save_config_kwargs={"overwrite": True},
            trainer_defaults={"logger": DEFAULT_LOGGER},
            parser_kwargs={"description": DESCRIPTION},
        )
