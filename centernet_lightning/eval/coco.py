"""COCO box mAP for the library's detections, computed by faster-coco-eval (or pycocotools).

Detections enter in the library's one box format, XYXY absolute pixels, but of the *original*
image (undo the letterbox first) and with *original* dataset category ids (map the contiguous
labels back first). They are converted to COCO's ``[x, y, w, h]`` exactly once, here, in
:meth:`COCOEvaluator.add`.

Metric conventions are COCO's own: crowd ground truth (``iscrowd=1``) is never counted as a miss
and a detection matched to it is never counted as a false positive; images with ground truth but
no detections count; a stat whose area range holds no ground truth is ``-1``, exactly as
pycocotools reports it. Both backends give the same numbers (pinned by the tests); faster-coco-eval
is the default because it is several times faster (``benchmarks/eval_coco.py``).
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import math
import os
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch.distributed as dist

from ..atomic_files import write_text_atomically
from ..structures import box_xyxy_to_xywh, to_numpy

__all__ = ["BACKENDS", "METRIC_NAMES", "COCOEvaluator", "format_table"]

logger = logging.getLogger(__name__)

# The 12 numbers of COCOeval.stats, in its order.
METRIC_NAMES: tuple[str, ...] = (
    "AP",
    "AP50",
    "AP75",
    "AP_small",
    "AP_medium",
    "AP_large",
    "AR1",
    "AR10",
    "AR100",
    "AR_small",
    "AR_medium",
    "AR_large",
)

# Results held before conversion to dicts, one array per result key: image ids int64 [N], boxes
# float64 [N, 4] COCO xywh, scores float64 [N], category ids int64 [N], then the evaluator's own
# per-detection values (keypoints float64 [N, 3J]).
_Arrays = tuple[np.ndarray, ...]
# What a backend's evaluation returns: stats float64 [12 box, 10 keypoint], precision [T, R, K, A, M],
# category ids [K].
_Evaluation = tuple[np.ndarray, np.ndarray, list[int]]
# A backend's evaluation: (GT object, results, image ids, iouType, OKS sigmas or None) -> _Evaluation.
_Evaluate = Callable[[Any, list[dict], list[int], str, Sequence[float] | None], _Evaluation]


def _silent(*args: Any, **kwargs: Any) -> None:
    """A print function that prints nothing."""


def _faster_coco_gt(gt: dict) -> Any:
    from faster_coco_eval import COCO

    return COCO(gt, print_function=_silent)


def _faster_evaluate(
    coco_gt: Any, results: list[dict], image_ids: list[int], iou_type: str, sigmas: Sequence[float] | None
) -> _Evaluation:
    from faster_coco_eval import COCOeval_faster

    coco_dt = coco_gt.loadRes(results)
    coco_eval = COCOeval_faster(
        coco_gt,
        coco_dt,
        iouType=iou_type,
        print_function=_silent,
        kpt_oks_sigmas=None if sigmas is None else list(sigmas),
    )
    coco_eval.params.imgIds = image_ids
    coco_eval.evaluate()
    coco_eval.accumulate()
    coco_eval.summarize()
    return np.asarray(coco_eval.stats, np.float64), coco_eval.eval["precision"], coco_eval.params.catIds


def _import_pycocotools() -> tuple[type, type]:
    try:
        from pycocotools.coco import COCO
        from pycocotools.cocoeval import COCOeval
    except ImportError as error:
        raise ImportError(
            "backend='pycocotools' needs pycocotools, which is only a dev extra: "
            "pip install 'centernet-lightning[dev]' (or pip install pycocotools), "
            "or use the default backend='faster_coco_eval'"
        ) from error
    return COCO, COCOeval


def _pycocotools_coco_gt(gt: dict) -> Any:
    coco_cls, _ = _import_pycocotools()
    coco_gt = coco_cls()  # its constructor only reads files; a dict goes in through .dataset
    coco_gt.dataset = gt
    with contextlib.redirect_stdout(io.StringIO()):
        coco_gt.createIndex()
    return coco_gt


def _pycocotools_evaluate(
    coco_gt: Any, results: list[dict], image_ids: list[int], iou_type: str, sigmas: Sequence[float] | None
) -> _Evaluation:
    _, cocoeval_cls = _import_pycocotools()
    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools print()s every step
        coco_dt = coco_gt.loadRes(results)
        coco_eval = cocoeval_cls(coco_gt, coco_dt, iouType=iou_type)
        if sigmas is not None:
            coco_eval.params.kpt_oks_sigmas = np.asarray(sigmas, np.float64)
        coco_eval.params.imgIds = image_ids
        coco_eval.evaluate()
        coco_eval.accumulate()
        coco_eval.summarize()
    return np.asarray(coco_eval.stats, np.float64), coco_eval.eval["precision"], coco_eval.params.catIds


# backend name -> (build the GT object from a COCO dict, evaluate a results list against it)
_BACKENDS: dict[str, tuple[Callable[[dict], Any], _Evaluate]] = {
    "faster_coco_eval": (_faster_coco_gt, _faster_evaluate),
    "pycocotools": (_pycocotools_coco_gt, _pycocotools_evaluate),
}
BACKENDS: tuple[str, ...] = tuple(_BACKENDS)


def _concat(chunks: Sequence[_Arrays]) -> _Arrays:
    """The chunks' arrays joined field by field; at least one chunk."""
    return tuple(np.concatenate(parts) for parts in zip(*chunks, strict=True))  # type: ignore[return-value]


