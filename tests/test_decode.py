"""Decoding: peaks, boxes, thresholds and NMS on hand-built maps, and an encode -> decode round trip."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from centernet_lightning import decode
from centernet_lightning.decode import apply_nms, decode_ltrb, mask_detections, suppress_non_peaks, topk_peaks
from centernet_lightning.inference.predictor import keep_detections
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


def reference_topk_peaks(scores: torch.Tensor, k: int, kernel: int = 3) -> tuple[torch.Tensor, ...]:
    """The decoding before the fast path: the original's ``_nms`` and one topk over all C*H*W values."""
    batch_size, num_classes, height, width = scores.shape
    pooled = F.max_pool2d(scores, kernel, stride=1, padding=(kernel - 1) // 2)
    peaks = scores * (pooled == scores).to(scores.dtype)
    top_scores, top_indices = peaks.reshape(batch_size, -1).topk(min(k, num_classes * height * width))
    labels = top_indices // (height * width)
    spatial = top_indices % (height * width)
    return top_scores, labels, spatial // width, spatial % width, spatial


def assert_bit_identical(actual: tuple[torch.Tensor, ...], expected: tuple[torch.Tensor, ...]) -> None:
    """Every field equal element by element, scores compared as bits (NaN, -0.0 and +0.0 included)."""
    assert len(actual) == len(expected)
    for got, want in zip(actual, expected):
        assert got.dtype == want.dtype and got.shape == want.shape
        if got.is_floating_point():
            got, want = got.view(torch.int32), want.view(torch.int32)
        assert torch.equal(got, want)


def random_heatmap(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """Sigmoid of Gaussian logits: no two values equal in practice."""
    generator = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=generator) * 2 - 3).sigmoid()


def tied_heatmap(shape: tuple[int, ...], seed: int) -> torch.Tensor:
    """Four levels only: plateaus of equal neighbours that all survive the max-pool, and ties everywhere."""
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(0, 4, shape, generator=generator).float() / 4


def sparse_heatmap(shape: tuple[int, ...], seed: int, num_peaks: int = 3) -> torch.Tensor:
    """Zeros with a few distinct positive cells per image: fewer peaks than k, the rest score-0 padding."""
    generator = torch.Generator().manual_seed(seed)
    heatmap = torch.zeros(shape)
    flat = heatmap.view(shape[0], -1)
    cells = torch.randperm(flat.shape[1], generator=generator)[:num_peaks]
    flat[:, cells] = torch.rand(shape[0], num_peaks, generator=generator) * 0.5 + 0.25
    return heatmap


@pytest.mark.parametrize(
    ("make", "shape", "k", "kernel"),
    [
        (random_heatmap, (3, 4, 13, 17), 20, 3),  # two stages, batch of 3, odd sizes
        (random_heatmap, (2, 80, 32, 32), 100, 3),  # the realistic ratio of k to C*H*W
        (random_heatmap, (2, 3, 9, 1), 5, 3),  # one column
        (random_heatmap, (1, 2, 1, 11), 1, 3),  # one row per class: k + 1 = C * H, a single stage
        (random_heatmap, (2, 5, 7, 6), 8, 5),
        (random_heatmap, (2, 5, 7, 6), 8, 1),  # every cell is a peak
        (tied_heatmap, (3, 4, 13, 17), 20, 3),  # ties and plateaus: the eager path falls back
        (tied_heatmap, (2, 80, 16, 16), 100, 3),
        (sparse_heatmap, (2, 6, 11, 9), 10, 3),  # 3 peaks, 7 entries of score-0 padding
        (random_heatmap, (2, 2, 3, 4), 1000, 3),  # k capped at C*H*W = 24
        (tied_heatmap, (2, 2, 3, 4), 1000, 3),
    ],
)
@pytest.mark.parametrize("seed", [0, 1])
def test_topk_peaks_is_bit_identical_to_the_single_topk(make, shape, k, kernel, seed):
    scores = make(shape, seed)
    assert_bit_identical(topk_peaks(scores, k, kernel), reference_topk_peaks(scores, k, kernel))


