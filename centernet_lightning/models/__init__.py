"""CenterNet models: backbones, necks, head types, the detector network and the LightningModules
(``CenterNet`` for detection, ``FairMOT`` for detection + re-ID embeddings)."""

from .backbones import BACKBONES, MobileNetBackbone, ResNetBackbone, TimmBackbone, build_backbone
from .centernet import CenterNet, build_centernet, load_centernet
from .detector import CenterNetDetector, build_detector
from .fairmot import FairMOT, TrackingDetections
from .heads import HEAD_TYPES, Box2DHead, Head, HeatmapHead, OffsetHead, SizeHead
from .hourglass import HourglassBackbone
from .info import format_info, model_info
from .layers import DeformConvBNReLU
from .module_parts import load_weights
from .necks import NECKS, BiFPNNeck, FPNNeck, IDANeck, IdentityNeck, SimpleNeck, build_neck
from .original_weights import load_original_weights
from .reid import IdentityLoss, ReIDHead, UncertaintyWeighting, fairmot_embedding_scale

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
    "FairMOT",
    "Head",
    "HeatmapHead",
    "HourglassBackbone",
    "IDANeck",
    "IdentityLoss",
    "IdentityNeck",
    "MobileNetBackbone",
    "OffsetHead",
    "ReIDHead",
    "ResNetBackbone",
    "SimpleNeck",
    "SizeHead",
    "TimmBackbone",
    "TrackingDetections",
    "UncertaintyWeighting",
    "build_backbone",
    "build_centernet",
    "load_centernet",
    "build_detector",
    "build_neck",
    "fairmot_embedding_scale",
    "format_info",
    "load_original_weights",
    "load_weights",
    "model_info",
]
