"""The CenterNet network as a plain ``nn.Module``: backbone -> neck -> named heads (one set per stack).

It needs no Trainer: trace it, export it, or reuse it in another LightningModule (tracking adds a
re-ID head to the same parts). Its losses are :mod:`~centernet_lightning.models.criterion`'s;
decoding composes the heads' own decoders (:func:`decode_outputs`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ..decode import apply_nms, threshold_detections
from ..structures import Detections, KeypointLayout
from .backbones import build_backbone
from .head_table import FIELD_HEADS, HEAD_TYPES, build_heads
from .heads import Box2DHead, HeatmapHead, OffsetHead, SizeHead
from .necks import build_neck

__all__ = ["CenterNetDetector", "build_detector", "decode_outputs", "Outputs", "AUX_OUTPUTS", "DECODED_OUTPUTS"]

# The raw outputs of one forward: {head name: map}, and for a stacked model in training the earlier
# stacks' dicts under AUX_OUTPUTS (earliest first), as DETR's ``aux_outputs``.
Outputs = dict[str, Any]
AUX_OUTPUTS = "aux_outputs"
# The head outputs decoding reads (every head type's: embeddings and joints are gathered at the peaks found).
DECODED_OUTPUTS = tuple(HEAD_TYPES)

FUSION_STRIDES = [4, 8, 16, 32]


class CenterNetDetector(nn.Module):
    """Backbone, neck and heads of CenterNet.

    Args:
        backbone: returns a feature map, a list of them (fusion necks) or, for stacked models
            (Hourglass), one stride-4 map per stack; ``num_stacks`` tells which.
        neck: fuses the backbone's maps into one stride-``neck.stride`` map (or passes a stacked
            model's maps through).
        heads: one ``{name: Head}`` dict per stack (see ``models/heads.py``).

    ``forward(images)`` with images float32 [B, 3, H, W] (normalised RGB, sides divisible by 32)
    returns one dict of raw outputs on the grid of H/stride x W/stride cells:

    ===============  ================  =======================================================
    key              shape             meaning
    ===============  ================  =======================================================
    ``heatmap``      [B, C, h, w]      class logits (sigmoid gives the peak probability)
    ``box_2d``       [B, 4, h, w]      left/top/right/bottom distances from the cell centre, cells
    ``size``         [B, 2, h, w]      box width and height, cells
    ``offset``       [B, 2, h, w]      sub-cell centre offset (x, y), cells
    ``reid``         [B, D, h, w]      raw re-ID embeddings (FairMOT)
    ``keypoint_*``   see keypoint_heads  joint displacements [B, 2J], joint heatmaps [B, J] (logits),
                                       joint peak offsets [B, 2] (keypoint models)
    ``aux_outputs``  list of dicts     stacked models in training: the earlier stacks' outputs
    ===============  ================  =======================================================

    Only the configured heads appear. The heads of the last stack give the top-level keys; a
    stacked model (Hourglass-104) in training mode adds ``aux_outputs`` (intermediate
    supervision), and in eval mode runs only the last stack's heads.
    """

    def __init__(self, backbone: nn.Module, neck: nn.Module, heads: Sequence[nn.ModuleDict]) -> None:
        super().__init__()
        self.backbone = backbone
        self.neck = neck
        self.heads = nn.ModuleList(heads)
        self.num_stacks = len(self.heads)
        self.stride: int = neck.stride
        self.size_divisor: int = getattr(backbone, "size_divisor", 32)  # input sides must be multiples
        self.num_classes: int = self.heads[-1]["heatmap"].num_classes

    def forward(self, images: Tensor) -> Outputs:
        height, width = images.shape[-2:]
        if not torch.jit.is_tracing() and (height % self.size_divisor or width % self.size_divisor):
            raise ValueError(
                f"Input size {(height, width)}: image sides must be divisible by {self.size_divisor} for this "
                "backbone (the 'val' transform pads to a multiple of 32; Hourglass needs 128)"
            )
        features = self.neck(self.backbone(images))
        stacks = list(features) if isinstance(features, (list, tuple)) else [features]
        if len(stacks) != self.num_stacks:
            raise ValueError(f"The backbone gave {len(stacks)} feature maps for a {self.num_stacks}-stack detector")
        grid = stacks[-1].shape[-2:]
        if grid[0] * self.stride != images.shape[-2] or grid[1] * self.stride != images.shape[-1]:
            raise ValueError(
                f"Input size {tuple(images.shape[-2:])} gives a {tuple(grid)} output grid, not 1/{self.stride} "
                f"of it: image sides must be divisible by {self.size_divisor}"
            )
        outputs = {name: head(stacks[-1]) for name, head in self.heads[-1].items()}
        if self.training and self.num_stacks > 1:
            outputs[AUX_OUTPUTS] = [
                {name: head(stack) for name, head in heads.items()} for heads, stack in zip(self.heads, stacks[:-1])
            ]
        return outputs

    def decode(
        self,
        outputs: Outputs,
        num_detections: int = 100,
        score_threshold: float = 0.0,
        nms_iou: float | None = None,
        logits: bool = True,
    ) -> Detections:
        """Detections of the outputs (the last stack's); see :func:`decode_outputs`."""
        return decode_outputs(outputs, self.stride, num_detections, score_threshold, nms_iou, logits)


def decode_outputs(
    outputs: Outputs,
    stride: int,
    num_detections: int = 100,
    score_threshold: float = 0.0,
    nms_iou: float | None = None,
    logits: bool = True,
) -> Detections:
    """Detections (XYXY input pixels, K = ``num_detections`` per image) of one stack's outputs.

    The heatmap gives the peaks; the box comes from ``box_2d``, or from ``size`` around the
    ``offset``-refined centre (the cell centre without an offset head, as the original). Heads
    that add per-detection fields (``head_table.FIELD_HEADS``) decode them at the peaks: a ``reid``
    output gives unit ``embeddings`` [B, K, D], a ``keypoint_offsets`` output ``keypoints``
    [B, K, J, 3] (x, y input pixels, score).
    ``logits``: the heatmap holds logits (the raw outputs) rather than probabilities. Entries
    under ``score_threshold``, scored 0 or suppressed by the optional class-wise NMS (``nms_iou``)
    are padding. Plain tensor ops only (NMS aside), so that it exports.
    """
    peaks = HeatmapHead.decode(outputs["heatmap"], num_detections, logits=logits)
    if "box_2d" in outputs:
        boxes = Box2DHead.decode_boxes(outputs["box_2d"], peaks)
    else:
        if "offset" in outputs:
            centers = OffsetHead.decode_centers(outputs["offset"], peaks)
        else:
            centers = torch.stack((peaks.xs, peaks.ys), dim=-1).to(torch.float32) + 0.5
        boxes = SizeHead.decode_boxes(outputs["size"], peaks, centers)
    detections = Detections(bboxes=boxes * stride, labels=peaks.labels, scores=peaks.scores, indices=peaks.indices)
    for name in FIELD_HEADS:
        if name in outputs:
            detections.update(HEAD_TYPES[name].decode_fields(outputs, peaks, boxes, stride, logits))
    detections = threshold_detections(detections, score_threshold)
    return apply_nms(detections, nms_iou) if nms_iou is not None else detections


def _as_spec(spec: str | Mapping[str, Any] | None, kind: str) -> tuple[str, dict[str, Any]]:
    if spec is None:
        raise ValueError(f"{kind} must be a name or a dict with a 'name' key")
    if isinstance(spec, str):
        return spec, {}
    params = dict(spec)
    if "name" not in params:
        raise ValueError(f"{kind} dict needs a 'name' key, got keys {sorted(params)}")
    return params.pop("name"), params


def build_detector(
    num_classes: int,
    backbone: str | Mapping[str, Any] = "resnet18",
    neck: str | Mapping[str, Any] = "fpn",
    heads: Mapping[str, Mapping[str, Any]] | None = None,
    head_width: int = 64,
    head_depth: int = 1,
    keypoint_layout: KeypointLayout | None = None,
) -> CenterNetDetector:
    """Build a detector from names and settings.

    Args:
        backbone: a backbone name (``resnet18``, ``timm:dla34``, ``hourglass104``, ...) or
            ``{name, **arguments}``; see :func:`~centernet_lightning.models.build_backbone`.
        neck: ``simple``, ``fpn``, ``bifpn``, ``ida`` or ``identity`` (stacked backbones), or
            ``{name, **arguments}``.
        heads: ``{head name: {loss, weight, ...}}``; default ``heatmap`` + ``box_2d``. A missing
            ``heatmap`` entry is added with its defaults.
        head_width, head_depth: default hidden width and 3x3 conv count of every head.
        keypoint_layout: the data's joints, for keypoint heads (``num_keypoints``, ``flip_pairs``).
    """
    if num_classes < 1:
        raise ValueError(f"num_classes must be >= 1, got {num_classes}")
    neck_name, neck_params = _as_spec(neck, "neck")
    backbone_name, backbone_params = _as_spec(backbone, "backbone")
    fusion = neck_name not in ("simple", "identity")
    if neck_name != "identity":
        # Fusion necks need every stage; the simple neck only the last.
        backbone_params.setdefault("return_features", fusion)
    backbone_module = build_backbone(backbone_name, **backbone_params)
    if neck_name != "identity":
        expected = FUSION_STRIDES if backbone_params["return_features"] else [32]
        if list(backbone_module.strides)[-len(expected) :] != expected:
            raise ValueError(
                f"Backbone {backbone_name!r} gives strides {backbone_module.strides}; the {neck_name} neck needs "
                f"{expected} (a dilated or stride-16 model does not fit)"
            )
    neck_module = build_neck(neck_name, backbone_module.out_channels, **neck_params)
    specs = {"heatmap": {}, **dict(heads or {"box_2d": {}})}
    num_stacks = int(getattr(backbone_module, "num_stacks", 1))
    head_sets = [
        build_heads(specs, neck_module.out_channels, num_classes, head_width, head_depth, keypoint_layout)
        for _ in range(num_stacks)
    ]
    return CenterNetDetector(backbone_module, neck_module, head_sets)
