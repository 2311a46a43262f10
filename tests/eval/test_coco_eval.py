"""COCOEvaluator against pycocotools, the reference implementation, on small random sets."""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import math
import os
import socket
import sys

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp

import centernet_lightning.eval as eval_api
from centernet_lightning.eval import METRIC_NAMES, COCOEvaluator, build_coco_gt, format_table
from centernet_lightning.eval.coco import _merge_ranks

# Non-contiguous ids, as in COCO; category 5 has no ground truth at all.
CATEGORIES = [(1, "person"), (3, "car"), (5, "unused"), (7, "dog"), (90, "toothbrush")]
GT_CATEGORY_IDS = [1, 3, 7, 90]
IMAGE_HEIGHT, IMAGE_WIDTH = 480, 640


def make_scene(seed: int = 0, num_images: int = 12) -> tuple[dict, list[np.ndarray], list[np.ndarray]]:
    """A GT dict plus per-image detections: boxes [K, 4] XYXY and a [K, 2] (score, category) table.

    Objects of every COCO size range, some crowd GT, the last two images without GT, image 3
    without detections, image 4 with more than 100 detections (exercises maxDets=100).
    """
    rng = np.random.default_rng(seed)
    image_ids = [100 + 7 * index for index in range(num_images)]
    gt_boxes, gt_categories, gt_crowd = [], [], []
    det_boxes, det_table = [], []
    for index in range(num_images):
        count = 0 if index >= num_images - 2 else int(rng.integers(1, 9))
        sizes = rng.choice([10.0, 20.0, 45.0, 80.0, 150.0, 300.0], size=(count, 1)) * rng.uniform(0.7, 1.3, (count, 2))
        top_left = rng.uniform(0, 1, (count, 2)) * (np.array([IMAGE_WIDTH, IMAGE_HEIGHT]) - sizes)
        boxes = np.concatenate((top_left, top_left + sizes), axis=1)
        categories = rng.choice(GT_CATEGORY_IDS, size=count)
        gt_boxes.append(boxes)
        gt_categories.append(categories)
        gt_crowd.append(rng.random(count) < 0.15)

        # Noisy copies of most GT boxes (some with a wrong class), then random false positives.
        copies = rng.random(count) < 0.85
        jitter = rng.normal(0, 0.08, (int(copies.sum()), 4)) * np.tile(sizes[copies], 2)
        copy_categories = np.where(
            rng.random(int(copies.sum())) < 0.1,
            rng.choice(GT_CATEGORY_IDS, int(copies.sum())),
            categories[copies],
        )
        num_false = 150 if index == 4 else int(rng.integers(0, 6))
        false_sizes = rng.uniform(8, 200, (num_false, 2))
        false_top_left = rng.uniform(0, 1, (num_false, 2)) * (np.array([IMAGE_WIDTH, IMAGE_HEIGHT]) - false_sizes)
        boxes_det = np.concatenate(
            (boxes[copies] + jitter, np.concatenate((false_top_left, false_top_left + false_sizes), axis=1))
        )
        scores = np.concatenate((rng.uniform(0.3, 1.0, len(jitter)), rng.uniform(0.01, 0.6, num_false)))
        det_categories = np.concatenate((copy_categories, rng.choice(GT_CATEGORY_IDS, num_false)))
        if index == 3:
            boxes_det, scores, det_categories = boxes_det[:0], scores[:0], det_categories[:0]
        det_boxes.append(boxes_det.astype(np.float32))
        det_table.append(np.stack((scores.astype(np.float32), det_categories), axis=1))

    gt = build_coco_gt(
        image_ids,
        [(IMAGE_HEIGHT, IMAGE_WIDTH)] * num_images,
        gt_boxes,
        gt_categories,
        CATEGORIES,
        ignore_per_image=gt_crowd,
    )
    return gt, det_boxes, det_table


def add_padded(
    evaluator: COCOEvaluator,
    image_ids: list[int],
    boxes: list[np.ndarray],
    table: list[np.ndarray],
    batch: int = 4,
) -> None:
    """Feed per-image detections in batches padded to K, as the decoder emits them."""
    for start in range(0, len(image_ids), batch):
        stop = min(start + batch, len(image_ids))
        k = max(1, max(len(boxes[i]) for i in range(start, stop)))
        bboxes = torch.zeros(stop - start, k, 4)
        scores = torch.zeros(stop - start, k)
        category_ids = torch.full((stop - start, k), -1, dtype=torch.int64)
        for row, index in enumerate(range(start, stop)):
            n = len(boxes[index])
            bboxes[row, :n] = torch.from_numpy(boxes[index])
            scores[row, :n] = torch.from_numpy(table[index][:, 0])
            category_ids[row, :n] = torch.from_numpy(table[index][:, 1].astype(np.int64))
        evaluator.add(torch.tensor(image_ids[start:stop]), bboxes, scores, category_ids)


