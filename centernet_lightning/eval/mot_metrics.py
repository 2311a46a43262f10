"""TrackEval's tracking metrics (HOTA, CLEAR MOT, identity) on sequences prepared in memory.

The numbers are TrackEval's (the official MOTChallenge evaluation code): its metric classes
``trackeval.metrics.HOTA``, ``CLEAR`` and ``Identity`` run on per-frame IoU matrices that this
module prepares itself (:func:`evaluate_sequences`): rows of the ground truth carry a role
(evaluated, distractor, or present only for the distractor matching), and a prediction matched to
a distractor (Hungarian, IoU >= 0.5) is dropped, as TrackEval's ``MotChallenge2DBox`` does. The
file rules that assign the roles are :mod:`centernet_lightning.eval.mot`'s.

NumPy 2: upstream TrackEval on GitHub (version 1.0.dev1) still uses ``np.float`` / ``np.int``,
removed in NumPy 1.24, and fails inside ``eval_sequence``. The ``trackeval`` 1.3 releases on
PyPI (a maintained fork) replaced them and require NumPy >= 2.3 on Python 3.11; the installed
1.3.0 has no removed alias left. We therefore patch nothing in numpy (a global shim would leak
into users' code) and refuse TrackEval older than 1.3 with an error that says what to install.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version
from typing import Any, NamedTuple

import numpy as np
from scipy.optimize import linear_sum_assignment

__all__ = [
    "MOT_METRIC_NAMES",
    "MOTResults",
    "SequenceRows",
    "EVALUATED",
    "DISTRACTOR",
    "MATCH_ONLY",
    "evaluate_sequences",
]

# Every key of the dicts the evaluate functions return, in table order. HOTA family: means over
# the 19 alpha thresholds; CLEAR and Identity: TrackEval's fields (CLR_TP -> TP, CLR_Re -> Recall...).
MOT_METRIC_NAMES: tuple[str, ...] = (
    "HOTA",
    "DetA",
    "AssA",
    "DetRe",
    "DetPr",
    "AssRe",
    "AssPr",
    "LocA",
    "MOTA",
    "MOTP",
    "MODA",
    "IDF1",
    "IDP",
    "IDR",
    "IDSW",
    "TP",
    "FP",
    "FN",
    "Recall",
    "Precision",
    "MT",
    "PT",
    "ML",
    "Frag",
    "IDTP",
    "IDFP",
    "IDFN",
)
_HOTA_FIELDS = ("HOTA", "DetA", "AssA", "DetRe", "DetPr", "AssRe", "AssPr", "LocA")
_CLEAR_FIELDS = {
    "MOTA": "MOTA",
    "MOTP": "MOTP",
    "MODA": "MODA",
    "IDSW": "IDSW",
    "TP": "CLR_TP",
    "FP": "CLR_FP",
    "FN": "CLR_FN",
    "Recall": "CLR_Re",
    "Precision": "CLR_Pr",
    "MT": "MT",
    "PT": "PT",
    "ML": "ML",
    "Frag": "Frag",
}
_IDENTITY_FIELDS = ("IDF1", "IDP", "IDR", "IDTP", "IDFP", "IDFN")

# TrackEval matches predictions to distractors at this IoU whatever the CLEAR threshold.
_DISTRACTOR_IOU = 0.5
_EPS = np.finfo(np.float64).eps

# What happens to a ground-truth row: evaluated; a distractor (removes the prediction matched to
# it); or only present for the distractor matching, then dropped.
EVALUATED, DISTRACTOR, MATCH_ONLY = 0, 1, 2


class MOTResults(NamedTuple):
    """Metrics of several sequences: TrackEval's combination over all of them, and each one.

    Both hold dicts keyed by :data:`MOT_METRIC_NAMES`. ``combined`` is not a mean of the
    sequences: counts are summed and HOTA's association scores weighted by true positives.
    """

    combined: dict[str, float]
    sequences: dict[str, dict[str, float]]


# --------------------------------------------------------------------------------------------
# One sequence, ready for TrackEval's metric classes


@dataclass(frozen=True)
class SequenceRows:
    """One sequence's rows. Ground truth carries a role per row (``EVALUATED`` ...)."""

    name: str  # for error messages: a file path, or "predictions of sequence 'x'"
    frames: np.ndarray  # int64 [N], from 1
    ids: np.ndarray  # int64 [N]
    boxes: np.ndarray  # float64 [N, 4] XYXY pixels
    roles: np.ndarray | None = None  # int8 [N], ground truth only


