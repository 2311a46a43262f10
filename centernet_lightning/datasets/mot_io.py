"""Reading and writing MOTChallenge files: ground-truth and results txt files, and ``seqinfo.ini``.

File conventions (MOTChallenge's instructions: "All frame numbers, target IDs and bounding boxes
are 1-based"): frames count from 1, and the top-left image pixel is (1, 1). Inside the library
boxes are XYXY in 0-based continuous pixels, so ``bb_left = x1 + 1``, ``bb_top = y1 + 1``,
``bb_width = x2 - x1``, ``bb_height = y2 - y1``, converted exactly once, here (as VOC's 1-based
boxes are in ``datasets/voc.py``). The metrics (:mod:`centernet_lightning.eval.mot`) do not depend
on this shift as long as ground truth and predictions pass through the same convention.
"""

from __future__ import annotations

import configparser
import io
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..atomic_files import write_text_atomically
from ..structures import to_numpy

__all__ = [
    "MOTRows",
    "SEQINFO_KEYS",
    "read_mot_txt",
    "write_mot_txt",
    "read_seqinfo",
    "seqinfo_number",
    "checked_boxes",
    "check_gt_identities",
]

# seqinfo.ini keys as configparser gives them (lower case) -> as MOTChallenge writes them
SEQINFO_KEYS = {
    "imdir": "imDir", "framerate": "frameRate", "seqlength": "seqLength", "imwidth": "imWidth",
    "imheight": "imHeight", "imext": "imExt",
}  # fmt: skip


@dataclass(frozen=True)
class MOTRows:
    """The rows of one MOTChallenge txt file, in file order.

    Attributes:
        frames: int64 [N], frame numbers counted from 1.
        ids: int64 [N], track ids (-1 in detection files).
        boxes: float64 [N, 4], XYXY in 0-based continuous pixels (``x1 = bb_left - 1``).
        scores: float64 [N], column 7: the confidence of results, the evaluate flag of ground
            truth (0 = ignore); 1.0 where the file has only 6 columns.
        extra: float64 [N, E], columns 8 onward as written: ``class, visibility`` in MOT16/17/20
            ground truth; world ``x, y, z`` (usually -1) in 2D MOT 2015 files and results.
        lines: int64 [N], the 1-based line of each row in the file (blank lines hold no row),
            for error messages.
    """

    frames: np.ndarray
    ids: np.ndarray
    boxes: np.ndarray
    scores: np.ndarray
    extra: np.ndarray
    lines: np.ndarray

    def __len__(self) -> int:
        return len(self.frames)

    @classmethod
    def empty(cls, extra_columns: int = 0) -> MOTRows:
        """No rows (an empty file)."""
        none = np.empty(0, np.int64)
        return cls(none, none, np.empty((0, 4)), np.empty(0), np.empty((0, extra_columns)), none)


