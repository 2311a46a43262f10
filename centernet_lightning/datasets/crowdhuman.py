"""CrowdHuman person detection dataset (``annotation_{split}.odgt``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from centernet_lightning.datasets.common import DetectionDataset, ImageRecord, SampleTransform, empty_boxes
from centernet_lightning.structures import box_xywh_to_xyxy

__all__ = ["CrowdHumanDataset"]

# box_type -> odgt key; all three are [x, y, w, h] in pixels.
BOX_KEYS = {"full": "fbox", "visible": "vbox", "head": "hbox"}


def _to_xyxy(boxes: list[list[float]]) -> np.ndarray:
    if not boxes:
        return empty_boxes()
    xywh = np.array(boxes, dtype=np.float32).reshape(-1, 4)
    return box_xywh_to_xyxy(xywh)


class CrowdHumanDataset(DetectionDataset):
    """CrowdHuman: one class, ``"person"``, with full, visible or head boxes.

    Layout: ``data_dir/annotation_{split}.odgt`` (one JSON object per line with ``ID`` and
    ``gtboxes``) and ``data_dir/Images/{ID}.jpg``. Boxes tagged ``"mask"`` (crowds, reflections,
    posters) and boxes with ``extra.ignore == 1`` (for head boxes also ``head_attr.ignore == 1``)
    are ignore regions: never targets, objects flagged ``ignore`` when ``ignore_mask`` is True
    and dropped otherwise. The annotation has no image sizes, so boxes are clipped to the image
    when it is loaded (full boxes often extend past the border). ``image_id`` is the line index.

    Args:
        data_dir: folder holding the odgt files and ``Images/``.
        split: ``"train"`` or ``"val"``.
        box_type: ``"full"`` | ``"visible"`` | ``"head"``.
        ignore_mask: keep ignore regions as objects flagged ``ignore`` (else drop them).
        transforms: callable ``sample -> sample`` or None.
        skip_bad_images: drop/skip missing or unreadable images instead of raising (see common.py).
    """

    def __init__(
        self,
        data_dir: str | Path,
        split: str,
        box_type: str = "full",
        ignore_mask: bool = True,
        transforms: SampleTransform | None = None,
        skip_bad_images: bool = False,
    ) -> None:
        if box_type not in BOX_KEYS:
            raise ValueError(f"box_type must be one of {sorted(BOX_KEYS)}, got {box_type!r}")
        data_dir = Path(data_dir)
        self.box_type = box_type
        self.odgt_path = data_dir / f"annotation_{split}.odgt"
        image_dir = data_dir / "Images"
        if not self.odgt_path.is_file() or not image_dir.is_dir():
            raise FileNotFoundError(
                f"CrowdHuman files not found under {data_dir}: expected data_dir/annotation_{split}.odgt "
                "and images in data_dir/Images/<ID>.jpg"
            )
        records = []
        lines = self.odgt_path.read_text(encoding="utf-8").splitlines()
        for line_number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
                image_name = f"{entry['ID']}.jpg"
                boxes = entry.get("gtboxes") or []
            except (json.JSONDecodeError, KeyError, TypeError) as error:
                raise ValueError(f"{self.odgt_path}, line {line_number}: malformed entry ({error!r})") from error
            targets, ignored = self._split_boxes(boxes, line_number)
            record = ImageRecord(
                path=image_dir / image_name,
                image_id=len(records),
                bboxes=targets,
                labels=np.zeros(len(targets), dtype=np.int64),
            )
            records.append(record.add_ignore_regions(ignored) if ignore_mask and len(ignored) else record)
        super().__init__(
            records,
            ["person"],
            transforms=transforms,
            skip_bad_images=skip_bad_images,
            source=str(self.odgt_path),
        )

    def _split_boxes(self, boxes: list[dict[str, Any]], line_number: int) -> tuple[np.ndarray, np.ndarray]:
        """``(targets, ignore regions)`` of one image as XYXY pixel arrays."""
        key = BOX_KEYS[self.box_type]
        targets, ignored = [], []
        for box in boxes:
            coords = box.get(key) if box.get(key) is not None else box.get("fbox")
            try:
                coords = [float(c) for c in coords]
            except (TypeError, ValueError):
                coords = []
            if len(coords) != 4:
                raise ValueError(f"{self.odgt_path}, line {line_number}: box without a 4-number {key!r}: {box}")
            ignore = box.get("tag") != "person" or (box.get("extra") or {}).get("ignore", 0) == 1
            if self.box_type == "head":
                ignore = ignore or (box.get("head_attr") or {}).get("ignore", 0) == 1
            (ignored if ignore else targets).append(coords)
        return _to_xyxy(targets), _to_xyxy(ignored)
