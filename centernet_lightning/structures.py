"""The data structures that flow through the library, defined once.

Box format: everywhere inside the library a box is ``[x1, y1, x2, y2]`` (XYXY) in absolute
pixels of the image it belongs to, float32. Readers convert from COCO xywh, YOLO normalised
cxcywh and VOC 1-based coordinates exactly once; nothing downstream converts again.

A *sample* (one image, what a dataset returns) is a dict:

==================  ===========================================================================
``image``           uint8 HWC RGB array before transforms; float32 CHW tensor after
``bboxes``          float32 [N, 4] XYXY pixels of ``image``
``labels``          int64 [N], contiguous class indices in ``[0, num_classes)``
``ignore``          bool [N] (optional), regions that are neither object nor background
``track_ids``       int64 [N] (optional), identities across the frames of a sequence
``keypoints``       float32 [N, J, 3] (optional), each object's J joints ``(x, y, visibility)``:
                    pixels of ``image`` in the frame of the boxes (pixel i spans [i, i + 1)) and
                    COCO's visibility, 0 not labelled (x = y = 0), 1 labelled but hidden,
                    2 visible (see :class:`KeypointLayout`)
``image_id``        int, the source dataset's id (COCO image id; the index for other formats)
``image_path``      str
``original_size``   ``(height, width)`` of the image on disk
``letterbox``       float32 [3] ``(scale, pad_x, pad_y)``: ``image_px = orig_px * scale + pad``
==================  ===========================================================================

Per-object fields (``labels``, ``ignore``, ``track_ids``, ...) are arrays parallel to ``bboxes``,
declared once in :data:`OBJECT_FIELDS`: readers fill them, and sanitising, augmentation and
collation carry every declared field along, so adding one is one entry here and the reader
that fills it.

A *batch* (what :func:`~centernet_lightning.datasets.collate.collate_detection` returns and the
models consume) is the :class:`Batch` dict below. Objects are padded to the largest count in the
batch; ``mask`` marks the real ones.

*Detections* (what decoding and every inference backend return) are the :class:`Detections`
dict, padded to K entries per image; a padding entry has label :data:`PADDING_LABEL` and score 0.

:class:`InferenceSpec` is what inference needs to know about a trained model (input size,
letterbox, normalisation, label meaning); checkpoints and exported files carry it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, NamedTuple, NotRequired, TypedDict, TypeVar

import numpy as np
import torch
from torch import Tensor

__all__ = [
    "OBJECT_FIELDS",
    "ObjectField",
    "KeypointLayout",
    "flip_permutation",
    "Batch",
    "clip_boxes",
    "Detections",
    "PADDING_LABEL",
    "is_detection",
    "InferenceSpec",
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "PAD_POSITIONS",
    "DEFAULT_INPUT_SIZE",
    "sanitize_boxes",
    "to_numpy",
    "box_xywh_to_xyxy",
    "box_xyxy_to_xywh",
    "box_cxcywh_to_xyxy",
    "box_xyxy_to_cxcywh",
    "letterbox_inverse",
    "letterbox_inverse_points",
]

log = logging.getLogger(__name__)


class ObjectField(NamedTuple):
    """A per-object field: its dtype, the value of padding (and of objects a reader left unset), and
    how many dimensions each object's value has (0: one value per object, [N]; 2: [N, J, 3])."""

    dtype: torch.dtype
    pad: int | bool
    object_dims: int = 0


OBJECT_FIELDS: dict[str, ObjectField] = {
    "labels": ObjectField(torch.int64, 0),
    # crowd / difficult / ignore regions: no training target (background to the heatmap loss, as
    # in the original), crowd boxes in evaluation (neither a miss nor a false positive)
    "ignore": ObjectField(torch.bool, False),
    "track_ids": ObjectField(torch.int64, -1),  # -1: no identity
    # [N, J, 3] joints (x, y, visibility); padding and unlabelled joints are all zeros
    "keypoints": ObjectField(torch.float32, 0, object_dims=2),
}


