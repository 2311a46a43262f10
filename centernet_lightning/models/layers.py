"""Convolution blocks shared by the necks: plain, depthwise-separable and deformable (DCNv2)."""

from __future__ import annotations

import torch
from torch import Tensor, nn
from torchvision.ops import DeformConv2d

__all__ = [
    "ConvBNReLU",
    "SeparableConvBNReLU",
    "DeformConvBNReLU",
    "CONV_BLOCKS",
    "make_conv_block",
    "make_upsample",
    "bilinear_init_",
]


class ConvBNReLU(nn.Sequential):
    """k x k convolution + BatchNorm + ReLU; keeps the spatial size at stride 1.

    ``bias`` adds a (redundant, BatchNorm follows) convolution bias, only to hold weights of
    models that have one.
    """

    def __init__(
        self, in_channels: int, out_channels: int, kernel_size: int = 3, stride: int = 1, bias: bool = False
    ) -> None:
        super().__init__(
            nn.Conv2d(in_channels, out_channels, kernel_size, stride=stride, padding=kernel_size // 2, bias=bias),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class SeparableConvBNReLU(nn.Sequential):
    """Depthwise 3x3 + pointwise 1x1 convolution + BatchNorm + ReLU (MobileNet/EfficientDet style)."""

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, bias: bool = False) -> None:
        super().__init__(
            nn.Conv2d(
                in_channels,
                in_channels,
                kernel_size,
                padding=kernel_size // 2,
                groups=in_channels,
                bias=False,
            ),
            nn.Conv2d(in_channels, out_channels, 1, bias=bias),
            nn.BatchNorm2d(out_channels),
            nn.ReLU(inplace=True),
        )


class DeformConvBNReLU(nn.Module):
    """Modulated deformable convolution (DCNv2, Zhu et al. 2019) + BatchNorm + ReLU.

    Uses ``torchvision.ops.DeformConv2d`` so nothing needs compiling and it runs on CPU. A plain
    convolution predicts 2 offsets and 1 modulation scalar per kernel tap; it starts at zero so
    the block begins as a regular convolution with every tap weighted 0.5.

    The offset/mask channels are laid out as in DCNv2's ``DCN`` module (the original CenterNet):
    ``[2 * taps]`` offsets, (dy, dx) per tap in row-major tap order, then ``[taps]`` mask logits.
    DCNv2 chunks them into o1, o2, mask and concatenates o1, o2 back, which is the same split,
    and its kernel reads the offsets in the same (dy, dx) per-tap order as torchvision's.
    ``bias=True`` gives the deformable convolution a bias as DCNv2's ``DCN`` has (redundant
    before BatchNorm; needed to hold the original CenterNet weights).
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 3, bias: bool = False) -> None:
        super().__init__()
        taps = kernel_size * kernel_size
        self.offset_mask = nn.Conv2d(in_channels, 3 * taps, kernel_size, padding=kernel_size // 2)
        nn.init.zeros_(self.offset_mask.weight)
        nn.init.zeros_(self.offset_mask.bias)
        self.conv = DeformConv2d(in_channels, out_channels, kernel_size, padding=kernel_size // 2, bias=bias)
        self.bn = nn.BatchNorm2d(out_channels)
        self.act = nn.ReLU(inplace=True)
        self.taps = taps

    def forward(self, x: Tensor) -> Tensor:
        offset_mask = self.offset_mask(x)
        offset, mask = offset_mask.split([2 * self.taps, self.taps], dim=1)
        x = self.conv(x, offset, mask.sigmoid())
        return self.act(self.bn(x))


CONV_BLOCKS: dict[str, type[nn.Module]] = {
    "normal": ConvBNReLU,
    "separable": SeparableConvBNReLU,
    "dcn": DeformConvBNReLU,
}


def make_conv_block(
    conv_type: str, in_channels: int, out_channels: int, kernel_size: int = 3, bias: bool = False
) -> nn.Module:
    """Build a conv block by name (``normal``, ``separable`` or ``dcn``); ``bias`` as in :class:`ConvBNReLU`."""
    if conv_type not in CONV_BLOCKS:
        raise ValueError(f"Unknown conv_type {conv_type!r}; valid names: {sorted(CONV_BLOCKS)}")
    return CONV_BLOCKS[conv_type](in_channels, out_channels, kernel_size, bias=bias)


def bilinear_init_(deconv: nn.ConvTranspose2d) -> None:
    """Initialise a transposed convolution to bilinear upsampling, channel by channel.

    Same kernel as CenterNet's ``fill_up_weights`` (FCN's bilinear kernel); every output channel
    upsamples its own input channel and ignores the others.
    """
    kernel_size = deconv.kernel_size[0]
    factor = (kernel_size + 1) // 2
    center = factor - 1 if kernel_size % 2 == 1 else factor - 0.5
    steps = torch.arange(kernel_size, dtype=torch.float32)
    profile = 1 - (steps - center).abs() / factor
    kernel = profile[:, None] * profile[None, :]
    with torch.no_grad():
        deconv.weight.zero_()
        in_channels, out_per_group = deconv.weight.shape[:2]
        channels = min(in_channels, out_per_group) if deconv.groups == 1 else in_channels
        channel = torch.arange(channels)
        deconv.weight[channel, channel if deconv.groups == 1 else 0] = kernel
        if deconv.bias is not None:
            deconv.bias.zero_()


UPSAMPLE_TYPES = ("nearest", "bilinear", "conv_transpose")


def make_upsample(upsample_type: str, channels: int, out_channels: int | None = None) -> nn.Module:
    """A x2 upsampling layer: ``nearest``, ``bilinear`` or a bilinear-initialised ``conv_transpose``.

    Only ``conv_transpose`` (4x4, stride 2, + BatchNorm + ReLU) can change the channel count
    (``out_channels``), as the deconvolution-only decoder of the original ResNet CenterNet does.
    """
    if upsample_type == "conv_transpose":
        out_channels = channels if out_channels is None else out_channels
        deconv = nn.ConvTranspose2d(channels, out_channels, 4, stride=2, padding=1, bias=False)
        bilinear_init_(deconv)
        return nn.Sequential(deconv, nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True))
    if out_channels is not None and out_channels != channels:
        raise ValueError(f"upsample_type {upsample_type!r} keeps the channel count; use 'conv_transpose' to change it")
    if upsample_type == "nearest":
        return nn.Upsample(scale_factor=2, mode="nearest")
    if upsample_type == "bilinear":
        return nn.Upsample(scale_factor=2, mode="bilinear", align_corners=False)
    raise ValueError(f"Unknown upsample_type {upsample_type!r}; valid names: {list(UPSAMPLE_TYPES)}")
