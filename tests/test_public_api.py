"""The public API: every name in each package's __all__ imports, and the box helpers agree."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
import torch

PACKAGES = [
    "centernet_lightning",
    "centernet_lightning.models",
    "centernet_lightning.datasets",
    "centernet_lightning.eval",
    "centernet_lightning.structures",
    "centernet_lightning.targets",
    "centernet_lightning.losses",
    "centernet_lightning.decode",
    "centernet_lightning.tracking",
    "centernet_lightning.inference",
    "centernet_lightning.deploy",
    "centernet_lightning.preprocess",
    "centernet_lightning.tasks",
    "centernet_lightning.callbacks",
    "centernet_lightning.weights",
    "centernet_lightning.visualize",
]


@pytest.mark.parametrize("name", PACKAGES)
def test_every_exported_name_exists(name: str) -> None:
    module = importlib.import_module(name)
    assert module.__all__, name
    missing = [item for item in module.__all__ if not hasattr(module, item)]
    assert not missing, f"{name}.__all__ lists missing names {missing}"
    assert len(set(module.__all__)) == len(module.__all__)


def test_top_level_names_are_the_documented_ones() -> None:
    import centernet_lightning as package

    for item in ("CenterNet", "FairMOT", "load_model", "Predictor", "load_predictor", "DetectionDataModule"):
        assert item in package.__all__
    assert package.CenterNet is importlib.import_module("centernet_lightning.tasks.centernet").CenterNet
    assert package.Predictor is importlib.import_module("centernet_lightning.inference.predictor").Predictor


def test_box_conversions_round_trip_for_numpy_and_torch() -> None:
    from centernet_lightning.structures import box_cxcywh_to_xyxy, box_xywh_to_xyxy, box_xyxy_to_xywh

    xyxy = np.array([[10.0, 20.0, 30.0, 60.0]])
    np.testing.assert_array_equal(box_xyxy_to_xywh(xyxy), [[10, 20, 20, 40]])
    np.testing.assert_array_equal(box_xywh_to_xyxy(box_xyxy_to_xywh(xyxy)), xyxy)
    np.testing.assert_array_equal(box_cxcywh_to_xyxy(np.array([[20.0, 40.0, 20.0, 40.0]])), xyxy)
    tensor = torch.from_numpy(xyxy)
    assert torch.equal(box_xywh_to_xyxy(box_xyxy_to_xywh(tensor)), tensor)
