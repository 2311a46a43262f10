"""The datamodule-driven predict's writer: drawn images and the JSON, names unique across DDP ranks."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest
import torch

from centernet_lightning.callbacks import PredictionWriter
from centernet_lightning.structures import InferenceSpec


def write_images(root: Path) -> list[Path]:
    """Two images of the same file name in two folders."""
    paths = []
    for folder in ("a", "b"):
        (root / folder).mkdir(parents=True)
        cv2.imwrite(str(root / folder / "frame.png"), np.full((20, 30, 3), 100, np.uint8))
        paths.append(root / folder / "frame.png")
    return paths


@pytest.mark.parametrize("world_size, drawn", [(1, ["frame.png", "frame_2.png"]), (2, ["7_frame.png", "8_frame.png"])])
def test_drawn_names_and_json(tmp_path: Path, world_size: int, drawn: list[str]) -> None:
    paths = write_images(tmp_path / "images")
    strategy = SimpleNamespace(broadcast=lambda value: value)
    trainer = SimpleNamespace(is_global_zero=True, world_size=world_size, strategy=strategy)
    module = SimpleNamespace(inference_spec=InferenceSpec(class_names=["thing"]), num_classes=1)
    writer = PredictionWriter(output_dir=str(tmp_path / "runs"), name="predict", score_threshold=0.5)
    writer.on_predict_start(trainer, module)
    prediction = {
        "image_paths": paths,
        "image_ids": torch.tensor([7, 8]),
        "bboxes": torch.tensor([[[1.0, 2.0, 11.0, 12.0], [0, 0, 0, 0]]] * 2),
        "scores": torch.tensor([[0.9, 0.2], [0.4, 0.0]]),
        "labels": torch.tensor([[0, 0], [0, -1]]),
    }
    writer.write_on_batch_end(trainer, module, prediction, None, None, 0, 0)
    writer.on_predict_end(trainer, module)
    run = tmp_path / "runs" / "predict"
    assert sorted(p.name for p in run.glob("*.png")) == drawn
    entries = json.loads((run / "predictions.json").read_text())
    assert [(e["image_id"], e["bbox"], e["score"]) for e in entries] == [(7, [1.0, 2.0, 10.0, 10.0], 0.9)]
