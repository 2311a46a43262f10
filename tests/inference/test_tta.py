"""Test-time augmentation: each head's flip merge, the flip test's symmetry, multi-scale mapping, config."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import Tensor, nn

from centernet_lightning.inference.tta import TTAConfig, detect_with_tta, parse_tta, scaled_input_size
from centernet_lightning.models.detector import build_detector, decode_outputs
from centernet_lightning.models.heads import Box2DHead, Head, HeatmapHead, OffsetHead, SizeHead
from centernet_lightning.structures import KeypointLayout


def _sigmoid(value: float) -> float:
    return 1 / (1 + math.exp(-value))


# --------------------------------------------------------------------------- each head's merge
def test_heatmap_merge_averages_probabilities_with_the_mirror_flipped_back():
    head = HeatmapHead(8, num_classes=1, width=4)
    output = torch.tensor([[[[0.0, 2.0, -1.0]]]])
    mirrored = torch.tensor([[[[1.0, 0.0, 3.0]]]])  # flipped back: [3, 0, 1]
    expected = torch.tensor(
        [[[[(_sigmoid(0) + _sigmoid(3)) / 2, (_sigmoid(2) + _sigmoid(0)) / 2, (_sigmoid(-1) + _sigmoid(1)) / 2]]]]
    )
    torch.testing.assert_close(head.merge_flipped(output, mirrored), expected)


def test_box_2d_merge_flips_back_and_swaps_left_and_right():
    head = Box2DHead(8, width=4)
    # [1, 4 (l, t, r, b), 1, 2 columns]
    output = torch.tensor([[1.0, 5.0], [2.0, 6.0], [3.0, 7.0], [4.0, 8.0]]).view(1, 4, 1, 2)
    mirrored = torch.tensor([[10.0, 50.0], [20.0, 60.0], [30.0, 70.0], [40.0, 80.0]]).view(1, 4, 1, 2)
    # Column 0 takes the mirror's column 1 as (r, t, l, b) = (70, 60, 50, 80); column 1 the mirror's column 0.
    expected = torch.tensor([[35.5, 17.5], [31.0, 13.0], [26.5, 8.5], [42.0, 24.0]]).view(1, 4, 1, 2)
    torch.testing.assert_close(head.merge_flipped(output, mirrored), expected)


def test_size_merge_averages_with_the_mirror_flipped_back():
    head = SizeHead(8, width=4)
    output = torch.tensor([[2.0, 6.0], [4.0, 8.0]]).view(1, 2, 1, 2)
    mirrored = torch.tensor([[10.0, 30.0], [20.0, 40.0]]).view(1, 2, 1, 2)
    expected = torch.tensor([[16.0, 8.0], [22.0, 14.0]]).view(1, 2, 1, 2)
    torch.testing.assert_close(head.merge_flipped(output, mirrored), expected)


def test_offset_merge_keeps_the_unmirrored_offsets_only():
    head = OffsetHead(8, width=4)
    output = torch.rand(2, 2, 3, 5)
    assert torch.equal(head.merge_flipped(output, torch.rand(2, 2, 3, 5)), output)


def test_merging_an_exact_mirror_gives_the_output_back():
    torch.manual_seed(0)
    distances, sizes, logits = torch.rand(2, 4, 3, 5), torch.rand(2, 2, 3, 5), torch.randn(2, 3, 3, 5)
    mirrored_distances = distances.flip(-1)[:, [2, 1, 0, 3]]  # what a perfectly flip-equivariant net gives
    torch.testing.assert_close(Box2DHead(8, width=4).merge_flipped(distances, mirrored_distances), distances)
    torch.testing.assert_close(SizeHead(8, width=4).merge_flipped(sizes, sizes.flip(-1)), sizes)
    torch.testing.assert_close(HeatmapHead(8, 3, width=4).merge_flipped(logits, logits.flip(-1)), logits.sigmoid())


def test_a_head_without_a_flip_merge_names_itself():
    class PlainHead(Head):
        out_channels = 4

    detector = build_detector(2, "resnet18", "simple", {"box_2d": {}}, head_width=8).eval()
    detector.heads[-1]["box_2d"] = PlainHead(detector.neck.out_channels, 8, 1, "l1", 1.0, 1.0)
    images = torch.randn(1, 3, 64, 64)
    with pytest.raises(NotImplementedError, match="PlainHead head has no merge_flipped"):
        detect_with_tta(detector, images, TTAConfig(flip=True))
    assert detect_with_tta(detector, images, TTAConfig(scales=(0.5, 1.0)))["bboxes"].shape == (1, 100, 4)


# --------------------------------------------------------------------------- a real (random) network
@pytest.fixture(scope="module")
def detector() -> nn.Module:
    torch.manual_seed(0)
    return build_detector(2, "resnet18", "simple", {"box_2d": {}}, head_width=8).eval()


def _mirror_symmetric_image(height: int = 64, width: int = 64) -> Tensor:
    torch.manual_seed(1)
    half = torch.randn(1, 3, height, width // 2)
    return torch.cat((half, half.flip(-1)), dim=-1)


def _distance_to_mirror(detections: dict[str, Tensor], width: int) -> Tensor:
    """For each detection, how far (max abs coordinate, pixels) the nearest detection of the same
    label and score lies from its mirror image: 0 everywhere for a mirror-symmetric set."""
    valid = detections["scores"][0] > 0
    boxes, labels, scores = (
        detections["bboxes"][0][valid],
        detections["labels"][0][valid],
        detections["scores"][0][valid],
    )
    x1, y1, x2, y2 = boxes.unbind(-1)
    mirrored = torch.stack((width - x2, y1, width - x1, y2), dim=-1)
    distances = (mirrored[:, None] - boxes[None]).abs().amax(-1)  # [N mirrored, N boxes]
    same = (labels[:, None] == labels[None]) & ((scores[:, None] - scores[None]).abs() < 1e-6)
    return distances.masked_fill(~same, math.inf).amin(1)


def test_flip_test_on_a_mirror_symmetric_image_gives_mirror_symmetric_boxes(detector):
    images = _mirror_symmetric_image()
    # Every peak of the 2 x 16 x 16 grid, so no mirror pair is cut at the top-K boundary.
    settings = {"num_detections": 512, "score_threshold": 1e-9}
    flipped = detect_with_tta(detector, images, TTAConfig(flip=True), **settings)
    assert (flipped["scores"] > 0).sum() > 10
    assert _distance_to_mirror(flipped, width=64).max() < 1e-4
    # The network itself is not flip-equivariant: without the flip test the set is not symmetric.
    plain = detect_with_tta(detector, images, TTAConfig(), **settings)
    assert _distance_to_mirror(plain, width=64).max() > 0.1


def test_flip_test_decodes_the_merge_of_separate_forward_passes(detector):
    torch.manual_seed(2)
    images = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        outputs, mirrored = detector(images), detector(images.flip(-1))
    heads = detector.heads[-1]
    merged = {name: heads[name].merge_flipped(outputs[name], mirrored[name]) for name in outputs}
    expected = decode_outputs(merged, detector.stride, 20, logits=False)
    detections = detect_with_tta(detector, images, "flip", num_detections=20)
    torch.testing.assert_close(detections["bboxes"], expected["bboxes"], atol=1e-4, rtol=1e-5)
    torch.testing.assert_close(detections["scores"], expected["scores"], atol=1e-6, rtol=1e-5)
    assert torch.equal(detections["labels"], expected["labels"])


def test_scale_one_without_flip_is_plain_decoding_exactly(detector):
    torch.manual_seed(3)
    images = torch.randn(2, 3, 64, 96)
    with torch.no_grad():
        expected = detector.decode(detector(images), 30, 0.1, nms_iou=0.6)
    detections = detect_with_tta(
        detector, images, {"flip": False, "scales": [1.0]}, num_detections=30, score_threshold=0.1, nms_iou=0.6
    )
    for key in expected:
        assert torch.equal(detections[key], expected[key]), key


def test_each_image_of_a_batch_gets_what_it_gets_alone(detector):
    torch.manual_seed(4)
    images = torch.randn(2, 3, 64, 64)
    config = TTAConfig(flip=True, scales=(0.5, 1.0, 1.5))
    together = detect_with_tta(detector, images, config, num_detections=40)
    assert together["bboxes"].shape == (2, 40, 4)
    for index in range(2):
        alone = detect_with_tta(detector, images[index : index + 1], config, num_detections=40)
        torch.testing.assert_close(together["bboxes"][index], alone["bboxes"][0], atol=1e-3, rtol=1e-4)
        torch.testing.assert_close(together["scores"][index], alone["scores"][0], atol=1e-5, rtol=1e-4)
    assert (together["scores"][:, :-1] >= together["scores"][:, 1:]).all()


# --------------------------------------------------------------------------- multi-scale geometry
class RectangleFinder(nn.Module):
    """A fake detector that sees the bright rectangle of channel 0 exactly: one class-1 peak at the
    cell of its centre, and ``box_2d`` distances from that cell's centre to its sides."""

    stride = 4
    size_divisor = 32

    def __init__(self) -> None:
        super().__init__()
        self.heads = nn.ModuleList([nn.ModuleDict({"heatmap": HeatmapHead(1, 2, width=1), "box_2d": Box2DHead(1)})])
        self.calls: list[tuple[int, ...]] = []

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        self.calls.append(tuple(images.shape))
        batch_size, _, height, width = images.shape
        inside = images[:, 0] > 0.5  # [B, H, W]
        columns, rows = inside.any(1).float(), inside.any(2).float()
        x1, y1 = columns.argmax(1).float(), rows.argmax(1).float()  # first pixel inside
        x2, y2 = width - columns.flip(-1).argmax(1).float(), height - rows.flip(-1).argmax(1).float()
        cell_x = ((x1 + x2) / 2 / self.stride).floor().long()
        cell_y = ((y1 + y2) / 2 / self.stride).floor().long()
        heatmap = torch.full((batch_size, 2, height // self.stride, width // self.stride), -20.0)
        heatmap[torch.arange(batch_size), 1, cell_y, cell_x] = 20.0
        anchor_x, anchor_y = (cell_x + 0.5) * self.stride, (cell_y + 0.5) * self.stride
        distances = torch.stack((anchor_x - x1, anchor_y - y1, x2 - anchor_x, y2 - anchor_y), 1) / self.stride
        box_map = distances[:, :, None, None].expand(-1, -1, *heatmap.shape[-2:])
        return {"heatmap": heatmap, "box_2d": box_map}

    def decode(self, outputs, num_detections=100, score_threshold=0.0, nms_iou=None, logits=True):
        return decode_outputs(outputs, self.stride, num_detections, score_threshold, nms_iou, logits)


RECTANGLE = [42.0, 26.0, 106.0, 90.0]


def _rectangle_image() -> Tensor:
    image = torch.zeros(1, 3, 128, 192)
    x1, y1, x2, y2 = (int(value) for value in RECTANGLE)
    image[:, 0, y1:y2, x1:x2] = 1.0
    return image


@pytest.mark.parametrize("flip", [False, True])
@pytest.mark.parametrize("scale", [0.5, 1.0, 1.5])
def test_each_scale_maps_its_box_back_to_the_input_pixels(scale, flip):
    # The rectangle's sides land on whole pixels at 0.5x and 1.5x, so bilinear resizing keeps them exact.
    finder = RectangleFinder()
    detections = detect_with_tta(finder, _rectangle_image(), TTAConfig(flip=flip, scales=(scale,)), num_detections=5)
    assert finder.calls == [(2 if flip else 1, 3, int(128 * scale), int(192 * scale))]  # one forward, 2B with flip
    assert detections["labels"][0, 0] == 1 and detections["scores"][0, 0] > 0.99
    torch.testing.assert_close(detections["bboxes"][0, 0], torch.tensor(RECTANGLE))


def test_scales_are_merged_by_class_wise_nms_and_peak_cells_map_to_the_input_grid():
    finder = RectangleFinder()
    detections = detect_with_tta(finder, _rectangle_image(), TTAConfig(flip=True, scales=(0.5, 1.0, 1.5)), 10)
    assert [shape[-2:] for shape in finder.calls] == [(64, 96), (128, 192), (192, 288)]
    assert detections["bboxes"].shape == (1, 10, 4)
    # The three copies of the rectangle overlap fully: one survives, the rest are near-zero background.
    assert (detections["scores"][0] > 0.5).sum() == 1
    torch.testing.assert_close(detections["bboxes"][0, 0], torch.tensor(RECTANGLE))


def test_peak_cells_of_another_scale_are_cells_of_the_input_grid():
    detections = detect_with_tta(RectangleFinder(), _rectangle_image(), TTAConfig(scales=(0.5,)), 3)
    # At 0.5x the centre (37, 29) px is cell (9, 7); its centre (38, 30) px is (76, 60) px of the
    # input, cell (19, 15) of the 48-wide input grid.
    assert detections["indices"][0, 0] == 15 * 48 + 19


def test_a_scale_rounded_differently_per_axis_maps_back_per_axis():
    finder = RectangleFinder()
    detections = detect_with_tta(finder, _rectangle_image(), TTAConfig(scales=(0.75,)), 3)
    assert finder.calls[0][-2:] == (96, 160)  # 96 x 144 rounded to multiples of 32: x1.2 across, x1.333 down
    # Resized sides fall between pixels: within one resized pixel of the rectangle.
    torch.testing.assert_close(detections["bboxes"][0, 0], torch.tensor(RECTANGLE), atol=1.4, rtol=0)


@pytest.mark.parametrize(
    ("size", "scale", "expected"),
    [
        ((128, 192), 0.75, (96, 160)),
        ((256, 256), 0.5, (128, 128)),
        ((256, 256), 1.25, (320, 320)),
        ((64, 64), 0.1, (32, 32)),
    ],
)
def test_scaled_sizes_are_rounded_to_the_size_divisor(size, scale, expected):
    assert scaled_input_size(*size, scale, 32) == expected


# --------------------------------------------------------------------------- config
@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (True, TTAConfig(flip=True)),
        ("flip", TTAConfig(flip=True, scales=(1.0,))),
        (" Flip, 0.75,1 ,1.25", TTAConfig(flip=True, scales=(0.75, 1.0, 1.25))),
        ("0.5,1.5", TTAConfig(flip=False, scales=(0.5, 1.5))),
        ({"flip": True, "scales": [0.75, 1, 1.25]}, TTAConfig(True, (0.75, 1.0, 1.25), 0.5)),
        ({"scales": [0.5, 1.0], "nms_iou": 0.6}, TTAConfig(False, (0.5, 1.0), 0.6)),
    ],
)
def test_config_values_are_parsed(value, expected):
    parsed = parse_tta(value)
    assert parsed == expected and parsed.enabled
    assert all(type(scale) is float for scale in parsed.scales)


