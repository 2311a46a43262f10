"""``centernet fit|validate|test|predict``: Lightning's CLI over the models and the data module.

One :class:`CenterNetCLI` serves detection and tracking: the config's ``model.class_path`` names
the LightningModule (``centernet_lightning.CenterNet``, the default, or
``centernet_lightning.FairMOT``), ``init_args`` its arguments; the class count, class names and
identity count are linked from the data. ``--ckpt_path``'s hyperparameters and class replace the
configured ones (read safely, see :meth:`CenterNetCLI._parse_ckpt_path`), and its data section
fills in the data settings the command line and config leave out.

``trainer.default_root_dir`` (default ``runs``) decides where a run writes: ``fit`` into
``<default_root_dir>/<logger name>/version_<n>``, ``validate``/``test``/``predict`` into
``<default_root_dir>/<logger name>/validate`` (``validate2``, ...; ``test``, ``predict`` alike).
"""

from __future__ import annotations

import inspect
import json
import logging
import shutil
import sys
import warnings
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, nullcontext
from pathlib import Path
from typing import Any

import yaml
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, RichProgressBar
from lightning.pytorch.cli import LightningCLI

from ..callbacks import (
    COCOEvaluation,
    KeypointEvaluation,
    MOTEvaluation,
    PredictionWriter,
    TrainingResults,
    ValidationImageLogger,
)
from ..datasets.datamodule import DetectionDataModule
from ..tasks import CenterNet
from ..tasks.loading import task_of_checkpoint, use_atomic_checkpoints
from ..weights import PretrainedWeightsUnavailable, read_checkpoint

__all__ = ["CenterNetCLI", "make_cli", "describe_hparam_changes", "check_checkpoint_classes"]

log = logging.getLogger("centernet_lightning")
# Lightning gives its "lightning" logger a console handler of its own that also propagates to the
# root handler the command set up (cli.main): every Lightning line would be printed twice.
if logging.getLogger("lightning").handlers:
    logging.getLogger("lightning").propagate = False

DESCRIPTION = """Train, validate, test or predict with a config: `centernet fit --config configs/demo.yaml`.
The config's model.class_path is centernet_lightning.CenterNet (detection, the default) or
centernet_lightning.FairMOT (tracking); every key can be overridden (--model.init_args.head_width 64)."""
DEFAULT_ROOT_DIR = "runs"
# Tracking configs name their runs "fairmot" (configs/demo_track.yaml). A logger's save_dir left at
# DEFAULT_ROOT_DIR follows trainer.default_root_dir (CenterNetCLI._place_run), the one setting of
# where a run writes.
DEFAULT_LOGGER = {
    "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
    "init_args": {"save_dir": DEFAULT_ROOT_DIR, "name": "centernet"},
}
# Errors of what the user gave (files, settings, data, no network): one line from the command, no traceback.
USER_ERRORS = (OSError, ValueError, PretrainedWeightsUnavailable)
# What a run folder holds before any training or evaluation result: nothing worth keeping after a failure.
BOOKKEEPING_FILES = ("config.yaml", "hparams.yaml", "events.out.tfevents.*")


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
    # linked from the data / fine-tuning
    ignored = {"num_classes", "class_names", "num_identities", "keypoint_layout", "init_weights"}
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


def _trained_data_section(checkpoint: Mapping[str, Any]) -> dict[str, Any]:
    """The data settings a checkpoint was trained with (the data module's ``save_hyperparameters``),
    those this version's :class:`DetectionDataModule` takes."""
    hparams = checkpoint.get("datamodule_hyper_parameters") or {}
    known = set(inspect.signature(DetectionDataModule.__init__).parameters) - {"self"}
    return {key: value for key, value in hparams.items() if key in known}


def _logger_configs(logger: Any) -> list[Any]:
    """The ``class_path``/``init_args`` entries of a parsed ``trainer.logger`` (one, a list, or a bool)."""
    entries = logger if isinstance(logger, (list, tuple)) else [logger]
    return [entry for entry in entries if getattr(entry, "init_args", None) is not None]


def _free_run_name(parent: Path, stem: str) -> str:
    """``stem``, or ``stem2``, ``stem3``, ... : the first name not taken in ``parent`` (as predict's run folders)."""
    index = 1
    while (parent / (stem if index == 1 else f"{stem}{index}")).exists():
        index += 1
    return stem if index == 1 else f"{stem}{index}"


def _holds_only_bookkeeping(folder: Path) -> bool:
    """Whether every file under ``folder`` is one a run writes before any result (its config, an event file)."""
    files = [path for path in folder.rglob("*") if path.is_file()]
    return all(any(path.match(pattern) for pattern in BOOKKEEPING_FILES) for path in files)


