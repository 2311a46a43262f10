"""Shared pieces of the dataset readers: the image record, its checks and the base dataset (image
files are read by :mod:`centernet_lightning.image_io`).

Each reader (COCO, VOC, YOLO, CrowdHuman, a folder of images) parses its annotation format
once, at construction, into a list of :class:`ImageRecord` holding XYXY pixel boxes, then hands
the list to :class:`DetectionDataset`, which checks every box in one vectorised pass, loads
images lazily and builds the sample dict described in :mod:`centernet_lightning.structures`.

Boxes are sanitised at one point of the data path: readers refuse what is malformed (an error
naming the file and line) and report what is odd: boxes that are no boxes (non-finite, zero or
negative width or height) are dropped and boxes reaching past their image are counted, in one
warning per dataset. The transform's sanitise step
(:func:`~centernet_lightning.structures.sanitize_boxes`, after augmentation, before the letterbox)
clips what reaches past the image; the targets trust its output.

Bad images: with ``skip_bad_images=False`` (the default) a missing or undecodable image raises
an error naming the file when its sample is loaded. With ``skip_bad_images=True`` files missing
at construction are dropped there (one warning with the count), and an image that fails to
decode later makes ``__getitem__`` return None (a warning per skip with the running count in
``num_skipped``); :func:`~centernet_lightning.datasets.collate.collate_detection` leaves such
samples out, so a DataLoader never stops and no other image is seen twice (which would count
its detections twice in evaluation).

Image sizes: when an annotation states an image size (COCO ``width``/``height``, VOC ``<size>``)
and the decoded file has another one (a dataset resized without rewriting its annotations), the
image is resized back to the annotated size, so the boxes, the evaluation ground truth and the
predictions all stay in the annotation's pixels. A warning names the file and both sizes.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from torch.utils.data import Dataset

from ..image_io import read_image, read_image_size
from ..structures import OBJECT_FIELDS, sanitize_boxes

__all__ = [
    "DetectionDataset",
    "ImageRecord",
    "empty_boxes",
]

logger = logging.getLogger(__name__)

_SIZE_WARNINGS = 3  # mismatched image sizes reported one by one, then only counted

Sample = dict[str, Any]
SampleTransform = Callable[[Sample], Sample]


def empty_boxes() -> np.ndarray:
    """A float32 [0, 4] box array."""
    return np.zeros((0, 4), dtype=np.float32)


@dataclass
class ImageRecord:
    """One image and its parsed annotation, as a reader produces it.

    ``bboxes`` are float32 [N, 4] XYXY pixels, or XYXY normalised to [0, 1] when ``normalized``
    (YOLO, whose image sizes are only known once the image is read); ``labels`` int64 [N];
    ``fields`` the other per-object arrays of :data:`~centernet_lightning.structures.OBJECT_FIELDS`
    (``ignore``, ``track_ids``, each [N]; ``keypoints`` [N, J, 3]), indexed by object on their
    first axis. ``size`` is ``(height, width)`` from the annotation, or None when the annotation
    lacks it.
    """

    path: Path
    image_id: int
    bboxes: np.ndarray = field(default_factory=empty_boxes)
    labels: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    fields: dict[str, np.ndarray] = field(default_factory=dict)
    size: tuple[int, int] | None = None
    normalized: bool = False

    def objects(self) -> dict[str, np.ndarray]:
        """Every per-object array, ``labels`` first."""
        return {"labels": self.labels, **self.fields}

    def select(self, keep: np.ndarray, bboxes: np.ndarray | None = None) -> None:
        """Keep the objects where ``keep`` is True (optionally replacing the boxes first)."""
        self.bboxes = (self.bboxes if bboxes is None else bboxes)[keep]
        self.labels = self.labels[keep]
        self.fields = {name: values[keep] for name, values in self.fields.items()}

    def evaluated_objects(self) -> tuple[np.ndarray, dict[str, np.ndarray], tuple[int, int]]:
        """What evaluation scores against: ``(boxes [M, 4] float32 XYXY pixels, objects, (height, width))``.

        Boxes are clipped to the image and those left without area dropped, as the predictor clips
        its detections and the transform's sanitise step clips training targets; ``objects`` are
        :meth:`objects` of the kept boxes. The size is the annotation's, else read from the file.
        """
        size = self.size or read_image_size(self.path)
        bboxes = self.bboxes
        if self.normalized:
            bboxes = bboxes * np.array([size[1], size[0], size[1], size[0]], dtype=np.float32)
        bboxes, keep = sanitize_boxes(bboxes, *size)
        return bboxes[keep], {name: values[keep] for name, values in self.objects().items()}, size

    def add_ignore_regions(self, regions: np.ndarray, labels: np.ndarray | None = None) -> ImageRecord:
        """Append ``regions`` [M, 4] as objects flagged ``ignore`` (label 0 unless given); the other
        fields get their pad value for them (no identity, no labelled joint)."""
        regions = np.asarray(regions, dtype=np.float32).reshape(-1, 4)
        count = len(self.bboxes)
        self.bboxes = np.concatenate([self.bboxes, regions])
        self.labels = np.concatenate([self.labels, np.zeros(len(regions), np.int64) if labels is None else labels])
        self.fields.setdefault("ignore", np.zeros(count, dtype=bool))
        for name, values in list(self.fields.items()):
            fill = True if name == "ignore" else OBJECT_FIELDS[name].pad if name in OBJECT_FIELDS else 0
            padding = np.full((len(regions), *values.shape[1:]), fill, dtype=values.dtype)
            self.fields[name] = np.concatenate([values, padding])
        return self


def _check_records(records: list[ImageRecord], source: str) -> None:
    """Drop every record's boxes that are no boxes and count those past their image, in one
    vectorised pass; one warning for the whole dataset (see the module docstring)."""
    counts = np.array([len(r.bboxes) for r in records], dtype=np.int64)
    if counts.sum() == 0:
        return
    bounds = np.array(
        [(1.0, 1.0) if r.normalized else (r.size if r.size else (np.inf, np.inf)) for r in records],
        dtype=np.float32,
    ).reshape(-1, 2)
    boxes = np.concatenate([r.bboxes for r in records]).astype(np.float32)
    owner = np.repeat(np.arange(len(records)), counts)
    heights, widths = bounds[owner, 0], bounds[owner, 1]
    usable = np.isfinite(boxes).all(axis=1) & (boxes[:, 2] > boxes[:, 0]) & (boxes[:, 3] > boxes[:, 1])
    outside = usable & ((boxes[:, :2] < 0).any(axis=1) | (boxes[:, 2] > widths) | (boxes[:, 3] > heights))
    num_dropped, num_outside = int((~usable).sum()), int(outside.sum())
    if num_dropped:
        offsets = np.concatenate(([0], np.cumsum(counts)))
        for i, record in enumerate(records):
            lo, hi = offsets[i], offsets[i + 1]
            if hi > lo and not usable[lo:hi].all():
                record.select(usable[lo:hi])
    if num_outside or num_dropped:
        logger.warning(
            "%s: dropped %d boxes that are no boxes (non-finite, or zero or negative width or height); "
            "%d boxes reach past their image (the transform clips them to it).",
            source,
            num_dropped,
            num_outside,
        )


class DetectionDataset(Dataset):
    """Base of the readers: a list of :class:`ImageRecord` served as sample dicts.

    Args:
        records: parsed annotations, one per image.
        class_names: names of the contiguous labels ``0..num_classes-1``.
        transforms: callable ``sample -> sample`` (e.g. a DetectionTransform), or None to get
            the raw uint8 HWC image and numpy arrays.
        skip_bad_images: see the module docstring.
        source: a short description for log messages (usually the annotation path).

    A sample holds the keys of :mod:`centernet_lightning.structures`, with every per-object field
    the reader filled: regions that are neither objects nor background (VOC difficult, COCO
    crowd, CrowdHuman ignore) are objects with ``ignore`` True.
    """

    def __init__(
        self,
        records: list[ImageRecord],
        class_names: Sequence[str],
        transforms: SampleTransform | None = None,
        skip_bad_images: bool = False,
        source: str = "",
    ) -> None:
        self.class_names = list(class_names)
        self.transforms = transforms
        self.skip_bad_images = skip_bad_images
        self.num_skipped = 0
        if skip_bad_images:
            present = [r for r in records if r.path.is_file()]
            if len(present) < len(records):
                logger.warning(
                    "%s: skipping %d of %d images whose files are missing (e.g. %s).",
                    source,
                    len(records) - len(present),
                    len(records),
                    next(r.path for r in records if not r.path.is_file()),
                )
            records = present
        if not records:
            raise ValueError(f"{source}: no images to read{' (all were missing)' if skip_bad_images else ''}")
        _check_records(records, source)
        self.records = records
        self.num_resized = 0

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, index: int) -> Sample | None:
        """The sample of image ``index``; None when it cannot be read and ``skip_bad_images``."""
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for a dataset of {len(self)} images")
        record = self.records[index]
        try:
            image = read_image(record.path)
        except OSError as error:  # FileNotFoundError is an OSError too
            if not self.skip_bad_images:
                raise
            self.num_skipped += 1
            logger.warning("Skipping bad image (%d skipped so far): %s", self.num_skipped, error)
            return None
        sample = self.make_sample(record, self._match_annotated_size(record, image))
        return self.transforms(sample) if self.transforms is not None else sample

    def _match_annotated_size(self, record: ImageRecord, image: np.ndarray) -> np.ndarray:
        """Resize ``image`` to the size its annotation states, if it has another one (see module doc)."""
        if record.size is None or record.normalized or tuple(image.shape[:2]) == tuple(record.size):
            return image
        if tuple(image.shape[:2]) == tuple(record.size[::-1]):
            # Annotated on the stored pixels of an EXIF-rotated photo: use them unrotated.
            unrotated = read_image(record.path, apply_orientation=False)
            if tuple(unrotated.shape[:2]) == tuple(record.size):
                return unrotated
        self.num_resized += 1
        if self.num_resized <= _SIZE_WARNINGS:
            (file_h, file_w), (ann_h, ann_w) = image.shape[:2], record.size
            logger.warning(
                "%s is %dx%d (WxH) on disk but %dx%d in its annotation; resized to the annotated size so "
                "its boxes still fit%s.",
                record.path,
                file_w,
                file_h,
                ann_w,
                ann_h,
                "; further mismatches are resized without a warning" if self.num_resized == _SIZE_WARNINGS else "",
            )
        return cv2.resize(image, (record.size[1], record.size[0]), interpolation=cv2.INTER_LINEAR)

    def make_sample(self, record: ImageRecord, image: np.ndarray) -> Sample:
        """The untransformed sample dict of ``record`` with its decoded ``image`` (HWC uint8)."""
        height, width = image.shape[:2]
        bboxes = record.bboxes
        if record.normalized:
            bboxes = bboxes * np.array([width, height, width, height], dtype=np.float32)
        return {  # copies: a caller changing a sample must not change the record
            "image": image,
            "bboxes": np.array(bboxes, dtype=np.float32),
            **{name: values.copy() for name, values in record.objects().items()},
            "image_id": int(record.image_id),
            "image_path": str(record.path),
            "original_size": (height, width),
            "letterbox": np.array([1.0, 0.0, 0.0], dtype=np.float32),
        }