class Batch(TypedDict, total=False):
    """A collated batch of B images holding up to N objects each.

    Keys: ``images`` float32 [B, 3, H, W]; ``bboxes`` float32 [B, N, 4] XYXY input pixels;
    ``mask`` bool [B, N] (True for real objects); every per-object field of :data:`OBJECT_FIELDS`
    that a sample holds, [B, N] padded with its ``pad`` value (``labels`` int64 always,
    ``ignore`` bool, ``track_ids`` int64; ``keypoints`` float32 [B, N, J, 3] input pixels and
    visibility); ``image_ids`` int64 [B];
    ``original_sizes`` int64 [B, 2] (h, w); ``letterbox`` float32 [B, 3] (scale, pad_x, pad_y);
    ``image_paths`` list[str] of length B.
    """

    images: Tensor
    bboxes: Tensor
    labels: Tensor
    ignore: Tensor
    track_ids: Tensor
    keypoints: Tensor
    mask: Tensor
    image_ids: Tensor
    original_sizes: Tensor
    letterbox: Tensor
    image_paths: list[str]


PADDING_LABEL = -1


class Detections(TypedDict):
    """Decoded detections for B images, padded to K per image, sorted by score.

    ``bboxes`` float32 [B, K, 4] XYXY pixels (of the network input, or of the original images
    once mapped back); ``labels`` int64 [B, K]; ``scores`` float32 [B, K]. A padding entry (no
    peak, under a score threshold, suppressed by NMS) has label :data:`PADDING_LABEL` and score
    0, so shapes stay fixed for export: :func:`is_detection` tells them apart; its other fields
    (box, embedding, joints) hold whatever decoding left there and mean nothing.

    Optional: ``indices`` int64 [B, K], the flat output-grid cell ``y * W + x`` of each peak
    (PyTorch decoding gives it; exported graphs do not); ``embeddings`` float32 [B, K, D], the
    unit re-ID embedding at each peak (models with a ``reid`` head, FairMOT); ``keypoints`` float32
    [B, K, J, 3], each detection's J joints ``(x, y, score)`` in the pixels of its box (models with
    a ``keypoint_offsets`` head; the score is the joint heatmap's probability there, or the
    detection's score without a ``keypoint_heatmap`` head).
    """

    bboxes: Tensor
    labels: Tensor
    scores: Tensor
    indices: NotRequired[Tensor]
    embeddings: NotRequired[Tensor]
    keypoints: NotRequired[Tensor]


def is_detection(labels: Tensor | np.ndarray) -> Tensor | np.ndarray:
    """True where an entry of padded detections is a real detection (its label is not padding)."""
    return labels != PADDING_LABEL


# Names that look like one side of a body (l_eye, LeftEye, eye_r), to warn when they form no pair.
_SIDED_NAME = re.compile(r"(^|[_\s-])[lr]([_\s-]|$)|left|right", re.IGNORECASE)


def flip_permutation(num_keypoints: int, flip_pairs: Sequence[Sequence[int]]) -> list[int]:
    """The joint order of a mirrored object, ``mirrored[j] = joints[permutation[j]]``, from
    ``(left, right)`` index pairs; ValueError for an index outside ``0..num_keypoints - 1``."""
    permutation = list(range(num_keypoints))
    for left, right in flip_pairs:
        if not (0 <= left < num_keypoints and 0 <= right < num_keypoints):
            raise ValueError(f"flip pair ({left}, {right}) names a joint outside 0..{num_keypoints - 1}")
        permutation[left], permutation[right] = right, left
    return permutation


