"""Test-time augmentation on a trained checkpoint: COCO AP and time per image of each variant.

Runs the checkpoint's network on the validation split (letterboxed by the ``val`` transform) with
no TTA, the flip test, multi-scale testing and both, evaluates each with the COCO protocol in
original-image pixels (as validation does), and prints one markdown table. The variants take
turns on every batch, so the times are measured side by side under the same machine load; the
ratio to "none" is the figure to trust on a busy machine.

    python benchmarks/tta.py --ckpt /tmp/demo_model/best.ckpt --data-dir /tmp/demo_model/data [--batch-size 8]
"""

from __future__ import annotations

import argparse
import time

import torch

from centernet_lightning.datasets.datamodule import DetectionDataModule
from centernet_lightning.eval import COCOEvaluator, coco_ground_truth
from centernet_lightning.inference import TTAConfig
from centernet_lightning.tasks import load_model

SMALL_SCALES = (0.75, 1.0, 1.25)
WIDE_SCALES = (0.5, 0.75, 1.0, 1.25, 1.5)
VARIANTS: dict[str, TTAConfig | None] = {
    "none": None,
    "flip": TTAConfig(flip=True),
    "scales 0.75, 1, 1.25": TTAConfig(scales=SMALL_SCALES),
    "flip + scales 0.75, 1, 1.25": TTAConfig(flip=True, scales=SMALL_SCALES),
    "scales 0.5, 0.75, 1, 1.25, 1.5": TTAConfig(scales=WIDE_SCALES),
    "flip + scales 0.5, 0.75, 1, 1.25, 1.5": TTAConfig(flip=True, scales=WIDE_SCALES),
}
METRICS = ("AP", "AP50", "AP75", "AP_small", "AP_medium", "AP_large")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", default="/tmp/demo_model/best.ckpt")
    parser.add_argument("--data-dir", default="/tmp/demo_model/data")
    parser.add_argument("--split", default="val")
    parser.add_argument("--input-size", type=int, default=None, help="default: the checkpoint's")
    parser.add_argument("--batch-size", type=int, default=8, help="images per forward")
    parser.add_argument("--nms-iou", type=float, default=0.5, help="IoU of the NMS that merges scales")
    args = parser.parse_args()

    model = load_model(args.ckpt)
    input_size = args.input_size or model.inference_spec.input_size
    data = DetectionDataModule(
        dataset="coco",
        data_dir=args.data_dir,
        train_split=None,
        val_split=args.split,
        input_size=input_size,
        val_batch_size=args.batch_size,
        num_workers=0,
    )
    data.setup("validate")
    coco_gt, label_to_category_id = coco_ground_truth(data.datasets["val"])
    category_ids = torch.tensor(label_to_category_id, dtype=torch.int64)
    batches = list(data.val_dataloader())  # decoded once, so the timings hold the network and TTA only
    num_images = sum(len(batch["image_ids"]) for batch in batches)
    # The model's predictor per variant, as validation and `centernet predict --tta` run it ("none":
    # the plain path of validation, for an honest baseline).
    predictors = {
        name: model.predictor(tta=False if config is None else TTAConfig(config.flip, config.scales, args.nms_iou))
        for name, config in VARIANTS.items()
    }
    evaluators = {name: COCOEvaluator(coco_gt) for name in predictors}
    seconds = dict.fromkeys(predictors, 0.0)
    for predictor in predictors.values():  # warm-up: first-call allocations of every input size
        predictor.detect_batch(batches[0])
    for batch in batches:
        for name, predictor in predictors.items():
            start = time.perf_counter()
            detections = predictor.detect_batch(batch)  # original pixels
            seconds[name] += time.perf_counter() - start
            boxes = detections["bboxes"]
            labels = detections["labels"]
            categories = torch.where(labels >= 0, category_ids[labels.clamp(min=0)], -1)
            evaluators[name].add(batch["image_ids"], boxes, detections["scores"], categories)

    print(
        f"{args.ckpt}: {num_images} {args.split} images at {input_size} px, batch {args.batch_size}, "
        f"{torch.get_num_threads()} CPU threads, scales merged by class-wise NMS at IoU {args.nms_iou}\n"
    )
    print("| TTA | " + " | ".join(METRICS) + " | ms / image | x none |")
    print("|---|" + "---:|" * (len(METRICS) + 2))
    baseline = seconds["none"]
    for name, evaluator in evaluators.items():
        metrics = evaluator.evaluate()
        values = " | ".join(f"{metrics[metric]:.3f}" for metric in METRICS)
        milliseconds = 1000 * seconds[name] / num_images
        print(f"| {name} | {values} | {milliseconds:.1f} | {seconds[name] / baseline:.1f} |")


if __name__ == "__main__":
    main()
