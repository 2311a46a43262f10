import numpy as np
import pytest

from centernet_lightning.datasets import VOC_CLASSES, VOCDataset


def test_reads_scene_with_one_based_conversion(voc_root, scene, classes):
    dataset = VOCDataset(voc_root, "train", name_to_label=classes)
    assert len(dataset) == 3 and dataset.class_names == classes
    for index, expected in enumerate(scene):
        sample = dataset[index]
        assert sample["image_id"] == index
        np.testing.assert_allclose(sample["bboxes"], expected["bboxes"])
        assert sample["labels"].tolist() == expected["labels"].tolist()
        assert "ignore" not in sample


def test_default_classes_are_voc_and_unknown_class_names_file(voc_root):
    dataset = VOCDataset(voc_root, "train")
    assert dataset.class_names == list(VOC_CLASSES) and dataset.num_classes == 20
    assert dataset[0]["labels"].tolist() == [VOC_CLASSES.index("cat"), VOC_CLASSES.index("bird")]
    path = voc_root / "Annotations" / "img1.xml"
    path.write_text(path.read_text().replace("<name>dog</name>", "<name>unicorn</name>", 1))
    with pytest.raises(ValueError, match=r"img1\.xml: class 'unicorn' is not in name_to_label"):
        VOCDataset(voc_root, "train")


def test_annotation_tool_quirks(tmp_path, write_image, make_voc_xml):
    """Float coords, empty optional tags, missing <size>, difficult objects, no ImageSets."""
    root = tmp_path / "voc"
    (root / "Annotations").mkdir(parents=True)
    write_image(root / "JPEGImages" / "b.png", np.zeros((30, 40, 3), dtype=np.uint8))
    write_image(root / "JPEGImages" / "a.png", np.zeros((20, 25, 3), dtype=np.uint8))
    objects = [
        {"name": "dog", "box": (1.5, 2.25, 10.5, 12.0), "difficult": "<difficult/>"},
        {"name": "cat", "box": (5, 5, 60, 9), "difficult": "<difficult>1</difficult>"},
        {"name": "cat", "box": (3, 4, 50, 25)},  # xmax beyond the 40 px image read from disk
    ]
    (root / "Annotations" / "b.xml").write_text(make_voc_xml("b.png", None, None, objects))
    (root / "Annotations" / "a.xml").write_text(make_voc_xml("a.png", 20, 25, []))
    dataset = VOCDataset(root, None, name_to_label={"cat": 0, "dog": 1})
    assert [dataset[i]["image_path"].split("/")[-1] for i in range(2)] == ["a.png", "b.png"]
    sample = dataset[1]
    np.testing.assert_allclose(sample["bboxes"][~sample["ignore"]], [[0.5, 1.25, 10.5, 12.0], [2, 3, 50, 25]])
    assert sample["labels"][~sample["ignore"]].tolist() == [1, 0]
    np.testing.assert_allclose(sample["bboxes"][sample["ignore"]], [[4, 4, 60, 9]])
    assert dataset[0]["bboxes"].shape == (0, 4)


def test_missing_size_is_read_from_the_image(tmp_path, write_image, make_voc_xml, caplog):
    root = tmp_path / "voc"
    (root / "Annotations").mkdir(parents=True)
    write_image(root / "JPEGImages" / "x.png", np.zeros((30, 40, 3), dtype=np.uint8))
    (root / "Annotations" / "x.xml").write_text(
        make_voc_xml("x.png", None, None, [{"name": "cat", "box": (1, 1, 99, 99)}])
    )
    dataset = VOCDataset(root, None, name_to_label=["cat"])
    assert dataset.records[0].size == (30, 40)
    assert "1 boxes reach past their image" in caplog.text  # reported against the size read from the image
    np.testing.assert_allclose(dataset.records[0].bboxes, [[0, 0, 99, 99]])


def test_malformed_xml_names_file_and_line(voc_root):
    (voc_root / "Annotations" / "img1.xml").write_text("<annotation>\n<object>\n</annotation>")
    with pytest.raises(ValueError, match=r"img1\.xml: malformed XML at line 3"):
        VOCDataset(voc_root, "train", name_to_label=["cat", "dog", "bird"])


def test_non_numeric_coordinate_names_file(voc_root):
    path = voc_root / "Annotations" / "img0.xml"
    path.write_text(path.read_text().replace("<xmin>3</xmin>", "<xmin>abc</xmin>"))
    with pytest.raises(ValueError, match=r"img0\.xml: <xmin> must be a number"):
        VOCDataset(voc_root, "train", name_to_label=["cat", "dog", "bird"])


def test_wrong_layout_errors(tmp_path, voc_root):
    with pytest.raises(FileNotFoundError, match="Annotations"):
        VOCDataset(tmp_path / "nowhere", "train")
    with pytest.raises(FileNotFoundError, match=r"ImageSets/Main/val\.txt"):
        VOCDataset(voc_root, "val", name_to_label=["cat", "dog", "bird"])
    with pytest.raises(ValueError, match="contiguous"):
        VOCDataset(voc_root, "train", name_to_label={"cat": 0, "dog": 2})


def test_missing_image_is_skipped(voc_root, caplog):
    (voc_root / "JPEGImages" / "img0.png").unlink()
    with pytest.raises(FileNotFoundError, match="img0.png"):
        VOCDataset(voc_root, "train", name_to_label=["cat", "dog", "bird"])[0]
    dataset = VOCDataset(voc_root, "train", name_to_label=["cat", "dog", "bird"], skip_bad_images=True)
    assert len(dataset) == 2 and dataset[0]["image_id"] == 1
    assert "skipping 1 of 3" in caplog.text