def _merge_ranks(per_rank: Sequence[tuple[np.ndarray, _Arrays]]) -> tuple[np.ndarray, _Arrays]:
    """Merge ``(seen image ids, results)`` from every rank, each image's detections taken once.

    A DistributedSampler pads the last batches by repeating samples, so an image can be seen by
    two ranks; counting its detections twice would add false positives. Each image keeps the
    detections of the first rank that saw it, which also makes a second merge a no-op.
    """
    claimed = np.empty(0, np.int64)
    kept = []
    for seen_ids, arrays in per_rank:
        keep = ~np.isin(arrays[0], claimed)  # arrays[0]: the image id of each result
        kept.append(tuple(values[keep] for values in arrays))
        claimed = np.union1d(claimed, seen_ids)
    return claimed, _concat(kept)


def _load_gt(coco_gt: dict | str | os.PathLike) -> dict:
    if isinstance(coco_gt, Mapping):
        gt = copy.deepcopy(dict(coco_gt))  # the COCO tools write into annotations; keep the caller's intact
    else:
        with open(coco_gt) as gt_file:
            gt = json.load(gt_file)
    missing = [key for key in ("images", "annotations", "categories") if key not in gt]
    if missing:
        raise ValueError(f"COCO ground truth lacks the keys {missing}")
    return gt


