"""TrainingResults' pieces: the console line, results.csv, results.png, resuming."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path

from centernet_lightning.callbacks.results import TrainingResults, plot_results, results_csv, summary_line


def test_summary_line_shows_detection_and_tracking_metrics_and_classes_on_request() -> None:
    metrics = {"val/AP": 0.5123, "val/AP50": 0.8, "val/AP75": 0.5, "val/total_loss": 1.25, "val/AP_class/cat": 0.4}
    assert summary_line(3, 120, metrics) == "Epoch 3, step 120: AP 0.512  AP50 0.800  AP75 0.500 | val loss 1.2500"
    assert summary_line(3, 120, metrics, per_class=True).endswith("| AP per class: cat 0.400")
    tracking = {**metrics, "val/HOTA": 0.61, "val/MOTA": 0.7, "val/IDF1": 0.72}
    assert "AP75 0.500  HOTA 0.610  MOTA 0.700  IDF1 0.720" in summary_line(0, 1, tracking)


def test_results_csv_has_every_column_and_empty_cells_for_epochs_without_validation() -> None:
    rows = [
        {"epoch": 0, "step": 10, "lr": 0.001, "train/total_loss": 2.5},
        {"epoch": 1, "step": 20, "lr": 0.0005, "train/total_loss": 2.0, "val/AP": 0.25, "val/AP_small": math.nan},
    ]
    table = list(csv.reader(io.StringIO(results_csv(rows))))
    assert table[0] == ["epoch", "step", "lr", "train/total_loss", "val/AP", "val/AP_small"]
    assert table[1] == ["0", "10", "0.001", "2.5", "", ""]
    assert table[2] == ["1", "20", "0.0005", "2", "0.25", ""]


def test_results_plot_is_a_png_and_rows_survive_a_resume(tmp_path: Path) -> None:
    rows = [{"epoch": e, "step": e, "train/total_loss": 3.0 - e, "val/AP": 0.1 * e, "val/HOTA": 0.2} for e in range(3)]
    plot_results(rows, tmp_path / "results.png")
    assert (tmp_path / "results.png").read_bytes()[:4] == b"\x89PNG"
    saved = TrainingResults()
    saved.rows = rows
    resumed = TrainingResults()
    resumed.load_state_dict(saved.state_dict())
    assert resumed.rows == rows