class CenterNetCLI(LightningCLI):
    """LightningCLI for CenterNet / FairMOT + DetectionDataModule with the library's callbacks.

    Extra config groups: ``checkpoint`` (ModelCheckpoint: the best ``val/AP``; tracking configs
    monitor ``val/IDF1``), ``last_checkpoint`` (ModelCheckpoint: ``last.ckpt``, refreshed at every
    validation or epoch end), ``coco_eval`` (COCOEvaluation: COCO metrics of every validation),
    ``keypoint_eval`` (KeypointEvaluation: keypoint AP by OKS, for keypoint datasets),
    ``mot_eval`` (MOTEvaluation: HOTA/MOTA/IDF1 of validation sequences, for tracking datasets),
    ``val_images`` (ValidationImageLogger), ``prediction_writer`` (PredictionWriter),
    ``progress_bar`` (RichProgressBar), ``lr_monitor`` (LearningRateMonitor) and ``results``
    (TrainingResults: a console line per validation, ``results.csv``, ``results.png``).

    Where a run writes is ``trainer.default_root_dir`` (:meth:`_place_run`); a failed run that wrote
    nothing but its config leaves no folder behind (:meth:`_run_subcommand`).
    """

    def parse_arguments(self, parser, args) -> None:
        """Parse as LightningCLI does; where ``--ckpt_path`` is a local checkpoint that holds the data
        section it was trained with, parse again with that section first, so that ``validate
        --ckpt_path X`` alone evaluates X's validation split while the config's and the command
        line's ``--data.*`` still win."""
        super().parse_arguments(parser, args)
        self._checkpoint_file: tuple[str, dict[str, Any]] | None = None
        subcommand = self.config.get("subcommand")
        ckpt_path = self.config[subcommand].get("ckpt_path") if subcommand else None
        if not ckpt_path or not _is_local_path(str(ckpt_path)) or not isinstance(args, (list, tuple, type(None))):
            return
        checkpoint = read_checkpoint(ckpt_path)
        self._checkpoint_file = (str(ckpt_path), checkpoint)
        data = _trained_data_section(checkpoint)
        argv = list(sys.argv[1:] if args is None else args)
        if data and subcommand in argv:
            position = argv.index(subcommand) + 1
            data_section = ["--data", json.dumps(data, default=str)]
            self.config = parser.parse_args([*argv[:position], *data_section, *argv[position:]])

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
        cached = getattr(self, "_checkpoint_file", None)  # read by parse_arguments
        self.checkpoint = cached[1] if cached and cached[0] == str(ckpt_path) else read_checkpoint(ckpt_path)
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
        if hparams.get("keypoint_layout") and not self.config[subcommand].data.get("keypoint_layout"):
            # the model's joints, for data without joints of its own (predict on a folder of images)
            self.config[subcommand].data.keypoint_layout = hparams["keypoint_layout"]
        # Only settings given in the config or on the command line: the defaults replaced are no news.
        defaults = {k: p.default for k, p in inspect.signature(task.__init__).parameters.items()}
        given = {k: v for k, v in configured.items() if k not in defaults or v != defaults[k]}
        changes = describe_hparam_changes(given, from_checkpoint)
        if changes:
            log.warning(
                "The model settings of checkpoint %s replace the configured ones: %s", ckpt_path, "; ".join(changes)
            )

    def before_instantiate_classes(self) -> None:
        self._place_run()

    def instantiate_trainer(self, **kwargs: Any) -> Any:
        """Lightning's Trainer, writing its checkpoints atomically (a full disk: one error, no partial file)."""
        trainer = super().instantiate_trainer(**kwargs)
        use_atomic_checkpoints(trainer)
        return trainer

    def _place_run(self) -> None:
        """Make ``trainer.default_root_dir`` (default ``runs``) decide where the run writes: a logger
        whose ``save_dir`` is left at the default writes there, and ``validate``/``test``/``predict``
        write into a folder of their own beside training's ``version_<n>`` folders, ``validate``,
        ``validate2``, ... (a logger ``version`` given explicitly is kept)."""
        config = self.config[self.subcommand] if self.subcommand else self.config
        root = config.trainer.get("default_root_dir") or DEFAULT_ROOT_DIR
        config.trainer.default_root_dir = root
        for logger in _logger_configs(config.trainer.get("logger")):
            init_args = logger.init_args
            if "save_dir" not in init_args:
                continue
            if init_args.save_dir in (None, DEFAULT_ROOT_DIR):
                init_args.save_dir = root
            if self.subcommand in ("validate", "test", "predict") and init_args.get("version", "") is None:
                parent = Path(init_args.save_dir) / str(init_args.get("name") or "")
                init_args.version = _free_run_name(parent, self.subcommand)

    def _run_subcommand(self, subcommand: str) -> None:
        """Run it; if it fails before any result (``fit`` before its first step), remove the run
        folder it created if that holds nothing but bookkeeping (config, empty event files), and the
        parent folders it created if they are left empty."""
        parents = [Path(logger.root_dir) for logger in self.trainer.loggers if getattr(logger, "root_dir", None)]
        parents += [Path(logger.save_dir) for logger in self.trainer.loggers if getattr(logger, "save_dir", None)]
        existing = {path: set(path.iterdir()) if path.is_dir() else None for path in parents}
        try:
            with warnings.catch_warnings():
                if subcommand != "fit":
                    # Evaluation saves no checkpoint: the ModelCheckpoint states of --ckpt_path do not
                    # apply to its folder, which Lightning would otherwise say on every run.
                    warnings.filterwarnings("ignore", message="The dirpath has changed")
                super()._run_subcommand(subcommand)
        except BaseException:
            if subcommand != "fit" or self.trainer.global_step == 0:
                self._remove_unused_folders(existing)
            raise

    def _remove_unused_folders(self, existing: dict[Path, set[Path] | None]) -> None:
        if not self.trainer.is_global_zero or not self.trainer.loggers:
            return
        log_dir = Path(self.trainer.loggers[0].log_dir)  # not trainer.log_dir: a collective, rank 0 alone here
        created = all(contents is None or log_dir not in contents for contents in existing.values())
        if created and log_dir.is_dir() and _holds_only_bookkeeping(log_dir):
            shutil.rmtree(log_dir, ignore_errors=True)
        for path, contents in existing.items():  # deepest first: root_dir before save_dir
            if contents is None and path.is_dir() and not any(path.iterdir()):
                path.rmdir()

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
        parser.link_arguments("data.keypoint_layout", "model.init_args.keypoint_layout", apply_on="instantiate")
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
        parser.add_lightning_class_args(KeypointEvaluation, "keypoint_eval")
        parser.add_lightning_class_args(MOTEvaluation, "mot_eval")
        parser.add_lightning_class_args(ValidationImageLogger, "val_images")
        parser.add_lightning_class_args(PredictionWriter, "prediction_writer")
        parser.add_lightning_class_args(RichProgressBar, "progress_bar")
        parser.add_lightning_class_args(LearningRateMonitor, "lr_monitor")
        parser.set_defaults({"lr_monitor.logging_interval": "step"})
        parser.add_lightning_class_args(TrainingResults, "results")


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


