import json
import logging
import shutil

import numpy as np
import pytest

from centernet_lightning.datasets import COCODataset, build_transforms, collate_detection


def edit_json(root, edit):
    path = root / "annotations" / "instances_train.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data, indent=1))


def test_reads_boxes_labels_and_ids(coco_root, scene):
    dataset = COCODataset(coco_root, "train")
    assert len(dataset) == 3
    # category ids 5 (cat), 9 (dog), 2 (bird) -> labels in sorted id order: bird, cat, dog
    assert dataset.class_names == ["bird", "cat", "dog"]
    assert dataset.label_to_category_id == [2, 5, 9]
    assert dataset.category_id_to_label == {2: 0, 5: 1, 9: 2}
    assert dataset.coco_gt_path == coco_root / "annotations" / "instances_train.json"
    to_coco_label = np.array([1, 2, 0])  # scene label (cat, dog, bird) -> label here
    for index, expected in enumerate(scene):
        sample = dataset[index]
        assert sample["image_id"] == 100 + index
        assert sample["original_size"] == expected["image"].shape[:2]
        np.testing.assert_array_equal(sample["image"], expected["image"])
        np.testing.assert_allclose(sample["bboxes"], expected["bboxes"])
        assert sample["labels"].tolist() == to_coco_label[expected["labels"]].tolist()
        assert sample["bboxes"].dtype == np.float32 and sample["labels"].dtype == np.int64
    assert dataset[2]["bboxes"].shape == (0, 4) and dataset[2]["labels"].shape == (0,)


def test_crowd_boxes_are_ignore_regions_not_targets(coco_root):
    edit_json(coco_root, lambda d: d["annotations"][0].update(iscrowd=1))
    sample = COCODataset(coco_root, "train")[0]
    # Objects first, then the crowd region, flagged ignore.
    np.testing.assert_allclose(sample["bboxes"], [[30, 10, 64, 47], [2, 3, 20, 30]])
    assert sample["ignore"].tolist() == [False, True] and sample["labels"].tolist() == [0, 1]  # bird, crowd cat


def test_unused_categories_subfolders_and_split_folder_layout(coco_root):
    def edit(data):
        data["categories"].append({"id": 50, "name": "unused"})
        data["images"][0]["file_name"] = "sub/dir/img0.png"

    edit_json(coco_root, edit)
    (coco_root / "images" / "train" / "sub" / "dir").mkdir(parents=True)
    shutil.move(coco_root / "images" / "train" / "img0.png", coco_root / "images" / "train" / "sub" / "dir")
    shutil.move(coco_root / "images" / "train", coco_root / "train")  # the {split}/ layout
    dataset = COCODataset(coco_root, "train")
    assert dataset.num_classes == 4 and dataset.class_names[-1] == "unused"
    assert dataset[0]["image_path"].endswith("train/sub/dir/img0.png")
    assert len(dataset[0]["bboxes"]) == 2


def test_unknown_category_id_is_an_error(coco_root):
    edit_json(coco_root, lambda d: d["annotations"][1].update(category_id=99))
    with pytest.raises(ValueError, match="unknown category id 99"):
        COCODataset(coco_root, "train")


def test_annotation_of_unknown_image_is_an_error(coco_root):
    edit_json(coco_root, lambda d: d["annotations"][0].update(image_id=12345))
    with pytest.raises(ValueError, match="unknown image id 12345"):
        COCODataset(coco_root, "train")


def test_malformed_json_names_file_and_line(coco_root):
    path = coco_root / "annotations" / "instances_train.json"
    path.write_text('{\n "images": [],\n "annotations": [,]\n}')
    with pytest.raises(ValueError, match=r"instances_train\.json: malformed JSON at line 3"):
        COCODataset(coco_root, "train")


def test_wrong_data_dir_explains_layout(tmp_path, coco_root):
    with pytest.raises(FileNotFoundError, match=r"annotations/instances_train\.json"):
        COCODataset(tmp_path / "nowhere", "train")
    shutil.rmtree(coco_root / "images")
    with pytest.raises(FileNotFoundError, match="image folder not found"):
        COCODataset(coco_root, "train")


def test_boxes_outside_image_are_reported_once_and_clipped_by_the_transform(coco_root, caplog):
    def edit(data):
        data["annotations"][0]["bbox"] = [-4, 3, 20, 100]  # clipped to [0, 3, 16, 48]
        data["annotations"][1]["bbox"] = [70, 10, 5, 5]  # entirely right of the 64 px image
        data["annotations"][2]["bbox"] = [10, 10, 0, 5]  # no width: no box at all

    edit_json(coco_root, edit)
    with caplog.at_level(logging.WARNING):
        dataset = COCODataset(coco_root, "train")
    warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1
    assert "dropped 1 boxes that are no boxes" in warnings[0] and "2 boxes reach past their image" in warnings[0]
    np.testing.assert_allclose(dataset[0]["bboxes"], [[-4, 3, 16, 103], [70, 10, 75, 15]])  # as annotated
    # The one sanitise step: the transform clips to the image and drops what is left without area.
    dataset.transforms = build_transforms(None, input_size=None, size_divisor=1)
    np.testing.assert_allclose(dataset[0]["bboxes"].numpy(), [[0, 3, 16, 48]])


def test_missing_image_raises_naming_file_or_is_skipped(coco_root, caplog):
    (coco_root / "images" / "train" / "img1.png").unlink()
    dataset = COCODataset(coco_root, "train")
    assert len(dataset) == 3
    with pytest.raises(FileNotFoundError, match="img1.png"):
        dataset[1]
    with caplog.at_level(logging.WARNING):
        skipping = COCODataset(coco_root, "train", skip_bad_images=True)
    assert len(skipping) == 2
    assert [s["image_id"] for s in (skipping[0], skipping[1])] == [100, 102]
    assert any("skipping 1 of 3 images" in r.getMessage() for r in caplog.records)


def test_corrupt_image_is_skipped_and_left_out_of_the_batch(coco_root, caplog):
    (coco_root / "images" / "train" / "img1.png").write_bytes(b"garbage")
    with pytest.raises(OSError, match="img1.png"):
        COCODataset(coco_root, "train")[1]
    dataset = COCODataset(coco_root, "train", skip_bad_images=True, transforms=build_transforms("val", 64))
    with caplog.at_level(logging.WARNING):
        assert dataset[1] is None
    assert dataset.num_skipped == 1
    assert any("img1.png" in r.getMessage() and "1 skipped" in r.getMessage() for r in caplog.records)
    # The batch holds the readable images once each: no image stands in for the skipped one.
    batch = collate_detection([dataset[i] for i in range(3)])
    assert batch["image_ids"].tolist() == [100, 102]
    assert collate_detection([dataset[1]]) is None


def test_empty_annotation_list_is_fine(coco_root):
    edit_json(coco_root, lambda d: d.update(annotations=[]))
    dataset = COCODataset(coco_root, "train")
    assert all(dataset[i]["bboxes"].shape == (0, 4) for i in range(3))
