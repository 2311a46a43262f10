"""KITTITrackingDataset on small KITTI tracking folders written by the tests."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from centernet_lightning.datasets.kitti_tracking import KITTITrackingDataset, read_kitti_labels
from centernet_lightning.datasets.tracking import frames_by_sequence

THREE_D = "1.5 1.6 3.9 1.0 1.5 10.0 0.1"  # h w l x y z rotation_y: not used


def line(frame: int, track_id: int, kind: str, box: str, truncated: str = "0", occluded: str = "0") -> str:
    return f"{frame} {track_id} {kind} {truncated} {occluded} -1.5 {box} {THREE_D}"


# Sequence 0000: 3 frames of 40x60 (frame 2 has only objects that are not used).
SEQ_0000 = [
    line(0, 0, "Car", "10.5 5.25 30.75 35.5"),
    line(0, 1, "Pedestrian", "40 10 50 38", occluded="1"),
    line(0, -1, "DontCare", "0 0 8 8", truncated="-1", occluded="-1"),
    line(1, 0, "Car", "12 5 32 35"),
    line(1, 2, "Van", "45 20 70 30"),  # distractor of Car: ignore region, clipped to the 60 px width
    line(1, 3, "Cyclist", "1 1 5 5"),  # not a class by default: dropped
    line(2, 5, "Person_sitting", "2 2 6 6"),  # distractor of Pedestrian: ignore region
]
# Sequence 0001: 2 frames of 30x50, reusing track ids 0 and 1.
SEQ_0001 = [line(0, 1, "Car", "1 2 3 4"), line(0, 0, "Pedestrian", "5 6 7 8"), line(1, 0, "Pedestrian", "6 6 8 8")]


def write_kitti_sequence(write_image, root: Path, name: str, num_frames: int, size: tuple[int, int], labels):
    for frame in range(num_frames):
        write_image(root / "training" / "image_02" / name / f"{frame:06d}.png", np.zeros((*size, 3), dtype=np.uint8))
    if labels is not None:
        path = root / "training" / "label_02" / f"{name}.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("\n".join(labels) + "\n")


@pytest.fixture
def kitti_root(tmp_path, write_image) -> Path:
    root = tmp_path / "kitti_tracking"
    write_kitti_sequence(write_image, root, "0000", 3, (40, 60), SEQ_0000)
    write_kitti_sequence(write_image, root, "0001", 2, (30, 50), SEQ_0001)
    return root


def test_boxes_labels_and_ignore_regions(kitti_root):
    dataset = KITTITrackingDataset(kitti_root)
    assert len(dataset) == 5 and dataset.class_names == ["Car", "Pedestrian"]
    sample = dataset[0]
    np.testing.assert_array_equal(sample["bboxes"], [[10.5, 5.25, 30.75, 35.5], [40, 10, 50, 38], [0, 0, 8, 8]])
    assert sample["labels"].tolist()[:2] == [0, 1]
    assert sample["ignore"].tolist() == [False, False, True] and sample["track_ids"].tolist() == [0, 1, -1]
    sample = dataset[1]
    np.testing.assert_array_equal(sample["bboxes"], [[12, 5, 32, 35], [45, 20, 70, 30]])  # as annotated
    assert sample["ignore"].tolist() == [False, True] and sample["track_ids"].tolist() == [0, -1]
    sample = dataset[2]
    np.testing.assert_array_equal(sample["bboxes"], [[2, 2, 6, 6]])
    assert sample["ignore"].tolist() == [True]


def test_identities_unique_across_sequences(kitti_root):
    dataset = KITTITrackingDataset(kitti_root)
    assert dataset.num_identities == 4  # 0000: raw 0, 1 (Van, Cyclist and DontCare have none); 0001: raw 0, 1
    assert dataset[3]["track_ids"].tolist() == [3, 2] and dataset[4]["track_ids"].tolist() == [2]
    assert dataset.sequences["0001"].first_identity == 2
    records = dataset.records
    assert [(r.sequence, r.frame_index, r.frame_id) for r in records] == [
        ("0000", 0, 0),
        ("0000", 1, 1),
        ("0000", 2, 2),
        ("0001", 0, 0),
        ("0001", 1, 1),
    ]
    assert frames_by_sequence(records) == {"0000": [0, 1, 2], "0001": [3, 4]}


def test_frames_of_each_sequence_keep_their_size(kitti_root):
    dataset = KITTITrackingDataset(kitti_root)
    assert dataset[0]["original_size"] == (40, 60) and dataset[3]["original_size"] == (30, 50)
    assert dataset.sequences["0000"].size is None and dataset.sequences["0001"].num_frames == 2


def test_classes_and_distractor_switch(kitti_root):
    with_cyclists = KITTITrackingDataset(kitti_root, classes=("Car", "Pedestrian", "Cyclist"))
    sample = with_cyclists[1]
    assert sample["labels"][~sample["ignore"]].tolist() == [0, 2]
    assert with_cyclists.num_identities == 5
    dropped = KITTITrackingDataset(kitti_root, ignore_distractors=False)
    assert [len(dropped[i]["bboxes"]) for i in range(3)] == [2, 1, 0]
    assert not np.concatenate([r.fields["ignore"] for r in dropped.records]).any()
    cars = KITTITrackingDataset(kitti_root, classes=("Car",))
    assert cars[2]["bboxes"].shape == (0, 4)  # Person_sitting is a distractor only when Pedestrian is a class
    with pytest.raises(ValueError, match="distinct KITTI types"):
        KITTITrackingDataset(kitti_root, classes=("car",))
    with pytest.raises(ValueError, match="distinct KITTI types"):
        KITTITrackingDataset(kitti_root, classes=("DontCare",))


def test_empty_frames_and_missing_labels(kitti_root, write_image, caplog):
    write_kitti_sequence(write_image, kitti_root, "0002", 2, (40, 60), [])
    write_kitti_sequence(write_image, kitti_root, "0003", 1, (40, 60), None)
    with caplog.at_level(logging.WARNING):
        dataset = KITTITrackingDataset(kitti_root, sequences=["0002", "0003"])
    assert "1 of 2 sequences have no label file" in caplog.text and "0003" in caplog.text
    assert [dataset[i]["bboxes"].shape for i in range(3)] == [(0, 4)] * 3
    assert dataset.num_identities == 0


def test_results_files_with_a_score_column_read(tmp_path):
    path = tmp_path / "0000.txt"
    path.write_text(line(0, 4, "Car", "1 2 3 4") + " 0.9\n")
    labels = read_kitti_labels(path)
    assert labels["track_id"].tolist() == [4] and labels["boxes"].tolist() == [[1, 2, 3, 4]]


LABEL_ERRORS = {
    "unknown type": (line(0, 7, "Bus", "1 1 5 5"), r"line 2: unknown type \(KITTI types are Car, Van"),
    "16 values": ("0 7 Car 0 0 -1.5 1 1 5 5 1 1 1 1 1 1", r"line 2: expected 17 values 'frame track_id type"),
    "not a number": (line(0, 7, "Car", "1 1 x 5"), r"line 2: non-numeric value"),
    "fractional frame": (line(0, 7, "Car", "1 1 5 5").replace("0 7", "0.5 7", 1), r"line 2: frame, track_id and"),
    "inverted box": (line(0, 7, "Car", "5 1 1 5"), r"line 2: box with x2 < x1"),
    "frame without image": (line(3, 7, "Car", "1 1 5 5"), r"line 2: frame has no image"),
    "identity twice in a frame": (line(0, 0, "Pedestrian", "1 1 5 5"), r"lines 1 and 2: identity 0 appears twice"),
}


@pytest.mark.parametrize("case", LABEL_ERRORS, ids=list(LABEL_ERRORS))
def test_bad_label_lines_name_file_and_line(kitti_root, case):
    bad, message = LABEL_ERRORS[case]
    path = kitti_root / "training" / "label_02" / "0000.txt"
    path.write_text(f"{SEQ_0000[0]}\n{bad}\n{SEQ_0000[3]}\n")
    with pytest.raises(ValueError, match=message) as error:
        KITTITrackingDataset(kitti_root)
    assert str(path) in str(error.value)


def test_bad_layout(kitti_root, write_image):
    with pytest.raises(FileNotFoundError, match=r"image_02/<SEQ>/000000\.png"):
        KITTITrackingDataset(kitti_root, split="testing")
    with pytest.raises(ValueError, match=r"no sequences \['0009'\]; available: \['0000', '0001'\]"):
        KITTITrackingDataset(kitti_root, sequences=["0009"])
    write_image(kitti_root / "training" / "image_02" / "0000" / "cover.png", np.zeros((4, 4, 3), dtype=np.uint8))
    with pytest.raises(ValueError, match=r"frame files must be numbered .*cover\.png"):
        KITTITrackingDataset(kitti_root)
