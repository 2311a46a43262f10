"""Load the released weights of the original CenterNet (xingyizhou/CenterNet) into our models.

The original ``ctdet`` checkpoints (``ctdet_coco_res18.pth``, ``ctdet_coco_resdcn18.pth``,
``ctdet_coco_resdcn101.pth``, ``ctdet_coco_dla_2x.pth``, ``ctdet_coco_hg.pth``, ...) and
``multi_pose`` checkpoints (``multi_pose_dla_3x.pth``, ``multi_pose_hg_3x.pth``, ...) are
``{'epoch': int, 'state_dict': {...}}`` files, keys sometimes prefixed ``module.``. Their heads
become ours, and after loading our raw outputs equal the original's:

==============  ========================  ==================================================
original        ours                      output
==============  ========================  ==================================================
``hm``          ``heatmap``               class logits
``wh``          ``size``                  (w, h) in grid cells
``reg``         ``offset``                (x, y) sub-cell offset of the centre
``hps``         ``keypoint_offsets``      per joint (x, y) from the integer centre cell
``hm_hp``       ``keypoint_heatmap``      joint logits
``hp_offset``   ``keypoint_peak_offset``  (x, y) sub-cell offset of the joint peaks
==============  ========================  ==================================================

The model must follow the detector's state-dict layout, possibly under a prefix (a
LightningModule holding the detector as ``self.detector``):

- ``backbone.*``: :class:`~.backbones.ResNetBackbone` (``res_*``, ``resdcn_*``),
  :class:`~.backbones.TimmBackbone` ``dla34`` (``dla_34``) or :class:`~.hourglass.HourglassBackbone`;
- ``neck.*``: :class:`~.necks.SimpleNeck` (``conv_type: none`` for ``res_*``; ``dcn`` with
  ``conv_bias: true`` for ``resdcn_*``), :class:`~.necks.IDANeck` (``dcn``, ``conv_bias: true``,
  ``final_levels: 3``) or :class:`~.necks.IdentityNeck`;
- ``heads.{stack}.{head}.layers.{0,2}.{weight,bias}`` for the heads above.

The architecture is told by the backbone's keys, whatever the heads. Model heads whose original
counterpart the file lacks (``box_2d``; the keypoint heads when a ``ctdet`` file is loaded) keep
their values and are returned; file heads the model lacks are refused like any other key.
The configs in ``configs/paper/`` build exactly these models.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path

from torch import Tensor, nn

from ..weights import read_state_dict

__all__ = [
    "ORIGINAL_HEADS",
    "read_original_state_dict",
    "detect_original_architecture",
    "convert_original_state_dict",
    "load_original_weights",
]

log = logging.getLogger(__name__)

ORIGINAL_HEADS = {
    "hm": "heatmap",
    "wh": "size",
    "reg": "offset",
    # multi_pose (human pose)
    "hps": "keypoint_offsets",
    "hm_hp": "keypoint_heatmap",
    "hp_offset": "keypoint_peak_offset",
}
HEAD_ANCHOR = "heads.0.heatmap.layers.0.weight"
PARTS = ("backbone.", "neck.", "heads.")
_HEADS = "|".join(ORIGINAL_HEADS)  # in a pattern: "hm" fails on "hm_hp.", the match backtracks to "hm_hp"


def read_original_state_dict(path: str | os.PathLike) -> dict[str, Tensor]:
    """The tensors of an original checkpoint, ``module.`` prefixes removed.

    Read with ``weights_only=True`` (no code runs while unpickling); the originals are legacy
    (pre-zip) pickles of plain tensors, which that loader reads.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Original CenterNet weights not found: {path}")
    return read_state_dict(path)


# ----------------------------------------------------------------------------- key mapping
def _dcn_block(rest: str) -> str:
    """Original DCN + BN (``DeformConv``: ``conv`` = DCN, ``actf.0`` = BN) -> DeformConvBNReLU."""
    rest = re.sub(r"^conv\.conv_offset_mask\.", "offset_mask.", rest)
    return re.sub(r"^actf\.0\.", "bn.", rest)


