"""What to run a model on: an image, a folder, a glob, a list of paths or arrays, a video or a stream.

:func:`open_source` resolves the user's ``--source`` once, with a clear error when it matches
nothing or cannot be opened; iterating the result yields :class:`Frame` s (uint8 HWC RGB) in a
stable order: sorted file names, the video's frame order, or a stream's frames as they arrive
(a camera index such as ``0``, or an ``rtsp://``, ``rtmp://``, ``http://`` or ``https://`` address,
read by OpenCV's FFmpeg). ``vid_stride`` keeps every N-th frame (image) and ``max_frames`` stops
after that many.
"""

from __future__ import annotations

import glob
import itertools
import logging
import math
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlparse

import cv2
import numpy as np

from ..checks import check_int_min
from ..image_io import IMAGE_EXTENSIONS, read_image

__all__ = ["Frame", "ImageSource", "STREAM_SCHEMES", "VIDEO_EXTENSIONS", "open_source", "batched"]

log = logging.getLogger(__name__)

# Containers OpenCV's FFmpeg backend reads; a video source is recognised by its suffix.
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".mov", ".m4v", ".webm", ".mpg", ".mpeg", ".wmv", ".flv")
GLOB_CHARACTERS = "*?["
STREAM_SCHEMES = ("rtsp", "rtsps", "rtmp", "http", "https")  # addresses opened as streams by OpenCV's FFmpeg
# How long OpenCV's FFmpeg may wait to open a stream and then for each frame: a dead address fails
# within seconds instead of FFmpeg's own minutes-long defaults.
STREAM_TIMEOUT_MS = 10_000


@dataclass
class Frame:
    """One image of a source.

    Attributes:
        index: position in the source (0-based; the frame number for a video).
        name: the file path, ``"<video>#<frame>"`` or ``"array <i>"``.
        image: uint8 [H, W, 3] RGB, or None when it could not be read (``error`` says why).
    """

    index: int
    name: str
    image: np.ndarray | None
    error: str | None = None


