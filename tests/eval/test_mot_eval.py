"""Tracking metrics (eval/mot.py) against hand-computed cases, TrackEval's own pipeline and the
numbers py-motmetrics and the MOTChallenge devkit publish for the TUD-Campus files.

Where the TUD numbers come from (all for the CEM tracker on 2D MOT 2015 train, IoU >= 0.5):
- motmetrics' README table "MOTChallenge compatibility", copied from the MOTChallenge Matlab
  devkit: TUD-Campus IDF1 55.8, IDP 73.0, IDR 45.1, Rcll 58.2, Prcn 94.1, MT 1, PT 6, ML 1,
  FP 13, FN 150, IDs 7, FM 7, MOTA 52.6, MOTP 72.3; TUD-Stadtmitte IDF1 64.5 ... MOTA 56.4,
  MOTP 65.4.
- motmetrics' tests/test_metrics.py::test_motchallenge_files pins the same with 6 decimals
  (IDF1 0.557659, MOTA 0.526462, motp 0.277201 ...) and the overall row of both sequences
  (IDF1 0.624296, MOTA 0.555116, FP 58, FN 602, IDs 14). Its MOTP is the mean IoU *distance*
  1 - IoU, so 0.277201 is the devkit's and TrackEval's 1 - 0.722799 = 72.3 %.
- HOTA, DetA, AssA are published by no one for these files: they are pinned from TrackEval's
  own pipeline (Evaluator + MotChallenge2DBox, BENCHMARK MOT15) run on the same files, which
  the test also reruns.
The TUD files are 2D MOT 2015 ground truth (10 columns, flag 1 everywhere, no class), so
MOTChallenge's preprocessing removes nothing: motmetrics (no preprocessing), the devkit and
TrackEval see the same boxes and agree to the last digit. The MOT17 rules (classes,
distractors, zero flags) are checked against TrackEval's pipeline on a hand-made file.
"""

from __future__ import annotations

import contextlib
import io
import math
import os
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from centernet_lightning.datasets.mot_io import read_mot_txt, write_mot_txt
from centernet_lightning.eval.mot import (
    MOT_METRIC_NAMES,
    MOTEvaluator,
    MOTResults,
    evaluate_mot,
    evaluate_mot_sequences,
    evaluate_tracks,
)

motmetrics = pytest.importorskip("motmetrics")
TUD_DIR = Path(motmetrics.__file__).parent / "data"
TUD_SEQUENCES = ("TUD-Campus", "TUD-Stadtmitte")

# motmetrics tests/test_metrics.py::test_motchallenge_files, columns idf1, idp, idr, recall,
# precision, GT ids, MT, PT, ML, FP, FN, IDs, FM, mota, motp (distance).
MOTMETRICS_PINNED = {
    "TUD-Campus": (0.557659, 0.729730, 0.451253, 0.582173, 0.941441, 8, 1, 6, 1, 13, 150, 7, 7, 0.526462, 0.277201),
    "TUD-Stadtmitte": (
        0.644619,
        0.819760,
        0.531142,
        0.608997,
        0.939920,
        10,
        5,
        4,
        1,
        45,
        452,
        7,
        6,
        0.564014,
        0.345904,
    ),
    "OVERALL": (0.624296, 0.799176, 0.512211, 0.602640, 0.940268, 18, 6, 10, 2, 58, 602, 14, 13, 0.555116, 0.330177),
}
# The devkit's MOTP (percent) from motmetrics' README.
DEVKIT_MOTP = {"TUD-Campus": 72.3, "TUD-Stadtmitte": 65.4}
# TrackEval 1.3.0's Evaluator + MotChallenge2DBox (BENCHMARK MOT15) on the same files.
TRACKEVAL_HOTA = {
    "TUD-Campus": {"HOTA": 0.391397, "DetA": 0.418047, "AssA": 0.369121, "LocA": 0.770052},
    "TUD-Stadtmitte": {"HOTA": 0.397849, "DetA": 0.392268, "AssA": 0.408841, "LocA": 0.737521},
    "OVERALL": {"HOTA": 0.399957, "DetA": 0.397683, "AssA": 0.412450, "LocA": 0.732480},
}