def _ida_up(prefix: str, kind: str, index: str, rest: str) -> str:
    """``{proj,up,node}_{i}`` attributes (1-based) -> ``{projects,upsamples,nodes}.{i-1}``."""
    part = {"proj": "projects", "up": "upsamples", "node": "nodes"}[kind]
    return f"{prefix}.{part}.{int(index) - 1}.{_dcn_block(rest) if kind != 'up' else rest}"


def _resnet_neck(index: int, rest: str, dcn: bool) -> str | None:
    if not dcn:  # msra_resnet: [ConvTranspose, BN, ReLU] x 3 -> SimpleNeck(conv_type="none")
        stage, position = divmod(index, 3)
        return f"neck.layers.{stage}.{position}.{rest}" if position < 2 else None
    # resnet_dcn: [DCN, BN, ReLU, ConvTranspose, BN, ReLU] x 3 -> [DeformConvBNReLU, Sequential(deconv, BN)] x 3
    stage, position = divmod(index, 6)
    if position == 0:
        return f"neck.layers.{2 * stage}.{_dcn_block('conv.' + rest)}"
    if position == 1:
        return f"neck.layers.{2 * stage}.bn.{rest}"
    if position in (3, 4):
        return f"neck.layers.{2 * stage + 1}.{position - 3}.{rest}"
    return None


def _hourglass_path(rest: str) -> str:
    # kp_module's branches: up1 (same resolution), low1 (stride-2 down), low2 (inner), low3 (up).
    names = {"up1": "skip", "low1": "down", "low2": "inner", "low3": "up"}
    return ".".join(names.get(part, part) for part in rest.split("."))


Rule = tuple[str, Callable[..., str | None]]

_HEAD_RULE: Rule = (
    rf"({_HEADS})\.([02])\.(weight|bias)",
    lambda h, i, p: f"heads.0.{ORIGINAL_HEADS[h]}.layers.{i}.{p}",
)
# ResNetBackbone: stages.0 = [Sequential(conv1, bn1, relu, maxpool, layer1)], stages.i = [layer{i+1}].
_RESNET_BACKBONE: list[Rule] = [
    (r"conv1\.(.+)", lambda r: f"backbone.stages.0.0.0.{r}"),
    (r"bn1\.(.+)", lambda r: f"backbone.stages.0.0.1.{r}"),
    (r"layer1\.(.+)", lambda r: f"backbone.stages.0.0.4.{r}"),
    (r"layer([234])\.(.+)", lambda n, r: f"backbone.stages.{int(n) - 1}.0.{r}"),
]
RULES: dict[str, list[Rule]] = {
    "resnet": [
        *_RESNET_BACKBONE,
        (r"deconv_layers\.(\d+)\.(.+)", lambda i, r: _resnet_neck(int(i), r, dcn=False)),
        _HEAD_RULE,
    ],
    "resnet_dcn": [
        *_RESNET_BACKBONE,
        (r"deconv_layers\.(\d+)\.(.+)", lambda i, r: _resnet_neck(int(i), r, dcn=True)),
        _HEAD_RULE,
    ],
    "dla_dcn": [
        (r"base\.fc\..+", lambda: None),  # ImageNet classifier attached by the original's pretrained loading
        (r"base\.(.+)", lambda r: f"backbone.body.{r}"),
        (r"dla_up\.ida_(\d+)\.(proj|up|node)_(\d+)\.(.+)", lambda i, k, n, r: _ida_up(f"neck.dla_up.{i}", k, n, r)),
        (r"ida_up\.(proj|up|node)_(\d+)\.(.+)", lambda k, n, r: _ida_up("neck.ida_up", k, n, r)),
        _HEAD_RULE,
    ],
    "hourglass": [
        (r"pre\.0\.conv\.(.+)", lambda r: f"backbone.stem.0.0.{r}"),
        (r"pre\.0\.bn\.(.+)", lambda r: f"backbone.stem.0.1.{r}"),
        (r"pre\.1\.(.+)", lambda r: f"backbone.stem.1.{r}"),
        (r"kps\.(\d+)\.(.+)", lambda s, r: f"backbone.hourglasses.{s}.{_hourglass_path(r)}"),
        (r"cnvs\.(\d+)\.conv\.(.+)", lambda s, r: f"backbone.feature_convs.{s}.0.{r}"),
        (r"cnvs\.(\d+)\.bn\.(.+)", lambda s, r: f"backbone.feature_convs.{s}.1.{r}"),
        (r"inters_\.(.+)", lambda r: f"backbone.input_projections.{r}"),
        (r"cnvs_\.(.+)", lambda r: f"backbone.feature_projections.{r}"),
        (r"inters\.(.+)", lambda r: f"backbone.next_stack_blocks.{r}"),
        # make_kp_layer: convolution(3, with_bn=False) = conv with bias + ReLU, then a 1x1 conv.
        (rf"({_HEADS})\.(\d+)\.0\.conv\.(weight|bias)", lambda h, s, p: f"heads.{s}.{ORIGINAL_HEADS[h]}.layers.0.{p}"),
        (rf"({_HEADS})\.(\d+)\.1\.(weight|bias)", lambda h, s, p: f"heads.{s}.{ORIGINAL_HEADS[h]}.layers.2.{p}"),
    ],
}


