"""Necks: map backbone features (strides 4..32) to one stride-4 feature map.

``SimpleNeck`` upsamples the last feature map alone (the original CenterNet ResNet decoder);
``FPNNeck``, ``BiFPNNeck`` and ``IDANeck`` fuse all four stages and therefore need input sides
divisible by 32. ``IdentityNeck`` passes stride-4 features through (the Hourglass backbones end
there already). Each neck exposes ``out_channels`` (an int) and ``stride`` (4).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .layers import bilinear_init_, make_conv_block, make_upsample

__all__ = ["SimpleNeck", "FPNNeck", "BiFPNNeck", "IDANeck", "IdentityNeck", "NECKS", "build_neck"]


def _check_fusable(features: Sequence[Tensor], num_levels: int, neck: str) -> None:
    """Fusion needs each level exactly twice the size of the next: a clear error instead of a shape crash."""
    if len(features) < num_levels:
        raise ValueError(f"{neck} needs {num_levels} feature maps (use a backbone with return_features=True)")
    for finer, coarser in zip(features[-num_levels:-1], features[-num_levels + 1 :]):
        if finer.shape[-2] != 2 * coarser.shape[-2] or finer.shape[-1] != 2 * coarser.shape[-1]:
            size = features[-num_levels].shape[-2:]
            raise ValueError(
                f"{neck} needs input image sides divisible by 32; got feature maps of size "
                f"{tuple(size)} at stride 4 (input about {size[0] * 4}x{size[1] * 4}). "
                "Resize or pad the images (the 'val' transform pads to a multiple of 32)."
            )


def _last(features: Tensor | Sequence[Tensor]) -> Tensor:
    return features if isinstance(features, Tensor) else features[-1]


class SimpleNeck(nn.Module):
    """The original CenterNet ResNet decoder: three times (3x3 conv or DCN + BN + ReLU, then a
    4x4 stride-2 ConvTranspose initialised as bilinear upsampling + BN + ReLU), stride 32 -> 4.

    Args:
        in_channels: channels of the last backbone feature map (an int, or the backbone's list).
        upsample_channels: output channels of the three stages.
        conv_type: ``normal`` or ``dcn`` (``separable`` also works); ``none`` leaves out the conv
            and lets each ConvTranspose change the channels, the decoder of the original
            CenterNet ``res_18`` (``msra_resnet.py``, upsample_channels 256, 256, 256).
        conv_bias: a bias on each conv (DCNv2 has one): only to hold the original weights.
    """

    def __init__(
        self,
        in_channels: int | Sequence[int],
        upsample_channels: Sequence[int] = (256, 128, 64),
        conv_type: str = "normal",
        conv_bias: bool = False,
    ) -> None:
        super().__init__()
        channels = in_channels if isinstance(in_channels, int) else in_channels[-1]
        layers: list[nn.Module] = []
        for out_channels in upsample_channels:
            if conv_type == "none":
                layers.append(make_upsample("conv_transpose", channels, out_channels))
            else:
                layers.append(make_conv_block(conv_type, channels, out_channels, bias=conv_bias))
                layers.append(make_upsample("conv_transpose", out_channels))
            channels = out_channels
        self.layers = nn.Sequential(*layers)
        self.out_channels = channels
        self.stride = 32 // 2 ** len(upsample_channels)

    def forward(self, features: Tensor | Sequence[Tensor]) -> Tensor:
        return self.layers(_last(features))


class _FastNormalizedFusion(nn.Module):
    """EfficientDet's fast normalised fusion: sum_i relu(w_i) * x_i / (eps + sum_i relu(w_i))."""

    def __init__(self, num_inputs: int, eps: float = 1e-4) -> None:
        super().__init__()
        self.weights = nn.Parameter(torch.ones(num_inputs))
        self.eps = eps

    def forward(self, inputs: Sequence[Tensor]) -> Tensor:
        weights = F.relu(self.weights)
        weights = weights / (weights.sum() + self.eps)
        return sum(weight * x for weight, x in zip(weights, inputs))


class FPNNeck(nn.Module):
    """Top-down feature pyramid ending at stride 4 (as in the predecessor's FPN CenterNet).

    Per stage, from stride 32: conv block to ``upsample_channels[i]``, x2 upsample, then fuse with
    a 1x1 conv (+BN) projection of the backbone feature at that stride, by sum or by EfficientDet's
    weighted fusion.

    Args:
        in_channels: channels of the four backbone maps, strides 4, 8, 16, 32.
        upsample_channels: channels of the three top-down stages (the last is ``out_channels``).
        conv_type: ``normal``, ``separable`` or ``dcn``.
        upsample_type: ``nearest``, ``bilinear`` or ``conv_transpose``.
        weighted_fusion: learnable fast normalised fusion instead of a plain sum.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        upsample_channels: Sequence[int] = (256, 128, 64),
        conv_type: str = "normal",
        upsample_type: str = "nearest",
        weighted_fusion: bool = False,
    ) -> None:
        super().__init__()
        num_stages = len(upsample_channels)
        if len(in_channels) < num_stages + 1:
            raise ValueError(f"FPNNeck needs {num_stages + 1} feature maps, got channels {list(in_channels)}")
        self.num_levels = num_stages + 1
        channels = in_channels[-1]
        self.convs, self.upsamples, self.laterals, self.fusions = (nn.ModuleList() for _ in range(4))
        for stage, out_channels in enumerate(upsample_channels):
            skip_channels = in_channels[-2 - stage]
            self.convs.append(make_conv_block(conv_type, channels, out_channels))
            self.upsamples.append(make_upsample(upsample_type, out_channels))
            self.laterals.append(
                nn.Sequential(nn.Conv2d(skip_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels))
            )
            self.fusions.append(_FastNormalizedFusion(2) if weighted_fusion else _Sum())
            channels = out_channels
        self.out_channels = channels
        self.stride = 32 // 2**num_stages

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        _check_fusable(features, self.num_levels, "FPNNeck")
        x = features[-1]
        for stage, (conv, upsample, lateral, fuse) in enumerate(
            zip(self.convs, self.upsamples, self.laterals, self.fusions)
        ):
            x = upsample(conv(x))
            x = fuse([x, lateral(features[-2 - stage])])
        return x


class _Sum(nn.Module):
    def forward(self, inputs: Sequence[Tensor]) -> Tensor:
        return sum(inputs)


class _BiFPNLayer(nn.Module):
    """One BiFPN layer (EfficientDet, Tan et al. 2020, fig. 2d) over L levels of equal width.

    With ``top_down_only`` the layer stops after the top-down path. The neck's last layer is built
    that way: only its finest level is used, so a bottom-up path there would hold parameters that
    never get a gradient, which DistributedDataParallel rejects.
    """

    def __init__(self, channels: int, num_levels: int, top_down_only: bool = False) -> None:
        super().__init__()
        self.top_down_only = top_down_only
        self.top_down_fusions = nn.ModuleList(_FastNormalizedFusion(2) for _ in range(num_levels - 1))
        self.top_down_convs = nn.ModuleList(
            make_conv_block("separable", channels, channels) for _ in range(num_levels - 1)
        )
        if top_down_only:
            return
        # Intermediate levels fuse three inputs on the way up; the top level fuses two.
        self.bottom_up_fusions = nn.ModuleList(
            _FastNormalizedFusion(3 if level < num_levels - 1 else 2) for level in range(1, num_levels)
        )
        self.bottom_up_convs = nn.ModuleList(
            make_conv_block("separable", channels, channels) for _ in range(num_levels - 1)
        )

    def forward(self, levels: list[Tensor]) -> list[Tensor]:
        num_levels = len(levels)
        top_down = [levels[-1]]
        for i, level in enumerate(range(num_levels - 2, -1, -1)):
            upsampled = F.interpolate(top_down[-1], scale_factor=2.0, mode="nearest")
            top_down.append(self.top_down_convs[i](self.top_down_fusions[i]([levels[level], upsampled])))
        top_down = top_down[::-1]  # index by level again, finest first
        if self.top_down_only:
            return top_down
        outputs = [top_down[0]]
        for level in range(1, num_levels):
            downsampled = F.max_pool2d(outputs[-1], 3, stride=2, padding=1)
            inputs = [levels[level], downsampled]
            if level < num_levels - 1:
                inputs.insert(1, top_down[level])
            outputs.append(self.bottom_up_convs[level - 1](self.bottom_up_fusions[level - 1](inputs)))
        return outputs


class BiFPNNeck(nn.Module):
    """EfficientDet's BiFPN over the four backbone levels (strides 4..32); returns the stride-4 map.

    Args:
        in_channels: channels of the four backbone maps.
        channels: width of every BiFPN level (``out_channels``).
        num_layers: number of stacked BiFPN layers.
    """

    def __init__(self, in_channels: Sequence[int], channels: int = 64, num_layers: int = 2) -> None:
        super().__init__()
        self.num_levels = len(in_channels)
        self.inputs = nn.ModuleList(
            nn.Sequential(nn.Conv2d(c, channels, 1, bias=False), nn.BatchNorm2d(channels)) for c in in_channels
        )
        self.layers = nn.ModuleList(
            _BiFPNLayer(channels, self.num_levels, top_down_only=index == num_layers - 1) for index in range(num_layers)
        )
        self.out_channels = channels
        self.stride = 4

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        _check_fusable(features, self.num_levels, "BiFPNNeck")
        levels = [project(x) for project, x in zip(self.inputs, features[-self.num_levels :])]
        for layer in self.layers:
            levels = layer(levels)
        return levels[0]


class _IDAUp(nn.Module):
    """Iterative deep aggregation (Yu et al. 2018, DLA): fold levels into the first one.

    Level i has ``in_channels[i]`` channels and is ``up_factors[i]`` times coarser than level 0.
    Each level after the first is projected to ``channels``, upsampled by a depthwise
    ConvTranspose initialised as bilinear, added to the (already aggregated) level before it and
    passed through a node conv.
    """

    def __init__(
        self,
        channels: int,
        in_channels: Sequence[int],
        up_factors: Sequence[int],
        conv_type: str,
        conv_bias: bool = False,
    ) -> None:
        super().__init__()
        self.projects, self.upsamples, self.nodes = nn.ModuleList(), nn.ModuleList(), nn.ModuleList()
        for level_channels, factor in zip(in_channels[1:], up_factors[1:]):
            self.projects.append(make_conv_block(conv_type, level_channels, channels, bias=conv_bias))
            up = nn.ConvTranspose2d(
                channels,
                channels,
                factor * 2,
                stride=factor,
                padding=factor // 2,
                groups=channels,
                bias=False,
            )
            bilinear_init_(up)
            self.upsamples.append(up)
            self.nodes.append(make_conv_block(conv_type, channels, channels, bias=conv_bias))

    def forward(self, levels: list[Tensor], start: int) -> None:
        """Aggregate ``levels[start:]`` in place; ``levels[-1]`` ends as the aggregated map at
        the resolution of ``levels[start]``."""
        for i in range(start + 1, len(levels)):
            j = i - start - 1
            levels[i] = self.nodes[j](self.upsamples[j](self.projects[j](levels[i])) + levels[i - 1])


class IDANeck(nn.Module):
    """DLA-Up with a final IDA-Up, the CenterNet DLA-34 decoder, over strides 4..32.

    DLA-Up repeatedly aggregates from the coarsest level downwards, producing a stride-4, 8, 16 and
    32 pyramid; a last IDA-Up merges the finest ``final_levels`` maps of that pyramid into the
    stride-4 map.

    Args:
        in_channels: channels of the four backbone maps, e.g. dla34's (64, 128, 256, 512).
        conv_type: ``normal`` or ``dcn`` (CenterNet's DLA-34 uses DCN).
        conv_bias: a bias on each conv (DCNv2 has one): only to hold the original weights.
        final_levels: how many pyramid levels the last IDA-Up merges; None for all. The original
            CenterNet ``DLASeg`` merges three (strides 4, 8, 16: ``last_level=5``).

    ``out_channels`` is ``in_channels[0]``.
    """

    def __init__(
        self,
        in_channels: Sequence[int],
        conv_type: str = "normal",
        conv_bias: bool = False,
        final_levels: int | None = None,
    ) -> None:
        super().__init__()
        in_channels = list(in_channels)
        self.num_levels = len(in_channels)
        self.final_levels = self.num_levels if final_levels is None else final_levels
        if not 1 <= self.final_levels <= self.num_levels:
            raise ValueError(f"final_levels must be in [1, {self.num_levels}], got {final_levels}")
        scales = [2**i for i in range(self.num_levels)]
        self.dla_up = nn.ModuleList()
        channels = list(in_channels)
        for i in range(self.num_levels - 1):
            j = self.num_levels - 2 - i
            factors = [s // scales[j] for s in scales[j:]]
            self.dla_up.append(_IDAUp(in_channels[j], channels[j:], factors, conv_type, conv_bias))
            scales[j + 1 :] = [scales[j]] * (self.num_levels - j - 1)
            channels[j + 1 :] = [in_channels[j]] * (self.num_levels - j - 1)
        self.out_channels = in_channels[0]
        final = self.final_levels
        self.ida_up = _IDAUp(self.out_channels, in_channels[:final], [2**i for i in range(final)], conv_type, conv_bias)
        self.stride = 4

    def forward(self, features: Sequence[Tensor]) -> Tensor:
        _check_fusable(features, self.num_levels, "IDANeck")
        levels = list(features[-self.num_levels :])
        pyramid = [levels[-1]]
        for i, ida in enumerate(self.dla_up):
            ida(levels, self.num_levels - 2 - i)
            pyramid.insert(0, levels[-1])
        pyramid = pyramid[: self.final_levels]
        self.ida_up(pyramid, 0)
        return pyramid[-1]


class IdentityNeck(nn.Module):
    """No neck: passes the backbone's stride-4 output through (a tensor, or for stacked models
    such as Hourglass-104 the list of one feature map per stack).

    Args:
        in_channels: channels of the backbone output (an int or the backbone's one-element list).
        stride: stride of the backbone output; the heads need 4.
    """

    def __init__(self, in_channels: int | Sequence[int], stride: int = 4) -> None:
        super().__init__()
        self.out_channels = in_channels if isinstance(in_channels, int) else in_channels[-1]
        self.stride = stride

    def forward(self, features: Tensor | list[Tensor]) -> Tensor | list[Tensor]:
        return features


NECKS: dict[str, type[nn.Module]] = {
    "simple": SimpleNeck,
    "fpn": FPNNeck,
    "bifpn": BiFPNNeck,
    "ida": IDANeck,
    "identity": IdentityNeck,
}


def build_neck(name: str, in_channels: int | Sequence[int], **kwargs) -> nn.Module:
    """Build a neck by name (``simple``, ``fpn``, ``bifpn``, ``ida``, ``identity``) for the backbone's channels."""
    if name not in NECKS:
        raise ValueError(f"Unknown neck {name!r}; valid names: {sorted(NECKS)}")
    return NECKS[name](in_channels, **kwargs)
