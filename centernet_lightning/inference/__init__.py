"""Inference on whole images and videos: sources, the one predictor, its backends, test-time
augmentation, tracking a source, and the files a run writes.

``centernet predict``, ``centernet track``, ``inference_detection2d``, ``inference_tracking2d``,
``benchmark`` and the evaluation steps of training all run a :class:`Predictor`.
"""

from .backends import BACKENDS, INT8_BACKENDS, NETWORK_BACKENDS, NetworkBackend, OnnxRuntimeBackend, OpenVINOBackend
from .outputs import PredictionFiles, TrackingRun, new_run_dir, run_folder, track_to_files
from .predictor import Predictor, empty_detections
from .sources import VIDEO_EXTENSIONS, Frame, ImageSource, open_source
from .tensorrt import TensorRTBackend
from .track import source_frame_rate, track_source
from .tta import TTAConfig, detect_with_tta, parse_tta

__all__ = [
    "BACKENDS",
    "INT8_BACKENDS",
    "NETWORK_BACKENDS",
    "VIDEO_EXTENSIONS",
    "Frame",
    "ImageSource",
    "NetworkBackend",
    "OnnxRuntimeBackend",
    "OpenVINOBackend",
    "PredictionFiles",
    "Predictor",
    "TTAConfig",
    "TensorRTBackend",
    "TrackingRun",
    "detect_with_tta",
    "empty_detections",
    "new_run_dir",
    "run_folder",
    "open_source",
    "parse_tta",
    "source_frame_rate",
    "track_source",
    "track_to_files",
]
