"""The CenterNet module without a Trainer: outputs, its loss, decoding through its predictor, optimizers."""

from __future__ import annotations

import math
from types import SimpleNamespace

import pytest
import torch
from torch.optim.lr_scheduler import LambdaLR

from centernet_lightning.losses import cornernet_focal_loss, giou_box_loss
from centernet_lightning.models.detector import decode_outputs
from centernet_lightning.targets import render_heatmaps
from centernet_lightning.tasks import CenterNet
from centernet_lightning.tasks.optim import build_scheduler, warmup_cosine_factor

NUM_CLASSES = 3
TINY = {"backbone": "resnet18", "neck": {"name": "fpn", "upsample_channels": [32, 32, 16]}, "head_width": 16}


def tiny_model(**kwargs) -> CenterNet:
    torch.manual_seed(0)
    return CenterNet(NUM_CLASSES, **{**TINY, **kwargs})


def targets() -> dict[str, torch.Tensor]:
    """Two 64x64 images: three real objects and a padding row, then an image without objects."""
    return {
        "bboxes": torch.tensor(
            [
                [[4.0, 6.0, 30.0, 40.0], [33.0, 20.0, 60.0, 50.0], [10.0, 44.0, 22.0, 60.0], [0.0, 0.0, 0.0, 0.0]],
                [[0.0, 0.0, 0.0, 0.0]] * 4,
            ]
        ),
        "labels": torch.tensor([[0, 2, 2, 0], [0, 0, 0, 0]]),
        "mask": torch.tensor([[True, True, True, False], [False, False, False, False]]),
    }


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return torch.randn(2, 3, 64, 64, generator=torch.Generator().manual_seed(1))


def test_output_shapes_and_forward(images):
    model = tiny_model().eval()
    assert model.detector.stride == 4
    outputs = model.detector(images)
    assert set(outputs) == {"heatmap", "box_2d"}
    assert outputs["heatmap"].shape == (2, NUM_CLASSES, 16, 16)
    assert outputs["box_2d"].shape == (2, 4, 16, 16)
    assert (outputs["box_2d"] >= 0).all()  # distances, after a ReLU
    # The heatmap prior: probabilities start near sigmoid(-2.19) = 0.1.
    assert 0.02 < outputs["heatmap"].sigmoid().mean() < 0.3

    forward = model(images)  # the detector's raw outputs, one dict
    assert set(forward) == {"heatmap", "box_2d"}
    for name in forward:
        torch.testing.assert_close(forward[name], outputs[name])


def test_loss_matches_its_parts(images):
    model = tiny_model()
    outputs = model.detector(images)
    batch = targets()
    losses = model.criterion(outputs, batch)
    assert set(losses) == {"heatmap", "box_2d", "total"}
    assert all(torch.isfinite(value) for value in losses.values())
    torch.testing.assert_close(losses["total"], losses["heatmap"] + 5.0 * losses["box_2d"])

    # Heatmap: the focal loss on heatmaps rendered in grid pixels (input pixels / 4).
    heatmaps, centers = render_heatmaps(batch["bboxes"] / 4, batch["labels"], batch["mask"], NUM_CLASSES, 16, 16)
    torch.testing.assert_close(losses["heatmap"], cornernet_focal_loss(outputs["heatmap"], heatmaps))
    # Box: GIoU, in grid cells, of the box decoded at each object's centre cell.
    pred, target = [], []
    for n in range(3):
        x, y = centers[0, n].tolist()
        left, top, right, bottom = outputs["box_2d"][0, :, y, x]
        pred.append(torch.stack((x + 0.5 - left, y + 0.5 - top, x + 0.5 + right, y + 0.5 + bottom)))
        target.append(batch["bboxes"][0, n] / 4)
    expected_box = giou_box_loss(torch.stack(pred), torch.stack(target)).mean()
    torch.testing.assert_close(losses["box_2d"], expected_box)

    losses["total"].backward()
    unused = [name for name, p in model.named_parameters() if p.grad is None]
    assert unused == []


def test_loss_without_objects(images):
    model = tiny_model()
    outputs = model.detector(images)
    batch = targets()
    batch["mask"][:] = False
    losses = model.criterion(outputs, batch)
    assert all(torch.isfinite(value) for value in losses.values())
    assert losses["box_2d"] == 0
    assert losses["heatmap"] > 0  # every pixel is a negative
    losses["total"].backward()
    assert torch.isfinite(model.detector.heads[0]["heatmap"].layers[-1].weight.grad).all()


