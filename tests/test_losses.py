"""Heatmap and box losses against direct formulas, torchvision and hand-computed cases."""

from __future__ import annotations

import pytest
import torch
from torchvision.ops import complete_box_iou_loss, distance_box_iou_loss, generalized_box_iou_loss

from centernet_lightning.losses import (
    BOX_LOSSES,
    HEATMAP_LOSSES,
    ciou_box_loss,
    cornernet_focal_loss,
    diou_box_loss,
    get_box_loss,
    get_heatmap_loss,
    giou_box_loss,
    iou_box_loss,
    l1_box_loss,
    quality_focal_loss,
    smooth_l1_box_loss,
)
from centernet_lightning.targets import render_heatmaps


def original_focal_loss(logits: torch.Tensor, targets: torch.Tensor, alpha: float = 2, beta: float = 4) -> torch.Tensor:
    """The original CenterNet ``_neg_loss`` on sigmoid probabilities, in float64."""
    pred = torch.sigmoid(logits.double())
    gt = targets.double()
    pos_inds = gt.eq(1).double()
    neg_inds = gt.lt(1).double()
    pos_loss = (torch.log(pred) * (1 - pred) ** alpha * pos_inds).sum()
    neg_loss = (torch.log(1 - pred) * pred**alpha * (1 - gt) ** beta * neg_inds).sum()
    num_pos = pos_inds.sum()
    if num_pos == 0:
        return -neg_loss
    return -(pos_loss + neg_loss) / num_pos


