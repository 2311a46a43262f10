"""CenterNet object detection and FairMOT tracking on PyTorch Lightning.

The public API: the LightningModules and loading them, the network and its parts, targets,
losses, decoding, datasets and the data module, COCO and MOT evaluation, the predictor and its
backends, export, the tracker, drawing. The layers and where each piece lives are described in
docs/architecture.md.

Names are imported on first use (PEP 562), so ``import centernet_lightning`` and the
``centernet`` command's ``--help`` do not pay for torch, Lightning and every model up front.
"""

from __future__ import annotations

import importlib
from importlib.metadata import PackageNotFoundError, version
from typing import Any

try:
    __version__ = version("centernet-lightning")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0+unknown"

# submodule (relative to this package): the public names it provides
_PUBLIC: dict[str, tuple[str, ...]] = {
    "structures": ("Batch", "Detections", "InferenceSpec", "KeypointLayout", "letterbox_inverse"),
    "targets": ("cornernet_radius", "render_heatmap", "render_heatmaps"),
    "losses": ("cornernet_focal_loss", "quality_focal_loss"),
    "decode": ("Peaks", "topk_peaks"),
    "visualize": ("draw_boxes", "draw_keypoints"),
    "models": (
        "BiFPNNeck",
        "Box2DHead",
        "CenterNetDetector",
        "CenterNetLoss",
        "FairMOTLoss",
        "FPNNeck",
        "HeatmapHead",
        "IDANeck",
        "InferenceNetwork",
        "KeypointHeatmapHead",
        "KeypointOffsetsHead",
        "KeypointPeakOffsetHead",
        "MobileNetBackbone",
        "OffsetHead",
        "ReIDHead",
        "ResNetBackbone",
        "SimpleNeck",
        "SizeHead",
        "TimmBackbone",
        "build_detector",
        "load_original_weights",
    ),
    "datasets": (
        "COCODataset",
        "CrowdHumanDataset",
        "InferenceDataset",
        "KITTITrackingDataset",
        "MOTDataset",
        "VOCDataset",
        "YOLODataset",
        "build_transforms",
        "collate_detection",
        "generate_synthetic_dataset",
    ),
    "datasets.datamodule": ("DetectionDataModule",),
    "tracking": ("Tracker",),
    "eval": ("COCOEvaluator", "KeypointEvaluator", "evaluate_mot"),
    "inference": ("NetworkBackend", "OnnxRuntimeBackend", "OpenVINOBackend", "Predictor", "open_source"),
    "tasks": ("CenterNet", "FairMOT", "build_model", "load_model", "save_checkpoint"),
    "callbacks": ("COCOEvaluation", "KeypointEvaluation", "MOTEvaluation", "PredictionWriter", "ValidationImageLogger"),
    "deploy": ("export_onnx", "export_openvino", "export_torchscript", "load_predictor"),
}
_MODULE_OF = {name: module for module, names in _PUBLIC.items() for name in names}

__all__ = sorted(_MODULE_OF, key=str.lower)


def __getattr__(name: str) -> Any:
    """Import a public name's submodule on first access and cache the name here."""
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{module}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
