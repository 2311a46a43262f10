"""The CenterNet paper models (configs/paper/*.yaml) against the original networks: parameter counts,
output layout per stack (ctdet and multi_pose heads), the neck options they need, the DCN offset
layout, and model_info."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import yaml
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests/: reference_original
import reference_original as original  # noqa: E402
from reference_multi_pose import COCO_FLIP_IDX  # noqa: E402

from centernet_lightning.datasets.coco_keypoints import COCO_PERSON_KEYPOINTS  # noqa: E402
from centernet_lightning.models.backbones import build_backbone  # noqa: E402
from centernet_lightning.models.detector import CenterNetDetector, build_detector  # noqa: E402
from centernet_lightning.models.head_table import HEAD_TYPES  # noqa: E402
from centernet_lightning.models.hourglass import HourglassBackbone  # noqa: E402
from centernet_lightning.models.info import format_info, model_info  # noqa: E402
from centernet_lightning.models.layers import DeformConvBNReLU  # noqa: E402
from centernet_lightning.models.necks import IDANeck, IdentityNeck, SimpleNeck, build_neck  # noqa: E402
from centernet_lightning.models.original_weights import ORIGINAL_HEADS  # noqa: E402

PAPER_CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "paper"
HEAD_CHANNELS = {"size": 2, "offset": 2, "box_2d": 4}

# name -> the original network (head_conv as the original's defaults): ctdet with 80 classes (heads
# hm, wh, reg), or multi_pose (pose_*: 1 class, hm, wh, hps, reg, hm_hp, hp_offset for 17 joints)
ORIGINALS = {
    "res18": lambda: original.get_msra_resnet(18),
    "resdcn18": lambda: original.get_resnet_dcn(18),
    "resdcn101": lambda: original.get_resnet_dcn(101),
    "dla34": lambda: original.get_dla_dcn(),
    "hourglass104": lambda: original.get_large_hourglass(),
    "pose_dla34": lambda: original.get_dla_dcn(original.ORIGINAL_MULTI_POSE_HEADS),
    "pose_hourglass104": lambda: original.get_large_hourglass(original.ORIGINAL_MULTI_POSE_HEADS),
}
# The original's head names -> ours (what models/original_weights.py maps).
OUTPUT_NAMES = ORIGINAL_HEADS


def original_heads(name: str) -> dict[str, int]:
    """The original's ``heads`` dict (head -> channels) of a paper model."""
    return original.ORIGINAL_MULTI_POSE_HEADS if name.startswith("pose_") else original.ORIGINAL_HEADS


def _spec(value) -> dict:
    return {"name": value} if isinstance(value, str) else dict(value)


def build_paper_model(
    name: str, num_classes: int | None = None, extra_heads: tuple[str, ...] = ()
) -> CenterNetDetector:
    """The detector of ``configs/paper/<name>.yaml`` (without pretrained downloads), with the class
    count of the original (80, or 1 for the pose models) unless given, and COCO's person joints."""
    config = yaml.safe_load((PAPER_CONFIGS / f"{name}.yaml").read_text())["model"]["init_args"]
    backbone = {**_spec(config["backbone"]), "pretrained": False}
    num_classes = original_heads(name)["hm"] if num_classes is None else num_classes
    detector = build_detector(
        num_classes,
        backbone,
        config["neck"],
        config["heads"],
        config["head_width"],
        keypoint_layout=COCO_PERSON_KEYPOINTS,
    )
    for heads in detector.heads:  # heads the original lacks, added past build_heads' one-box-head check
        for name in extra_heads:
            heads[name] = HEAD_TYPES[name](detector.neck.out_channels, width=config["head_width"])
    return detector


def stack_outputs(detector: CenterNetDetector, images: torch.Tensor) -> list[dict]:
    """Every stack's head outputs (the detector itself runs only the last stack's heads in eval mode)."""
    features = detector.neck(detector.backbone(images))
    stacks = features if isinstance(features, list) else [features]
    return [{name: head(x) for name, head in heads.items()} for heads, x in zip(detector.heads, stacks, strict=True)]


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_every_paper_config_is_covered():
    assert sorted(p.stem for p in PAPER_CONFIGS.glob("*.yaml")) == sorted(ORIGINALS)


