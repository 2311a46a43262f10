"""Where and how prediction and tracking runs write their results.

Every run gets a new folder (``runs/predict``, ``runs/predict2``, ...) so nothing earlier is
overwritten; files are written to a temporary name and renamed, so a file is complete or absent.
:class:`PredictionFiles` is the one writer of predictions (``centernet predict --source``, the
datamodule-driven ``centernet predict`` through :class:`~centernet_lightning.callbacks.PredictionWriter`,
and ``make demo``); :func:`track_to_files` writes a tracking run.

A prediction run holds:

- drawn images with the sources' names (``.jpg``/``.png``/... kept, other formats drawn as
  ``.jpg``; a name met twice in one run gets ``_2``), or for a video ``<name>.mp4`` at its rate;
- ``predictions.json``: COCO-results entries ``{"image_id", "category_id", "bbox": [x, y, w, h],
  "score", "file_name"}`` in original image pixels, with the dataset's category ids;
- with ``save_txt``, ``labels/<name>.txt`` per image: ``label cx cy w h [score]`` normalised by
  the image size; ``label`` is the 0-based class index with ``save_txt="yolo"`` (YOLO's
  convention, what a YOLO dataset of this model's classes holds) or the category id of
  ``predictions.json`` with ``save_txt="coco"``.

A run that fails before writing anything leaves no folder behind (:func:`run_folder`). A full disk
raises :class:`~centernet_lightning.atomic_files.DiskFullError` (an OSError) naming the file, whose
temporary is removed; what was written before stays. A run killed outright (SIGKILL) leaves the
video being drawn as its temporary ``.<name>.mp4.partial-<pid>-<random>.mp4`` beside the finished
files; the next run into the same parent folder removes it (:func:`new_run_dir`).
"""

from __future__ import annotations

import contextlib
import json
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ..atomic_files import (
    DiskFullError,
    atomic_target,
    is_disk_full,
    remove_stale_temporaries,
    write_bytes_atomically,
    write_text_atomically,
)
from ..datasets.coco_keypoints import to_coco_keypoints
from ..datasets.mot_io import write_mot_txt
from ..structures import InferenceSpec, box_xyxy_to_xywh, is_detection
from ..tracking import Tracker
from ..visualize import TrackDrawer, draw_boxes
from .sources import Frame, ImageSource
from .track import track_source

__all__ = [
    "PREDICTIONS_FILE",
    "TXT_LABELS",
    "PredictionFiles",
    "TrackingRun",
    "source_progress",
    "new_run_dir",
    "run_folder",
    "coco_results",
    "yolo_lines",
    "unique_name",
    "track_to_files",
    "VideoSink",
]

PREDICTIONS_FILE = "predictions.json"
DRAWN_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")  # others are drawn as .jpg
TXT_LABELS = ("yolo", "coco")  # the label column of labels/<name>.txt: class index, or category id


def new_run_dir(parent: str | Path, name: str) -> Path:
    """Create and return ``parent/name``, or ``name2``, ``name3``, ... when taken (never reused).

    First removes the temporaries that killed runs left in ``parent``'s run folders (and their
    ``labels/``): only files named as the project names them whose process is gone
    (:func:`~centernet_lightning.atomic_files.remove_stale_temporaries`), never a user's file.
    """
    if not name or Path(name).name != name or name in (".", ".."):
        raise ValueError(f"the run folder name (--name) must be a plain folder name, got {name!r}")
    parent = Path(parent)
    parent.mkdir(parents=True, exist_ok=True)
    remove_stale_temporaries(parent, depth=2)
    index = 1
    while True:
        run_dir = parent / (name if index == 1 else f"{name}{index}")
        try:
            run_dir.mkdir()  # atomic: two runs started together get different folders
            return run_dir
        except FileExistsError:
            index += 1


