"""The detector and its decoding as one module: what every inference backend runs and what export writes.

:class:`InferenceNetwork` runs the network, then the decoding of validation
(:func:`~centernet_lightning.models.detector.decode_outputs` without NMS or score threshold): sigmoid,
3x3 max-pool peaks, top-K, gather and box arithmetic. K is a constant, so the graph has no
data-dependent shapes (no NonZero, Loop or If) and every runtime gets fixed-size outputs:

==============  ==================  =============================================================
output          shape               meaning
==============  ==================  =============================================================
``boxes``       float32 [B, K, 4]   XYXY, pixels of the network input (the letterboxed image)
``scores``      float32 [B, K]      peak probabilities, sorted descending (0: padding)
``labels``      int64 [B, K]        class indices (-1: padding)
``embeddings``  float32 [B, K, D]   unit re-ID embeddings, for a detector with a ``reid`` head
``keypoints``   float32 [B, K, J, 3]  joints (x, y input pixels, score), for a detector with a
                                    ``keypoint_offsets`` head
==============  ==================  =============================================================

K = ``min(num_detections, num_classes * H/stride * W/stride)``. With ``decode=False`` the outputs
are the raw head maps instead (``heatmap`` logits, then ``box_2d`` or ``size``/``offset``, grid
cells; see :class:`~centernet_lightning.models.CenterNetDetector`).

The input is float32 [B, 3, H, W] RGB normalised with the ImageNet mean and std (what the ``val``
transform gives), or with ``raw_input`` uint8 [B, H, W, 3] RGB, normalised inside by
:func:`~centernet_lightning.preprocess.normalize`. The letterbox (resize and pad) stays outside.
``half`` stores the network in float16 and runs it in float16; the input and the decoding stay
float32 (meant for GPU runtimes).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ..preprocess import normalize
from .detector import CenterNetDetector, Outputs
from .head_table import FIELD_HEADS

__all__ = ["InferenceNetwork", "DETECTION_OUTPUTS", "INPUT_NAME"]

INPUT_NAME = "images"
# Output name in graphs -> key of the library's Detections.
DETECTION_OUTPUTS = {
    "boxes": "bboxes",
    "scores": "scores",
    "labels": "labels",
    "embeddings": "embeddings",
    "keypoints": "keypoints",
}


class InferenceNetwork(nn.Module):
    """Optional in-graph normalisation, the network, and its decoding to detections.

    Args:
        detector: the network (its heads decide the box decoding). It is used as is: pass a copy
            to keep the original out of eval mode and float16.
        num_detections: K, detections per image (capped at ``num_classes * h * w``).
        decode: decode to detections; False returns the raw head maps.
        raw_input: take uint8 [B, H, W, 3] RGB and normalise inside.
        half: float16 weights and activations (the input and the decoding stay float32).

    ``forward(images)`` returns one tensor per name of :attr:`output_names` (see the module docstring).
    """

    def __init__(
        self,
        detector: CenterNetDetector,
        num_detections: int = 100,
        decode: bool = True,
        raw_input: bool = False,
        half: bool = False,
    ) -> None:
        super().__init__()
        if num_detections < 1:
            raise ValueError(f"num_detections must be >= 1, got {num_detections}")
        self.detector = detector.half() if half else detector
        self.num_detections = num_detections
        self.decode_outputs = decode
        self.raw_input = raw_input
        self.half = half
        heads = detector.heads[-1]
        self.head_names: tuple[str, ...] = tuple(heads.keys())
        # Per-detection fields beyond boxes, scores and labels: {"embeddings": [D], "keypoints": [J, 3]}.
        self.field_shapes: dict[str, list[int]] = {
            field: shape for name in FIELD_HEADS if name in heads for field, shape in heads[name].field_shapes().items()
        }
        self.has_embeddings = "embeddings" in self.field_shapes
        detections = ("boxes", "scores", "labels", *self.field_shapes)
        self.output_names: tuple[str, ...] = detections if decode else self.head_names

    def forward(self, images: Tensor) -> tuple[Tensor, ...]:
        if self.raw_input:
            images = normalize(images)
        outputs = self.detector(images.to(torch.float16) if self.half else images)
        if not self.decode_outputs:
            return tuple(outputs[name].to(torch.float32) for name in self.head_names)
        return self.decode(outputs)

    def decode(self, outputs: Outputs) -> tuple[Tensor, ...]:
        """The decoded outputs (``boxes``, ``scores``, ``labels``, then the per-detection fields) of raw maps."""
        detections = self.detector.decode(outputs, self.num_detections)
        return tuple(detections[DETECTION_OUTPUTS[name]] for name in self.output_names)

    def input_size(self, imgsz: int | Sequence[int]) -> tuple[int, int]:
        """``(height, width)`` from one side or two; ValueError unless multiples of the size divisor."""
        height, width = (imgsz, imgsz) if isinstance(imgsz, int) else (int(imgsz[0]), int(imgsz[-1]))
        divisor = self.detector.size_divisor
        if height < divisor or width < divisor or height % divisor or width % divisor:
            raise ValueError(f"Input size {height}x{width}: both sides must be positive multiples of {divisor}")
        return height, width

    def example_input(self, imgsz: int | Sequence[int], batch: int = 1) -> Tensor:
        """A mid-grey input in the network's layout: float32 [B, 3, H, W] or uint8 [B, H, W, 3]."""
        height, width = self.input_size(imgsz)
        if self.raw_input:
            return torch.full((batch, height, width, 3), 128, dtype=torch.uint8)
        return torch.zeros(batch, 3, height, width)

    def output_shapes(self, imgsz: int | Sequence[int], batch: int | str = 1) -> dict[str, list[int | str]]:
        """The shape of every output for this input size, without running the network."""
        height, width = self.input_size(imgsz)
        stride = self.detector.stride
        grid = [height // stride, width // stride]
        heads = self.detector.heads[-1]
        if not self.decode_outputs:
            return {name: [batch, heads[name].out_channels, *grid] for name in self.head_names}
        k = min(self.num_detections, self.detector.num_classes * grid[0] * grid[1])
        shapes: dict[str, list[int | str]] = {"boxes": [batch, k, 4], "scores": [batch, k], "labels": [batch, k]}
        for field, shape in self.field_shapes.items():
            shapes[field] = [batch, k, *shape]
        return shapes

    def metadata(self, imgsz: int | Sequence[int], batch: int | None, **extra: Any) -> dict[str, Any]:
        """What a runtime needs to know about the graph (stored in the exported file); ``batch``
        None: free."""
        return {
            "input_size": list(self.input_size(imgsz)),
            "batch": batch,
            "raw_input": self.raw_input,
            "decode": self.decode_outputs,
            "max_det": self.num_detections,
            "half": self.half,
            "stride": self.detector.stride,
            "size_divisor": self.detector.size_divisor,
            "num_classes": self.detector.num_classes,
            "outputs": list(self.output_names),
            **extra,
        }
