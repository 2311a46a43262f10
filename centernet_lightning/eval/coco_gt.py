"""COCO-format ground truth: of any detection dataset, or built from per-image arrays.

:class:`~centernet_lightning.eval.coco.COCOEvaluator` scores detections against a COCO ground-truth
dict. COCO datasets have one (their json); :func:`coco_ground_truth` converts the parsed records of
every other reader, and :func:`build_coco_gt` makes one from arrays.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..datasets.coco import COCODataset, load_coco_json
from ..datasets.common import DetectionDataset
from ..structures import box_xyxy_to_xywh, to_numpy

__all__ = ["build_coco_gt", "category_ids_of", "coco_ground_truth"]


def category_ids_of(labels: Tensor, label_to_category_id: Tensor) -> Tensor:
    """The dataset's category ids of contiguous ``labels`` [B, K] (int64; -1 for padding stays -1),
    through ``label_to_category_id`` [C] (what :func:`coco_ground_truth` returns, as a tensor)."""
    labels = labels.cpu()
    return torch.where(labels >= 0, label_to_category_id[labels.clamp(min=0)], -1)


def coco_ground_truth(dataset: DetectionDataset) -> tuple[dict[str, Any], list[int]]:
    """COCO-format ground truth of a dataset in ORIGINAL image pixels, and label -> category id.

    COCO datasets give their own json (original category ids, crowd flags, areas); other formats
    are converted from their parsed records, with objects flagged ``ignore`` (VOC difficult,
    CrowdHuman ignore) as ``iscrowd`` boxes so that COCO evaluation neither rewards nor penalises them.
    """
    if isinstance(dataset, COCODataset):
        gt = load_coco_json(dataset.coco_gt_path)
        kept = {record.image_id for record in dataset.records}
        if len(kept) < len(gt["images"]):  # skip_bad_images dropped some: do not count them as misses
            gt["images"] = [image for image in gt["images"] if image["id"] in kept]
            gt["annotations"] = [ann for ann in gt.get("annotations", []) if ann["image_id"] in kept]
        return gt, list(dataset.label_to_category_id)

    image_ids, sizes, boxes, labels, ignores = [], [], [], [], []
    for record in dataset.records:
        bboxes, objects, size = record.evaluated_objects()
        image_ids.append(record.image_id)
        sizes.append(size)
        boxes.append(bboxes)
        labels.append(objects["labels"])
        ignores.append(objects.get("ignore", np.zeros(len(bboxes), dtype=bool)))
    categories = list(enumerate(dataset.class_names))
    return build_coco_gt(image_ids, sizes, boxes, labels, categories, ignores), list(range(dataset.num_classes))


def build_coco_gt(
    image_ids: Sequence[int],
    image_sizes: Sequence[tuple[int, int]],
    bboxes_xyxy_per_image: Sequence[Any],
    category_ids_per_image: Sequence[Any],
    categories: Sequence[tuple[int, str]],
    ignore_per_image: Sequence[Any] | None = None,
) -> dict:
    """A COCO ground-truth dict from per-image arrays, for datasets stored in other formats.

    Args:
        image_ids: one int id per image.
        image_sizes: ``(height, width)`` in pixels per image.
        bboxes_xyxy_per_image: per image float [N_i, 4] XYXY original-image pixels.
        category_ids_per_image: per image int [N_i], ids from ``categories``.
        categories: ``(id, name)`` pairs.
        ignore_per_image: optional per image bool [N_i]; True marks a region to ignore (VOC
            "difficult", CrowdHuman ignore boxes). Such boxes get ``iscrowd=1``, which is how
            COCO evaluation ignores them: never a miss, and detections on them (IoU taken over
            the detection's own area) are neither true nor false positives.

    Returns:
        ``{"images", "annotations", "categories"}`` with ``bbox`` [x, y, w, h] pixels,
        ``area = w * h``, annotation ids from 1 (COCO tools treat id 0 as "unmatched").
    """
    num_images = len(image_ids)
    lengths = {len(image_sizes), len(bboxes_xyxy_per_image), len(category_ids_per_image)}
    if ignore_per_image is not None:
        lengths.add(len(ignore_per_image))
    if lengths != {num_images}:
        raise ValueError("build_coco_gt needs one entry per image in every per-image argument")
    known_category_ids = {int(category_id) for category_id, _ in categories}

    images, annotations = [], []
    for index in range(num_images):
        image_id = int(image_ids[index])
        height, width = (int(size) for size in image_sizes[index])
        images.append({"id": image_id, "height": height, "width": width})

        boxes = to_numpy(bboxes_xyxy_per_image[index], np.float64).reshape(-1, 4)
        category_ids = to_numpy(category_ids_per_image[index], np.int64).reshape(-1)
        if ignore_per_image is None:
            crowd = np.zeros(len(boxes), np.int64)
        else:
            crowd = to_numpy(ignore_per_image[index], np.int64).reshape(-1).astype(bool).astype(np.int64)
        if not len(boxes) == len(category_ids) == len(crowd):
            raise ValueError(f"image {image_id}: boxes, category ids and ignore flags differ in length")
        unknown = set(category_ids.tolist()) - known_category_ids
        if unknown:
            raise ValueError(f"image {image_id}: category ids {sorted(unknown)} are not in categories")

        boxes_xywh = box_xyxy_to_xywh(boxes)
        areas = boxes_xywh[:, 2] * boxes_xywh[:, 3]
        first_id = len(annotations) + 1
        annotations.extend(
            {
                "id": first_id + offset,
                "image_id": image_id,
                "category_id": category_id,
                "bbox": box,
                "area": area,
                "iscrowd": iscrowd,
            }
            for offset, (box, category_id, area, iscrowd) in enumerate(
                zip(boxes_xywh.tolist(), category_ids.tolist(), areas.tolist(), crowd.tolist(), strict=True)
            )
        )
    return {
        "images": images,
        "annotations": annotations,
        "categories": [{"id": int(category_id), "name": str(name)} for category_id, name in categories],
    }
