"""End to end: a small CenterNet overfits one batch and then detects every object it was shown."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from torchvision.ops import box_iou

from centernet_lightning.tasks import CenterNet

# Per image: (x1, y1, x2, y2, class) in pixels of a 96x96 image.
OBJECTS = [
    [(8, 10, 40, 34, 0), (52, 6, 88, 50, 1), (20, 58, 60, 90, 2)],
    [(6, 44, 30, 88, 2), (46, 12, 90, 40, 0)],
]


def make_batch() -> dict[str, torch.Tensor]:
    """Black images with each object's rectangle painted in its class's colour channel."""
    images = torch.zeros(len(OBJECTS), 3, 96, 96)
    max_objects = max(len(objects) for objects in OBJECTS)
    bboxes = torch.zeros(len(OBJECTS), max_objects, 4)
    labels = torch.zeros(len(OBJECTS), max_objects, dtype=torch.int64)
    mask = torch.zeros(len(OBJECTS), max_objects, dtype=torch.bool)
    for image_index, objects in enumerate(OBJECTS):
        for object_index, (x1, y1, x2, y2, label) in enumerate(objects):
            images[image_index, label, y1:y2, x1:x2] = 1.0
            bboxes[image_index, object_index] = torch.tensor([x1, y1, x2, y2], dtype=torch.float32)
            labels[image_index, object_index] = label
            mask[image_index, object_index] = True
    return {"images": images, "bboxes": bboxes, "labels": labels, "mask": mask}


@pytest.mark.slow
@pytest.mark.parametrize(
    "heads",
    [None, {"size": {"loss": "l1", "weight": 0.1}, "offset": {"loss": "l1", "weight": 1.0}}],
    ids=["ltrb_giou", "size_offset_l1"],
)
def test_tiny_model_overfits_one_batch(heads):
    random.seed(0)
    np.random.seed(0)
    torch.manual_seed(0)
    batch = make_batch()
    model = CenterNet(
        3,
        backbone="resnet18",
        neck={"name": "fpn", "upsample_channels": [64, 64, 32]},
        heads=heads,
        head_width=32,
        optimizer={"name": "AdamW", "lr": 1e-3},
    )
    optimizer = model.configure_optimizers()["optimizer"]
    model.train()
    first_loss = None
    for _ in range(200):
        losses = model.criterion(model(batch["images"]), batch)
        optimizer.zero_grad()
        losses["total"].backward()
        optimizer.step()
        first_loss = first_loss if first_loss is not None else losses["total"].item()
    assert losses["total"].item() < 0.1 * first_loss

    model.eval()
    detections = model.detect(batch["images"], num_detections=10)
    for image_index, objects in enumerate(OBJECTS):
        scores = detections["scores"][image_index]
        for x1, y1, x2, y2, label in objects:
            gt_box = torch.tensor([[x1, y1, x2, y2]], dtype=torch.float32)
            same_label = (detections["labels"][image_index] == label) & (scores > 0.3)
            assert same_label.any(), f"no confident detection of class {label} in image {image_index}"
            ious = box_iou(gt_box, detections["bboxes"][image_index][same_label])[0]
            assert ious.max() > 0.9, (label, ious, detections["bboxes"][image_index][same_label])
        # The best detections are the objects, not background.
        assert (scores[: len(objects)] > 0.3).all()


# Per figure: its box and three joints (x, y) in pixels of a 96x96 image: a head and two hands.
FIGURES = [
    ((10, 8, 42, 60), [(26, 14), (14, 36), (38, 36)]),
    ((54, 30, 90, 88), [(72, 36), (58, 60), (86, 58)]),
]
JOINTS = {"names": ["head", "left_hand", "right_hand"], "skeleton": [[0, 1], [0, 2]]}


def make_pose_batch() -> dict[str, torch.Tensor]:
    """One black image with two grey figures; each joint a bright dot of its own colour."""
    image = torch.zeros(1, 3, 96, 96)
    keypoints = torch.zeros(1, len(FIGURES), 3, 3)
    for index, ((x1, y1, x2, y2), joints) in enumerate(FIGURES):
        image[0, :, y1:y2, x1:x2] = 0.3
        for joint, (x, y) in enumerate(joints):
            image[0, joint, y - 2 : y + 3, x - 2 : x + 3] = 1.0
            keypoints[0, index, joint] = torch.tensor([x + 0.5, y + 0.5, 2.0])  # the dot's centre
    return {
        "images": image,
        "bboxes": torch.tensor([[box for box, _ in FIGURES]], dtype=torch.float32),
        "labels": torch.zeros(1, len(FIGURES), dtype=torch.int64),
        "mask": torch.ones(1, len(FIGURES), dtype=torch.bool),
        "keypoints": keypoints,
    }


@pytest.mark.slow
def test_tiny_keypoint_model_overfits_and_decodes_the_joints():
    torch.manual_seed(0)
    batch = make_pose_batch()
    heads = {"size": {"weight": 0.1}, "offset": {}, "keypoint_offsets": {}, "keypoint_heatmap": {},
             "keypoint_peak_offset": {}}  # fmt: skip
    model = CenterNet(
        1,
        backbone="resnet18",
        neck={"name": "fpn", "upsample_channels": [64, 64, 32]},
        heads=heads,
        head_width=32,
        keypoint_layout=JOINTS,
        optimizer={"name": "AdamW", "lr": 1e-3},
    )
    optimizer = model.configure_optimizers()["optimizer"]
    model.train()
    for _ in range(250):
        losses = model.criterion(model(batch["images"]), batch)
        optimizer.zero_grad()
        losses["total"].backward()
        optimizer.step()

    model.eval()
    detections = model.detect(batch["images"], num_detections=5)
    assert (detections["scores"][0, :2] > 0.3).all() and detections["scores"][0, 2] < 0.3
    for box, joints in FIGURES:
        ious = box_iou(torch.tensor([box], dtype=torch.float32), detections["bboxes"][0, :2])[0]
        assert ious.max() > 0.8, ious
        found = detections["keypoints"][0, int(ious.argmax())]  # [3, 3]: x, y, score
        expected = torch.tensor(joints, dtype=torch.float32) + 0.5
        assert (found[:, :2] - expected).abs().max() < 1.5, (found, expected)
        assert (found[:, 2] > 0.3).all(), found  # snapped to confident joint peaks