def _parse_lines(path: Path, lines: list[str], delimiter: str | None) -> np.ndarray:
    """Row-by-row parse: slower than ``np.loadtxt`` but names the bad line, and drops a trailing
    delimiter (``1,2,...,-1,``) as TrackEval's reader does."""
    rows: list[list[float]] = []
    width, width_line = 0, 0
    for number, line in enumerate(lines, 1):
        text = line.strip()
        if not text:
            continue
        fields = [field.strip() for field in text.split(delimiter)]
        if delimiter is not None and fields[-1] == "":
            fields.pop()
        if len(fields) < 6:
            raise ValueError(
                f"{path}, line {number}: {len(fields)} values; a MOTChallenge row starts with frame, id, "
                f"bb_left, bb_top, bb_width, bb_height: {text!r}"
            )
        if not rows:
            width, width_line = len(fields), number
        elif len(fields) != width:
            raise ValueError(
                f"{path}, line {number}: {len(fields)} values, but line {width_line} has {width}: {text!r}"
            )
        try:
            rows.append([float(field) for field in fields])
        except ValueError:
            column = next(k for k, field in enumerate(fields, 1) if not _is_number(field))
            raise ValueError(
                f"{path}, line {number}: column {column} is not a number: {fields[column - 1]!r}"
            ) from None
    return np.asarray(rows, dtype=np.float64).reshape(len(rows), width)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def read_mot_txt(path: str | os.PathLike) -> MOTRows:
    """Read a MOTChallenge ground-truth, results or detection txt file.

    Rows are ``frame, id, bb_left, bb_top, bb_width, bb_height[, conf[, ...]]``: ground truth
    ``frame, id, x, y, w, h, flag, class, visibility`` (MOT16/17/20) or ``..., flag, -1, -1, -1``
    (2D MOT 2015), results ``frame, id, x, y, w, h, conf, -1, -1, -1``. Commas (spaces around
    them allowed) or whitespace separate values; blank lines are skipped. Boxes come back XYXY
    in 0-based pixels (see the module docstring).

    Raises:
        ValueError: naming the file and line, for a row with fewer than 6 values, a different
            number of values than the first row, a value that is not a number, a frame that is
            not a whole number >= 1, an id that is not a whole number, or a box value that is
            not finite.
    """
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a text file (MOTChallenge txt expected)") from None
    lines = text.splitlines()
    first = next((line for line in lines if line.strip()), None)
    if first is None:
        return MOTRows.empty()
    delimiter = "," if "," in first else None
    try:
        # comments=None: a header or "#" line is an error to report, not a row to skip silently.
        table = np.loadtxt(io.StringIO(text), delimiter=delimiter, ndmin=2, dtype=np.float64, comments=None)
    except ValueError:  # a bad line, or a trailing delimiter: the slow path names it or accepts it
        table = _parse_lines(path, lines, delimiter)
    if table.shape[1] < 6:
        _parse_lines(path, lines, delimiter)  # raises, naming the first short line

    line_numbers = np.array([number for number, line in enumerate(lines, 1) if line.strip()], dtype=np.int64)

    def fail(rows: np.ndarray, message: str) -> None:
        row = int(np.flatnonzero(rows)[0])
        raise ValueError(f"{path}, line {line_numbers[row]}: {message.format(value=table[row])}")

    frames, ids = table[:, 0], table[:, 1]
    if not np.isfinite(table[:, :6]).all():
        fail(~np.isfinite(table[:, :6]).all(axis=1), "frame, id and box must be finite numbers: {value}")
    if (frames != np.round(frames)).any() or (frames < 1).any():
        bad = (frames != np.round(frames)) | (frames < 1)
        fail(bad, "the frame (column 1) must be a whole number >= 1 (MOTChallenge counts frames from 1): {value}")
    if (ids != np.round(ids)).any():
        fail(ids != np.round(ids), "the id (column 2) must be a whole number: {value}")
    left_top = table[:, 2:4] - 1.0  # 1-based pixel numbers -> 0-based continuous coordinates
    boxes = np.concatenate([left_top, left_top + table[:, 4:6]], axis=1)
    scores = table[:, 6].copy() if table.shape[1] > 6 else np.ones(len(table))
    extra = table[:, 7:].copy()
    return MOTRows(frames.astype(np.int64), ids.astype(np.int64), boxes, scores, extra, line_numbers)


def check_gt_identities(rows: MOTRows, path: str | os.PathLike) -> None:
    """ValueError naming the file and line of the first ground-truth row with a negative id.

    MOTChallenge ground-truth ids are positive; -1 is the id column of detection files (``det.txt``:
    untracked detections), which read as ground truth would make every detection one identity.
    """
    negative = rows.ids < 0
    if negative.any():
        row = int(np.flatnonzero(negative)[0])
        raise ValueError(
            f"{path}, line {rows.lines[row]}: id {rows.ids[row]} (column 2) in ground truth; -1 marks the untracked "
            f"rows of detection files (det.txt), not an identity ({int(negative.sum())} such rows)"
        )


def checked_boxes(values: Any, name: str) -> np.ndarray:
    """float64 [N, 4] from a tensor or array-like ([0] and [0, 4] both mean no box)."""
    boxes = to_numpy(values, np.float64)
    if boxes.size == 0:
        return boxes.reshape(0, 4)
    if boxes.ndim != 2 or boxes.shape[1] != 4:
        raise ValueError(f"{name} must be [N, 4] XYXY pixels, got shape {list(boxes.shape)}")
    if not np.isfinite(boxes).all():
        raise ValueError(f"{name} hold non-finite values at rows {np.flatnonzero(~np.isfinite(boxes).all(1))[:5]}")
    return boxes