def _config_paths(argv: Sequence[str]) -> list[Path]:
    """The existing files given to ``--config`` / ``-c`` in ``argv``."""
    paths = [argv[i + 1] for i, arg in enumerate(argv[:-1]) if arg in ("--config", "-c")]
    paths += [arg.split("=", 1)[1] for arg in argv if arg.startswith("--config=")]
    return [Path(path) for path in paths if Path(path).is_file()]


def check_config_files(argv: Sequence[str]) -> None:
    """ValueError ``file:line:column: problem`` for a ``--config`` file that is not valid YAML
    (the parser's own error names neither the file nor the line)."""
    for path in _config_paths(argv):
        try:
            yaml.safe_load(path.read_text(encoding="utf-8"))
        except (yaml.scanner.ScannerError, yaml.parser.ParserError, yaml.composer.ComposerError) as error:
            mark = error.problem_mark
            where = f"{path}:{mark.line + 1}:{mark.column + 1}" if mark else str(path)
            context = f" ({error.context})" if error.context else ""
            raise ValueError(f"{where}: YAML syntax error: {error.problem}{context}") from None


def make_cli(args: list[str] | None, run: bool = True, exit_on_error: bool | None = None) -> CenterNetCLI:
    """Build (and by default run) the Lightning CLI on ``args`` (None: the command line).

    With ``exit_on_error`` (default: when reading the command line) an error in what the user gave
    (:data:`USER_ERRORS`: a missing file or dataset, a bad setting, YAML syntax, no network for
    pretrained weights) exits with one line naming it instead of a traceback.
    """
    exit_on_error = args is None if exit_on_error is None else exit_on_error
    argv = list(sys.argv[1:] if args is None else args)
    try:
        check_config_files(argv)
        with _command_line_consumed() if args is not None else nullcontext():
            return CenterNetCLI(
                CenterNet,
                DetectionDataModule,
                subclass_mode_model=True,
                args=args,
                run=run,
                seed_everything_default=0,
                save_config_kwargs={"overwrite": True},
                trainer_defaults={"logger": DEFAULT_LOGGER, "default_root_dir": DEFAULT_ROOT_DIR},
                parser_kwargs={"description": DESCRIPTION},
            )
    except USER_ERRORS as error:
        if not exit_on_error:
            raise
        command = next((arg for arg in argv if arg in ("fit", "validate", "test", "predict")), None)
        sys.exit(f"centernet{' ' + command if command else ''}: {_unwrapped(error)}")


def _unwrapped(error: BaseException) -> BaseException:
    """The error a model's constructor raised, out of the parser's report that the value fits no
    type of its Union (which lists every type tried and repeats the whole configuration)."""
    while str(error).startswith("Does not validate against any of the Union subtypes"):
        cause = error.__cause__ or error.__context__
        if not isinstance(cause, USER_ERRORS):
            break
        error = cause
    return error
