"""The synthetic tracking sequences: determinism, layout, and ground truth that matches the pixels."""

from __future__ import annotations

import configparser
import time

import numpy as np
import pytest

from centernet_lightning.datasets.mot import MOTDataset, read_mot_gt
from centernet_lightning.datasets.mot_io import read_mot_txt
from centernet_lightning.datasets.synthetic_tracking import _render_sequence, generate_tracking_sequences


def all_files(root):
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def rendered():
    """Six sequences straight from the renderer: 40 frames of 128 px, 6 identities each."""
    return [_render_sequence(np.random.default_rng([11, index]), 40, 128, 6) for index in range(6)]


def test_same_seed_gives_identical_files(tmp_path):
    arguments = dict(num_sequences=2, num_val_sequences=1, frames_per_sequence=4, image_size=64)
    first = all_files(generate_tracking_sequences(tmp_path / "a", seed=3, **arguments))
    assert first == all_files(generate_tracking_sequences(tmp_path / "b", seed=3, **arguments))
    other = all_files(generate_tracking_sequences(tmp_path / "c", seed=4, **arguments))
    assert first.keys() == other.keys() and first["train/SEQ-01/gt/gt.txt"] != other["train/SEQ-01/gt/gt.txt"]


def test_layout_and_reading_back(tmp_path):
    start = time.perf_counter()
    root = generate_tracking_sequences(tmp_path / "syn", num_sequences=2, num_val_sequences=1, seed=0)
    assert time.perf_counter() - start < 10  # 150 frames of 256 px: well under a second on one idle core
    files = all_files(root)
    assert len(files) == 3 * (50 + 2)
    info = configparser.ConfigParser()
    info.read_string(files["train/SEQ-02/seqinfo.ini"].decode())
    assert dict(info["Sequence"]) == {
        "name": "SEQ-02",
        "imdir": "img1",
        "framerate": "30",
        "seqlength": "50",
        "imwidth": "256",
        "imheight": "256",
        "imext": ".jpg",
    }
    train = MOTDataset(root, "train")
    assert len(train) == 100 and len(MOTDataset(root, "val")) == 50
    for name, info in train.sequences.items():
        gt_path = root / "train" / name / "gt" / "gt.txt"
        rows = read_mot_gt(gt_path)
        assert 4 <= info.num_identities <= 8 and info.raw_ids.tolist() == list(range(1, info.num_identities + 1))
        assert (np.diff(rows.ids * 1000 + rows.frames) > 0).all()  # sorted by id, then frame
        # Objects less than a quarter visible are written "not considered" (conf 0).
        classes, visibility = rows.extra.T
        assert (rows.scores == (visibility >= 0.25)).all() and (classes == 1).all() and (rows.scores == 0).any()
        # The file is 1-based (bb_left = x1 + 1), as the readers take it.
        left, top, w, h = np.loadtxt(gt_path, delimiter=",", ndmin=2)[:, 2:6].T
        expected = np.stack([left - 1, top - 1, left - 1 + w, top - 1 + h], axis=1)
        np.testing.assert_array_equal(rows.boxes, expected)
        np.testing.assert_array_equal(read_mot_txt(gt_path).boxes, expected)
        assert (rows.boxes >= 0).all() and (rows.boxes <= 256).all()  # boxes stop at the image border
        # Every considered row comes back as an object of its frame: the evaluation reader's box, its
        # identity offset; the others are dropped.
        indices = [i for i, r in enumerate(train.records) if r.sequence == name]
        read = np.concatenate([train.records[i].bboxes for i in indices])
        ids = np.concatenate([train.records[i].fields["track_ids"] for i in indices])
        considered = rows.scores == 1
        frames, raw_ids, boxes = rows.frames[considered], rows.ids[considered], rows.boxes[considered]
        by_frame = np.argsort(frames, kind="stable")  # the reader's order: frame, then file order
        np.testing.assert_array_equal(read, boxes[by_frame])
        assert (ids == raw_ids[by_frame] - 1 + info.first_identity).all()
    assert train.num_identities == sum(info.num_identities for info in train.sequences.values())


def test_held_out_sequences_may_be_longer(tmp_path):
    root = generate_tracking_sequences(
        tmp_path, num_sequences=3, num_val_sequences=1, frames_per_sequence=2, val_frames_per_sequence=7, image_size=64
    )
    assert [len(list((root / "train" / f"SEQ-0{i}" / "img1").iterdir())) for i in (1, 2, 3)] == [2, 2, 2]
    assert len(list((root / "val" / "SEQ-01" / "img1").iterdir())) == 7
    assert "seqLength=7" in (root / "val" / "SEQ-01" / "seqinfo.ini").read_text()
    with pytest.raises(ValueError, match="val_frames_per_sequence >= 1"):
        generate_tracking_sequences(tmp_path / "x", val_frames_per_sequence=0)
    with pytest.raises(ValueError, match="min_visibility"):
        generate_tracking_sequences(tmp_path / "y", min_visibility=1.5)