def reference_stats(gt: dict, results: list[dict], category_ids: list[int] | None = None) -> np.ndarray:
    """pycocotools' 12 stats, used directly."""
    coco_module = pytest.importorskip("pycocotools.coco")
    cocoeval_module = pytest.importorskip("pycocotools.cocoeval")
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt = coco_module.COCO()
        coco_gt.dataset = copy.deepcopy(gt)
        coco_gt.createIndex()
        coco_eval = cocoeval_module.COCOeval(coco_gt, coco_gt.loadRes(copy.deepcopy(results)), "bbox")
        if category_ids is not None:
            coco_eval.params.catIds = category_ids
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    return np.asarray(coco_eval.stats)


@pytest.fixture(scope="module")
def scene() -> tuple[dict, list[np.ndarray], list[np.ndarray]]:
    return make_scene()


def image_ids_of(gt: dict) -> list[int]:
    return [image["id"] for image in gt["images"]]


def test_public_api() -> None:
    coco_names = {"BACKENDS", "METRIC_NAMES", "COCOEvaluator", "build_coco_gt", "coco_ground_truth", "format_table"}
    mot_names = {"MOTEvaluator", "evaluate_mot", "evaluate_mot_sequences", "evaluate_tracks"}
    assert coco_names | mot_names <= set(eval_api.__all__)
    for name in eval_api.__all__:
        assert hasattr(eval_api, name)


@pytest.mark.parametrize("backend", ["faster_coco_eval", "pycocotools"])
def test_matches_pycocotools(scene, backend: str, capsys) -> None:
    gt, boxes, table = scene
    evaluator = COCOEvaluator(gt, backend=backend)
    add_padded(evaluator, image_ids_of(gt), boxes, table)
    metrics = evaluator.evaluate()
    assert capsys.readouterr().out == ""  # the COCO tools' printing is silenced
    results = evaluator.results()

    assert list(metrics) == list(METRIC_NAMES)
    expected = reference_stats(gt, results)
    np.testing.assert_allclose([metrics[name] for name in METRIC_NAMES], expected, rtol=0, atol=1e-12)
    assert 0.1 < metrics["AP"] < 0.95  # non-trivial, so the comparison means something

    per_class = evaluator.per_class_ap()
    assert list(per_class) == [name for _, name in CATEGORIES]
    for category_id, name in CATEGORIES:
        expected_ap = reference_stats(gt, results, [category_id])[0]
        if expected_ap == -1:
            assert math.isnan(per_class[name]), name
        else:
            assert per_class[name] == pytest.approx(expected_ap, abs=1e-12), name
    assert math.isnan(per_class["unused"])


def test_score_ties_match_pycocotools(scene) -> None:
    """Scores rounded to 1 decimal: many ties, where only a stable sort gives pycocotools' order."""
    gt, boxes, table = scene
    rounded = [np.stack((np.round(t[:, 0], 1).clip(0.1), t[:, 1]), axis=1) for t in table]
    evaluator = COCOEvaluator(gt)
    add_padded(evaluator, image_ids_of(gt), boxes, rounded)
    metrics = evaluator.evaluate()
    expected = reference_stats(gt, evaluator.results())
    np.testing.assert_allclose([metrics[name] for name in METRIC_NAMES], expected, rtol=0, atol=1e-12)


def test_perfect_detections_give_ap_one(scene) -> None:
    gt, _, _ = scene
    evaluator = COCOEvaluator(gt)
    for annotation in gt["annotations"]:
        if annotation["iscrowd"]:
            continue
        x, y, w, h = annotation["bbox"]
        evaluator.add(
            np.array([annotation["image_id"]]),
            np.array([[[x, y, x + w, y + h]]]),
            np.array([[0.9]]),
            np.array([[annotation["category_id"]]]),
        )
    metrics = evaluator.evaluate()
    for name in ("AP", "AP50", "AP75", "AR100"):
        assert metrics[name] == pytest.approx(1.0), name
    per_class = evaluator.per_class_ap()
    assert all(per_class[name] == pytest.approx(1.0) for name in ("person", "car", "dog", "toothbrush"))
    assert math.isnan(per_class["unused"])


