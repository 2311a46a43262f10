"""MOTDataset on small MOTChallenge folders written by the tests."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from centernet_lightning.datasets import collate_detection
from centernet_lightning.datasets.mot import MOTDataset, read_mot_gt
from centernet_lightning.datasets.mot_io import read_mot_txt, write_mot_txt
from centernet_lightning.datasets.tracking import FrameRecord, frames_by_sequence
from centernet_lightning.datasets.transforms import build_transforms
from centernet_lightning.eval.mot import evaluate_mot

HEIGHT, WIDTH = 40, 60
# SEQ-A, 3 frames (frame 3 has no rows). Columns: frame,id,left,top,width,height,conf,class,visibility.
# MOT pixels are 1-based: XYXY = (left - 1, top - 1, left - 1 + width, top - 1 + height).
SEQ_A_GT = [
    "1,1,10,5,20,30,1,1,1.0",  # pedestrian id 1 -> XYXY [9, 4, 29, 34]
    "2,1,12.5,5,20,30,1,1,0.5",  # ... frame 2 -> [11.5, 4, 31.5, 34]
    "1,9,-4,0,10,10,1,1,0.8",  # pedestrian id 9, past the left border -> [-5, -1, 5, 9]
    "2,9,40,20,30,30,1,1,0.1",  # id 9 hardly visible -> [39, 19, 69, 49], past the 60x40 frame
    "1,3,30,10,5,5,0,1,1.0",  # pedestrian with the consider flag 0: dropped
    "2,4,0,0,8,8,0,7,1.0",  # static person (distractor, flag 0 as in MOT17): ignore region [0, 0, 7, 7]
    "1,5,50,30,5,5,0,3,1.0",  # car: dropped
    "1,6,1,1,4,4,0,12,0.3",  # reflection (distractor): ignore region [0, 0, 4, 4]
    "",  # blank lines are skipped
]
# SEQ-B, 2 frames, reusing the raw ids 1 and 9 of SEQ-A.
SEQ_B_GT = ["1,9,0,0,10,10,1,1,1", "1,1,20,20,10,10,1,1,1", "2,1,21,20,10,10,1,1,1"]


def write_frame(write_image, path: Path, height: int = HEIGHT, width: int = WIDTH, value: int = 0) -> None:
    write_image(path, np.full((height, width, 3), value, dtype=np.uint8))


def write_sequence(write_image, root: Path, name: str, num_frames: int, gt: list[str] | None, seqinfo: bool = True):
    folder = root / "train" / name
    for frame in range(1, num_frames + 1):
        write_frame(write_image, folder / "img1" / f"{frame:06d}.png", value=frame)
    if seqinfo:
        (folder / "seqinfo.ini").write_text(
            f"[Sequence]\nname={name}\nimDir=img1\nframeRate=25\nseqLength={num_frames}\n"
            f"imWidth={WIDTH}\nimHeight={HEIGHT}\nimExt=.png\n"
        )
    if gt is not None:
        (folder / "gt").mkdir(parents=True)
        (folder / "gt" / "gt.txt").write_text("\n".join(gt) + "\n")
    return folder


@pytest.fixture
def mot_root(tmp_path, write_image) -> Path:
    root = tmp_path / "MOT"
    write_sequence(write_image, root, "SEQ-A", 3, SEQ_A_GT)
    write_sequence(write_image, root, "SEQ-B", 2, SEQ_B_GT)
    return root


def split_objects(sample):
    """(target boxes, target track ids, ignore boxes, ignore track ids) of a sample."""
    ignore = sample["ignore"]
    return (
        sample["bboxes"][~ignore],
        sample["track_ids"][~ignore],
        sample["bboxes"][ignore],
        sample["track_ids"][ignore],
    )


def test_boxes_filters_and_ignore_regions(mot_root):
    dataset = MOTDataset(mot_root, "train")
    assert len(dataset) == 5 and dataset.class_names == ["pedestrian"] and dataset.num_classes == 1
    boxes, ids, ignore_boxes, ignore_ids = split_objects(dataset[0])
    np.testing.assert_array_equal(boxes, [[9, 4, 29, 34], [-5, -1, 5, 9]])  # as annotated
    assert boxes.dtype == np.float32 and ids.tolist() == [0, 1]  # raw ids 1, 9 -> 0, 1
    np.testing.assert_array_equal(ignore_boxes, [[0, 0, 4, 4]])
    assert ignore_ids.tolist() == [-1]
    assert dataset[0]["labels"].tolist() == [0, 0, 0]
    boxes, ids, ignore_boxes, _ = split_objects(dataset[1])
    np.testing.assert_array_equal(boxes, [[11.5, 4, 31.5, 34], [39, 19, 69, 49]])
    assert ids.tolist() == [0, 1]
    np.testing.assert_array_equal(ignore_boxes, [[-1, -1, 7, 7]])


def test_identities_unique_across_sequences(mot_root):
    dataset = MOTDataset(mot_root, "train")
    # SEQ-A's target raw ids are 1 and 9 (3 has the flag 0, 4 and 6 are distractors); SEQ-B's come after them.
    assert dataset.sequences["SEQ-A"].raw_ids.tolist() == [1, 9]
    assert dataset.num_identities == 4
    assert (dataset.sequences["SEQ-B"].first_identity, dataset.sequences["SEQ-B"].num_identities) == (2, 2)
    frame_b1 = dataset[3]
    assert frame_b1["track_ids"].tolist() == [3, 2]  # raw 9 -> 2 + 1, raw 1 -> 2 + 0
    assert dataset[4]["track_ids"].tolist() == [2]
    all_ids = np.concatenate([r.fields["track_ids"] for r in dataset.records])
    assert set(all_ids[all_ids >= 0].tolist()) == set(range(dataset.num_identities))


def test_same_boxes_as_the_evaluation_reader_and_results_written_back_are_the_gt(mot_root, write_image, tmp_path):
    """One convention: MOTDataset and mot_io.read_mot_txt agree, and write_mot_txt of the boxes gives the gt back."""
    gt = ["1,1,1,1,10,10,1,1,1", "1,2,20.5,3.25,15,20,1,1,1", "2,2,30,10,29,30,1,1,1", "2,1,2,1,10,10,1,1,1"]
    gt_path = write_sequence(write_image, mot_root, "SEQ-C", 2, gt) / "gt" / "gt.txt"
    dataset = MOTDataset(mot_root, "train", sequences=["SEQ-C"])
    boxes = np.concatenate([r.bboxes for r in dataset.records])  # frame order, then file order; none clipped
    np.testing.assert_array_equal(boxes[:2], [[0, 0, 10, 10], [19.5, 2.25, 34.5, 22.25]])  # 1-based -> 0-based
    rows = read_mot_txt(gt_path)
    np.testing.assert_array_equal(boxes, rows.boxes[np.argsort(rows.frames, kind="stable")])

    info = dataset.sequences["SEQ-C"]
    frames = np.concatenate([np.full(len(r.bboxes), r.frame_id) for r in dataset.records])
    raw_ids = info.raw_ids[np.concatenate([r.fields["track_ids"] for r in dataset.records]) - info.first_identity]
    results = write_mot_txt(tmp_path / "results.txt", frames, raw_ids, boxes)
    written = np.loadtxt(results, delimiter=",", usecols=range(6), ndmin=2)
    expected = np.loadtxt(gt_path, delimiter=",", usecols=range(6), ndmin=2)
    np.testing.assert_array_equal(written, expected[np.lexsort((expected[:, 1], expected[:, 0]))])
    metrics = evaluate_mot(gt_path, results)
    assert metrics["MOTA"] == 1 and metrics["MOTP"] == pytest.approx(1.0, abs=1e-12)


def test_frame_records_know_their_sequence(mot_root):
    dataset = MOTDataset(mot_root, "train")
    records = dataset.records
    assert all(isinstance(r, FrameRecord) for r in records)
    assert [(r.sequence, r.frame_index, r.frame_id, r.image_id) for r in records] == [
        ("SEQ-A", 0, 1, 0),
        ("SEQ-A", 1, 2, 1),
        ("SEQ-A", 2, 3, 2),
        ("SEQ-B", 0, 1, 3),
        ("SEQ-B", 1, 2, 4),
    ]
    assert frames_by_sequence(records) == {"SEQ-A": [0, 1, 2], "SEQ-B": [3, 4]}
    info = dataset.sequences["SEQ-A"]
    assert (info.num_frames, info.frame_rate, info.size) == (3, 25.0, (HEIGHT, WIDTH))
    assert records[0].path == mot_root / "train" / "SEQ-A" / "img1" / "000001.png"


def test_empty_frame(mot_root):
    sample = MOTDataset(mot_root, "train")[2]  # SEQ-A frame 3: no gt rows
    assert sample["bboxes"].shape == (0, 4) and sample["labels"].shape == (0,)
    assert sample["ignore"].shape == (0,) and sample["track_ids"].dtype == np.int64
    assert sample["image"].shape == (HEIGHT, WIDTH, 3)


def test_min_visibility_makes_hidden_targets_ignore_regions(mot_root):
    sample = MOTDataset(mot_root, "train", min_visibility=0.25)[1]
    boxes, ids, ignore_boxes, ignore_ids = split_objects(sample)
    np.testing.assert_array_equal(boxes, [[11.5, 4, 31.5, 34]])
    np.testing.assert_array_equal(ignore_boxes, [[39, 19, 69, 49], [-1, -1, 7, 7]])
    assert ids.tolist() == [0] and ignore_ids.tolist() == [-1, -1]
    at_threshold = MOTDataset(mot_root, "train", min_visibility=0.5)[1]
    assert at_threshold["track_ids"][~at_threshold["ignore"]].tolist() == [0]  # visibility 0.5 >= 0.5: a target
    dropped = MOTDataset(mot_root, "train", min_visibility=0.25, ignore_distractors=False)
    assert not np.concatenate([r.fields["ignore"] for r in dropped.records]).any()
    np.testing.assert_array_equal(dropped[1]["bboxes"], [[11.5, 4, 31.5, 34]])
    assert len(dropped[0]["bboxes"]) == 2  # the reflection is gone


def test_more_classes_and_names(mot_root):
    dataset = MOTDataset(mot_root, "train", classes=(1, 7), class_names=("walking", "standing"))
    assert dataset.class_names == ["walking", "standing"]
    sample = dataset[1]
    # the static person (flag 0) is now a class, and flag-0 rows are never targets: dropped, not ignored
    assert sample["labels"].tolist() == [0, 0] and not sample["ignore"].any()
    with pytest.raises(ValueError, match="distinct MOT class ids"):
        MOTDataset(mot_root, "train", classes=(14,))
    with pytest.raises(ValueError, match="must name each of the classes"):
        MOTDataset(mot_root, "train", classes=(1,), class_names=("a", "b"))


def test_sequence_selection(mot_root):
    only_b = MOTDataset(mot_root, "train", sequences=["SEQ-B"])
    assert len(only_b) == 2 and list(only_b.sequences) == ["SEQ-B"]
    assert only_b[0]["track_ids"].tolist() == [1, 0] and only_b.num_identities == 2
    with pytest.raises(ValueError, match=r"no sequences \['SEQ-C'\]; available: \['SEQ-A', 'SEQ-B'\]"):
        MOTDataset(mot_root, "train", sequences=["SEQ-C"])


def test_missing_seqinfo_gives_defaults_and_a_warning(mot_root, write_image, caplog):
    folder = write_sequence(write_image, mot_root, "SEQ-C", 2, ["2,1,1,2,3,4,1,1,1"], seqinfo=False)
    write_frame(write_image, folder / "img1" / "000002.png", height=30, width=50)  # frames of different sizes
    with caplog.at_level(logging.WARNING):
        dataset = MOTDataset(mot_root, "train", sequences=["SEQ-C"])
    assert "seqinfo.ini: file not found; using imDir=img1, frameRate=30" in caplog.text
    info = dataset.sequences["SEQ-C"]
    assert (info.num_frames, info.frame_rate, info.size) == (2, 30.0, None)
    assert dataset[0]["original_size"] == (HEIGHT, WIDTH) and dataset[1]["original_size"] == (30, 50)
    np.testing.assert_array_equal(dataset[1]["bboxes"], [[0, 1, 3, 5]])  # 1-based (1, 2) -> 0-based (0, 1)


def test_frame_of_another_size_is_resized_to_seqinfo(mot_root, write_image, caplog):
    write_frame(write_image, mot_root / "train" / "SEQ-B" / "img1" / "000002.png", height=20, width=30)
    dataset = MOTDataset(mot_root, "train", sequences=["SEQ-B"])
    with caplog.at_level(logging.WARNING):
        sample = dataset[1]
    assert sample["image"].shape == (HEIGHT, WIDTH, 3) and sample["original_size"] == (HEIGHT, WIDTH)
    assert "000002.png is 30x20 (WxH) on disk but 60x40 in its annotation" in caplog.text


def test_sequence_without_gt_has_no_objects(mot_root, write_image, caplog):
    write_sequence(write_image, mot_root, "SEQ-T", 2, None)
    with caplog.at_level(logging.WARNING):
        dataset = MOTDataset(mot_root, "train")
    assert "1 of 3 sequences have no gt/gt.txt" in caplog.text and "SEQ-T" in caplog.text
    assert [len(dataset[i]["bboxes"]) for i in (5, 6)] == [0, 0]


GT_ERRORS = {
    "too few values": ("1,1,10,5,20,30,1,1", r"line 2: 8 values, but line 1 has 9"),
    "not a number": ("1,1,10,5,20,abc,1,1,1", r"line 2: column 6 is not a number: 'abc'"),
    "unknown class": ("1,7,10,5,20,30,1,14,1", r"line 2: unknown class"),
    "fractional class": ("1,7,10,5,20,30,1,1.5,1", r"line 2: the class \(column 8\) must be a whole number"),
    "MOT15-style row": ("1,7,10,5,20,30,1,-1,-1,-1", r"line 2: 10 values, but line 1 has 9"),
    "fractional frame": ("1.5,7,10,5,20,30,1,1,1", r"line 2: the frame \(column 1\) must be a whole number"),
    "negative width": ("1,7,10,5,-20,30,1,1,1", r"line 2: negative box width or height"),
    "visibility above 1": ("1,7,10,5,20,30,1,1,1.5", r"line 2: visibility outside \[0, 1\]"),
    "frame past the sequence": ("4,7,10,5,20,30,1,1,1", r"line 2: frame not in the sequence \(its frames: 1\.\.3\)"),
    "identity twice in a frame": ("1,1,0,0,5,5,1,1,1", r"lines 1 and 2: identity 1 appears twice in frame 1"),
    "det.txt id -1": ("1,-1,10,5,20,30,1,1,1", r"line 2: id -1 \(column 2\) in ground truth; -1 marks .*det\.txt"),
}


@pytest.mark.parametrize("case", GT_ERRORS, ids=list(GT_ERRORS))
def test_bad_gt_lines_name_file_and_line(mot_root, case):
    line, message = GT_ERRORS[case]
    path = mot_root / "train" / "SEQ-A" / "gt" / "gt.txt"
    path.write_text(f"{SEQ_A_GT[0]}\n{line}\n{SEQ_A_GT[1]}\n")
    with pytest.raises(ValueError, match=message) as error:
        MOTDataset(mot_root, "train")
    assert str(path) in str(error.value)


def test_error_line_numbers_count_blank_lines(tmp_path):
    path = tmp_path / "gt.txt"
    path.write_text("1,1,0,0,5,5,1,1,1\n\n\n1,2,0,0,5,5,1,99,1\n")
    with pytest.raises(ValueError, match=r"gt\.txt, line 4: unknown class"):
        read_mot_gt(path)
    path.write_text("")
    assert len(read_mot_gt(path)) == 0 and read_mot_gt(path).extra.shape == (0, 2)
    path.write_text("1,1,0,0,5,5,1,-1,-1,-1\n")
    with pytest.raises(ValueError, match=r"gt\.txt, line 1: unknown class"):
        read_mot_gt(path)
    path.write_text("1,1,0,0,5,5,1\n")
    with pytest.raises(ValueError, match=r"gt\.txt, line 1: expected 9 values .*class and visibility are missing"):
        read_mot_gt(path)


def test_bad_layout(tmp_path, mot_root, caplog):
    with pytest.raises(FileNotFoundError, match=r"MOT split folder not found: .*test.*seqinfo\.ini, img1/"):
        MOTDataset(mot_root, "test")
    (mot_root / "train" / "notes").mkdir()
    with caplog.at_level(logging.WARNING):
        MOTDataset(mot_root, "train")
    assert "skipping 1 folders with neither seqinfo.ini nor img1/: ['notes']" in caplog.text
    (mot_root / "train" / "SEQ-A" / "seqinfo.ini").write_text("[Sequence]\nseqLength=three\nimExt=.png\n")
    with pytest.raises(ValueError, match=r"SEQ-A.seqinfo\.ini: seqLength must be a number, got 'three'"):
        MOTDataset(mot_root, "train")
    with pytest.raises(ValueError, match="min_visibility must be in"):
        MOTDataset(mot_root, "train", min_visibility=2)


def test_mot17_detector_copies_warn(tmp_path, write_image, caplog):
    for name in ("MOT17-02-DPM", "MOT17-02-SDP"):
        write_sequence(write_image, tmp_path, name, 1, ["1,1,0,0,5,5,1,1,1"])
    with caplog.at_level(logging.WARNING):
        dataset = MOTDataset(tmp_path, "train")
    assert "per-detector copies" in caplog.text and dataset.num_identities == 2
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        MOTDataset(tmp_path, "train", sequences=["MOT17-02-SDP"])
    assert "per-detector copies" not in caplog.text


def test_batches_carry_identities(mot_root):
    dataset = MOTDataset(mot_root, "train", transforms=build_transforms("val", 64))
    batch = collate_detection([dataset[0], dataset[3]])
    assert batch["track_ids"][batch["mask"]].tolist() == [0, 1, -1, 3, 2]
    assert batch["ignore"][batch["mask"]].tolist() == [False, False, True, False, False]


def test_seqinfo_without_some_keys(mot_root, caplog):
    (mot_root / "train" / "SEQ-B" / "seqinfo.ini").write_text("[Sequence]\nname=SEQ-B\nseqLength=2\nimExt=.png\n")
    with caplog.at_level(logging.WARNING):
        dataset = MOTDataset(mot_root, "train", sequences=["SEQ-B"])
    assert "seqinfo.ini: no imDir, frameRate, imWidth, imHeight; using imDir=img1" in caplog.text
    info = dataset.sequences["SEQ-B"]
    assert (info.num_frames, info.frame_rate, info.size) == (2, 30.0, None)
