"""``centernet eval-mot GT RESULTS``: HOTA / MOTA / IDF1 of any tracker's MOTChallenge results.

GT and RESULTS are two files (a ground-truth ``gt.txt`` and the tracker's results txt) or two
folders (ground truth as ``{seq}/gt/gt.txt`` or ``{seq}.txt``, results as ``{seq}.txt``). The
numbers are :func:`~centernet_lightning.eval.mot.evaluate_mot`'s and
:func:`~centernet_lightning.eval.mot.evaluate_mot_sequences`' (TrackEval's metric classes, the
benchmark's ground-truth rules): one row per sequence, and for folders a COMBINED row
(TrackEval's combination: counts summed, association weighted by true positives, not a mean).
Fractions print as percentages with one decimal, as the MOTChallenge tables do, counts as
integers; ``--json`` also writes every metric, fractions as fractions.

The paths are checked before the evaluation (and torch, which it imports) is loaded, so a missing
file or a file given with a folder is refused at once.
"""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from .predict import Bound, CommandParser, check_options

__all__ = ["COLUMNS", "eval_mot_main", "format_mot_table"]

PROG = "centernet eval-mot"
BENCHMARKS = ("auto", "MOT15", "MOT16", "MOT17", "MOT20")
# The printed columns: names of eval.mot.MOT_METRIC_NAMES, in the MOTChallenge tables' order.
COLUMNS = ("HOTA", "DetA", "AssA", "MOTA", "MOTP", "IDF1", "IDP", "IDR", "IDSW", "FP", "FN", "Frag")
# The names of MOT_METRIC_NAMES that are counts; every other one is a fraction (MOTA can be negative).
COUNTS = frozenset({"IDSW", "TP", "FP", "FN", "MT", "PT", "ML", "Frag", "IDTP", "IDFP", "IDFN"})
COMBINED = "COMBINED"
EVAL_BOUNDS = {"iou": Bound(float, 0.0, 1.0, low_open=True)}


def _benchmark(text: str) -> str:
    """``--benchmark`` in any case (``mot17`` is ``MOT17``); argparse's choices refuse the rest."""
    return {name.lower(): name for name in BENCHMARKS}.get(text.lower(), text)


def _parser() -> CommandParser:
    parser = CommandParser(
        prog=PROG,
        description="HOTA, MOTA, IDF1 and their parts of a tracker's MOTChallenge results against the ground "
        "truth, computed with TrackEval's metric classes. GT and RESULTS are two files (gt.txt and the results "
        "txt) or two folders (GT: {seq}/gt/gt.txt or {seq}.txt; RESULTS: {seq}.txt), then one row per sequence "
        "and a COMBINED row. Fractions are printed as percentages, counts as integers.",
    )
    parser.add_argument("gt", metavar="GT", help="ground-truth txt file, or a folder of {seq}/gt/gt.txt or {seq}.txt")
    parser.add_argument("results", metavar="RESULTS", help="results txt file, or a folder of {seq}.txt")
    parser.add_argument(
        "--benchmark",
        type=_benchmark,
        default="auto",
        choices=BENCHMARKS,
        help="whose ground-truth rules apply (default auto: MOT17's for 9-column ground truth, MOT15's otherwise)",
    )
    parser.add_argument(
        "--iou", default=0.5, metavar="THRESHOLD", help="CLEAR's and IDF1's match IoU, in (0, 1] (default 0.5)"
    )
    parser.add_argument(
        "--sequences", nargs="+", default=None, metavar="SEQ", help="folders only: the sequences to evaluate"
    )
    parser.add_argument("--json", default=None, metavar="PATH", help="also write every metric to this JSON file")
    return parser


def _sequence_name(gt: Path) -> str:
    """The row of a file pair: ``SEQ`` for MOTChallenge's ``SEQ/gt/gt.txt``, else the file's stem."""
    resolved = gt.resolve()
    if resolved.name == "gt.txt" and resolved.parent.name == "gt" and resolved.parent.parent.name:
        return resolved.parent.parent.name
    return gt.stem


