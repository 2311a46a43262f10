"""DetectionDataModule: datasets, loaders, class names and ids, generated data."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from conftest import SCENE

from centernet_lightning.datasets import generate_tracking_sequences
from centernet_lightning.datasets.datamodule import DetectionDataModule


def test_datamodule_builds_batches_and_names(coco_root: Path) -> None:
    datamodule = DetectionDataModule(
        dataset="coco",
        data_dir=str(coco_root),
        train_split="train",
        val_split="train",
        input_size=64,
        train_transforms="light",
        batch_size=2,
        num_workers=0,
    )
    assert datamodule.num_classes == 3 and datamodule.class_names == ["bird", "cat", "dog"]  # by category id
    datamodule.setup("fit")
    batch = next(iter(datamodule.val_dataloader()))
    assert batch["images"].shape == (2, 3, 64, 64)
    assert batch["mask"].dtype == torch.bool and batch["bboxes"].shape[:2] == batch["labels"].shape
    assert datamodule.category_ids == [2, 5, 9]  # labels follow sorted COCO category ids
    assert len(datamodule.datasets["val"]) == len(SCENE)
    train = next(iter(datamodule.train_dataloader()))
    assert train["images"].shape[0] == 2


def test_datamodule_generates_synthetic_data_once(tmp_path: Path) -> None:
    data_dir = tmp_path / "shapes"
    datamodule = DetectionDataModule(
        dataset="synthetic",
        data_dir=str(data_dir),
        input_size=64,
        batch_size=2,
        num_workers=0,
        synthetic={"num_train": 3, "num_val": 2, "image_size": 64, "num_classes": 2},
    )
    assert datamodule.num_classes == 2 and datamodule.class_names == ["circle", "rectangle"]
    assert not data_dir.exists()  # class names are known without generating anything
    datamodule.prepare_data()
    assert not list(tmp_path.glob(".shapes-*"))  # the temporary folder was renamed into place
    stamp = (data_dir / "annotations" / "instances_train.json").stat().st_mtime_ns
    datamodule.prepare_data()  # already there: left alone
    assert (data_dir / "annotations" / "instances_train.json").stat().st_mtime_ns == stamp
    datamodule.setup("validate")
    assert len(datamodule.datasets["val"]) == 2


def test_a_generated_folder_made_otherwise_is_refused_not_reused(tmp_path: Path, caplog) -> None:
    def shapes(data_dir: Path, num_train: int) -> DetectionDataModule:
        synthetic = {"num_train": num_train, "num_val": 1, "image_size": 64, "num_classes": 1}
        return DetectionDataModule(dataset="synthetic", data_dir=str(data_dir), input_size=64, synthetic=synthetic)

    shapes(tmp_path / "a", 2).prepare_data()
    record = json.loads((tmp_path / "a" / "generated.json").read_text())
    assert record["dataset"] == "synthetic" and record["arguments"]["num_train"] == 2
    shapes(tmp_path / "a", 2).setup("fit")  # the same config: reused
    # Other arguments: training refuses, naming the option that would match the folder ...
    with pytest.raises(FileExistsError, match=r"generated with other synthetic settings.*--data.synthetic.num_train=2"):
        shapes(tmp_path / "a", 3).setup("fit")
    # ... evaluation reuses it, whatever its split sizes say.
    evaluated = shapes(tmp_path / "a", 3)
    evaluated.setup("validate")
    assert len(evaluated.datasets["val"]) == 1
    record["version"] = 0  # another generator version: other data, refused for evaluation too
    (tmp_path / "a" / "generated.json").write_text(json.dumps(record))
    with pytest.raises(FileExistsError, match="this version would not generate"):
        shapes(tmp_path / "a", 2).setup("validate")
    (tmp_path / "a" / "generated.json").unlink()  # written before records were kept: version 1, reused
    shapes(tmp_path / "a", 3).setup("fit")
    assert "reusing it without checking" in caplog.text
    # The tracking generator is at version 2: an unrecorded folder is from before, so refused.
    tracking = {"num_sequences": 1, "num_val_sequences": 1, "frames_per_sequence": 2, "image_size": 64}
    generate_tracking_sequences(tmp_path / "old", **tracking)
    datamodule = DetectionDataModule(
        dataset="synthetic_tracking", data_dir=str(tmp_path / "old"), input_size=64, synthetic=tracking
    )
    with pytest.raises(FileExistsError, match="no record, so an older version"):
        datamodule.prepare_data()


def test_generated_tracking_sequences_are_evaluated_whatever_the_split_sizes(tmp_path: Path) -> None:
    """validate of a tracking config without repeating fit's ``synthetic.*`` overrides."""
    fitted = {"num_sequences": 1, "num_val_sequences": 1, "frames_per_sequence": 2, "image_size": 64}
    configured = {**fitted, "num_sequences": 1500, "frames_per_sequence": 40}

    def sequences(synthetic: dict) -> DetectionDataModule:
        return DetectionDataModule(
            dataset="synthetic_tracking", data_dir=str(tmp_path / "seq"), input_size=64, synthetic=synthetic
        )

    sequences(fitted).prepare_data()
    validated = sequences(configured)
    validated.setup("validate")
    assert len(validated.datasets["val"]) == 2  # the generated held-out sequence, not a new one
    with pytest.raises(FileExistsError, match="num_sequences=1 --data.synthetic.frames_per_sequence=2"):
        sequences(configured).setup("fit")