def _check_unique_ids(tracks: SequenceRows) -> None:
    """TrackEval refuses an id that appears twice in one frame; so do we, naming it."""
    order = np.lexsort((tracks.ids, tracks.frames))
    frames, ids = tracks.frames[order], tracks.ids[order]
    repeated = (frames[1:] == frames[:-1]) & (ids[1:] == ids[:-1])
    if repeated.any():
        index = int(np.flatnonzero(repeated)[0])
        raise ValueError(f"{tracks.name}: id {ids[index]} appears twice in frame {frames[index]}; ids must be unique")


def _frame_slices(frames: np.ndarray, num_frames: int) -> tuple[np.ndarray, np.ndarray]:
    """Order sorting rows by frame, and the start of each frame 1..num_frames (+ end) in it."""
    order = np.argsort(frames, kind="stable")
    starts = np.searchsorted(frames[order], np.arange(1, num_frames + 2))
    return order, starts


def _relabel(ids_per_frame: list[np.ndarray]) -> tuple[list[np.ndarray], int]:
    """Map ids to 0..K-1 (TrackEval's metrics index arrays by id); returns them and K."""
    if not ids_per_frame:
        return [], 0
    lengths = [len(ids) for ids in ids_per_frame]
    unique, contiguous = np.unique(np.concatenate([np.empty(0, np.int64), *ids_per_frame]), return_inverse=True)
    return np.split(contiguous.astype(np.int64), np.cumsum(lengths)[:-1]), len(unique)


def _trackeval_data(gt: SequenceRows, predictions: SequenceRows, num_frames: int) -> dict[str, Any]:
    """TrackEval's preprocessed sequence dict: per-frame ids and IoU matrices, distractors removed."""
    from trackeval.datasets import MotChallenge2DBox

    _check_unique_ids(gt)
    _check_unique_ids(predictions)
    gt_order, gt_starts = _frame_slices(gt.frames, num_frames)
    pred_order, pred_starts = _frame_slices(predictions.frames, num_frames)
    gt_ids, pred_ids, similarities = [], [], []
    # A loop over frames, as in TrackEval's own metrics: the matching is per frame.
    for t in range(num_frames):
        gt_rows = gt_order[gt_starts[t] : gt_starts[t + 1]]
        pred_rows = pred_order[pred_starts[t] : pred_starts[t + 1]]
        iou = MotChallenge2DBox._calculate_box_ious(
            gt.boxes[gt_rows], predictions.boxes[pred_rows], box_format="x0y0x1y1"
        )  # [G, P], TrackEval's own IoU so that ties at the threshold fall the same way
        roles = gt.roles[gt_rows]
        keep = np.ones(len(pred_rows), dtype=bool)
        if len(pred_rows) and (roles == DISTRACTOR).any():
            scores = np.where(iou >= _DISTRACTOR_IOU - _EPS, iou, 0.0)
            rows, cols = linear_sum_assignment(-scores)
            matched = scores[rows, cols] > _EPS
            keep[cols[matched & (roles[rows] == DISTRACTOR)]] = False
        evaluated = roles == EVALUATED
        gt_ids.append(gt.ids[gt_rows][evaluated])
        pred_ids.append(predictions.ids[pred_rows][keep])
        similarities.append(iou[evaluated][:, keep])
    gt_ids, num_gt_ids = _relabel(gt_ids)
    pred_ids, num_pred_ids = _relabel(pred_ids)
    return {
        "num_timesteps": num_frames,
        "num_gt_ids": num_gt_ids,
        "num_tracker_ids": num_pred_ids,
        "num_gt_dets": sum(len(ids) for ids in gt_ids),
        "num_tracker_dets": sum(len(ids) for ids in pred_ids),
        "gt_ids": gt_ids,
        "tracker_ids": pred_ids,
        "similarity_scores": similarities,
        "seq": gt.name,
    }