def test_no_tta_values():
    assert parse_tta(None) is None and parse_tta(False) is None
    assert not TTAConfig().enabled


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("mirror", "'mirror' is neither 'flip' nor a scale"),
        ({"flips": True}, r"tta: unknown key 'flips' \(did you mean 'flip'\?\); valid keys: flip, scales, nms_iou"),
        ({"scales": []}, "non-empty list"),
        ({"scales": "1"}, "non-empty list"),
        ({"scales": [0]}, r"tta.scales\[0\] must be in \(0, 4\], got 0"),
        ({"scales": [1.0, -0.5]}, r"tta.scales\[1\] must be in \(0, 4\], got -0.5"),
        ({"scales": [1, 1.0]}, "a scale twice"),
        ({"flip": "yes"}, "tta.flip must be true or false, got 'yes'"),
        ({"nms_iou": 0}, r"tta.nms_iou must be in \(0, 1\], got 0"),
        ({"nms_iou": 1.5}, "got 1.5"),
        (3, r"cannot read 3 \(int\)"),
    ],
)
def test_bad_config_values_are_named(value, message):
    with pytest.raises(ValueError, match=message):
        parse_tta(value)


def test_a_scale_maps_the_joints_of_a_keypoint_model_back_to_the_input():
    torch.manual_seed(0)
    layout = KeypointLayout(("head", "left_hand", "right_hand"))
    heads = {"size": {}, "offset": {}, "keypoint_offsets": {}, "keypoint_heatmap": {}}
    detector = build_detector(1, "resnet18", {"name": "simple", "upsample_channels": [16] * 3}, heads, 8, 1, layout)
    detector.eval()
    images = torch.randn(1, 3, 128, 128)
    half = F.interpolate(images, size=(64, 64), mode="bilinear", align_corners=False)
    with torch.no_grad():
        expected = decode_outputs(detector(half), detector.stride, 10)
    found = detect_with_tta(detector, images, {"flip": False, "scales": [0.5]}, num_detections=10)
    assert found["keypoints"].shape == (1, 10, 3, 3)
    torch.testing.assert_close(found["keypoints"][..., :2], expected["keypoints"][..., :2] * 2)
    torch.testing.assert_close(found["keypoints"][..., 2], expected["keypoints"][..., 2])