def _check_paths(gt: Path, results: Path, sequences: list[str] | None, json_path: Path | None) -> None:
    """What can be refused before the evaluation is imported; ValueError / FileNotFoundError naming the path."""
    for path in (gt, results):
        if not path.exists():
            raise FileNotFoundError(f"{path}: no such file or folder")
    if gt.is_dir() != results.is_dir():
        kinds = {True: "a folder", False: "a file"}
        raise ValueError(
            f"GT {gt} is {kinds[gt.is_dir()]} and RESULTS {results} is {kinds[results.is_dir()]}: "
            "give two files or two folders"
        )
    if sequences is not None and not gt.is_dir():
        raise ValueError(f"--sequences needs GT and RESULTS folders; {gt} and {results} are files")
    if json_path is None:
        return
    if json_path.is_dir():
        raise ValueError(f"--json {json_path} is a folder; give a file path")
    if json_path.exists():
        for path in (gt, results):
            if path.is_file() and os.path.samefile(json_path, path):
                raise ValueError(f"--json {json_path} is the file being evaluated; choose another path")


def _cell(name: str, value: float) -> str:
    if not math.isfinite(value):
        return "-"
    return str(round(value)) if name in COUNTS else f"{100 * value:.1f}"


def format_mot_table(rows: Mapping[str, Mapping[str, float]]) -> str:
    """``{row name: metrics}`` as an aligned table of :data:`COLUMNS`: fractions as percentages with
    one decimal (``MOTA 0.526`` prints ``52.6``), counts as integers, a non-finite value as ``-``."""
    header = ["Sequence", *COLUMNS]
    body = [[name, *(_cell(column, metrics[column]) for column in COLUMNS)] for name, metrics in rows.items()]
    widths = [max(len(row[index]) for row in (header, *body)) for index in range(len(header))]
    lines = []
    for row in (header, *body):
        cells = [row[0].ljust(widths[0]), *(cell.rjust(width) for cell, width in zip(row[1:], widths[1:]))]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def _plain(metrics: Mapping[str, float]) -> dict[str, float | int | None]:
    """Every metric for JSON: counts as integers, fractions as they are, a non-finite value as null."""
    return {
        name: None if not math.isfinite(value) else round(value) if name in COUNTS else value
        for name, value in metrics.items()
    }


def eval_mot_main(argv: list[str]) -> None:
    """``centernet eval-mot``: see the module docstring."""
    parser = _parser()
    args = parser.parse_args(argv)
    check_options(parser, args, EVAL_BOUNDS)
    gt, results = Path(args.gt), Path(args.results)
    json_path = Path(args.json) if args.json is not None else None
    try:
        _check_paths(gt, results, args.sequences, json_path)
        from ..eval.mot import evaluate_mot, evaluate_mot_sequences

        if gt.is_dir():
            evaluated = evaluate_mot_sequences(
                gt, results, sequences=args.sequences, benchmark=args.benchmark, iou_threshold=args.iou
            )
            sequences, combined = evaluated.sequences, evaluated.combined
            rows = {**sequences, COMBINED: combined}
        else:
            combined = evaluate_mot(gt, results, benchmark=args.benchmark, iou_threshold=args.iou)
            sequences = {_sequence_name(gt): combined}
            rows = sequences
    except (FileNotFoundError, ValueError, OSError) as error:
        sys.exit(f"{PROG}: {error}")
    print(format_mot_table(rows))
    if json_path is None:
        return
    from ..atomic_files import write_text_atomically

    document = {
        "gt": str(gt),
        "results": str(results),
        "benchmark": args.benchmark,
        "iou_threshold": args.iou,
        "sequences": {name: _plain(metrics) for name, metrics in sequences.items()},
        "combined": _plain(combined),
    }
    try:  # the file the user named: replaced as a whole, never left half-written
        write_text_atomically(json_path, json.dumps(document, indent=2) + "\n", overwrite=True)
    except OSError as error:
        sys.exit(f"{PROG}: {error}")
    print(f"Every metric written to {json_path}")