@pytest.mark.parametrize("name", sorted(ORIGINALS))
def test_parameter_count_matches_original(name):
    with torch.device("meta"):  # shapes only: no memory, no initialisation
        reference = ORIGINALS[name]()
        ours = build_paper_model(name)
    expected = parameter_count(reference)
    if name.endswith("dla34"):
        # The released DLA checkpoints carry the ImageNet classifier (base.fc) and the projections
        # of the two levels > 1 trees, which the original's forward never uses; timm leaves them out.
        unused = {
            key: tensor.numel()
            for key, tensor in reference.named_parameters()
            if key.startswith(("base.fc.", "base.level3.project.", "base.level4.project."))
        }
        assert sum(unused.values()) == 512 * 1000 + 1000 + (64 * 128 + 2 * 128) + (128 * 256 + 2 * 256)
        expected -= sum(unused.values())
    assert parameter_count(ours) == expected


@pytest.mark.parametrize("name", sorted(ORIGINALS))
def test_paper_model_outputs_one_stride_4_map_per_stack(name):
    with torch.device("meta"):
        model = build_paper_model(name)
        outputs = stack_outputs(model, torch.zeros(2, 3, 256, 256))
    assert len(outputs) == (2 if name.endswith("hourglass104") else 1)
    for stack in outputs:
        assert {key: tuple(value.shape) for key, value in stack.items()} == {
            OUTPUT_NAMES[head]: (2, channels, 64, 64) for head, channels in original_heads(name).items()
        }


def test_pose_models_have_the_original_multi_pose_heads():
    """The original's multi_pose heads (opts.py): hm 1, wh 2, hps 2 x 17, reg 2, hm_hp 17, hp_offset 2,
    with COCO's flip pairs (COCOHP.flip_idx); the joint heatmap's bias starts at -2.19, as the
    original's ``'hm' in head`` initialises ``hm_hp``."""
    assert original.ORIGINAL_MULTI_POSE_HEADS == {"hm": 1, "wh": 2, "hps": 34, "reg": 2, "hm_hp": 17, "hp_offset": 2}
    assert [list(pair) for pair in COCO_PERSON_KEYPOINTS.flip_pairs] == COCO_FLIP_IDX
    model = build_paper_model("pose_dla34")
    heads = model.heads[0]
    assert heads["keypoint_offsets"].num_keypoints == heads["keypoint_heatmap"].num_keypoints == 17
    torch.testing.assert_close(heads["keypoint_heatmap"].layers[-1].bias, torch.full((17,), -2.19))
    torch.testing.assert_close(heads["keypoint_offsets"].layers[-1].bias, torch.zeros(34))


def test_hourglass_backbone_contract():
    with torch.device("meta"):
        backbone = build_backbone("hourglass104")
        features = backbone(torch.zeros(1, 3, 256, 256))
    assert isinstance(backbone, HourglassBackbone)
    assert (backbone.num_stacks, backbone.out_channels, backbone.strides) == (2, [256], [4])
    assert [tuple(f.shape) for f in features] == [(1, 256, 64, 64)] * 2
    neck = build_neck("identity", backbone.out_channels)
    assert (neck.out_channels, neck.stride) == (256, 4)
    assert neck(features) is features
    assert IdentityNeck(64).out_channels == 64
    with pytest.raises(ValueError, match="No ImageNet weights"):
        build_backbone("hourglass104", pretrained=True)


def test_simple_neck_without_conv_is_the_deconvolution_decoder():
    neck = SimpleNeck([64, 128, 256, 512], upsample_channels=(32, 32, 16), conv_type="none")
    convs = [m for m in neck.modules() if type(m) is nn.Conv2d]
    deconvs = [m for m in neck.modules() if isinstance(m, nn.ConvTranspose2d)]
    assert convs == [] and [(d.in_channels, d.out_channels) for d in deconvs] == [(512, 32), (32, 32), (32, 16)]
    assert neck(torch.randn(1, 512, 3, 5)).shape == (1, 16, 24, 40)
    assert neck.out_channels == 16 and neck.stride == 4


