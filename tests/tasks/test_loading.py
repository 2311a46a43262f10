"""Loading models: checkpoints of every layout the project has written, configs, and saving."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from centernet_lightning.deploy import load_predictor
from centernet_lightning.tasks import CenterNet, FairMOT, load_model, save_checkpoint
from centernet_lightning.weights import read_checkpoint

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"


@pytest.fixture(scope="module")
def reference() -> dict[str, np.ndarray]:
    return dict(np.load(FIXTURES / "outputs_v0_1.npz"))


def test_a_centernet_checkpoint_of_the_old_layout_gives_its_outputs(reference) -> None:
    model = load_model(FIXTURES / "centernet_v0_1.ckpt")
    assert type(model) is CenterNet and not model.training
    assert model.inference_spec.input_size == 64 and model.inference_spec.category_ids == [1, 2, 3]
    detections = model.detect(torch.from_numpy(reference["inputs"]))
    for key in ("bboxes", "scores", "labels"):
        np.testing.assert_array_equal(detections[key][:, :10].numpy(), reference[f"centernet_{key}"])


def test_a_fairmot_checkpoint_of_the_old_layout_is_renamed_and_gives_its_outputs(reference) -> None:
    old = read_checkpoint(FIXTURES / "fairmot_v0_1.ckpt")["state_dict"]
    assert "identity_loss.classifier.weight" in old and "uncertainty.s_det" in old  # the layout before
    model = load_model(FIXTURES / "fairmot_v0_1.ckpt")
    assert type(model) is FairMOT
    torch.testing.assert_close(model.criterion.identity.classifier.weight, old["identity_loss.classifier.weight"])
    torch.testing.assert_close(model.criterion.uncertainty.s_det, old["uncertainty.s_det"])
    assert model.build_tracker().high_thresh == 0.4
    detections = model.detect(torch.from_numpy(reference["inputs"]))
    for key in ("bboxes", "scores", "embeddings"):
        np.testing.assert_array_equal(detections[key][:, :10].numpy(), reference[f"fairmot_{key}"])


def test_every_checkpoint_is_a_model_of_predict(tmp_path: Path) -> None:
    """A FairMOT checkpoint predicts like a detection one (its re-ID head adds embeddings)."""
    images = [np.full((48, 80, 3), 90, np.uint8), np.full((64, 64, 3), 160, np.uint8)]
    for name in ("centernet_v0_1.ckpt", "fairmot_v0_1.ckpt"):
        predictor = load_predictor(FIXTURES / name, device="cpu")
        found = predictor.predict(images)
        assert found["bboxes"].shape[:2] == found["scores"].shape == (2, predictor.num_detections)
        assert ("embeddings" in found) == name.startswith("fairmot")
        assert (found["bboxes"][..., 2] <= 80 + 1e-3).all()  # original pixels of the first image


def test_a_saved_checkpoint_names_its_task_and_loads_back(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = FairMOT(4, backbone="resnet18", neck={"name": "simple", "upsample_channels": [8, 8, 8]}, head_width=8)
    path = save_checkpoint(model, tmp_path / "fairmot.ckpt")
    assert read_checkpoint(path)["task"] == "FairMOT"
    loaded = load_model(path)
    assert type(loaded) is FairMOT and loaded.hparams.num_identities == 4
    for key, value in model.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[key], value)
    with pytest.raises(FileExistsError, match="exists"):
        save_checkpoint(model, path)
    torch.save({"state_dict": model.state_dict()}, tmp_path / "bare.ckpt")
    with pytest.raises(ValueError, match="no state_dict with hyper_parameters"):
        load_model(tmp_path / "bare.ckpt")
