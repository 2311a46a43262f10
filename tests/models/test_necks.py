"""Backbone x neck contract: a stride-4 map with the claimed channels, and gradients back to the stem."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from centernet_lightning.models.backbones import build_backbone
from centernet_lightning.models.layers import CONV_BLOCKS, UPSAMPLE_TYPES, make_upsample
from centernet_lightning.models.necks import NECKS, BiFPNNeck, FPNNeck, IDANeck, SimpleNeck, build_neck

SMALL = {"upsample_channels": (32, 32, 16)}

# Every backbone and every neck variant appears at least once; not the full product.
COMBINATIONS = [
    ("resnet18", "simple", {**SMALL}),
    ("resnet18", "simple", {**SMALL, "conv_type": "dcn"}),
    ("resnet18", "fpn", {**SMALL, "conv_type": "normal", "upsample_type": "nearest"}),
    ("resnet18", "fpn", {**SMALL, "conv_type": "separable", "upsample_type": "bilinear"}),
    ("resnet18", "fpn", {**SMALL, "conv_type": "dcn", "upsample_type": "conv_transpose"}),
    ("resnet18", "bifpn", {"channels": 16, "num_layers": 2}),
    ("resnet18", "ida", {"conv_type": "normal"}),
    ("resnet50", "simple", {**SMALL, "conv_type": "separable"}),
    ("resnet50", "fpn", {**SMALL, "weighted_fusion": True}),
    ("mobilenet_v2", "fpn", {**SMALL, "upsample_type": "conv_transpose", "weighted_fusion": True}),
    ("mobilenet_v2", "ida", {"conv_type": "dcn"}),
    ("mobilenet_v3_small", "simple", {**SMALL}),
    ("mobilenet_v3_small", "bifpn", {"channels": 16, "num_layers": 1}),
    ("timm:dla34", "ida", {"conv_type": "dcn"}),  # the original CenterNet DLA-34 decoder
    ("timm:dla34", "fpn", {**SMALL, "upsample_type": "bilinear"}),
    ("timm:resnet10t", "bifpn", {"channels": 16}),
    ("timm:resnet10t", "simple", {**SMALL, "conv_type": "dcn"}),
]


def combination_id(combination: tuple[str, str, dict]) -> str:
    backbone, neck, kwargs = combination
    options = "-".join(str(v) for k, v in kwargs.items() if k in ("conv_type", "upsample_type", "weighted_fusion"))
    return f"{backbone}-{neck}" + (f"-{options}" if options else "")


def first_conv(module: nn.Module) -> nn.Conv2d:
    return next(m for m in module.modules() if isinstance(m, nn.Conv2d))


@pytest.mark.parametrize("backbone_name, neck_name, neck_kwargs", COMBINATIONS, ids=map(combination_id, COMBINATIONS))
def test_neck_output_and_gradients(backbone_name, neck_name, neck_kwargs):
    torch.manual_seed(0)
    backbone = build_backbone(backbone_name, return_features=neck_name != "simple")
    neck = build_neck(neck_name, backbone.out_channels, **neck_kwargs)
    images = torch.randn(2, 3, 64, 64)
    features = backbone(images)
    feature_list = features if isinstance(features, list) else [features]
    for feature, channels, stride in zip(feature_list, backbone.out_channels, backbone.strides, strict=True):
        assert feature.shape == (2, channels, 64 // stride, 64 // stride)

    output = neck(features)
    assert neck.stride == 4
    assert output.shape == (2, neck.out_channels, 16, 16)
    assert torch.isfinite(output).all()
    # A random projection as the loss: a plain sum has zero gradient through a training-mode BatchNorm.
    (output * torch.randn_like(output)).sum().backward()
    stem = first_conv(backbone)
    assert stem.weight.grad is not None and stem.weight.grad.abs().sum() > 0
    assert torch.isfinite(stem.weight.grad).all()
    # Every parameter takes part: DistributedDataParallel fails on parameters without a gradient.
    unused = [name for name, p in [*backbone.named_parameters(), *neck.named_parameters()] if p.grad is None]
    assert unused == []


@pytest.mark.parametrize("neck_name", ["fpn", "bifpn", "ida"])
def test_fusion_necks_reject_sizes_not_divisible_by_32(neck_name):
    backbone = build_backbone("resnet18", return_features=True)
    neck = build_neck(neck_name, backbone.out_channels)
    with torch.no_grad():
        features = backbone(torch.randn(1, 3, 72, 72))
        with pytest.raises(ValueError, match="divisible by 32"):
            neck(features)


def test_simple_neck_accepts_any_size_and_a_feature_list():
    neck = SimpleNeck([64, 128, 256, 512], upsample_channels=(16, 16, 8))
    features = [torch.randn(1, c, 18 // 2**i, 18 // 2**i) for i, c in enumerate((64, 128, 256, 512))]
    assert neck(features).shape == (1, 8, 16, 16)  # 2 -> 16, from the last map only
    assert neck(torch.randn(1, 512, 3, 5)).shape == (1, 8, 24, 40)


def test_fusion_neck_needs_every_stage():
    with pytest.raises(ValueError, match="needs 4 feature maps"):
        FPNNeck([512])
    neck = IDANeck([64, 128, 256, 512])
    with pytest.raises(ValueError, match="return_features=True"):
        neck([torch.randn(1, 512, 2, 2)])


def test_out_channels_of_each_neck():
    channels = [24, 32, 96, 1280]
    assert SimpleNeck(channels, upsample_channels=(64, 32, 24)).out_channels == 24
    assert FPNNeck(channels, upsample_channels=(64, 32, 40)).out_channels == 40
    assert BiFPNNeck(channels, channels=48).out_channels == 48
    assert IDANeck(channels).out_channels == 24


def test_unknown_names_list_valid_names():
    with pytest.raises(ValueError, match="valid names") as error:
        build_neck("panet", [64, 128, 256, 512])
    assert all(name in str(error.value) for name in NECKS)
    with pytest.raises(ValueError, match="valid names") as error:
        FPNNeck([64, 128, 256, 512], conv_type="deformable")
    assert all(name in str(error.value) for name in CONV_BLOCKS)
    with pytest.raises(ValueError, match="valid names") as error:
        FPNNeck([64, 128, 256, 512], upsample_type="pixel_shuffle")
    assert all(name in str(error.value) for name in UPSAMPLE_TYPES)
    with pytest.raises(ValueError, match="conv_type"):
        IDANeck([64, 128, 256, 512], conv_type="3d")


def test_conv_transpose_upsample_starts_as_bilinear():
    deconv = make_upsample("conv_transpose", 3)[0]
    ramp = torch.arange(8.0).view(1, 1, 1, 8).expand(1, 3, 8, 8).clone()
    ramp[:, 1] = 5.0  # a constant channel
    ramp[:, 2] = 0.0  # an empty channel: channels do not mix
    with torch.no_grad():
        upsampled = deconv(ramp)
    assert upsampled.shape == (1, 3, 16, 16)
    interior = upsampled[0, :, 1:-1, 1:-1]
    torch.testing.assert_close(interior[1], torch.full_like(interior[1], 5.0))
    assert interior[2].abs().max() == 0
    # Bilinear (align_corners=False) upsampling of a ramp is linear inside: steps of 0.5.
    torch.testing.assert_close(interior[0].diff(dim=-1), torch.full((14, 13), 0.5))