def expected_from_motmetrics(row: tuple) -> dict[str, float]:
    idf1, idp, idr, recall, precision, _, mt, pt, ml, fp, fn, idsw, frag, mota, motp_distance = row
    return {
        "IDF1": idf1, "IDP": idp, "IDR": idr, "Recall": recall, "Precision": precision, "MT": mt, "PT": pt,
        "ML": ml, "FP": fp, "FN": fn, "IDSW": idsw, "Frag": frag, "MOTA": mota, "MOTP": 1.0 - motp_distance,
    }  # fmt: skip


def assert_metrics(actual: dict[str, float], expected: dict[str, float], atol: float = 1e-6) -> None:
    for name, value in expected.items():
        assert actual[name] == pytest.approx(value, abs=atol), name


# --------------------------------------------------------------------------------------------
# Files


def test_write_converts_xyxy_to_one_based_xywh_and_reads_back(tmp_path: Path) -> None:
    path = write_mot_txt(
        tmp_path / "out" / "seq.txt",
        frames=[2, 1, 1],
        ids=[7, 9, 3],
        boxes=[[0.0, 0.0, 5.0, 8.0], [10.0, 20.0, 40.0, 60.0], [100.5, 50.25, 130.5, 150.25]],
        scores=[0.5, 0.25, 0.9],
    )
    # Sorted by frame then id; bb_left = x1 + 1 (MOT pixels are 1-based), w = x2 - x1.
    assert path.read_text().splitlines() == [
        "1,3,101.500,51.250,30.000,100.000,0.9,-1,-1,-1",
        "1,9,11.000,21.000,30.000,40.000,0.25,-1,-1,-1",
        "2,7,1.000,1.000,5.000,8.000,0.5,-1,-1,-1",
    ]
    rows = read_mot_txt(path)
    np.testing.assert_array_equal(rows.frames, [1, 1, 2])
    np.testing.assert_array_equal(rows.ids, [3, 9, 7])
    np.testing.assert_allclose(rows.boxes, [[100.5, 50.25, 130.5, 150.25], [10, 20, 40, 60], [0, 0, 5, 8]])
    np.testing.assert_allclose(rows.scores, [0.9, 0.25, 0.5])
    np.testing.assert_array_equal(rows.extra, -np.ones((3, 3)))
    assert rows.frames.dtype == np.int64 and len(rows) == 3
    assert [p.name for p in path.parent.iterdir()] == ["seq.txt"]  # no temporary file left


def test_write_takes_tensors_and_defaults_scores_to_one(tmp_path: Path) -> None:
    path = write_mot_txt(tmp_path / "a.txt", torch.tensor([1]), torch.tensor([4]), torch.tensor([[1.0, 2.0, 3.0, 5.0]]))
    assert path.read_text() == "1,4,2.000,3.000,2.000,3.000,1,-1,-1,-1\n"


def test_write_puts_the_class_in_the_eighth_column(tmp_path: Path) -> None:
    boxes = [[0.0, 0.0, 5.0, 8.0], [1.0, 1.0, 6.0, 9.0]]
    path = write_mot_txt(tmp_path / "a.txt", [1, 1], [2, 1], boxes, [0.5, 0.5], classes=[3, 0])
    assert path.read_text().splitlines() == [
        "1,1,2.000,2.000,5.000,8.000,0.5,0,-1,-1",
        "1,2,1.000,1.000,5.000,8.000,0.5,3,-1,-1",
    ]
    with pytest.raises(ValueError, match=r"classes \[1\] must be \[N\] with N = 2"):
        write_mot_txt(tmp_path / "b.txt", [1, 1], [2, 1], boxes, classes=[3])


def test_write_never_replaces_a_file_unless_told(tmp_path: Path) -> None:
    path = tmp_path / "seq.txt"
    path.write_text("keep me\n")
    with pytest.raises(FileExistsError, match="overwrite=True"):
        write_mot_txt(path, [1], [1], [[0, 0, 1, 1]])
    assert path.read_text() == "keep me\n"
    write_mot_txt(path, [1], [1], [[0, 0, 1, 1]], overwrite=True)
    assert path.read_text().startswith("1,1,1.000,1.000,1.000,1.000")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["seq.txt"]


@pytest.mark.parametrize(
    ("frames", "ids", "boxes", "message"),
    [
        ([0], [1], [[0, 0, 1, 1]], "frames must be whole numbers >= 1"),
        ([1], [1], [[0, 0, 1]], r"boxes must be \[N, 4\] XYXY pixels, got shape \[1, 3\]"),
        ([1, 2], [1], [[0, 0, 1, 1]], r"must be \[N\], \[N\], \[N, 4\] and \[N\] with N = 2"),
        ([1], [1.5], [[0, 0, 1, 1]], "ids must be whole"),
        ([1], [1], [[0, 0, np.nan, 1]], "non-finite"),
    ],
)
def test_write_rejects_bad_input(tmp_path: Path, frames, ids, boxes, message) -> None:
    with pytest.raises(ValueError, match=message):
        write_mot_txt(tmp_path / "x.txt", frames, ids, boxes)
    assert not (tmp_path / "x.txt").exists()


