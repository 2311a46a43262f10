"""The paper's size + offset heads (L1) against left/top/right/bottom + GIoU: AP per epoch.

Both train the same small model (ResNet-18 + FPN, head width 64, 256 px) on the same synthetic
data with the same budget, seed and schedule; only the box heads differ. Prints AP50 and AP after
every epoch, side by side.

    python benchmarks/heads_convergence.py [--epochs 6] [--num-train 200] [--out runs/bench_heads]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import lightning as L

from centernet_lightning.callbacks import COCOEvaluation
from centernet_lightning.cli.lightning import make_cli

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = {
    "ltrb + GIoU x5": [],
    "size + offset (L1 0.1 / 1)": ["--model.heads={size: {loss: l1, weight: 0.1}, offset: {loss: l1, weight: 1.0}}"],
}


class _EpochMetrics(L.Callback):
    """AP50 and AP after each validation epoch (sanity check excluded)."""

    def __init__(self) -> None:
        self.rows: list[tuple[float, float]] = []

    def on_validation_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        evaluation = next(c for c in trainer.callbacks if isinstance(c, COCOEvaluation))
        if evaluation.last_metrics and not trainer.sanity_checking:
            self.rows.append((evaluation.last_metrics["AP50"], evaluation.last_metrics["AP"]))


def fit_demo_variant(
    out: Path, num_train: int, num_val: int, epochs: int, overrides: list[str]
) -> tuple[list[tuple[float, float]], float]:
    """Fit ``configs/demo.yaml`` with ``overrides`` (data and logs under ``out``), validating every
    epoch; returns (AP50, AP) per epoch and the wall time of the fit in seconds."""
    cli = make_cli(
        [
            "--config", str(ROOT / "configs" / "demo.yaml"),
            f"--data.data_dir={out / 'data'}",
            f"--data.synthetic.num_train={num_train}",
            f"--data.synthetic.num_val={num_val}",
            f"--trainer.max_epochs={epochs}",
            "--trainer.check_val_every_n_epoch=1",
            "--trainer.enable_model_summary=false",
            "--progress_bar.refresh_rate=0",
            "--coco_eval.print_table=false",
            f"--trainer.logger.init_args.save_dir={out}",
            *overrides,
        ],
        run=False,
    )  # fmt: skip
    recorder = _EpochMetrics()
    cli.trainer.callbacks.append(recorder)
    start = time.perf_counter()
    cli.trainer.fit(cli.model, datamodule=cli.datamodule)
    return recorder.rows, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=6)
    parser.add_argument("--num-train", type=int, default=200)
    parser.add_argument("--num-val", type=int, default=100)
    parser.add_argument("--out", default="runs/bench_heads")
    args = parser.parse_args()
    out = Path(args.out)
    results = {}
    for name, overrides in VARIANTS.items():
        results[name] = fit_demo_variant(out, args.num_train, args.num_val, args.epochs, overrides)
    print(f"\n{args.num_train} training images, {args.num_val} validation images, {args.epochs} epochs")
    header = "epoch  " + "  ".join(f"{name:>28}" for name in results)
    print(header + "\n" + " " * 7 + "  ".join(f"{'AP50 / AP':>28}" for _ in results))
    for epoch in range(args.epochs):
        cells = []
        for rows, _ in results.values():
            cells.append(f"{rows[epoch][0]:>20.3f} / {rows[epoch][1]:.3f}" if epoch < len(rows) else " " * 28)
        print(f"{epoch + 1:>5}  " + "  ".join(cells))
    print("wall s " + "  ".join(f"{seconds:>28.0f}" for _, seconds in results.values()))


if __name__ == "__main__":
    main()
