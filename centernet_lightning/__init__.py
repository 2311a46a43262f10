"""CenterNet object detection and FairMOT tracking on PyTorch Lightning.

The public API: the LightningModules and loading them, the network and its parts, targets,
losses, decoding, datasets and the data module, COCO and MOT evaluation, the predictor and its
backends, export, the tracker, drawing. The layers and where each piece lives are described in
docs/architecture.md.
"""

from .callbacks import COCOEvaluation, MOTEvaluation, PredictionWriter, ValidationImageLogger
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
from .deploy import export_onnx, export_torchscript, load_predictor
from .eval import COCOEvaluator, evaluate_mot
from .inference import NetworkBackend, OnnxRuntimeBackend, Predictor, open_source
from .losses import cornernet_focal_loss, quality_focal_loss
from .models import (
    BiFPNNeck,
    Box2DHead,
    CenterNetDetector,
    CenterNetLoss,
    FairMOTLoss,
    FPNNeck,
    HeatmapHead,
    IDANeck,
    InferenceNetwork,
    MobileNetBackbone,
    OffsetHead,
    ReIDHead,
    ResNetBackbone,
    SimpleNeck,
    SizeHead,
    TimmBackbone,
    build_detector,
    load_original_weights,
)
from .structures import Batch, Detections, InferenceSpec, letterbox_inverse
from .targets import cornernet_radius, render_heatmap, render_heatmaps
from .tasks import CenterNet, FairMOT, build_model, load_model, save_checkpoint
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
    "CenterNetLoss",
    "CrowdHumanDataset",
    "Detections",
    "DetectionDataModule",
    "FairMOT",
    "FairMOTLoss",
    "FPNNeck",
    "HeatmapHead",
    "IDANeck",
    "InferenceDataset",
    "InferenceNetwork",
    "InferenceSpec",
    "KITTITrackingDataset",
    "MOTDataset",
    "MOTEvaluation",
    "MobileNetBackbone",
    "NetworkBackend",
    "OffsetHead",
    "OnnxRuntimeBackend",
    "Peaks",
    "PredictionWriter",
    "Predictor",
    "ReIDHead",
    "ResNetBackbone",
    "SimpleNeck",
    "SizeHead",
    "TimmBackbone",
    "Tracker",
    "VOCDataset",
    "ValidationImageLogger",
    "YOLODataset",
    "build_detector",
    "build_model",
    "build_transforms",
    "collate_detection",
    "cornernet_focal_loss",
    "cornernet_radius",
    "draw_boxes",
    "evaluate_mot",
    "export_onnx",
    "export_torchscript",
    "generate_synthetic_dataset",
    "letterbox_inverse",
    "load_model",
    "load_original_weights",
    "load_predictor",
    "open_source",
    "quality_focal_loss",
    "render_heatmap",
    "render_heatmaps",
    "save_checkpoint",
    "topk_peaks",
]