def test_boxes_masked_out_or_degenerate_are_ignored(images):
    """The loss ignores padding and boxes without area on the grid; it trusts its input otherwise
    (the transform's sanitise step clips boxes to the image before they are batched)."""
    model = tiny_model(box_loss="ciou")
    outputs = model.detector(images)
    reference = model.criterion(outputs, targets())

    batch = targets()
    batch["mask"][:] = True  # unmask the padding rows: zero-size boxes at the origin
    batch["bboxes"][1, 0] = torch.tensor([70.0, 10.0, 90.0, 30.0])  # right of the image
    batch["bboxes"][1, 1] = torch.tensor([20.0, 30.0, 10.0, 50.0])  # inverted
    batch["bboxes"][1, 2] = torch.tensor([float("nan"), 5.0, 9.0, float("inf")])
    batch["bboxes"][0, 3] = torch.tensor([30.0, 30.0, 30.0, 40.0])  # zero width
    with_junk = model.criterion(outputs, batch)
    assert all(torch.isfinite(value) for value in with_junk.values())
    for key in ("heatmap", "box_2d", "total"):
        torch.testing.assert_close(with_junk[key], reference[key])


@pytest.mark.parametrize(
    "options", [{"heatmap_method": "ttfnet", "center_sampling": True}, {"heatmap_loss": "quality_focal"}]
)
def test_loss_options_are_finite(images, options):
    model = tiny_model(box_loss="l1", **options)
    losses = model.criterion(model.detector(images), targets())
    assert all(torch.isfinite(value) and value > 0 for value in losses.values())


def test_decoding_from_logits_and_probabilities_agree_and_the_predictor_applies_the_settings(images):
    model = tiny_model(num_detections=7).eval()
    with torch.no_grad():
        outputs = model.detector(images)
        from_logits = model.detector.decode(outputs, 7)
        probabilities = {**outputs, "heatmap": outputs["heatmap"].sigmoid()}
        from_probabilities = model.detector.decode(probabilities, 7, logits=False)
    detected = model.detect(images)  # the predictor: the eager backend, then the model's settings
    for key in ("bboxes", "labels", "scores"):
        assert from_logits[key].shape[:2] == (2, 7)
        torch.testing.assert_close(from_logits[key], from_probabilities[key])
        torch.testing.assert_close(from_logits[key], detected[key])
    torch.testing.assert_close(from_logits["indices"], from_probabilities["indices"])
    expected = decode_outputs(probabilities, 4, num_detections=7, logits=False)
    torch.testing.assert_close(from_logits["bboxes"], expected["bboxes"])

    # Decoding settings: per call, or from the hyperparameters.
    threshold = from_logits["scores"][0, 2].item()
    thresholded = model.detect(images, score_threshold=threshold)
    assert (thresholded["labels"][0, 3:] == -1).all() and (thresholded["labels"][0, :3] >= 0).all()
    assert (thresholded["scores"][0, 3:] == 0).all()
    assert model.detect(images, num_detections=3)["scores"].shape == (2, 3)
    strict = tiny_model(score_threshold=1.0).eval()
    assert (strict.detect(images)["labels"] == -1).all()


def test_configure_optimizers():
    model = tiny_model(optimizer={"name": "SGD", "lr": 0.1, "momentum": 0.9})
    config = model.configure_optimizers()
    optimizer = config["optimizer"]
    assert isinstance(optimizer, torch.optim.SGD) and "lr_scheduler" not in config
    assert optimizer.defaults["lr"] == 0.1 and optimizer.defaults["momentum"] == 0.9
    assert sum(len(group["params"]) for group in optimizer.param_groups) == len(list(model.parameters()))

    default = tiny_model().configure_optimizers()["optimizer"]
    assert isinstance(default, torch.optim.AdamW)
    assert default.defaults["lr"] == 1e-3 and default.defaults["weight_decay"] == 1e-4

    # Frozen backbone stages are left out.
    frozen = tiny_model(backbone={"name": "resnet18", "frozen_stages": 2})
    params = frozen.configure_optimizers()["optimizer"].param_groups[0]["params"]
    assert len(params) == sum(p.requires_grad for p in frozen.parameters()) < len(list(frozen.parameters()))

    with pytest.raises(ValueError, match="Unknown optimizer 'Adamm'; valid names") as error:
        tiny_model(optimizer={"name": "Adamm", "lr": 0.1}).configure_optimizers()
    assert "AdamW" in str(error.value) and "SGD" in str(error.value)