def detect_original_architecture(keys: Mapping[str, Tensor] | list[str]) -> str | None:
    """``resnet`` (msra_resnet, ``res_*``), ``resnet_dcn``, ``dla_dcn``, ``hourglass``, or None."""
    keys = set(keys)
    if "pre.0.conv.weight" in keys and any(k.startswith("kps.") for k in keys):
        return "hourglass"
    if "base.base_layer.0.weight" in keys and any(k.startswith("dla_up.") for k in keys):
        return "dla_dcn"
    if "layer1.0.conv1.weight" in keys and any(k.startswith("deconv_layers.") for k in keys):
        return "resnet_dcn" if "deconv_layers.0.conv_offset_mask.weight" in keys else "resnet"
    return None


def _unused_dla_projections(keys: set[str]) -> set[str]:
    """The ``project`` of an original DLA tree with levels > 1 is never used in forward (timm
    leaves it out); it is recognisable by a nested ``tree1.tree1``."""
    unused = set()
    for key in keys:
        match = re.fullmatch(r"base\.((?:level\d)(?:\.tree\d)*)\.project\..+", key)
        if match and any(k.startswith(f"base.{match.group(1)}.tree1.tree1.") for k in keys):
            unused.add(key)
    return unused


def map_original_key(key: str, architecture: str) -> str | None:
    """Our key (without prefix) for an original key; None for keys that are deliberately dropped.

    Raises KeyError for keys no rule knows.
    """
    for pattern, target in RULES[architecture]:
        match = re.fullmatch(pattern, key)
        if match:
            return target(*match.groups())
    raise KeyError(key)


def _model_prefix(state_keys: list[str]) -> str:
    anchors = [key[: -len(HEAD_ANCHOR)] for key in state_keys if key.endswith(HEAD_ANCHOR)]
    if len(anchors) != 1:
        found = "none" if not anchors else f"{len(anchors)} ({anchors})"
        raise ValueError(f"The model must hold exactly one detector with key '[prefix]{HEAD_ANCHOR}'; found {found}")
    return anchors[0]


def _first(keys: list[str], count: int = 5) -> str:
    more = f" and {len(keys) - count} more" if len(keys) > count else ""
    return f"{keys[:count]}{more}"