def test_padding_entries_are_dropped(scene) -> None:
    gt, _, _ = scene
    evaluator = COCOEvaluator(gt)
    bboxes = torch.tensor([[[10.0, 20.0, 50.0, 80.0], [0, 0, 5, 5], [1, 1, 9, 9], [2, 2, 4, 4]]])
    scores = torch.tensor([[0.8, 0.0, 0.7, -0.5]])
    category_ids = torch.tensor([[3, 1, -1, 7]])  # kept; score 0; label -1; negative score
    evaluator.add(torch.tensor([100]), bboxes, scores, category_ids)
    assert evaluator.results() == [
        {"image_id": 100, "category_id": 3, "bbox": [10.0, 20.0, 40.0, 60.0], "score": pytest.approx(0.8)}
    ]


def test_xyxy_to_xywh_numpy_and_tensor(scene) -> None:
    gt, _, _ = scene
    evaluator = COCOEvaluator(gt)
    boxes = np.array([[[12.5, 30.0, 112.5, 45.25]], [[0.0, 0.0, 640.0, 480.0]]], np.float32)
    evaluator.add(np.array([100, 107]), boxes, np.array([[0.5], [0.25]]), np.array([[1], [90]]))
    evaluator.add(
        torch.tensor([114]), torch.from_numpy(boxes[:1]).double(), torch.tensor([[0.75]]), torch.tensor([[7]])
    )
    assert [(r["image_id"], r["category_id"], r["bbox"], r["score"]) for r in evaluator.results()] == [
        (100, 1, [12.5, 30.0, 100.0, 15.25], 0.5),
        (107, 90, [0.0, 0.0, 640.0, 480.0], 0.25),
        (114, 7, [12.5, 30.0, 100.0, 15.25], 0.75),
    ]
    for result in evaluator.results():
        assert type(result["image_id"]) is int and type(result["category_id"]) is int
        assert type(result["score"]) is float and all(type(value) is float for value in result["bbox"])


@pytest.mark.parametrize("backend", ["faster_coco_eval", "pycocotools"])
def test_no_predictions_gives_zeros(scene, backend: str, caplog) -> None:
    gt, _, _ = scene
    evaluator = COCOEvaluator(gt, backend=backend)
    evaluator.add(torch.tensor([100, 107]), torch.zeros(2, 3, 4), torch.zeros(2, 3), torch.full((2, 3), -1))
    with caplog.at_level(logging.WARNING):
        metrics = evaluator.evaluate()
    assert metrics == dict.fromkeys(METRIC_NAMES, 0.0)
    assert "no detections" in caplog.text
    per_class = evaluator.per_class_ap()
    assert per_class["person"] == 0.0 and math.isnan(per_class["unused"])
    assert COCOEvaluator(gt, backend=backend).evaluate() == dict.fromkeys(METRIC_NAMES, 0.0)  # add() never called


def test_save_results_round_trip(scene, tmp_path) -> None:
    gt, boxes, table = scene
    evaluator = COCOEvaluator(gt)
    add_padded(evaluator, image_ids_of(gt), boxes, table)
    path = tmp_path / "sub" / "results.json"
    path.parent.mkdir()
    path.write_text("old content")  # ours to overwrite
    evaluator.save_results(path)
    assert json.loads(path.read_text()) == evaluator.results()
    assert os.listdir(path.parent) == ["results.json"]  # no temp file left behind


def test_bad_backend_lists_valid_names(scene) -> None:
    with pytest.raises(ValueError, match="faster_coco_eval, pycocotools"):
        COCOEvaluator(scene[0], backend="detectron2")


def test_missing_pycocotools_is_a_clear_import_error(scene, monkeypatch) -> None:
    for module in ("pycocotools", "pycocotools.coco", "pycocotools.cocoeval"):
        monkeypatch.setitem(sys.modules, module, None)  # None makes `import` raise ImportError
    with pytest.raises(ImportError, match="dev extra"):
        COCOEvaluator(scene[0], backend="pycocotools")
    COCOEvaluator(scene[0])  # the default backend does not need it