def test_read_accepts_the_dialects_in_the_wild(tmp_path: Path) -> None:
    path = tmp_path / "gt.txt"
    # Spaces after commas (the benchmark's own example), a trailing comma, a blank line.
    path.write_text("1, 3, 794.27, 247.59, 71.245, 174.88, -1, -1, -1, -1,\n\n2,3,1,1,10,20,1,-1,-1,-1,\n")
    rows = read_mot_txt(path)
    np.testing.assert_allclose(rows.boxes[0], [793.27, 246.59, 793.27 + 71.245, 246.59 + 174.88])
    np.testing.assert_array_equal(rows.frames, [1, 2])
    (tmp_path / "space.txt").write_text("1 2 3 4 5 6\n")  # whitespace-separated, 6 columns: score 1
    rows = read_mot_txt(tmp_path / "space.txt")
    np.testing.assert_allclose(rows.boxes, [[2, 3, 7, 9]])
    np.testing.assert_array_equal(rows.scores, [1.0])
    assert rows.extra.shape == (1, 0)
    (tmp_path / "empty.txt").write_text("")
    assert len(read_mot_txt(tmp_path / "empty.txt")) == 0


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("1,1,1,1,2,2,1,1,1\n\n1,2,x,1,2,2,1,1,1\n", 3, "column 3 is not a number: 'x'"),
        ("frame,id,x,y,w,h\n1,1,1,1,2,2\n", 1, "column 1 is not a number: 'frame'"),
        ("1,1,1,1,2,2\n  \n2,2,1,1,2,2\n2,3,1,1,2\n", 4, "5 values"),
        ("1,1,1,1,2,2,1,1,1\n1,2,1,1,2\n", 2, "5 values"),
        ("1,1,1,1,2,2,1,1,1\n1,2,1,1,2,2,1\n", 2, "7 values, but line 1 has 9"),
        ("1,1,1,1,2,2\n0,2,1,1,2,2\n", 2, "counts frames from 1"),
        ("1,1,1,1,2,2\n\n1.5,2,1,1,2,2\n", 3, "whole number >= 1"),
        ("1,1,1,1,2,2\n2,2.5,1,1,2,2\n", 2, "id .* whole number"),
        ("1,1,1,1,2,2\n2,2,1,nan,2,2\n", 2, "finite"),
    ],
)
def test_read_names_file_and_line_of_a_malformed_row(tmp_path: Path, text: str, line: int, message: str) -> None:
    path = tmp_path / "bad.txt"
    path.write_text(text)
    with pytest.raises(ValueError, match=rf"bad\.txt, line {line}: .*{message}"):
        read_mot_txt(path)


# --------------------------------------------------------------------------------------------
# Hand-computed cases


def two_people(frames: int = 4) -> tuple[list, list]:
    """Two far-apart people standing still: ids [2] and boxes [2, 4] per frame."""
    boxes = np.array([[10.0, 10.0, 40.0, 110.0], [200.0, 10.0, 230.0, 110.0]])
    return [np.array([1, 2])] * frames, [boxes] * frames


def test_perfect_tracks_score_one(tmp_path: Path) -> None:
    gt_ids, gt_boxes = two_people()
    metrics = evaluate_tracks(gt_ids, gt_boxes, [ids + 10 for ids in gt_ids], gt_boxes)
    assert list(metrics) == list(MOT_METRIC_NAMES)
    assert_metrics(metrics, {"HOTA": 1, "DetA": 1, "AssA": 1, "MOTA": 1, "MOTP": 1, "IDF1": 1, "IDSW": 0})
    assert_metrics(metrics, {"FP": 0, "FN": 0, "TP": 8, "MT": 2, "IDTP": 8, "LocA": 1})
    # The same through files written by write_mot_txt (2D MOT 2015 rules: flag 1 everywhere).
    frames = np.repeat(np.arange(1, 5), 2)
    write_mot_txt(tmp_path / "gt.txt", frames, np.concatenate(gt_ids), np.concatenate(gt_boxes))
    write_mot_txt(tmp_path / "res.txt", frames, np.concatenate(gt_ids) + 10, np.concatenate(gt_boxes))
    assert evaluate_mot(tmp_path / "gt.txt", tmp_path / "res.txt") == metrics


