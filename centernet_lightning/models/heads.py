"""Output heads: ``depth`` x (3x3 conv + ReLU) followed by a 1x1 conv, on the stride-4 feature map."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

__all__ = ["HeatmapHead", "Box2DHead"]


def _head_layers(in_channels: int, out_channels: int, width: int, depth: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    channels = in_channels
    for _ in range(depth):
        layers += [nn.Conv2d(channels, width, 3, padding=1), nn.ReLU(inplace=True)]
        channels = width
    layers.append(nn.Conv2d(channels, out_channels, 1))
    return nn.Sequential(*layers)


class HeatmapHead(nn.Module):
    """Class heatmap logits [B, num_classes, H, W].

    The last bias starts at ``init_bias = -2.19`` so that every pixel begins at probability
    ~0.1 (CenterNet sec. 4; RetinaNet's prior of Lin et al. 2017 sec. 4.1), which keeps the focal
    loss from being swamped by easy negatives early on.
    """

    def __init__(self, in_channels: int, num_classes: int, width: int = 256, depth: int = 1, init_bias: float = -2.19):
        super().__init__()
        self.num_classes = num_classes
        self.layers = _head_layers(in_channels, num_classes, width, depth)
        nn.init.constant_(self.layers[-1].bias, init_bias)

    def forward(self, features: Tensor) -> Tensor:
        return self.layers(features)


class Box2DHead(nn.Module):
    """Left/top/right/bottom distances [B, 4, H, W] from each cell's centre to the box sides.

    Distances are in grid cells (multiply by the stride for input pixels) and non-negative
    (ReLU), as in TTFNet's box head. The last bias starts at 1 cell so the ReLU begins open.
    """

    def __init__(self, in_channels: int, width: int = 256, depth: int = 1):
        super().__init__()
        self.layers = _head_layers(in_channels, 4, width, depth)
        nn.init.constant_(self.layers[-1].bias, 1.0)

    def forward(self, features: Tensor) -> Tensor:
        return F.relu(self.layers(features))