@pytest.mark.parametrize("make", [random_heatmap, tied_heatmap, sparse_heatmap])
def test_batched_pass_is_bit_identical_too(make):
    """The one-pass route (graphs, CUDA, one image) on a whole batch: a tie in any image re-runs the batch."""
    scores = make((3, 6, 11, 9), 4)
    assert_bit_identical(decode._image_peaks(scores, 10, 3, logits=False), reference_topk_peaks(scores, 10))


def test_topk_peaks_from_logits_layouts_and_empty_batches():
    generator = torch.Generator().manual_seed(6)
    logits = (torch.randn(3, 5, 12, 10, generator=generator) * 2 - 3).bfloat16()
    expected = reference_topk_peaks(logits.float().sigmoid(), 15)
    assert_bit_identical(topk_peaks(logits, 15, logits=True), expected)  # bf16: ties, the fall-back
    channels_last = logits.float().sigmoid().contiguous(memory_format=torch.channels_last)
    assert_bit_identical(topk_peaks(channels_last, 15), expected)
    empty = topk_peaks(torch.rand(0, 5, 12, 10), 15)
    assert all(field.shape == (0, 15) for field in empty)


def test_topk_peaks_bit_identical_with_nan_infinities_and_signed_zeros():
    scores = random_heatmap((2, 3, 8, 9), seed=3) - 0.5  # negative scores: non-peaks become -0.0
    scores[0, 1, 2, 3] = float("nan")
    scores[0, 2, 5, 5] = float("inf")
    scores[1, 0, 4, 4] = float("-inf")
    scores[1, 2, 0, 0] = -0.0
    peaks = topk_peaks(scores, 10)
    assert peaks.scores[0, 0].isnan()  # topk ranks NaN first
    assert_bit_identical(peaks, reference_topk_peaks(scores, 10))