def test_swapped_identities_hand_computed() -> None:
    """Tracks 1 and 2 swap people after frame 2, boxes exact.

    CLEAR: 8 TP, 0 FP/FN, both people switch once: IDSW 2, MOTA (8 - 2) / 8 = 0.75.
    Identity: best one-to-one id map keeps 2 of each person's 4 frames: IDTP 4, IDFP = IDFN = 4,
    IDF1 = 4 / (4 + 2 + 2) = 0.5. HOTA: every match has IoU 1 (DetA 1); each (person, track)
    pair shares 2 frames of 4 + 4 detections: Ass-IoU 2 / (4 + 4 - 2) = 1/3 = AssA, HOTA sqrt(1/3).
    """
    gt_ids, gt_boxes = two_people()
    pred_ids = [np.array([1, 2]), np.array([1, 2]), np.array([2, 1]), np.array([2, 1])]
    metrics = evaluate_tracks(gt_ids, gt_boxes, pred_ids, gt_boxes)
    assert_metrics(metrics, {"TP": 8, "FP": 0, "FN": 0, "IDSW": 2, "MOTA": 0.75})
    assert_metrics(metrics, {"IDTP": 4, "IDFP": 4, "IDFN": 4, "IDF1": 0.5, "Frag": 0})
    assert_metrics(metrics, {"DetA": 1.0, "AssA": 1 / 3, "HOTA": math.sqrt(1 / 3)})


def test_localisation_hand_computed() -> None:
    """Predictions shifted 6 px on 30-px-wide boxes: IoU 24 / 36 = 2/3 for every match.

    MOTA 1 and MOTP 2/3 (IoU >= 0.5). HOTA matches at 13 of its 19 thresholds (0.05 ... 0.65)
    with perfect association, and at none above: HOTA = DetA = AssA = 13/19.
    """
    gt_ids, gt_boxes = two_people()
    shifted = [boxes + np.array([6.0, 0.0, 6.0, 0.0]) for boxes in gt_boxes]
    metrics = evaluate_tracks(gt_ids, gt_boxes, gt_ids, shifted)
    assert_metrics(metrics, {"MOTA": 1.0, "MOTP": 2 / 3, "IDF1": 1.0, "HOTA": 13 / 19, "DetA": 13 / 19})
    assert_metrics(metrics, {"AssA": 13 / 19, "LocA": (13 * 2 / 3 + 6 * 1.0) / 19})
    # Above the CLEAR / Identity threshold nothing matches: every prediction is a FP.
    strict = evaluate_tracks(gt_ids, gt_boxes, gt_ids, shifted, iou_threshold=0.7)
    assert_metrics(strict, {"TP": 0, "FP": 8, "FN": 8, "MOTA": -1.0, "IDF1": 0.0, "HOTA": 13 / 19})


def test_missed_and_false_tracks_hand_computed() -> None:
    """Person 2 is never tracked; a ghost track appears in frames 3-4.

    CLEAR: TP 4, FN 4, FP 2, MOTA (4 - 2) / 8 = 0.25, MT 1, ML 1. Identity: IDTP 4, IDFN 4,
    IDFP 2, IDF1 4 / (4 + 3) = 4/7.
    """
    gt_ids, gt_boxes = two_people()
    ghost = np.array([[400.0, 10.0, 430.0, 110.0]])
    pred_ids = [np.array([5]), np.array([5]), np.array([5, 6]), np.array([5, 6])]
    pred_boxes = [gt_boxes[0][:1]] * 2 + [np.concatenate([gt_boxes[0][:1], ghost])] * 2
    metrics = evaluate_tracks(gt_ids, gt_boxes, pred_ids, pred_boxes)
    assert_metrics(metrics, {"TP": 4, "FN": 4, "FP": 2, "MOTA": 0.25, "MT": 1, "ML": 1, "PT": 0})
    assert_metrics(metrics, {"IDTP": 4, "IDFN": 4, "IDFP": 2, "IDF1": 4 / 7, "Recall": 0.5, "Precision": 4 / 6})


