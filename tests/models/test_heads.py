"""Head types and the detector network: targets shared by every head, losses, decoding, stacks."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from centernet_lightning.models import CenterNetLoss, build_detector
from centernet_lightning.models.detector import CenterNetDetector, decode_outputs
from centernet_lightning.models.head_table import build_heads
from centernet_lightning.targets import encode_targets


def random_boxes(generator: torch.Generator, batch: int, count: int, size: float) -> torch.Tensor:
    """[batch, count, 4] XYXY boxes inside a ``size`` square, far enough apart to keep one peak each."""
    boxes = []
    for _ in range(batch):
        per_image: list[list[float]] = []
        while len(per_image) < count:
            w, h = (torch.rand(2, generator=generator) * 24 + 6).tolist()
            x1, y1 = (torch.rand(2, generator=generator) * (size - 32)).tolist()
            centre = (x1 + w / 2, y1 + h / 2)
            if all(
                abs(centre[0] - (b[0] + b[2]) / 2) > 12 or abs(centre[1] - (b[1] + b[3]) / 2) > 12 for b in per_image
            ):
                per_image.append([x1, y1, x1 + w, y1 + h])
        boxes.append(per_image)
    return torch.tensor(boxes)


def ideal_outputs(targets, num_classes: int) -> dict[str, torch.Tensor]:
    """The outputs a perfect size + offset model would give: targets written at the peak cells."""
    batch, count = targets.valid.shape
    size_map = torch.zeros(batch, 2, targets.height, targets.width)
    offset_map = torch.zeros(batch, 2, targets.height, targets.width)
    for b in range(batch):
        for n in range(count):
            x, y = targets.cells[b, n].tolist()
            size_map[b, :, y, x] = targets.sizes[b, n]
            offset_map[b, :, y, x] = targets.centers[b, n] - targets.cells[b, n].float()
    return {"heatmap": targets.heatmap, "size": size_map, "offset": offset_map}


def test_size_offset_encode_decode_round_trip_to_a_hundredth_of_a_pixel():
    generator = torch.Generator().manual_seed(0)
    stride, size = 4, 128
    bboxes = random_boxes(generator, 2, 6, size)
    labels = torch.randint(0, 3, (2, 6), generator=generator)
    mask = torch.ones(2, 6, dtype=torch.bool)
    targets = encode_targets(bboxes, labels, mask, 3, size // stride, size // stride, stride)
    assert targets.valid.all()
    # The paper's targets: offset = centre/stride - floor(centre/stride), size in grid cells.
    centres = (bboxes[..., :2] + bboxes[..., 2:]) / 2 / stride
    torch.testing.assert_close(targets.centers, centres)
    torch.testing.assert_close(targets.sizes, (bboxes[..., 2:] - bboxes[..., :2]) / stride)
    assert torch.equal(targets.cells, centres.floor().long())

    detections = decode_outputs(ideal_outputs(targets, 3), stride, num_detections=6, logits=False)
    for b in range(2):
        assert (detections["scores"][b] == 1).all()
        order = [int(torch.nonzero(detections["indices"][b] == i)[0]) for i in targets.indices[b]]
        decoded = detections["bboxes"][b][order]
        assert (decoded - bboxes[b]).abs().max() < 0.01
        assert detections["labels"][b][order].tolist() == labels[b].tolist()


def paper_detector():
    """The paper's heads (heatmap, size, offset) on a small ResNet-18, and its loss."""
    torch.manual_seed(0)
    detector = build_detector(2, "resnet18", "simple", {"size": {}, "offset": {}}, head_width=8)
    return detector, CenterNetLoss(detector)


def test_paper_losses_match_the_original_formulas():
    """L1 summed over the valid objects' values and divided by their count (+1e-4), as RegL1Loss."""
    detector, criterion = paper_detector()
    images = torch.randn(1, 3, 64, 64)
    batch = {
        "bboxes": torch.tensor([[[4.0, 6.0, 30.0, 40.0], [33.0, 20.0, 60.0, 50.0], [0.0, 0.0, 0.0, 0.0]]]),
        "labels": torch.tensor([[0, 1, 0]]),
        "mask": torch.tensor([[True, True, False]]),
    }
    outputs = detector(images)
    losses = criterion(outputs, batch)
    targets = criterion.encode_targets(batch, 16, 16)
    size_error = offset_error = 0.0
    for n in range(2):
        x, y = targets.cells[0, n].tolist()
        size_error += (outputs["size"][0, :, y, x] - targets.sizes[0, n]).abs().sum()
        offset_error += (outputs["offset"][0, :, y, x] - (targets.centers[0, n] - targets.cells[0, n])).abs().sum()
    torch.testing.assert_close(losses["size"], size_error / (4 + 1e-4))
    torch.testing.assert_close(losses["offset"], offset_error / (4 + 1e-4))
    torch.testing.assert_close(losses["total"], losses["heatmap"] + 0.1 * losses["size"] + losses["offset"])