@contextlib.contextmanager
def run_folder(parent: str | Path, name: str) -> Iterator[Path]:
    """:func:`new_run_dir` for the span of a run: when the run raises (or is interrupted) before
    anything was written into it, the empty folder is removed again."""
    run_dir = new_run_dir(parent, name)
    try:
        yield run_dir
    except BaseException:
        with contextlib.suppress(OSError):  # not empty (some results were written): keep them
            for folder in sorted((p for p in run_dir.rglob("*") if p.is_dir()), reverse=True):
                folder.rmdir()
            run_dir.rmdir()
        raise


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
    keypoints: np.ndarray | None = None,
) -> list[dict[str, Any]]:
    """COCO-results entries of one image: ``{"image_id", "category_id", "bbox": [x, y, w, h], "score"}``.

    ``bboxes`` float [K, 4] XYXY original pixels; ``labels`` int [K] contiguous labels mapped to the
    dataset's ``category_ids``; entries with a negative label (padding) are left out. With
    ``keypoints`` [K, J, 3] (x, y original pixels, score) each entry gets COCO's keypoint-results
    ``"keypoints": [x1, y1, s1, ...]`` as COCO's pixel indices (OKS evaluation reads x and y only).
    """
    keep = is_detection(labels)
    boxes = box_xyxy_to_xywh(np.asarray(bboxes[keep], dtype=np.float64))
    extra = {"file_name": file_name} if file_name is not None else {}
    entries = [
        {
            "image_id": int(image_id),
            "category_id": int(category_ids[label]),
            "bbox": [round(v, 3) for v in box],
            "score": round(float(score), 5),
            **extra,
        }
        for box, score, label in zip(boxes.tolist(), scores[keep].tolist(), labels[keep].tolist())
    ]
    if keypoints is not None:  # COCO's joints are pixel indices: half a pixel less than the library's
        joints = to_coco_keypoints(np.asarray(keypoints)[keep])
        joints = joints.reshape(len(entries), int(np.prod(joints.shape[1:])))
        for entry, values in zip(entries, joints.tolist()):
            entry["keypoints"] = [round(v, 3) for v in values]
    return entries


def yolo_lines(
    bboxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, height: int, width: int, with_score: bool
) -> str:
    """YOLO-txt lines ``label cx cy w h [score]`` (box normalised by the image size), padding left out."""
    keep = is_detection(labels)
    boxes = np.asarray(bboxes[keep], dtype=np.float64)
    centres = (boxes[:, :2] + boxes[:, 2:]) / 2 / (width, height)
    sizes = (boxes[:, 2:] - boxes[:, :2]) / (width, height)
    lines = []
    for label, centre, size, score in zip(labels[keep], centres, sizes, scores[keep]):
        values = f"{int(label)} {centre[0]:.6f} {centre[1]:.6f} {size[0]:.6f} {size[1]:.6f}"
        lines.append(values + (f" {float(score):.5f}" if with_score else ""))
    return "".join(line + "\n" for line in lines)


class VideoSink:
    """An mp4 being written: frames go to a temporary file that gets the name ``path`` on :meth:`close`
    (:func:`~centernet_lightning.atomic_files.atomic_target`; an existing file is never replaced).

    ``fps`` None or 0 (a source without a rate) falls back to 30. OpenCV's writer reports no write
    error, so :meth:`close` reads the finished file back: when it does not hold every frame (a full
    disk cuts the file and its index), the temporary is removed and DiskFullError (or an OSError
    when the disk has room) names ``path``.
    """

    def __init__(self, path: Path, fps: float | None, size: tuple[int, int]) -> None:
        self.path = path
        self._target = atomic_target(path)
        self.temporary = self._target.__enter__()
        height, width = size
        self.writer = cv2.VideoWriter(
            str(self.temporary), cv2.VideoWriter_fourcc(*"mp4v"), fps or 30.0, (width, height)
        )
        if not self.writer.isOpened():
            error = OSError(f"OpenCV cannot write the video {path} (mp4v codec unavailable)")
            self._target.__exit__(OSError, error, None)  # the temporary file goes, nothing is named
            raise error
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
        try:
            self._check_complete()
        except OSError as error:
            self._target.__exit__(type(error), error, error.__traceback__)  # removes the temporary
            raise
        self._target.__exit__(None, None, None)

    def _check_complete(self) -> None:
        capture = cv2.VideoCapture(str(self.temporary))
        readable = capture.isOpened()
        frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) if readable else 0
        capture.release()
        if readable and frames >= self.frames:
            return
        # Is the disk full? Appending to the doomed temporary asks the file system itself.
        try:
            with open(self.temporary, "ab") as file:
                file.write(bytes(1 << 16))
        except OSError as error:
            if is_disk_full(error):
                raise DiskFullError(self.path, error) from None
            raise
        raise OSError(f"OpenCV could not write the video {self.path}: it holds {frames} of {self.frames} frames")


