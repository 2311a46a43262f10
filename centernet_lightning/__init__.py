"""CenterNet object detection and FairMOT tracking on PyTorch Lightning.

The public API: models and their parts, target rendering, losses, decoding, datasets and the
data module, COCO and MOT evaluation, inference, the tracker, drawing.
"""

from .callbacks import PredictionWriter, ValidationImageLogger
from .datasets import (
    COCODataset,
    CrowdHumanDataset,
    InferenceDataset,
    KITTITrackingDataset,
    MOTDataset,
    VOCDataset,
    YOLODataset,
    build_transforms,
    collate_detection,
    generate_synthetic_dataset,
)
from .datasets.datamodule import DetectionDataModule
from .decode import Peaks, topk_peaks
from .eval import COCOEvaluation, COCOEvaluator, MOTEvaluation, evaluate_mot
from .inference import InferenceSpec, open_source
from .losses import cornernet_focal_loss, quality_focal_loss
from .models import (
    BiFPNNeck,
    Box2DHead,
    CenterNet,
    CenterNetDetector,
    FairMOT,
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
    load_centernet,
    load_original_weights,
)
from .structures import Batch, Detections, letterbox_inverse
from .targets import cornernet_radius, render_heatmap, render_heatmaps
from .tracking import Tracker
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
    "FairMOT",
    "InferenceSpec",
    "KITTITrackingDataset",
    "MOTDataset",
    "MOTEvaluation",
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
    "Tracker",
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
    "evaluate_mot",
    "generate_synthetic_dataset",
    "letterbox_inverse",
    "load_centernet",
    "load_original_weights",
    "open_source",
    "quality_focal_loss",
    "render_heatmap",
    "render_heatmaps",
    "topk_peaks",
]