def test_ignored_ground_truth_removes_its_prediction() -> None:
    """A prediction on an ignore region is neither TP nor FP; one elsewhere is a FP."""
    gt_ids, gt_boxes = two_people(frames=1)
    ghost = np.array([[400.0, 10.0, 430.0, 110.0]])
    pred_boxes = [np.concatenate([gt_boxes[0], ghost])]
    metrics = evaluate_tracks(gt_ids, gt_boxes, [np.array([1, 2, 3])], pred_boxes, gt_ignore=[np.array([False, True])])
    assert_metrics(metrics, {"TP": 1, "FP": 1, "FN": 0, "MOTA": 0.0, "Precision": 0.5})


def test_empty_predictions_and_empty_ground_truth(tmp_path: Path) -> None:
    gt_ids, gt_boxes = two_people(frames=2)
    nothing = [np.empty(0, np.int64)] * 2, [np.empty((0, 4))] * 2
    missed = evaluate_tracks(gt_ids, gt_boxes, *nothing)
    assert_metrics(missed, {"FN": 4, "TP": 0, "FP": 0, "MOTA": 0.0, "HOTA": 0.0, "IDF1": 0.0, "ML": 2})
    ghosts = evaluate_tracks(*nothing, gt_ids, gt_boxes)
    assert_metrics(ghosts, {"FP": 4, "FN": 0, "HOTA": 0.0, "IDF1": 0.0})
    (tmp_path / "gt.txt").write_text("")
    (tmp_path / "res.txt").write_text("")
    assert_metrics(evaluate_mot(tmp_path / "gt.txt", tmp_path / "res.txt"), {"TP": 0, "FP": 0, "FN": 0, "MOTA": 0})


def test_in_memory_input_errors_name_the_frame() -> None:
    gt_ids, gt_boxes = two_people(frames=2)
    with pytest.raises(ValueError, match="one entry per frame"):
        evaluate_tracks(gt_ids, gt_boxes, gt_ids[:1], gt_boxes[:1])
    with pytest.raises(ValueError, match="frame 2: pred_ids"):
        evaluate_tracks(gt_ids, gt_boxes, [np.array([1, 2]), np.array([1])], gt_boxes)
    with pytest.raises(ValueError, match=r"frame 1: gt_boxes must be \[N, 4\] XYXY pixels, got shape \[2, 5\]"):
        evaluate_tracks(gt_ids, [np.zeros((2, 5))] * 2, gt_ids, gt_boxes)
    with pytest.raises(ValueError, match="id 1 appears twice in frame 2"):
        evaluate_tracks(gt_ids, gt_boxes, [np.array([1, 2]), np.array([1, 1])], gt_boxes)
    with pytest.raises(ValueError, match="iou_threshold"):
        evaluate_tracks(gt_ids, gt_boxes, gt_ids, gt_boxes, iou_threshold=0.0)
    with pytest.raises(ValueError, match="no frames"):
        MOTEvaluator().evaluate()


def test_evaluate_does_not_patch_numpy() -> None:
    """TrackEval 1.3 needs no removed NumPy alias, and we add none (no leak into user code)."""
    assert int(np.__version__.split(".")[0]) >= 2
    gt_ids, gt_boxes = two_people(frames=1)
    evaluate_tracks(gt_ids, gt_boxes, gt_ids, gt_boxes)
    for alias in ("float", "int", "asfarray"):  # removed in NumPy 2 (np.bool is back)
        assert not hasattr(np, alias), alias


# --------------------------------------------------------------------------------------------
# Real files: TUD-Campus and TUD-Stadtmitte as shipped with motmetrics


def motmetrics_summary(monkeypatch: pytest.MonkeyPatch, names: tuple[str, ...]) -> dict[str, dict[str, float]]:
    """motmetrics' own figures on the TUD files, as its test computes them (IoU distance <= 0.5).

    motmetrics 1.4.0 calls np.asfarray, removed in NumPy 2.0; monkeypatch restores numpy after
    the test, so the stand-in never outlives it.
    """
    monkeypatch.setattr(np, "asfarray", lambda a, dtype=np.float64: np.asarray(a, dtype=dtype), raising=False)
    accumulators = [
        motmetrics.utils.compare_to_groundtruth(
            motmetrics.io.loadtxt(TUD_DIR / name / "gt.txt"),
            motmetrics.io.loadtxt(TUD_DIR / name / "test.txt"),
            "iou",
            distth=0.5,
        )
        for name in names
    ]
    columns = motmetrics.metrics.motchallenge_metrics[:15]
    summary = motmetrics.metrics.create().compute_many(
        accumulators, metrics=columns, names=list(names), generate_overall=True
    )
    return {name: expected_from_motmetrics(tuple(summary.loc[name, columns])) for name in summary.index}


