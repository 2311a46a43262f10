"""KITTI tracking dataset (left colour camera, ``image_02`` and ``label_02``).

Layout::

    data_dir/{split}/image_02/{SEQ}/000000.png    frames, numbered from 0
    data_dir/{split}/label_02/{SEQ}.txt           one object per line (below)

A label line has 17 values separated by spaces (a results file adds an 18th, the score)::

    frame track_id type truncated occluded alpha x1 y1 x2 y2 h w l x y z rotation_y

``x1 y1 x2 y2`` is the 2D box in pixels of the image, counted from 0 (KITTI's devkit), taken as
XYXY unchanged, as TrackEval's ``Kitti2DBox`` reads it. ``type`` is one of :data:`KITTI_TYPES`;
``DontCare`` regions (track id -1) are ignore regions. The benchmark evaluates ``Car`` and
``Pedestrian`` (the default ``classes``); TrackEval treats ``Van`` as a distractor of ``Car`` and
``Person_sitting`` of ``Pedestrian`` (matched predictions are neither right nor wrong), so with
``ignore_distractors`` they are ignore regions too. Other types are dropped.

Identities: track ids are unique within a sequence across types; every sequence's target ids are
renumbered and offset to be unique across the sequences read (see
:mod:`~centernet_lightning.datasets.tracking`). Frames have no size in the labels, so each is read
at its own size (KITTI's sequences differ by a few pixels) and boxes are clipped to it.

Bad input: a malformed line, an unknown type, a frame with no image, a target with track id -1
(KITTI's id of DontCare regions), or one identity twice in a frame is an error naming the file
and line. A sequence without a label file (the testing split)
has no objects, with a warning.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from centernet_lightning.datasets.common import DetectionDataset, SampleTransform
from centernet_lightning.datasets.tracking import (
    FrameRecord,
    SequenceInfo,
    build_frame_records,
    check_unique_identities,
    report_unannotated,
)
from centernet_lightning.image_io import IMAGE_EXTENSIONS

__all__ = ["KITTI_DISTRACTORS", "KITTI_TYPES", "KITTITrackingDataset", "read_kitti_labels"]

logger = logging.getLogger(__name__)

KITTI_TYPES = ("Car", "Van", "Truck", "Pedestrian", "Person_sitting", "Cyclist", "Tram", "Misc", "DontCare")
# The type whose matches TrackEval removes when evaluating a class (Kitti2DBox's distractor classes).
KITTI_DISTRACTORS = {"Car": "Van", "Pedestrian": "Person_sitting"}
LABEL_COLUMNS = "frame track_id type truncated occluded alpha x1 y1 x2 y2 h w l x y z rotation_y"
_DONT_CARE = KITTI_TYPES.index("DontCare")


def _first_bad_line(path: Path, text: str) -> ValueError:
    """The error for the first line that is not 17 (or 18) values with numbers where numbers belong."""
    for number, line in enumerate(text.splitlines(), start=1):
        values = line.split()
        if not values:
            continue
        if len(values) not in (17, 18):
            return ValueError(
                f"{path}, line {number}: expected 17 values '{LABEL_COLUMNS}', got {len(values)}: {line!r}"
            )
        try:
            [float(value) for i, value in enumerate(values) if i != 2]
        except ValueError:
            return ValueError(f"{path}, line {number}: non-numeric value in {line!r}")
    return ValueError(f"{path}: lines must all have 17 (or all 18) values '{LABEL_COLUMNS}'")


def _numbered_frames(folder: Path) -> tuple[list[Path], np.ndarray]:
    """The image files of a sequence folder sorted by number, and their numbers (int64 [F])."""
    frame_paths = [p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS]
    not_numbered = [p.name for p in frame_paths if not p.stem.isdigit()]
    if not_numbered:
        raise ValueError(f"{folder}: frame files must be numbered (000000.png ...), got {sorted(not_numbered)[:3]}")
    frame_paths.sort(key=lambda p: int(p.stem))
    frame_ids = np.array([int(p.stem) for p in frame_paths], dtype=np.int64)
    if len(np.unique(frame_ids)) < len(frame_ids):
        raise ValueError(f"{folder}: two frame files have the same number")
    return frame_paths, frame_ids


def read_kitti_labels(path: Path | None, frame_ids: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """Read and check one KITTI tracking label file.

    Args:
        path: ``label_02/{SEQ}.txt``, or None for a sequence without labels (no rows).
        frame_ids: int [F] the frame numbers that have an image, or None to skip that check.

    Returns:
        A dict of [R] arrays in file order: ``frame`` int64, ``track_id`` int64, ``type`` int64
        (index into :data:`KITTI_TYPES`), ``truncated`` float32, ``occluded`` int64, ``boxes``
        float32 [R, 4] XYXY pixels and ``line`` int64 (the line number). An empty file gives R = 0.

    Raises:
        ValueError naming the file and line for a wrong number of values, non-numbers, an unknown
        type, a non-integer frame, track id or occlusion, a non-finite or inverted box, or a frame
        with no image.
    """
    text = path.read_text(encoding="utf-8") if path is not None else ""
    lines = [(number, line) for number, line in enumerate(text.splitlines(), start=1) if line.strip()]
    if not lines:
        empty = np.zeros(0, dtype=np.int64)
        return {"frame": empty, "track_id": empty, "type": empty, "truncated": np.zeros(0, np.float32),
                "occluded": empty, "boxes": np.zeros((0, 4), dtype=np.float32), "line": empty}  # fmt: skip
    try:
        table = np.array([line.split() for _, line in lines], dtype=str)
        numbers = np.delete(table, 2, axis=1).astype(np.float64)  # every column but the type
    except ValueError:
        raise _first_bad_line(path, text) from None
    if table.ndim != 2 or table.shape[1] not in (17, 18):
        raise _first_bad_line(path, text)
    types = table[:, 2]
    type_index = np.array([KITTI_TYPES.index(t) if t in KITTI_TYPES else -1 for t in np.unique(types)])
    type_of_row = type_index[np.unique(types, return_inverse=True)[1].reshape(-1)]
    frames, track_ids, occluded = numbers[:, 0], numbers[:, 1], numbers[:, 3]
    boxes = numbers[:, 5:9]
    integral = np.stack([frames, track_ids, occluded], axis=1)
    checks = [
        (type_of_row < 0, f"unknown type (KITTI types are {', '.join(KITTI_TYPES)})"),
        (~np.isfinite(numbers).all(axis=1), "non-finite value"),
        ((integral != np.round(integral)).any(axis=1), "frame, track_id and occluded must be integers"),
        ((boxes[:, 2] < boxes[:, 0]) | (boxes[:, 3] < boxes[:, 1]), "box with x2 < x1 or y2 < y1"),
    ]
    if frame_ids is not None:
        checks.append((~np.isin(frames, frame_ids), "frame has no image in the sequence's folder"))
    for bad, reason in checks:
        if bad.any():
            number, line = lines[int(np.flatnonzero(bad)[0])]
            raise ValueError(f"{path}, line {number}: {reason}: {line!r}")
    return {
        "frame": frames.astype(np.int64),
        "track_id": track_ids.astype(np.int64),
        "type": type_of_row.astype(np.int64),
        "truncated": numbers[:, 2].astype(np.float32),
        "occluded": occluded.astype(np.int64),
        "boxes": boxes.astype(np.float32),
        "line": np.array([number for number, _ in lines], dtype=np.int64),
    }


def _refuse_unidentified_targets(path: Path, rows: dict[str, np.ndarray], is_target: np.ndarray) -> None:
    """ValueError naming the file and line of a target with a negative track id: KITTI gives -1 to
    DontCare regions only, and as a target's id it would become one real identity."""
    bad = is_target & (rows["track_id"] < 0)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        kind, track_id = KITTI_TYPES[rows["type"][row]], rows["track_id"][row]
        raise ValueError(
            f"{path}, line {rows['line'][row]}: a {kind} with track id {track_id}; "
            "KITTI gives -1 only to DontCare regions, so this target has no identity to learn"
        )


