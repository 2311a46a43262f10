"""Tracking metrics (HOTA, CLEAR MOT, identity) on MOTChallenge files or in-memory tracks.

The numbers are TrackEval's (the official MOTChallenge evaluation code): its metric classes
``trackeval.metrics.HOTA``, ``CLEAR`` and ``Identity`` run on per-frame IoU matrices that this
module prepares itself. We do not drive TrackEval's ``Evaluator`` / ``MotChallenge2DBox``
file machinery, because it needs a fixed folder layout, seqmap or ``seqinfo.ini`` files and a
tracker-name folder, prints to stdout, and cannot take tracks held in memory (a validation loop).
The preprocessing it applies is reproduced here rule for rule (and pinned against it by the tests):

- **MOT16 / MOT17 / MOT20** ground truth (9 columns: ``frame, id, bb_left, bb_top, bb_width,
  bb_height, flag, class, visibility``): only class 1 (pedestrian) rows with ``flag != 0`` are
  evaluated. In every frame that holds a distractor (class 2 person on vehicle, 7 static person,
  8 distractor, 12 reflection; MOT20 adds 6 non-motorised vehicle), predictions are matched to
  *all* ground-truth rows of the frame (Hungarian, IoU >= 0.5) and a prediction matched to a
  distractor is dropped: neither true nor false positive. Other rows (cars, occluders,
  zero-flagged pedestrians) take part in that matching, then are dropped; a prediction on them
  counts as a false positive.
- **2D MOT 2015** ground truth (10 columns, the last three world coordinates, no class): rows
  with ``flag == 0`` are dropped; nothing else.
- CLEAR (MOTA, MOTP, IDSW, ...) and Identity (IDF1, ...) match at IoU >= 0.5; HOTA averages over
  the 19 thresholds 0.05, 0.10, ..., 0.95 (``HOTA``, ``DetA``, ``AssA``, ... are those means).
  IoU is TrackEval's (continuous coordinates, ``x2 = x1 + w``, no ``+1``).

Every value is a fraction in [0, 1] or a count: the benchmarks print percentages
(``MOTA = 0.526`` is their 52.6). ``MOTP`` is TrackEval's and the MOTChallenge devkit's, the
mean IoU of matched pairs; py-motmetrics reports ``1 - MOTP`` (mean IoU distance) under the same
name. On the TUD-Campus files shipped with motmetrics (CEM tracker, MOT15 train) this module,
TrackEval's own pipeline, motmetrics' pinned test values and the MOTChallenge devkit table in
motmetrics' README all give MOTA 52.6, IDF1 55.8, IDSW 7, FP 13, FN 150, MOTP 72.3
(motmetrics 0.277); see ``tests/eval/test_mot_eval.py``.

Files are read and written by :mod:`centernet_lightning.datasets.mot_io` (MOTChallenge's 1-based
boxes, converted there once).

The metrics themselves are computed by :mod:`centernet_lightning.eval.mot_metrics`.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from ..datasets.mot_io import (
    MOTRows,
    check_gt_identities,
    checked_boxes,
    read_mot_txt,
    read_seqinfo,
    seqinfo_number,
)
from ..structures import to_numpy
from .mot_metrics import (
    DISTRACTOR,
    EVALUATED,
    MATCH_ONLY,
    MOT_METRIC_NAMES,
    MOTResults,
    SequenceRows,
    evaluate_sequences,
)

__all__ = [
    "MOT_METRIC_NAMES",
    "MOTEvaluator",
    "MOTResults",
    "evaluate_mot",
    "evaluate_mot_sequences",
    "evaluate_tracks",
]

logger = logging.getLogger(__name__)

Benchmark = Literal["auto", "MOT15", "MOT16", "MOT17", "MOT20"]

# MOT16/17/20 class ids (TrackEval's MotChallenge2DBox.class_name_to_class_id).
_PEDESTRIAN = 1
_NUM_CLASSES = 13
_DISTRACTOR_CLASSES = {
    "MOT16": (2, 7, 8, 12),  # person on vehicle, static person, distractor, reflection
    "MOT17": (2, 7, 8, 12),
    "MOT20": (2, 6, 7, 8, 12),  # + non-motorised vehicle
}

# --------------------------------------------------------------------------------------------
# MOTChallenge files


def _resolve_benchmark(gt: MOTRows, benchmark: Benchmark) -> str:
    if benchmark not in ("auto", "MOT15", "MOT16", "MOT17", "MOT20"):
        raise ValueError(f"unknown benchmark {benchmark!r}; valid: 'auto', 'MOT15', 'MOT16', 'MOT17', 'MOT20'")
    if benchmark != "auto":
        return benchmark
    # MOT16/17/20 ground truth has 9 columns (flag, class, visibility after the box); 2D MOT 2015
    # has 10 (flag and world x, y, z), so its column 8 is no class.
    return "MOT17" if gt.extra.shape[1] == 2 else "MOT15"


def _gt_roles(gt: MOTRows, benchmark: str, name: str) -> np.ndarray:
    """The role of each ground-truth row under the benchmark's rules (module docstring)."""
    considered = gt.scores != 0
    if benchmark == "MOT15":
        return np.where(considered, EVALUATED, MATCH_ONLY).astype(np.int8)
    if gt.extra.shape[1] < 1 and len(gt):
        raise ValueError(f"{name}: {benchmark} ground truth needs a class column (column 8); this file has 7 columns")
    classes = gt.extra[:, 0] if len(gt) else np.empty(0)
    invalid = (classes != np.round(classes)) | (classes < 1) | (classes > _NUM_CLASSES)
    if invalid.any():
        row = int(np.flatnonzero(invalid)[0])
        raise ValueError(
            f"{name}: class {classes[row]:g} (column 8, frame {gt.frames[row]}, id {gt.ids[row]}) is not a "
            f"{benchmark} class 1-{_NUM_CLASSES}; 2D MOT 2015 files hold world coordinates there: "
            "pass benchmark='MOT15'"
        )
    roles = np.full(len(gt), MATCH_ONLY, dtype=np.int8)
    roles[np.isin(classes, _DISTRACTOR_CLASSES[benchmark])] = DISTRACTOR
    roles[(classes == _PEDESTRIAN) & considered] = EVALUATED
    return roles