def test_gt_from_path_and_caller_dict_untouched(scene, tmp_path) -> None:
    gt, boxes, table = scene
    snapshot = copy.deepcopy(gt)
    path = tmp_path / "gt.json"
    path.write_text(json.dumps(gt))
    from_dict, from_path = COCOEvaluator(gt), COCOEvaluator(path)
    for evaluator in (from_dict, from_path):
        add_padded(evaluator, image_ids_of(gt), boxes, table)
    assert from_dict.evaluate() == from_path.evaluate()
    assert gt == snapshot


def test_reset_and_repeated_evaluate(scene) -> None:
    gt, boxes, table = scene
    evaluator = COCOEvaluator(gt)
    with pytest.raises(RuntimeError, match="evaluate"):
        evaluator.per_class_ap()
    add_padded(evaluator, image_ids_of(gt), boxes, table)
    first = evaluator.evaluate()
    assert evaluator.evaluate() == first  # evaluating again changes nothing
    evaluator.reset()
    assert evaluator.results() == []
    add_padded(evaluator, image_ids_of(gt), boxes, table)
    assert evaluator.evaluate() == first


def test_unknown_image_id_is_an_error(scene) -> None:
    evaluator = COCOEvaluator(scene[0])
    evaluator.add([99999], [[[0.0, 0.0, 10.0, 10.0]]], [[0.5]], [[1]])
    with pytest.raises(ValueError, match="99999"):
        evaluator.evaluate()


def test_bad_shapes_are_an_error(scene) -> None:
    evaluator = COCOEvaluator(scene[0])
    with pytest.raises(ValueError, match="bboxes"):
        evaluator.add([100], np.zeros((1, 4)), np.zeros((1, 1)), np.zeros((1, 1)))
    with pytest.raises(ValueError, match="scores"):
        evaluator.add([100], np.zeros((1, 2, 4)), np.zeros((1, 3)), np.zeros((1, 2)))


def test_build_coco_gt() -> None:
    gt = build_coco_gt(
        image_ids=[5, 9],
        image_sizes=[(100, 200), (50, 60)],
        bboxes_xyxy_per_image=[torch.tensor([[10.0, 20.0, 30.0, 60.0], [0, 0, 5, 5]]), np.zeros((0, 4))],
        category_ids_per_image=[torch.tensor([2, 4]), np.zeros(0, np.int64)],
        categories=[(2, "cat"), (4, "dog")],
        ignore_per_image=[np.array([False, True]), np.zeros(0, bool)],
    )
    assert gt == {
        "images": [{"id": 5, "height": 100, "width": 200}, {"id": 9, "height": 50, "width": 60}],
        "annotations": [
            {
                "id": 1,
                "image_id": 5,
                "category_id": 2,
                "bbox": [10.0, 20.0, 20.0, 40.0],
                "area": 800.0,
                "iscrowd": 0,
            },
            {
                "id": 2,
                "image_id": 5,
                "category_id": 4,
                "bbox": [0.0, 0.0, 5.0, 5.0],
                "area": 25.0,
                "iscrowd": 1,
            },
        ],
        "categories": [{"id": 2, "name": "cat"}, {"id": 4, "name": "dog"}],
    }
    with pytest.raises(ValueError, match="not in categories"):
        build_coco_gt([1], [(10, 10)], [np.zeros((1, 4))], [np.array([3])], [(2, "cat")])
    with pytest.raises(ValueError, match="one entry per image"):
        build_coco_gt([1, 2], [(10, 10)], [np.zeros((1, 4))], [np.array([2])], [(2, "cat")])


def test_ignored_gt_neither_missed_nor_false_positive() -> None:
    """A detection on an ignore (crowd) region and the region itself leave AP at 1."""
    gt = build_coco_gt(
        [1],
        [(100, 100)],
        [np.array([[10.0, 10.0, 40.0, 40.0], [50.0, 50.0, 90.0, 90.0]])],
        [np.array([1, 1])],
        [(1, "person")],
        ignore_per_image=[np.array([False, True])],
    )
    evaluator = COCOEvaluator(gt)
    evaluator.add([1], [[[10.0, 10.0, 40.0, 40.0], [55.0, 55.0, 85.0, 85.0]]], [[0.9, 0.95]], [[1, 1]])
    assert evaluator.evaluate()["AP"] == pytest.approx(1.0)


def test_format_table(scene) -> None:
    gt, boxes, table = scene
    evaluator = COCOEvaluator(gt)
    add_padded(evaluator, image_ids_of(gt), boxes, table)
    metrics = evaluator.evaluate()
    text = format_table(metrics, evaluator.per_class_ap())
    for name in (*METRIC_NAMES, "person", "toothbrush", "unused", "n/a", f"{100 * metrics['AP']:.1f}"):
        assert name in text
    assert "person" not in format_table(metrics)