def test_tud_campus_equals_devkit_motmetrics_and_trackeval(monkeypatch: pytest.MonkeyPatch) -> None:
    metrics = evaluate_mot(TUD_DIR / "TUD-Campus" / "gt.txt", TUD_DIR / "TUD-Campus" / "test.txt")
    # motmetrics' pinned values (its MOTP converted from distance to IoU) ...
    assert_metrics(metrics, expected_from_motmetrics(MOTMETRICS_PINNED["TUD-Campus"]))
    # ... the devkit's rounded table (percent) ...
    devkit = {"IDF1": 55.8, "IDP": 73.0, "IDR": 45.1, "Recall": 58.2, "Precision": 94.1, "MOTA": 52.6, "MOTP": 72.3}
    assert_metrics({name: 100 * metrics[name] for name in devkit}, devkit, atol=0.05)
    # ... TrackEval's pipeline (the only HOTA reference) and motmetrics run here and now.
    assert_metrics(metrics, TRACKEVAL_HOTA["TUD-Campus"])
    assert_metrics(metrics, motmetrics_summary(monkeypatch, ("TUD-Campus",))["TUD-Campus"], atol=1e-12)
    assert metrics["IDTP"] == 162 and metrics["TP"] == 209


def tud_folders(root: Path) -> tuple[Path, Path]:
    """The two TUD sequences in the MOTChallenge layout: gt/{seq}/gt/gt.txt and results/{seq}.txt."""
    for name in TUD_SEQUENCES:
        (root / "gt" / name / "gt").mkdir(parents=True)
        shutil.copy(TUD_DIR / name / "gt.txt", root / "gt" / name / "gt" / "gt.txt")
        (root / "results").mkdir(exist_ok=True)
        shutil.copy(TUD_DIR / name / "test.txt", root / "results" / f"{name}.txt")
    return root / "gt", root / "results"