def _file_sequence(
    gt_path: Path, results_path: Path, benchmark: Benchmark, num_frames: int | None = None
) -> tuple[SequenceRows, SequenceRows, int]:
    gt, results = read_mot_txt(gt_path), read_mot_txt(results_path)
    check_gt_identities(gt, gt_path)
    roles = _gt_roles(gt, _resolve_benchmark(gt, benchmark), str(gt_path))
    if results.extra.shape[1] and len(results) and (results.extra[:, 0] > 1).any():
        row = int(np.flatnonzero(results.extra[:, 0] > 1)[0])
        raise ValueError(
            f"{results_path}: column 8 (class) is {results.extra[row, 0]:g} at frame {results.frames[row]}, "
            f"id {results.ids[row]}; MOTChallenge evaluates pedestrians only (write 1 or -1 there)"
        )
    gt_last = int(gt.frames.max(initial=0))
    last_frame = int(max(gt_last, results.frames.max(initial=0)))
    if num_frames is not None and last_frame > num_frames:
        culprit = gt_path if gt_last > num_frames else results_path
        raise ValueError(f"{culprit}: frame {last_frame} is past the sequence's seqLength={num_frames} (seqinfo.ini)")
    if num_frames is None and last_frame > gt_last:
        # Without seqinfo.ini the sequence ends where the ground truth does, as far as we know: frames
        # past it may be a sequence ending without objects, or results of another (longer) sequence.
        past = results.frames > gt_last
        logger.warning(
            "%s: %d rows in frames %d..%d, past the last frame of the ground truth %s (%d); they count as false "
            "positives (with a seqinfo.ini beside gt/ giving seqLength, frames past it are refused)",
            results_path, int(past.sum()), int(results.frames[past].min()), last_frame, gt_path, gt_last,
        )  # fmt: skip
    predictions = SequenceRows(str(results_path), results.frames, results.ids, results.boxes)
    gt_tracks = SequenceRows(str(gt_path), gt.frames, gt.ids, gt.boxes, roles)
    return gt_tracks, predictions, num_frames if num_frames is not None else last_frame


