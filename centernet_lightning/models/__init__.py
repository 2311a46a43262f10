"""CenterNet models: backbones, necks, head types, the detector network and the LightningModule."""

from .backbones import BACKBONES, MobileNetBackbone, ResNetBackbone, TimmBackbone, build_backbone
from .centernet import CenterNet, build_centernet, load_weights
from .detector import CenterNetDetector, build_detector
from .heads import HEAD_TYPES, Box2DHead, Head, HeatmapHead, OffsetHead, SizeHead
from .hourglass import HourglassBackbone
from .info import format_info, model_info
from .layers import DeformConvBNReLU
from .necks import NECKS, BiFPNNeck, FPNNeck, IDANeck, IdentityNeck, SimpleNeck, build_neck
from .original_weights import load_original_weights

__all__ = [
    "BACKBONES",
    "HEAD_TYPES",
    "NECKS",
    "BiFPNNeck",
    "Box2DHead",
    "CenterNet",
    "CenterNetDetector",
    "DeformConvBNReLU",
    "FPNNeck",
    "Head",
    "HeatmapHead",
    "HourglassBackbone",
    "IDANeck",
    "IdentityNeck",
    "MobileNetBackbone",
    "OffsetHead",
    "ResNetBackbone",
    "SimpleNeck",
    "SizeHead",
    "TimmBackbone",
    "build_backbone",
    "build_centernet",
    "build_detector",
    "build_neck",
    "format_info",
    "load_original_weights",
    "load_weights",
    "model_info",
]