def heatmap_case(seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Logits [3, 2, 16, 16] and Gaussian targets with 3, 1 and 0 objects per image."""
    generator = torch.Generator().manual_seed(seed)
    boxes = torch.tensor(
        [
            [[1.0, 1.0, 9.0, 7.0], [6.0, 5.0, 15.0, 15.0], [2.0, 9.0, 6.0, 14.0]],
            [[3.0, 3.0, 8.0, 8.0], [0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]],
            [[0.0, 0.0, 0.0, 0.0]] * 3,
        ]
    )
    labels = torch.tensor([[0, 1, 0], [1, 0, 0], [0, 0, 0]])
    mask = torch.tensor([[True, True, True], [True, False, False], [False, False, False]])
    targets, _ = render_heatmaps(boxes, labels, mask, 2, 16, 16)
    logits = torch.randn(3, 2, 16, 16, generator=generator) * 3
    return logits, targets


def test_cornernet_focal_loss_equals_original_formula():
    logits, targets = heatmap_case()
    assert targets.eq(1).sum() == 4  # normalised by the positives of the whole batch
    got = cornernet_focal_loss(logits, targets)
    torch.testing.assert_close(got.double(), original_focal_loss(logits, targets), rtol=1e-5, atol=1e-6)
    got = cornernet_focal_loss(logits, targets, alpha=1.5, beta=3.0)
    torch.testing.assert_close(got.double(), original_focal_loss(logits, targets, 1.5, 3.0), rtol=1e-5, atol=1e-6)


def test_cornernet_focal_loss_hand_case():
    # One positive pixel at p = sigmoid(0) = 0.5 and one negative at target 0.5, p = 0.5:
    # pos = -log(0.5) * 0.5^2, neg = -log(0.5) * 0.5^2 * 0.5^4, divided by 1 positive.
    logits = torch.zeros(1, 1, 1, 2)
    targets = torch.tensor([[[[1.0, 0.5]]]])
    log2 = torch.log(torch.tensor(2.0))
    expected = log2 * 0.25 + log2 * 0.25 * 0.0625
    torch.testing.assert_close(cornernet_focal_loss(logits, targets), expected)


def test_cornernet_focal_loss_without_positives_is_the_negative_term():
    logits, targets = heatmap_case()
    empty_logits, empty_targets = logits[2:], targets[2:]
    assert empty_targets.eq(1).sum() == 0
    pred = torch.sigmoid(empty_logits.double())
    negative_term = (torch.log(1 - pred) * pred**2 * (1 - empty_targets.double()) ** 4).sum()
    got = cornernet_focal_loss(empty_logits, empty_targets)
    torch.testing.assert_close(got.double(), -negative_term, rtol=1e-5, atol=1e-6)
    assert got > 0


@pytest.mark.parametrize("loss_fn", [cornernet_focal_loss, quality_focal_loss])
def test_heatmap_losses_finite_for_extreme_logits_and_float16(loss_fn):
    _, targets = heatmap_case()
    logits = torch.full_like(targets, 100.0)
    logits[:, :, ::2] = -100.0  # confidently wrong on positives and on negatives
    logits.requires_grad_(True)
    loss = loss_fn(logits, targets)
    loss.backward()
    assert torch.isfinite(loss) and loss > 10
    assert torch.isfinite(logits.grad).all()

    moderate, targets = heatmap_case(1)
    half_logits = moderate.half().requires_grad_(True)
    half_loss = loss_fn(half_logits, targets.half())
    half_loss.backward()
    assert torch.isfinite(half_loss) and torch.isfinite(half_logits.grad).all()
    torch.testing.assert_close(half_loss, loss_fn(moderate.half().float(), targets.half().float()))
    extreme_half = loss_fn(torch.full_like(targets, 100.0).half(), targets.half())
    assert torch.isfinite(extreme_half)


def test_quality_focal_loss_equals_direct_formula():
    logits, targets = heatmap_case()
    pred = torch.sigmoid(logits.double())
    gt = targets.double()
    bce = -(gt * torch.log(pred) + (1 - gt) * torch.log(1 - pred))
    expected = (bce * (gt - pred).abs() ** 2).sum() / gt.eq(1).sum()
    torch.testing.assert_close(quality_focal_loss(logits, targets).double(), expected, rtol=1e-5, atol=1e-6)
    expected_beta1 = (bce * (gt - pred).abs()).sum() / gt.eq(1).sum()
    torch.testing.assert_close(
        quality_focal_loss(logits, targets, beta=1.0).double(), expected_beta1, rtol=1e-5, atol=1e-6
    )
    # No positive: divided by 1.
    empty = (bce[2:] * (gt[2:] - pred[2:]).abs() ** 2).sum()
    torch.testing.assert_close(quality_focal_loss(logits[2:], targets[2:]).double(), empty, rtol=1e-5, atol=1e-6)


# ----------------------------------------------------------------------------- box losses


def random_boxes(count: int, seed: int) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    top_left = torch.rand(count, 2, generator=generator) * 100
    sizes = torch.rand(count, 2, generator=generator) * 50 + 0.5
    return torch.cat((top_left, top_left + sizes), dim=-1)


@pytest.mark.parametrize(
    "loss_fn, torchvision_fn",
    [
        (giou_box_loss, generalized_box_iou_loss),
        (diou_box_loss, distance_box_iou_loss),
        (ciou_box_loss, complete_box_iou_loss),
    ],
)
def test_iou_variants_equal_torchvision(loss_fn, torchvision_fn):
    pred, target = random_boxes(64, 0), random_boxes(64, 1)
    target[:8] = pred[:8] + 0.5  # some heavily overlapping pairs
    got = loss_fn(pred, target)
    assert got.shape == (64,)
    torch.testing.assert_close(got, torchvision_fn(pred, target, reduction="none"))
    # Batched [B, N, 4] inputs reduce the last axis only.
    assert loss_fn(pred.view(4, 16, 4), target.view(4, 16, 4)).shape == (4, 16)


def test_iou_loss_hand_cases():
    pred = torch.tensor([[0.0, 0.0, 2.0, 2.0], [0.0, 0.0, 4.0, 2.0], [0.0, 0.0, 1.0, 1.0], [1.0, 1.0, 3.0, 5.0]])
    target = torch.tensor([[1.0, 1.0, 3.0, 3.0], [2.0, 0.0, 6.0, 2.0], [5.0, 5.0, 6.0, 6.0], [1.0, 1.0, 3.0, 5.0]])
    # intersection 1, union 4 + 4 - 1 = 7; intersection 4, union 8 + 8 - 4 = 12; disjoint; identical.
    expected = torch.tensor([1 - 1 / 7, 1 - 4 / 12, 1.0, 0.0])
    torch.testing.assert_close(iou_box_loss(pred, target), expected)
    # The IoU term of the torchvision losses agrees: GIoU = 1 - IoU + (enclosing - union) / enclosing.
    torch.testing.assert_close(giou_box_loss(pred[:1], target[:1]), torch.tensor([1 - 1 / 7 + (9 - 7) / 9]))


def test_l1_and_smooth_l1_hand_cases():
    pred = torch.tensor([[0.0, 0.0, 2.0, 2.0]])
    target = torch.tensor([[0.5, 0.0, 2.0, 4.0]])
    # |d| = 0.5, 0, 0, 2
    torch.testing.assert_close(l1_box_loss(pred, target), torch.tensor([2.5]))
    # beta = 1: 0.5 * 0.5^2 / 1 + (2 - 0.5) = 0.125 + 1.5
    torch.testing.assert_close(smooth_l1_box_loss(pred, target), torch.tensor([1.625]))
    # beta = 2: 0.5 * 0.25 / 2 + (2 - 1) = 0.0625 + 1
    torch.testing.assert_close(smooth_l1_box_loss(pred, target, beta=2.0), torch.tensor([1.0625]))


@pytest.mark.parametrize("name", sorted(BOX_LOSSES))
def test_box_losses_finite_on_degenerate_predictions(name):
    loss_fn = get_box_loss(name)
    target = torch.tensor([[8.0, 8.0, 12.0, 14.0]]).repeat(7, 1)
    pred = torch.tensor(
        [
            [10.0, 9.0, 10.0, 11.0],  # zero width
            [9.0, 10.0, 11.0, 10.0],  # zero height
            [10.0, 10.0, 10.0, 10.0],  # a point inside the target
            [0.0, 0.0, 0.0, 0.0],  # a point at the origin
            [500.0, 500.0, 500.0, 500.0],  # a far point, where float32 spacing is coarse
            [8.0, 8.0, 12.0, 14.0],  # exact
            [8.0, 8.0, 8.0, 8.0],  # the target's corner
        ],
        requires_grad=True,
    )
    loss = loss_fn(pred, target)
    loss.sum().backward()
    assert torch.isfinite(loss).all(), loss
    assert torch.isfinite(pred.grad).all(), pred.grad
    assert loss[5].item() == pytest.approx(0.0, abs=1e-5)
    assert (loss[:5] > 0).all()


def test_box_losses_accept_float16():
    pred, target = random_boxes(8, 2).half(), random_boxes(8, 3).half()
    for name, loss_fn in BOX_LOSSES.items():
        loss = loss_fn(pred, target)
        assert torch.isfinite(loss).all(), name
        torch.testing.assert_close(loss.float(), loss_fn(pred.float(), target.float()), rtol=1e-3, atol=1e-3)


def test_unknown_loss_names_list_valid_names():
    with pytest.raises(ValueError, match="valid names") as error:
        get_box_loss("iou3d")
    assert all(name in str(error.value) for name in BOX_LOSSES)
    with pytest.raises(ValueError, match="valid names") as error:
        get_heatmap_loss("mse")
    assert all(name in str(error.value) for name in HEATMAP_LOSSES)
    assert get_heatmap_loss("cornernet_focal") is cornernet_focal_loss
    assert get_box_loss("ciou") is ciou_box_loss