class _COCOProtocolEvaluator:
    """What the COCO-protocol evaluators share: holding results batch by batch, the DDP gather,
    the results json, running a backend and per-class AP. :class:`COCOEvaluator` (boxes) and
    :class:`~centernet_lightning.eval.keypoints.KeypointEvaluator` (OKS) differ in their ``add``,
    their ``iouType`` and the per-detection values they keep.

    Subclasses set ``iou_type``, ``metric_names`` (COCOeval.stats in its order) and, when they keep
    more than boxes, ``result_keys`` and :meth:`_empty_arrays`; their ``add`` calls :meth:`_append`.
    """

    iou_type: str = "bbox"
    metric_names: tuple[str, ...] = METRIC_NAMES
    # The keys of one COCO result, in the order of the arrays held (see _Arrays).
    result_keys: tuple[str, ...] = ("image_id", "bbox", "score", "category_id")
    # Per-keypoint OKS sigmas given to the backend; None for boxes.
    _oks_sigmas: tuple[float, ...] | None = None

    def __init__(self, gt: dict, backend: str) -> None:
        if backend not in _BACKENDS:
            raise ValueError(f"unknown backend {backend!r}; valid backends: {', '.join(BACKENDS)}")
        self.backend = backend
        build_gt, self._evaluate_results = _BACKENDS[backend]
        self._coco_gt = build_gt(gt)
        self._gt_image_ids = np.asarray(sorted({int(image["id"]) for image in gt["images"]}), np.int64)
        self._category_names = _unique_category_names(gt["categories"])
        # COCO skips categories with no scored ground truth (precision -1): no AP exists for them.
        self._categories_with_gt = {
            int(annotation["category_id"]) for annotation in gt["annotations"] if self._is_scored(annotation)
        }
        self.reset()

    def reset(self) -> None:
        """Forget every detection added (and the last per-class AP)."""
        self._chunks: list[_Arrays] = []
        self._seen_image_ids: list[np.ndarray] = []
        self._per_class_ap: dict[str, float] | None = None

    def _append(self, image_ids: Any, bboxes: Any, scores: Any, category_ids: Any, *per_detection: Any) -> None:
        """Check and keep one batch (see ``COCOEvaluator.add``); ``per_detection`` arrays are
        [B, K, ...] (already of the right trailing shape) and kept flattened to [N, -1]."""
        image_ids = to_numpy(image_ids, np.int64).reshape(-1)
        bboxes = to_numpy(bboxes, np.float64)
        scores = to_numpy(scores, np.float64)
        category_ids = to_numpy(category_ids, np.int64)
        batch = image_ids.shape[0]
        if bboxes.ndim != 3 or bboxes.shape[0] != batch or bboxes.shape[2] != 4:
            raise ValueError(f"bboxes must be [B={batch}, K, 4], got {list(bboxes.shape)}")
        if scores.shape != bboxes.shape[:2] or category_ids.shape != bboxes.shape[:2]:
            raise ValueError(
                f"scores {list(scores.shape)} and category_ids {list(category_ids.shape)} "
                f"must be [B, K] = {list(bboxes.shape[:2])}"
            )
        if any(values.shape[:2] != bboxes.shape[:2] for values in per_detection):
            shapes = [list(values.shape) for values in per_detection]
            raise ValueError(
                f"per-detection values {shapes} must be [B, K, ...] with [B, K] = {list(bboxes.shape[:2])}"
            )
        valid = (scores > 0) & (category_ids >= 0)  # [B, K]
        self._chunks.append(
            (
                np.broadcast_to(image_ids[:, None], valid.shape)[valid],
                box_xyxy_to_xywh(bboxes[valid]),  # [N, 4]
                scores[valid],
                category_ids[valid],
                *(values[valid].reshape(-1, math.prod(values.shape[2:])) for values in per_detection),
            )
        )
        self._seen_image_ids.append(image_ids)

    def _empty_arrays(self) -> _Arrays:
        """The held arrays of no results (a rank that added nothing still gathers these)."""
        return np.empty(0, np.int64), np.empty((0, 4), np.float64), np.empty(0, np.float64), np.empty(0, np.int64)

    def _is_scored(self, annotation: Mapping[str, Any]) -> bool:
        """Whether COCOeval scores a ground-truth annotation (crowd regions are only ignored)."""
        return not annotation.get("iscrowd", 0)

    def _arrays(self) -> _Arrays:
        return _concat(self._chunks) if self._chunks else self._empty_arrays()

    def gather(self) -> None:
        """Collect every rank's results on every rank; a no-op outside torch.distributed.

        A collective: under DDP all ranks must call it. An image seen by several ranks (sampler
        padding) keeps one rank's detections.
        """
        if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
            return
        seen_image_ids = np.unique(np.concatenate([np.empty(0, np.int64), *self._seen_image_ids]))
        local = (seen_image_ids, self._arrays())
        per_rank: list[Any] = [None] * dist.get_world_size()
        dist.all_gather_object(per_rank, local)
        seen_image_ids, merged = _merge_ranks(per_rank)
        self._chunks = [merged]
        self._seen_image_ids = [seen_image_ids]

    def results(self) -> list[dict]:
        """The detections added so far, in the COCO results format: one dict per detection with
        the keys of ``result_keys`` (``bbox`` [x, y, w, h] in original-image pixels). Local to this
        rank unless :meth:`gather` ran."""
        columns = [values.tolist() for values in self._arrays()]
        return [dict(zip(self.result_keys, row, strict=True)) for row in zip(*columns, strict=True)]

    def save_results(self, path: str | os.PathLike, overwrite: bool = True) -> Path:
        """Write :meth:`results` as json to ``path`` atomically (complete or absent); returns the path.

        Not a collective: call :meth:`gather` (or :meth:`evaluate`) first under DDP and write from
        one rank.
        """
        return write_text_atomically(path, json.dumps(self.results()), overwrite=overwrite)

    def evaluate(self) -> dict[str, float]:
        """Gather all ranks' results and compute the COCO metrics of ``metric_names``.

        Returns:
            ``{name: value}`` for every name of ``metric_names``, fractions in [0, 1]; ``-1``
            where an area range holds no ground truth (COCO's convention). With no detections
            at all, every value is 0 and a warning is logged. The per-class AP of the same
            evaluation is then available from :meth:`per_class_ap`.
        """
        self.gather()
        results = self.results()
        if not results:
            logger.warning("COCO %s evaluation got no detections at all; reporting every metric as 0", self.iou_type)
            self._per_class_ap = {
                name: 0.0 if category_id in self._categories_with_gt else math.nan
                for category_id, name in self._category_names.items()
            }
            return dict.fromkeys(self.metric_names, 0.0)

        self._check_ids()
        seen = np.unique(np.concatenate([np.empty(0, np.int64), *self._seen_image_ids]))
        image_ids = np.intersect1d(seen, self._gt_image_ids).tolist()
        stats, precision, category_ids = self._evaluate_results(
            self._coco_gt, results, image_ids, self.iou_type, self._oks_sigmas
        )
        # A backend may leave out categories without ground truth (faster-coco-eval for keypoints).
        ap_by_category = {
            int(category_id): _category_ap(precision, index) for index, category_id in enumerate(category_ids)
        }
        self._per_class_ap = {
            name: ap_by_category.get(category_id, math.nan) for category_id, name in self._category_names.items()
        }
        stats = stats[: len(self.metric_names)]
        return {name: float(value) for name, value in zip(self.metric_names, stats, strict=True)}

    def per_class_ap(self) -> dict[str, float]:
        """AP@[.5:.95] per category of the last :meth:`evaluate`, keyed by category name.

        In category-id order; ``nan`` for categories with no (non-crowd) ground truth.
        """
        if self._per_class_ap is None:
            raise RuntimeError("per_class_ap() reads the last evaluation: call evaluate() first")
        return dict(self._per_class_ap)

    def _check_ids(self) -> None:
        image_ids, _, _, category_ids, *_ = self._arrays()
        unknown_images = np.setdiff1d(image_ids, self._gt_image_ids)
        if unknown_images.size:
            raise ValueError(
                f"{unknown_images.size} image ids of the detections are not in the ground truth, "
                f"e.g. {unknown_images[:5].tolist()}"
            )
        unknown_categories = np.setdiff1d(category_ids, np.fromiter(self._category_names, np.int64))
        if unknown_categories.size:
            logger.warning(
                "detections with category ids %s, which the ground truth does not define, are ignored; "
                "map contiguous labels back to dataset category ids before add()",
                unknown_categories[:10].tolist(),
            )