class KITTITrackingDataset(DetectionDataset):
    """Frames of KITTI tracking sequences with identities (see the module docstring).

    One record (a :class:`~centernet_lightning.datasets.tracking.FrameRecord`, ``frame_id`` the
    0-based KITTI frame number) per image, in sorted sequence order then frame order; ``image_id``
    is the running index. ``sequences`` maps names to
    :class:`~centernet_lightning.datasets.tracking.SequenceInfo`; ``num_identities`` counts the
    identities of all sequences read.

    Args:
        data_dir: KITTI tracking root, holding ``{split}/image_02`` and ``{split}/label_02``.
        split: ``"training"`` or ``"testing"``.
        classes: KITTI types that are targets, in label order (default: the benchmark's Car and
            Pedestrian; add ``"Cyclist"`` etc. for more).
        transforms: callable ``sample -> sample`` or None.
        sequences: names of the sequences to read (e.g. ``["0000", "0001"]``; default: all).
        ignore_distractors: keep DontCare regions and the distractor types of the classes
            (Van for Car, Person_sitting for Pedestrian) as ignore regions (else drop them).
        skip_bad_images: drop/skip missing or unreadable frames instead of raising (see common.py).
    """

    def __init__(
        self,
        data_dir: str | Path,
        split: str = "training",
        classes: Sequence[str] = ("Car", "Pedestrian"),
        transforms: SampleTransform | None = None,
        sequences: Sequence[str] | None = None,
        ignore_distractors: bool = True,
        skip_bad_images: bool = False,
    ) -> None:
        self.classes = [str(c) for c in classes]
        valid = [t for t in KITTI_TYPES if t != "DontCare"]
        if not self.classes or any(c not in valid for c in self.classes) or len(set(self.classes)) < len(classes):
            raise ValueError(f"classes must be distinct KITTI types among {valid}, got {list(classes)}")
        self.ignore_distractors = ignore_distractors
        ignored_types = ["DontCare"] + [KITTI_DISTRACTORS[c] for c in self.classes if c in KITTI_DISTRACTORS]
        target_types = [KITTI_TYPES.index(c) for c in self.classes]
        ignore_types = [KITTI_TYPES.index(t) for t in ignored_types if t not in self.classes]

        split_dir = Path(data_dir) / split
        image_root, label_root = split_dir / "image_02", split_dir / "label_02"
        if not image_root.is_dir():
            raise FileNotFoundError(
                f"KITTI tracking images not found: {image_root}. Expected data_dir/{split}/image_02/<SEQ>/000000.png "
                f"with labels in data_dir/{split}/label_02/<SEQ>.txt (data_dir={data_dir})."
            )
        folders = sorted(p for p in image_root.iterdir() if p.is_dir())
        if sequences is not None:
            missing = [name for name in sequences if not (image_root / name).is_dir()]
            if missing:
                raise ValueError(f"{image_root}: no sequences {missing}; available: {[p.name for p in folders]}")
            folders = sorted(image_root / name for name in set(sequences))
        if not folders:
            raise ValueError(f"{image_root}: no sequence folders")

        label_of_type = np.zeros(len(KITTI_TYPES), dtype=np.int64)  # ignore regions of other types: 0
        label_of_type[target_types] = np.arange(len(target_types))
        self.sequences: dict[str, SequenceInfo] = {}
        records: list[FrameRecord] = []
        without_labels = []
        for folder in folders:
            frame_paths, frame_ids = _numbered_frames(folder)
            label_path = label_root / f"{folder.name}.txt"
            if label_path.is_file():
                rows = read_kitti_labels(label_path, frame_ids)
            else:
                without_labels.append(folder.name)
                rows = read_kitti_labels(None)
            is_target = np.isin(rows["type"], target_types)
            is_ignore = np.isin(rows["type"], ignore_types) & ignore_distractors
            _refuse_unidentified_targets(label_path, rows, is_target)
            target_lines = rows["line"][is_target]
            check_unique_identities(
                label_path, rows["frame"][is_target], rows["track_id"][is_target], target_lines.__getitem__
            )
            info = SequenceInfo(folder.name, len(frame_ids))
            info.first_identity = sum(s.num_identities for s in self.sequences.values())
            records += build_frame_records(
                info, frame_paths, frame_ids, len(records), rows["frame"], rows["boxes"], label_of_type[rows["type"]],
                rows["track_id"], is_target, is_ignore,
            )  # fmt: skip
            self.sequences[info.name] = info
        report_unannotated(label_root, without_labels, len(folders), "label file")
        self.num_identities = sum(s.num_identities for s in self.sequences.values())
        super().__init__(
            records, self.classes, transforms=transforms, skip_bad_images=skip_bad_images, source=f"KITTI {split_dir}"
        )
