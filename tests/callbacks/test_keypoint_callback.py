"""The keypoint-AP callback, beside the box-AP callback whose steps it shares: what each logs,
prints and writes, and when the keypoint one stays quiet."""

from __future__ import annotations

import json
import logging
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from centernet_lightning.callbacks import COCOEvaluation, KeypointEvaluation
from centernet_lightning.datasets.common import DetectionDataset, ImageRecord
from centernet_lightning.eval.keypoints import KEYPOINT_METRIC_NAMES, KeypointEvaluator
from centernet_lightning.structures import KeypointLayout

JOINTS = 17
CATEGORY_ID = 7  # not 0: the labels must be mapped back


def make_dataset(tmp_path: Path) -> tuple[DetectionDataset, list[tuple[dict, dict]]]:
    """A two-image person dataset with a COCO keypoints json at ``coco_gt_path``, and per image the
    (detections, batch) a validation step gives: every person found, its joints a few pixels off."""
    rng = np.random.default_rng(0)
    images, annotations, records, steps = [], [], [], []
    for image_id in (11, 12):
        boxes = np.array([[40.0, 30.0, 200.0, 400.0], [300.0, 60.0, 420.0, 300.0]])[: image_id - 10]
        joints = [rng.uniform(box[:2], box[2:], (JOINTS, 2)) for box in boxes]
        for box, xy in zip(boxes, joints, strict=True):
            keypoints = np.concatenate((xy, np.full((JOINTS, 1), 2.0)), axis=1).reshape(-1).tolist()
            annotations.append(
                {
                    "id": len(annotations) + 1,
                    "image_id": image_id,
                    "category_id": CATEGORY_ID,
                    "bbox": [box[0], box[1], box[2] - box[0], box[3] - box[1]],
                    "area": float(0.5 * (box[2] - box[0]) * (box[3] - box[1])),
                    "iscrowd": 0,
                    "keypoints": keypoints,
                    "num_keypoints": JOINTS,
                }
            )
        images.append({"id": image_id, "height": 480, "width": 640})
        records.append(
            ImageRecord(
                Path(f"{image_id}.jpg"),
                image_id,
                boxes.astype(np.float32),
                np.zeros(len(boxes), np.int64),
                size=(480, 640),
            )
        )
        predicted = np.stack(
            [np.concatenate((xy + rng.normal(0, 3, xy.shape), np.ones((JOINTS, 1))), 1) for xy in joints]
        )
        detections = {
            "bboxes": torch.tensor(np.concatenate((boxes, np.zeros((1, 4))))[None], dtype=torch.float32),
            "scores": torch.tensor([[0.9] * len(boxes) + [0.0]]),
            "labels": torch.tensor([[0] * len(boxes) + [-1]]),  # one padding entry
            "keypoints": torch.tensor(np.concatenate((predicted, np.zeros((1, JOINTS, 3))))[None], dtype=torch.float32),
        }
        steps.append((detections, {"image_ids": torch.tensor([image_id])}))
    gt = {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": CATEGORY_ID, "name": "person", "keypoints": [f"j{i}" for i in range(JOINTS)]}],
    }
    dataset = DetectionDataset(records, ["person"])
    dataset.coco_gt_path = tmp_path / "person_keypoints_val.json"
    dataset.coco_gt_path.write_text(json.dumps(gt))
    dataset.label_to_category_id = [CATEGORY_ID]
    dataset.keypoint_layout = KeypointLayout(tuple(f"j{i}" for i in range(JOINTS)))
    return dataset, steps


def run_validation(callbacks: list, dataset: object, steps: list, tmp_path: Path, fn: str = "fit") -> dict:
    logged: dict = {}
    module = SimpleNamespace(log_dict=lambda values, sync_dist: logged.update(values))
    trainer = SimpleNamespace(
        sanity_checking=False,
        val_dataloaders=SimpleNamespace(dataset=dataset),
        state=SimpleNamespace(fn=fn),
        log_dir=str(tmp_path),
        is_global_zero=True,
    )
    for callback in callbacks:
        callback.on_validation_epoch_start(trainer, module)
    for detections, batch in steps:
        for callback in callbacks:
            callback.on_validation_batch_end(trainer, module, detections, batch, 0)
    for callback in callbacks:
        callback.on_validation_epoch_end(trainer, module)
    return logged


