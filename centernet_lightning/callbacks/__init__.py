"""Lightning callbacks: COCO and tracking evaluation of every validation, validation images in the
logger, writing the predictions of the datamodule-driven ``predict``, NHWC training."""

from .channels_last import ChannelsLast
from .coco import COCOEvaluation
from .images import ValidationImageLogger
from .mot import MOTEvaluation
from .predictions import PredictionWriter

__all__ = ["COCOEvaluation", "ChannelsLast", "MOTEvaluation", "PredictionWriter", "ValidationImageLogger"]