class ImageSource:
    """Images from files, arrays, one video or one stream; iterate it for :class:`Frame` s.

    Attributes:
        kind: ``"images"`` (files), ``"arrays"``, ``"video"`` or ``"stream"`` (a camera or a
            network address).
        name: how the source was given (for messages and output names).
        fps: the rate of the frames it yields, the video's or stream's divided by ``vid_stride``
            (None for images, or a stream that does not say).
        skip_bad_images: unreadable files give a warning and a Frame with ``image`` None (True),
            or raise OSError naming the file (False).
        vid_stride: keep every ``vid_stride``-th frame (image), from the first; skipped video frames
            are not decoded. ``Frame.index`` stays the position in the whole source.
        max_frames: stop after this many frames (None: all).
    """

    def __init__(
        self,
        kind: str,
        name: str,
        paths: Sequence[Path] = (),
        arrays: Sequence[np.ndarray] = (),
        skip_bad_images: bool = True,
        vid_stride: int = 1,
        max_frames: int | None = None,
    ) -> None:
        check_int_min("--vid-stride", vid_stride, 1)
        if max_frames is not None:
            check_int_min("--max-frames", max_frames, 1)
        self.kind = kind
        self.name = name
        self.paths = list(paths)
        self.arrays = list(arrays)
        self.skip_bad_images = skip_bad_images
        self.vid_stride = vid_stride
        self.max_frames = max_frames
        self.fps: float | None = None
        self._capture: cv2.VideoCapture | None = None  # a stream stays open from here to its iteration
        frame_count = len(self.paths) if kind == "images" else len(self.arrays)
        if kind in ("video", "stream"):
            capture = _open_capture(self.name if kind == "stream" else self.paths[0], kind == "stream")
            native_fps = capture.get(cv2.CAP_PROP_FPS)
            # FFmpeg reports absurd rates (1000, 90000) for streams that do not say theirs
            self.fps = native_fps / vid_stride if 0 < native_fps < 1000 else None
            frame_count = max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT))) if kind == "video" else 0
            if kind == "stream":
                self._capture = capture  # a live stream cannot be reopened at its start
            else:
                capture.release()
        if kind == "stream":  # a live stream has no length; it ends at max_frames, if given
            self._frame_count = max_frames or 0
        else:
            self._frame_count = min(math.ceil(frame_count / vid_stride), max_frames or frame_count)

    def __len__(self) -> int:
        """The number of frames it yields (for a video, from the count its header gives, which may be
        approximate; 0 for a stream without ``max_frames``: unknown)."""
        return self._frame_count

    @property
    def is_video(self) -> bool:
        """A video file or a stream: its frames go into one drawn video."""
        return self.kind in ("video", "stream")

    @property
    def stem(self) -> str:
        """A short name for output files: the file's stem (the sequence's for a MOTChallenge
        ``SEQ/img1`` folder), ``camera<N>`` or the stream address's last path part."""
        if self.kind == "stream":
            if self.name.isdigit():
                return f"camera{self.name}"
            return Path(urlparse(self.name).path).stem or "stream"
        name = Path(self.name.rstrip("/"))
        return (name.parent.name if name.name == "img1" else name.stem) or "source"

    def __iter__(self) -> Iterator[Frame]:
        return itertools.islice(self._strided_frames(), self.max_frames)

    def _strided_frames(self) -> Iterator[Frame]:
        stride = self.vid_stride
        if self.kind == "arrays":
            for index in range(0, len(self.arrays), stride):
                yield Frame(index, f"array {index}", _check_array(self.arrays[index], index))
        elif self.kind in ("video", "stream"):
            yield from self._video_frames()
        else:
            for index in range(0, len(self.paths), stride):
                yield self._read(index, self.paths[index])

    def _read(self, index: int, path: Path) -> Frame:
        try:
            return Frame(index, str(path), read_image(path))
        except OSError as error:  # FileNotFoundError included
            if not self.skip_bad_images:
                raise
            log.warning("Skipping %s", error)
            return Frame(index, str(path), None, str(error))

    def _video_frames(self) -> Iterator[Frame]:
        stream = self.kind == "stream"
        label = self.name if stream else self.paths[0]
        capture, self._capture = self._capture or _open_capture(label, stream), None
        index = 0
        try:
            while True:
                if index % self.vid_stride:
                    if not capture.grab():  # a skipped frame is not decoded
                        break
                else:
                    ok, frame = capture.read()
                    if not ok:
                        break
                    yield Frame(index, f"{label}#{index}", cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
                index += 1
        finally:
            capture.release()
        if index == 0:
            raise OSError(f"No frame could be decoded from the {'stream' if stream else 'video'} {label}")


def _open_capture(target: str | Path, stream: bool = False) -> cv2.VideoCapture:
    """An opened OpenCV capture of a video file, a camera index (``"0"``) or a stream address;
    OSError in one line naming it otherwise."""
    if stream and str(target).isdigit():
        capture = cv2.VideoCapture(int(target))
        what = f"the camera {target} (no such device, or in use)"
    elif stream:
        timeouts = (cv2.CAP_PROP_OPEN_TIMEOUT_MSEC, STREAM_TIMEOUT_MS, cv2.CAP_PROP_READ_TIMEOUT_MSEC)
        capture = cv2.VideoCapture(str(target), cv2.CAP_FFMPEG, [*timeouts, STREAM_TIMEOUT_MS])
        what = f"the stream {target} (unreachable, refused, or a format OpenCV's FFmpeg cannot read)"
    else:
        capture = cv2.VideoCapture(str(target))
        what = f"the video {target} (missing, corrupt, or a codec OpenCV's FFmpeg lacks)"
    if not capture.isOpened():
        capture.release()
        raise OSError(f"Cannot open {what}")
    return capture


def is_stream(source: str) -> bool:
    """True for a camera index (``"0"``) or an address of :data:`STREAM_SCHEMES` (``rtsp://...``)."""
    return source.isdigit() or urlparse(source).scheme.lower() in STREAM_SCHEMES


def _check_array(array: np.ndarray, index: int) -> np.ndarray:
    if not isinstance(array, np.ndarray) or array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        described = f"{array.dtype} {list(array.shape)}" if isinstance(array, np.ndarray) else type(array).__name__
        raise TypeError(f"Image {index} must be a uint8 [H, W, 3] RGB array, got {described}")
    return array


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS


def open_source(
    source: str | Path | np.ndarray | Sequence[str | Path] | Sequence[np.ndarray],
    skip_bad_images: bool = True,
    vid_stride: int = 1,
    max_frames: int | None = None,
) -> ImageSource:
    """Resolve a source: an image file, a folder of images (not recursive), a glob pattern
    (``"data/*.jpg"``, ``**`` recursive), a video file (:data:`VIDEO_EXTENSIONS`), a camera index
    (``"0"``) or a stream address (``rtsp://``, ``http://``, ...: :data:`STREAM_SCHEMES`), a list of
    image paths, one uint8 HWC RGB array or a list of them. ``vid_stride`` and ``max_frames``: see
    :class:`ImageSource`.

    Raises FileNotFoundError when a path or pattern matches nothing (naming it), OSError when a
    video or stream cannot be opened, TypeError for arrays that are not uint8 [H, W, 3], ValueError
    for a stride or frame limit below 1.
    """
    every = {"vid_stride": vid_stride, "max_frames": max_frames}
    if isinstance(source, np.ndarray):
        return ImageSource("arrays", "array", arrays=[_check_array(source, 0)], **every)
    if isinstance(source, Sequence) and not isinstance(source, str):
        items = list(source)
        if not items:
            raise FileNotFoundError("The source is an empty list")
        if all(isinstance(item, np.ndarray) for item in items):
            return ImageSource("arrays", f"{len(items)} arrays", arrays=items, **every)
        if not all(isinstance(item, (str, Path)) for item in items):
            raise TypeError("A source list must hold only image paths or only uint8 HWC RGB arrays")
        paths = [Path(item) for item in items]
        return ImageSource("images", f"{len(items)} files", paths=paths, skip_bad_images=skip_bad_images, **every)
    text = str(source)
    path = Path(source)
    if isinstance(source, str) and not path.exists() and is_stream(text):
        return ImageSource("stream", text, **every)
    every["skip_bad_images"] = skip_bad_images
    if path.is_dir():
        images = sorted(p for p in path.iterdir() if _is_image(p))
        if not images:
            videos = sorted(p.name for p in path.iterdir() if p.suffix.lower() in VIDEO_EXTENSIONS)
            hint = f"; it holds videos, pass one of them: {videos[:3]}" if videos else ""
            raise FileNotFoundError(f"No images ({', '.join(IMAGE_EXTENSIONS[:5])}, ...) in the folder {path}{hint}")
        return ImageSource("images", text, paths=images, **every)
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix in VIDEO_EXTENSIONS:
            return ImageSource("video", text, paths=[path], **every)
        if suffix not in IMAGE_EXTENSIONS:
            raise ValueError(
                f"{path} is neither an image ({', '.join(IMAGE_EXTENSIONS[:5])}, ...) "
                f"nor a video ({', '.join(VIDEO_EXTENSIONS)})"
            )
        return ImageSource("images", text, paths=[path], **every)
    if any(character in text for character in GLOB_CHARACTERS):
        images = sorted(Path(match) for match in glob.glob(text, recursive=True) if _is_image(Path(match)))
        if not images:
            raise FileNotFoundError(f"The pattern {text!r} matches no image files")
        return ImageSource("images", text, paths=images, **every)
    raise FileNotFoundError(
        f"Source not found: {text} (expected an image, a folder, a glob pattern, a video, a camera index or a "
        "stream address such as rtsp://...)"
    )


def batched(frames: Iterator[Frame], batch_size: int) -> Iterator[list[Frame]]:
    """Consecutive lists of ``batch_size`` frames (the last may be shorter)."""
    check_int_min("batch size", batch_size, 1)
    batch: list[Frame] = []
    for frame in frames:
        batch.append(frame)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch
