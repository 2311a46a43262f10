"""KeypointEvaluator against pycocotools' COCOeval (iouType "keypoints") on a small synthetic set."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import math
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist

from centernet_lightning.eval.keypoints import (
    COCO_KEYPOINT_SIGMAS,
    KEYPOINT_METRIC_NAMES,
    KeypointEvaluator,
    format_keypoint_table,
)

JOINTS = 17
JOINT_NAMES = [f"joint_{index}" for index in range(JOINTS)]
IMAGE_HEIGHT, IMAGE_WIDTH = 480, 640


def make_scene(seed: int = 0, num_images: int = 12) -> tuple[dict, list[dict]]:
    """A COCO keypoints GT dict and per-image detections ``{"bboxes" [K, 4] XYXY, "scores" [K],
    "keypoints" [K, 17, 3]}``.

    Persons of medium and large areas with 17 joints, about 15% not labelled (v = 0, x = y = 0) and
    25% hidden (v = 1); a crowd region in image 0; a person without labelled joints in image 1 (ignored);
    a second category, "dog", without keypoints (not evaluated). Detections are the persons' joints
    with noise proportional to their size (some missed), plus false positives; image 2 has none.
    """
    rng = np.random.default_rng(seed)
    images, annotations, detections = [], [], []
    for image_id in range(1, num_images + 1):
        images.append({"id": image_id, "height": IMAGE_HEIGHT, "width": IMAGE_WIDTH})
        boxes, scores, joints = [], [], []
        for _ in range(int(rng.integers(1, 5))):
            size = rng.choice([50.0, 80.0, 150.0, 260.0]) * rng.uniform(0.8, 1.2, 2)
            top_left = rng.uniform(0, 1, 2) * (np.array([IMAGE_WIDTH, IMAGE_HEIGHT]) - size)
            xy = top_left + rng.uniform(0.05, 0.95, (JOINTS, 2)) * size
            visibility = rng.choice([0, 1, 2], size=JOINTS, p=[0.15, 0.25, 0.6])
            keypoints = np.concatenate((np.where(visibility[:, None] > 0, xy, 0.0), visibility[:, None]), axis=1)
            annotations.append(
                {
                    "image_id": image_id,
                    "category_id": 1,
                    "bbox": [*top_left.tolist(), *size.tolist()],
                    "area": float(0.6 * size[0] * size[1]),  # a segmentation's area, smaller than its box
                    "iscrowd": 0,
                    "keypoints": keypoints.round(2).reshape(-1).tolist(),
                    "num_keypoints": int(np.count_nonzero(visibility)),
                }
            )
            if rng.random() < 0.85:
                noise = rng.normal(0, rng.choice([0.005, 0.015, 0.04]), (JOINTS, 2)) * size
                boxes.append(np.concatenate((top_left, top_left + size)) + rng.normal(0, 3, 4))
                scores.append(rng.uniform(0.3, 1.0))
                joints.append(np.concatenate((xy + noise, rng.uniform(0, 1, (JOINTS, 1))), axis=1))
        for _ in range(int(rng.integers(0, 3))):  # false positives
            size = rng.uniform(40, 200, 2)
            top_left = rng.uniform(0, 1, 2) * (np.array([IMAGE_WIDTH, IMAGE_HEIGHT]) - size)
            boxes.append(np.concatenate((top_left, top_left + size)))
            scores.append(rng.uniform(0.05, 0.7))
            joints.append(np.concatenate((top_left + rng.uniform(0, 1, (JOINTS, 2)) * size, np.ones((JOINTS, 1))), 1))
        if image_id == 2:
            boxes, scores, joints = [], [], []
        detections.append(
            {
                "bboxes": np.asarray(boxes, np.float32).reshape(-1, 4),
                "scores": np.asarray(scores, np.float32),
                "keypoints": np.asarray(joints, np.float32).reshape(-1, JOINTS, 3),
            }
        )
    crowd = {"image_id": 1, "category_id": 1, "bbox": [300.0, 200.0, 200.0, 150.0], "area": 20000.0, "iscrowd": 1}
    crowd |= {"keypoints": [0.0] * (3 * JOINTS), "num_keypoints": 0}
    unlabelled = {"image_id": 2, "category_id": 1, "bbox": [10.0, 10.0, 100.0, 200.0], "area": 15000.0, "iscrowd": 0}
    unlabelled |= {"keypoints": [0.0] * (3 * JOINTS), "num_keypoints": 0}
    dog = {"image_id": 3, "category_id": 18, "bbox": [5.0, 5.0, 60.0, 40.0], "area": 2400.0, "iscrowd": 0}
    annotations += [crowd, unlabelled, dog]
    for annotation_id, annotation in enumerate(annotations, start=1):
        annotation["id"] = annotation_id
    categories = [
        {"id": 1, "name": "person", "supercategory": "person", "keypoints": JOINT_NAMES, "skeleton": [[1, 2], [2, 3]]},
        {"id": 18, "name": "dog", "supercategory": "animal"},
    ]
    return {"images": images, "annotations": annotations, "categories": categories}, detections


def add_padded(evaluator: KeypointEvaluator, detections: list[dict], batch: int = 3) -> None:
    """Feed per-image detections in batches padded to K (score 0, category -1), as decoding gives them."""
    for start in range(0, len(detections), batch):
        chunk = detections[start : start + batch]
        k = max(1, max(len(d["scores"]) for d in chunk))
        bboxes, scores = torch.zeros(len(chunk), k, 4), torch.zeros(len(chunk), k)
        category_ids = torch.full((len(chunk), k), -1)
        keypoints = torch.zeros(len(chunk), k, JOINTS, 3)
        for row, image in enumerate(chunk):
            n = len(image["scores"])
            bboxes[row, :n] = torch.from_numpy(image["bboxes"])
            scores[row, :n] = torch.from_numpy(image["scores"])
            category_ids[row, :n] = 1
            keypoints[row, :n] = torch.from_numpy(image["keypoints"])
        image_ids = torch.arange(start + 1, start + 1 + len(chunk))
        evaluator.add(image_ids, bboxes, scores, category_ids, keypoints)


def pycocotools_stats(gt_path: Path, results_path: Path) -> np.ndarray:
    """pycocotools' 10 keypoint stats of the two json files, with its default (COCO) sigmas."""
    coco_module = pytest.importorskip("pycocotools.coco")
    cocoeval_module = pytest.importorskip("pycocotools.cocoeval")
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = coco_module.COCO(str(gt_path))
        coco_eval = cocoeval_module.COCOeval(coco_gt, coco_gt.loadRes(str(results_path)), iouType="keypoints")
        coco_eval.params.catIds = [1]  # the "dog" annotations have no keypoints
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    return np.asarray(coco_eval.stats)