def test_held_out_sequences_may_have_other_object_counts(tmp_path):
    root = generate_tracking_sequences(
        tmp_path,
        num_sequences=3,
        num_val_sequences=3,
        frames_per_sequence=3,
        image_size=64,
        objects_per_sequence=(1, 1),
        val_objects_per_sequence=(3, 3),
    )
    ids = {
        split: {int(i) for seq in (root / split).iterdir() for i in read_mot_txt(seq / "gt" / "gt.txt").ids}
        for split in ("train", "val")
    }
    assert ids == {"train": {1}, "val": {1, 2, 3}}
    with pytest.raises(ValueError, match="val_objects_per_sequence"):
        generate_tracking_sequences(tmp_path / "x", val_objects_per_sequence=(2, 1))


def test_refuses_a_non_empty_folder(tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="is not empty"):
        generate_tracking_sequences(tmp_path, num_sequences=1, num_val_sequences=0, frames_per_sequence=2)
    generate_tracking_sequences(tmp_path, num_sequences=1, num_val_sequences=0, frames_per_sequence=2, overwrite=True)
    assert (tmp_path / "mine.txt").read_text() == "keep me" and (tmp_path / "train" / "SEQ-01" / "gt").is_dir()
    with pytest.raises(ValueError, match="objects_per_sequence"):
        generate_tracking_sequences(tmp_path / "x", objects_per_sequence=(3, 2))


def visible_box(owners: np.ndarray, identity: int) -> tuple[np.ndarray, int]:
    """XYXY box of the pixels ``identity`` owns in one frame, and their count."""
    ys, xs = np.nonzero(owners == identity)
    if len(xs) == 0:
        return np.zeros(4), 0
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1]), len(xs)


def test_boxes_and_visibility_match_the_drawn_pixels(rendered):
    """A fully visible object's box is the box of its pixels; visibility = drawn pixels / all its pixels."""
    fully_visible = 0
    for sequence in rendered:
        drawn = {}  # (frame, identity) -> count of drawn pixels
        for frame, identity, left, top, w, h, _, _, visibility in sequence.rows:
            x, y = left - 1, top - 1  # gt rows are 1-based, owners 0-based
            box, count = visible_box(sequence.owners[int(frame) - 1], int(identity))
            drawn[int(frame), int(identity)] = count
            assert (count > 0) == (visibility > 0)
            if count:  # the drawn pixels lie inside the box (hidden parts included), which stops at the border
                assert x <= box[0] and y <= box[1] and box[2] <= x + w and box[3] <= y + h
            assert 0 <= x and 0 <= y and x + w <= len(sequence.owners[0]) and y + h <= len(sequence.owners[0])
            if visibility == 1:
                fully_visible += 1
                np.testing.assert_array_equal(box, [x, y, x + w, y + h])
        for identity in np.unique(sequence.rows[:, 1]):
            track = sequence.rows[sequence.rows[:, 1] == identity]
            if (track[:, 8] == 1).any():  # then all its pixels are drawn in that frame
                total = drawn[int(track[track[:, 8] == 1][0, 0]), int(identity)]
                counts = np.array([drawn[int(f), int(identity)] for f in track[:, 0]])
                np.testing.assert_allclose(track[:, 8], counts / total, atol=6e-6)
        for frame in range(len(sequence.frames)):  # nothing is drawn that has no row
            for identity in np.unique(sequence.owners[frame]):
                assert identity == 0 or (frame + 1, int(identity)) in drawn
    assert fully_visible > 200


def test_dataset_reads_back_the_drawn_boxes(tmp_path):
    """Generated files read by MOTDataset give exactly the boxes of the drawn pixels (fully visible objects)."""
    root = generate_tracking_sequences(
        tmp_path, num_sequences=1, num_val_sequences=0, frames_per_sequence=12, image_size=96, seed=5
    )
    rng = np.random.default_rng([5, 0, 0])  # the generator's RNG for train/SEQ-01 (seed, split code, index)
    sequence = _render_sequence(rng, 12, 96, int(rng.integers(4, 9)))
    dataset = MOTDataset(root, "train")
    compared = 0
    for record in dataset.records:
        rows = sequence.rows[(sequence.rows[:, 0] == record.frame_id) & (sequence.rows[:, 6] == 1)]
        rows = rows[np.argsort(rows[:, 1], kind="stable")]
        order = np.argsort(record.fields["track_ids"], kind="stable")  # raw ids 1..n -> 0..n-1, same order
        for row, box in zip(rows, record.bboxes[order], strict=True):
            if row[8] == 1:
                np.testing.assert_array_equal(box, visible_box(sequence.owners[record.frame_index], int(row[1]))[0])
                compared += 1
    assert compared >= 20