def test_gather_merges_ranks_and_drops_repeated_images(monkeypatch) -> None:
    """Two ranks (faked): image 2 was seen by both because the sampler padded rank 1."""
    gt = build_coco_gt([1, 2, 3], [(100, 100)] * 3, [np.zeros((0, 4))] * 3, [np.zeros(0, np.int64)] * 3, [(1, "a")])
    rank0, rank1 = COCOEvaluator(gt), COCOEvaluator(gt)
    rank0.add([1, 2], [[[0, 0, 10, 10]], [[0, 0, 20, 20]]], [[0.5], [0.6]], [[1], [1]])
    rank1.add([3, 2], [[[0, 0, 30, 30]], [[0, 0, 20, 20]]], [[0.7], [0.6]], [[1], [1]])
    other_rank = (np.array([2, 3]), rank1._chunks[0])

    def fake_all_gather_object(output: list, local: object) -> None:
        output[:] = [local, other_rank]

    monkeypatch.setattr(dist, "is_initialized", lambda: True)
    monkeypatch.setattr(dist, "get_world_size", lambda: 2)
    monkeypatch.setattr(dist, "all_gather_object", fake_all_gather_object)
    rank0.gather()
    assert sorted((r["image_id"], r["score"]) for r in rank0.results()) == [(1, 0.5), (2, 0.6), (3, 0.7)]
    rank0.gather()  # a second gather (evaluate() after gather()) adds nothing
    assert len(rank0.results()) == 3


def test_merge_ranks_keeps_first_rank_per_image() -> None:
    def arrays(image_ids: list[int], score: float) -> tuple:
        n = len(image_ids)
        return np.array(image_ids), np.zeros((n, 4)), np.full(n, score), np.ones(n, np.int64)

    # Rank 0 saw image 7 with no detections; rank 1's detections on image 7 are a duplicate.
    seen, (image_ids, _, scores, _) = _merge_ranks(
        [(np.array([5, 7]), arrays([5, 5], 0.1)), (np.array([7, 8]), arrays([7, 8], 0.2))]
    )
    assert seen.tolist() == [5, 7, 8]
    assert image_ids.tolist() == [5, 5, 8] and scores.tolist() == [0.1, 0.1, 0.2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _ddp_worker(rank: int, world_size: int, port: int, gt: dict, boxes, table, output_path: str) -> None:
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=world_size)
    try:
        evaluator = COCOEvaluator(gt)
        image_ids = image_ids_of(gt)
        # Interleaved shards as a DistributedSampler makes them; rank 1 repeats image 0 as padding.
        mine = list(range(rank, len(image_ids), world_size)) + ([0] if rank == 1 else [])
        add_padded(evaluator, [image_ids[i] for i in mine], [boxes[i] for i in mine], [table[i] for i in mine])
        metrics = evaluator.evaluate()
        with open(f"{output_path}.{rank}", "w") as output_file:
            json.dump(metrics, output_file)
    finally:
        dist.destroy_process_group()


@pytest.mark.slow
def test_ddp_two_processes_match_single_process(scene, tmp_path) -> None:
    gt, boxes, table = scene
    single = COCOEvaluator(gt)
    add_padded(single, image_ids_of(gt), boxes, table)
    expected = single.evaluate()
    output_path = str(tmp_path / "metrics")
    mp.spawn(_ddp_worker, args=(2, _free_port(), gt, boxes, table, output_path), nprocs=2, join=True)
    for rank in range(2):
        with open(f"{output_path}.{rank}") as metrics_file:
            assert json.load(metrics_file) == pytest.approx(expected, abs=1e-12)


def test_only_the_images_seen_are_evaluated(scene) -> None:
    gt, _, _ = scene
    annotations = [a for a in gt["annotations"] if not a["iscrowd"]]
    first_image = annotations[0]["image_id"]
    evaluator = COCOEvaluator(gt)
    for annotation in annotations:
        if annotation["image_id"] != first_image:
            continue
        x, y, w, h = annotation["bbox"]
        evaluator.add(
            np.array([first_image]),
            np.array([[[x, y, x + w, y + h]]]),
            np.array([[0.9]]),
            np.array([[annotation["category_id"]]]),
        )
    metrics = evaluator.evaluate()  # the other images were never added: not counted as misses
    assert metrics["AR100"] == pytest.approx(1.0)
