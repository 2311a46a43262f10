"""The ``centernet`` command.

``centernet fit|validate|test|predict`` are LightningCLI subcommands (``--config``, dotted
overrides, ``--print_config``); ``centernet data synth`` writes the synthetic dataset and
``centernet demo`` runs the whole job on it.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import torch
from lightning.pytorch.callbacks import LearningRateMonitor, ModelCheckpoint, RichProgressBar
from lightning.pytorch.cli import LightningCLI

from .callbacks import PredictionWriter, ValidationImageLogger
from .datasets.datamodule import DetectionDataModule
from .datasets.synthetic import generate_synthetic_dataset
from .models.centernet import CenterNet

__all__ = ["CenterNetCLI", "main"]

DESCRIPTION = """CenterNet object detection.

Subcommands: fit, validate, test, predict (Lightning; see `centernet fit --help`),
`centernet data synth --out DIR` (write the synthetic dataset) and
`centernet demo --out runs/demo` (generate data, train, evaluate, draw predictions)."""


class CenterNetCLI(LightningCLI):
    """LightningCLI for CenterNet + DetectionDataModule with the library's default callbacks.

    Extra config groups: ``checkpoint`` (ModelCheckpoint: best ``val/AP``), ``last_checkpoint``
    (ModelCheckpoint: ``last.ckpt``, refreshed at every validation or epoch end),
    ``val_images`` (ValidationImageLogger), ``prediction_writer`` (PredictionWriter),
    ``progress_bar`` (RichProgressBar) and ``lr_monitor`` (LearningRateMonitor).
    """

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
        parser.add_lightning_class_args(ValidationImageLogger, "val_images")
        parser.add_lightning_class_args(PredictionWriter, "prediction_writer")
        parser.add_lightning_class_args(RichProgressBar, "progress_bar")
        parser.add_lightning_class_args(LearningRateMonitor, "lr_monitor")
        parser.set_defaults({"lr_monitor.logging_interval": "step"})


def make_cli(args: list[str] | None, run: bool = True) -> CenterNetCLI:
    """Build (and by default run) the Lightning CLI on ``args`` (None: the command line)."""
    return CenterNetCLI(
        CenterNet,
        DetectionDataModule,
        args=args,
        run=run,
        seed_everything_default=0,
        save_config_kwargs={"overwrite": True},
        trainer_defaults={
            "logger": {
                "class_path": "lightning.pytorch.loggers.TensorBoardLogger",
                "init_args": {"save_dir": "runs", "name": "centernet"},
            }
        },
        parser_kwargs={"description": DESCRIPTION},
    )


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


def demo_main(argv: list[str]) -> None:
    """``centernet demo``: synthetic data -> training -> COCO AP table -> drawn predictions."""
    parser = argparse.ArgumentParser(prog="centernet demo", description=demo_main.__doc__)
    parser.add_argument("--out", default="runs/demo", help="folder for data, logs, checkpoints and predictions")
    parser.add_argument("--config", default="configs/demo.yaml", help="the fit config to run")
    parser.add_argument("overrides", nargs="*", help="extra LightningCLI overrides, e.g. --trainer.max_epochs=2")
    args, extra = parser.parse_known_args(argv)
    out = Path(args.out)
    if not Path(args.config).is_file():
        sys.exit(f"Config not found: {args.config} (run the demo from the repository root)")
    cli = make_cli(
        [
            "--config",
            args.config,
            f"--data.data_dir={out / 'data'}",
            f"--trainer.logger.init_args.save_dir={out}",
            f"--prediction_writer.output_dir={out}",
            *args.overrides,
            *extra,
        ],
        run=False,
    )
    trainer, model, datamodule = cli.trainer, cli.model, cli.datamodule
    trainer.fit(model, datamodule=datamodule)
    best = trainer.checkpoint_callback.best_model_path or None
    print(f"\nEvaluating {best or 'the last weights'} on the synthetic validation split (original pixels):")
    trainer.validate(model, datamodule=datamodule, ckpt_path=best)
    trainer.predict(model, datamodule=datamodule, ckpt_path=best, return_predictions=False)
    metrics = getattr(trainer.lightning_module, "last_metrics", {})
    if metrics:
        verdict = "reached" if metrics["AP50"] >= 0.9 else "missed"
        print(f"Demo AP50 = {metrics['AP50']:.3f} ({verdict} the 0.9 goal); AP = {metrics['AP']:.3f}")
    print(f"Logs and checkpoints: {trainer.log_dir}")


def main(argv: list[str] | None = None) -> None:
    """Entry point of the ``centernet`` console script."""
    from_command_line = argv is None
    argv = sys.argv[1:] if argv is None else list(argv)
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    torch.set_float32_matmul_precision("high")
    if argv[:2] == ["data", "synth"]:
        synth_main(argv[2:])
    elif argv[:1] == ["data"]:
        sys.exit("usage: centernet data synth --out DIR [--num-train N] [--num-val N] [--image-size PX] ...")
    elif argv[:1] == ["demo"]:
        demo_main(argv[1:])
    else:
        make_cli(None if from_command_line else argv)


if __name__ == "__main__":
    main()
