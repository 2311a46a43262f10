"""COCO box evaluation time: faster-coco-eval against pycocotools, side by side in one run.

Synthetic set: ``--num-images`` images of 640x480 with about 7 objects each over 80 categories,
and 100 detections per image, of which most GT objects get a noisy copy (sometimes with a wrong
class) and the rest are random low-score boxes, so AP is far from 0 and from 1. Both backends go
through :class:`~centernet_lightning.eval.COCOEvaluator`, so the times are what a validation epoch
pays: building the GT index once, then ``evaluate()`` (results list, loadRes, evaluate,
accumulate, summarize). Needs pycocotools (dev extra).

    python benchmarks/eval_coco.py [--num-images 5000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from centernet_lightning.eval import METRIC_NAMES, COCOEvaluator, build_coco_gt

IMAGE_HEIGHT, IMAGE_WIDTH = 480, 640
NUM_CATEGORIES = 80
DETECTIONS_PER_IMAGE = 100
BATCH_SIZE = 32


def make_synthetic_set(num_images: int, seed: int) -> tuple[dict, np.ndarray, np.ndarray, np.ndarray]:
    """GT dict plus padded detections: boxes [I, 100, 4] XYXY, scores [I, 100], categories [I, 100]."""
    rng = np.random.default_rng(seed)
    categories = [(category_id, f"class_{category_id}") for category_id in range(1, NUM_CATEGORIES + 1)]
    image_size = np.array([IMAGE_WIDTH, IMAGE_HEIGHT], np.float64)

    def random_boxes(count: int, scale: float) -> np.ndarray:
        # Log-uniform sizes from 8 px to `scale` px so small, medium and large all occur.
        sizes = np.exp(rng.uniform(np.log(8), np.log(scale), (count, 2)))
        top_left = rng.uniform(0, 1, (count, 2)) * (image_size - sizes)
        return np.concatenate((top_left, top_left + sizes), axis=1)

    gt_boxes, gt_categories, gt_crowd = [], [], []
    det_boxes = np.empty((num_images, DETECTIONS_PER_IMAGE, 4), np.float32)
    det_scores = np.empty((num_images, DETECTIONS_PER_IMAGE), np.float32)
    det_categories = np.empty((num_images, DETECTIONS_PER_IMAGE), np.int64)
    for index in range(num_images):
        count = min(int(rng.poisson(7)), DETECTIONS_PER_IMAGE)
        boxes = random_boxes(count, 400.0)
        labels = rng.integers(1, NUM_CATEGORIES + 1, count)
        gt_boxes.append(boxes)
        gt_categories.append(labels)
        gt_crowd.append(rng.random(count) < 0.02)

        copied = rng.random(count) < 0.8
        sizes = np.tile(boxes[copied, 2:] - boxes[copied, :2], 2)
        copies = boxes[copied] + rng.normal(0, 0.07, sizes.shape) * sizes
        copy_labels = np.where(
            rng.random(len(copies)) < 0.1, rng.integers(1, NUM_CATEGORIES + 1, len(copies)), labels[copied]
        )
        num_random = DETECTIONS_PER_IMAGE - len(copies)
        det_boxes[index] = np.concatenate((copies, random_boxes(num_random, 300.0)))
        det_scores[index] = np.concatenate((rng.uniform(0.3, 1.0, len(copies)), rng.uniform(0.01, 0.5, num_random)))
        det_categories[index] = np.concatenate((copy_labels, rng.integers(1, NUM_CATEGORIES + 1, num_random)))

    image_ids = list(range(1, num_images + 1))
    gt = build_coco_gt(
        image_ids,
        [(IMAGE_HEIGHT, IMAGE_WIDTH)] * num_images,
        gt_boxes,
        gt_categories,
        categories,
        ignore_per_image=gt_crowd,
    )
    return gt, det_boxes, det_scores, det_categories


def time_backend(backend: str, gt: dict, boxes: np.ndarray, scores: np.ndarray, categories: np.ndarray) -> dict:
    """Seconds to index the GT and to evaluate, and the metrics."""
    start = time.perf_counter()
    evaluator = COCOEvaluator(gt, backend=backend)
    gt_seconds = time.perf_counter() - start
    image_ids = np.arange(1, len(boxes) + 1)
    for batch in range(0, len(boxes), BATCH_SIZE):
        window = slice(batch, batch + BATCH_SIZE)
        evaluator.add(image_ids[window], boxes[window], scores[window], categories[window])
    start = time.perf_counter()
    metrics = evaluator.evaluate()
    eval_seconds = time.perf_counter() - start
    return {"gt_seconds": gt_seconds, "eval_seconds": eval_seconds, "metrics": metrics}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--num-images", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    gt, boxes, scores, categories = make_synthetic_set(args.num_images, args.seed)
    print(
        f"{args.num_images} images, {len(gt['annotations'])} GT boxes, {NUM_CATEGORIES} categories, "
        f"{boxes.shape[0] * boxes.shape[1]} detections"
    )
    runs = {
        backend: time_backend(backend, gt, boxes, scores, categories) for backend in ("faster_coco_eval", "pycocotools")
    }

    print(f"{'backend':<18} {'GT index (s)':>12} {'evaluate (s)':>12}")
    for backend, run in runs.items():
        print(f"{backend:<18} {run['gt_seconds']:>12.2f} {run['eval_seconds']:>12.2f}")
    fast, reference = runs["faster_coco_eval"], runs["pycocotools"]
    print(f"evaluate speed-up: {reference['eval_seconds'] / fast['eval_seconds']:.1f}x")

    differences = {name: abs(fast["metrics"][name] - reference["metrics"][name]) for name in METRIC_NAMES}
    print("AP {:.4f} AP50 {:.4f} AP75 {:.4f}".format(*(fast["metrics"][name] for name in ("AP", "AP50", "AP75"))))
    worst = max(differences, key=differences.get)
    agree = differences[worst] <= 1e-9
    print(f"metrics agree: {agree} (largest difference {differences[worst]:.2e} in {worst})")
    if not agree:
        raise SystemExit(1)


if __name__ == "__main__":
    main()
