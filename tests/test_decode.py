"""Decoding: peaks, boxes, thresholds and NMS on hand-built maps, and an encode -> decode round trip."""

from __future__ import annotations

import pytest
import torch

from centernet_lightning.decode import apply_nms, decode_ltrb, topk_peaks
from centernet_lightning.models.detector import decode_outputs
from centernet_lightning.structures import Detections
from centernet_lightning.targets import render_heatmaps


def decode_detections(heatmap, box_map, stride, **kwargs) -> Detections:
    """Decode heatmap probabilities and a box_2d map as the detector does."""
    return decode_outputs({"heatmap": heatmap, "box_2d": box_map}, stride, logits=False, **kwargs)


def hand_heatmap() -> torch.Tensor:
    """[2, 2, 5, 6]: image 0 holds the interesting peaks, image 1 a single one."""
    heatmap = torch.zeros(2, 2, 5, 6)
    heatmap[0, 0, 1, 1] = 0.9
    heatmap[0, 0, 1, 2] = 0.8  # next to the 0.9: suppressed by the 3x3 max-pool
    heatmap[0, 0, 3, 4] = 0.5
    heatmap[0, 1, 1, 1] = 0.7  # another class at the same cell as the 0.9: kept
    heatmap[0, 1, 4, 5] = 0.6  # bottom-right corner
    heatmap[1, 1, 2, 3] = 0.4
    return heatmap


def test_topk_peaks_hand_case():
    scores, labels, ys, xs, indices = topk_peaks(hand_heatmap(), k=4)
    assert scores.shape == labels.shape == ys.shape == xs.shape == (2, 4)
    assert (indices == ys * 6 + xs).all()
    torch.testing.assert_close(scores[0], torch.tensor([0.9, 0.7, 0.6, 0.5]))
    assert labels[0].tolist() == [0, 1, 1, 0]
    assert ys[0].tolist() == [1, 1, 4, 3]
    assert xs[0].tolist() == [1, 1, 5, 4]
    assert scores[1, 0].item() == pytest.approx(0.4)
    assert [labels[1, 0].item(), ys[1, 0].item(), xs[1, 0].item()] == [1, 2, 3]
    assert (scores[1, 1:] == 0).all()
    assert labels.dtype == ys.dtype == xs.dtype == torch.int64


def test_topk_peaks_caps_k_and_sorts():
    scores, labels, ys, xs, _ = topk_peaks(hand_heatmap(), k=1000)
    assert scores.shape == (2, 2 * 5 * 6)
    assert (scores[:, :-1] >= scores[:, 1:]).all()
    assert 0.8 not in scores[0].tolist()  # the suppressed neighbour never appears
    # Every (label, y, x) is a distinct cell.
    cells = set(zip(labels[0].tolist(), ys[0].tolist(), xs[0].tolist()))
    assert len(cells) == 60


def test_decode_boxes_hand_case():
    box_map = torch.zeros(1, 4, 3, 4)
    box_map[0, :, 1, 2] = torch.tensor([1.0, 0.5, 2.0, 1.5])  # left, top, right, bottom in cells
    boxes = decode_ltrb(box_map, torch.tensor([[1 * 4 + 2, 0]]), width=4, stride=4)
    # Anchor ((2 + 0.5) * 4, (1 + 0.5) * 4) = (10, 6); XYXY = (10 - 4, 6 - 2, 10 + 8, 6 + 6).
    torch.testing.assert_close(boxes[0, 0], torch.tensor([6.0, 4.0, 18.0, 12.0]))
    torch.testing.assert_close(boxes[0, 1], torch.tensor([2.0, 2.0, 2.0, 2.0]))  # zero distances: the anchor


def test_encode_decode_round_trip():
    """GT boxes -> heatmaps + ideal box map -> decode_detections recovers boxes and labels."""
    generator = torch.Generator().manual_seed(0)
    stride, grid, num_classes = 4, 16, 3
    batch_boxes, batch_labels = [], []
    for _ in range(2):
        boxes, labels, used = [], [], set()
        while len(boxes) < 5:
            x1, y1 = (torch.rand(2, generator=generator) * 40).tolist()
            w, h = (torch.rand(2, generator=generator) * 20 + 4).tolist()
            label = int(torch.randint(num_classes, (1,), generator=generator))
            cell = (label, int((x1 + w / 2) / stride), int((y1 + h / 2) / stride))
            # One object per (class, cell), and never in a same-class neighbour cell (equal peaks of 1
            # would both survive the max-pool, but a neighbour's box map would be overwritten).
            if any(c == label and abs(x - cell[1]) <= 1 and abs(y - cell[2]) <= 1 for c, x, y in used):
                continue
            used.add(cell)
            boxes.append([x1, y1, x1 + w, y1 + h])
            labels.append(label)
        batch_boxes.append(boxes)
        batch_labels.append(labels)
    boxes = torch.tensor(batch_boxes)  # [2, 5, 4] input pixels
    labels = torch.tensor(batch_labels)
    mask = torch.ones(2, 5, dtype=torch.bool)

    heatmaps, centers = render_heatmaps(boxes / stride, labels, mask, num_classes, grid, grid)
    box_map = torch.zeros(2, 4, grid, grid)
    for b in range(2):
        for n in range(5):
            x, y = centers[b, n].tolist()
            anchor_x, anchor_y = x + 0.5, y + 0.5
            x1, y1, x2, y2 = (boxes[b, n] / stride).tolist()
            box_map[b, :, y, x] = torch.tensor([anchor_x - x1, anchor_y - y1, x2 - anchor_x, y2 - anchor_y])

    detections = decode_detections(heatmaps, box_map, stride, num_detections=20)
    assert detections["bboxes"].shape == (2, 20, 4)
    for b in range(2):
        found = detections["scores"][b] == 1
        assert found.sum() == 5
        got = sorted(
            zip(detections["labels"][b][found].tolist(), detections["bboxes"][b][found].tolist()),
            key=lambda item: (item[0], item[1]),
        )
        expected = sorted(zip(labels[b].tolist(), boxes[b].tolist()), key=lambda item: (item[0], item[1]))
        assert [label for label, _ in got] == [label for label, _ in expected]
        torch.testing.assert_close(
            torch.tensor([box for _, box in got]), torch.tensor([box for _, box in expected]), atol=1e-4, rtol=0
        )
        assert (detections["scores"][b][~found] < 1).all()