@dataclass(frozen=True)
class KeypointLayout:
    """The joints of a keypoint dataset: their names, the skeleton drawn between them, and the
    left/right pairs that a mirror swaps.

    Attributes:
        names: one name per joint, in the order of the annotations (COCO's ``keypoints`` list).
        skeleton: 0-based ``(joint, joint)`` pairs joined by a line when drawn (COCO's ``skeleton``
            is 1-based: :meth:`from_coco_category` converts it).

    ``flip_pairs`` are derived from the names: a joint whose name has the word ``left`` pairs with
    the joint named the same with ``right`` (``left_eye`` / ``right_eye``, as COCO's 8 pairs).
    """

    names: tuple[str, ...]
    skeleton: tuple[tuple[int, int], ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "names", tuple(str(name) for name in self.names))
        object.__setattr__(self, "skeleton", tuple((int(a), int(b)) for a, b in self.skeleton))
        if not self.names:
            raise ValueError("A keypoint layout needs at least one joint name")
        if len(set(self.names)) != len(self.names):
            raise ValueError(f"Keypoint names must be unique, got {list(self.names)}")
        bad = [pair for pair in self.skeleton if not all(0 <= joint < len(self.names) for joint in pair)]
        if bad:
            raise ValueError(f"Skeleton pairs {bad} name joints outside 0..{len(self.names) - 1}")
        sided = [name for name in self.names if _SIDED_NAME.search(name)]
        if sided and not self.flip_pairs:
            log.warning(
                "Joints %s look left/right, but no pair of names differs only by the word left/right (as left_eye, "
                "right_eye): mirrors will not swap them; rename them so that they pair",
                sided[:4],
            )

    @property
    def num_keypoints(self) -> int:
        return len(self.names)

    @property
    def flip_pairs(self) -> tuple[tuple[int, int], ...]:
        """``(left joint, right joint)`` index pairs, by name (words ``left``/``right``, any case)."""
        index = {name.lower(): position for position, name in enumerate(self.names)}
        pairs = []
        for position, name in enumerate(self.names):
            words = re.split(r"([_\s-])", name.lower())
            if "left" not in words:
                continue
            mirrored = "".join("right" if word == "left" else word for word in words)
            if mirrored in index:
                pairs.append((position, index[mirrored]))
        return tuple(pairs)

    def flip_permutation(self) -> list[int]:
        """The joint order of a mirrored object: ``mirrored[j] = joints[permutation[j]]``."""
        return flip_permutation(self.num_keypoints, self.flip_pairs)

    @classmethod
    def from_coco_category(cls, category: Mapping[str, Any]) -> KeypointLayout:
        """The layout of a COCO keypoints category (``keypoints`` names, 1-based ``skeleton``)."""
        skeleton = [(int(a) - 1, int(b) - 1) for a, b in category.get("skeleton") or []]
        return cls(tuple(category["keypoints"]), tuple(skeleton))

    def to_dict(self) -> dict[str, Any]:
        return {"names": list(self.names), "skeleton": [list(pair) for pair in self.skeleton]}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> KeypointLayout:
        return cls(tuple(values["names"]), tuple(tuple(pair) for pair in values.get("skeleton") or ()))


IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
PAD_POSITIONS = ("center", "top_left")
DEFAULT_INPUT_SIZE = 512


