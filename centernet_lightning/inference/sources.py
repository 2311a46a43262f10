"""What to run a model on: an image, a folder, a glob, a list of paths or arrays, or a video.

:func:`open_source` resolves the user's ``--source`` once, with a clear error when it matches
nothing or cannot be opened; iterating the result yields :class:`Frame` s (uint8 HWC RGB) in a
stable order: sorted file names, or the video's frame order.
"""

from __future__ import annotations

import glob
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from ..image_io import IMAGE_EXTENSIONS, read_image

__all__ = ["Frame", "ImageSource", "VIDEO_EXTENSIONS", "open_source", "batched"]

log = logging.getLogger(__name__)

# Containers OpenCV's FFmpeg backend reads; a video source is recognised by its suffix.
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mkv", ".mov", ".m4v", ".webm", ".mpg", ".mpeg", ".wmv", ".flv")
GLOB_CHARACTERS = "*?["


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
    """Images from files, arrays or one video; iterate it for :class:`Frame` s.

    Attributes:
        kind: ``"images"`` (files), ``"arrays"`` or ``"video"``.
        name: how the source was given (for messages and output names).
        fps: the video's frame rate (None for images).
        skip_bad_images: unreadable files give a warning and a Frame with ``image`` None (True),
            or raise OSError naming the file (False).
    """

    def __init__(
        self,
        kind: str,
        name: str,
        paths: Sequence[Path] = (),
        arrays: Sequence[np.ndarray] = (),
        skip_bad_images: bool = True,
    ) -> None:
        self.kind = kind
        self.name = name
        self.paths = list(paths)
        self.arrays = list(arrays)
        self.skip_bad_images = skip_bad_images
        self.fps: float | None = None
        self._frame_count = len(self.paths) if kind == "images" else len(self.arrays)
        if kind == "video":
            capture = _open_video(self.paths[0])
            self.fps = capture.get(cv2.CAP_PROP_FPS) or None
            self._frame_count = max(0, int(capture.get(cv2.CAP_PROP_FRAME_COUNT)))
            capture.release()

    def __len__(self) -> int:
        """The number of images (for a video, the count its header gives, which may be approximate)."""
        return self._frame_count

    @property
    def is_video(self) -> bool:
        return self.kind == "video"

    def __iter__(self) -> Iterator[Frame]:
        if self.kind == "arrays":
            for index, array in enumerate(self.arrays):
                yield Frame(index, f"array {index}", _check_array(array, index))
        elif self.kind == "video":
            yield from self._video_frames()
        else:
            for index, path in enumerate(self.paths):
                yield self._read(index, path)

    def _read(self, index: int, path: Path) -> Frame:
        try:
            return Frame(index, str(path), read_image(path))
        except OSError as error:  # FileNotFoundError included
            if not self.skip_bad_images:
                raise
            log.warning("Skipping %s", error)
            return Frame(index, str(path), None, str(error))

    def _video_frames(self) -> Iterator[Frame]:
        path = self.paths[0]
        capture = _open_video(path)
        try:
            index = 0
            while True:
                ok, frame = capture.read()
                if not ok:
                    break
                yield Frame(index, f"{path}#{index}", cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
                index += 1
        finally:
            capture.release()
        if index == 0:
            raise OSError(f"No frame could be decoded from the video {path}")


def _open_video(path: Path) -> cv2.VideoCapture:
    capture = cv2.VideoCapture(str(path))
    if not capture.isOpened():
        capture.release()
        raise OSError(f"Cannot open the video {path} (missing, corrupt, or a codec OpenCV's FFmpeg lacks)")
    return capture


def _check_array(array: np.ndarray, index: int) -> np.ndarray:
    if not isinstance(array, np.ndarray) or array.dtype != np.uint8 or array.ndim != 3 or array.shape[2] != 3:
        described = f"{array.dtype} {list(array.shape)}" if isinstance(array, np.ndarray) else type(array).__name__
        raise TypeError(f"Image {index} must be a uint8 [H, W, 3] RGB array, got {described}")
    return array


def _is_image(path: Path) -> bool:
    return path.is_file() and path.suffix.lower() in IMAGE_EXTENSIONS


def open_source(
    source: str | Path | np.ndarray | Sequence[str | Path] | Sequence[np.ndarray], skip_bad_images: bool = True
) -> ImageSource:
    """Resolve a source: an image file, a folder of images (not recursive), a glob pattern
    (``"data/*.jpg"``, ``**`` recursive), a video file (:data:`VIDEO_EXTENSIONS`), a list of image
    paths, one uint8 HWC RGB array or a list of them.

    Raises FileNotFoundError when a path or pattern matches nothing (naming it), OSError when a
    video cannot be opened, TypeError for arrays that are not uint8 [H, W, 3].
    """
    if isinstance(source, np.ndarray):
        return ImageSource("arrays", "array", arrays=[_check_array(source, 0)])
    if isinstance(source, Sequence) and not isinstance(source, str):
        items = list(source)
        if not items:
            raise FileNotFoundError("The source is an empty list")
        if all(isinstance(item, np.ndarray) for item in items):
            return ImageSource("arrays", f"{len(items)} arrays", arrays=items)
        if not all(isinstance(item, (str, Path)) for item in items):
            raise TypeError("A source list must hold only image paths or only uint8 HWC RGB arrays")
        return ImageSource(
            "images", f"{len(items)} files", paths=[Path(item) for item in items], skip_bad_images=skip_bad_images
        )
    text = str(source)
    path = Path(source)
    if path.is_dir():
        images = sorted(p for p in path.iterdir() if _is_image(p))
        if not images:
            videos = sorted(p.name for p in path.iterdir() if p.suffix.lower() in VIDEO_EXTENSIONS)
            hint = f"; it holds videos, pass one of them: {videos[:3]}" if videos else ""
            raise FileNotFoundError(f"No images ({', '.join(IMAGE_EXTENSIONS[:5])}, ...) in the folder {path}{hint}")
        return ImageSource("images", text, paths=images, skip_bad_images=skip_bad_images)
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix in VIDEO_EXTENSIONS:
            return ImageSource("video", text, paths=[path])
        if suffix not in IMAGE_EXTENSIONS:
            raise ValueError(
                f"{path} is neither an image ({', '.join(IMAGE_EXTENSIONS[:5])}, ...) "
                f"nor a video ({', '.join(VIDEO_EXTENSIONS)})"
            )
        return ImageSource("images", text, paths=[path], skip_bad_images=skip_bad_images)
    if any(character in text for character in GLOB_CHARACTERS):
        images = sorted(Path(match) for match in glob.glob(text, recursive=True) if _is_image(Path(match)))
        if not images:
            raise FileNotFoundError(f"The pattern {text!r} matches no image files")
        return ImageSource("images", text, paths=images, skip_bad_images=skip_bad_images)
    raise FileNotFoundError(f"Source not found: {text} (expected an image, a folder, a glob pattern or a video)")


def batched(frames: Iterator[Frame], batch_size: int) -> Iterator[list[Frame]]:
    """Consecutive lists of ``batch_size`` frames (the last may be shorter)."""
    if batch_size < 1:
        raise ValueError(f"batch size must be >= 1, got {batch_size}")
    batch: list[Frame] = []
    for frame in frames:
        batch.append(frame)
        if len(batch) == batch_size:
            yield batch
            batch = []
    if batch:
        yield batch
