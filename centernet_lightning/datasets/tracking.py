"""What the tracking readers share: frame records, sequence information and identities.

A tracking dataset is a :class:`~centernet_lightning.datasets.common.DetectionDataset` whose
records are :class:`FrameRecord` (an :class:`ImageRecord` that knows its sequence and frame) and
whose objects carry ``track_ids``: int64 identities, unique across every sequence the dataset
reads, contiguous in ``[0, num_identities)``, and -1 for objects without an identity (ignore
regions). ``num_identities`` is the size of the re-ID classifier (FairMOT's ``nID``).

Identities are made unique the way FairMOT's label scripts do it: the raw ids of each sequence
are renumbered contiguously and shifted by the count of the sequences before it. Here sequences
are taken in sorted name order and raw ids in increasing order, so the mapping depends only on
which sequences (and filters) are read, never on file order. :func:`assign_track_ids` does it.

:func:`with_box_identities` turns any detection dataset into one a tracker can train on: every
box is an identity of its own (FairMOT pre-trains the re-ID head on CrowdHuman this way).
"""

from __future__ import annotations

import copy
import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from centernet_lightning.datasets.common import DetectionDataset, ImageRecord

__all__ = [
    "FrameRecord",
    "SequenceInfo",
    "assign_track_ids",
    "build_frame_records",
    "check_unique_identities",
    "frames_by_sequence",
    "report_unannotated",
    "with_box_identities",
]

logger = logging.getLogger(__name__)


@dataclass
class FrameRecord(ImageRecord):
    """One frame of a sequence: an :class:`ImageRecord` with its place in the sequence.

    ``sequence`` is the sequence name (its folder); ``frame_index`` the 0-based position of the
    frame in its sequence; ``frame_id`` the frame number as the annotation format writes it
    (1-based in MOTChallenge, 0-based in KITTI), which is what a results file must write back.
    """

    sequence: str = ""
    frame_index: int = 0
    frame_id: int = 0


@dataclass
class SequenceInfo:
    """What a tracking reader knows about one sequence.

    ``size`` is ``(height, width)`` in pixels, or None when every frame is read at its own size.
    ``first_identity`` is the offset added to the sequence's contiguous ids: its identities are
    ``first_identity .. first_identity + num_identities - 1``. ``raw_ids`` int64
    [num_identities] are the annotation's ids in that order (``raw_ids[k]`` became
    ``first_identity + k``).
    """

    name: str
    num_frames: int
    frame_rate: float | None = None
    size: tuple[int, int] | None = None
    first_identity: int = 0
    num_identities: int = 0
    raw_ids: np.ndarray = dataclasses.field(default_factory=lambda: np.zeros(0, dtype=np.int64))


def assign_track_ids(raw_ids: np.ndarray, first_identity: int) -> tuple[np.ndarray, np.ndarray]:
    """Renumber one sequence's raw ids to ``first_identity + k``, ``k`` the rank among its ids.

    Args:
        raw_ids: int [N] identities as the annotation writes them (any integers).
        first_identity: the count of identities of the sequences read before this one.

    Returns:
        ``(track_ids, unique_raw_ids)``: int64 [N] global identities and int64 [K] the sorted
        distinct raw ids (K identities, ``unique_raw_ids[k]`` -> ``first_identity + k``).
    """
    unique_raw_ids, local = np.unique(np.asarray(raw_ids, dtype=np.int64), return_inverse=True)
    return (local.reshape(-1) + first_identity).astype(np.int64), unique_raw_ids


def check_unique_identities(
    path: Path, frames: np.ndarray, raw_ids: np.ndarray, line_of: Callable[[np.ndarray], np.ndarray]
) -> None:
    """ValueError naming ``path`` and both lines when an identity appears twice in one frame.

    ``frames``, ``raw_ids``: int [R] of the rows that carry identities; ``line_of`` maps row
    indices to the file's line numbers (called only to word the error).
    """
    frames, raw_ids = np.asarray(frames, dtype=np.int64), np.asarray(raw_ids, dtype=np.int64)
    if len(frames) < 2:
        return
    # One int64 key per (frame, id) pair: a 1-D unique is several times faster than unique(axis=0).
    span = int(raw_ids.max() - raw_ids.min()) + 1
    keys = (frames - frames.min()) * span + (raw_ids - raw_ids.min())
    _, first, counts = np.unique(keys, return_index=True, return_counts=True)
    if (counts > 1).any():
        row = first[np.flatnonzero(counts > 1)[0]]
        twice = np.flatnonzero(keys == keys[row])[:2]
        lines = line_of(twice)
        raise ValueError(
            f"{path}, lines {lines[0]} and {lines[1]}: identity {raw_ids[row]} appears twice in frame {frames[row]}"
        )