def write_mot_txt(
    path: str | os.PathLike,
    frames: Any,
    ids: Any,
    boxes: Any,
    scores: Any = None,
    *,
    classes: Any = None,
    overwrite: bool = False,
) -> Path:
    """Write tracks as a MOTChallenge results file; returns its path.

    Args:
        path: the file to create (parent folders are created).
        frames: int [N], frame numbers counted from 1.
        ids: int [N], track ids.
        boxes: float [N, 4], XYXY in 0-based pixels of the original image; written as 1-based
            ``bb_left, bb_top, bb_width, bb_height`` with 3 decimals.
        scores: float [N] confidences, or None to write 1 (as FairMOT does).
        classes: int [N] class indices written in the 8th column (as multi-class trackers such as
            boxmot do), or None to write -1 there.
        overwrite: replace an existing file; otherwise an existing file raises FileExistsError.

    Rows are ``frame, id, bb_left, bb_top, bb_width, bb_height, conf, class, -1, -1`` (the 10 values
    the benchmark requires), sorted by frame then id. The file appears complete or not at all:
    it is written to a temporary file in the same folder, then renamed.
    """
    path = Path(path)
    frames = to_numpy(frames, np.float64).reshape(-1)
    ids = to_numpy(ids, np.float64).reshape(-1)
    boxes = checked_boxes(boxes, "boxes")
    count = len(frames)
    scores = np.ones(count) if scores is None else to_numpy(scores, np.float64).reshape(-1)
    if boxes.shape != (count, 4) or ids.shape != (count,) or scores.shape != (count,):
        raise ValueError(
            f"frames [{count}], ids {list(ids.shape)}, boxes {list(boxes.shape)} and scores {list(scores.shape)} "
            f"must be [N], [N], [N, 4] and [N] with N = {count}"
        )
    if count and ((frames < 1).any() or (frames != np.round(frames)).any()):
        raise ValueError(f"frames must be whole numbers >= 1 (MOTChallenge counts from 1), got {np.unique(frames)[:5]}")
    if (ids != np.round(ids)).any():
        raise ValueError("ids must be whole numbers")
    if not overwrite and path.exists():
        raise FileExistsError(f"{path} exists; pass overwrite=True to replace it (nothing was written)")
    class_column = np.full(count, -1.0) if classes is None else to_numpy(classes, np.float64).reshape(-1)
    if class_column.shape != (count,):
        raise ValueError(f"classes {list(class_column.shape)} must be [N] with N = {count}")
    order = np.lexsort((ids, frames))
    columns = [frames, ids, boxes[:, :2] + 1.0, boxes[:, 2:] - boxes[:, :2], scores, class_column]
    table = np.column_stack(columns)[order]
    buffer = io.StringIO()
    np.savetxt(buffer, table, fmt="%d,%d,%.3f,%.3f,%.3f,%.3f,%.6g,%d,-1,-1")
    write_text_atomically(path, buffer.getvalue(), overwrite)
    return path


def read_seqinfo(path: Path) -> dict[str, str]:
    """The ``[Sequence]`` entries of a ``seqinfo.ini`` (keys lower-cased); {} when the file is missing.

    The one reader of these files: the MOTChallenge dataset, the evaluation of results folders and
    tracking a frame folder all read them here. Raises ValueError naming the file when it is not an
    ini file; :func:`seqinfo_number` reads a value.
    """
    if not path.is_file():
        return {}
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(path.read_text(encoding="utf-8"), source=str(path))
    except configparser.Error as error:
        raise ValueError(f"{path}: malformed seqinfo.ini ({error})") from error
    return dict(parser["Sequence"]) if parser.has_section("Sequence") else {}


def seqinfo_number(info: dict[str, str], key: str, path: Path, kind: type) -> float | int | None:
    """``info[key]`` as a positive ``kind``, None when missing; ValueError naming the file and key."""
    if key not in info:
        return None
    name = SEQINFO_KEYS[key]
    try:
        value = kind(info[key])
    except ValueError:
        raise ValueError(f"{path}: {name} must be a number, got {info[key]!r}") from None
    if value <= 0:
        raise ValueError(f"{path}: {name} must be positive, got {info[key]!r}")
    return value
