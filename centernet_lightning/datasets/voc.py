"""Pascal VOC-format detection dataset (``Annotations/*.xml``)."""

from __future__ import annotations

import logging
import xml.etree.ElementTree as ET
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from centernet_lightning.datasets.common import DetectionDataset, ImageRecord, SampleTransform, empty_boxes
from centernet_lightning.image_io import IMAGE_EXTENSIONS, read_image_size

__all__ = ["VOC_CLASSES", "VOCDataset"]

logger = logging.getLogger(__name__)

VOC_CLASSES = (
    "aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow",
    "diningtable", "dog", "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train",
    "tvmonitor",
)  # fmt: skip

_LAYOUT = "data_dir/Annotations/<id>.xml, data_dir/JPEGImages/<image>, data_dir/ImageSets/Main/{split}.txt"


def _label_map(name_to_label: Mapping[str, int] | Sequence[str] | None) -> tuple[dict[str, int], list[str]]:
    """``(name -> label, class_names)`` from a mapping or a list of names (label = position)."""
    if name_to_label is None:
        name_to_label = VOC_CLASSES
    if not isinstance(name_to_label, Mapping):
        name_to_label = {name: i for i, name in enumerate(name_to_label)}
    mapping = {str(k): int(v) for k, v in name_to_label.items()}
    class_names: dict[int, str] = {}
    for name, label in mapping.items():
        class_names.setdefault(label, name)  # several names may share a label; the first names it
    if sorted(class_names) != list(range(len(class_names))):
        raise ValueError(f"name_to_label values must be the contiguous labels 0..K-1, got {sorted(class_names)}")
    return mapping, [class_names[i] for i in range(len(class_names))]


def _is_true(text: str | None) -> bool:
    """VOC flags: '1'/'true'; empty tags (``<difficult/>``) written by annotation tools mean 0."""
    return bool(text) and text.strip().lower() in ("1", "true", "1.0", "yes")


def _float_tag(element: ET.Element, tag: str, xml_path: Path) -> float:
    text = element.findtext(tag)
    try:
        return float(text)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ValueError(f"{xml_path}: <{tag}> must be a number, got {text!r}") from None