def _gt_sequences(gt_dir: Path) -> dict[str, tuple[Path, Path | None]]:
    """``{seq: (gt file, seqinfo.ini or None)}`` from ``{seq}/gt/gt.txt`` folders and ``{seq}.txt`` files."""
    found: dict[str, tuple[Path, Path | None]] = {}
    for gt_file in sorted(gt_dir.glob("*/gt/gt.txt")):
        seqinfo = gt_file.parent.parent / "seqinfo.ini"
        found[gt_file.parent.parent.name] = (gt_file, seqinfo if seqinfo.is_file() else None)
    for gt_file in sorted(gt_dir.glob("*.txt")):
        if gt_file.stem in found:
            raise ValueError(
                f"{gt_dir}: sequence {gt_file.stem!r} has both {gt_file.name} and {gt_file.stem}/gt/gt.txt"
            )
        found[gt_file.stem] = (gt_file, None)
    return found


def _sequence_length(seqinfo: Path) -> int:
    length = seqinfo_number(read_seqinfo(seqinfo), "seqlength", seqinfo, int)
    if length is None:
        raise ValueError(f"{seqinfo}: no seqLength in its [Sequence] section")
    return int(length)


def evaluate_mot_sequences(
    gt_dir: str | os.PathLike,
    results_dir: str | os.PathLike,
    *,
    sequences: Sequence[str] | None = None,
    benchmark: Benchmark = "auto",
    iou_threshold: float = 0.5,
) -> MOTResults:
    """Evaluate a folder of results files against a folder of ground truth, sequence by sequence.

    Args:
        gt_dir: holds ``{seq}/gt/gt.txt`` (the MOTChallenge layout; a ``{seq}/seqinfo.ini`` there
            fixes the sequence length and frames past it are refused; without one, results past the
            ground truth's last frame are false positives, with a warning) and/or ``{seq}.txt`` files.
        results_dir: holds ``{seq}.txt`` for every sequence evaluated (as submitted to the benchmark).
        sequences: the sequences to evaluate; None for every one in ``gt_dir``.
        benchmark: whose ground-truth rules apply (module docstring); ``"auto"`` picks MOT17's for
            9-column ground truth and MOT15's otherwise, per sequence. MOT16 and MOT17 share rules.
        iou_threshold: CLEAR's and Identity's match threshold (0.5 in every benchmark); HOTA
            always averages over 0.05..0.95.

    Returns:
        :class:`MOTResults`: TrackEval's combination over the sequences and each sequence's
        metrics, dicts keyed by :data:`MOT_METRIC_NAMES`.

    Raises:
        FileNotFoundError: a folder or a sequence's results file is missing.
        ValueError: a malformed file or row (naming the file and line or frame and id).
    """
    gt_dir, results_dir = Path(gt_dir), Path(results_dir)
    for folder in (gt_dir, results_dir):
        if not folder.is_dir():
            raise FileNotFoundError(f"{folder} is not a folder")
    available = _gt_sequences(gt_dir)
    if not available:
        raise FileNotFoundError(f"{gt_dir} holds no ground truth ({{seq}}/gt/gt.txt or {{seq}}.txt)")
    if sequences is None:
        names = list(available)
        extra = sorted(path.stem for path in results_dir.glob("*.txt") if path.stem not in available)
        if extra:
            logger.warning("%s: no ground truth for %s in %s; not evaluated", results_dir, ", ".join(extra), gt_dir)
    else:
        names = list(sequences)
        unknown = [name for name in names if name not in available]
        if unknown:
            raise ValueError(f"{gt_dir} has no ground truth for {unknown}; it has {sorted(available)}")
    triples = {}
    for name in names:
        gt_file, seqinfo = available[name]
        results_file = results_dir / f"{name}.txt"
        if not results_file.is_file():
            raise FileNotFoundError(
                f"no results for sequence {name!r}: {results_file} is missing (evaluate the others with "
                "--sequences / sequences=[...])"
            )
        length = _sequence_length(seqinfo) if seqinfo is not None else None
        triples[name] = _file_sequence(gt_file, results_file, benchmark, length)
    return evaluate_sequences(triples, iou_threshold)


