"""`centernet eval-mot GT RESULTS` in a fresh process: the table of a file pair and of folders
(one row per sequence and COMBINED), numbers computed by hand, the --json file, and one-line
errors naming the path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from centernet_lightning.cli.eval_mot import COLUMNS

CENTERNET = [sys.executable, "-m", "centernet_lightning.cli", "eval-mot"]
# Two people walking right, 4 frames: (gt id, bb_left at frame 1, bb_top); boxes 20 x 40 px.
PEOPLE = ((1, 10, 10), (2, 60, 15))
FRAMES = range(1, 5)


def gt_text() -> str:
    """MOT17 ground truth (9 columns: flag 1, class 1 pedestrian, visibility 1)."""
    rows = [f"{f},{i},{x + 5 * f},{y},20,40,1,1,1" for f in FRAMES for i, x, y in PEOPLE]
    return "\n".join(rows) + "\n"


def results_text(switch: bool = False) -> str:
    """The ground truth's boxes as results (``conf, -1, -1, -1``). ``switch``: person 2 is id 2 in
    frames 1-2, missed in frame 3, id 3 in frame 4: 7 TP, 1 FN, 1 IDSW, 1 Frag, 0 FP."""
    rows = []
    for f in FRAMES:
        for i, x, y in PEOPLE:
            track = i
            if switch and i == 2 and f == 3:
                continue
            if switch and i == 2 and f == 4:
                track = 3
            rows.append(f"{f},{track},{x + 5 * f},{y},20,40,1,-1,-1,-1")
    return "\n".join(rows) + "\n"


# The switch case by hand (8 gt boxes, exact boxes so every HOTA threshold agrees):
# MOTA = 1 - (FN + FP + IDSW) / GT = 1 - 2/8; IDF1: gt 1 <-> id 1 (4), gt 2 <-> id 2 (2): IDTP 6,
# IDFN 2, IDFP 1 -> 12/15, IDP 6/7, IDR 6/8; DetA = 7/8; AssA = (4 * 1 + 2 * 2/4 + 1 * 1/4) / 7 = 0.75;
# HOTA = sqrt(DetA * AssA).
SWITCH = {"MOTA": 0.75, "MOTP": 1.0, "IDF1": 0.8, "IDP": 6 / 7, "IDR": 0.75, "DetA": 0.875, "AssA": 0.75}
SWITCH["HOTA"] = (SWITCH["DetA"] * SWITCH["AssA"]) ** 0.5
SWITCH_COUNTS = {"IDSW": 1, "FP": 0, "FN": 1, "Frag": 1, "TP": 7, "IDTP": 6, "IDFN": 2, "IDFP": 1}


def eval_mot(*args: str | Path, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    command = [*CENTERNET, *map(str, args)]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=120, env=env)


def table(stdout: str) -> dict[str, dict[str, str]]:
    """The printed table as ``{row name: {column: cell}}``; its header must be Sequence + COLUMNS."""
    lines = [line.split() for line in stdout.splitlines() if line.strip()]
    header = lines[0]
    assert header == ["Sequence", *COLUMNS], stdout
    return {cells[0]: dict(zip(COLUMNS, cells[1:], strict=True)) for cells in lines[1:] if len(cells) == len(header)}


def percent(value: float) -> str:
    return f"{100 * value:.1f}"


def test_a_perfect_results_file_scores_100_in_a_row_named_after_the_sequence(tmp_path: Path) -> None:
    gt = tmp_path / "MOT17-02" / "gt" / "gt.txt"
    gt.parent.mkdir(parents=True)
    gt.write_text(gt_text())
    (tmp_path / "MOT17-02.txt").write_text(results_text())
    done = eval_mot(gt, "MOT17-02.txt", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    rows = table(done.stdout)
    assert list(rows) == ["MOT17-02"]
    row = rows["MOT17-02"]
    assert row["MOTA"] == row["IDF1"] == row["HOTA"] == row["MOTP"] == "100.0"
    assert row["IDSW"] == row["FP"] == row["FN"] == row["Frag"] == "0"


def test_folders_print_each_sequence_and_combined_and_write_the_named_json(tmp_path: Path) -> None:
    for folder in ("gt", "results"):
        (tmp_path / folder).mkdir()
    for sequence, switch in (("perfect", False), ("switch", True)):
        (tmp_path / "gt" / f"{sequence}.txt").write_text(gt_text())
        (tmp_path / "results" / f"{sequence}.txt").write_text(results_text(switch))
    out = tmp_path / "metrics.json"
    out.write_text("an older file the user names again: replaced")
    done = eval_mot("gt", "results", "--json", out, cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    rows = table(done.stdout)
    assert list(rows) == ["perfect", "switch", "COMBINED"]
    assert rows["perfect"]["MOTA"] == rows["perfect"]["HOTA"] == "100.0"
    for name, value in SWITCH.items():
        assert rows["switch"][name] == percent(value), name
    for name in ("IDSW", "FP", "FN", "Frag"):
        assert rows["switch"][name] == str(SWITCH_COUNTS[name]), name
    # Combined: counts summed over both sequences (16 gt boxes), not a mean of the rows.
    assert rows["COMBINED"]["MOTA"] == percent(1 - 2 / 16) == "87.5"
    assert rows["COMBINED"]["IDF1"] == percent(2 * 14 / (2 * 14 + 2 + 1))
    assert (rows["COMBINED"]["IDSW"], rows["COMBINED"]["FN"]) == ("1", "1")

    written = json.loads(out.read_text())
    switch = written["sequences"]["switch"]
    for name, value in SWITCH.items():
        assert switch[name] == pytest.approx(value, abs=1e-9), name
    for name, value in SWITCH_COUNTS.items():
        assert switch[name] == value and isinstance(switch[name], int), name
    assert written["sequences"]["perfect"]["MOTA"] == 1.0
    assert written["combined"]["MOTA"] == pytest.approx(0.875)
    assert (written["benchmark"], written["iou_threshold"]) == ("auto", 0.5)
    assert [path.name for path in tmp_path.iterdir() if path.name.startswith(".")] == []  # no temporary left


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["gt.txt", "missing.txt"], "missing.txt: no such file or folder"),
        (["gt.txt", "."], "give two files or two folders"),
        (["gt.txt", "gt.txt", "--sequences", "A"], "--sequences needs GT and RESULTS folders"),
        (["gt.txt", "gt.txt", "--json", "gt.txt"], "--json gt.txt is the file being evaluated"),
        (["gt.txt", "gt.txt", "--iou", "0"], "--iou"),
    ],
)
def test_bad_paths_and_options_end_in_one_line_naming_them(tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "gt.txt").write_text(gt_text())
    done = eval_mot(*args, cwd=tmp_path)
    assert done.returncode != 0
    assert message in done.stderr and done.stderr.startswith("centernet eval-mot: "), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
    assert (tmp_path / "gt.txt").read_text() == gt_text()


def test_a_malformed_row_is_named_by_file_and_line(tmp_path: Path) -> None:
    (tmp_path / "gt.txt").write_text(gt_text())
    (tmp_path / "results.txt").write_text(results_text() + "5,1,10,10,20\n")  # a short row, line 9
    done = eval_mot("gt.txt", "results.txt", cwd=tmp_path)
    assert done.returncode != 0 and "Traceback" not in done.stderr
    assert done.stderr.startswith("centernet eval-mot: results.txt, line 9"), done.stderr
    assert len(done.stderr.strip().splitlines()) == 1, done.stderr
