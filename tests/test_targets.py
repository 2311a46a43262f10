"""Heatmap and box targets: hand-computed radii and Gaussians, and equality with the original
CenterNet per-object code (``tests/reference.py``) on random batches."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from reference import ctdet_heatmap, ctdet_heatmaps, gaussian_radius

from centernet_lightning.targets import (
    RADIUS_METHODS,
    box_target_indices,
    cornernet_fixed_radius,
    cornernet_radius,
    gaussian_radii,
    render_heatmap,
    render_heatmaps,
    ttfnet_radius,
)

# ----------------------------------------------------------------------------- radii


def test_cornernet_radius_hand_case():
    # h = 10, w = 20, min_overlap = 0.7; each root is (b + sqrt(b^2 - 4ac)) / 2 (no division by 2a).
    r1 = (30 + math.sqrt(30**2 - 4 * 1 * (200 * 0.3 / 1.7))) / 2  # b1 = h + w, c1 = wh(1-o)/(1+o)
    r2 = (60 + math.sqrt(60**2 - 4 * 4 * (0.3 * 200))) / 2  # b2 = 2(h + w), c2 = (1-o)wh
    r3 = (-42 + math.sqrt(42**2 - 4 * 2.8 * (-0.3 * 200))) / 2  # a3 = 4o, b3 = -2o(h + w), c3 = (o-1)wh
    assert r3 == pytest.approx(3.6779253585, abs=1e-9)  # (-42 + sqrt(2436)) / 2, the smallest
    expected = min(r1, r2, r3)
    got = cornernet_radius(torch.tensor([10.0]), torch.tensor([20.0]))
    assert got.item() == pytest.approx(expected, abs=1e-9)
    assert gaussian_radius(10, 20) == pytest.approx(expected, abs=1e-12)
    # gaussian_radii: evaluated on the ceiled size and truncated, so 9.2 x 19.01 -> (10, 20) -> 3.
    radius_y, radius_x = gaussian_radii(torch.tensor([9.2]), torch.tensor([19.01]), "cornernet")
    assert radius_y.item() == radius_x.item() == 3


def test_cornernet_radius_is_symmetric_and_matches_reference_elementwise():
    rng = np.random.default_rng(0)
    heights, widths = rng.uniform(0.1, 200, 50), rng.uniform(0.1, 200, 50)
    got = cornernet_radius(torch.from_numpy(heights), torch.from_numpy(widths), 0.6).numpy()
    expected = [gaussian_radius(h, w, 0.6) for h, w in zip(heights, widths)]
    np.testing.assert_allclose(got, expected, rtol=1e-12)
    swapped = cornernet_radius(torch.from_numpy(widths), torch.from_numpy(heights), 0.6).numpy()
    np.testing.assert_allclose(got, swapped, rtol=1e-12)


def test_cornernet_fixed_radius_matches_mmdetection_formula():
    # mmdetection gaussian_radius, h = 10, w = 20, min_overlap = 0.3:
    # r1 = (b1 - sq1) / 2, r2 = (b2 - sq2) / 8, r3 = (b3 + sq3) / (2 * a3).
    r1 = (30 - math.sqrt(900 - 4 * (200 * 0.7 / 1.3))) / 2  # = 4.1691
    r2 = (60 - math.sqrt(3600 - 16 * 140)) / 8  # = (60 - sqrt(1360)) / 8 = 2.8902
    r3 = (-18 + math.sqrt(324 + 4 * 1.2 * 140)) / (2 * 1.2)  # = 5.6498
    assert min(r1, r2, r3) == pytest.approx(2.8902277714, abs=1e-9)
    got = cornernet_fixed_radius(torch.tensor([10.0]), torch.tensor([20.0]))
    assert got.item() == pytest.approx(min(r1, r2, r3), abs=1e-9)
    radius_y, radius_x = gaussian_radii(torch.tensor([10.0]), torch.tensor([20.0]), "cornernet_fixed")
    assert radius_y.item() == radius_x.item() == 2


def test_ttfnet_radius_is_elliptical():
    # h = 20, w = 41: int(0.54 * 20 / 2) = int(5.4) = 5, int(0.54 * 41 / 2) = int(11.07) = 11.
    radius_y, radius_x = ttfnet_radius(torch.tensor([20.0]), torch.tensor([41.0]))
    assert (radius_y.item(), radius_x.item()) == (5, 11)
    radius_y, radius_x = gaussian_radii(torch.tensor([20.0]), torch.tensor([41.0]), "ttfnet", 0.3)
    assert (radius_y.item(), radius_x.item()) == (3, 6)  # int(3.0), int(6.15)


def test_unknown_method_lists_valid_names():
    with pytest.raises(ValueError, match="valid names") as error:
        gaussian_radii(torch.ones(1), torch.ones(1), "gaussian")
    for name in RADIUS_METHODS:
        assert name in str(error.value)
    with pytest.raises(ValueError, match="cornernet_fixed"):
        render_heatmap(torch.tensor([[1.0, 1.0, 5.0, 5.0]]), torch.tensor([0]), 1, 8, 8, method="nope")


# ----------------------------------------------------------------------------- hand-drawn heatmaps


def test_peak_and_neighbours_hand_case():
    # Box 11 x 11 grid cells with centre (9.5, 11.5): the peak is at the truncated (9, 11).
    # Radius: h = w = 11, r3 = (-30.8 + sqrt(30.8^2 + 4 * 2.8 * 36.3)) / 2 = 3.0065 -> 3, sigma = 7 / 6.
    heatmap = render_heatmap(torch.tensor([[4.0, 6.0, 15.0, 17.0]]), torch.tensor([1]), 2, 32, 24)
    assert heatmap.shape == (2, 32, 24)
    assert heatmap[0].abs().sum() == 0  # other class untouched
    channel = heatmap[1]
    assert channel[11, 9] == 1.0
    assert channel.max() == 1.0 and (channel == 1).sum() == 1
    sigma = 7 / 6
    one_away = math.exp(-1 / (2 * sigma**2))
    for y, x in [(10, 9), (12, 9), (11, 8), (11, 10)]:
        assert channel[y, x].item() == pytest.approx(one_away, abs=1e-6)
    assert channel[12, 10].item() == pytest.approx(math.exp(-2 / (2 * sigma**2)), abs=1e-6)
    assert channel[11, 12].item() == pytest.approx(math.exp(-9 / (2 * sigma**2)), abs=1e-6)
    # The window is (2r + 1) = 7 wide: nothing at distance 4.
    assert channel[11, 13] == 0 and channel[15, 9] == 0
    assert (channel > 0).sum() == 49


def test_radius_zero_box_is_a_single_pixel():
    # 0.5 x 0.5 -> ceil 1 x 1 -> r3 = (-2.8 + sqrt(11.2)) / 2 = 0.27 -> radius 0.
    heatmap = render_heatmap(torch.tensor([[3.2, 5.1, 3.7, 5.6]]), torch.tensor([0]), 1, 8, 8)
    assert heatmap[0, 5, 3] == 1.0
    assert (heatmap > 0).sum() == 1


def test_ttfnet_heatmap_extends_further_along_the_long_side():
    # h = 10, w = 30: radius_y = int(2.7) = 2, radius_x = int(8.1) = 8; sigma_y = 5/6, sigma_x = 17/6.
    heatmap = render_heatmap(torch.tensor([[5.0, 10.0, 35.0, 20.0]]), torch.tensor([0]), 1, 32, 48, "ttfnet")[0]
    center_y, center_x = 15, 20
    assert heatmap[center_y, center_x] == 1.0
    row, column = heatmap[center_y], heatmap[:, center_x]
    assert (row > 0).nonzero().flatten().tolist() == list(range(12, 29))  # |dx| <= 8
    assert (column > 0).nonzero().flatten().tolist() == list(range(13, 18))  # |dy| <= 2
    assert row[center_x + 1].item() == pytest.approx(math.exp(-1 / (2 * (17 / 6) ** 2)), abs=1e-6)
    assert column[center_y + 1].item() == pytest.approx(math.exp(-1 / (2 * (5 / 6) ** 2)), abs=1e-6)
    assert heatmap[center_y + 1, center_x + 1].item() == pytest.approx(
        math.exp(-1 / (2 * (17 / 6) ** 2) - 1 / (2 * (5 / 6) ** 2)), abs=1e-6
    )


def test_same_class_overlap_is_max_merged():
    boxes = torch.tensor([[2.0, 2.0, 14.0, 14.0], [6.0, 6.0, 18.0, 18.0]])
    both = render_heatmap(boxes, torch.tensor([0, 0]), 1, 24, 24)
    first = render_heatmap(boxes[:1], torch.tensor([0]), 1, 24, 24)
    second = render_heatmap(boxes[1:], torch.tensor([0]), 1, 24, 24)
    torch.testing.assert_close(both, torch.maximum(first, second), atol=0, rtol=0)
    assert both[0, 8, 8] == 1.0 and both[0, 12, 12] == 1.0
    assert both[0, 10, 10] < 1.0  # a max, not a sum
    # Different classes do not interact.
    split = render_heatmap(boxes, torch.tensor([0, 1]), 2, 24, 24)
    torch.testing.assert_close(split, torch.cat([first, second]), atol=0, rtol=0)


# ----------------------------------------------------------------------------- against the original code


def random_batch(seed: int, batch_size: int, num_objects: int, num_classes: int, height: int, width: int):
    """Padded boxes in grid pixels with every awkward case: border crossing, overlapping same-class
    boxes, sub-pixel boxes (radius 0), degenerate and inverted boxes, boxes fully outside, padding."""
    rng = np.random.default_rng(seed)
    centers = rng.uniform([-4, -4], [width + 4, height + 4], (batch_size, num_objects, 2))
    sizes = np.exp(rng.uniform(np.log(0.3), np.log(max(height, width)), (batch_size, num_objects, 2)))
    boxes = np.concatenate((centers - sizes / 2, centers + sizes / 2), axis=-1)
    labels = rng.integers(0, num_classes, (batch_size, num_objects))
    # Overlapping copies of the first object of each image, same class, shifted by a few cells.
    boxes[:, 1] = boxes[:, 0] + rng.uniform(-3, 3, (batch_size, 1))
    labels[:, 1] = labels[:, 0]
    boxes[:, 2] = [5.2, 5.1, 5.6, 5.7]  # tiny: radius 0
    boxes[:, 3] = [3.0, 3.0, 3.0, 9.0]  # zero width: dropped
    boxes[:, 4] = [8.0, 2.0, 6.0, 9.0]  # inverted: dropped
    boxes[:, 5] = [-9.0, 2.0, -3.0, 9.0]  # left of the grid: clipped to zero width, dropped
    boxes[:, 6] = [width - 3.0, height - 2.0, width + 7.0, height + 9.0]  # crosses the bottom-right corner
    mask = np.ones((batch_size, num_objects), dtype=bool)
    mask[:, -3:] = rng.random((batch_size, 3)) < 0.5  # padding, with real-looking boxes under it
    mask[-1, :] = False  # one image without objects
    return boxes.astype(np.float32), labels, mask


@pytest.mark.parametrize("min_overlap", [0.7, 0.5])
def test_render_heatmaps_equals_original_ctdet(min_overlap):
    num_classes, height, width = 4, 40, 48
    boxes, labels, mask = random_batch(1, 4, 24, num_classes, height, width)
    expected = ctdet_heatmaps(boxes, labels, mask, num_classes, height, width, min_overlap)
    assert (expected == 1).sum() > 40  # the case has plenty of drawn objects
    heatmaps, centers = render_heatmaps(
        torch.from_numpy(boxes),
        torch.from_numpy(labels),
        torch.from_numpy(mask),
        num_classes,
        height,
        width,
        "cornernet",
        min_overlap,
    )
    assert heatmaps.dtype == torch.float32 and heatmaps.shape == (4, num_classes, height, width)
    np.testing.assert_array_equal(heatmaps.numpy(), expected)  # bit-exact float32

    # Centres: the truncated centre of the clipped box for drawn objects, -1 for the rest.
    clipped = boxes.copy()
    clipped[..., [0, 2]] = clipped[..., [0, 2]].clip(0, width - 1)
    clipped[..., [1, 3]] = clipped[..., [1, 3]].clip(0, height - 1)
    drawn = mask & (clipped[..., 2] > clipped[..., 0]) & (clipped[..., 3] > clipped[..., 1])
    expected_centers = ((clipped[..., :2] + clipped[..., 2:]) / 2).astype(np.int64)
    expected_centers[~drawn] = -1
    np.testing.assert_array_equal(centers.numpy(), expected_centers)
    assert not drawn[:, 3:6].any() and drawn[:-1, 2].all()
    for b, n in zip(*np.nonzero(drawn)):
        x, y = expected_centers[b, n]
        assert heatmaps[b, labels[b, n], y, x] == 1.0


def test_render_heatmap_single_image_equals_original():
    boxes, labels, mask = random_batch(2, 1, 16, 3, 32, 32)
    keep = mask[0]
    expected = ctdet_heatmap(boxes[0][keep], labels[0][keep], 3, 32, 32)
    got = render_heatmap(torch.from_numpy(boxes[0][keep]), torch.from_numpy(labels[0][keep]), 3, 32, 32)
    np.testing.assert_array_equal(got.numpy(), expected)


@pytest.mark.parametrize("method", sorted(RADIUS_METHODS))
def test_all_masked_batch_is_empty_and_finite(method):
    # Padding may hold anything: zeros, inverted boxes, even NaN.
    boxes = torch.tensor([[[0.0, 0.0, 0.0, 0.0], [10.0, 20.0, 20.0, 10.0], [float("nan"), 1.0, float("inf"), 4.0]]])
    boxes = boxes.repeat(2, 1, 1)
    labels = torch.tensor([[0, 1, 5]]).repeat(2, 1)
    mask = torch.zeros(2, 3, dtype=torch.bool)
    heatmaps, centers = render_heatmaps(boxes, labels, mask, 2, 32, 32, method)
    assert torch.isfinite(heatmaps).all() and heatmaps.abs().sum() == 0
    assert (centers == -1).all()
    # Invalid boxes or labels that are NOT masked out are dropped the same way.
    heatmaps, centers = render_heatmaps(boxes, labels, torch.ones_like(mask), 2, 32, 32, method)
    assert torch.isfinite(heatmaps).all() and heatmaps.abs().sum() == 0
    assert (centers == -1).all()


# ----------------------------------------------------------------------------- box target indices


def test_box_target_indices_centre_only():
    centers = torch.tensor([[[0, 0], [3, 2], [-1, -1]], [[4, 3], [-1, -1], [-1, -1]]])
    indices, valid = box_target_indices(centers, height=4, width=5)
    assert indices.shape == valid.shape == (2, 3, 1)
    assert valid[..., 0].tolist() == [[True, True, False], [True, False, False]]
    assert indices[0, 0, 0] == 0 and indices[0, 1, 0] == 2 * 5 + 3 and indices[1, 0, 0] == 3 * 5 + 4


def test_box_target_indices_centre_sampling():
    centers = torch.tensor([[[0, 0], [3, 2], [4, 3], [-1, -1]]])
    indices, valid = box_target_indices(centers, height=4, width=5, center_sampling=True)
    assert indices.shape == valid.shape == (1, 4, 9)
    assert indices[0, :3, 0].tolist() == [0, 13, 19]  # the centre comes first

    def valid_cells(n):
        return sorted(indices[0, n][valid[0, n]].tolist())

    assert valid_cells(0) == [0, 1, 5, 6]  # top-left corner: 5 neighbours fall outside
    assert valid_cells(1) == sorted(y * 5 + x for y in (1, 2, 3) for x in (2, 3, 4))
    assert valid_cells(2) == [13, 14, 18, 19]  # bottom-right corner
    assert not valid[0, 3].any()
    assert ((indices >= 0) & (indices < 20)).all()  # invalid entries still index inside the grid


def test_chunked_rendering_equals_one_pass(monkeypatch):
    import centernet_lightning.targets as targets

    boxes, labels, mask = random_batch(3, 2, 12, 4, 32, 32)
    tensors = (torch.from_numpy(boxes), torch.from_numpy(labels), torch.from_numpy(mask))
    whole, _ = render_heatmaps(*tensors, 4, 32, 32)
    monkeypatch.setattr(targets, "_CHUNK_ELEMENTS", 1)  # one object per chunk
    chunked, _ = render_heatmaps(*tensors, 4, 32, 32)
    assert torch.equal(whole, chunked)
