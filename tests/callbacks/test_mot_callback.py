"""The tracking-metrics callback: frames collected in any order, tracked per sequence, scored by hand."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from centernet_lightning.callbacks import MOTEvaluation
from centernet_lightning.datasets.common import ImageRecord
from centernet_lightning.datasets.tracking import FrameRecord
from centernet_lightning.tracking import Tracker


def box(x: float, y: float) -> list[float]:
    return [x, y, x + 40.0, y + 80.0]


def make_records() -> list[FrameRecord]:
    """Sequence A: identities 0 and 1 walking right, and an ignore region; sequence B: identity 2,
    in frames 50 px high, so that most of its 20 x 80 box lies below the image."""
    records = []
    for t in range(3):
        bboxes = np.array([box(20 + 4 * t, 30), box(150 + 4 * t, 40), box(300, 100)], np.float32)
        fields = {"track_ids": np.array([0, 1, -1]), "ignore": np.array([False, False, True])}
        record = FrameRecord(Path(f"A/{t}.jpg"), len(records), bboxes, np.zeros(3, np.int64), fields, (240, 400))
        records.append(replace(record, sequence="A", frame_index=t))
    for t in range(3):
        bboxes = np.array([[60, 20 + 4 * t, 80, 100 + 4 * t]], np.float32)
        fields = {"track_ids": np.array([2]), "ignore": np.array([False])}
        record = FrameRecord(Path(f"B/{t}.jpg"), len(records), bboxes, np.zeros(1, np.int64), fields, (50, 400))
        records.append(replace(record, sequence="B", frame_index=t))
    return records


def model_outputs(record: FrameRecord, drop: bool) -> tuple[dict, dict]:
    """Perfect detections of every object of the record (original pixels clipped to the image, as
    the evaluation steps give them; K = 4 with padding), or none of them when ``drop``; identity k's
    embedding is the unit vector k (the ignore region's is 3)."""
    count = 0 if drop else len(record.bboxes)
    bboxes = torch.zeros(1, 4, 4)
    scores = torch.zeros(1, 4)
    labels = torch.full((1, 4), -1)
    embeddings = torch.zeros(1, 4, 4)
    for n in range(count):
        height, width = record.size
        bboxes[0, n] = torch.tensor(record.bboxes[n]).clamp(min=0).minimum(torch.tensor([width, height] * 2))
        scores[0, n], labels[0, n] = 0.9, 0
        embeddings[0, n, int(record.fields["track_ids"][n]) % 4] = 1.0
    detections = {"bboxes": bboxes, "scores": scores, "labels": labels, "embeddings": embeddings}
    batch = {
        "image_ids": torch.tensor([record.image_id]),
    }
    return detections, batch


def test_tracks_each_sequence_and_scores_it():
    records = make_records()
    logged = {}
    predictor = SimpleNamespace(build_tracker=lambda **overrides: Tracker(**overrides))
    module = SimpleNamespace(predictor=lambda: predictor, log_dict=logged.update)
    loader = SimpleNamespace(dataset=SimpleNamespace(records=records, sequences={}))
    trainer = SimpleNamespace(sanity_checking=False, world_size=1, val_dataloaders=loader)
    callback = MOTEvaluation()
    callback.on_validation_epoch_start(trainer, module)
    # Frames arrive in any order; sequence B's second frame has no detection.
    for index in (5, 0, 3, 1, 4, 2):
        detections, batch = model_outputs(records[index], drop=index == 4)
        callback.on_validation_batch_end(trainer, module, detections, batch, 0)
    callback.on_validation_epoch_end(trainer, module)

    # 9 evaluated boxes (the ignore region is neither a hit nor a false positive); one missed. The
    # ground truth of B is clipped to its image as the detections are (else IoU <= 0.375: all missed).
    assert callback.last_metrics["FN"] == 1 and callback.last_metrics["FP"] == 0
    assert callback.last_metrics["IDSW"] == 0  # identity 2 is picked up again by its embedding
    assert logged["val/MOTA"] == pytest.approx(1 - 1 / 9)
    assert logged["val/IDF1"] == pytest.approx(2 * 8 / (2 * 8 + 0 + 1))
    assert callback.last_sequences["A"]["MOTA"] == 1.0 and callback.last_sequences["A"]["IDF1"] == 1.0
    assert set(logged) == {f"val/{name}" for name in ("HOTA", "DetA", "AssA", "MOTA", "MOTP", "IDF1", "IDSW")}


def test_sanity_check_detection_datasets_and_modules_without_a_predictor_are_skipped():
    callback = MOTEvaluation()
    records = make_records()
    loader = SimpleNamespace(dataset=SimpleNamespace(records=records))
    detection_loader = SimpleNamespace(dataset=SimpleNamespace(records=[ImageRecord(Path("a.jpg"), 0)]))
    logged = {}
    for trainer, module in (
        (
            SimpleNamespace(sanity_checking=True, world_size=1, val_dataloaders=loader),
            SimpleNamespace(predictor=lambda: SimpleNamespace(build_tracker=Tracker), log_dict=logged.update),
        ),
        (  # a detection dataset: records without sequences
            SimpleNamespace(sanity_checking=False, world_size=1, val_dataloaders=detection_loader),
            SimpleNamespace(predictor=lambda: SimpleNamespace(build_tracker=Tracker), log_dict=logged.update),
        ),
        (
            SimpleNamespace(sanity_checking=False, world_size=1, val_dataloaders=loader),
            SimpleNamespace(log_dict=logged.update),
        ),
    ):
        callback.on_validation_epoch_start(trainer, module)
        detections, batch = model_outputs(records[0], drop=False)
        callback.on_validation_batch_end(trainer, module, detections, batch, 0)
        callback.on_validation_epoch_end(trainer, module)
    assert logged == {}
