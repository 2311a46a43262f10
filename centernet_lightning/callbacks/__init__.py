"""Lightning callbacks: COCO (box and keypoint) and tracking evaluation of every validation, validation
images in the logger, writing the predictions of the datamodule-driven ``predict``, NHWC training, and what a
training run reports (a console line per validation, ``results.csv``, ``results.png``)."""

from .channels_last import ChannelsLast
from .coco import COCOEvaluation
from .images import ValidationImageLogger
from .keypoints import KeypointEvaluation
from .mot import MOTEvaluation
from .predictions import PredictionWriter
from .results import TrainingResults

__all__ = [
    "COCOEvaluation",
    "ChannelsLast",
    "KeypointEvaluation",
    "MOTEvaluation",
    "PredictionWriter",
    "TrainingResults",
    "ValidationImageLogger",
]
