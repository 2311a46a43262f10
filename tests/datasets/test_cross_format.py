"""The same images written as COCO, VOC and YOLO must give the same samples."""

import numpy as np
import torch

from centernet_lightning.datasets import COCODataset, VOCDataset, YOLODataset, build_transforms


def make_datasets(coco_root, voc_root, yolo_root, classes, transforms=None):
    return {
        "coco": COCODataset(coco_root, "train", transforms=transforms),
        "voc": VOCDataset(voc_root, "train", transforms=transforms, name_to_label=classes),
        "yolo": YOLODataset(yolo_root, "train", classes, transforms=transforms),
    }


def test_raw_samples_match_across_formats(coco_root, voc_root, yolo_root, classes, scene):
    datasets = make_datasets(coco_root, voc_root, yolo_root, classes)
    coco_names = datasets["coco"].class_names
    for index, expected in enumerate(scene):
        samples = {name: dataset[index] for name, dataset in datasets.items()}
        for name, sample in samples.items():
            np.testing.assert_array_equal(sample["image"], expected["image"], err_msg=name)
            np.testing.assert_allclose(sample["bboxes"], expected["bboxes"], atol=1e-4, err_msg=name)
            assert sample["original_size"] == expected["image"].shape[:2], name
            assert sample["bboxes"].dtype == np.float32 and sample["labels"].dtype == np.int64, name
        # COCO orders labels by category id; compare class names instead of indices
        names = {
            name: [(coco_names if name == "coco" else classes)[label] for label in sample["labels"]]
            for name, sample in samples.items()
        }
        assert names["coco"] == names["voc"] == names["yolo"] == [classes[i] for i in expected["labels"]]


def test_transformed_samples_match_across_formats(coco_root, voc_root, yolo_root, classes):
    datasets = make_datasets(coco_root, voc_root, yolo_root, classes, transforms=build_transforms("val", 64))
    for index in range(3):
        coco, voc, yolo = (datasets[name][index] for name in ("coco", "voc", "yolo"))
        assert coco["image"].shape == (3, 64, 64)
        assert torch.equal(coco["image"], voc["image"]) and torch.equal(coco["image"], yolo["image"])
        torch.testing.assert_close(coco["bboxes"], voc["bboxes"], atol=1e-4, rtol=0)
        torch.testing.assert_close(coco["bboxes"], yolo["bboxes"], atol=1e-4, rtol=0)
        torch.testing.assert_close(coco["letterbox"], yolo["letterbox"])