class COCOEvaluator(_COCOProtocolEvaluator):
    """Accumulates detections batch by batch and scores them with the COCO box protocol.

    Args:
        coco_gt: the ground truth, a COCO-format dict (``images``; ``annotations`` with ``bbox``
            xywh pixels, ``area``, ``iscrowd``, ``category_id``; ``categories`` with ``id`` and
            ``name``) or the path of such a json file. A dict is copied, never modified.
        backend: ``"faster_coco_eval"`` (default) or ``"pycocotools"`` (a dev extra, imported
            only when chosen); both give the same numbers.

    Under DDP every rank calls :meth:`add` for its own batches, then every rank calls
    :meth:`evaluate`: it gathers all ranks' results (a collective, so no rank may skip it) and
    computes the metrics on every rank. Computing on every rank costs a little CPU time but gives
    every rank the same numbers with no broadcast, so they can be logged from any rank.
    :meth:`evaluate` returns the 12 metrics of :data:`METRIC_NAMES`; :meth:`results` gives
    ``{"image_id", "bbox": [x, y, w, h], "score", "category_id"}`` dicts.
    """

    def __init__(self, coco_gt: dict | str | os.PathLike, backend: str = "faster_coco_eval") -> None:
        super().__init__(_load_gt(coco_gt), backend)

    def add(self, image_ids: Any, bboxes: Any, scores: Any, category_ids: Any) -> None:
        """Add the detections of one batch of B images, padded to K detections each.

        Args:
            image_ids: int [B], the GT's image ids.
            bboxes: float [B, K, 4] XYXY in pixels of the original image.
            scores: float [B, K].
            category_ids: int [B, K], original dataset category ids (not contiguous labels).

        Tensors (any device) or numpy arrays. Entries with ``score <= 0`` or ``category_id < 0``
        are padding and are dropped. Only the images added are evaluated, so a partial pass
        (``limit_val_batches``) does not count the images it never saw as misses.
        """
        self._append(image_ids, bboxes, scores, category_ids)


