"""What a training run reports as it goes: a console line per validation, ``results.csv`` per epoch and
``results.png`` at the end, as a Lightning callback.

The metrics are those the evaluation callbacks log (:class:`~.coco.COCOEvaluation`: ``val/AP``, ...;
:class:`~.mot.MOTEvaluation`: ``val/HOTA``, ...), read from ``trainer.callback_metrics`` once the
validation is over; this callback computes nothing of its own but the epoch means of the training
losses (the module logs them per step).
"""

from __future__ import annotations

import csv
import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

from ..atomic_files import write_bytes_atomically, write_text_atomically

__all__ = ["TrainingResults", "summary_line"]

# The console line's metrics, in order: COCO's for detection, TrackEval's for tracking datasets.
SUMMARY_METRICS = ("AP", "AP50", "AP75", "kp_AP", "kp_AP50", "HOTA", "MOTA", "IDF1")
# results.png: one panel per group, the metrics present drawn per epoch.
PLOTTED = {
    "losses": ("train/total_loss", "val/total_loss"),
    "COCO AP": ("val/AP", "val/AP50", "val/AP75"),
    "keypoint AP": ("val/kp_AP", "val/kp_AP50"),
    "tracking": ("val/HOTA", "val/MOTA", "val/IDF1"),
}
PER_CLASS_PREFIX = "val/AP_class/"


def _number(value: Any) -> float:
    return float(value.item() if hasattr(value, "item") else value)


def summary_line(epoch: int, step: int, metrics: Mapping[str, float], per_class: bool = False) -> str:
    """``Epoch 3, step 120: AP 0.512  AP50 0.801  AP75 0.533 | val loss 1.234`` from logged metrics."""
    parts = [f"{name} {metrics[f'val/{name}']:.3f}" for name in SUMMARY_METRICS if f"val/{name}" in metrics]
    line = f"Epoch {epoch}, step {step}: " + ("  ".join(parts) or "no evaluation metrics")
    if "val/total_loss" in metrics:
        line += f" | val loss {metrics['val/total_loss']:.4f}"
    if per_class:
        classes = {k.removeprefix(PER_CLASS_PREFIX): v for k, v in metrics.items() if k.startswith(PER_CLASS_PREFIX)}
        if classes:
            line += " | AP per class: " + ", ".join(f"{name} {ap:.3f}" for name, ap in classes.items())
    return line