@pytest.mark.parametrize("kernel", [1, 3, 5, 7])
@pytest.mark.parametrize("shape", [(2, 3, 10, 7), (1, 2, 1, 1), (1, 1, 2, 3)])
def test_window_max_is_max_pool2d(kernel, shape):
    scores = random_heatmap(shape, seed=kernel)
    scores.view(-1)[0] = float("nan")
    expected = F.max_pool2d(scores, kernel, stride=1, padding=kernel // 2)
    torch.testing.assert_close(decode._window_max(scores, kernel), expected, rtol=0, atol=0, equal_nan=True)


def test_suppress_non_peaks_hand_case():
    scores = torch.tensor([[[[0.1, 0.5, 0.5, 0.2], [0.3, 0.2, 0.1, 0.1], [0.0, 0.4, 0.1, 0.6]]]])
    # 0.5 0.5: a plateau, both kept; 0.4 sees only 0.3, 0.2, 0.1, 0.0 around it; the corner 0.6 is a peak.
    expected = torch.tensor([[[[0.0, 0.5, 0.5, 0.0], [0.0, 0.0, 0.0, 0.0], [0.0, 0.4, 0.0, 0.6]]]])
    assert torch.equal(suppress_non_peaks(scores), expected)
    assert torch.equal(suppress_non_peaks(scores.requires_grad_()), expected)  # the autograd-safe pool


def test_two_stage_topk_takes_the_fast_route_without_ties():
    """Without ties the two stages alone (no fall-back) give the single topk's k + 1 values and cells."""
    scores = random_heatmap((2, 80, 24, 20), seed=5)
    peaks = suppress_non_peaks(scores)
    top_scores, top_indices = decode._two_stage_topk(peaks, 101)
    expected_scores, expected_indices = peaks.reshape(2, -1).topk(101)
    assert (top_scores[:, :-1] > top_scores[:, 1:]).all()  # distinct: topk_peaks keeps this result
    assert torch.equal(top_scores, expected_scores) and torch.equal(top_indices, expected_indices)


@pytest.mark.parametrize("make", [tied_heatmap, sparse_heatmap])
def test_two_stage_topk_values_are_exact_with_ties(make):
    """With ties the values still match the single topk and each index points at its value."""
    peaks = suppress_non_peaks(make((3, 5, 12, 10), seed=2))
    top_scores, top_indices = decode._two_stage_topk(peaks, 25)
    flat = peaks.reshape(3, -1)
    assert torch.equal(top_scores, flat.topk(25).values)
    assert torch.equal(flat.gather(1, top_indices), top_scores)
    assert all(len(set(row)) == 25 for row in top_indices.tolist())  # no cell twice


@pytest.mark.filterwarnings("ignore:`torch.jit.*deprecated:FutureWarning", "ignore::torch.jit.TracerWarning")
def test_traced_topk_peaks_matches_eager():
    """The graph path (max_pool2d, two stages, no data-dependent branch) traces and gives eager's answer."""
    traced = torch.jit.trace(lambda scores: tuple(topk_peaks(scores, 20)), (random_heatmap((2, 4, 13, 17), 0),))
    graph = traced.inlined_graph if hasattr(traced, "inlined_graph") else traced.graph
    assert "max_pool2d" in str(graph)
    for seed in (1, 2):
        scores = random_heatmap((2, 4, 13, 17), seed)
        assert_bit_identical(traced(scores), reference_topk_peaks(scores, 20))
    scores = tied_heatmap((2, 4, 13, 17), 3)
    assert torch.equal(traced(scores)[0], reference_topk_peaks(scores, 20)[0])  # ties: same scores


def test_onnx_graph_orders_ties_by_lower_index(tmp_path):
    """Exported, the two stages give what a single ONNX TopK gives: equal scores by lower flat index."""
    ort = pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")

    class Peaks(torch.nn.Module):
        def forward(self, scores: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
            peaks = topk_peaks(scores, 20)
            return peaks.scores, peaks.labels, peaks.indices

    torch.onnx.export(Peaks().eval(), (tied_heatmap((2, 4, 13, 17), 0),), tmp_path / "peaks.onnx", dynamo=True)
    session = ort.InferenceSession(str(tmp_path / "peaks.onnx"))
    for seed in (1, 2):
        scores = tied_heatmap((2, 4, 13, 17), seed)
        top_scores, labels, indices = session.run(None, {session.get_inputs()[0].name: scores.numpy()})
        flat = suppress_non_peaks(scores).reshape(2, -1)
        expected_scores, expected_indices = flat.sort(dim=1, descending=True, stable=True)
        assert torch.equal(torch.from_numpy(top_scores), expected_scores[:, :20])
        assert torch.equal(torch.from_numpy(labels * 13 * 17 + indices), expected_indices[:, :20])


def test_topk_peaks_rejects_even_kernels():
    with pytest.raises(ValueError, match="kernel must be a positive odd number"):
        topk_peaks(torch.rand(1, 2, 5, 5), k=3, kernel=2)


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


def test_keep_detections_pads_the_dropped_and_moves_them_last():
    detections = Detections(
        bboxes=torch.arange(16, dtype=torch.float32).view(1, 4, 4),
        labels=torch.tensor([[0, 1, 2, -1]]),
        scores=torch.tensor([[0.9, 0.8, 0.5, 0.0]]),
        indices=torch.tensor([[10, 11, 12, 13]]),
    )
    kept = torch.tensor([[True, False, True, True]])  # the padding entry stays padding
    masked = mask_detections(detections, kept)
    torch.testing.assert_close(masked["scores"], torch.tensor([[0.9, 0.0, 0.5, 0.0]]))
    assert masked["labels"].tolist() == [[0, -1, 2, -1]]
    assert masked["indices"].tolist() == [[10, 11, 12, 13]]  # in place
    result = keep_detections(detections, kept)
    torch.testing.assert_close(result["scores"], torch.tensor([[0.9, 0.5, 0.0, 0.0]]))
    assert result["labels"].tolist() == [[0, 2, -1, -1]]
    assert result["indices"].tolist() == [[10, 12, 11, 13]]  # every field follows its entry
    torch.testing.assert_close(result["bboxes"][0, :2], torch.tensor([[0.0, 1, 2, 3], [8, 9, 10, 11]]))


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
