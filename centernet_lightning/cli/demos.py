"""The one-command demos: ``centernet demo`` (detection), ``centernet demo-track`` (tracking) and
``centernet demo-pose`` (keypoints).

Each generates its synthetic data on first use, trains with its config (``demo.yaml``,
``demo_track.yaml``, ``demo_pose.yaml``, shipped in the package's ``configs/`` so that the demos run from any folder;
the repository's ``configs/`` links to them), evaluates the best checkpoint and says whether the
goal was reached. Data, logs and results go under ``--out``, the run's ``trainer.default_root_dir``.
Lightning and the rest are imported once the options are read, so ``--help`` answers at once.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .lightning import CenterNetCLI

__all__ = [
    "DEMO_GOAL",
    "POSE_DEMO_GOAL",
    "TRACK_DEMO_GOAL",
    "demo_main",
    "demo_pose_main",
    "demo_track_main",
    "packaged_config",
]

DEMO_GOAL = {"AP50": 0.95, "AP": 0.75}  # what `make demo` should reach on its validation split
TRACK_DEMO_GOAL = {"MOTA": 0.9, "IDF1": 0.9}  # what `make demo-track` should reach on its held-out sequence
POSE_DEMO_GOAL = {"keypoint AP": 0.70, "box AP50": 0.95}  # what `make demo-pose` should reach on its validation split


def packaged_config(name: str) -> Path:
    """The path of a config shipped with the package (``demo.yaml``, ``demo_track.yaml``)."""
    return Path(str(files("centernet_lightning") / "configs" / name))


def _demo_options(prog: str, description: str, out: str, config: str, argv: list[str]) -> tuple[Path, Path, list[str]]:
    """A demo's ``--out`` folder, its config (the packaged one unless ``--config``) and the
    LightningCLI overrides among ``argv`` (``--trainer.max_epochs=2``)."""
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--out", default=out, help="data, logs, checkpoints and results (default: %(default)s)")
    parser.add_argument("--config", default=str(packaged_config(config)), help="the config (default: %(default)s)")
    args, overrides = parser.parse_known_args(argv)
    if not Path(args.config).is_file():
        sys.exit(f"{prog}: config not found: {args.config}")
    return Path(args.out), Path(args.config), overrides


def _fitted_demo(out: Path, config: Path, overrides: list[str]) -> CenterNetCLI:
    """Build the demo's CLI (data and logs under ``out``) and fit."""
    from .lightning import make_cli

    arguments = [f"--data.data_dir={out / 'data'}", f"--trainer.default_root_dir={out}"]
    cli = make_cli(["--config", str(config), *arguments, *overrides], run=False)
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    return cli


def _last_weights(cli: CenterNetCLI) -> str:
    """The best checkpoint of the fit, or (no validation ran) the last weights, saved for the occasion."""
    from ..tasks.loading import save_checkpoint

    best = cli.trainer.checkpoint_callback.best_model_path
    if best:
        return best
    path = str(Path(cli.trainer.log_dir) / "last-weights.ckpt")
    save_checkpoint(cli.model, path)
    return path


DemoRun = Callable[[Path, Path, list[str]], None]  # (out folder, config, overrides)


def _demo_command(prog: str, doc: str | None, out: str, config_name: str, run: DemoRun, argv: list[str]) -> None:
    """Parse a demo's options and ``run(out, config, overrides)``; an error in what the user gave
    ends in one line naming it."""
    out_dir, config, overrides = _demo_options(prog, doc, out, config_name, argv)
    from .lightning import USER_ERRORS

    try:
        run(out_dir, config, overrides)
    except USER_ERRORS as error:
        sys.exit(f"{prog}: {error}")


def demo_main(argv: list[str]) -> None:
    """``centernet demo``: synthetic data -> training -> COCO AP table -> drawn predictions."""
    _demo_command("centernet demo", demo_main.__doc__, "runs/demo", "demo.yaml", _run_demo, argv)


def _run_demo(out: Path, config: Path, overrides: list[str]) -> None:
    from ..callbacks import COCOEvaluation

    trainer = _fit_evaluate_and_draw(out, config, overrides, "predictions")
    metrics = _last_metrics(trainer, COCOEvaluation)
    if metrics:
        print(f"Demo AP50 = {metrics['AP50']:.3f}, AP = {metrics['AP']:.3f} ({_verdict(metrics, DEMO_GOAL)})")
    print(f"Logs and checkpoints: {trainer.log_dir}")


