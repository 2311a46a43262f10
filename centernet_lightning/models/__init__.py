"""The CenterNet network and its parts: backbones, necks, head types, the detector, its loss, and the
detector with its decoding as one module (:class:`InferenceNetwork`). Nothing here knows about
Lightning, data, inference sources, tracking or export files: the LightningModules that train these
networks are in :mod:`centernet_lightning.tasks`."""

from .backbones import BACKBONES, MobileNetBackbone, ResNetBackbone, TimmBackbone, build_backbone
from .criterion import CenterNetLoss
from .detector import AUX_OUTPUTS, CenterNetDetector, Outputs, build_detector, decode_outputs
from .head_table import BOX_HEADS, HEAD_TYPES, build_heads
from .heads import Box2DHead, Head, HeatmapHead, OffsetHead, ReIDHead, SizeHead
from .hourglass import HourglassBackbone
from .inference_network import InferenceNetwork
from .info import format_info, model_info
from .keypoint_heads import KeypointHeatmapHead, KeypointOffsetsHead, KeypointPeakOffsetHead, decode_keypoints
from .layers import DeformConvBNReLU
from .necks import NECKS, BiFPNNeck, FPNNeck, IDANeck, IdentityNeck, SimpleNeck, build_neck
from .original_weights import load_original_weights
from .reid import FairMOTLoss, IdentityLoss, UncertaintyWeighting, fairmot_embedding_scale

__all__ = [
    "AUX_OUTPUTS",
    "BACKBONES",
    "BOX_HEADS",
    "HEAD_TYPES",
    "NECKS",
    "BiFPNNeck",
    "Box2DHead",
    "CenterNetDetector",
    "CenterNetLoss",
    "DeformConvBNReLU",
    "FPNNeck",
    "FairMOTLoss",
    "Head",
    "HeatmapHead",
    "HourglassBackbone",
    "IDANeck",
    "IdentityLoss",
    "IdentityNeck",
    "InferenceNetwork",
    "KeypointHeatmapHead",
    "KeypointOffsetsHead",
    "KeypointPeakOffsetHead",
    "MobileNetBackbone",
    "OffsetHead",
    "Outputs",
    "ReIDHead",
    "ResNetBackbone",
    "SimpleNeck",
    "SizeHead",
    "TimmBackbone",
    "UncertaintyWeighting",
    "build_backbone",
    "build_detector",
    "build_heads",
    "build_neck",
    "decode_keypoints",
    "decode_outputs",
    "fairmot_embedding_scale",
    "format_info",
    "load_original_weights",
    "model_info",
]
