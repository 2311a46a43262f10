"""Backbones: the channels/strides contract, local pretrained weights, offline errors, frozen stages."""

from __future__ import annotations

import urllib.error

import pytest
import timm
import torch
import torchvision
from torch import nn

from centernet_lightning.models.backbones import (
    MOBILENET_NAMES,
    RESNET_NAMES,
    MobileNetBackbone,
    ResNetBackbone,
    TimmBackbone,
    build_backbone,
)

BACKBONES = [
    (ResNetBackbone, "resnet18"),
    (ResNetBackbone, "resnet50"),
    (MobileNetBackbone, "mobilenet_v2"),
    (MobileNetBackbone, "mobilenet_v3_small"),
    (TimmBackbone, "dla34"),
    (TimmBackbone, "resnet10t"),
]


@pytest.mark.parametrize("cls, name", BACKBONES, ids=[name for _, name in BACKBONES])
def test_feature_maps_have_the_claimed_channels_and_strides(cls, name):
    torch.manual_seed(0)
    images = torch.randn(2, 3, 64, 64)
    backbone = cls(name, return_features=True)
    features = backbone(images)
    assert backbone.strides == [4, 8, 16, 32]
    assert len(features) == len(backbone.out_channels) == 4
    for feature, channels, stride in zip(features, backbone.out_channels, backbone.strides):
        assert feature.shape == (2, channels, 64 // stride, 64 // stride)

    last_only = cls(name, return_features=False)
    feature = last_only(images)
    assert isinstance(feature, torch.Tensor)
    assert last_only.out_channels == backbone.out_channels[-1:] and last_only.strides == [32]
    assert feature.shape == (2, backbone.out_channels[-1], 2, 2)


def test_build_backbone_dispatches_by_name():
    assert isinstance(build_backbone("resnet18"), ResNetBackbone)
    assert isinstance(build_backbone("mobilenet_v3_small"), MobileNetBackbone)
    timm_backbone = build_backbone("timm:resnet10t", return_features=True)
    assert isinstance(timm_backbone, TimmBackbone) and timm_backbone.strides == [4, 8, 16, 32]
    assert isinstance(build_backbone("resnet10t"), TimmBackbone)  # a bare timm name


def test_unknown_names_list_valid_names():
    with pytest.raises(ValueError, match="valid names") as error:
        ResNetBackbone("resnet19")
    assert all(name in str(error.value) for name in RESNET_NAMES)
    with pytest.raises(ValueError, match="valid names") as error:
        MobileNetBackbone("mobilenet_v9")
    assert all(name in str(error.value) for name in MOBILENET_NAMES)
    with pytest.raises(ValueError, match="Unknown timm model"):
        TimmBackbone("no_such_net")
    with pytest.raises(ValueError, match="valid names") as error:
        build_backbone("no_such_net")
    assert "resnet18" in str(error.value) and "timm:" in str(error.value)


# ----------------------------------------------------------------------------- pretrained weights


def test_pretrained_state_dict_file_is_loaded(tmp_path):
    torch.manual_seed(0)
    reference = torchvision.models.resnet18()
    path = tmp_path / "resnet18.pth"
    torch.save(reference.state_dict(), path)
    backbone = ResNetBackbone("resnet18", pretrained=path)
    ours = [t for k, t in backbone.state_dict().items() if not k.endswith("num_batches_tracked")]
    theirs = [
        t
        for k, t in reference.state_dict().items()
        if not k.startswith("fc.") and not k.endswith("num_batches_tracked")
    ]
    assert len(ours) == len(theirs) == 100
    for got, expected in zip(ours, theirs):
        assert torch.equal(got, expected)
    # A fresh backbone differs, so the comparison above is not trivially true.
    assert not torch.equal(ResNetBackbone("resnet18").stages[0][0][0].weight, reference.conv1.weight)
    # A Lightning-style {"state_dict": ...} wrapper is accepted as a string path too.
    torch.save({"state_dict": reference.state_dict()}, tmp_path / "wrapped.ckpt")
    wrapped = ResNetBackbone("resnet18", pretrained=str(tmp_path / "wrapped.ckpt"))
    assert torch.equal(wrapped.stages[3][0][1].bn2.running_var, reference.layer4[1].bn2.running_var)


def test_timm_pretrained_file_is_loaded(tmp_path):
    reference = timm.create_model("resnet10t")
    path = tmp_path / "resnet10t.pth"
    torch.save(reference.state_dict(), path)
    backbone = TimmBackbone("resnet10t", pretrained=path)
    assert torch.equal(backbone.body.conv1[0].weight, reference.conv1[0].weight)
    assert torch.equal(backbone.body.layer4[0].conv2.weight, reference.layer4[0].conv2.weight)


def test_wrong_pretrained_files_give_clear_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="not found"):
        ResNetBackbone("resnet18", pretrained=tmp_path / "missing.pth")
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"this is not a checkpoint")
    with pytest.raises(ValueError, match="garbage.pth is not a readable checkpoint"):
        ResNetBackbone("resnet18", pretrained=garbage)
    other = tmp_path / "mobilenet.pth"
    torch.save(torchvision.models.mobilenet_v3_small().state_dict(), other)
    with pytest.raises(ValueError, match="does not fit this backbone; missing keys"):
        ResNetBackbone("resnet18", pretrained=other)
    bigger = tmp_path / "resnet50.pth"
    torch.save(torchvision.models.resnet50().state_dict(), bigger)
    with pytest.raises(ValueError, match="does not fit this backbone") as error:
        ResNetBackbone("resnet18", pretrained=bigger)
    assert "size mismatch" in str(error.value)
    tensor_file = tmp_path / "tensor.pth"
    torch.save(torch.zeros(3), tensor_file)
    with pytest.raises(ValueError, match="tensor.pth holds a Tensor, not a checkpoint or state dict"):
        MobileNetBackbone("mobilenet_v2", pretrained=tensor_file)
    with pytest.raises(FileNotFoundError, match="not found"):
        TimmBackbone("resnet10t", pretrained=tmp_path / "missing.pth")


