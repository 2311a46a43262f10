"""Where and how ``centernet predict`` (and ``centernet track``) write results.

Every run gets a new folder (``runs/predict``, ``runs/predict2``, ...) so nothing earlier is
overwritten; files are written to a temporary name and renamed, so a file is complete or absent.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..structures import box_xyxy_to_xywh

__all__ = [
    "source_progress",
    "new_run_dir",
    "coco_results",
    "yolo_lines",
    "unique_name",
    "VideoSink",
]


def new_run_dir(parent: str | Path, name: str) -> Path:
    """Create and return ``parent/name``, or ``name2``, ``name3``, ... when taken (never reused)."""
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    index = 1
    while True:
        run_dir = parent / (name if index == 1 else f"{name}{index}")
        try:
            run_dir.mkdir()  # atomic: two runs started together get different folders
            return run_dir
        except FileExistsError:
            index += 1


def source_progress() -> Progress:
    """The Rich progress display of a run over a source: description, bar, done/total, elapsed."""
    return Progress(
        TextColumn("[progress.description]{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn()
    )


def unique_name(stem: str, suffix: str, taken: set[str]) -> str:
    """``stem + suffix``, or ``stem_2 + suffix``, ... when an earlier image of the run took it."""
    name, index = f"{stem}{suffix}", 1
    while name in taken:
        index += 1
        name = f"{stem}_{index}{suffix}"
    taken.add(name)
    return name


def coco_results(
    image_id: int,
    bboxes: np.ndarray,
    scores: np.ndarray,
    labels: np.ndarray,
    category_ids: Sequence[int],
    file_name: str | None = None,
) -> list[dict[str, Any]]:
    """COCO-results entries of one image: ``{"image_id", "category_id", "bbox": [x, y, w, h], "score"}``.

    ``bboxes`` float [K, 4] XYXY original pixels; ``labels`` int [K] contiguous labels mapped to the
    dataset's ``category_ids``; entries with a negative label (padding) are left out.
    """
    keep = labels >= 0
    boxes = box_xyxy_to_xywh(np.asarray(bboxes[keep], dtype=np.float64))
    extra = {"file_name": file_name} if file_name is not None else {}
    return [
        {
            "image_id": int(image_id),
            "category_id": int(category_ids[label]),
            "bbox": [round(v, 3) for v in box],
            "score": round(float(score), 5),
            **extra,
        }
        for box, score, label in zip(boxes.tolist(), scores[keep].tolist(), labels[keep].tolist())
    ]


def yolo_lines(
    bboxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, height: int, width: int, with_score: bool
) -> str:
    """YOLO-txt lines ``label cx cy w h [score]`` (box normalised by the image size), padding left out."""
    keep = labels >= 0
    boxes = np.asarray(bboxes[keep], dtype=np.float64)
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2 / (width, height)
    sizes = (boxes[:, 2:] - boxes[:, :2]) / (width, height)
    lines = []
    for label, centre, size, score in zip(labels[keep], centres, sizes, scores[keep]):
        values = f"{int(label)} {centre[0]:.6f} {centre[1]:.6f} {size[0]:.6f} {size[1]:.6f}"
        lines.append(values + (f" {float(score):.5f}" if with_score else ""))
    return "".join(line + "\n" for line in lines)


class VideoSink:
    """An mp4 being written: frames go to a temporary file renamed to ``path`` on :meth:`close`.

    ``fps`` None or 0 (a source without a rate) falls back to 30.
    """

    def __init__(self, path: Path, fps: float | None, size: tuple[int, int]) -> None:
        self.path = path
        self.temporary = path.with_name(f".{path.stem}-partial{path.suffix}")
        height, width = size
        self.writer = cv2.VideoWriter(
            str(self.temporary), cv2.VideoWriter_fourcc(*"mp4v"), fps or 30.0, (width, height)
        )
        if not self.writer.isOpened():
            raise OSError(f"OpenCV cannot write the video {path} (mp4v codec unavailable)")
        self.size = size
        self.frames = 0

    def write(self, image: np.ndarray) -> None:
        """Append a uint8 HWC RGB frame (resized to the video's size when it differs)."""
        if image.shape[:2] != self.size:
            image = cv2.resize(image, (self.size[1], self.size[0]))
        self.writer.write(cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
        self.frames += 1

    def close(self) -> None:
        self.writer.release()
        os.replace(self.temporary, self.path)