# --------------------------------------------------------------------------------------------
# TrackEval's metrics


@functools.cache
def _check_trackeval_version() -> None:
    """Refuse a TrackEval that NumPy 2 breaks, saying what to install (module docstring)."""
    try:
        installed = version("trackeval")
    except PackageNotFoundError:  # a source checkout on sys.path: let its own import speak
        return
    major_minor = tuple(int(part) for part in re.findall(r"\d+", installed)[:2])
    if major_minor < (1, 3) and not hasattr(np, "float"):
        raise ImportError(
            f"trackeval {installed} (the GitHub version) uses np.float / np.int, removed in NumPy 1.24; "
            f"NumPy {np.__version__} is installed. Install the maintained release: pip install 'trackeval>=1.3'"
        )


def _metrics(iou_threshold: float) -> dict[str, Any]:
    """TrackEval's HOTA, CLEAR and Identity metric objects (imported here: trackeval takes ~0.7 s)."""
    _check_trackeval_version()
    try:
        from trackeval.metrics import CLEAR, HOTA, Identity
    except ModuleNotFoundError as error:
        raise ImportError(
            "Tracking metrics need TrackEval: pip install 'centernet-lightning[tracking]' (or 'trackeval>=1.3')"
        ) from error

    config = {"THRESHOLD": float(iou_threshold), "PRINT_CONFIG": False}
    return {"HOTA": HOTA(), "CLEAR": CLEAR(dict(config)), "Identity": Identity(dict(config))}


def _evaluate_sequence(data: dict[str, Any], metrics: dict[str, Any]) -> dict[str, dict]:
    return {name: metric.eval_sequence(data) for name, metric in metrics.items()}


def _combine(per_sequence: Sequence[dict[str, dict]], metrics: dict[str, Any]) -> dict[str, dict]:
    return {
        name: metric.combine_sequences({index: raw[name] for index, raw in enumerate(per_sequence)})
        for name, metric in metrics.items()
    }


def _summary(raw: dict[str, dict]) -> dict[str, float]:
    """TrackEval's result dicts -> one flat dict keyed by MOT_METRIC_NAMES (plain floats)."""
    summary = {name: float(np.mean(raw["HOTA"][name])) for name in _HOTA_FIELDS}
    summary.update({name: float(raw["CLEAR"][field]) for name, field in _CLEAR_FIELDS.items()})
    summary.update({name: float(raw["Identity"][name]) for name in _IDENTITY_FIELDS})
    return {name: summary[name] for name in MOT_METRIC_NAMES}


def evaluate_sequences(
    sequences: Mapping[str, tuple[SequenceRows, SequenceRows, int]], iou_threshold: float = 0.5
) -> MOTResults:
    """TrackEval's metrics of ``{name: (ground truth, predictions, number of frames)}``, each
    sequence's and their combination. ``iou_threshold``: CLEAR's and Identity's match threshold."""
    if not 0.0 < iou_threshold <= 1.0:
        raise ValueError(f"iou_threshold must be in (0, 1], got {iou_threshold}")
    metrics = _metrics(iou_threshold)
    raw = {name: _evaluate_sequence(_trackeval_data(*triple), metrics) for name, triple in sequences.items()}
    combined = _combine(list(raw.values()), metrics)
    return MOTResults(_summary(combined), {name: _summary(result) for name, result in raw.items()})