@dataclass
class InferenceSpec:
    """The preprocessing and the label meaning of a trained model.

    Checkpoints keep it under ``"inference"`` and exported files in their metadata, so that
    ``centernet predict`` needs no config.

    Attributes:
        input_size: side of the square network input in pixels (the letterbox target).
        pad_position: ``center`` or ``top_left`` placement of the image in the letterbox.
        mean, std: RGB normalisation of ``pixel / 255`` (ImageNet's, the only one supported).
        class_names: the name of each contiguous label, or None.
        category_ids: the dataset's id of each contiguous label (COCO ids for COCO-format data,
            the label itself for other formats), or None when unknown.
        keypoints: the joints a keypoint model predicts (:meth:`KeypointLayout.to_dict`), or None.
    """

    input_size: int = DEFAULT_INPUT_SIZE
    pad_position: str = "center"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    class_names: list[str] | None = None
    category_ids: list[int] | None = None
    keypoints: dict[str, Any] | None = None

    CHECKPOINT_KEY = "inference"  # not a field: no annotation

    def __post_init__(self) -> None:
        if self.pad_position not in PAD_POSITIONS:
            raise ValueError(f"pad_position must be one of {PAD_POSITIONS}, got {self.pad_position!r}")
        self.mean, self.std = tuple(float(v) for v in self.mean), tuple(float(v) for v in self.std)
        if self.mean != IMAGENET_MEAN or self.std != IMAGENET_STD:
            raise ValueError(
                f"The model was trained with mean {self.mean} / std {self.std}; this version preprocesses with "
                f"ImageNet's {IMAGENET_MEAN} / {IMAGENET_STD} only"
            )
        if self.category_ids is not None and self.class_names is not None:
            if len(self.category_ids) != len(self.class_names):
                raise ValueError(f"{len(self.category_ids)} category_ids for {len(self.class_names)} class_names")

    @property
    def keypoint_layout(self) -> KeypointLayout | None:
        return KeypointLayout.from_dict(self.keypoints) if self.keypoints else None

    def label_to_category_id(self, num_classes: int) -> list[int]:
        """The category id of each label, the label itself when none are stored."""
        return list(self.category_ids) if self.category_ids is not None else list(range(num_classes))

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        return {**values, "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> InferenceSpec:
        """The spec of a stored dict; keys it does not know (an exported file's other metadata) are ignored."""
        return cls(**{name: values[name] for name in cls.__dataclass_fields__ if name in values})

    @classmethod
    def from_checkpoint(cls, checkpoint: Mapping[str, Any]) -> InferenceSpec:
        """The spec of a checkpoint dict: its ``inference`` entry, else what the data module and
        model hyperparameters say (checkpoints written before the entry existed), else the defaults."""
        stored = checkpoint.get(cls.CHECKPOINT_KEY)
        if isinstance(stored, Mapping):
            return cls.from_dict(stored)
        data = checkpoint.get("datamodule_hyper_parameters") or {}
        hparams = checkpoint.get("hyper_parameters") or {}
        input_size = data.get("input_size") if isinstance(data, Mapping) else None
        if not input_size:
            log.warning("The checkpoint stores no input size; using %d", DEFAULT_INPUT_SIZE)
        return cls(input_size=int(input_size or DEFAULT_INPUT_SIZE), class_names=hparams.get("class_names"))


def sanitize_boxes(boxes: np.ndarray, heights: np.ndarray, widths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Clip XYXY boxes to their images and flag the degenerate ones: the one sanitise step.

    :class:`~centernet_lightning.datasets.transforms.DetectionTransform` runs it once on every
    sample, after augmentation and before the letterbox; targets trust its output.

    Args:
        boxes: float [N, 4] XYXY pixels.
        heights, widths: [N] (or scalars) size of the image each box belongs to, in pixels;
            ``inf`` where unknown (then only the lower bound 0 is applied).

    Returns:
        ``(clipped, keep)``: float32 [N, 4] clipped boxes and bool [N], False for boxes that are
        not finite or have zero/negative width or height after clipping.
    """
    boxes = np.asarray(boxes, dtype=np.float32).reshape(-1, 4)
    upper = np.stack(np.broadcast_arrays(widths, heights, widths, heights), axis=-1).astype(np.float32)
    clipped = np.clip(boxes, 0.0, upper)
    finite = np.isfinite(boxes).all(axis=1)
    keep = finite & (clipped[:, 2] > clipped[:, 0]) & (clipped[:, 3] > clipped[:, 1])
    return clipped, keep


def to_numpy(values: Any, dtype: type | np.dtype) -> np.ndarray:
    """A tensor (any device and dtype, bfloat16 included) or an array-like as a numpy array of ``dtype``."""
    if isinstance(values, Tensor):
        values = values.detach().cpu()
        if values.dtype in (torch.bfloat16, torch.float16):  # numpy has no bfloat16
            values = values.float()
        values = values.numpy()
    return np.asarray(values, dtype=dtype)


BoxArray = TypeVar("BoxArray", Tensor, np.ndarray)


def _concat(first: BoxArray, second: BoxArray) -> BoxArray:
    if isinstance(first, Tensor):
        return torch.cat((first, second), dim=-1)
    return np.concatenate((first, second), axis=-1)


def box_xywh_to_xyxy(boxes: BoxArray) -> BoxArray:
    """COCO ``[x, y, w, h]`` to ``[x1, y1, x2, y2]``; torch tensors or numpy arrays [..., 4]."""
    return _concat(boxes[..., :2], boxes[..., :2] + boxes[..., 2:])


def box_xyxy_to_xywh(boxes: BoxArray) -> BoxArray:
    """``[x1, y1, x2, y2]`` to COCO ``[x, y, w, h]``; torch tensors or numpy arrays [..., 4]."""
    return _concat(boxes[..., :2], boxes[..., 2:] - boxes[..., :2])


def box_cxcywh_to_xyxy(boxes: BoxArray) -> BoxArray:
    """``[cx, cy, w, h]`` (YOLO, once scaled) to ``[x1, y1, x2, y2]``; tensors or numpy arrays."""
    half = boxes[..., 2:] / 2
    return _concat(boxes[..., :2] - half, boxes[..., :2] + half)


def box_xyxy_to_cxcywh(boxes: BoxArray) -> BoxArray:
    """``[x1, y1, x2, y2]`` to ``[cx, cy, w, h]``; torch tensors or numpy arrays [..., 4]."""
    return _concat((boxes[..., :2] + boxes[..., 2:]) / 2, boxes[..., 2:] - boxes[..., :2])


def letterbox_inverse(bboxes: Tensor, letterbox: Tensor, original_sizes: Tensor | None = None) -> Tensor:
    """Map XYXY boxes from transformed-image pixels back to original-image pixels.

    Args:
        bboxes: [B, K, 4] (or [K, 4]) XYXY in the transformed (input) image.
        letterbox: [B, 3] (or [3]) ``(scale, pad_x, pad_y)`` from the sample/batch.
        original_sizes: optional [B, 2] (or [2]) ``(h, w)``; when given, boxes are clipped to it.

    Returns:
        Boxes of the same shape in original pixels: ``(box - pad) / scale``.
    """
    letterbox = letterbox.to(bboxes.dtype)
    if bboxes.ndim == letterbox.ndim + 1:  # one letterbox per image for its K boxes
        letterbox = letterbox.unsqueeze(-2)
    scale, pad_x, pad_y = letterbox.unbind(-1)
    pad = torch.stack((pad_x, pad_y, pad_x, pad_y), dim=-1)
    boxes = (bboxes - pad) / scale.unsqueeze(-1)
    return boxes if original_sizes is None else clip_boxes(boxes, original_sizes)


def letterbox_inverse_points(points: Tensor, letterbox: Tensor, original_sizes: Tensor | None = None) -> Tensor:
    """Map ``(x, y, ...)`` points from transformed-image pixels back to original-image pixels.

    Args:
        points: [B, K, J, C] (C >= 2: x, y, then values kept as they are, such as a score).
        letterbox: [B, 3] ``(scale, pad_x, pad_y)``.
        original_sizes: optional [B, 2] ``(h, w)``; when given, x and y are clipped to the image.
    """
    letterbox = letterbox.to(points.dtype).view(-1, 1, 1, 3)
    scale, pad = letterbox[..., :1], letterbox[..., 1:]
    xy = (points[..., :2] - pad) / scale
    if original_sizes is not None:
        sizes = original_sizes.to(points.dtype).view(-1, 1, 1, 2)
        xy = torch.minimum(xy.clamp(min=0), sizes.flip(-1))
    return torch.cat((xy, points[..., 2:]), dim=-1)


def clip_boxes(bboxes: Tensor, image_sizes: Tensor) -> Tensor:
    """XYXY boxes [B, K, 4] (or [K, 4]) clipped to their images, ``image_sizes`` [B, 2] (or [2]) ``(h, w)``."""
    sizes = image_sizes.to(bboxes.dtype)
    if bboxes.ndim == sizes.ndim + 1:
        sizes = sizes.unsqueeze(-2)
    upper = torch.stack((sizes[..., 1], sizes[..., 0], sizes[..., 1], sizes[..., 0]), dim=-1)
    return torch.minimum(bboxes.clamp(min=0), upper)
