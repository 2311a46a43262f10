"""COCO-format detection dataset (``annotations/instances_{split}.json``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from centernet_lightning.datasets.common import DetectionDataset, ImageRecord, SampleTransform
from centernet_lightning.structures import box_xywh_to_xyxy

__all__ = ["COCO_CATEGORY_IDS", "COCO_CLASSES", "COCODataset", "load_coco_json"]

# The 80 COCO detection classes in category-id order: the labels of models trained on COCO.
COCO_CLASSES = (
    "person", "bicycle", "car", "motorcycle", "airplane", "bus", "train", "truck", "boat", "traffic light",
    "fire hydrant", "stop sign", "parking meter", "bench", "bird", "cat", "dog", "horse", "sheep", "cow",
    "elephant", "bear", "zebra", "giraffe", "backpack", "umbrella", "handbag", "tie", "suitcase", "frisbee",
    "skis", "snowboard", "sports ball", "kite", "baseball bat", "baseball glove", "skateboard", "surfboard",
    "tennis racket", "bottle", "wine glass", "cup", "fork", "knife", "spoon", "bowl", "banana", "apple",
    "sandwich", "orange", "broccoli", "carrot", "hot dog", "pizza", "donut", "cake", "chair", "couch",
    "potted plant", "bed", "dining table", "toilet", "tv", "laptop", "mouse", "remote", "keyboard", "cell phone",
    "microwave", "oven", "toaster", "sink", "refrigerator", "book", "clock", "vase", "scissors", "teddy bear",
    "hair drier", "toothbrush",
)  # fmt: skip
# Their category ids in instances_*.json (1-90 with gaps: ids of the 2014 paper's unused classes are skipped).
COCO_CATEGORY_IDS = (
    *range(1, 12), *range(13, 26), 27, 28, *range(31, 45), *range(46, 66), 67, 70, *range(72, 83), *range(84, 91),
)  # fmt: skip


def load_coco_json(path: Path) -> dict[str, Any]:
    """Parse a COCO json file; ValueError naming the file (and line) when it is malformed."""
    try:
        with open(path, encoding="utf-8") as file:
            data = json.load(file)
    except json.JSONDecodeError as error:
        raise ValueError(f"{path}: malformed JSON at line {error.lineno}, column {error.colno}: {error.msg}") from error
    if not isinstance(data, dict) or "images" not in data or "categories" not in data:
        raise ValueError(f"{path}: not a COCO detection file (needs 'images' and 'categories' keys)")
    return data


def _check_unique_ids(records: list[ImageRecord], path: Path) -> None:
    """ValueError naming the repeated image ids: annotations could not tell those images apart."""
    ids = np.array([record.image_id for record in records], dtype=np.int64)
    unique, counts = np.unique(ids, return_counts=True)
    repeated = unique[counts > 1]
    if len(repeated):
        files = [str(r.path.name) for r in records if r.image_id == repeated[0]]
        raise ValueError(
            f"{path}: image ids must be unique, but {len(repeated)} ids are repeated: {repeated[:10].tolist()} "
            f"(id {int(repeated[0])} is used by {files[:4]})"
        )


class COCODataset(DetectionDataset):
    """Images and boxes of one split of a COCO-format dataset.

        Layout::

            data_dir/annotations/instances_{split}.json
            data_dir/images/{split}/<file_name>     (or data_dir/{split}/<file_name>)

        ``file_name`` may contain sub-folders. Category ids are mapped to contiguous labels in
        increasing id order, unused categories included, so ``num_classes == len(categories)``;
        ``label_to_category_id[label]`` and ``category_id_to_label[category_id]`` convert back when
        writing results. ``iscrowd`` boxes are not targets: they are objects flagged ``ignore``.
        Images without annotations are kept (negatives). ``image_id`` is the COCO image id and
        ``coco_gt_path`` the json path for an evaluator. Image ids must be unique. An image whose file
    has another size than its ``width``/``height`` is resized to the stated size (see common.py).

        Args:
            data_dir: dataset root.
            split: e.g. ``"train2017"``, ``"val"``.
            transforms: callable ``sample -> sample`` or None.
            skip_bad_images: drop/skip missing or unreadable images instead of raising (see common.py).

        A subclass reading a variant of the format (keypoints) names its file in ``annotation_file``
        and may override :meth:`_categories` (the categories that are classes) and
        :meth:`_object_fields` (more per-object arrays).
    """

    # The annotation file of a split, under data_dir/annotations/.
    annotation_file = "instances_{split}.json"

    def __init__(
        self,
        data_dir: str | Path,
        split: str,
        transforms: SampleTransform | None = None,
        skip_bad_images: bool = False,
    ) -> None:
        data_dir = Path(data_dir)
        annotation_file = self.annotation_file.format(split=split)
        self.coco_gt_path = data_dir / "annotations" / annotation_file
        image_dirs = [data_dir / "images" / split, data_dir / split]
        if not self.coco_gt_path.is_file():
            raise FileNotFoundError(
                f"COCO annotations not found: {self.coco_gt_path}. Expected the layout "
                f"data_dir/annotations/{annotation_file} with images in data_dir/images/{split}/ "
                f"or data_dir/{split}/ (data_dir={data_dir})."
            )
        image_dir = next((d for d in image_dirs if d.is_dir()), None)
        if image_dir is None:
            raise FileNotFoundError(
                f"COCO image folder not found: expected {image_dirs[0]} or {image_dirs[1]} next to {self.coco_gt_path}."
            )
        self.image_dir = image_dir
        data = load_coco_json(self.coco_gt_path)

        categories = self._categories(data)
        category_ids = sorted(int(c["id"]) for c in categories)
        names_by_id = {int(c["id"]): str(c.get("name", c["id"])) for c in categories}
        self.label_to_category_id: list[int] = category_ids
        self.category_id_to_label: dict[int, int] = {cid: i for i, cid in enumerate(category_ids)}

        records = [self._image_record(index, image, image_dir) for index, image in enumerate(data["images"])]
        _check_unique_ids(records, self.coco_gt_path)
        if not records:
            raise ValueError(f"{self.coco_gt_path}: the 'images' list is empty")
        self._attach_annotations(records, data.get("annotations") or [])
        super().__init__(
            records,
            [names_by_id[cid] for cid in category_ids],
            transforms=transforms,
            skip_bad_images=skip_bad_images,
            source=str(self.coco_gt_path),
        )

    def _categories(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        """The categories of the file that are classes (every one here)."""
        return list(data["categories"])

    def _object_fields(self, annotations: list[dict[str, Any]], crowd: np.ndarray) -> dict[str, np.ndarray]:
        """More per-object arrays, ``{field: [A, ...]}`` parallel to ``annotations`` (file order, every
        category known, ``crowd`` bool [A]); none here. They are grouped per image as the boxes are."""
        return {}

    def _image_record(self, index: int, image: Any, image_dir: Path) -> ImageRecord:
        """The record of ``images[index]``; ValueError naming the entry when a key is missing or bad."""
        where = f"{self.coco_gt_path}: images[{index}]"
        if not isinstance(image, dict):
            raise ValueError(f"{where} must be an object with 'id' and 'file_name', got {image!r:.80}")
        missing = [key for key in ("id", "file_name") if key not in image]
        if missing:
            raise ValueError(f"{where} (id {image.get('id', '?')}) has no {' or '.join(map(repr, missing))} key")
        try:
            size = (int(image["height"]), int(image["width"])) if "height" in image and "width" in image else None
            image_id = int(image["id"])
        except (TypeError, ValueError):
            raise ValueError(
                f"{where}: 'id', 'height' and 'width' must be integers, got id={image.get('id')!r}, "
                f"height={image.get('height')!r}, width={image.get('width')!r}"
            ) from None
        if size is not None and min(size) <= 0:
            size = None  # unknown: the decoded image decides
        return ImageRecord(path=image_dir / str(image["file_name"]), image_id=image_id, size=size)

    def _attach_annotations(self, records: list[ImageRecord], annotations: list[dict[str, Any]]) -> None:
        """Convert every annotation (xywh -> XYXY) and group them per image, vectorised."""
        if not annotations:
            return
        path = self.coco_gt_path
        try:
            ann_image_ids = np.array([a["image_id"] for a in annotations], dtype=np.int64)
            ann_category_ids = np.array([a["category_id"] for a in annotations], dtype=np.int64)
            xywh = np.array([a["bbox"] for a in annotations], dtype=np.float32).reshape(len(annotations), 4)
        except (KeyError, TypeError, ValueError) as error:
            raise ValueError(
                f"{path}: every annotation needs 'image_id', 'category_id' and a 4-number 'bbox' ({error!r})"
            ) from error
        crowd = np.array([bool(a.get("iscrowd", 0)) for a in annotations])

        known_categories = np.array(self.label_to_category_id, dtype=np.int64)
        unknown = ~np.isin(ann_category_ids, known_categories)
        if unknown.any():
            first = int(np.argmax(unknown))
            raise ValueError(
                f"{path}: annotation {annotations[first].get('id', first)} has unknown category id "
                f"{int(ann_category_ids[first])}; known ids: {self.label_to_category_id}"
            )
        if not records:
            raise ValueError(f"{path}: has annotations but no images")
        record_ids = np.array([r.image_id for r in records], dtype=np.int64)
        order = np.argsort(record_ids, kind="stable")
        position = np.searchsorted(record_ids[order], ann_image_ids).clip(max=len(records) - 1)
        ann_record = order[position]
        orphan = record_ids[ann_record] != ann_image_ids
        if orphan.any():
            first = int(np.argmax(orphan))
            raise ValueError(
                f"{path}: annotation {annotations[first].get('id', first)} refers to unknown image id "
                f"{int(ann_image_ids[first])}"
            )

        extra_fields = self._object_fields(annotations, crowd)
        xyxy = box_xywh_to_xyxy(xywh)
        labels = np.searchsorted(known_categories, ann_category_ids).astype(np.int64)
        # Objects first, then crowd regions (flagged ignore), each in file order.
        grouped = np.lexsort((np.arange(len(annotations)), crowd, ann_record))
        counts = np.bincount(ann_record, minlength=len(records))
        starts = np.concatenate(([0], np.cumsum(counts)))
        for index in np.flatnonzero(counts):
            chunk = grouped[starts[index] : starts[index + 1]]
            record = records[index]
            record.bboxes, record.labels = xyxy[chunk], labels[chunk]
            if crowd[chunk].any():
                record.fields["ignore"] = crowd[chunk]
            record.fields.update({name: values[chunk] for name, values in extra_fields.items()})