def test_tud_folders_combined_equal_motmetrics_overall(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    gt_dir, results_dir = tud_folders(tmp_path)
    results = evaluate_mot_sequences(gt_dir, results_dir)
    assert isinstance(results, MOTResults) and list(results.sequences) == list(TUD_SEQUENCES)
    reference = motmetrics_summary(monkeypatch, TUD_SEQUENCES)
    for name in TUD_SEQUENCES:
        assert_metrics(results.sequences[name], expected_from_motmetrics(MOTMETRICS_PINNED[name]))
        assert_metrics(results.sequences[name], reference[name], atol=1e-12)
        assert_metrics(results.sequences[name], TRACKEVAL_HOTA[name])
        assert 100 * results.sequences[name]["MOTP"] == pytest.approx(DEVKIT_MOTP[name], abs=0.05)
    # Combined = counts summed over sequences, as motmetrics' OVERALL row and TrackEval's COMBINED_SEQ.
    assert_metrics(results.combined, expected_from_motmetrics(MOTMETRICS_PINNED["OVERALL"]))
    assert_metrics(results.combined, reference["OVERALL"], atol=1e-12)
    assert_metrics(results.combined, TRACKEVAL_HOTA["OVERALL"])
    assert evaluate_mot(gt_dir, results_dir) == results.combined
    # The flat layout {seq}.txt gives the same numbers.
    flat = tmp_path / "flat"
    flat.mkdir()
    for name in TUD_SEQUENCES:
        shutil.copy(TUD_DIR / name / "gt.txt", flat / f"{name}.txt")
    assert evaluate_mot_sequences(flat, results_dir) == results


def test_tud_in_memory_equals_files() -> None:
    """MOTEvaluator fed frame by frame (as a validation loop would) gives the files' numbers."""
    evaluator = MOTEvaluator()
    for name in TUD_SEQUENCES:
        gt, results = read_mot_txt(TUD_DIR / name / "gt.txt"), read_mot_txt(TUD_DIR / name / "test.txt")
        for frame in range(1, max(gt.frames.max(), results.frames.max()) + 1):
            in_gt, in_results = gt.frames == frame, results.frames == frame
            evaluator.add(
                torch.from_numpy(gt.ids[in_gt]),
                torch.from_numpy(gt.boxes[in_gt]),
                results.ids[in_results],
                results.boxes[in_results],
                sequence=name,
            )
    results = evaluator.evaluate()
    assert_metrics(results.combined, expected_from_motmetrics(MOTMETRICS_PINNED["OVERALL"]))
    assert_metrics(results.combined, TRACKEVAL_HOTA["OVERALL"])
    assert_metrics(results.sequences["TUD-Campus"], TRACKEVAL_HOTA["TUD-Campus"])


def test_folder_errors_name_the_culprit(tmp_path: Path) -> None:
    gt_dir, results_dir = tud_folders(tmp_path)
    os.remove(results_dir / "TUD-Stadtmitte.txt")
    with pytest.raises(FileNotFoundError, match="no results for sequence 'TUD-Stadtmitte'"):
        evaluate_mot_sequences(gt_dir, results_dir)
    campus = evaluate_mot_sequences(gt_dir, results_dir, sequences=["TUD-Campus"])
    assert list(campus.sequences) == ["TUD-Campus"]
    with pytest.raises(ValueError, match="no ground truth for \\['MOT17-02'\\]"):
        evaluate_mot_sequences(gt_dir, results_dir, sequences=["MOT17-02"])
    with pytest.raises(ValueError, match="both be files or both be folders"):
        evaluate_mot(gt_dir, results_dir / "TUD-Campus.txt")
    # seqinfo.ini fixes the length: results past it are refused, as TrackEval does.
    (gt_dir / "TUD-Campus" / "seqinfo.ini").write_text("[Sequence]\nname=TUD-Campus\nseqLength=71\n")
    with open(results_dir / "TUD-Campus.txt", "a") as file:
        file.write("72,3,113.84,274.5,57.307,130.05,-1,-1,-1,-1\n")
    with pytest.raises(ValueError, match="TUD-Campus.txt: frame 72 is past the sequence's seqLength=71"):
        evaluate_mot_sequences(gt_dir, results_dir, sequences=["TUD-Campus"])


# --------------------------------------------------------------------------------------------
# MOT16/17/20 ground-truth rules, against TrackEval's own pipeline

# frame, id, bb_left, bb_top, bb_width, bb_height, flag, class, visibility
MOT17_GT = """\
1,1,10,10,30,100,1,1,1.0
1,2,100,10,30,100,0,8,1.0
1,3,200,10,30,100,1,7,0.5
1,4,300,10,60,40,0,3,1.0
1,5,400,10,30,100,0,1,0.1
1,6,500,10,40,40,0,6,1.0
2,1,10,10,30,100,1,1,1.0
2,2,100,10,30,100,0,8,1.0
2,7,300,10,30,100,1,1,1.0
2,4,300,10,30,100,0,3,1.0
3,1,10,10,30,100,1,1,1.0
3,2,100,10,30,100,0,8,1.0
"""
MOT17_RESULTS = """\
1,101,10,10,30,100,0.9,-1,-1,-1
1,102,100,10,30,100,0.9,-1,-1,-1
1,103,200,10,30,100,0.9,-1,-1,-1
1,104,300,10,60,40,0.9,-1,-1,-1
1,105,400,10,30,100,0.9,-1,-1,-1
1,106,500,10,40,40,0.9,-1,-1,-1
1,107,700,10,30,100,0.9,-1,-1,-1
2,101,10,10,30,100,0.9,-1,-1,-1
2,108,100,10,30,100,0.9,-1,-1,-1
2,109,106,10,30,100,0.9,-1,-1,-1
2,110,300,10,30,100,0.9,-1,-1,-1
"""


def trackeval_pipeline(root: Path, benchmark: str, num_frames: int) -> dict[str, float]:
    """TrackEval's Evaluator + MotChallenge2DBox on root/gt/seq/gt/gt.txt and root/trackers/t/data/seq.txt."""
    import trackeval

    silent = {"PRINT_CONFIG": False}
    evaluator = trackeval.Evaluator(
        {"USE_PARALLEL": False, "PRINT_RESULTS": False, "OUTPUT_SUMMARY": False, "OUTPUT_DETAILED": False,
         "PLOT_CURVES": False, "TIME_PROGRESS": False, "DISPLAY_LESS_PROGRESS": True, **silent}
    )  # fmt: skip
    dataset = trackeval.datasets.MotChallenge2DBox(
        {"GT_FOLDER": str(root / "gt"), "TRACKERS_FOLDER": str(root / "trackers"), "SKIP_SPLIT_FOL": True,
         "SEQ_INFO": {"seq": num_frames}, "BENCHMARK": benchmark, **silent}
    )  # fmt: skip
    metrics = [trackeval.metrics.HOTA(), trackeval.metrics.CLEAR(silent), trackeval.metrics.Identity(silent)]
    with contextlib.redirect_stdout(io.StringIO()):
        output, _ = evaluator.evaluate([dataset], metrics)
    raw = output["MotChallenge2DBox"]["t"]["seq"]["pedestrian"]
    names = {"TP": "CLR_TP", "FP": "CLR_FP", "FN": "CLR_FN", "Recall": "CLR_Re", "Precision": "CLR_Pr"}
    reference = {name: float(np.mean(raw["HOTA"][name])) for name in ("HOTA", "DetA", "AssA", "LocA")}
    for name in ("MOTA", "MOTP", "IDSW", "MT", "PT", "ML", "Frag", "TP", "FP", "FN", "Recall", "Precision"):
        reference[name] = float(raw["CLEAR"][names.get(name, name)])
    reference.update({name: float(raw["Identity"][name]) for name in ("IDF1", "IDP", "IDR", "IDTP", "IDFP", "IDFN")})
    return reference


@pytest.mark.parametrize(
    ("benchmark", "counts"),
    [
        # Frame 1: the distractor (8) and the static person (7) take their predictions away; the
        # car, the zero-flagged pedestrian, the non-motorised vehicle (6) and empty ground give
        # 4 FP. Frame 2: two predictions on one distractor: the better one is removed, the other
        # is a FP; one on a pedestrian standing where a car is, a TP. Frame 3: one miss.
        ("MOT17", {"TP": 3, "FP": 5, "FN": 1, "IDSW": 0, "MOTA": (3 - 5) / 4}),
        ("MOT16", {"TP": 3, "FP": 5, "FN": 1, "IDSW": 0, "MOTA": (3 - 5) / 4}),
        ("MOT20", {"TP": 3, "FP": 4, "FN": 1, "IDSW": 0, "MOTA": (3 - 4) / 4}),  # class 6 is a distractor
    ],
)
def test_mot17_rules_equal_trackeval_pipeline(tmp_path: Path, benchmark: str, counts: dict[str, float]) -> None:
    (tmp_path / "gt" / "seq" / "gt").mkdir(parents=True)
    (tmp_path / "gt" / "seq" / "gt" / "gt.txt").write_text(MOT17_GT)
    (tmp_path / "trackers" / "t" / "data").mkdir(parents=True)
    (tmp_path / "trackers" / "t" / "data" / "seq.txt").write_text(MOT17_RESULTS)
    ours = evaluate_mot(
        tmp_path / "gt" / "seq" / "gt" / "gt.txt", tmp_path / "trackers" / "t" / "data" / "seq.txt", benchmark=benchmark
    )
    assert_metrics(ours, counts)
    assert_metrics(ours, trackeval_pipeline(tmp_path, benchmark, num_frames=3), atol=1e-12)
    if benchmark == "MOT17":  # 9 columns: "auto" applies these rules
        assert (
            evaluate_mot(tmp_path / "gt" / "seq" / "gt" / "gt.txt", tmp_path / "trackers" / "t" / "data" / "seq.txt")
            == ours
        )


def test_mot17_rules_reject_files_without_classes(tmp_path: Path) -> None:
    gt = TUD_DIR / "TUD-Stadtmitte" / "gt.txt"  # 2D MOT 2015: world x in column 8
    with pytest.raises(ValueError, match=r"gt\.txt: class 4\.4852 .* pass benchmark='MOT15'"):
        evaluate_mot(gt, TUD_DIR / "TUD-Stadtmitte" / "test.txt", benchmark="MOT17")
    with pytest.raises(ValueError, match="unknown benchmark 'MOT18'"):
        evaluate_mot(gt, TUD_DIR / "TUD-Stadtmitte" / "test.txt", benchmark="MOT18")
    results = tmp_path / "res.txt"
    results.write_text("1,1,10,10,30,100,0.9,3,-1,-1\n")  # a car class in results
    with pytest.raises(ValueError, match="res.txt: column 8 .* pedestrians only"):
        evaluate_mot(gt, results)
    results.write_text("1,1,10,10,30,100,0.9,-1,-1,-1\n1,1,50,10,30,100,0.9,-1,-1,-1\n")
    with pytest.raises(ValueError, match="res.txt: id 1 appears twice in frame 1"):
        evaluate_mot(gt, results)
