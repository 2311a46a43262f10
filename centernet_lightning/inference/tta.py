"""Test-time augmentation (TTA): the flip test and multi-scale testing, on normalised input tensors.

**Flip** (the original CenterNet's ``--flip_test``): the images and their left-right mirrors run as
one batch of 2B; each head merges its two outputs (:meth:`~centernet_lightning.models.heads.Head.merge_flipped`:
heatmap probabilities and box distances or sizes averaged with the mirror's flipped back, the
offset kept from the un-mirrored image alone) and the merged maps are decoded once.

**Multi-scale** (the original's ``--test_scales``): the input tensor is resized by each scale
(bilinear, sides rounded to multiples of the backbone's ``size_divisor``), run and decoded (with
the flip test when set), its boxes mapped back to the input's pixels by the exact per-axis factor,
and the detections of all scales merged by class-wise NMS, keeping the best ``num_detections``.

Differences from the original, on purpose:

- the original merges scales with Gaussian soft-NMS per class (``soft_nms(Nt=0.5, method=2)``,
  which lowers the scores of overlapping boxes instead of removing them) and keeps the 100 best
  over all classes; we use hard class-wise NMS (``torchvision.ops.batched_nms``, one fused call,
  IoU 0.5 by default as the original's ``Nt``) and keep the top K;
- the original resizes the original image and pads it anew at each scale; we resize the
  already letterboxed input (its padding included), so a batch of any images stays one tensor and
  boxes come back in the input's pixels, where the caller's letterbox inverse applies unchanged.

As in the original, a single scale (with or without flip) gets no merging NMS: the detections are
those of plain decoding of that scale (so ``scales=(1.0,)`` without flip *is* plain decoding).

The model's own optional NMS (its ``nms_iou``) is the
:class:`~centernet_lightning.inference.Predictor`'s last step, for every backend: with TTA it
applies to the merged detections, after the scales' NMS (before the one-pipeline redesign it ran
within each scale, before the merge; with ``nms_iou`` unset, the default, nothing changes).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..checks import check_bool, check_known_keys, check_range
from ..decode import apply_nms
from ..models.detector import DECODED_OUTPUTS, CenterNetDetector
from ..structures import Detections

__all__ = ["TTAConfig", "parse_tta", "detect_with_tta", "scaled_input_size"]

# The largest input scale: the original tested 0.5 to 1.5; at 4 a 512 px input already runs at
# 2048 px, 16 times the memory (the predictor refuses a batch that cannot fit).
MAX_SCALE = 4.0
_FORMS = (
    "true / 'flip' (flip test), a string of comma-separated items such as 'flip,0.75,1,1.25' or '0.75,1,1.25', "
    "or a dict {flip: bool, scales: [float, ...], nms_iou: float}; null or false for none"
)


@dataclass(frozen=True)
class TTAConfig:
    """What test-time augmentation to run.

    Args:
        flip: average each head's output with that of the mirrored image (flip test).
        scales: input scale factors in (0, 4], each run separately; ``(1.0,)`` is the input as it is.
        nms_iou: IoU in (0, 1] of the class-wise NMS that merges the detections of several scales (unused
            with one scale).
    """

    flip: bool = False
    scales: tuple[float, ...] = (1.0,)
    nms_iou: float = 0.5

    def __post_init__(self) -> None:
        check_bool("tta.flip", self.flip)
        if isinstance(self.scales, (str, bytes)) or not isinstance(self.scales, Sequence) or not self.scales:
            raise ValueError(
                f"tta.scales must be a non-empty list of numbers in (0, {MAX_SCALE:g}], got {self.scales!r}"
            )
        scales = [
            check_range(f"tta.scales[{index}]", scale, 0.0, MAX_SCALE, low_open=True)
            for index, scale in enumerate(self.scales)
        ]
        if len(set(scales)) != len(scales):
            raise ValueError(f"tta.scales lists a scale twice: {self.scales!r}")
        object.__setattr__(self, "scales", tuple(scales))
        object.__setattr__(self, "nms_iou", check_range("tta.nms_iou", self.nms_iou, 0.0, 1.0, low_open=True))

    @property
    def enabled(self) -> bool:
        """Whether this does anything beyond plain decoding."""
        return self.flip or self.scales != (1.0,)


def _parse_string(text: str) -> TTAConfig:
    flip = False
    scales: list[float] = []
    for item in (part.strip() for part in text.split(",")):
        if item.lower() == "flip":
            flip = True
            continue
        try:
            scales.append(float(item))
        except ValueError:
            raise ValueError(f"tta {text!r}: {item!r} is neither 'flip' nor a scale; valid forms: {_FORMS}") from None
    try:
        return TTAConfig(flip=flip, scales=tuple(scales) or (1.0,))
    except ValueError as error:  # the scale's index counts scales only: quote the text it came from
        raise ValueError(f"tta {text!r}: {error}") from None


def parse_tta(value: Any) -> TTAConfig | None:
    """A :class:`TTAConfig` from a config or command-line value; None means no TTA.

    ``None``/``False`` -> None; ``True`` or ``"flip"`` -> the flip test; ``"flip,0.75,1,1.25"`` ->
    flip at three scales; ``{flip: true, scales: [0.75, 1.0, 1.25], nms_iou: 0.5}`` (every key
    optional; flip defaults to false, scales to ``[1.0]``); a :class:`TTAConfig` as it is.
    ValueError naming the value for anything else.
    """
    if value is None or value is False:
        return None
    if value is True:
        return TTAConfig(flip=True)
    if isinstance(value, TTAConfig):
        return value
    if isinstance(value, str):
        return _parse_string(value)
    if isinstance(value, Mapping):
        check_known_keys("tta", value, ("flip", "scales", "nms_iou"))
        return TTAConfig(**value)
    raise ValueError(f"tta: cannot read {value!r} ({type(value).__name__}); valid forms: {_FORMS}")


def scaled_input_size(height: int, width: int, scale: float, size_divisor: int) -> tuple[int, int]:
    """``(height, width)`` times ``scale``, each rounded to the nearest multiple of ``size_divisor``
    (at least one multiple), so the backbone accepts it."""

    def side(length: int) -> int:
        return max(1, math.floor(length * scale / size_divisor + 0.5)) * size_divisor

    return side(height), side(width)


def _detect_one_scale(
    detector: CenterNetDetector,
    images: Tensor,
    flip: bool,
    num_detections: int,
    score_threshold: float,
    nms_iou: float | None,
) -> Detections:
    """Detections (XYXY pixels of ``images``) of one input size, with or without the flip test."""
    if not flip:
        outputs = detector(images)
        return detector.decode(outputs, num_detections, score_threshold, nms_iou, logits=True)
    batch_size = images.shape[0]
    outputs = detector(torch.cat((images, images.flip(-1))))  # one forward for both: [2B, ...]
    heads = detector.heads[-1]
    merged = {
        name: heads[name].merge_flipped(output[:batch_size], output[batch_size:])
        for name, output in outputs.items()
        if name in DECODED_OUTPUTS
    }
    # HeatmapHead.merge_flipped averages probabilities (sigmoid first), so they are not logits any more.
    return detector.decode(merged, num_detections, score_threshold, nms_iou, logits=False)


def _to_input_pixels(
    detections: Detections, scaled_size: tuple[int, int], input_size: tuple[int, int], stride: int
) -> Detections:
    """Map detections from a resized input back to the input: boxes (and joints) by the exact
    per-axis factor, peak cells to the input's output grid (the cell holding the mapped cell centre)."""
    (scaled_height, scaled_width), (height, width) = scaled_size, input_size
    factor_x, factor_y = width / scaled_width, height / scaled_height
    factors = detections["bboxes"].new_tensor([factor_x, factor_y, factor_x, factor_y])
    scaled_grid_width = scaled_width // stride
    grid_height, grid_width = height // stride, width // stride
    indices = detections["indices"]
    ys = torch.div(indices, scaled_grid_width, rounding_mode="floor")
    xs = indices - ys * scaled_grid_width
    # Cell centres in scaled pixels ((x + 0.5) * stride), mapped back and binned on the input's grid.
    input_xs = ((xs.to(torch.float32) + 0.5) * factor_x).floor().long().clamp(0, grid_width - 1)
    input_ys = ((ys.to(torch.float32) + 0.5) * factor_y).floor().long().clamp(0, grid_height - 1)
    mapped = {**detections, "bboxes": detections["bboxes"] * factors, "indices": input_ys * grid_width + input_xs}
    if "keypoints" in detections:  # [B, K, J, 3]: x, y scaled, the score kept
        mapped["keypoints"] = detections["keypoints"] * factors.new_tensor([factor_x, factor_y, 1.0])
    return mapped