def test_motion_covers_entering_leaving_occlusion_crossing_and_turning(rendered):
    entering = leaving = occluded = crossing = turning = 0
    for sequence in rendered:
        rows, frames = sequence.rows, len(sequence.frames)
        size = sequence.frames.shape[1]
        x1, y1 = rows[:, 2] - 1, rows[:, 3] - 1  # 1-based gt -> 0-based
        inside = (x1 > 0) & (y1 > 0) & (x1 + rows[:, 4] < size) & (y1 + rows[:, 5] < size)  # off the border
        occluded += int(((rows[:, 8] < 0.7) & inside).sum() > 0)
        centres_by_id = {}
        for identity in np.unique(rows[:, 1]):
            track = rows[rows[:, 1] == identity]
            entering += int(track[0, 0] > 1)
            leaving += int(track[-1, 0] < frames)
            centres_by_id[identity] = {int(f): (x + w / 2, y + h / 2) for f, _, x, y, w, h, *_ in track}
            centres = np.array([c for c in centres_by_id[identity].values()])
            if len(centres) >= 20:
                steps = np.diff(centres[::5], axis=0)
                headings = np.unwrap(np.arctan2(steps[:, 1], steps[:, 0]))
                turning += int(np.ptp(headings) > 0.6 and np.linalg.norm(steps, axis=1).min() > 3)
        ids = list(centres_by_id)
        for a_index, a in enumerate(ids):  # two centres closer than 4 px in one frame: a crossing
            for b in ids[a_index + 1 :]:
                common = set(centres_by_id[a]) & set(centres_by_id[b])
                crossing += int(
                    any(np.hypot(*np.subtract(centres_by_id[a][f], centres_by_id[b][f])) < 4 for f in common)
                )
    assert entering >= 3 and leaving >= 3 and occluded >= 3 and crossing >= 3 and turning >= 2


def test_short_sequences_are_windows_of_a_long_course_plan():
    """Two-frame sequences look like frames of long ones: crossing pairs at every stage (not all
    centred on one point), most objects well inside the image and fully visible."""

    def stats(sequences):
        co_centred = 0  # pairs of identities whose box centres are within 1.5 px in a frame
        for sequence in sequences:
            for frame in (sequence.rows[sequence.rows[:, 0] == f] for f in (1, 2)):
                centres = frame[:, 2:4] + frame[:, 4:6] / 2
                distances = np.linalg.norm(centres[:, None] - centres[None], axis=-1)
                co_centred += int((distances[np.triu_indices(len(frame), 1)] < 1.5).sum())
        rows = np.concatenate([sequence.rows for sequence in sequences])
        return co_centred, float((rows[:, 8] == 1).mean())

    short = [_render_sequence(np.random.default_rng([5, index]), 2, 128, 6) for index in range(30)]
    long = [_render_sequence(np.random.default_rng([6, index]), 40, 128, 6) for index in range(6)]
    short_co_centred, short_fully_visible = stats(short)
    _, long_fully_visible = stats(long)
    # Planned over two frames, each of the 30 sequences had its crossing pair on one point.
    assert short_co_centred <= 3
    assert abs(short_fully_visible - long_fully_visible) < 0.15


def test_identities_keep_their_look_and_differ_from_each_other(rendered):
    """Mean colour of an identity's fully visible pixels: stable over frames, different between identities."""
    spreads, means = [], []
    for sequence in rendered:
        for identity in np.unique(sequence.rows[:, 1]):
            track = sequence.rows[(sequence.rows[:, 1] == identity) & (sequence.rows[:, 8] == 1)]
            colours = [
                sequence.frames[int(f) - 1][sequence.owners[int(f) - 1] == identity].astype(np.float64).mean(axis=0)
                for f in track[:, 0]
            ]
            if len(colours) >= 5:
                spreads.append(np.linalg.norm(np.std(colours, axis=0)))
                means.append(np.mean(colours, axis=0))
    means = np.array(means)
    gaps = np.linalg.norm(means[:, None] - means[None], axis=-1)[np.triu_indices(len(means), 1)]
    assert len(spreads) >= 20 and np.median(spreads) < 3 and np.median(gaps) > 10 * np.median(spreads)
