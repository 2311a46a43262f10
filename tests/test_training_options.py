"""Training options that go through Lightning: mixed precision, EMA, gradient clipping flags, NHWC."""

from __future__ import annotations

from pathlib import Path

import lightning as L
import pytest
import torch

from centernet_lightning.callbacks import ChannelsLast
from centernet_lightning.cli.lightning import make_cli
from centernet_lightning.tasks import CenterNet

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
        outputs = model(images)
        losses = model.criterion(outputs, batch)
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
        ("--trainer.callbacks+=centernet_lightning.callbacks.ChannelsLast", "ChannelsLast"),
    ],
)
def test_lightning_options_parse(option: str, expected: str, capsys) -> None:
    with pytest.raises(SystemExit):
        make_cli(["fit", "--config", str(DEMO), option, "--print_config"])
    assert expected in capsys.readouterr().out


def tiny_centernet() -> CenterNet:
    return CenterNet(2, backbone="resnet18", neck={"name": "fpn", "upsample_channels": [16, 16, 16]}, head_width=8)


class RecordingCenterNet(CenterNet):
    """Records the memory format of the images and of the first convolution at every step."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.seen: list[tuple[str, bool, bool]] = []

    def _record(self, stage: str, batch: dict) -> None:
        weight = next(p for p in self.parameters() if p.ndim == 4)
        nhwc = torch.channels_last
        self.seen.append(
            (stage, batch["images"].is_contiguous(memory_format=nhwc), weight.is_contiguous(memory_format=nhwc))
        )

    def training_step(self, batch, batch_idx):
        self._record("train", batch)
        return super().training_step(batch, batch_idx)

    def validation_step(self, batch, batch_idx):
        self._record("val", batch)
        return super().validation_step(batch, batch_idx)


def test_channels_last_callback_feeds_every_step_nhwc(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = RecordingCenterNet(
        2, backbone="resnet18", neck={"name": "fpn", "upsample_channels": [16, 16, 16]}, head_width=8
    )
    batch = {
        "images": torch.randn(2, 3, 64, 64),
        "bboxes": torch.tensor([[[4.0, 4.0, 40.0, 30.0]], [[10.0, 12.0, 50.0, 60.0]]]),
        "labels": torch.tensor([[1], [0]]),
        "mask": torch.tensor([[True], [True]]),
        "image_ids": torch.tensor([0, 1]),
        "original_sizes": torch.tensor([[64, 64], [64, 64]]),
        "letterbox": torch.tensor([[1.0, 0.0, 0.0], [1.0, 0.0, 0.0]]),
        "image_paths": ["a.jpg", "b.jpg"],
    }
    loader = torch.utils.data.DataLoader([batch], batch_size=None)
    trainer = L.Trainer(
        max_steps=2,
        limit_val_batches=1,
        callbacks=[ChannelsLast()],
        accelerator="cpu",
        logger=False,
        enable_checkpointing=False,
        enable_progress_bar=False,
        enable_model_summary=False,
        num_sanity_val_steps=0,
        default_root_dir=tmp_path,
    )
    trainer.fit(model, train_dataloaders=loader, val_dataloaders=loader)
    assert [stage for stage, _, _ in model.seen] == ["train", "val", "train", "val"]  # one batch an epoch
    assert all(images and weight for _, images, weight in model.seen)


def test_channels_last_changes_the_layout_not_the_outputs() -> None:
    torch.manual_seed(0)
    model = tiny_centernet().eval()
    images = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        expected = model(images)
        ChannelsLast().setup(None, model, "predict")
        batch = {"images": images}
        ChannelsLast().on_predict_batch_start(None, model, batch, 0)
        assert batch["images"].is_contiguous(memory_format=torch.channels_last)
        outputs = model(batch["images"])
    for name, value in expected.items():
        torch.testing.assert_close(outputs[name], value, rtol=1e-4, atol=1e-4)
