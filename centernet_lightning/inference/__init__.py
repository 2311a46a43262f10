"""Inference on whole images and videos: sources, preprocessing as validation, the predict command.

``CenterNet.inference_detection2d`` and ``centernet predict`` are built from these pieces.
"""

from .predictor import detect_images, detect_source, empty_detections, resolve_device
from .sources import VIDEO_EXTENSIONS, Frame, ImageSource, open_source
from .spec import InferenceSpec

__all__ = [
    "Frame",
    "ImageSource",
    "InferenceSpec",
    "VIDEO_EXTENSIONS",
    "detect_images",
    "detect_source",
    "empty_detections",
    "open_source",
    "resolve_device",
]