def test_pretrained_true_offline_raises_a_clear_runtime_error(monkeypatch):
    def no_network(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.models, "get_model", no_network)
    with pytest.raises(RuntimeError, match="Could not download pretrained weights for 'resnet18'") as error:
        ResNetBackbone("resnet18", pretrained=True)
    assert "pretrained=<path" in str(error.value) and "pretrained=False" in str(error.value)
    with pytest.raises(RuntimeError, match="Could not download"):
        MobileNetBackbone("mobilenet_v2", pretrained=True)

    monkeypatch.setattr(timm, "create_model", no_network)
    with pytest.raises(RuntimeError, match="Could not download pretrained weights for 'resnet10t'"):
        TimmBackbone("resnet10t", pretrained=True)


# ----------------------------------------------------------------------------- frozen stages


def batch_norms(module: nn.Module) -> list[nn.BatchNorm2d]:
    return [m for m in module.modules() if isinstance(m, nn.BatchNorm2d)]


def test_frozen_stages_freeze_weights_and_batchnorm_statistics():
    torch.manual_seed(0)
    backbone = ResNetBackbone("resnet18", return_features=True, frozen_stages=2)
    frozen, trained = backbone.stages[:2], backbone.stages[2:]
    assert not any(p.requires_grad for p in frozen.parameters())
    assert all(p.requires_grad for p in trained.parameters())
    stem_conv = backbone.stages[0][0][0]  # stage 0 = (conv1, bn1, relu, maxpool, layer1)
    assert isinstance(stem_conv, nn.Conv2d) and not stem_conv.weight.requires_grad

    backbone.train()
    assert all(not bn.training for bn in batch_norms(frozen))
    assert all(bn.training for bn in batch_norms(trained))
    frozen_stats = [bn.running_mean.clone() for bn in batch_norms(frozen)]
    trained_stats = [bn.running_mean.clone() for bn in batch_norms(trained)]
    features = backbone(torch.randn(2, 3, 64, 64) * 3 + 1)
    for bn, before in zip(batch_norms(frozen), frozen_stats):
        assert torch.equal(bn.running_mean, before)
    assert any(not torch.equal(bn.running_mean, before) for bn, before in zip(batch_norms(trained), trained_stats))

    features[-1].square().mean().backward()
    assert all(p.grad is None for p in frozen.parameters())
    assert backbone.stages[2][0][0].conv1.weight.grad is not None
    backbone.eval()
    assert all(not bn.training for bn in batch_norms(backbone))


def test_frozen_stages_out_of_range():
    with pytest.raises(ValueError, match="frozen_stages"):
        MobileNetBackbone("mobilenet_v3_small", frozen_stages=5)
    with pytest.raises(ValueError, match="frozen_stages"):
        TimmBackbone("resnet10t", frozen_stages=-1)


def test_timm_frozen_stages():
    backbone = TimmBackbone("resnet10t", return_features=True, frozen_stages=2)
    params = dict(backbone.body.named_parameters())
    assert not params["conv1.0.weight"].requires_grad
    assert not params["layer2.0.conv1.weight"].requires_grad
    assert params["layer3.0.conv1.weight"].requires_grad
    backbone.train()
    assert not backbone.body.layer2[0].bn1.training and backbone.body.layer3[0].bn1.training
