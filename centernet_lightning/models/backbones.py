"""Backbones: torchvision ResNet/MobileNet and any timm CNN as multi-stage feature extractors.

Every backbone returns the outputs of its stages at strides 4, 8, 16 and 32 (a list, when
``return_features=True``) or only the last one, and exposes ``out_channels`` and ``strides``
for the returned maps. Channels and strides are read from the model, never hard-coded.
The stacked Hourglass-104 (:mod:`.hourglass`) is the exception: it returns one stride-4 map
per stack and exposes ``num_stacks``.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
import torchvision
from torch import Tensor, nn

from ..weights import PretrainedWeightsUnavailable, load_state_dict_file
from .hourglass import HOURGLASS_NAMES, HourglassBackbone

__all__ = [
    "ResNetBackbone",
    "MobileNetBackbone",
    "TimmBackbone",
    "RESNET_NAMES",
    "MOBILENET_NAMES",
    "BACKBONES",
    "build_backbone",
]

RESNET_NAMES = (
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "resnet152",
    "resnext50_32x4d",
    "resnext101_32x8d",
    "wide_resnet50_2",
    "wide_resnet101_2",
)
MOBILENET_NAMES = ("mobilenet_v2", "mobilenet_v3_small", "mobilenet_v3_large")

Pretrained = bool | str | os.PathLike


def _load_torchvision_model(name: str, pretrained: Pretrained) -> nn.Module:
    """Build a torchvision classification model; load ImageNet weights or a local state dict."""
    if pretrained is True:
        try:
            return torchvision.models.get_model(name, weights="DEFAULT")
        except Exception as error:  # urllib / hub errors differ by version; all mean "no download"
            raise PretrainedWeightsUnavailable(name, error) from error
    model = torchvision.models.get_model(name, weights=None)
    if pretrained:
        load_state_dict_file(model, pretrained, ignore_prefixes=("fc.", "classifier."))
    return model


@torch.no_grad()
def _probe_stage_ends(stages: nn.Sequential, image_size: int = 64) -> tuple[list[int], list[int], list[int]]:
    """Find where each stride ends in a sequence of blocks by running a small dummy image.

    Returns (indices of the last block at each stride, their channels, their strides).
    """
    was_training = stages.training
    stages.eval()
    x = torch.zeros(1, 3, image_size, image_size)
    ends: dict[int, tuple[int, int]] = {}
    for index, block in enumerate(stages):
        x = block(x)
        ends[image_size // x.shape[-1]] = (index, x.shape[1])
    stages.train(was_training)
    strides = sorted(stride for stride in ends if stride >= 4)
    return [ends[s][0] for s in strides], [ends[s][1] for s in strides], strides


class _StagedBackbone(nn.Module):
    """A sequence of blocks cut into stages at stride changes; common to the torchvision backbones."""

    def __init__(self, blocks: nn.Sequential, return_features: bool, frozen_stages: int) -> None:
        super().__init__()
        stage_ends, channels, strides = _probe_stage_ends(blocks)
        starts = [0] + [end + 1 for end in stage_ends[:-1]]
        # stages[0] holds the stem too, so freezing N stages freezes the stem and the first N.
        self.stages = nn.ModuleList(nn.Sequential(*blocks[start : end + 1]) for start, end in zip(starts, stage_ends))
        self.return_features = return_features
        self.out_channels = channels if return_features else channels[-1:]
        self.strides = strides if return_features else strides[-1:]
        if not 0 <= frozen_stages <= len(self.stages):
            raise ValueError(f"frozen_stages must be in [0, {len(self.stages)}], got {frozen_stages}")
        self.frozen_stages = frozen_stages
        for stage in self.stages[:frozen_stages]:
            stage.requires_grad_(False)

    def train(self, mode: bool = True) -> _StagedBackbone:
        super().train(mode)
        # Frozen stages keep their BatchNorm statistics: their BN layers stay in eval mode.
        for stage in self.stages[: self.frozen_stages]:
            stage.eval()
        return self

    def forward(self, images: Tensor) -> list[Tensor] | Tensor:
        features = []
        x = images
        for stage in self.stages:
            x = stage(x)
            features.append(x)
        return features if self.return_features else x


class ResNetBackbone(_StagedBackbone):
    """torchvision ResNet / ResNeXt / Wide ResNet; stages = layer1..layer4 (strides 4..32).

    Args:
        name: one of :data:`RESNET_NAMES`.
        pretrained: False, True (torchvision's ImageNet weights, downloaded) or a state-dict path.
        return_features: return all four stage outputs (for fusion necks) instead of the last.
        frozen_stages: freeze the stem and the first N stages, BatchNorm statistics included.
    """

    def __init__(
        self,
        name: str = "resnet18",
        pretrained: Pretrained = False,
        return_features: bool = False,
        frozen_stages: int = 0,
    ) -> None:
        if name not in RESNET_NAMES:
            raise ValueError(f"Unknown ResNet {name!r}; valid names: {list(RESNET_NAMES)}")
        model = _load_torchvision_model(name, pretrained)
        blocks = nn.Sequential(
            nn.Sequential(model.conv1, model.bn1, model.relu, model.maxpool, model.layer1),
            model.layer2,
            model.layer3,
            model.layer4,
        )
        super().__init__(blocks, return_features, frozen_stages)


class MobileNetBackbone(_StagedBackbone):
    """torchvision MobileNetV2 / V3 ``features``, cut where the stride doubles (strides 4..32).

    Arguments as for :class:`ResNetBackbone`; ``name`` is one of :data:`MOBILENET_NAMES`.
    """

    def __init__(
        self,
        name: str = "mobilenet_v2",
        pretrained: Pretrained = False,
        return_features: bool = False,
        frozen_stages: int = 0,
    ) -> None:
        if name not in MOBILENET_NAMES:
            raise ValueError(f"Unknown MobileNet {name!r}; valid names: {list(MOBILENET_NAMES)}")
        model = _load_torchvision_model(name, pretrained)
        super().__init__(model.features, return_features, frozen_stages)


class TimmBackbone(nn.Module):
    """Any timm CNN through ``timm.create_model(features_only=True)`` (dla34, cspdarknet53, convnext, ...).

    The four deepest feature maps with stride >= 4 are used; their channels and strides come from
    timm's ``feature_info``. ``pretrained`` is False, True (timm's hub download) or a local file.
    """

    def __init__(
        self,
        name: str = "dla34",
        pretrained: Pretrained = False,
        return_features: bool = False,
        frozen_stages: int = 0,
    ) -> None:
        super().__init__()
        import timm

        if name not in timm.list_models():
            close = timm.list_models(f"*{name.split('_')[0]}*")[:20]
            raise ValueError(f"Unknown timm model {name!r}; similar valid names: {close}")
        kwargs = {"pretrained": bool(pretrained)}
        if pretrained and pretrained is not True:
            if not Path(pretrained).is_file():
                raise FileNotFoundError(f"Pretrained weights file not found: {pretrained}")
            kwargs["pretrained_cfg_overlay"] = {"file": str(pretrained)}
        try:
            self.body = timm.create_model(name, features_only=True, **kwargs)
        except RuntimeError as error:
            raise ValueError(f"timm model {name!r} cannot be used as a feature extractor: {error}") from error
        except Exception as error:
            if pretrained is True:
                raise PretrainedWeightsUnavailable(name, error) from error
            raise
        reductions = self.body.feature_info.reduction()
        channels = self.body.feature_info.channels()
        selected = [i for i, r in enumerate(reductions) if r >= 4][-4:]
        self.selected = selected
        self.return_features = return_features
        self.out_channels = [channels[i] for i in selected] if return_features else [channels[selected[-1]]]
        self.strides = [reductions[i] for i in selected] if return_features else [reductions[selected[-1]]]
        self.frozen_stages = frozen_stages
        self._frozen = self._freeze(frozen_stages)

    def _freeze(self, frozen_stages: int) -> list[nn.Module]:
        """Freeze every parameter up to the last one of the module that emits the N-th selected
        feature map (the stem included); return the normalisation layers that must stay in eval."""
        if not 0 <= frozen_stages <= len(self.selected):
            raise ValueError(f"frozen_stages must be in [0, {len(self.selected)}], got {frozen_stages}")
        if frozen_stages == 0:
            return []
        feature_module = self.body.feature_info.module_name()[self.selected[frozen_stages - 1]]
        # timm's feature wrappers either keep nested names ("blocks.1") or flatten them ("layer1_0").
        module_names = {name for name, _ in self.body.named_modules()}
        prefix = feature_module if feature_module in module_names else feature_module.replace(".", "_")
        parameter_names = [name for name, _ in self.body.named_parameters()]
        inside = [i for i, name in enumerate(parameter_names) if name.startswith(prefix + ".")]
        if prefix not in module_names or not inside:
            raise ValueError(f"Cannot find stage module {feature_module!r} in timm model; frozen_stages unsupported")
        frozen = set(parameter_names[: inside[-1] + 1])
        for name, parameter in self.body.named_parameters():
            if name in frozen:
                parameter.requires_grad_(False)
        return [
            module
            for name, module in self.body.named_modules()
            if isinstance(module, nn.modules.batchnorm._NormBase)
            and any(f"{name}.{key}" in frozen for key, _ in module.named_parameters(recurse=False))
        ]

    def train(self, mode: bool = True) -> TimmBackbone:
        super().train(mode)
        for module in self._frozen:
            module.eval()
        return self

    def forward(self, images: Tensor) -> list[Tensor] | Tensor:
        features = self.body(images)
        features = [features[i] for i in self.selected]
        return features if self.return_features else features[-1]


BACKBONES: dict[str, type[nn.Module]] = {
    **{name: ResNetBackbone for name in RESNET_NAMES},
    **{name: MobileNetBackbone for name in MOBILENET_NAMES},
    **{name: HourglassBackbone for name in HOURGLASS_NAMES},
}


def build_backbone(name: str, **kwargs) -> nn.Module:
    """Build a backbone by name: a torchvision ResNet/MobileNet name, ``hourglass104``, or
    ``timm:<model>`` (or a bare timm model name that is not one of those)."""
    if name in BACKBONES:
        return BACKBONES[name](name, **kwargs)
    timm_name = name.removeprefix("timm:")
    try:
        return TimmBackbone(timm_name, **kwargs)
    except ValueError as error:
        if "Unknown timm model" in str(error):
            raise ValueError(
                f"Unknown backbone {name!r}; valid names: {sorted(BACKBONES)} or any timm CNN "
                f"(e.g. 'timm:dla34'). {error}"
            ) from error
        raise