def test_logs_keypoint_metrics_beside_the_box_metrics(tmp_path) -> None:
    dataset, steps = make_dataset(tmp_path)
    boxes, keypoints = COCOEvaluation(), KeypointEvaluation()
    logged = run_validation([boxes, keypoints], dataset, steps, tmp_path)

    expected = KeypointEvaluator(dataset.coco_gt_path)
    for detections, batch in steps:
        labels = detections["labels"]
        category_ids = torch.where(labels >= 0, CATEGORY_ID, -1)
        expected.add(
            batch["image_ids"], detections["bboxes"], detections["scores"], category_ids, detections["keypoints"]
        )
    expected_metrics = expected.evaluate()
    assert 0 < expected_metrics["AP"] < 1

    assert {f"val/kp_{name}": value for name, value in expected_metrics.items()} == {
        name: value for name, value in logged.items() if name.startswith("val/kp_")
    }
    assert keypoints.last_metrics == expected_metrics
    assert logged["val/AP"] == pytest.approx(1.0)  # the boxes are exact
    assert logged["val/AP_class/person"] == pytest.approx(1.0)
    assert not any(name.startswith("val/kp_AP_class") for name in logged)
    # Results are written after validate/test only.
    assert not (tmp_path / "keypoints_val.json").exists() and not (tmp_path / "detections_val.json").exists()


def test_validate_prints_the_keypoint_table_after_the_box_table_and_writes_results(tmp_path, capsys) -> None:
    dataset, steps = make_dataset(tmp_path)
    keypoints = KeypointEvaluation()
    run_validation([COCOEvaluation(), keypoints], dataset, steps, tmp_path, fn="validate")
    out = capsys.readouterr().out
    assert 0 <= out.index("COCO box metrics") < out.index("COCO keypoint metrics")
    assert json.loads((tmp_path / "detections_val.json").read_text())
    results = json.loads((tmp_path / "keypoints_val.json").read_text())
    assert len(results) == 3 and all(len(result["keypoints"]) == 3 * JOINTS for result in results)
    assert all(result["category_id"] == CATEGORY_ID for result in results)


def test_quiet_without_a_keypoint_layout_or_keypoint_detections(tmp_path, caplog) -> None:
    dataset, steps = make_dataset(tmp_path)
    box_steps = [({k: v for k, v in detections.items() if k != "keypoints"}, batch) for detections, batch in steps]
    no_layout = SimpleNamespace(records=dataset.records)
    callback = KeypointEvaluation()
    with caplog.at_level(logging.INFO, logger="centernet_lightning.callbacks.keypoints"):
        for _ in range(2):  # two epochs: one info log for each reason
            assert run_validation([callback], no_layout, steps, tmp_path) == {}
            assert run_validation([callback], dataset, box_steps, tmp_path) == {}
    messages = [record.getMessage() for record in caplog.records]
    assert len(messages) == 2
    assert "keypoint_layout" in messages[0] and "no keypoints" in messages[1]
    assert callback.last_metrics == {}
    # Once the detections carry keypoints, the same callback evaluates.
    assert "val/kp_AP" in run_validation([callback], dataset, steps, tmp_path)


def test_other_joint_counts_need_their_sigmas(tmp_path) -> None:
    dataset, steps = make_dataset(tmp_path)
    gt = json.loads(dataset.coco_gt_path.read_text())
    gt["categories"][0]["keypoints"] = gt["categories"][0]["keypoints"][:5]
    for annotation in gt["annotations"]:
        annotation["keypoints"] = annotation["keypoints"][:15]
    dataset.coco_gt_path.write_text(json.dumps(gt))
    with pytest.raises(ValueError, match="5 joints"):
        run_validation([KeypointEvaluation()], dataset, steps, tmp_path)
    five_joint_steps = [({**d, "keypoints": d["keypoints"][:, :, :5]}, batch) for d, batch in steps]
    logged = run_validation([KeypointEvaluation(sigmas=[0.05] * 5)], dataset, five_joint_steps, tmp_path)
    assert set(logged) == {f"val/kp_{name}" for name in KEYPOINT_METRIC_NAMES}
