"""Original CenterNet checkpoints loaded into our models: every key has its place, the raw outputs
equal the original's (ctdet: hm / wh / reg; multi_pose: also hps / hm_hp / hp_offset), and files of
another architecture are refused by name."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch
import torchvision
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))  # test_paper_models: the detector stand-in
from test_paper_models import ORIGINALS, OUTPUT_NAMES, build_paper_model, stack_outputs  # noqa: E402

from centernet_lightning.models.original_weights import (  # noqa: E402
    convert_original_state_dict,
    detect_original_architecture,
    load_original_weights,
    read_original_state_dict,
)


class Wrapper(nn.Module):
    """A LightningModule-like holder: the detector's keys start with ``detector.``."""

    def __init__(self, detector: nn.Module) -> None:
        super().__init__()
        self.detector = detector
        self.register_buffer("unrelated", torch.zeros(3))


def randomized_original(name: str) -> nn.Module:
    """The original network with random weights everywhere it matters: BatchNorm statistics,
    biases and DCN offsets (which start at zero) included, so that a misplaced tensor shows."""
    torch.manual_seed(0)
    model = ORIGINALS[name]().eval()
    with torch.no_grad():
        for key, tensor in model.state_dict().items():
            if not tensor.is_floating_point():
                continue
            if key.endswith("running_var"):
                tensor.uniform_(0.5, 1.5)
            elif key.endswith(("running_mean", "bias")):
                tensor.normal_(0, 0.1)
            elif "conv_offset_mask" in key:  # offsets of about a pixel, fractional
                tensor.normal_(0, 0.01)
    return model


def save_original(model: nn.Module, path: Path, prefix: str = "", legacy: bool = False) -> Path:
    state_dict = {prefix + key: tensor for key, tensor in model.state_dict().items()}
    torch.save({"epoch": 140, "state_dict": state_dict}, path, _use_new_zipfile_serialization=not legacy)
    return path