@pytest.fixture(scope="module")
def scene() -> tuple[dict, list[dict]]:
    return make_scene()


@pytest.mark.parametrize("backend", ["faster_coco_eval", "pycocotools"])
def test_matches_pycocotools_on_the_same_files(scene, backend: str, tmp_path, capsys) -> None:
    gt, detections = scene
    gt_path = tmp_path / "person_keypoints_val.json"
    gt_path.write_text(json.dumps(gt))
    evaluator = KeypointEvaluator(gt_path, backend=backend)
    add_padded(evaluator, detections)
    metrics = evaluator.evaluate()
    assert capsys.readouterr().out == ""  # the COCO tools' printing is silenced
    assert list(metrics) == list(KEYPOINT_METRIC_NAMES)
    results_path = evaluator.save_results(tmp_path / "keypoints_val.json")
    assert json.loads(results_path.read_text()) == evaluator.results()

    expected = pycocotools_stats(gt_path, results_path)
    # Our pycocotools backend runs the same code: exact. faster-coco-eval sums in another order:
    # its numbers may differ in the last bit (5.6e-17 seen).
    tolerance = 0.0 if backend == "pycocotools" else 1e-12
    np.testing.assert_allclose([metrics[name] for name in KEYPOINT_METRIC_NAMES], expected, rtol=0, atol=tolerance)
    assert 0.2 < metrics["AP"] < 0.9  # non-trivial, so the comparison means something
    assert metrics["APm"] > 0 and metrics["APl"] > 0  # both area ranges hold persons
    assert evaluator.per_class_ap() == {"person": pytest.approx(metrics["AP"], abs=1e-12)}