class TrainingResults(Callback):
    """During ``fit``: a one-line summary of every validation in the console (AP, AP50, AP75; HOTA,
    MOTA, IDF1 for tracking datasets), ``results.csv`` in the run's log dir (one row per epoch:
    ``epoch``, ``step``, ``lr``, the epoch means of the training losses, the validation losses and
    metrics of the epoch's last validation) and ``results.png`` at the end (losses and metrics per
    epoch). Files are written atomically, rank 0 only; the rows travel in checkpoints, so a
    resumed run's results continue the earlier epochs.

    Args:
        print_summary: print the line after every validation.
        per_class: add the AP of every class to the line and to the CSV (``val/AP_class/<name>``).
        save_csv: write ``results.csv`` after every epoch.
        save_plot: draw ``results.png`` when ``fit`` ends (needs matplotlib).
    """

    def __init__(
        self, print_summary: bool = True, per_class: bool = False, save_csv: bool = True, save_plot: bool = True
    ) -> None:
        self.print_summary = print_summary
        self.per_class = per_class
        self.save_csv = save_csv
        self.save_plot = save_plot
        self.rows: list[dict[str, float]] = []
        self._train_sums: dict[str, float] = {}
        self._train_batches = 0
        self._validation: dict[str, float] = {}

    # --------------------------------------------------------------------------- hooks
    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        self._train_sums, self._train_batches, self._validation = {}, 0, {}

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        # The module logs its losses per step; their mean over the epoch is the row's training loss.
        losses = {k: _number(v) for k, v in trainer.callback_metrics.items() if _is_train_loss(k)}
        if not losses:
            return
        for name, value in losses.items():
            self._train_sums[name] = self._train_sums.get(name, 0.0) + value
        self._train_batches += 1

    def on_validation_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        if trainer.sanity_checking or trainer.state.fn != "fit":
            return
        self._validation = {
            name: _number(value)
            for name, value in trainer.callback_metrics.items()
            if name.startswith("val/") and (self.per_class or not name.startswith(PER_CLASS_PREFIX))
        }
        if self.print_summary and trainer.is_global_zero:
            line = summary_line(trainer.current_epoch, trainer.global_step, self._validation, self.per_class)
            progress_bar = trainer.progress_bar_callback
            (progress_bar.print if progress_bar is not None else print)(line)  # keeps the bar intact

    def on_train_epoch_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        row: dict[str, float] = {"epoch": trainer.current_epoch, "step": trainer.global_step}
        if trainer.optimizers:
            row["lr"] = float(trainer.optimizers[0].param_groups[0]["lr"])
        row.update({name: total / max(self._train_batches, 1) for name, total in self._train_sums.items()})
        row.update(self._validation)
        self.rows.append(row)
        log_dir = trainer.log_dir if self.save_csv else None  # on every rank: trainer.log_dir broadcasts
        if log_dir and trainer.is_global_zero:
            write_text_atomically(Path(log_dir) / "results.csv", results_csv(self.rows), overwrite=True)

    def on_fit_end(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        log_dir = trainer.log_dir if self.save_plot and self.rows else None  # on every rank, as above
        if log_dir and trainer.is_global_zero:
            png = io.BytesIO()
            plot_results(self.rows, png)
            write_bytes_atomically(Path(log_dir) / "results.png", png.getbuffer(), overwrite=True)

    # --------------------------------------------------------------------------- resuming
    def state_dict(self) -> dict[str, Any]:
        return {"rows": self.rows}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.rows = list(state_dict.get("rows", []))


def _is_train_loss(name: str) -> bool:
    return name.startswith("train/") and name.endswith("_loss")


def results_csv(rows: Sequence[Mapping[str, float]]) -> str:
    """The rows as CSV text: every column any row has (epoch, step, lr first), empty where a row lacks it."""
    columns = list(dict.fromkeys(name for row in rows for name in row))
    columns = [c for c in ("epoch", "step", "lr") if c in columns] + sorted(
        c for c in columns if c not in ("epoch", "step", "lr")
    )
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=columns, restval="", lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow({name: _cell(value) for name, value in row.items()})
    return text.getvalue()


def _cell(value: float) -> str | int:
    if isinstance(value, int):
        return value
    return "" if math.isnan(value) else f"{value:.6g}"


def plot_results(rows: Sequence[Mapping[str, float]], path: Path | io.BytesIO) -> None:
    """Draw the losses and the metrics per epoch as PNG into ``path``, a file or a buffer (one panel
    per group of :data:`PLOTTED` that the rows hold)."""
    # Lazy and backend-free: matplotlib costs a second to import, and Agg draws without a display.
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    panels = {title: [n for n in names if any(n in row for row in rows)] for title, names in PLOTTED.items()}
    panels = {title: names for title, names in panels.items() if names}
    figure = Figure(figsize=(5 * max(len(panels), 1), 4), layout="constrained")
    FigureCanvasAgg(figure)
    for index, (title, names) in enumerate(panels.items()):
        axes = figure.add_subplot(1, len(panels), index + 1)
        for name in names:
            points = [(row["epoch"], row[name]) for row in rows if name in row and not math.isnan(row[name])]
            if points:
                epochs, values = zip(*points)
                axes.plot(epochs, values, marker="o", label=name)
        axes.set_title(title)
        axes.set_xlabel("epoch")
        axes.xaxis.get_major_locator().set_params(integer=True)
        axes.grid(alpha=0.3)
        axes.legend()
    figure.savefig(path, format="png", dpi=100)