def _fit_evaluate_and_draw(out: Path, config: Path, overrides: list[str], drawn: str) -> Any:
    """Fit, evaluate the best checkpoint on the validation split (the callbacks print their tables)
    and draw its predictions of the validation images; returns the trainer."""
    cli = _fitted_demo(out, config, overrides)
    trainer, model, datamodule = cli.trainer, cli.model, cli.datamodule
    best = _last_weights(cli)
    print(f"\nEvaluating {best} on the synthetic validation split (original pixels):")
    # verbose=False: the evaluation callbacks print their tables; Lightning's would repeat them.
    trainer.validate(model, datamodule=datamodule, ckpt_path=best, verbose=False)
    predicted = _predict_validation_images(best, datamodule.datasets["val"], out)
    print(f"Drawn {drawn} of the validation images: {predicted}")
    return trainer


def _last_metrics(trainer: Any, callback_type: type) -> dict[str, float]:
    """The metrics of the last evaluation of the trainer's ``callback_type`` callback."""
    return next(c for c in trainer.callbacks if isinstance(c, callback_type)).last_metrics


def _predict_validation_images(model_path: str, dataset: Any, out: Path) -> Path:
    """``centernet predict`` on the validation images: drawn images and predictions.json in ``out/predict``."""
    from ..deploy.backends import load_predictor
    from ..inference.outputs import PredictionFiles, new_run_dir
    from ..inference.sources import open_source

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
    doc = demo_track_main.__doc__
    _demo_command("centernet demo-track", doc, "runs/demo_track", "demo_track.yaml", _run_demo_track, argv)


def _run_demo_track(out: Path, config: Path, overrides: list[str]) -> None:
    from ..deploy.backends import load_predictor
    from ..eval.mot import evaluate_mot
    from ..inference.outputs import new_run_dir, track_to_files
    from ..inference.sources import open_source
    from ..inference.track import source_frame_rate

    cli = _fitted_demo(out, config, overrides)
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
    print(
        f"Demo tracking {sequence}: HOTA = {metrics['HOTA']:.3f}, MOTA = {metrics['MOTA']:.3f}, "
        f"IDF1 = {metrics['IDF1']:.3f}, IDSW = {int(metrics['IDSW'])} ({_verdict(metrics, TRACK_DEMO_GOAL)})"
    )
    print(f"Tracks: {run.results}; drawn video: {run.video}; logs and checkpoints: {trainer.log_dir}")


def _verdict(found: dict[str, float], goal: dict[str, float]) -> str:
    """``reached the goal AP50 >= 0.95, AP >= 0.75`` (or ``missed ...``): every figure of ``goal`` against ``found``."""
    reached = all(found[name] >= least for name, least in goal.items())
    return f"{'reached' if reached else 'missed'} the goal " + ", ".join(f"{name} >= {v}" for name, v in goal.items())


def demo_pose_main(argv: list[str]) -> None:
    """``centernet demo-pose``: synthetic stick figures -> keypoint training -> keypoint (OKS) and box
    AP tables -> drawn skeletons."""
    _demo_command(
        "centernet demo-pose", demo_pose_main.__doc__, "runs/demo_pose", "demo_pose.yaml", _run_demo_pose, argv
    )


def _run_demo_pose(out: Path, config: Path, overrides: list[str]) -> None:
    from ..callbacks import COCOEvaluation, KeypointEvaluation

    trainer = _fit_evaluate_and_draw(out, config, overrides, "skeletons")
    boxes, joints = _last_metrics(trainer, COCOEvaluation), _last_metrics(trainer, KeypointEvaluation)
    if boxes and joints:
        found = {"keypoint AP": joints["AP"], "box AP50": boxes["AP50"]}
        print(
            f"Demo keypoint AP = {joints['AP']:.3f} (AP50 {joints['AP50']:.3f}), box AP50 = {boxes['AP50']:.3f}, "
            f"box AP = {boxes['AP']:.3f} ({_verdict(found, POSE_DEMO_GOAL)})"
        )
    print(f"Logs and checkpoints: {trainer.log_dir}")