def test_results_format(scene) -> None:
    gt, _ = scene
    evaluator = KeypointEvaluator(gt)
    keypoints = torch.arange(2 * JOINTS * 3, dtype=torch.float32).reshape(1, 2, JOINTS, 3)
    bboxes = torch.tensor([[[10.0, 20.0, 50.0, 80.0], [0.0, 0.0, 1.0, 1.0]]])
    evaluator.add([1], bboxes, torch.tensor([[0.75, 0.0]]), torch.tensor([[1, 1]]), keypoints)  # 2nd: padding
    (result,) = evaluator.results()
    assert result == {
        "image_id": 1,
        "category_id": 1,
        "bbox": [10.0, 20.0, 40.0, 60.0],
        "score": 0.75,
        # x1, y1, s1, x2, ... as COCO's pixel indices: half a pixel less than the library's joints
        "keypoints": (keypoints[0, 0] - torch.tensor([0.5, 0.5, 0.0])).reshape(-1).tolist(),
    }


def test_perfect_prediction_gives_ap_one(scene) -> None:
    gt, _ = scene
    evaluator = KeypointEvaluator(gt)
    for annotation in gt["annotations"]:
        if annotation["category_id"] != 1 or annotation["iscrowd"] or not annotation["num_keypoints"]:
            continue
        x, y, w, h = annotation["bbox"]
        joints = torch.tensor(annotation["keypoints"]).reshape(1, 1, JOINTS, 3) + torch.tensor([0.5, 0.5, 0.0])
        evaluator.add([annotation["image_id"]], [[[x, y, x + w, y + h]]], [[0.9]], [[1]], joints)  # library frame
    metrics = evaluator.evaluate()
    assert metrics == dict.fromkeys(KEYPOINT_METRIC_NAMES, pytest.approx(1.0))


def test_one_oks_value_by_hand() -> None:
    """One person, one detection: AP is the fraction of the thresholds .50:.05:.95 that its OKS
    reaches, with OKS = mean over labelled joints of exp(-d^2 / (2 s^2 k^2)), s^2 = area, k = 2 sigma."""
    rng = np.random.default_rng(3)
    true_xy = rng.uniform(100, 300, (JOINTS, 2))
    visibility = np.array([2, 2, 1, 0, 2, 1, 2, 2, 0, 2, 2, 1, 2, 2, 2, 0, 2])
    area = 12000.0
    annotation = {"id": 1, "image_id": 1, "category_id": 1, "bbox": [90.0, 90.0, 220.0, 220.0], "area": area}
    keypoints = np.concatenate((np.where(visibility[:, None] > 0, true_xy, 0.0), visibility[:, None]), axis=1)
    annotation |= {"iscrowd": 0, "keypoints": keypoints.reshape(-1).tolist(), "num_keypoints": 14}
    gt = {
        "images": [{"id": 1, "height": 480, "width": 640}],
        "annotations": [annotation],
        "categories": [{"id": 1, "name": "person", "keypoints": JOINT_NAMES}],
    }
    predicted_xy = true_xy + rng.normal(0, 6, (JOINTS, 2))

    labelled = visibility > 0
    squared_distance = ((predicted_xy - true_xy) ** 2).sum(axis=1)
    k = 2 * np.asarray(COCO_KEYPOINT_SIGMAS)
    oks = float(np.mean(np.exp(-squared_distance / (2 * area * k**2))[labelled]))
    assert 0.55 < oks < 0.9  # between thresholds, so AP is neither 0 nor 1
    thresholds = np.linspace(0.5, 0.95, 10)
    expected_ap = float(np.mean(oks >= thresholds))

    for backend in ("faster_coco_eval", "pycocotools"):
        evaluator = KeypointEvaluator(gt, backend=backend)
        # the library's frame: COCO's pixel indices + 0.5
        joints = np.concatenate((predicted_xy + 0.5, np.ones((JOINTS, 1))), axis=1)[None, None]
        evaluator.add([1], [[[90.0, 90.0, 310.0, 310.0]]], [[0.8]], [[1]], joints)
        metrics = evaluator.evaluate()
        assert metrics["AP"] == pytest.approx(expected_ap, abs=1e-12), backend
        assert metrics["AR"] == pytest.approx(expected_ap, abs=1e-12), backend


def test_crowd_region_and_unlabelled_person_are_neither_missed_nor_false_positives(scene) -> None:
    """Detections on the crowd region (image 1) and on the person without labelled joints (image 2)
    leave a perfect AP at 1."""
    gt, _ = scene
    evaluator = KeypointEvaluator(gt)
    for annotation in gt["annotations"]:
        if annotation["category_id"] != 1:
            continue
        x, y, w, h = annotation["bbox"]
        if annotation["num_keypoints"]:
            joints = np.asarray(annotation["keypoints"]).reshape(JOINTS, 3)
        else:  # inside the region: no joints to match, distance to the doubled box is 0
            joints = np.concatenate(
                (np.full((JOINTS, 1), x + w / 2), np.full((JOINTS, 1), y + h / 2), np.ones((JOINTS, 1))), 1
            )
        evaluator.add([annotation["image_id"]], [[[x, y, x + w, y + h]]], [[0.95]], [[1]], joints[None, None])
    assert evaluator.evaluate()["AP"] == pytest.approx(1.0)


