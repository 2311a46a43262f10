"""The original CenterNet ``ctdet`` networks, module for module, for parameter and weight parity tests.

A plain re-statement of xingyizhou/CenterNet ``src/lib/models/networks/``: ``msra_resnet.py``
(``res_18``), ``resnet_dcn.py`` (``resdcn_18``/``resdcn_101``), ``pose_dla_dcn.py`` (``dla_34``)
and ``large_hourglass.py`` (``hourglass``), with DCNv2's ``DCN`` module (``dcn_v2.py``) running on
``torchvision.ops.deform_conv2d``. Attribute names, creation order and forward passes follow the
originals so that ``state_dict()`` has the keys and shapes of the released checkpoints
(``ctdet_coco_res18.pth``, ``ctdet_coco_resdcn18.pth``, ``ctdet_coco_dla_2x.pth``,
``ctdet_coco_hg.pth``) and outputs match the original ``hm``, ``wh``, ``reg``. Every builder takes
the original's ``heads`` dict, so :data:`ORIGINAL_MULTI_POSE_HEADS` (opts.py's ``multi_pose``
heads, in its order) gives the networks of ``multi_pose_dla_3x.pth`` and ``multi_pose_hg_3x.pth``.
Initialisation is not reproduced (the tests load random weights); the original starts the last
bias of every head whose name contains ``hm`` at -2.19, so ``hm_hp`` as well as ``hm``. Kept
literal on purpose: it is the yardstick for :mod:`centernet_lightning.models.original_weights`,
not a model to use.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn
from torchvision.ops import deform_conv2d

__all__ = [
    "DCN",
    "get_msra_resnet",
    "get_resnet_dcn",
    "get_dla_dcn",
    "get_large_hourglass",
    "ORIGINAL_HEADS",
    "ORIGINAL_MULTI_POSE_HEADS",
]

ORIGINAL_HEADS = {"hm": 80, "wh": 2, "reg": 2}
# opts.py, task multi_pose (COCO persons, 17 joints): hm, wh, hps, then reg, hm_hp, hp_offset.
ORIGINAL_MULTI_POSE_HEADS = {"hm": 1, "wh": 2, "hps": 34, "reg": 2, "hm_hp": 17, "hp_offset": 2}


# --------------------------------------------------------------------------- DCNv2 (dcn_v2.py)
class DCN(nn.Module):
    """DCNv2's ``DCN``: parameters ``weight`` [out, in, k, k], ``bias`` [out] and
    ``conv_offset_mask`` (a conv to 3 * k * k channels: chunked into o1, o2, mask)."""

    def __init__(self, in_channels, out_channels, kernel_size, stride, padding, dilation=1, deformable_groups=1):
        super().__init__()
        kernel_size = (kernel_size, kernel_size) if isinstance(kernel_size, int) else tuple(kernel_size)
        self.stride, self.padding, self.dilation = stride, padding, dilation
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, *kernel_size))
        self.bias = nn.Parameter(torch.zeros(out_channels))
        stdv = 1.0 / math.sqrt(in_channels * kernel_size[0] * kernel_size[1])
        nn.init.uniform_(self.weight, -stdv, stdv)
        self.conv_offset_mask = nn.Conv2d(
            in_channels,
            deformable_groups * 3 * kernel_size[0] * kernel_size[1],
            kernel_size=kernel_size,
            stride=(stride, stride),
            padding=(padding, padding),
            bias=True,
        )

    def forward(self, input: Tensor) -> Tensor:
        out = self.conv_offset_mask(input)
        o1, o2, mask = torch.chunk(out, 3, dim=1)
        offset = torch.cat((o1, o2), dim=1)
        mask = torch.sigmoid(mask)
        return deform_conv2d(
            input,
            offset,
            self.weight,
            self.bias,
            stride=self.stride,
            padding=self.padding,
            dilation=self.dilation,
            mask=mask,
        )


# --------------------------------------------------------------------------- ResNets (msra_resnet.py, resnet_dcn.py)
class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes, momentum=0.1)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, momentum=0.1)
        self.downsample = downsample

    def forward(self, x):
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + residual)


class Bottleneck(nn.Module):
    expansion = 4

    def __init__(self, inplanes, planes, stride=1, downsample=None):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, kernel_size=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes, momentum=0.1)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes, momentum=0.1)
        self.conv3 = nn.Conv2d(planes, planes * 4, kernel_size=1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes * 4, momentum=0.1)
        self.relu = nn.ReLU(inplace=True)
        self.downsample = downsample

    def forward(self, x):
        residual = x if self.downsample is None else self.downsample(x)
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        return self.relu(out + residual)


RESNET_SPEC = {18: (BasicBlock, [2, 2, 2, 2]), 101: (Bottleneck, [3, 4, 23, 3])}


class PoseResNet(nn.Module):
    """``msra_resnet.PoseResNet`` (``dcn=False``: deconv 256, 256, 256 only) or
    ``resnet_dcn.PoseResNet`` (``dcn=True``: DCN + BN + ReLU, deconv + BN + ReLU, to 256, 128, 64)."""

    def __init__(self, block, layers, heads, head_conv, dcn):
        super().__init__()
        self.inplanes = 64
        self.heads = heads
        self.conv1 = nn.Conv2d(3, 64, kernel_size=7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(64, momentum=0.1)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(kernel_size=3, stride=2, padding=1)
        self.layer1 = self._make_layer(block, 64, layers[0])
        self.layer2 = self._make_layer(block, 128, layers[1], stride=2)
        self.layer3 = self._make_layer(block, 256, layers[2], stride=2)
        self.layer4 = self._make_layer(block, 512, layers[3], stride=2)
        filters = [256, 128, 64] if dcn else [256, 256, 256]
        layers_ = []
        for planes in filters:
            if dcn:
                layers_ += [
                    DCN(
                        self.inplanes, planes, kernel_size=(3, 3), stride=1, padding=1, dilation=1, deformable_groups=1
                    ),
                    nn.BatchNorm2d(planes, momentum=0.1),
                    nn.ReLU(inplace=True),
                    nn.ConvTranspose2d(planes, planes, 4, stride=2, padding=1, output_padding=0, bias=False),
                ]
            else:
                layers_.append(
                    nn.ConvTranspose2d(self.inplanes, planes, 4, stride=2, padding=1, output_padding=0, bias=False)
                )
            layers_ += [nn.BatchNorm2d(planes, momentum=0.1), nn.ReLU(inplace=True)]
            self.inplanes = planes
        self.deconv_layers = nn.Sequential(*layers_)
        for head, classes in heads.items():
            fc = nn.Sequential(
                nn.Conv2d(filters[-1], head_conv, kernel_size=3, padding=1, bias=True),
                nn.ReLU(inplace=True),
                nn.Conv2d(head_conv, classes, kernel_size=1, stride=1, padding=0, bias=True),
            )
            self.__setattr__(head, fc)

    def _make_layer(self, block, planes, blocks, stride=1):
        downsample = None
        if stride != 1 or self.inplanes != planes * block.expansion:
            downsample = nn.Sequential(
                nn.Conv2d(self.inplanes, planes * block.expansion, kernel_size=1, stride=stride, bias=False),
                nn.BatchNorm2d(planes * block.expansion, momentum=0.1),
            )
        layers = [block(self.inplanes, planes, stride, downsample)]
        self.inplanes = planes * block.expansion
        layers += [block(self.inplanes, planes) for _ in range(1, blocks)]
        return nn.Sequential(*layers)

    def forward(self, x):
        x = self.maxpool(self.relu(self.bn1(self.conv1(x))))
        x = self.layer4(self.layer3(self.layer2(self.layer1(x))))
        x = self.deconv_layers(x)
        return [{head: self.__getattr__(head)(x) for head in self.heads}]


def get_msra_resnet(num_layers=18, heads=ORIGINAL_HEADS, head_conv=64):
    block, layers = RESNET_SPEC[num_layers]
    return PoseResNet(block, layers, dict(heads), head_conv, dcn=False)


def get_resnet_dcn(num_layers=18, heads=ORIGINAL_HEADS, head_conv=64):
    block, layers = RESNET_SPEC[num_layers]
    return PoseResNet(block, layers, dict(heads), head_conv, dcn=True)


# --------------------------------------------------------------------------- DLA-34 (pose_dla_dcn.py)
class DLABasicBlock(nn.Module):
    def __init__(self, inplanes, planes, stride=1, dilation=1):
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, planes, 3, stride=stride, padding=dilation, bias=False, dilation=dilation)
        self.bn1 = nn.BatchNorm2d(planes, momentum=0.1)
        self.relu = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride=1, padding=dilation, bias=False, dilation=dilation)
        self.bn2 = nn.BatchNorm2d(planes, momentum=0.1)

    def forward(self, x, residual=None):
        residual = x if residual is None else residual
        out = self.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return self.relu(out + residual)


class Root(nn.Module):
    def __init__(self, in_channels, out_channels, kernel_size, residual):
        super().__init__()
        self.conv = nn.Conv2d(in_channels, out_channels, 1, stride=1, bias=False, padding=(kernel_size - 1) // 2)
        self.bn = nn.BatchNorm2d(out_channels, momentum=0.1)
        self.relu = nn.ReLU(inplace=True)
        self.residual = residual

    def forward(self, *x):
        children = x
        x = self.bn(self.conv(torch.cat(x, 1)))
        if self.residual:
            x += children[0]
        return self.relu(x)


class Tree(nn.Module):
    """As the original, including the ``project`` of a levels > 1 tree that forward never uses."""

    def __init__(
        self,
        levels,
        block,
        in_channels,
        out_channels,
        stride=1,
        level_root=False,
        root_dim=0,
        root_kernel_size=1,
        dilation=1,
        root_residual=False,
    ):
        super().__init__()
        if root_dim == 0:
            root_dim = 2 * out_channels
        if level_root:
            root_dim += in_channels
        if levels == 1:
            self.tree1 = block(in_channels, out_channels, stride, dilation=dilation)
            self.tree2 = block(out_channels, out_channels, 1, dilation=dilation)
        else:
            self.tree1 = Tree(
                levels - 1,
                block,
                in_channels,
                out_channels,
                stride,
                root_dim=0,
                root_kernel_size=root_kernel_size,
                dilation=dilation,
                root_residual=root_residual,
            )
            self.tree2 = Tree(
                levels - 1,
                block,
                out_channels,
                out_channels,
                root_dim=root_dim + out_channels,
                root_kernel_size=root_kernel_size,
                dilation=dilation,
                root_residual=root_residual,
            )
        if levels == 1:
            self.root = Root(root_dim, out_channels, root_kernel_size, root_residual)
        self.level_root = level_root
        self.levels = levels
        self.downsample = nn.MaxPool2d(stride, stride=stride) if stride > 1 else None
        self.project = None
        if in_channels != out_channels:
            self.project = nn.Sequential(
                nn.Conv2d(in_channels, out_channels, kernel_size=1, stride=1, bias=False),
                nn.BatchNorm2d(out_channels, momentum=0.1),
            )

    def forward(self, x, residual=None, children=None):
        children = [] if children is None else children
        bottom = self.downsample(x) if self.downsample else x
        residual = self.project(bottom) if self.project else bottom
        if self.level_root:
            children.append(bottom)
        x1 = self.tree1(x, residual)
        if self.levels == 1:
            x2 = self.tree2(x1)
            x = self.root(x2, x1, *children)
        else:
            children.append(x1)
            x = self.tree2(x1, children=children)
        return x


class DLA(nn.Module):
    def __init__(self, levels, channels, block=DLABasicBlock, residual_root=False, imagenet_fc=True):
        super().__init__()
        self.channels = channels
        self.base_layer = nn.Sequential(
            nn.Conv2d(3, channels[0], kernel_size=7, stride=1, padding=3, bias=False),
            nn.BatchNorm2d(channels[0], momentum=0.1),
            nn.ReLU(inplace=True),
        )
        self.level0 = self._make_conv_level(channels[0], channels[0], levels[0])
        self.level1 = self._make_conv_level(channels[0], channels[1], levels[1], stride=2)
        self.level2 = Tree(levels[2], block, channels[1], channels[2], 2, level_root=False, root_residual=residual_root)
        self.level3 = Tree(levels[3], block, channels[2], channels[3], 2, level_root=True, root_residual=residual_root)
        self.level4 = Tree(levels[4], block, channels[3], channels[4], 2, level_root=True, root_residual=residual_root)
        self.level5 = Tree(levels[5], block, channels[4], channels[5], 2, level_root=True, root_residual=residual_root)
        if imagenet_fc:
            # load_pretrained_model() attaches the ImageNet classifier, so the released
            # checkpoints carry base.fc.* although forward never uses it.
            self.fc = nn.Conv2d(channels[-1], 1000, kernel_size=1, stride=1, padding=0, bias=True)

    def _make_conv_level(self, inplanes, planes, convs, stride=1, dilation=1):
        modules = []
        for i in range(convs):
            modules += [
                nn.Conv2d(
                    inplanes, planes, 3, stride=stride if i == 0 else 1, padding=dilation, bias=False, dilation=dilation
                ),
                nn.BatchNorm2d(planes, momentum=0.1),
                nn.ReLU(inplace=True),
            ]
            inplanes = planes
        return nn.Sequential(*modules)

    def forward(self, x):
        y = []
        x = self.base_layer(x)
        for i in range(6):
            x = getattr(self, f"level{i}")(x)
            y.append(x)
        return y


def fill_up_weights(up):
    w = up.weight.data
    f = math.ceil(w.size(2) / 2)
    c = (2 * f - 1 - f % 2) / (2.0 * f)
    for i in range(w.size(2)):
        for j in range(w.size(3)):
            w[0, 0, i, j] = (1 - math.fabs(i / f - c)) * (1 - math.fabs(j / f - c))
    for c in range(1, w.size(0)):
        w[c, 0, :, :] = w[0, 0, :, :]


class DeformConv(nn.Module):
    def __init__(self, chi, cho):
        super().__init__()
        self.actf = nn.Sequential(nn.BatchNorm2d(cho, momentum=0.1), nn.ReLU(inplace=True))
        self.conv = DCN(chi, cho, kernel_size=(3, 3), stride=1, padding=1, dilation=1, deformable_groups=1)

    def forward(self, x):
        return self.actf(self.conv(x))


class IDAUp(nn.Module):
    def __init__(self, o, channels, up_f):
        super().__init__()
        for i in range(1, len(channels)):
            c = channels[i]
            f = int(up_f[i])
            proj = DeformConv(c, o)
            node = DeformConv(o, o)
            up = nn.ConvTranspose2d(o, o, f * 2, stride=f, padding=f // 2, output_padding=0, groups=o, bias=False)
            fill_up_weights(up)
            setattr(self, "proj_" + str(i), proj)
            setattr(self, "up_" + str(i), up)
            setattr(self, "node_" + str(i), node)

    def forward(self, layers, startp, endp):
        for i in range(startp + 1, endp):
            upsample = getattr(self, "up_" + str(i - startp))
            project = getattr(self, "proj_" + str(i - startp))
            layers[i] = upsample(project(layers[i]))
            node = getattr(self, "node_" + str(i - startp))
            layers[i] = node(layers[i] + layers[i - 1])


class DLAUp(nn.Module):
    def __init__(self, startp, channels, scales, in_channels=None):
        super().__init__()
        self.startp = startp
        if in_channels is None:
            in_channels = channels
        self.channels = channels
        channels = list(channels)
        scales = list(scales)
        for i in range(len(channels) - 1):
            j = -i - 2
            setattr(self, f"ida_{i}", IDAUp(channels[j], in_channels[j:], [s // scales[j] for s in scales[j:]]))
            scales[j + 1 :] = [scales[j]] * len(scales[j + 1 :])
            in_channels[j + 1 :] = [channels[j] for _ in channels[j + 1 :]]

    def forward(self, layers):
        out = [layers[-1]]
        for i in range(len(layers) - self.startp - 1):
            ida = getattr(self, f"ida_{i}")
            ida(layers, len(layers) - i - 2, len(layers))
            out.insert(0, layers[-1])
        return out


class DLASeg(nn.Module):
    def __init__(self, heads, down_ratio=4, final_kernel=1, last_level=5, head_conv=256, imagenet_fc=True):
        super().__init__()
        self.first_level = int(math.log2(down_ratio))
        self.last_level = last_level
        self.base = DLA([1, 1, 1, 2, 2, 1], [16, 32, 64, 128, 256, 512], imagenet_fc=imagenet_fc)
        channels = self.base.channels
        scales = [2**i for i in range(len(channels[self.first_level :]))]
        self.dla_up = DLAUp(self.first_level, channels[self.first_level :], scales)
        out_channel = channels[self.first_level]
        self.ida_up = IDAUp(
            out_channel,
            channels[self.first_level : self.last_level],
            [2**i for i in range(self.last_level - self.first_level)],
        )
        self.heads = heads
        for head, classes in heads.items():
            fc = nn.Sequential(
                nn.Conv2d(channels[self.first_level], head_conv, kernel_size=3, padding=1, bias=True),
                nn.ReLU(inplace=True),
                nn.Conv2d(head_conv, classes, kernel_size=final_kernel, stride=1, padding=final_kernel // 2, bias=True),
            )
            self.__setattr__(head, fc)

    def forward(self, x):
        x = self.base(x)
        x = self.dla_up(x)
        y = [x[i].clone() for i in range(self.last_level - self.first_level)]
        self.ida_up(y, 0, len(y))
        return [{head: self.__getattr__(head)(y[-1]) for head in self.heads}]


def get_dla_dcn(heads=ORIGINAL_HEADS, head_conv=256, imagenet_fc=True):
    return DLASeg(dict(heads), head_conv=head_conv, imagenet_fc=imagenet_fc)


# --------------------------------------------------------------------------- Hourglass-104 (large_hourglass.py)
class convolution(nn.Module):  # noqa: N801 (the original's name)
    def __init__(self, k, inp_dim, out_dim, stride=1, with_bn=True):
        super().__init__()
        pad = (k - 1) // 2
        self.conv = nn.Conv2d(inp_dim, out_dim, (k, k), padding=(pad, pad), stride=(stride, stride), bias=not with_bn)
        self.bn = nn.BatchNorm2d(out_dim) if with_bn else nn.Sequential()
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        return self.relu(self.bn(self.conv(x)))


class residual(nn.Module):  # noqa: N801
    def __init__(self, k, inp_dim, out_dim, stride=1, with_bn=True):
        super().__init__()
        self.conv1 = nn.Conv2d(inp_dim, out_dim, (3, 3), padding=(1, 1), stride=(stride, stride), bias=False)
        self.bn1 = nn.BatchNorm2d(out_dim)
        self.relu1 = nn.ReLU(inplace=True)
        self.conv2 = nn.Conv2d(out_dim, out_dim, (3, 3), padding=(1, 1), bias=False)
        self.bn2 = nn.BatchNorm2d(out_dim)
        self.skip = (
            nn.Sequential(
                nn.Conv2d(inp_dim, out_dim, (1, 1), stride=(stride, stride), bias=False), nn.BatchNorm2d(out_dim)
            )
            if stride != 1 or inp_dim != out_dim
            else nn.Sequential()
        )
        self.relu = nn.ReLU(inplace=True)

    def forward(self, x):
        relu1 = self.relu1(self.bn1(self.conv1(x)))
        bn2 = self.bn2(self.conv2(relu1))
        return self.relu(bn2 + self.skip(x))


def make_layer(k, inp_dim, out_dim, modules, layer=residual):
    return nn.Sequential(layer(k, inp_dim, out_dim), *[layer(k, out_dim, out_dim) for _ in range(1, modules)])


def make_layer_revr(k, inp_dim, out_dim, modules, layer=residual):
    return nn.Sequential(*[layer(k, inp_dim, inp_dim) for _ in range(modules - 1)], layer(k, inp_dim, out_dim))


def make_hg_layer(kernel, dim0, dim1, mod, layer=residual):
    return nn.Sequential(layer(kernel, dim0, dim1, stride=2), *[layer(kernel, dim1, dim1) for _ in range(mod - 1)])


class kp_module(nn.Module):  # noqa: N801
    def __init__(self, n, dims, modules):
        super().__init__()
        self.n = n
        curr_mod, next_mod = modules[0], modules[1]
        curr_dim, next_dim = dims[0], dims[1]
        self.up1 = make_layer(3, curr_dim, curr_dim, curr_mod)
        self.max1 = nn.Sequential()
        self.low1 = make_hg_layer(3, curr_dim, next_dim, curr_mod)
        self.low2 = kp_module(n - 1, dims[1:], modules[1:]) if n > 1 else make_layer(3, next_dim, next_dim, next_mod)
        self.low3 = make_layer_revr(3, next_dim, curr_dim, curr_mod)
        self.up2 = nn.Upsample(scale_factor=2)

    def forward(self, x):
        up1 = self.up1(x)
        low3 = self.low3(self.low2(self.low1(self.max1(x))))
        return up1 + self.up2(low3)


def make_kp_layer(cnv_dim, curr_dim, out_dim):
    return nn.Sequential(convolution(3, cnv_dim, curr_dim, with_bn=False), nn.Conv2d(curr_dim, out_dim, (1, 1)))


class HourglassNet(nn.Module):
    """``exkp`` as built by ``HourglassNet(heads, 2)``: n=5, dims 256..512, modules 2..4, cnv_dim 256."""

    def __init__(
        self, heads, nstack=2, n=5, dims=(256, 256, 384, 384, 384, 512), modules=(2, 2, 2, 2, 2, 4), cnv_dim=256
    ):
        super().__init__()
        self.nstack = nstack
        self.heads = heads
        curr_dim = dims[0]
        self.pre = nn.Sequential(convolution(7, 3, 128, stride=2), residual(3, 128, 256, stride=2))
        self.kps = nn.ModuleList([kp_module(n, dims, modules) for _ in range(nstack)])
        self.cnvs = nn.ModuleList([convolution(3, curr_dim, cnv_dim) for _ in range(nstack)])
        self.inters = nn.ModuleList([residual(3, curr_dim, curr_dim) for _ in range(nstack - 1)])
        self.inters_ = nn.ModuleList(
            [
                nn.Sequential(nn.Conv2d(curr_dim, curr_dim, (1, 1), bias=False), nn.BatchNorm2d(curr_dim))
                for _ in range(nstack - 1)
            ]
        )
        self.cnvs_ = nn.ModuleList(
            [
                nn.Sequential(nn.Conv2d(cnv_dim, curr_dim, (1, 1), bias=False), nn.BatchNorm2d(curr_dim))
                for _ in range(nstack - 1)
            ]
        )
        for head, classes in heads.items():
            self.__setattr__(head, nn.ModuleList([make_kp_layer(cnv_dim, curr_dim, classes) for _ in range(nstack)]))
        self.relu = nn.ReLU(inplace=True)

    def forward(self, image):
        inter = self.pre(image)
        outs = []
        for ind in range(self.nstack):
            cnv = self.cnvs[ind](self.kps[ind](inter))
            outs.append({head: self.__getattr__(head)[ind](cnv) for head in self.heads})
            if ind < self.nstack - 1:
                inter = self.relu(self.inters_[ind](inter) + self.cnvs_[ind](cnv))
                inter = self.inters[ind](inter)
        return outs


def get_large_hourglass(heads=ORIGINAL_HEADS):
    return HourglassNet(dict(heads), 2)
