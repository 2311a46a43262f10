"""Training options that go through Lightning: mixed precision, EMA, gradient clipping flags."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from centernet_lightning.cli import make_cli
from centernet_lightning.models import CenterNet

DEMO = Path(__file__).resolve().parents[1] / "configs" / "demo.yaml"


def test_loss_stays_finite_under_autocast() -> None:
    torch.manual_seed(0)
    model = CenterNet(3, backbone="resnet18", neck={"name": "fpn", "upsample_channels": [32, 32, 32]}, head_width=16)
    images = torch.randn(2, 3, 64, 64) * 50  # large activations push logits far from zero
    batch = {
        "bboxes": torch.tensor([[[4.0, 4.0, 40.0, 30.0]], [[0.0, 0.0, 0.0, 0.0]]]),
        "labels": torch.tensor([[1], [0]]),
        "mask": torch.tensor([[True], [False]]),
    }
    with torch.autocast("cpu", dtype=torch.bfloat16):
        outputs = model.get_encoded_outputs(images)
        losses = model.compute_loss(outputs, batch)
    assert outputs["heatmap"].dtype == torch.bfloat16
    assert all(torch.isfinite(value) for value in losses.values())
    losses["total"].backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


@pytest.mark.parametrize(
    "option, expected",
    [
        ("--trainer.callbacks+=EMAWeightAveraging", "EMAWeightAveraging"),
        ("--trainer.precision=bf16-mixed", "bf16-mixed"),
        ("--trainer.sync_batchnorm=true", "sync_batchnorm: true"),
        ("--trainer.gradient_clip_val=35", "gradient_clip_val: 35"),
    ],
)
def test_lightning_options_parse(option: str, expected: str, capsys) -> None:
    with pytest.raises(SystemExit):
        make_cli(["fit", "--config", str(DEMO), option, "--print_config"])
    assert expected in capsys.readouterr().out