def convert_original_state_dict(
    original: Mapping[str, Tensor], model_state: Mapping[str, Tensor], source: str = "the checkpoint"
) -> tuple[dict[str, Tensor], list[str]]:
    """Map an original CenterNet state dict onto ``model_state``'s keys.

    Args:
        original: original tensors (``module.`` already removed, see :func:`read_original_state_dict`).
        model_state: the target model's ``state_dict()``; only its ``backbone.``, ``neck.`` and
            ``heads.`` keys under the detector's prefix are considered.
        source: how to name the origin in errors (the file path).

    Returns:
        (the model's keys -> original tensors, the model keys left as they are: heads without a
        counterpart in the file, such as ``box_2d``, or the keypoint heads for a ``ctdet`` file).

    Raises:
        ValueError naming the first keys that do not fit: file keys with no place in the model,
        model keys the file lacks, and shape mismatches.
    """
    architecture = detect_original_architecture(list(original))
    if architecture is None:
        raise ValueError(
            f"{source} is not an original CenterNet ctdet or multi_pose checkpoint "
            "(res_*, resdcn_*, dla_34 or hourglass); "
            f"its first keys: {_first(list(original))}"
        )
    prefix = _model_prefix(list(model_state))
    dropped = _unused_dla_projections(set(original)) if architecture == "dla_dcn" else set()
    converted: dict[str, Tensor] = {}
    unexpected, mismatched, mismatched_targets = [], [], set()
    for key, tensor in original.items():
        if key in dropped:
            continue
        try:
            target = map_original_key(key, architecture)
        except KeyError:
            unexpected.append(key)
            continue
        if target is None:
            dropped.add(key)
            continue
        target = prefix + target
        if target not in model_state:
            unexpected.append(f"{key} (as {target})")
        elif model_state[target].shape != tensor.shape:
            mismatched.append(f"{key} {list(tensor.shape)} vs {target} {list(model_state[target].shape)}")
            mismatched_targets.add(target)
        else:
            converted[target] = tensor
    file_heads = {ORIGINAL_HEADS[match.group(1)] for key in original if (match := re.match(rf"({_HEADS})\.", key))}
    untouched, missing = [], []
    for key in model_state:
        if not key.startswith(tuple(prefix + part for part in PARTS)) or key in converted or key in mismatched_targets:
            continue
        head = re.match(re.escape(prefix) + r"heads\.\d+\.(\w+)\.", key)
        if head and head.group(1) not in file_heads:
            untouched.append(key)
        elif not key.endswith("num_batches_tracked"):  # older torch saved no BatchNorm counters
            missing.append(key)
    if unexpected or missing or mismatched:
        problems = []
        if unexpected:
            problems.append(f"{len(unexpected)} keys of the file have no place in the model: {_first(unexpected)}")
        if missing:
            problems.append(f"{len(missing)} model keys are missing from the file: {_first(missing)}")
        if mismatched:
            problems.append(f"{len(mismatched)} shapes differ (file vs model): {_first(mismatched)}")
        raise ValueError(
            f"{source} ({architecture} checkpoint) does not fit this model (detector prefix {prefix!r}): "
            + "; ".join(problems)
        )
    if dropped:
        log.info(
            "Dropped %d keys of %s unused by the original's forward: %s", len(dropped), source, sorted(dropped)[:4]
        )
    return converted, untouched


def load_original_weights(
    model: nn.Module, path: str | os.PathLike, original: dict[str, Tensor] | None = None
) -> list[str]:
    """Load an original CenterNet checkpoint into ``model`` (in place).

    Args:
        model: a detector following the layout in the module docstring, or any module holding
            one under a prefix (found through the key ending in ``heads.0.heatmap.layers.0.weight``).
        path: the original ``.pth`` file.
        original: its tensors when the caller has read them (:func:`read_original_state_dict`).

    Returns:
        The model keys left unchanged (heads without a counterpart in the file, e.g. ``box_2d``).

    Raises:
        FileNotFoundError, or ValueError naming ``path`` and the first keys that do not fit.
    """
    original = read_original_state_dict(path) if original is None else original
    converted, untouched = convert_original_state_dict(original, model.state_dict(), source=str(path))
    result = model.load_state_dict(converted, strict=False)
    assert not result.unexpected_keys, result.unexpected_keys  # checked above
    if untouched:
        log.warning(
            "%d model keys have no counterpart in %s and keep their values: %s", len(untouched), path, untouched[:4]
        )
    return untouched
