"""The one-command demos: ``centernet demo`` (detection) and ``centernet demo-track`` (tracking).

Each generates its synthetic data on first use, trains with its config (``configs/demo.yaml``,
``configs/demo_track.yaml``), evaluates the best checkpoint and says whether the goal was reached.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from lightning.pytorch.cli import LightningCLI

from ..callbacks import COCOEvaluation
from ..deploy.backends import load_predictor
from ..eval.mot import evaluate_mot
from ..inference.outputs import PredictionFiles, new_run_dir, track_to_files
from ..inference.sources import open_source
from ..inference.track import source_frame_rate
from ..tasks.loading import save_checkpoint
from .lightning import make_cli

__all__ = ["DEMO_GOAL", "TRACK_DEMO_GOAL", "demo_main", "demo_track_main"]

DEMO_GOAL = {"AP50": 0.95, "AP": 0.75}  # what `make demo` should reach on its validation split
TRACK_DEMO_GOAL = {"MOTA": 0.9, "IDF1": 0.9}  # what `make demo-track` should reach on its held-out sequence


def _fitted_demo(prog: str, description: str, out: str, config: str, argv: list[str]) -> tuple[LightningCLI, Path]:
    """Parse a demo's options, build its CLI (data and logs under ``--out``) and fit; returns the CLI
    and the ``--out`` folder."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--out", default=out, help="folder for data, logs, checkpoints and results")
    parser.add_argument("--config", default=config, help="the fit config to run")
    args, overrides = parser.parse_known_args(argv)  # the rest: LightningCLI overrides (--trainer.max_epochs=2)
    root = Path(args.out)
    if not Path(args.config).is_file():
        sys.exit(f"Config not found: {args.config} (run the demo from the repository root)")
    arguments = [f"--data.data_dir={root / 'data'}", f"--trainer.logger.init_args.save_dir={root}"]
    cli = make_cli(["--config", args.config, *arguments, *overrides], run=False)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    return cli, root


def _last_weights(cli: LightningCLI) -> str:
    """The best checkpoint of the fit, or (no validation ran) the last weights, saved for the occasion."""
    best = cli.trainer.checkpoint_callback.best_model_path
    if best:
        return best
    path = str(Path(cli.trainer.log_dir) / "last-weights.ckpt")
    save_checkpoint(cli.model, path)
    return path


def demo_main(argv: list[str]) -> None:
    """``centernet demo``: synthetic data -> training -> COCO AP table -> drawn predictions."""
    cli, out = _fitted_demo("centernet demo", demo_main.__doc__, "runs/demo", "configs/demo.yaml", argv)
    trainer, model, datamodule = cli.trainer, cli.model, cli.datamodule
    best = _last_weights(cli)
    print(f"\nEvaluating {best} on the synthetic validation split (original pixels):")
    # verbose=False: the COCOEvaluation callback prints the COCO table; Lightning's would repeat it.
    trainer.validate(model, datamodule=datamodule, ckpt_path=best, verbose=False)
    predicted = _predict_validation_images(best, datamodule.datasets["val"], out)
    print(f"Drawn predictions of the validation images: {predicted}")
    metrics = next(c for c in trainer.callbacks if isinstance(c, COCOEvaluation)).last_metrics
    if metrics:
        reached = metrics["AP50"] >= DEMO_GOAL["AP50"] and metrics["AP"] >= DEMO_GOAL["AP"]
        print(
            f"Demo AP50 = {metrics['AP50']:.3f}, AP = {metrics['AP']:.3f} ({'reached' if reached else 'missed'} "
            f"the goal AP50 >= {DEMO_GOAL['AP50']}, AP >= {DEMO_GOAL['AP']})"
        )
    print(f"Logs and checkpoints: {trainer.log_dir}")


def _predict_validation_images(model_path: str, dataset: Any, out: Path) -> Path:
    """``centernet predict`` on the validation images: drawn images and predictions.json in ``out/predict``."""
    predictor = load_predictor(model_path, device="cpu")
    source = open_source([record.path for record in dataset.records])
    files = PredictionFiles(new_run_dir(out, "predict"), predictor.spec, predictor.backend.num_classes)
    for frames, results in predictor.predict_source(source):
        files.add_frames(frames, results)
    files.close()
    return files.run_dir


def demo_track_main(argv: list[str]) -> None:
    """``centernet demo-track``: synthetic sequences -> FairMOT training -> tracking a held-out
    sequence -> HOTA/MOTA/IDF1 and a drawn video."""
    cli, out = _fitted_demo(
        "centernet demo-track", demo_track_main.__doc__, "runs/demo_track", "configs/demo_track.yaml", argv
    )
    trainer, datamodule = cli.trainer, cli.datamodule
    best = _last_weights(cli)
    sequence = sorted(datamodule.datasets["val"].sequences)[0]  # the held-out split the fit validated on
    frames_dir = out / "data" / datamodule.hparams.val_split / sequence / "img1"
    print(f"\nTracking the held-out sequence {sequence} with {best}:")
    predictor = load_predictor(best, device="cpu")
    source = open_source(frames_dir)
    frame_rate = source_frame_rate(source)
    run = track_to_files(
        predictor, source, predictor.build_tracker(frame_rate=frame_rate), new_run_dir(out, "track"), frame_rate
    )
    metrics = evaluate_mot(frames_dir.parent / "gt" / "gt.txt", run.results)
    reached = all(metrics[name] >= goal for name, goal in TRACK_DEMO_GOAL.items())
    print(
        f"Demo tracking {sequence}: HOTA = {metrics['HOTA']:.3f}, MOTA = {metrics['MOTA']:.3f}, "
        f"IDF1 = {metrics['IDF1']:.3f}, IDSW = {int(metrics['IDSW'])} ({'reached' if reached else 'missed'} the goal "
        + ", ".join(f"{name} >= {goal}" for name, goal in TRACK_DEMO_GOAL.items())
        + ")"
    )
    print(f"Tracks: {run.results}; drawn video: {run.video}; logs and checkpoints: {trainer.log_dir}")
