"""Identities for tracking: renumbering per sequence and one identity per box of a detection dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from centernet_lightning.datasets import COCODataset, collate_detection
from centernet_lightning.datasets.common import DetectionDataset, ImageRecord
from centernet_lightning.datasets.tracking import assign_track_ids, frames_by_sequence, with_box_identities
from centernet_lightning.datasets.transforms import build_transforms


def test_assign_track_ids_ranks_raw_ids_and_offsets_them():
    track_ids, unique = assign_track_ids(np.array([7, 3, 7, 12, 3]), first_identity=10)
    assert track_ids.tolist() == [11, 10, 11, 12, 10] and unique.tolist() == [3, 7, 12]
    empty, none = assign_track_ids(np.zeros(0, dtype=np.int64), 5)
    assert empty.shape == (0,) and empty.dtype == np.int64 and none.shape == (0,)


def test_with_box_identities_on_a_detection_dataset(coco_root):
    dataset = COCODataset(coco_root, "train")
    tracked = with_box_identities(dataset, first_identity=5)
    assert tracked.num_identities == 5 + 4 and isinstance(tracked, COCODataset)
    assert [r.fields["track_ids"].tolist() for r in tracked.records] == [[5, 6], [7, 8], []]
    assert tracked[1]["track_ids"].tolist() == [7, 8] and tracked[2]["track_ids"].dtype == np.int64
    assert "track_ids" not in dataset.records[0].fields and "track_ids" not in dataset[0]  # the original is unchanged
    assert frames_by_sequence(tracked.records) == {"": [0, 1, 2]}
    tracked.transforms = build_transforms("val", 64)
    batch = collate_detection([tracked[0], tracked[1]])
    assert batch["track_ids"].tolist() == [[5, 6], [7, 8]]


def test_ignore_regions_get_no_identity(tmp_path: Path):
    records = [
        ImageRecord(tmp_path / "a.png", 0, np.array([[0, 0, 5, 5], [1, 1, 4, 4]], np.float32), np.zeros(2, np.int64)),
        ImageRecord(tmp_path / "b.png", 1, np.array([[2, 2, 9, 9]], np.float32), np.zeros(1, np.int64)),
    ]
    records[0].add_ignore_regions(np.array([[6, 6, 8, 8]]))
    records[1].fields["track_ids"] = np.array([42])  # replaced
    tracked = with_box_identities(DetectionDataset(records, ["thing"]))
    assert [r.fields["track_ids"].tolist() for r in tracked.records] == [[0, 1, -1], [2]]
    assert tracked.num_identities == 3
