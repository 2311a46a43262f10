"""YOLO (Ultralytics layout) detection dataset: ``images/{split}/`` + ``labels/{split}/*.txt``."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from centernet_lightning.datasets.common import DetectionDataset, ImageRecord, SampleTransform, empty_boxes
from centernet_lightning.image_io import IMAGE_EXTENSIONS
from centernet_lightning.structures import box_cxcywh_to_xyxy

__all__ = ["YOLODataset", "parse_yolo_labels"]

logger = logging.getLogger(__name__)


def _class_names(names: Sequence[str] | Mapping[int, str]) -> list[str]:
    if isinstance(names, str):
        raise TypeError("names must be a list of class names or a dict {index: name}, not a string")
    if not isinstance(names, Mapping):
        return [str(n) for n in names]
    by_index = {int(k): str(v) for k, v in names.items()}
    if sorted(by_index) != list(range(len(by_index))):
        raise ValueError(f"names dict keys must be the contiguous indices 0..K-1, got {sorted(by_index)}")
    return [by_index[i] for i in range(len(by_index))]


def parse_yolo_labels(path: Path, num_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Read one YOLO label file.

    Each non-empty line is ``class cx cy w h`` with the box centre and size normalised by the
    image width/height. Returns ``(boxes, labels)``: float32 [N, 4] XYXY normalised to [0, 1]
    (converted to pixels once the image size is known) and int64 [N]. Raises ValueError naming
    the file and line for malformed lines or a class outside ``[0, num_classes)``.
    """
    rows, labels = [], []
    for line_number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        fields = line.split()
        if not fields:
            continue
        if len(fields) != 5:
            raise ValueError(
                f"{path}, line {line_number}: expected 5 values 'class cx cy w h', got {len(fields)}: {line!r}"
            )
        try:
            class_index = float(fields[0])
            values = [float(v) for v in fields[1:]]
        except ValueError:
            raise ValueError(f"{path}, line {line_number}: non-numeric value in {line!r}") from None
        if class_index != int(class_index) or not 0 <= class_index < num_classes:
            raise ValueError(
                f"{path}, line {line_number}: class {fields[0]} is not an index in [0, {num_classes}) "
                f"of the {num_classes} names given"
            )
        rows.append(values)
        labels.append(int(class_index))
    if not rows:
        return empty_boxes(), np.zeros(0, dtype=np.int64)
    cxcywh = np.array(rows, dtype=np.float64)
    xyxy = box_cxcywh_to_xyxy(cxcywh)
    return xyxy.astype(np.float32), np.array(labels, dtype=np.int64)


def _warn_orphan_labels(label_dir: Path, image_dir: Path, image_paths: list[Path]) -> None:
    """One warning for label files that have no image beside them (their boxes are not used)."""
    if not label_dir.is_dir():
        return
    expected = {path.relative_to(image_dir).with_suffix(".txt") for path in image_paths}
    orphans = sorted(p for p in label_dir.rglob("*.txt") if p.relative_to(label_dir) not in expected)
    if orphans:
        logger.warning(
            "%d label files in %s have no image in %s and are ignored (e.g. %s).",
            len(orphans),
            label_dir,
            image_dir,
            orphans[0],
        )


class YOLODataset(DetectionDataset):
    """Images and boxes in the Ultralytics YOLO layout.

        Layout: ``data_dir/images/{split}/**/<name>.<ext>`` and ``data_dir/labels/{split}/**/<name>.txt``
        (same relative path). A missing label file means the image has no objects; a label file with
    no image is reported in one warning. Images of any format OpenCV reads are listed. Boxes are
        normalised ``cx cy w h``; they become XYXY pixels with the size of the decoded image.
        ``image_id`` is the index in the sorted image list.

        Args:
            data_dir: dataset root.
            split: e.g. ``"train"``, ``"val"``.
            names: class names, as a list or a dict ``{index: name}`` (the ``names`` of a data.yaml).
            transforms: callable ``sample -> sample`` or None.
            skip_bad_images: drop/skip missing or unreadable images instead of raising (see common.py).
    """

    def __init__(
        self,
        data_dir: str | Path,
        split: str,
        names: Sequence[str] | Mapping[int, str],
        transforms: SampleTransform | None = None,
        skip_bad_images: bool = False,
    ) -> None:
        data_dir = Path(data_dir)
        class_names = _class_names(names)
        image_dir, label_dir = data_dir / "images" / split, data_dir / "labels" / split
        if not image_dir.is_dir():
            raise FileNotFoundError(
                f"YOLO image folder not found: {image_dir}. Expected the Ultralytics layout "
                f"data_dir/images/{split}/*.jpg with labels in data_dir/labels/{split}/*.txt (data_dir={data_dir})."
            )
        files = [p for p in image_dir.rglob("*") if p.is_file()]
        image_paths = sorted(p for p in files if p.suffix.lower() in IMAGE_EXTENSIONS)
        if not image_paths:
            found = sorted({p.suffix.lower() or "(none)" for p in files})
            raise ValueError(
                f"YOLO image folder {image_dir} holds no images: "
                + (f"it has only files with the extensions {found}" if files else "it is empty")
                + f"; readable extensions are {', '.join(IMAGE_EXTENSIONS)}"
            )
        _warn_orphan_labels(label_dir, image_dir, image_paths)
        records = []
        for index, image_path in enumerate(image_paths):
            label_path = (label_dir / image_path.relative_to(image_dir)).with_suffix(".txt")
            boxes, labels = (
                parse_yolo_labels(label_path, len(class_names))
                if label_path.is_file()
                else (empty_boxes(), np.zeros(0, dtype=np.int64))
            )
            records.append(ImageRecord(image_path, index, boxes, labels, normalized=True))
        super().__init__(
            records,
            class_names,
            transforms=transforms,
            skip_bad_images=skip_bad_images,
            source=f"YOLO {data_dir} split={split}",
        )