class VOCDataset(DetectionDataset):
    """Images and boxes of a Pascal VOC-format dataset.

    Layout: ``data_dir/Annotations/<id>.xml``, ``data_dir/JPEGImages/``, and
    ``data_dir/ImageSets/Main/{split}.txt`` listing ids. ``split=None`` uses every annotation file
    in sorted order (for exports without ImageSets). The image is ``JPEGImages/<filename>`` from
    the xml, else ``JPEGImages/<id>.<ext>``.

    Coordinates: VOC numbers pixels from 1 and ``xmax`` is the last pixel inside the box, so the
    box covers ``[xmin - 1, xmax)`` in our 0-based continuous pixels: XYXY = (xmin-1, ymin-1,
    xmax, ymax). Float coordinates, empty optional tags and a missing ``<size>`` (then read from
    the image header) are accepted, as written by labelme, CVAT, Roboflow and DeepForest.
    ``difficult`` objects are flagged ``ignore`` (no target, no penalty in evaluation).
    ``image_id`` is the index in the (sorted) id list.

    Args:
        data_dir: dataset root (e.g. ``VOCdevkit/VOC2007``).
        split: ImageSets/Main split name, or None for all annotation files.
        transforms: callable ``sample -> sample`` or None.
        name_to_label: class name -> label mapping, or a list of names; default the 20 VOC classes.
            An object whose name is not in it is an error naming the file and the class.
        skip_bad_images: drop/skip missing or unreadable images instead of raising (see common.py).
    """

    def __init__(
        self,
        data_dir: str | Path,
        split: str | None,
        transforms: SampleTransform | None = None,
        name_to_label: Mapping[str, int] | Sequence[str] | None = None,
        skip_bad_images: bool = False,
    ) -> None:
        data_dir = Path(data_dir)
        self.name_to_label, class_names = _label_map(name_to_label)
        annotation_dir, self.image_dir = data_dir / "Annotations", data_dir / "JPEGImages"
        if not annotation_dir.is_dir() or not self.image_dir.is_dir():
            raise FileNotFoundError(f"VOC folders not found under {data_dir}; expected the layout {_LAYOUT}")
        if split is None:
            ids = sorted(p.stem for p in annotation_dir.glob("*.xml"))
            if not ids:
                raise ValueError(f"VOC annotation folder {annotation_dir} holds no .xml files")
        else:
            split_file = data_dir / "ImageSets" / "Main" / f"{split}.txt"
            if not split_file.is_file():
                raise FileNotFoundError(
                    f"VOC split file not found: {split_file}; expected the layout {_LAYOUT} "
                    "(or pass split=None to use every annotation file)"
                )
            lines = split_file.read_text(encoding="utf-8").split("\n")
            ids = [line.split()[0] for line in lines if line.strip()]
            if not ids:
                raise ValueError(f"VOC split file {split_file} lists no image ids (it is empty)")
        records = [self._parse(annotation_dir / f"{image_id}.xml", image_id, i) for i, image_id in enumerate(ids)]
        super().__init__(
            records,
            class_names,
            transforms=transforms,
            skip_bad_images=skip_bad_images,
            source=f"VOC {data_dir} split={split}",
        )

    def _image_path(self, filename: str | None, image_id: str) -> Path:
        if filename:
            candidate = self.image_dir / Path(filename.strip()).name
            if candidate.is_file():
                return candidate
        for extension in IMAGE_EXTENSIONS + tuple(e.upper() for e in IMAGE_EXTENSIONS):
            candidate = self.image_dir / f"{image_id}{extension}"
            if candidate.is_file():
                return candidate
        # Nothing on disk: keep the expected name so the error (or skip) names a useful file.
        return self.image_dir / (Path(filename.strip()).name if filename else f"{image_id}.jpg")

    def _parse(self, xml_path: Path, image_id: str, index: int) -> ImageRecord:
        """Parse one annotation file into a record (XYXY 0-based pixels)."""
        if not xml_path.is_file():
            raise FileNotFoundError(f"VOC annotation file not found: {xml_path}; expected the layout {_LAYOUT}")
        try:
            root = ET.parse(xml_path).getroot()
        except ET.ParseError as error:
            line, column = error.position
            raise ValueError(f"{xml_path}: malformed XML at line {line}, column {column}: {error}") from error
        path = self._image_path(root.findtext("filename"), image_id)
        size = None
        size_element = root.find("size")
        if size_element is not None and all((size_element.findtext(t) or "").strip() for t in ("width", "height")):
            size = (int(_float_tag(size_element, "height", xml_path)), int(_float_tag(size_element, "width", xml_path)))
        if size is None or min(size) <= 0:
            # Tools that omit <size> (or write 0) leave it to the image; unknown if the file is missing.
            size = read_image_size(path) if path.is_file() else None

        boxes, labels, difficult = [], [], []
        for obj in root.iter("object"):
            name = (obj.findtext("name") or "").strip()
            if name not in self.name_to_label:
                raise ValueError(
                    f"{xml_path}: class {name!r} is not in name_to_label (known: {sorted(self.name_to_label)})"
                )
            box = obj.find("bndbox")
            if box is None:
                raise ValueError(f"{xml_path}: object {name!r} has no <bndbox>")
            # VOC 1-based inclusive pixel indices -> 0-based continuous XYXY (see class docstring).
            boxes.append(
                (
                    _float_tag(box, "xmin", xml_path) - 1.0,
                    _float_tag(box, "ymin", xml_path) - 1.0,
                    _float_tag(box, "xmax", xml_path),
                    _float_tag(box, "ymax", xml_path),
                )
            )
            labels.append(self.name_to_label[name])
            difficult.append(_is_true(obj.findtext("difficult")))
        is_difficult = np.array(difficult, dtype=bool)
        return ImageRecord(
            path=path,
            image_id=index,
            bboxes=np.array(boxes, dtype=np.float32).reshape(-1, 4) if boxes else empty_boxes(),
            labels=np.array(labels, dtype=np.int64),
            fields={"ignore": is_difficult} if is_difficult.any() else {},
            size=size,
        )