def detect_with_tta(
    detector: CenterNetDetector,
    images: Tensor,
    config: TTAConfig | Any,
    num_detections: int = 100,
    score_threshold: float = 0.0,
    nms_iou: float | None = None,
) -> Detections:
    """Detect with test-time augmentation.

    Args:
        detector: the network (eval mode is the caller's business, as for plain inference).
        images: float32 [B, 3, H, W], normalised as the model expects (what the ``val`` transform
            gives), sides divisible by ``detector.size_divisor``.
        config: a :class:`TTAConfig` or any value :func:`parse_tta` reads.
        num_detections, score_threshold, nms_iou: the plain decoding settings, applied to each
            scale's decoding (``nms_iou``: an optional NMS within one scale; the predictor passes
            None and applies the model's NMS after the merge). The scales are then merged with
            ``config.nms_iou``.

    Returns:
        :class:`~centernet_lightning.structures.Detections` padded to K = ``num_detections`` (fewer
        when a grid holds fewer cells), boxes XYXY in pixels of ``images``, sorted by score.
        ``indices`` are cells of the output grid of ``images``: each detection's peak cell, or for
        another scale the cell under that peak's centre.
    """
    tta = parse_tta(config) or TTAConfig()
    height, width = images.shape[-2:]
    per_scale = []
    with torch.no_grad():
        for scale in tta.scales:  # a handful of scales, each one batched forward
            scaled_size = scaled_input_size(height, width, scale, detector.size_divisor)
            if scaled_size == (height, width):
                scaled = images
            else:
                scaled = F.interpolate(images, size=scaled_size, mode="bilinear", align_corners=False)
            detections = _detect_one_scale(detector, scaled, tta.flip, num_detections, score_threshold, nms_iou)
            if scaled_size != (height, width):
                detections = _to_input_pixels(detections, scaled_size, (height, width), detector.stride)
            per_scale.append(detections)
    if len(per_scale) == 1:
        return per_scale[0]
    concatenated = Detections(**{key: torch.cat([d[key] for d in per_scale], dim=1) for key in per_scale[0]})
    merged = apply_nms(concatenated, tta.nms_iou)  # suppressed -> padding, re-sorted by score
    return Detections(**{key: value[:, :num_detections] for key, value in merged.items()})
