"""One frame's detections as a tracker takes them: checked, converted to numpy, errors naming the frame."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np
import torch

__all__ = ["FrameDetections", "check_frame_detections", "normalize_rows"]


class FrameDetections(NamedTuple):
    """N detections of one frame: ``boxes`` float64 [N, 4] XYXY pixels, ``scores`` float64 [N],
    ``embeddings`` float64 [N, D] unit rows or None, ``classes`` int64 [N] (0 when none were given)."""

    boxes: np.ndarray
    scores: np.ndarray
    embeddings: np.ndarray | None
    classes: np.ndarray


def check_frame_detections(
    frame: int, boxes: object, scores: object, embeddings: object, classes: object, embedding_dim: int | None
) -> FrameDetections:
    """Validate and convert one frame's inputs.

    Args:
        frame: the frame number (from 1), for the messages.
        boxes, scores, embeddings, classes: as :meth:`~centernet_lightning.tracking.Tracker.update` takes them.
        embedding_dim: the sequence's embedding size so far: None before the first frame with
            detections, 0 for a sequence without embeddings.

    Raises:
        ValueError: wrong shapes, mismatched lengths, non-finite values, scores outside [0, 1],
            non-integer classes, or
            embeddings that appear, disappear or change size within a sequence.
    """
    boxes = _to_numpy(boxes, "boxes")
    scores = _to_numpy(scores, "scores")
    if boxes.shape == (0,):  # an empty list
        boxes = boxes.reshape(0, 4)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"Tracker frame {frame}: boxes must have shape [N, 4] (XYXY), got {list(boxes.shape)}")
    count = len(boxes)
    if scores.ndim != 1 or len(scores) != count:
        raise ValueError(
            f"Tracker frame {frame}: scores must have shape [{count}] like boxes, got {list(scores.shape)}"
        )
    _check_finite(boxes, "boxes", frame)
    _check_finite(scores, "scores", frame)
    outside = np.flatnonzero((scores < 0) | (scores > 1))
    if len(outside):  # thresholds, fuse_score and NSA read scores as probabilities
        row = int(outside[0])
        raise ValueError(f"Tracker frame {frame}: scores[{row}] is {scores[row]:g}, not a probability in [0, 1]")
    if classes is None:
        class_ids = np.zeros(count, dtype=np.int64)
    else:
        values = _to_numpy(classes, "classes").reshape(-1)
        if len(values) != count:
            raise ValueError(f"Tracker frame {frame}: classes must have shape [{count}] like boxes, got {len(values)}")
        _check_finite(values[:, None], "classes", frame)
        if (values != np.round(values)).any():
            raise ValueError(f"Tracker frame {frame}: classes must be whole numbers, got {values[:5].tolist()}")
        class_ids = values.astype(np.int64)
    if embeddings is not None:
        embeddings = _to_numpy(embeddings, "embeddings")
        if embeddings.ndim != 2 or len(embeddings) != count or embeddings.shape[1] == 0:
            raise ValueError(
                f"Tracker frame {frame}: embeddings must have shape [{count}, D] with D >= 1 like boxes, "
                f"got {list(embeddings.shape)}"
            )
        _check_finite(embeddings, "embeddings", frame)
        embeddings = normalize_rows(embeddings)
    elif count == 0 and embedding_dim:
        embeddings = np.empty((0, embedding_dim))  # an empty frame of an embedding sequence
    dimension = 0 if embeddings is None else embeddings.shape[1]
    if (count or dimension) and embedding_dim is not None and dimension != embedding_dim:
        started = f"{embedding_dim}-d embeddings" if embedding_dim else "no embeddings"
        given = f"{dimension}-d embeddings" if dimension else "embeddings=None"
        raise ValueError(
            f"Tracker frame {frame}: got {given} but this sequence started with {started}; pass the same "
            "kind on every frame, or call reset() to start a new sequence"
        )
    return FrameDetections(boxes, scores, embeddings, class_ids)


def normalize_rows(vectors: np.ndarray) -> np.ndarray:
    """Rows scaled to unit L2 norm (zero rows stay zero, as ``F.normalize``)."""
    return vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)


def _to_numpy(value: object, name: str) -> np.ndarray:
    """A float64 numpy copy of an array-like or tensor (any device)."""
    if isinstance(value, torch.Tensor):
        value = value.detach().cpu().double().numpy()
    try:
        return np.array(value, dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"Tracker: {name} must be a numeric array or tensor, got {type(value).__name__}") from error


def _check_finite(values: np.ndarray, name: str, frame: int) -> None:
    bad = ~np.isfinite(values)
    if bad.any():
        row = int(np.flatnonzero(bad.reshape(len(values), -1).any(axis=1))[0])
        raise ValueError(f"Tracker frame {frame}: {name}[{row}] is not finite: {values[row].tolist()}")
