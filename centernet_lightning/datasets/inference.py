"""A folder of images without annotations, for prediction."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from centernet_lightning.datasets.common import DetectionDataset, ImageRecord, SampleTransform
from centernet_lightning.image_io import IMAGE_EXTENSIONS

__all__ = ["InferenceDataset", "list_images"]


def list_images(folder: str | Path) -> list[Path]:
    """Image files directly inside ``folder`` (any format OpenCV reads, in any letter case), sorted."""
    folder = Path(folder)
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_EXTENSIONS)


class InferenceDataset(DetectionDataset):
    """Every image in a folder (or the listed ones), with empty boxes.

    Samples have the usual keys with ``bboxes`` [0, 4] and ``labels`` [0]; ``original_size``
    is the size of the file on disk, so predictions can be mapped back with ``letterbox``.
    ``image_id`` is the index in the sorted list.

    Args:
        data_dir: folder of images (not searched recursively).
        img_names: file names relative to ``data_dir``; None for every image in it.
        transforms: callable ``sample -> sample`` or None.
        class_names: names of the classes a model predicts, for whoever draws the results.
        skip_bad_images: drop/skip missing or unreadable images instead of raising (see common.py).
    """

    def __init__(
        self,
        data_dir: str | Path,
        img_names: Sequence[str] | None = None,
        transforms: SampleTransform | None = None,
        class_names: Sequence[str] = (),
        skip_bad_images: bool = False,
    ) -> None:
        data_dir = Path(data_dir)
        if not data_dir.is_dir():
            raise FileNotFoundError(f"Image folder not found: {data_dir} (expected a folder of image files)")
        paths = list_images(data_dir) if img_names is None else [data_dir / name for name in img_names]
        if not paths:
            raise FileNotFoundError(f"No images ({', '.join(IMAGE_EXTENSIONS)}) found in {data_dir}")
        records = [ImageRecord(path=path, image_id=index) for index, path in enumerate(paths)]
        super().__init__(
            records, class_names, transforms=transforms, skip_bad_images=skip_bad_images, source=str(data_dir)
        )