def build_frame_records(
    info: SequenceInfo,
    frame_paths: list[Path],
    frame_ids: np.ndarray,
    first_image_id: int,
    row_frames: np.ndarray,
    boxes: np.ndarray,
    labels: np.ndarray,
    raw_ids: np.ndarray,
    is_target: np.ndarray,
    is_ignore: np.ndarray,
) -> list[FrameRecord]:
    """One :class:`FrameRecord` per frame of a sequence from its annotation rows, vectorised.

    Args:
        info: the sequence; its ``first_identity`` must be set. Its ``raw_ids`` and
            ``num_identities`` are filled here.
        frame_paths: [F] image files; ``frame_ids`` int [F] their frame numbers, increasing.
        first_image_id: ``image_id`` of the first frame (the next frames count up).
        row_frames: int [R] frame number of each row (one of ``frame_ids``).
        boxes: float [R, 4] XYXY pixels; ``labels`` int64 [R]; ``raw_ids`` int [R] the
            annotation's identities.
        is_target, is_ignore: bool [R]; targets get identities, ignore regions track id -1, rows
            that are neither are left out.

    Every record holds ``ignore`` and ``track_ids`` (also when it has no objects); objects keep
    file order within a frame.
    """
    track_ids = np.full(len(row_frames), -1, dtype=np.int64)
    track_ids[is_target], info.raw_ids = assign_track_ids(raw_ids[is_target], info.first_identity)
    info.num_identities = len(info.raw_ids)
    kept = np.flatnonzero(is_target | is_ignore)
    positions = np.searchsorted(frame_ids, row_frames[kept])
    order = np.argsort(positions, kind="stable")  # grouped by frame, file order within a frame
    kept = kept[order]
    bounds = np.concatenate(([0], np.cumsum(np.bincount(positions, minlength=len(frame_ids)))))
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    is_ignore = np.asarray(is_ignore, dtype=bool)
    records = []
    for position, (path, frame_id) in enumerate(zip(frame_paths, frame_ids, strict=True)):
        objects = kept[bounds[position] : bounds[position + 1]]
        records.append(
            FrameRecord(
                path=path,
                image_id=first_image_id + position,
                bboxes=boxes[objects],
                labels=labels[objects].astype(np.int64),
                fields={"ignore": is_ignore[objects], "track_ids": track_ids[objects]},
                size=info.size,
                sequence=info.name,
                frame_index=position,
                frame_id=int(frame_id),
            )
        )
    return records


def report_unannotated(folder: Path, names: list[str], total: int, missing: str) -> None:
    """One warning naming the sequences of ``folder`` without annotations (``missing`` says which
    file), whose frames then have no objects; nothing when every sequence has them."""
    if names:
        logger.warning(
            "%s: %d of %d sequences have no %s, so their frames have no objects (a test split?): %s",
            folder,
            len(names),
            total,
            missing,
            ", ".join(names[:5]) + (" ..." if len(names) > 5 else ""),
        )


def frames_by_sequence(records: list[ImageRecord]) -> dict[str, list[int]]:
    """Dataset indices of every sequence's frames in frame order, sequences in reading order.

    A tracking evaluation runs the tracker over each list in turn. Records that are not
    :class:`FrameRecord` (a detection dataset) form one sequence named ``""`` in index order.
    """
    grouped: dict[str, list[tuple[int, int]]] = {}
    for index, record in enumerate(records):
        name, position = (record.sequence, record.frame_index) if isinstance(record, FrameRecord) else ("", index)
        grouped.setdefault(name, []).append((position, index))
    return {name: [index for _, index in sorted(frames)] for name, frames in grouped.items()}


def with_box_identities(dataset: DetectionDataset, first_identity: int = 0) -> DetectionDataset:
    """A copy of ``dataset`` in which every box is an identity of its own.

    Objects flagged ``ignore`` get track id -1; every other box gets the next id, in record order
    then box order, starting at ``first_identity``. Any existing ``track_ids`` are replaced.
    The copy is shallow (images, transforms and class names are shared) with new records, so the
    original dataset is unchanged; it gains ``num_identities``, the count of ids handed out
    (``first_identity`` plus the boxes), so the re-ID classifier can be sized from it.

    Boxes the reader dropped at construction (degenerate) get no id; boxes that only become
    degenerate when the image is loaded (readers without image sizes) keep theirs unused.
    """
    records = []
    next_id = first_identity
    for record in dataset.records:
        ignore = record.fields.get("ignore", np.zeros(len(record.labels), dtype=bool))
        track_ids = np.full(len(record.labels), -1, dtype=np.int64)
        track_ids[~ignore] = np.arange(next_id, next_id + int((~ignore).sum()), dtype=np.int64)
        next_id += int((~ignore).sum())
        records.append(dataclasses.replace(record, fields={**record.fields, "track_ids": track_ids}))
    tracked = copy.copy(dataset)
    tracked.records = records
    tracked.num_identities = next_id
    return tracked
