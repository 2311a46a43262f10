"""CenterNet models: backbones, necks, heads and the CenterNet LightningModule."""

from .backbones import BACKBONES, MobileNetBackbone, ResNetBackbone, TimmBackbone, build_backbone
from .centernet import CenterNet, CenterNetOutput, build_centernet
from .heads import Box2DHead, HeatmapHead
from .layers import DeformConvBNReLU
from .necks import NECKS, BiFPNNeck, FPNNeck, IDANeck, SimpleNeck, build_neck

__all__ = [
    "BACKBONES",
    "NECKS",
    "BiFPNNeck",
    "Box2DHead",
    "CenterNet",
    "CenterNetOutput",
    "DeformConvBNReLU",
    "FPNNeck",
    "HeatmapHead",
    "IDANeck",
    "MobileNetBackbone",
    "ResNetBackbone",
    "SimpleNeck",
    "TimmBackbone",
    "build_backbone",
    "build_centernet",
    "build_neck",
]