def test_ida_neck_final_levels():
    torch.manual_seed(0)
    channels = [16, 32, 64, 128]
    features = [torch.randn(2, c, 32 // 2**i, 32 // 2**i) for i, c in enumerate(channels)]
    all_levels, three_levels = IDANeck(channels), IDANeck(channels, final_levels=3)
    assert len(three_levels.ida_up.projects) == 2 and len(all_levels.ida_up.projects) == 3
    output = three_levels(features)
    assert output.shape == (2, 16, 32, 32)
    (output * torch.randn_like(output)).sum().backward()
    assert [name for name, p in three_levels.named_parameters() if p.grad is None] == []
    with pytest.raises(ValueError, match="final_levels"):
        IDANeck(channels, final_levels=5)


def test_conv_bias_option():
    assert DeformConvBNReLU(8, 8).conv.bias is None
    assert DeformConvBNReLU(8, 8, bias=True).conv.bias.shape == (8,)
    neck = IDANeck([16, 32, 64, 128], conv_type="dcn", conv_bias=True)
    assert all(block.conv.bias is not None for block in neck.modules() if isinstance(block, DeformConvBNReLU))
    neck = SimpleNeck(64, (8, 8, 8), conv_type="normal", conv_bias=True)
    assert neck.layers[0][0].bias is not None


def test_dcn_offsets_and_mask_read_like_dcnv2():
    """Our offset/mask split [2 * taps | taps] and DCNv2's chunk-into-three give the same layer."""
    torch.manual_seed(0)
    reference = original.DCN(6, 5, kernel_size=(3, 3), stride=1, padding=1)
    reference_bn = nn.BatchNorm2d(5).eval()
    ours = DeformConvBNReLU(6, 5, bias=True).eval()
    with torch.no_grad():
        reference.conv_offset_mask.weight.normal_(0, 0.3)
        reference.conv_offset_mask.bias.normal_(0, 0.3)
        reference.bias.normal_()
        ours.offset_mask.load_state_dict(reference.conv_offset_mask.state_dict())
        ours.conv.weight.copy_(reference.weight)
        ours.conv.bias.copy_(reference.bias)
        x = torch.randn(2, 6, 9, 7)
        torch.testing.assert_close(ours(x), torch.relu(reference_bn(reference(x))), rtol=1e-5, atol=1e-5)


def test_model_info_counts_every_part_and_the_deformable_convolutions():
    torch.manual_seed(0)
    model = build_paper_model("resdcn18")
    rows = model_info(nn.ModuleDict({"detector": model}), input_size=64)  # found inside a wrapper
    by_part = {row["part"]: row for row in rows}
    assert list(by_part) == ["backbone", "neck", "head heatmap", "head size", "head offset", "total"]
    assert by_part["total"]["params"] == parameter_count(model)
    assert by_part["neck"]["params"] == parameter_count(model.neck)
    # FlopCounterMode alone misses the DCNs: 3x3 at 2x2 (512 -> 256), 4x4 (256 -> 128), 8x8 (128 -> 64).
    images = torch.zeros(1, 3, 64, 64)
    with torch.no_grad():
        with FlopCounterMode(display=False) as counter:
            model.neck(model.backbone(images))
        with FlopCounterMode(display=False) as backbone_only:
            model.backbone(images)
    deformable = 2 * 9 * (512 * 256 * 2 * 2 + 256 * 128 * 4 * 4 + 128 * 64 * 8 * 8)
    neck_without_dcn = counter.get_total_flops() - backbone_only.get_total_flops()
    assert by_part["neck"]["gflops"] * 1e9 == pytest.approx(neck_without_dcn + deformable)
    assert by_part["total"]["gflops"] == pytest.approx(sum(row["gflops"] for row in rows[:-1]))
    table = format_info(rows)
    assert "head heatmap" in table and "total" in table and "GFLOPs" in table


def test_model_info_sums_heads_over_stacks():
    with torch.device("meta"):
        model = build_paper_model("hourglass104")
    # Parameters only need shapes; FLOPs on meta tensors still count.
    rows = {row["part"]: row for row in model_info(model, input_size=128)}
    assert rows["head heatmap"]["params"] == 2 * (256 * 256 * 9 + 256 + 256 * 80 + 80)
    assert rows["head heatmap"]["gflops"] == pytest.approx(2 * 2 * (256 * 256 * 9 + 256 * 80) * 32 * 32 / 1e9)