def assert_outputs_equal(reference: nn.Module, ours: nn.Module, size: int) -> None:
    images = torch.randn(1, 3, size, size, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        expected, actual = reference(images), stack_outputs(ours.eval(), images)
    assert len(expected) == len(actual)
    for expected_stack, actual_stack in zip(expected, actual):
        assert sorted(actual_stack) == sorted(OUTPUT_NAMES[original_name] for original_name in expected_stack)
        for original_name, expected_output in expected_stack.items():
            torch.testing.assert_close(actual_stack[OUTPUT_NAMES[original_name]], expected_output, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("name", ["res18", "resdcn18", "dla34", "pose_dla34"])
def test_converted_model_gives_the_original_outputs(name, tmp_path):
    reference = randomized_original(name)
    model = Wrapper(build_paper_model(name))
    untouched = load_original_weights(model, save_original(reference, tmp_path / f"ctdet_coco_{name}.pth"))
    assert untouched == []
    assert_outputs_equal(reference, model.detector, size=64)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["hourglass104", "pose_hourglass104"])
def test_converted_hourglass_gives_the_original_outputs(name, tmp_path):
    reference = randomized_original(name)
    model = build_paper_model(name)
    assert load_original_weights(model, save_original(reference, tmp_path / f"{name}.pth")) == []
    assert_outputs_equal(reference, model, size=128)  # both stacks


@pytest.mark.parametrize("name", sorted(ORIGINALS))
def test_every_original_key_has_its_place(name):
    with torch.device("meta"):
        original_state = ORIGINALS[name]().state_dict()
        model_state = Wrapper(build_paper_model(name)).state_dict()
    converted, untouched = convert_original_state_dict(original_state, model_state)
    assert untouched == []
    detector_keys = {key for key in model_state if key.startswith("detector.")}
    assert set(converted) == detector_keys
    kept = [key for key in original_state if not key.startswith("base.fc.")]
    assert len(converted) == len(kept) - (12 if name.endswith("dla34") else 0)  # DLA: two unused projections


def test_ctdet_file_leaves_the_keypoint_heads_and_multi_pose_file_needs_them():
    """The original fine-tunes multi_pose from ctdet weights: loaded into a pose model (of the file's
    class count), every head but the keypoint heads is filled; a pose file finds no place in a
    detector without keypoint heads."""
    original_state, model_state = meta_states("dla34", "pose_dla34", num_classes=80)
    converted, untouched = convert_original_state_dict(original_state, model_state)
    assert sorted({key.split(".")[2] for key in untouched}) == [
        "keypoint_heatmap",
        "keypoint_offsets",
        "keypoint_peak_offset",
    ]
    assert set(converted) | set(untouched) == set(model_state)

    original_state, model_state = meta_states("pose_dla34", "dla34", num_classes=1)
    with pytest.raises(ValueError, match=r"12 keys of the file have no place in the model: \['hps\.0\.weight"):
        convert_original_state_dict(original_state, model_state, source="multi_pose_dla_3x.pth")


def test_module_prefix_and_legacy_file_format(tmp_path):
    reference = randomized_original("resdcn18")
    path = save_original(reference, tmp_path / "legacy.pth", prefix="module.", legacy=True)
    with open(path, "rb") as file:
        assert file.read(2) != b"PK"  # not a zip archive: the pre-1.6 format of the released files
    assert set(read_original_state_dict(path)) == set(reference.state_dict())
    model = build_paper_model("resdcn18")
    load_original_weights(model, path)
    assert_outputs_equal(reference, model, size=64)


def test_heads_without_original_counterpart_keep_their_values(tmp_path):
    model = build_paper_model("res18", extra_heads=("box_2d",))
    before = {k: v.clone() for k, v in model.state_dict().items() if ".box_2d." in k}
    untouched = load_original_weights(model, save_original(randomized_original("res18"), tmp_path / "res18.pth"))
    assert sorted(untouched) == sorted(before)
    for key, value in before.items():
        torch.testing.assert_close(model.state_dict()[key], value)


def meta_states(original: str, ours: str, **model_options) -> tuple[dict, dict]:
    with torch.device("meta"):
        return ORIGINALS[original]().state_dict(), build_paper_model(ours, **model_options).state_dict()


def test_file_of_another_architecture_is_refused_by_key_and_path(tmp_path):
    path = save_original(randomized_original("resdcn18"), tmp_path / "ctdet_coco_resdcn18.pth")
    with pytest.raises(ValueError) as error:
        load_original_weights(build_paper_model("res18"), path)
    message = str(error.value)
    assert str(path) in message and "resnet_dcn checkpoint" in message
    assert "deconv_layers.0.conv_offset_mask.weight" in message  # no place for the DCN in res18
    assert "neck.layers.0.0.weight" in message  # res18's first deconvolution finds no tensor

    original_state, model_state = meta_states("dla34", "resdcn18")
    with pytest.raises(ValueError, match=r"have no place in the model: \['base\.base_layer\.0\.weight"):
        convert_original_state_dict(original_state, model_state, source="dla.pth")
    original_state, model_state = meta_states("resdcn18", "resdcn101")
    first_mismatch = (
        r"layer1\.0\.conv1\.weight \[64, 64, 3, 3\] vs backbone\.stages\.0\.0\.4\.0\.conv1\.weight \[64, 64, 1, 1\]"
    )
    with pytest.raises(ValueError, match=r"shapes differ \(file vs model\): \['" + first_mismatch):
        convert_original_state_dict(original_state, model_state)


def test_another_class_count_is_a_shape_mismatch_of_the_heatmap_head():
    original_state, model_state = meta_states("resdcn18", "resdcn18", num_classes=20)
    with pytest.raises(ValueError, match=r"2 shapes differ.*hm\.2\.weight \[80, 64, 1, 1\] vs heads\.0\.heatmap"):
        convert_original_state_dict(original_state, model_state)


def test_not_a_centernet_checkpoint(tmp_path):
    path = tmp_path / "resnet18.pth"
    torch.save(torchvision.models.resnet18().state_dict(), path)
    with pytest.raises(ValueError, match=r"not an original CenterNet ctdet or multi_pose checkpoint.*'conv1\.weight'"):
        load_original_weights(build_paper_model("res18"), path)
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        load_original_weights(build_paper_model("res18"), tmp_path / "missing.pth")


def test_model_without_the_detector_layout_is_refused():
    original_state, _ = meta_states("res18", "res18")
    with pytest.raises(ValueError, match=r"heads\.0\.heatmap\.layers\.0\.weight"):
        convert_original_state_dict(original_state, torchvision.models.resnet18().state_dict())


def test_architecture_detection():
    for name, architecture in [
        ("res18", "resnet"),
        ("resdcn18", "resnet_dcn"),
        ("dla34", "dla_dcn"),
        ("hourglass104", "hourglass"),
        ("pose_dla34", "dla_dcn"),
        ("pose_hourglass104", "hourglass"),
    ]:
        with torch.device("meta"):
            keys = list(ORIGINALS[name]().state_dict())
        assert detect_original_architecture(keys) == architecture