def test_sigmas_for_another_joint_count() -> None:
    gt = {
        "images": [{"id": 1, "height": 100, "width": 100}],
        "annotations": [
            {
                "id": 1,
                "image_id": 1,
                "category_id": 1,
                "bbox": [10.0, 10.0, 50.0, 50.0],
                "area": 2000.0,
                "iscrowd": 0,
                "keypoints": [20.0, 20.0, 2, 40.0, 40.0, 2, 0.0, 0.0, 0],  # no num_keypoints: counted (2)
            }
        ],
        "categories": [{"id": 1, "name": "hand", "keypoints": ["thumb", "index", "little"]}],
    }
    with pytest.raises(ValueError, match="3 joints"):
        KeypointEvaluator(gt)
    with pytest.raises(ValueError, match="3 positive values"):
        KeypointEvaluator(gt, sigmas=[0.1, 0.1])
    evaluator = KeypointEvaluator(gt, sigmas=[0.05, 0.05, 0.05])
    assert evaluator.sigmas == (0.05, 0.05, 0.05)
    joints = np.array([[[[21.5, 20.5, 1.0], [40.5, 42.5, 1.0], [90.0, 90.0, 1.0]]]])  # the library's frame: +0.5
    evaluator.add([1], [[[10.0, 10.0, 60.0, 60.0]]], [[0.9]], [[1]], joints)
    oks = np.mean(np.exp(-np.array([1.0, 4.0]) / (2 * 2000.0 * 0.1**2)))  # the unlabelled joint does not count
    assert evaluator.evaluate()["AP"] == pytest.approx(np.mean(oks >= np.linspace(0.5, 0.95, 10)))
    with pytest.raises(ValueError, match=r"\[B, K, J=3, 3\]"):
        evaluator.add([1], [[[10.0, 10.0, 60.0, 60.0]]], [[0.9]], [[1]], np.zeros((1, 1, 17, 3)))


def test_not_a_keypoints_ground_truth_is_an_error() -> None:
    gt = {"images": [], "annotations": [], "categories": [{"id": 1, "name": "person"}]}
    with pytest.raises(ValueError, match="'keypoints' list"):
        KeypointEvaluator(gt)


@pytest.mark.parametrize("backend", ["faster_coco_eval", "pycocotools"])
def test_no_detections_gives_zeros(scene, backend: str, caplog) -> None:
    gt, _ = scene
    evaluator = KeypointEvaluator(gt, backend=backend)
    evaluator.add([1], torch.zeros(1, 2, 4), torch.zeros(1, 2), torch.full((1, 2), -1), torch.zeros(1, 2, JOINTS, 3))
    with caplog.at_level(logging.WARNING):
        metrics = evaluator.evaluate()
    assert metrics == dict.fromkeys(KEYPOINT_METRIC_NAMES, 0.0)
    assert "no detections" in caplog.text
    assert evaluator.per_class_ap() == {"person": 0.0}


def test_gather_merges_ranks_and_keeps_keypoints(scene, monkeypatch) -> None:
    """Two ranks (faked), one of which added nothing: its empty results still merge."""
    gt, detections = scene
    rank0, rank1 = KeypointEvaluator(gt), KeypointEvaluator(gt)
    add_padded(rank0, detections)
    expected = rank0.evaluate()
    other_rank = (np.empty(0, np.int64), rank1._arrays())

    def fake_all_gather_object(output: list, local: object) -> None:
        output[:] = [local, other_rank]

    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_world_size", lambda: 2)
    monkeypatch.setattr(dist, "all_gather_object", fake_all_gather_object)
    assert rank0.evaluate() == expected


def test_format_keypoint_table(scene) -> None:
    gt, detections = scene
    evaluator = KeypointEvaluator(gt)
    add_padded(evaluator, detections)
    metrics = evaluator.evaluate()
    text = format_keypoint_table(metrics)
    assert "keypoint" in text
    for name in (*KEYPOINT_METRIC_NAMES, f"{100 * metrics['AP']:.1f}"):
        assert name in text
    assert not math.isnan(metrics["AP"])
