"""Tracking a video or a frame folder: batched detection, then the tracker frame by frame.

:func:`track_source` is what ``FairMOT.inference_tracking2d`` and ``centernet track`` run; a
detection-only CenterNet works too (no embeddings: the tracker associates by motion and IoU).
"""

from __future__ import annotations

import configparser
from collections import defaultdict, deque
from collections.abc import Iterator

import cv2
import numpy as np
import torch

from ..tracking import Tracker, Tracks
from ..visualize import color_for
from .predictor import DetectFunction, detect_source
from .sources import Frame, ImageSource
from .spec import InferenceSpec

__all__ = ["track_source", "source_frame_rate", "TrackDrawer"]


def source_frame_rate(source: ImageSource, default: float = 30.0) -> float:
    """The video's rate, or for a frame folder the ``frameRate`` of a ``seqinfo.ini`` beside it or
    one level up (the MOTChallenge layout ``SEQ/img1/``), else ``default``."""
    if source.fps:
        return float(source.fps)
    if source.paths:
        folder = source.paths[0].parent
        for candidate in (folder / "seqinfo.ini", folder.parent / "seqinfo.ini"):
            if candidate.is_file():
                parser = configparser.ConfigParser()
                parser.read(candidate)
                rate = parser.get("Sequence", "frameRate", fallback=None)
                if rate:
                    return float(rate)
    return default


def track_source(
    detect: DetectFunction,
    source: ImageSource,
    spec: InferenceSpec,
    tracker: Tracker,
    device: torch.device | str = "cpu",
    batch_size: int = 8,
    num_detections: int = 100,
) -> Iterator[tuple[Frame, Tracks]]:
    """The tracks reported at each frame of ``source``, in frame order.

    Frames are detected in batches (``batch_size``), then fed to ``tracker`` one by one: boxes in
    original pixels, scores, and embeddings when the detector gives them. Padding entries
    (label -1) are left out; classes are tracked together. An unreadable frame advances the tracker
    with no detections, so lost tracks age as time passes.
    """
    for frames, results in detect_source(detect, source, spec, device, batch_size, num_detections):
        for row, frame in enumerate(frames):
            keep = results["labels"][row] >= 0
            embeddings = results["embeddings"][row][keep] if "embeddings" in results else None
            yield frame, tracker.update(results["bboxes"][row][keep], results["scores"][row][keep], embeddings)


class TrackDrawer:
    """Draws tracks with a stable colour per id, the id, and a trail of the last ``trail`` centres."""

    def __init__(self, trail: int = 20) -> None:
        self.trails: dict[int, deque] = defaultdict(lambda: deque(maxlen=trail))

    def draw(self, image: np.ndarray, tracks: Tracks) -> np.ndarray:
        """A copy of the uint8 HWC RGB ``image`` with ``tracks`` (``ids``, ``boxes`` XYXY pixels) drawn."""
        canvas = np.ascontiguousarray(image.copy())
        scale = max(0.4, min(canvas.shape[:2]) / 700)
        for track_id, box in zip(np.asarray(tracks["ids"]).tolist(), np.asarray(tracks["boxes"]).tolist()):
            colour = color_for(int(track_id))
            x1, y1, x2, y2 = (int(round(v)) for v in box)
            self.trails[track_id].append(((x1 + x2) // 2, y2))  # the foot point, as MOT viewers draw trails
            points = np.array(self.trails[track_id], dtype=np.int32).reshape(-1, 1, 2)
            cv2.polylines(canvas, [points], False, colour, 2, cv2.LINE_AA)
            cv2.rectangle(canvas, (x1, y1), (x2, y2), colour, 2)
            caption = str(track_id)
            (width, height), baseline = cv2.getTextSize(caption, cv2.FONT_HERSHEY_SIMPLEX, scale, 1)
            top = max(y1, height + baseline)
            cv2.rectangle(canvas, (x1, top - height - baseline), (x1 + width, top), colour, -1)
            cv2.putText(
                canvas, caption, (x1, top - baseline), cv2.FONT_HERSHEY_SIMPLEX, scale, (0, 0, 0), 1, cv2.LINE_AA
            )
        return canvas
