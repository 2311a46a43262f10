"""Dataset readers (COCO, COCO keypoints, VOC, YOLO, CrowdHuman, image folders; MOTChallenge and
KITTI tracking sequences), the synthetic shapes dataset and synthetic tracking sequences,
transforms and the collate function. Every reader returns the sample dict of
:mod:`centernet_lightning.structures`; :func:`collate_detection` makes the one ``Batch``."""

from centernet_lightning.datasets.coco import COCODataset
from centernet_lightning.datasets.coco_keypoints import COCO_PERSON_KEYPOINTS, COCOKeypointsDataset
from centernet_lightning.datasets.collate import collate_detection
from centernet_lightning.datasets.common import DetectionDataset, ImageRecord
from centernet_lightning.datasets.crowdhuman import CrowdHumanDataset
from centernet_lightning.datasets.inference import InferenceDataset
from centernet_lightning.datasets.kitti_tracking import KITTITrackingDataset
from centernet_lightning.datasets.mot import MOT_CLASSES, MOTDataset
from centernet_lightning.datasets.synthetic import SHAPE_NAMES, generate_synthetic_dataset
from centernet_lightning.datasets.synthetic_keypoints import generate_synthetic_keypoints
from centernet_lightning.datasets.synthetic_tracking import generate_tracking_sequences
from centernet_lightning.datasets.tracking import FrameRecord, SequenceInfo, frames_by_sequence, with_box_identities
from centernet_lightning.datasets.transforms import (
    PRESETS,
    DetectionTransform,
    build_albumentation,
    build_transforms,
)
from centernet_lightning.datasets.voc import VOC_CLASSES, VOCDataset
from centernet_lightning.datasets.yolo import YOLODataset
from centernet_lightning.image_io import read_image

__all__ = [
    "COCO_PERSON_KEYPOINTS",
    "COCODataset",
    "COCOKeypointsDataset",
    "CrowdHumanDataset",
    "DetectionDataset",
    "DetectionTransform",
    "FrameRecord",
    "KITTITrackingDataset",
    "MOTDataset",
    "MOT_CLASSES",
    "SequenceInfo",
    "ImageRecord",
    "InferenceDataset",
    "PRESETS",
    "SHAPE_NAMES",
    "VOCDataset",
    "VOC_CLASSES",
    "YOLODataset",
    "build_albumentation",
    "build_transforms",
    "collate_detection",
    "frames_by_sequence",
    "generate_synthetic_dataset",
    "generate_synthetic_keypoints",
    "generate_tracking_sequences",
    "read_image",
    "with_box_identities",
]
