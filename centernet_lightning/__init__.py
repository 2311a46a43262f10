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
)
from .datasets.datamodule import DetectionDataModule
from .decode import Peaks, topk_peaks
from .eval import COCOEvaluation, COCOEvaluator
from .losses import cornernet_focal_loss, quality_focal_loss
from .models import (
    BiFPNNeck,
    Box2DHead,
    CenterNet,
    CenterNetDetector,
    FPNNeck,
    HeatmapHead,
    IDANeck,
    MobileNetBackbone,
    OffsetHead,
    ResNetBackbone,
    SimpleNeck,
    SizeHead,
    TimmBackbone,
    build_centernet,
    build_detector,
    load_original_weights,
)
from .structures import Batch, Detections, letterbox_inverse
from .targets import cornernet_radius, render_heatmap, render_heatmaps
from .visualize import draw_boxes

__version__ = "0.1.0"

__all__ = [
    "Batch",
    "BiFPNNeck",
    "Box2DHead",
    "COCODataset",
    "COCOEvaluation",
    "COCOEvaluator",
    "CenterNet",
    "CenterNetDetector",
    "CrowdHumanDataset",
    "Detections",
    "DetectionDataModule",
    "FPNNeck",
    "HeatmapHead",
    "IDANeck",
    "OffsetHead",
    "Peaks",
    "InferenceDataset",
    "MobileNetBackbone",
    "PredictionWriter",
    "ResNetBackbone",
    "SimpleNeck",
    "SizeHead",
    "TimmBackbone",
    "VOCDataset",
    "ValidationImageLogger",
    "YOLODataset",
    "build_centernet",
    "build_detector",
    "build_transforms",
    "collate_detection",
    "cornernet_focal_loss",
    "cornernet_radius",
    "draw_boxes",
    "generate_synthetic_dataset",
    "letterbox_inverse",
    "load_original_weights",
    "quality_focal_loss",
    "render_heatmap",
    "render_heatmaps",
    "topk_peaks",
]
