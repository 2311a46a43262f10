"""The head types a config can name, and building a detector's heads from their specs.

Adding a head type is a ``Head`` subclass in its own module and one entry here. A head whose
output adds fields to every detection (re-ID embeddings, keypoints) has a static ``decode_fields``
and a ``field_shapes`` method; decoding and export pick those up from :data:`FIELD_HEADS`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from torch import nn

from ..structures import KeypointLayout
from .heads import Box2DHead, Head, HeatmapHead, OffsetHead, ReIDHead, SizeHead
from .keypoint_heads import KeypointHeatmapHead, KeypointOffsetsHead, KeypointPeakOffsetHead

__all__ = ["HEAD_TYPES", "BOX_HEADS", "FIELD_HEADS", "build_heads"]

HEAD_TYPES: dict[str, type[Head]] = {
    "heatmap": HeatmapHead,
    "box_2d": Box2DHead,
    "size": SizeHead,
    "offset": OffsetHead,
    "reid": ReIDHead,  # FairMOT's re-ID embeddings; trained by the FairMOT loss (models/reid.py)
    # the original's multi_pose heads (hps, hm_hp, hp_offset): joints of each object
    "keypoint_offsets": KeypointOffsetsHead,
    "keypoint_heatmap": KeypointHeatmapHead,
    "keypoint_peak_offset": KeypointPeakOffsetHead,
}
BOX_HEADS = ("box_2d", "size")  # a detector decodes its boxes from exactly one of these
# Heads that add per-detection fields (``decode_fields``), in the order their fields are output.
FIELD_HEADS = tuple(name for name, head_type in HEAD_TYPES.items() if hasattr(head_type, "decode_fields"))


def build_heads(
    specs: Mapping[str, Mapping[str, Any]],
    in_channels: int,
    num_classes: int,
    width: int,
    depth: int,
    keypoint_layout: KeypointLayout | None = None,
) -> nn.ModuleDict:
    """Build ``{name: head}`` from ``{name: {loss, weight, ...}}``; ``width``/``depth`` are the
    defaults of every head (a spec may set its own). Keypoint heads get ``num_keypoints`` and
    ``flip_pairs`` from ``keypoint_layout`` (the data's joints) unless their spec sets them.
    ValueError for an unknown name or setting."""
    heads = nn.ModuleDict()
    for name, spec in specs.items():
        if name not in HEAD_TYPES:
            raise ValueError(f"Unknown head {name!r}; valid names: {sorted(HEAD_TYPES)}")
        params = {"width": width, "depth": depth, **dict(spec or {})}
        if name == "heatmap":
            params["num_classes"] = num_classes
        keypoint_arguments: Sequence[str] = getattr(HEAD_TYPES[name], "keypoint_arguments", ())
        if keypoint_arguments and keypoint_layout is not None:
            from_layout = {
                "num_keypoints": keypoint_layout.num_keypoints,
                "flip_pairs": [list(pair) for pair in keypoint_layout.flip_pairs],
            }
            for argument in keypoint_arguments:
                params.setdefault(argument, from_layout[argument])
        elif keypoint_arguments and "num_keypoints" not in params:
            raise ValueError(
                f"heads.{name} needs the joints of the data: train on a keypoint dataset (data.dataset: "
                f"coco_keypoints or synthetic_keypoints), or set heads.{name}.num_keypoints"
            )
        try:
            heads[name] = HEAD_TYPES[name](in_channels, **params)
        except (TypeError, ValueError) as error:
            raise ValueError(f"heads.{name}: {error}") from None
    box_heads = [name for name in BOX_HEADS if name in heads]
    if "heatmap" not in heads or len(box_heads) != 1:
        raise ValueError(
            f"A detector needs a heatmap head and exactly one box head of {list(BOX_HEADS)}; got heads {list(heads)}"
        )
    if "offset" in heads and "size" not in heads:
        raise ValueError("The offset head refines centres for the size head; add a 'size' head or drop 'offset'")
    keypoint_heads = [name for name in heads if name.startswith("keypoint_")]
    if keypoint_heads and "keypoint_offsets" not in heads:
        raise ValueError(
            f"heads {keypoint_heads} refine the joints that keypoint_offsets regresses; add a 'keypoint_offsets' head"
        )
    if "keypoint_offsets" in heads and "keypoint_heatmap" in heads:
        joints = heads["keypoint_offsets"].num_keypoints, heads["keypoint_heatmap"].num_keypoints
        if joints[0] != joints[1]:
            raise ValueError(f"keypoint_offsets has {joints[0]} joints but keypoint_heatmap {joints[1]}")
    return heads