def evaluate_mot(
    gt_path: str | os.PathLike,
    results_path: str | os.PathLike,
    *,
    benchmark: Benchmark = "auto",
    iou_threshold: float = 0.5,
) -> dict[str, float]:
    """HOTA, MOTA, IDF1 ... of a MOTChallenge results file against its ground truth.

    Args:
        gt_path: a ground-truth txt file (``gt/gt.txt``), or a folder of them (then
            ``results_path`` is a folder too and the combined figures of
            :func:`evaluate_mot_sequences` are returned).
        results_path: the results txt file (``frame, id, x, y, w, h, conf, -1, -1, -1``) or folder.
        benchmark: whose ground-truth rules apply: ``"MOT15"``, ``"MOT16"``, ``"MOT17"``, ``"MOT20"``,
            or ``"auto"`` (MOT17's for 9-column ground truth, MOT15's otherwise).
        iou_threshold: CLEAR's and Identity's match threshold (0.5 in every benchmark).

    Returns:
        ``{name: value}`` for every name of :data:`MOT_METRIC_NAMES`: fractions in [0, 1]
        (HOTA, DetA, AssA, MOTA, MOTP = mean IoU of matches, IDF1, ...) and counts (IDSW, FP, FN,
        ...). MOTA can be negative.

    The sequence's length, in both forms: ``seqLength`` of the ``seqinfo.ini`` of ``SEQ/gt/gt.txt``
    when there is one (results past it are refused, as TrackEval does); else the last frame of
    either file, and results past the ground truth's last frame are counted as false positives
    with a warning. Ground truth with id -1 (a ``det.txt``) is refused.
    """
    gt_path, results_path = Path(gt_path), Path(results_path)
    if gt_path.is_dir() or results_path.is_dir():
        if not (gt_path.is_dir() and results_path.is_dir()):
            raise ValueError(f"{gt_path} and {results_path} must both be files or both be folders")
        return evaluate_mot_sequences(gt_path, results_path, benchmark=benchmark, iou_threshold=iou_threshold).combined
    # SEQ/gt/gt.txt beside SEQ/seqinfo.ini: its length applies, as in the folder form.
    seqinfo = gt_path.parent.parent / "seqinfo.ini" if gt_path.parent.name == "gt" else None
    length = _sequence_length(seqinfo) if seqinfo is not None and seqinfo.is_file() else None
    triple = _file_sequence(gt_path, results_path, benchmark, length)
    return evaluate_sequences({gt_path.name: triple}, iou_threshold).sequences[gt_path.name]


# --------------------------------------------------------------------------------------------
# Tracks in memory (validation loops)