def test_warmup_cosine_factor_hand_values():
    # 10 warmup steps then cosine over 100 steps.
    assert warmup_cosine_factor(0, 10, 110) == pytest.approx(0.1)  # (0 + 1) / 10
    assert warmup_cosine_factor(9, 10, 110) == pytest.approx(1.0)  # warmup end
    assert warmup_cosine_factor(10, 10, 110) == pytest.approx(1.0)  # cos(0)
    assert warmup_cosine_factor(60, 10, 110) == pytest.approx(0.5)  # half way: (1 + cos(pi / 2)) / 2
    assert warmup_cosine_factor(35, 10, 110) == pytest.approx(0.5 * (1 + math.cos(math.pi / 4)))
    assert warmup_cosine_factor(110, 10, 110) == pytest.approx(0.0, abs=1e-12)
    assert warmup_cosine_factor(500, 10, 110) == pytest.approx(0.0, abs=1e-12)  # stays at the floor
    assert warmup_cosine_factor(60, 10, 110, min_lr_ratio=0.2) == pytest.approx(0.6)  # 0.2 + 0.8 * 0.5
    assert warmup_cosine_factor(110, 10, 110, min_lr_ratio=0.2) == pytest.approx(0.2)


def test_warmup_cosine_schedule_through_configure_optimizers():
    model = tiny_model(
        optimizer={"name": "SGD", "lr": 0.1},
        lr_scheduler={"name": "warmup_cosine", "warmup_steps": 10, "min_lr_ratio": 0.1},
    )
    model._trainer = SimpleNamespace(estimated_stepping_batches=110)  # what Lightning provides
    try:
        config = model.configure_optimizers()
    finally:
        model._trainer = None
    scheduler_config = config["lr_scheduler"]
    assert scheduler_config["interval"] == "step"
    scheduler, optimizer = scheduler_config["scheduler"], config["optimizer"]
    assert isinstance(scheduler, LambdaLR)
    lrs = []
    for _ in range(111):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[0] == pytest.approx(0.01)  # 0.1 * 1/10
    assert lrs[9] == pytest.approx(0.1) and lrs[10] == pytest.approx(0.1)
    assert lrs[60] == pytest.approx(0.1 * (0.1 + 0.9 * 0.5))
    assert lrs[110] == pytest.approx(0.01)  # 0.1 * min_lr_ratio


def test_torch_schedulers_by_name():
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
    config = build_scheduler(optimizer, {"name": "StepLR", "step_size": 2, "gamma": 0.5}, total_steps=10)
    assert config["interval"] == "epoch" and isinstance(config["scheduler"], torch.optim.lr_scheduler.StepLR)
    with pytest.raises(ValueError, match="valid names") as error:
        build_scheduler(optimizer, {"name": "CosineAnnealing"}, total_steps=10)
    assert "CosineAnnealingLR" in str(error.value)
    with pytest.raises(ValueError, match="warmup_cosine parameters"):
        build_scheduler(optimizer, {"name": "warmup_cosine", "warmup": 3}, total_steps=10)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"heatmap_loss": "mse"}, "Unknown heatmap loss 'mse'; valid names"),
        ({"box_loss": "iou3d"}, "Unknown box loss 'iou3d'; valid names"),
        ({"heatmap_method": "gauss"}, "Unknown heatmap method 'gauss'; valid names"),
        ({"neck": "panet"}, "Unknown neck 'panet'; valid names"),
        ({"neck": {"upsample_channels": [8, 8, 8]}}, "needs a 'name' key"),
        ({"backbone": "resnet_nope"}, "Unknown backbone"),
        ({"class_names": ["a", "b"]}, "class_names"),
        ({"heads": {"reid": {"dim": 8}}}, "heads.reid is trained by another task's loss.*centernet_lightning.FairMOT"),
    ],
)
def test_bad_arguments_raise_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        tiny_model(**kwargs)
    with pytest.raises(ValueError, match="num_classes"):
        CenterNet(0, **TINY)


def test_input_not_divisible_by_32_is_a_clear_error():
    model = CenterNet(2, backbone="resnet18", neck="simple", head_width=8)
    with pytest.raises(ValueError, match="divisible by 32"):
        model(torch.zeros(1, 3, 100, 100))
    assert model(torch.zeros(1, 3, 96, 128))["heatmap"].shape == (1, 2, 24, 32)
