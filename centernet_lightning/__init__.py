"""CenterNet object detection on PyTorch Lightning.

The public API: models and their parts, target rendering, losses, decoding, datasets and the
data module, COCO evaluation, drawing.
"""

from .callbacks import PredictionWriter, ValidationImageLogger
from .datasets import (
    COCODataset,
    CrowdHumanDataset,
    InferenceDataset,
    VOCDataset,
    YOLODataset,
    build_transforms,
    collate_detection,
    generate_synthetic_dataset,
    letterbox_inverse,
)
from .datasets.datamodule import DetectionDataModule
from .decode import decode_detections, topk_peaks
from .eval import COCOEvaluator
from .losses import cornernet_focal_loss, quality_focal_loss
from .models import (
    BiFPNNeck,
    Box2DHead,
    CenterNet,
    CenterNetOutput,
    FPNNeck,
    HeatmapHead,
    IDANeck,
    MobileNetBackbone,
    ResNetBackbone,
    SimpleNeck,
    TimmBackbone,
    build_centernet,
)
from .structures import Batch, Detections
from .targets import cornernet_radius, render_heatmap, render_heatmaps
from .visualize import draw_boxes

__version__ = "0.1.0"

__all__ = [
    "Batch",
    "BiFPNNeck",
    "Box2DHead",
    "COCODataset",
    "COCOEvaluator",
    "CenterNet",
    "CenterNetOutput",
    "CrowdHumanDataset",
    "Detections",
    "DetectionDataModule",
    "FPNNeck",
    "HeatmapHead",
    "IDANeck",
    "InferenceDataset",
    "MobileNetBackbone",
    "PredictionWriter",
    "ResNetBackbone",
    "SimpleNeck",
    "TimmBackbone",
    "VOCDataset",
    "ValidationImageLogger",
    "YOLODataset",
    "build_centernet",
    "build_transforms",
    "collate_detection",
    "cornernet_focal_loss",
    "cornernet_radius",
    "decode_detections",
    "draw_boxes",
    "generate_synthetic_dataset",
    "letterbox_inverse",
    "quality_focal_loss",
    "render_heatmap",
    "render_heatmaps",
    "topk_peaks",
]