class PredictionFiles:
    """Writes the files of one prediction run into ``run_dir`` (see the module docstring).

    Args:
        run_dir: the run's folder (made by :func:`new_run_dir`).
        spec: the model's spec: class names to draw, category ids for the JSON.
        num_classes: the model's class count (labels map to ids ``0..num_classes-1`` without ids).
        conf: the smallest score kept in every output.
        draw: write drawn images (or the drawn video).
        save_txt: write ``labels/<name>.txt``: ``"yolo"`` (or True) with 0-based class indices,
            ``"coco"`` with the JSON's category ids; False / None: none.
        save_conf: append the score to each line of those files.
        video: the source's stem when it is a video (frames go into ``<video>.mp4``), else None.
        fps: the video's frame rate.
        id_in_names: name drawn images and label files ``<image_id>_<stem>``: unique without
            knowing the other writers' names (DDP ranks writing into one folder).
    """

    def __init__(
        self,
        run_dir: Path,
        spec: InferenceSpec,
        num_classes: int,
        conf: float = 0.25,
        draw: bool = True,
        save_txt: bool | str | None = False,
        save_conf: bool = False,
        video: str | None = None,
        fps: float | None = None,
        id_in_names: bool = False,
    ) -> None:
        self.run_dir, self.spec, self.conf = Path(run_dir), spec, conf
        self.id_in_names = id_in_names
        self.save_txt = "yolo" if save_txt is True else save_txt or None
        if self.save_txt not in (None, *TXT_LABELS):
            raise ValueError(f"save_txt must be one of {', '.join(TXT_LABELS)}, got {save_txt!r}")
        self.draw, self.save_conf = draw, save_conf
        self.video_stem, self.fps = video, fps
        self.category_ids = spec.label_to_category_id(num_classes)
        self.entries: list[dict[str, Any]] = []
        self.taken: set[str] = set()
        self.video: VideoSink | None = None
        self.detections = 0
        self.best_score = 0.0  # the highest score seen, kept or not
        if save_txt:
            (self.run_dir / "labels").mkdir(exist_ok=True)

    def add(
        self,
        image: np.ndarray,
        name: str,
        image_id: int,
        bboxes: np.ndarray,
        scores: np.ndarray,
        labels: np.ndarray,
        keypoints: np.ndarray | None = None,
    ) -> None:
        """One image (uint8 HWC RGB) with its detections (padded [K] arrays, original pixels) and,
        for a keypoint model, their joints [K, J, 3].

        ``name`` is the file path (or ``<video>#<frame>``); ``image_id`` goes into the JSON.
        """
        real = is_detection(labels)
        if real.any():
            self.best_score = max(self.best_score, float(scores[real].max()))
        keep = (scores >= self.conf) & real
        bboxes, scores, labels = bboxes[keep], scores[keep], labels[keep]
        keypoints = keypoints[keep] if keypoints is not None else None
        self.detections += len(scores)
        self.entries += coco_results(
            image_id, bboxes, scores, labels, self.category_ids, file_name=name, keypoints=keypoints
        )
        stem = f"{self.video_stem}_{image_id}" if self.video_stem else Path(name).stem
        if self.id_in_names and not self.video_stem:
            stem = f"{image_id}_{stem}"
        if self.save_txt:
            height, width = image.shape[:2]
            ids = np.asarray(self.category_ids, np.int64)[labels] if self.save_txt == "coco" else labels
            text = yolo_lines(bboxes, scores, ids, height, width, self.save_conf)
            write_text_atomically(self.run_dir / "labels" / unique_name(stem, ".txt", self.taken), text)
        if not self.draw:
            return
        layout = self.spec.keypoint_layout
        skeleton = layout.skeleton if layout is not None else ()
        drawn = draw_boxes(image, bboxes, labels, scores, self.spec.class_names, keypoints=keypoints, skeleton=skeleton)
        if self.video_stem is not None:
            if self.video is None:
                self.video = VideoSink(self.run_dir / f"{self.video_stem}.mp4", self.fps, drawn.shape[:2])
            self.video.write(drawn)
            return
        suffix = Path(name).suffix.lower()
        drawn_name = unique_name(stem, suffix if suffix in DRAWN_SUFFIXES else ".jpg", self.taken)
        ok, encoded = cv2.imencode(Path(drawn_name).suffix, cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
        if ok:
            write_bytes_atomically(self.run_dir / drawn_name, encoded.tobytes())

    def add_frames(self, frames: Sequence[Frame], results: dict[str, np.ndarray]) -> int:
        """The frames of one batch of :meth:`~centernet_lightning.inference.Predictor.predict_source`
        with their results (``image_id``: the frame's position in the source); frames that could not
        be read are passed over. Returns how many were added."""
        readable = [row for row, frame in enumerate(frames) if frame.image is not None]
        for row in readable:
            frame = frames[row]
            keypoints = results["keypoints"][row] if "keypoints" in results else None
            self.add(
                frame.image,
                frame.name,
                frame.index,
                *(results[key][row] for key in ("bboxes", "scores", "labels")),
                keypoints=keypoints,
            )
        return len(readable)

    def close(self, entries: list[dict[str, Any]] | None = None) -> Path:
        """Finish the video and write ``predictions.json`` (``entries``: every rank's, gathered; None:
        this writer's); returns the JSON's path."""
        if self.video is not None:
            self.video.close()
            self.video = None
        return write_text_atomically(
            self.run_dir / PREDICTIONS_FILE, json.dumps(self.entries if entries is None else entries)
        )


class TrackingRun(NamedTuple):
    """What :func:`track_to_files` wrote and measured."""

    results: Path  # MOTChallenge txt
    video: Path | None  # drawn mp4
    frames: int
    tracks: int  # distinct ids
    seconds: float
    peak_score: float = 0.0  # the highest detection score the tracker was given


def track_to_files(
    predictor: Any,
    source: ImageSource,
    tracker: Tracker,
    run_dir: Path,
    frame_rate: float = 30.0,
    batch_size: int = 8,
    draw: bool = True,
) -> TrackingRun:
    """Track ``source`` with a :class:`~centernet_lightning.inference.Predictor` and ``tracker``, and
    write ``<name>.txt`` (MOTChallenge results: ``frame, id, bb_left, bb_top, bb_width, bb_height,
    score, class, -1, -1``, frames from 1; the class index only for a model of several classes, else
    -1) and, with ``draw``, ``<name>.mp4`` at ``frame_rate`` (boxes,
    ids, short trails, one colour per id) into ``run_dir``, with a Rich progress bar. ``<name>`` is
    :attr:`~centernet_lightning.inference.ImageSource.stem`: the video's stem, or the sequence's
    name for a MOTChallenge frame folder ``SEQ/img1``."""
    stem = source.stem
    several_classes = predictor.backend.num_classes > 1
    frames, ids, boxes, scores, classes = [], [], [], [], []
    layout = predictor.spec.keypoint_layout
    drawer, video = TrackDrawer(skeleton=layout.skeleton if layout is not None else ()), None
    count, start = 0, time.perf_counter()
    try:
        with source_progress() as progress:
            task = progress.add_task(f"track {source.name}", total=len(source) or None)
            for frame, tracks in track_source(predictor, source, tracker, batch_size):
                count += 1
                frames.append(np.full(len(tracks["ids"]), frame.index + 1))
                ids.append(np.asarray(tracks["ids"]))
                boxes.append(np.asarray(tracks["boxes"]).reshape(-1, 4))
                scores.append(np.asarray(tracks["scores"]))
                classes.append(np.asarray(tracks["classes"]))
                if draw and frame.image is not None:
                    drawn = drawer.draw(frame.image, tracks)
                    video = video or VideoSink(run_dir / f"{stem}.mp4", frame_rate, drawn.shape[:2])
                    video.write(drawn)
                progress.advance(task)
    finally:
        if video is not None:
            video.close()
    all_ids = np.concatenate(ids) if ids else np.zeros(0, np.int64)
    results = write_mot_txt(
        run_dir / f"{stem}.txt",
        np.concatenate(frames) if frames else np.zeros(0, np.int64),
        all_ids,
        np.concatenate(boxes) if boxes else np.zeros((0, 4)),
        np.concatenate(scores) if scores else np.zeros(0),
        classes=(np.concatenate(classes) if classes else np.zeros(0)) if several_classes else None,
    )
    seconds = time.perf_counter() - start
    return TrackingRun(
        results, video.path if video else None, count, len(np.unique(all_ids)), seconds, tracker.peak_score
    )
