"""Hourglass-104: the stacked hourglass of CornerNet (Law and Deng 2018) used by CenterNet.

Same layers, parameters and computation as ``large_hourglass.py`` of the original CenterNet
(``HourglassNet``: n=5, 2 stacks, dims 256, 256, 384, 384, 384, 512, modules 2, 2, 2, 2, 2, 4,
cnv_dim 256); :mod:`.original_weights` maps its checkpoints onto this module. The heads are not
part of the backbone: the detector applies its heads to each stack's output.
"""

from __future__ import annotations

import os
from collections.abc import Sequence

from torch import Tensor, nn

from ..weights import load_state_dict_file
from .layers import ConvBNReLU

__all__ = ["Residual", "Hourglass", "HourglassBackbone", "HOURGLASS_NAMES"]

HOURGLASS_NAMES = ("hourglass104",)


class Residual(nn.Module):
    """Basic residual block: 3x3 conv (stride s) + BN + ReLU, 3x3 conv + BN, plus a shortcut
    (1x1 conv + BN when the shape changes), then ReLU."""

    def __init__(self, in_channels: int, out_channels: int, stride: int = 1) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(in_channels, out_channels, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(out_channels)
        self.conv2 = nn.Conv2d(out_channels, out_channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(out_channels)
        self.skip = (
            nn.Sequential(
                nn.Conv2d(in_channels, out_channels, 1, stride=stride, bias=False), nn.BatchNorm2d(out_channels)
            )
            if stride != 1 or in_channels != out_channels
            else nn.Identity()
        )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x: Tensor) -> Tensor:
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + self.skip(x))


def _residuals(
    in_channels: int, out_channels: int, count: int, stride: int = 1, change_last: bool = False
) -> nn.Sequential:
    """``count`` residual blocks; the channel change (and stride) happens in the first block, or
    in the last one with ``change_last`` (CornerNet's ``make_layer_revr``)."""
    if change_last:
        blocks = [Residual(in_channels, in_channels) for _ in range(count - 1)] + [Residual(in_channels, out_channels)]
    else:
        blocks = [Residual(in_channels, out_channels, stride)] + [
            Residual(out_channels, out_channels) for _ in range(count - 1)
        ]
    return nn.Sequential(*blocks)


class Hourglass(nn.Module):
    """One hourglass, recursively: ``skip(x) + upsample(up(inner(down(x))))``.

    ``down`` halves the resolution with a stride-2 residual (no max-pool, as in CenterNet's
    version), ``inner`` is the next hourglass level (or residual blocks at the bottom), ``up``
    returns to the outer width and nearest-neighbour upsampling restores the resolution.

    Args:
        channels: widths from the outermost level inwards, ``depth + 1`` of them.
        blocks: residual blocks per level, ``depth + 1`` of them (the last for the bottom).
    """

    def __init__(self, channels: Sequence[int], blocks: Sequence[int]) -> None:
        super().__init__()
        outer, inner = channels[0], channels[1]
        self.skip = _residuals(outer, outer, blocks[0])
        self.down = _residuals(outer, inner, blocks[0], stride=2)
        if len(channels) > 2:
            self.inner: nn.Module = Hourglass(channels[1:], blocks[1:])
        else:
            self.inner = _residuals(inner, inner, blocks[1])
        self.up = _residuals(inner, outer, blocks[0], change_last=True)
        self.upsample = nn.Upsample(scale_factor=2, mode="nearest")

    def forward(self, x: Tensor) -> Tensor:
        return self.skip(x) + self.upsample(self.up(self.inner(self.down(x))))


class HourglassBackbone(nn.Module):
    """Stacked hourglasses (Hourglass-104 by default) returning one stride-4 map per stack.

    Stem: 7x7 conv stride 2 (128 channels) + BN + ReLU and a stride-2 residual to 256 channels.
    Each stack is an hourglass followed by a 3x3 conv + BN + ReLU (``feature_convs``) whose output
    the heads read. Between stacks, the next stack's input is
    ``next_stack_blocks(relu(input_projections(input) + feature_projections(features)))``.
    Training applies the loss to every stack's outputs (intermediate supervision); inference uses
    the last one.

    Args:
        name: ``hourglass104``.
        pretrained: False, or a local state-dict file holding this backbone's keys (for the
            original CenterNet checkpoints use :func:`~.original_weights.load_original_weights`).
        num_stacks: number of hourglasses (2 for Hourglass-104).
        return_features: accepted so that builders can pass it to every backbone; the output is
            always the list of per-stack maps.

    Output: a list of ``num_stacks`` maps [B, 256, H/4, W/4]; input sides must be divisible by
    128 (five halvings inside the hourglass after the stride-4 stem).
    """

    def __init__(
        self,
        name: str = "hourglass104",
        pretrained: bool | str | os.PathLike = False,
        num_stacks: int = 2,
        return_features: bool = True,
    ) -> None:
        super().__init__()
        if name not in HOURGLASS_NAMES:
            raise ValueError(f"Unknown hourglass {name!r}; valid names: {list(HOURGLASS_NAMES)}")
        if pretrained is True:
            raise ValueError(
                "No ImageNet weights exist for hourglass104: pass pretrained=False, a local state-dict "
                "file, or load original CenterNet weights with load_original_weights"
            )
        channels = (256, 256, 384, 384, 384, 512)
        blocks = (2, 2, 2, 2, 2, 4)
        width, feature_width = channels[0], 256
        self.stem = nn.Sequential(ConvBNReLU(3, 128, 7, stride=2), Residual(128, width, stride=2))
        self.hourglasses = nn.ModuleList(Hourglass(channels, blocks) for _ in range(num_stacks))
        self.feature_convs = nn.ModuleList(ConvBNReLU(width, feature_width, 3) for _ in range(num_stacks))
        between = num_stacks - 1
        self.input_projections = nn.ModuleList(_projection(width, width) for _ in range(between))
        self.feature_projections = nn.ModuleList(_projection(feature_width, width) for _ in range(between))
        self.next_stack_blocks = nn.ModuleList(Residual(width, width) for _ in range(between))
        self.relu = nn.ReLU(inplace=True)
        self.num_stacks = num_stacks
        self.size_divisor = 128  # input sides: the stem's 4 and the hourglass's five halvings
        self.out_channels = [feature_width]
        self.strides = [4]
        if pretrained:
            load_state_dict_file(self, pretrained)

    def forward(self, images: Tensor) -> list[Tensor]:
        x = self.stem(images)
        outputs = []
        for stack, (hourglass, feature_conv) in enumerate(zip(self.hourglasses, self.feature_convs)):
            features = feature_conv(hourglass(x))
            outputs.append(features)
            if stack < self.num_stacks - 1:
                merged = self.input_projections[stack](x) + self.feature_projections[stack](features)
                x = self.next_stack_blocks[stack](self.relu(merged))
        return outputs


def _projection(in_channels: int, out_channels: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(in_channels, out_channels, 1, bias=False), nn.BatchNorm2d(out_channels))
