import json

import numpy as np
import pytest

from centernet_lightning.datasets import CrowdHumanDataset, build_transforms


@pytest.fixture
def crowdhuman_root(tmp_path, write_image):
    root = tmp_path / "crowdhuman"
    write_image(root / "Images" / "a,1.jpg", np.zeros((60, 80, 3), dtype=np.uint8))
    write_image(root / "Images" / "b,2.jpg", np.zeros((60, 80, 3), dtype=np.uint8))
    person = {
        "tag": "person",
        "fbox": [-5, 10, 30, 60],  # extends past the left and bottom border
        "vbox": [2, 12, 20, 30],
        "hbox": [8, 12, 10, 10],
        "head_attr": {"ignore": 0},
        "extra": {"box_id": 0},
    }
    ignored_person = {**person, "fbox": [40, 5, 10, 20], "vbox": [41, 6, 5, 5], "extra": {"ignore": 1}}
    ignored_head = {**person, "hbox": [50, 0, 6, 6], "head_attr": {"ignore": 1}}
    crowd = {"tag": "mask", "fbox": [60, 30, 15, 15], "vbox": [60, 30, 15, 15], "hbox": [60, 30, 5, 5]}
    lines = [
        json.dumps({"ID": "a,1", "gtboxes": [person, ignored_person, crowd, ignored_head]}),
        json.dumps({"ID": "b,2", "gtboxes": []}),
    ]
    (root / "annotation_val.odgt").write_text("\n".join(lines) + "\n")
    return root


def test_full_boxes_and_ignore_regions(crowdhuman_root):
    dataset = CrowdHumanDataset(crowdhuman_root, "val")
    assert dataset.class_names == ["person"] and dataset.num_classes == 1 and len(dataset) == 2
    sample = dataset[0]
    # full box [-5, 10, 25, 70] as annotated; the head-ignored person is a full-box target
    targets, ignore = sample["bboxes"][~sample["ignore"]], sample["bboxes"][sample["ignore"]]
    np.testing.assert_allclose(targets, [[-5, 10, 25, 70], [-5, 10, 25, 70]])
    assert sample["labels"].tolist() == [0, 0, 0, 0]
    np.testing.assert_allclose(ignore, [[40, 5, 50, 25], [60, 30, 75, 45]])
    assert dataset[1]["bboxes"].shape == (0, 4)
    # The transform's sanitise step clips the full boxes to the 80x60 image.
    dataset.transforms = build_transforms(None, input_size=None, size_divisor=1)
    clipped = dataset[0]
    np.testing.assert_allclose(clipped["bboxes"][~clipped["ignore"]].numpy(), [[0, 10, 25, 60], [0, 10, 25, 60]])


def test_visible_and_head_boxes(crowdhuman_root):
    visible = CrowdHumanDataset(crowdhuman_root, "val", box_type="visible")[0]
    np.testing.assert_allclose(visible["bboxes"][~visible["ignore"]], [[2, 12, 22, 42], [2, 12, 22, 42]])
    head = CrowdHumanDataset(crowdhuman_root, "val", box_type="head")[0]
    np.testing.assert_allclose(head["bboxes"][~head["ignore"]], [[8, 12, 18, 22]])
    np.testing.assert_allclose(head["bboxes"][head["ignore"]], [[8, 12, 18, 22], [60, 30, 65, 35], [50, 0, 56, 6]])


def test_ignore_mask_false_drops_ignore_regions(crowdhuman_root):
    sample = CrowdHumanDataset(crowdhuman_root, "val", ignore_mask=False)[0]
    assert "ignore" not in sample and len(sample["bboxes"]) == 2


def test_bad_inputs(crowdhuman_root, tmp_path):
    with pytest.raises(ValueError, match="box_type must be one of"):
        CrowdHumanDataset(crowdhuman_root, "val", box_type="body")
    with pytest.raises(FileNotFoundError, match=r"annotation_train\.odgt"):
        CrowdHumanDataset(crowdhuman_root, "train")
    path = crowdhuman_root / "annotation_val.odgt"
    path.write_text(path.read_text() + '{"ID": "c", "gtboxes": [\n')
    with pytest.raises(ValueError, match=r"annotation_val\.odgt, line 3: malformed"):
        CrowdHumanDataset(crowdhuman_root, "val")