def _category_ap(precision: np.ndarray, category_index: int) -> float:
    """AP@[.5:.95] of one category from COCOeval's precision [T, R, K, A, M].

    The mean over IoU thresholds and recall points, area "all" (A=0), 100 detections (M=-1),
    as in COCOeval.summarize; ``nan`` where COCO marks the category -1 (no ground truth).
    """
    values = precision[:, :, category_index, 0, -1]
    values = values[values > -1]
    return float(values.mean()) if values.size else math.nan


def _unique_category_names(categories: list[dict]) -> dict[int, str]:
    """Category id -> name, ordered by id; a name used twice gets its id appended."""
    categories = sorted(categories, key=lambda category: int(category["id"]))
    names = [str(category.get("name", category["id"])) for category in categories]
    return {
        int(category["id"]): name if names.count(name) == 1 else f"{name} ({category['id']})"
        for category, name in zip(categories, names, strict=True)
    }


def format_table(
    metrics: Mapping[str, float],
    per_class: Mapping[str, float] | None = None,
    title: str = "COCO box metrics (%)",
) -> str:
    """The metrics (and per-class AP, three classes to a row) as a plain-text table for printing.

    Values print as percentages; ``-1`` and ``nan`` (no ground truth) print as ``n/a``.
    """
    from rich.console import Console
    from rich.table import Table

    def cell(value: float) -> str:
        return "n/a" if math.isnan(value) or value < 0 else f"{100 * value:.1f}"

    summary = Table(title=title)
    for name in metrics:
        summary.add_column(name, justify="right")
    summary.add_row(*(cell(value) for value in metrics.values()))
    tables = [summary]

    if per_class:
        columns_per_row = 3
        per_class_table = Table(title="AP@[.5:.95] per class (%)")
        for _ in range(columns_per_row):
            per_class_table.add_column("class")
            per_class_table.add_column("AP", justify="right")
        items = list(per_class.items())
        for start in range(0, len(items), columns_per_row):
            row_items = items[start : start + columns_per_row]
            row = [text for name, value in row_items for text in (name, cell(value))]
            per_class_table.add_row(*row, *[""] * (2 * columns_per_row - len(row)))
        tables.append(per_class_table)

    buffer = io.StringIO()
    console = Console(file=buffer, width=160, color_system=None, force_terminal=False, highlight=False)
    for table in tables:
        console.print(table)
    return buffer.getvalue()