class MOTEvaluator:
    """Collects tracked frames of one or more sequences, then computes TrackEval's metrics.

    Call :meth:`add` once per frame, in temporal order within each sequence (the frame number is
    the count of frames added to that sequence); sequences may interleave. Ground truth here is
    already filtered to the objects to evaluate, except ``gt_ignore`` rows, which act as
    MOTChallenge distractors (a prediction matched to one at IoU >= 0.5 is dropped, not a false
    positive). Everything stays on this process: under DDP, track and evaluate each sequence on
    one rank, or gather the frames yourself.

    Args:
        iou_threshold: CLEAR's and Identity's match threshold (0.5 in every benchmark).
    """

    def __init__(self, iou_threshold: float = 0.5) -> None:
        self.iou_threshold = iou_threshold
        self.reset()

    def reset(self) -> None:
        """Forget every frame added."""
        # Per sequence, per frame: (gt ids, gt boxes, gt roles, pred ids, pred boxes).
        self._frames: dict[str, list[tuple[np.ndarray, ...]]] = {}

    def add(
        self,
        gt_ids: Any,
        gt_boxes: Any,
        pred_ids: Any,
        pred_boxes: Any,
        *,
        gt_ignore: Any = None,
        sequence: str = "sequence",
    ) -> None:
        """Add one frame.

        Args:
            gt_ids: int [N] ground-truth track ids, unique in the frame.
            gt_boxes: float [N, 4] XYXY pixels.
            pred_ids: int [M] predicted track ids, unique in the frame.
            pred_boxes: float [M, 4] XYXY pixels, the same image's pixels as ``gt_boxes``.
            gt_ignore: bool [N] or None; True marks a region to ignore (distractor, crowd).
            sequence: the video this frame belongs to.

        Tensors (any device) or array-likes.
        """
        frame = len(self._frames.get(sequence, [])) + 1
        where = f"sequence {sequence!r}, frame {frame}"
        gt_ids = to_numpy(gt_ids, np.int64).reshape(-1)
        pred_ids = to_numpy(pred_ids, np.int64).reshape(-1)
        gt_boxes = checked_boxes(gt_boxes, f"{where}: gt_boxes")
        pred_boxes = checked_boxes(pred_boxes, f"{where}: pred_boxes")
        ignore = np.zeros(len(gt_ids), bool) if gt_ignore is None else to_numpy(gt_ignore, bool).reshape(-1)
        if len(gt_boxes) != len(gt_ids) or len(ignore) != len(gt_ids):
            raise ValueError(
                f"{where}: gt_ids [{len(gt_ids)}], gt_boxes [{len(gt_boxes)}, 4] and gt_ignore [{len(ignore)}] "
                "must have one entry per object"
            )
        if len(pred_boxes) != len(pred_ids):
            raise ValueError(f"{where}: pred_ids [{len(pred_ids)}] and pred_boxes [{len(pred_boxes)}, 4] differ")
        roles = np.where(ignore, DISTRACTOR, EVALUATED).astype(np.int8)
        self._frames.setdefault(sequence, []).append((gt_ids, gt_boxes, roles, pred_ids, pred_boxes))

    def evaluate(self) -> MOTResults:
        """TrackEval's metrics of every sequence added, and their combination."""
        if not self._frames:
            raise ValueError("no frames were added")
        triples = {}
        for sequence, frames in self._frames.items():
            counts = [(len(frame[0]), len(frame[3])) for frame in frames]
            frame_numbers = np.arange(1, len(frames) + 1)
            gt_frames = np.repeat(frame_numbers, [gt for gt, _ in counts])
            pred_frames = np.repeat(frame_numbers, [pred for _, pred in counts])
            columns = [np.concatenate(column) for column in zip(*frames)]
            gt = SequenceRows(f"ground truth of sequence {sequence!r}", gt_frames, columns[0], columns[1], columns[2])
            predictions = SequenceRows(f"predictions of sequence {sequence!r}", pred_frames, columns[3], columns[4])
            triples[sequence] = (gt, predictions, len(frames))
        return evaluate_sequences(triples, self.iou_threshold)


def evaluate_tracks(
    gt_ids: Sequence[Any],
    gt_boxes: Sequence[Any],
    pred_ids: Sequence[Any],
    pred_boxes: Sequence[Any],
    *,
    gt_ignore: Sequence[Any] | None = None,
    iou_threshold: float = 0.5,
) -> dict[str, float]:
    """TrackEval's metrics of one sequence held in memory: one list entry per frame, in order.

    Args:
        gt_ids: per frame, int [N_t] ground-truth track ids.
        gt_boxes: per frame, float [N_t, 4] XYXY pixels.
        pred_ids: per frame, int [M_t] predicted track ids.
        pred_boxes: per frame, float [M_t, 4] XYXY pixels.
        gt_ignore: per frame, bool [N_t] distractor / ignore flags, or None.
        iou_threshold: CLEAR's and Identity's match threshold.

    Returns:
        ``{name: value}`` for every name of :data:`MOT_METRIC_NAMES`, as :func:`evaluate_mot`.
    """
    lengths = {len(gt_ids), len(gt_boxes), len(pred_ids), len(pred_boxes)}
    if gt_ignore is not None:
        lengths.add(len(gt_ignore))
    if len(lengths) != 1:
        raise ValueError(
            f"one entry per frame in every list: gt_ids {len(gt_ids)}, gt_boxes {len(gt_boxes)}, "
            f"pred_ids {len(pred_ids)}, pred_boxes {len(pred_boxes)}"
            + ("" if gt_ignore is None else f", gt_ignore {len(gt_ignore)}")
        )
    evaluator = MOTEvaluator(iou_threshold)
    for index in range(len(gt_ids)):
        ignore = None if gt_ignore is None else gt_ignore[index]
        evaluator.add(gt_ids[index], gt_boxes[index], pred_ids[index], pred_boxes[index], gt_ignore=ignore)
    return evaluator.evaluate().sequences["sequence"]
