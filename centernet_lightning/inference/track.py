"""Tracking a video or a frame folder: batched detection by a predictor, then the tracker frame by frame.

:func:`track_source` is what ``centernet track``, ``FairMOT.inference_tracking2d`` and the tracking
demo run. A model with a re-ID head gives the tracker embeddings (FairMOT); a detection-only one
tracks by motion and IoU (ByteTrack).
"""

from __future__ import annotations

from collections.abc import Iterator

from ..datasets.mot_io import read_seqinfo, seqinfo_number
from ..structures import is_detection
from ..tracking import Tracker, Tracks
from .predictor import Predictor
from .sources import Frame, ImageSource

__all__ = ["track_source", "source_frame_rate"]


def source_frame_rate(source: ImageSource, default: float = 30.0) -> float:
    """The rate of the frames ``source`` yields: the video's (``source.fps``), or for a frame folder
    the ``frameRate`` of a ``seqinfo.ini`` beside it or one level up (the MOTChallenge layout
    ``SEQ/img1/``), else ``default``; a folder's divided by the source's ``vid_stride``."""
    if source.fps:
        return float(source.fps)
    if source.paths:
        folder = source.paths[0].parent
        for candidate in (folder / "seqinfo.ini", folder.parent / "seqinfo.ini"):
            rate = seqinfo_number(read_seqinfo(candidate), "framerate", candidate, float)
            if rate:
                return float(rate) / source.vid_stride
    return default / source.vid_stride


def track_source(
    predictor: Predictor, source: ImageSource, tracker: Tracker | None = None, batch_size: int = 8
) -> Iterator[tuple[Frame, Tracks]]:
    """The tracks reported at each frame of ``source``, in frame order.

    Frames are detected in batches of ``batch_size``, then fed to ``tracker`` (None: the
    predictor's :meth:`~centernet_lightning.inference.Predictor.build_tracker` at the source's frame
    rate) one by one: boxes in original pixels, scores, and embeddings when the model gives them.
    A keypoint model's tracks carry the joints of their detections (``keypoints`` [M, J, 3]).
    Padding is left out; each class is tracked on its own (the tracker's ``class_aware``), and
    the frame itself goes along for the tracker's ``camera_motion``. An unreadable frame advances
    the tracker with no detections, so lost tracks age as time passes.
    """
    tracker = predictor.build_tracker(frame_rate=source_frame_rate(source)) if tracker is None else tracker
    for frames, results in predictor.predict_source(source, batch_size):
        for row, frame in enumerate(frames):
            keep = is_detection(results["labels"][row])
            embeddings = results["embeddings"][row][keep] if "embeddings" in results else None
            classes = results["labels"][row][keep]
            boxes, scores = results["bboxes"][row][keep], results["scores"][row][keep]
            tracks = tracker.update(boxes, scores, embeddings, classes=classes, image=frame.image)
            if "keypoints" in results:  # a keypoint model: each track carries its detection's joints
                tracks["keypoints"] = results["keypoints"][row][keep][tracks["detection_indices"]]
            yield frame, tracks