class _TwoStacks(nn.Module):
    """A stand-in stacked backbone: two stride-4 maps of 8 channels."""

    num_stacks, out_channels, strides = 2, [8], [4]

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 8, 4, stride=4)
        self.second = nn.Conv2d(8, 8, 3, padding=1)

    def forward(self, images: torch.Tensor) -> list[torch.Tensor]:
        first = self.stem(images)
        return [first, self.second(first)]


class _PassThrough(nn.Module):
    out_channels, stride = 8, 4

    def forward(self, features):
        return features


def test_stacked_detector_supervises_every_stack_and_infers_with_the_last():
    torch.manual_seed(0)
    specs = {"heatmap": {}, "size": {}, "offset": {}}
    detector = CenterNetDetector(_TwoStacks(), _PassThrough(), [build_heads(specs, 8, 2, 8, 1) for _ in range(2)])
    images = torch.randn(2, 3, 32, 32)
    outputs = detector.train()(images)
    assert set(outputs) == {"heatmap", "size", "offset", "aux_outputs"}  # one dict: the last stack's and the earlier
    assert len(outputs["aux_outputs"]) == 1 and set(outputs["aux_outputs"][0]) == {"heatmap", "size", "offset"}
    batch = {
        "bboxes": torch.tensor([[[2.0, 2.0, 20.0, 24.0]]] * 2),
        "labels": torch.zeros(2, 1, dtype=torch.long),
        "mask": torch.ones(2, 1, dtype=torch.bool),
    }
    losses = CenterNetLoss(detector)(outputs, batch)
    targets = encode_targets(batch["bboxes"], batch["labels"], batch["mask"], 2, 8, 8, 4)
    assert {"stack0", "stack1"} <= set(losses)
    # Each head's loss is averaged over the stacks (the original divides by num_stacks).
    torch.testing.assert_close(losses["total"], (losses["stack0"] + losses["stack1"]) / 2)
    single = detector.heads[0]["size"].loss(outputs["aux_outputs"][0]["size"], targets)
    other = detector.heads[1]["size"].loss(outputs["size"], targets)
    torch.testing.assert_close(losses["size"], (single + other) / 2)
    losses["total"].backward()
    assert all(p.grad is not None for p in detector.heads[0].parameters())

    evaluated = detector.eval()(images)
    assert set(evaluated) == {"heatmap", "size", "offset"}  # only the last stack's heads run
    torch.testing.assert_close(evaluated["size"], detector.heads[1]["size"](detector.backbone(images)[1]))


@pytest.mark.parametrize(
    ("heads", "message"),
    [
        ({"size": {}, "box_2d": {}}, "exactly one box head"),
        ({"offset": {}}, "exactly one box head"),
        ({"box_2d": {}, "offset": {}}, "offset head refines centres for the size head"),
        ({"mask": {}}, "Unknown head 'mask'; valid names"),
        ({"size": {"loss": "giou"}}, "Unknown size/offset loss 'giou'"),
        ({"size": {"colour": 3}}, "heads.size: .*colour"),
    ],
)
def test_bad_head_configs_are_named(heads, message):
    with pytest.raises(ValueError, match=message):
        build_detector(2, "resnet18", "simple", {"heatmap": {}, **heads}, head_width=8)


def test_objects_flagged_ignore_are_not_learnt():
    detector, criterion = paper_detector()
    outputs = detector(torch.randn(1, 3, 64, 64))
    two = {
        "bboxes": torch.tensor([[[4.0, 6.0, 30.0, 40.0], [33.0, 20.0, 60.0, 50.0]]]),
        "labels": torch.tensor([[0, 1]]),
        "mask": torch.tensor([[True, True]]),
        "ignore": torch.tensor([[False, True]]),
    }
    one = {key: value[:, :1] for key, value in two.items()}
    with_ignored, without = criterion(outputs, two), criterion(outputs, one)
    for key in ("heatmap", "size", "offset", "total"):
        torch.testing.assert_close(with_ignored[key], without[key])


def test_a_non_finite_box_leaves_every_loss_finite():
    detector, criterion = paper_detector()
    outputs = detector(torch.randn(1, 3, 64, 64))
    batch = {
        "bboxes": torch.tensor([[[4.0, 6.0, 30.0, 40.0], [float("nan"), 2.0, 9.0, float("inf")]]]),
        "labels": torch.tensor([[0, 1]]),
        "mask": torch.tensor([[True, True]]),
    }
    clean = {key: value[:, :1] for key, value in batch.items()}
    losses, expected = criterion(outputs, batch), criterion(outputs, clean)
    for key in ("heatmap", "size", "offset", "total"):
        torch.testing.assert_close(losses[key], expected[key])


def test_input_size_is_checked_before_the_backbone_runs():
    detector = build_detector(2, "resnet18", "simple", head_width=8).eval()
    with pytest.raises(ValueError, match=r"Input size \(100, 64\): image sides must be divisible by 32"):
        detector(torch.randn(1, 3, 100, 64))