def test_a_split_of_every_file_reads_a_voc_export_without_image_sets(voc_root: Path, classes: list[str]) -> None:
    import shutil

    shutil.rmtree(voc_root / "ImageSets")  # a labelme / CVAT / Roboflow export
    datamodule = DetectionDataModule(
        dataset="voc",
        data_dir=str(voc_root),
        train_split="*",
        val_split=None,
        dataset_params={"name_to_label": classes},
        input_size=64,
    )
    assert datamodule.class_names == classes
    datamodule.setup("fit")
    assert len(datamodule.datasets["train"]) == len(SCENE)
    with pytest.raises(
        ValueError, match=r"data.train_split '\*' \(every annotation file\) is for the datasets \['voc'\]"
    ):
        DetectionDataModule(dataset="coco", data_dir=str(voc_root), train_split="*")


def test_no_split_means_nothing_to_generate(tmp_path: Path) -> None:
    datamodule = DetectionDataModule(
        dataset="synthetic", data_dir=str(tmp_path / "none"), train_split=None, val_split=None, class_names=["a"]
    )
    datamodule.prepare_data()
    assert not (tmp_path / "none").exists()


def test_datamodule_rejects_bad_settings(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="valid names"):
        DetectionDataModule(dataset="kitti", data_dir=str(tmp_path))
    with pytest.raises(ValueError, match="multiple of 32"):
        DetectionDataModule(dataset="coco", data_dir=str(tmp_path), input_size=100)
    datamodule = DetectionDataModule(dataset="coco", data_dir=str(tmp_path / "missing"), input_size=64)
    with pytest.raises(FileNotFoundError, match="instances_train.json"):
        datamodule.setup("fit")


def test_synthetic_refuses_a_foreign_non_empty_folder(tmp_path: Path) -> None:
    (tmp_path / "mine.txt").write_text("user data")
    datamodule = DetectionDataModule(dataset="synthetic", data_dir=str(tmp_path), input_size=64)
    with pytest.raises(FileExistsError, match="not empty"):
        datamodule.prepare_data()
    assert (tmp_path / "mine.txt").read_text() == "user data"


def test_class_names_can_be_given_for_prediction(tmp_path: Path) -> None:
    datamodule = DetectionDataModule(
        dataset="coco", data_dir=str(tmp_path / "none"), train_split=None, val_split=None, class_names=["a", "b"]
    )
    assert datamodule.num_classes == 2
    with pytest.raises(ValueError, match="predict_dir"):
        datamodule.setup("predict")


def test_a_copy_holding_only_the_validation_split_names_its_classes(coco_root: Path) -> None:
    """`validate` on a folder without the training annotations reads the class names and ids from
    the validation split; when no split reads, the first split's missing file is named."""
    annotations = coco_root / "annotations"
    (annotations / "instances_train.json").rename(annotations / "instances_val.json")
    (coco_root / "images" / "train").rename(coco_root / "images" / "val")
    datamodule = DetectionDataModule(
        dataset="coco", data_dir=str(coco_root), train_split="train", val_split="val", input_size=64, num_workers=0
    )
    assert datamodule.class_names == ["bird", "cat", "dog"] and datamodule.category_ids == [2, 5, 9]
    nowhere = DetectionDataModule(dataset="coco", data_dir=str(coco_root / "missing"), train_split="train")
    with pytest.raises(FileNotFoundError, match="instances_train.json"):
        _ = nowhere.class_names