def test_score_threshold_pads_but_keeps_shapes():
    box_map = torch.ones(2, 4, 5, 6)
    plain = decode_detections(hand_heatmap(), box_map, stride=4, num_detections=10)
    thresholded = decode_detections(hand_heatmap(), box_map, stride=4, num_detections=10, score_threshold=0.6)
    for key in ("bboxes", "labels", "scores", "indices"):
        assert thresholded[key].shape == plain[key].shape
    kept = plain["scores"] >= 0.6
    assert kept.sum() == 3  # 0.9, 0.7, 0.6 in image 0; nothing in image 1
    torch.testing.assert_close(thresholded["scores"], plain["scores"] * kept)
    assert (thresholded["labels"][~kept] == -1).all()
    assert (thresholded["labels"][kept] == plain["labels"][kept]).all()
    torch.testing.assert_close(thresholded["bboxes"], plain["bboxes"])


def test_nms_removes_same_class_duplicates_only():
    box = [4.0, 4.0, 20.0, 20.0]
    near = [4.0, 5.0, 20.0, 21.0]  # IoU 15/17 with box
    far = [40.0, 40.0, 50.0, 50.0]
    detections = Detections(
        bboxes=torch.tensor([[box, near, near, far], [near, box, far, far]]),
        labels=torch.tensor([[0, 0, 1, 0], [0, 2, 2, -1]]),
        scores=torch.tensor([[0.9, 0.8, 0.7, 0.3], [0.85, 0.5, 0.2, 0.0]]),
        indices=torch.tensor([[10, 11, 12, 13], [20, 21, 22, 23]]),
    )
    result = apply_nms(detections, iou_threshold=0.5)
    # Image 0: the 0.8 duplicate of class 0 goes; class 1 at the same place and the far box stay.
    torch.testing.assert_close(result["scores"][0], torch.tensor([0.9, 0.7, 0.3, 0.0]))
    assert result["labels"][0].tolist() == [0, 1, 0, -1]
    assert result["indices"][0, :3].tolist() == [10, 12, 13]  # the cells follow their detections
    torch.testing.assert_close(result["bboxes"][0, :3], torch.tensor([box, near, far]))
    # Image 1 is untouched by image 0's boxes: classes 0 and 2 overlap but are different classes.
    torch.testing.assert_close(result["scores"][1], torch.tensor([0.85, 0.5, 0.2, 0.0]))
    assert result["labels"][1].tolist() == [0, 2, 2, -1]
    assert (result["scores"][:, :-1] >= result["scores"][:, 1:]).all()


def test_decode_detections_with_nms():
    heatmap = torch.zeros(1, 2, 5, 6)
    heatmap[0, 0, 2, 2] = 0.9
    heatmap[0, 0, 2, 4] = 0.8  # two cells apart: both are peaks
    heatmap[0, 1, 2, 4] = 0.7
    box_map = torch.zeros(1, 4, 5, 6)
    # Both cells decode to (4, 4, 20, 20): anchors (10, 10) and (18, 10), stride 4.
    box_map[0, :, 2, 2] = torch.tensor([6.0, 6.0, 10.0, 10.0]) / 4
    box_map[0, :, 2, 4] = torch.tensor([14.0, 6.0, 2.0, 10.0]) / 4
    plain = decode_detections(heatmap, box_map, stride=4, num_detections=4)
    torch.testing.assert_close(plain["bboxes"][0, :3], torch.tensor([[4.0, 4.0, 20.0, 20.0]] * 3))
    result = decode_detections(heatmap, box_map, stride=4, num_detections=4, nms_iou=0.5)
    torch.testing.assert_close(result["scores"][0], torch.tensor([0.9, 0.7, 0.0, 0.0]))
    assert result["labels"][0].tolist() == [0, 1, -1, -1]
