"""The FairMOT LightningModule without a Trainer: outputs, its loss, decoding with embeddings, a short overfit."""

from __future__ import annotations

import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from centernet_lightning.decode import topk_peaks
from centernet_lightning.models.heads import ReIDHead
from centernet_lightning.tasks import FairMOT
from centernet_lightning.weights import read_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = {"backbone": "resnet18", "neck": {"name": "fpn", "upsample_channels": [32, 32, 16]}, "head_width": 16}
# (x1, y1, x2, y2, identity) in 64x64 images; identity k is a square painted in colour channel k.
OBJECTS = [
    [(4, 6, 26, 28, 0), (36, 4, 60, 26, 1), (10, 36, 34, 60, 2)],
    [(34, 34, 58, 58, 0), (6, 30, 28, 54, 1)],
]


def tiny_model(**kwargs) -> FairMOT:
    torch.manual_seed(0)
    return FairMOT(**{"num_identities": 3, "reid_dim": 16, **TINY, **kwargs})


def make_batch() -> dict[str, torch.Tensor]:
    """Two images, three identities; identities 0 and 1 appear in both at other places and sizes."""
    images = torch.zeros(2, 3, 64, 64)
    bboxes = torch.zeros(2, 3, 4)
    track_ids = torch.full((2, 3), -1)
    mask = torch.zeros(2, 3, dtype=torch.bool)
    for i, objects in enumerate(OBJECTS):
        for n, (x1, y1, x2, y2, identity) in enumerate(objects):
            images[i, identity, y1:y2, x1:x2] = 1.0
            bboxes[i, n] = torch.tensor([x1, y1, x2, y2], dtype=torch.float32)
            track_ids[i, n] = identity
            mask[i, n] = True
    labels = torch.zeros(2, 3, dtype=torch.int64)
    return {"images": images, "bboxes": bboxes, "labels": labels, "mask": mask, "track_ids": track_ids}


def object_embeddings(model: FairMOT, batch) -> tuple[torch.Tensor, torch.Tensor]:
    """Unit embeddings [M, D] at every object's centre cell, and their identities [M]."""
    model.eval()
    with torch.no_grad():
        outputs = model.detector(batch["images"])
    targets = model.criterion.encode_targets(batch, 16, 16)
    embeddings = ReIDHead.decode_embeddings(outputs["reid"], targets.indices)
    return embeddings[batch["mask"]], batch["track_ids"][batch["mask"]]


def test_outputs_and_export_friendly_forward():
    model = tiny_model().eval()
    images = make_batch()["images"]
    outputs = model.detector(images)
    assert set(outputs) == {"heatmap", "box_2d", "reid"}
    assert outputs["reid"].shape == (2, 16, 16, 16)
    forward = model(images)  # the detector's raw outputs
    assert set(forward) == set(outputs)
    assert model.criterion.identity.embedding_scale == pytest.approx(math.sqrt(2) * math.log(2))


def test_uncertainty_weighted_loss_against_its_parts():
    model = tiny_model()
    batch = make_batch()
    outputs = model.detector(batch["images"])
    losses = model.criterion(outputs, batch)
    assert set(losses) == {"heatmap", "box_2d", "reid", "detection", "total"}
    torch.testing.assert_close(losses["detection"], losses["heatmap"] + 5.0 * losses["box_2d"])
    targets = model.criterion.encode_targets(batch, 16, 16)
    torch.testing.assert_close(
        losses["reid"], model.criterion.identity(outputs["reid"], targets.indices, batch["track_ids"])
    )
    # FairMOT's MotLoss: 0.5 * (exp(-s_det) * det + exp(-s_id) * id + s_det + s_id), s starting at -1.85, -1.05.
    detection, reid = losses["detection"].item(), losses["reid"].item()
    expected = 0.5 * (math.exp(1.85) * detection + math.exp(1.05) * reid - 1.85 - 1.05)
    assert losses["total"].item() == pytest.approx(expected, rel=1e-5)

    losses["total"].backward()
    criterion = model.criterion
    for parameter in (criterion.uncertainty.s_det, criterion.uncertainty.s_id, criterion.identity.classifier.weight):
        assert parameter.grad is not None and parameter.grad.abs().sum() > 0
    assert model.detector.heads[0]["reid"].layers[-1].weight.grad.abs().sum() > 0


def test_validation_losses_leave_identities_out():
    model = tiny_model()
    batch = make_batch()
    outputs = model.detector(batch["images"])
    full = model.criterion(outputs, batch)
    del batch["track_ids"]  # validation splits need none: their identities are not the classifier's
    model.eval()  # the loss of validation (Lightning's eval mode): the detection terms alone
    detection_only = model.criterion(outputs, batch)
    assert set(detection_only) == {"heatmap", "box_2d", "detection"}
    for key in detection_only:
        torch.testing.assert_close(detection_only[key], full[key])


def test_fixed_weighting():
    model = tiny_model(loss_weighting="fixed", reid_loss_weight=0.5)
    assert model.criterion.uncertainty is None
    batch = make_batch()
    losses = model.criterion(model.detector(batch["images"]), batch)
    torch.testing.assert_close(losses["total"], losses["detection"] + 0.5 * losses["reid"])


def test_ignored_and_unidentified_objects_have_no_identity_target():
    model = tiny_model()
    batch = make_batch()
    outputs = model.detector(batch["images"])
    reference = model.criterion(
        outputs,
        {
            **batch,
            "track_ids": batch["track_ids"].masked_fill(
                torch.tensor([[False, False, True], [False, False, False]]), -1
            ),
        },
    )["reid"]
    # An ignore region keeps its track id in the batch, yet is no identity target.
    ignore = torch.tensor([[False, False, True], [False, False, False]])
    flagged = model.criterion(outputs, {**batch, "ignore": ignore})["reid"]
    torch.testing.assert_close(flagged, reference)


def test_bad_settings_and_batches_are_clear_errors():
    with pytest.raises(ValueError, match="loss_weighting"):
        tiny_model(loss_weighting="sum")
    with pytest.raises(ValueError, match="model.tracker"):
        tiny_model(tracker={"no_such_setting": 1})
    model = tiny_model()
    batch = make_batch()
    del batch["track_ids"]
    with pytest.raises(ValueError, match="track_ids"):
        model.criterion(model.detector(batch["images"]), batch)


def test_without_an_identity_count_it_evaluates_and_a_checkpoint_sizes_the_classifier():
    """num_identities None (validation data without a training split): no classifier until a
    checkpoint's (renamed from the old layout) sizes it; training refuses with a clear error."""
    model = tiny_model(num_identities=None)
    assert model.criterion.identity is None
    batch = make_batch()
    model.eval()
    assert set(model.criterion(model.detector(batch["images"]), batch)) >= {"heatmap", "detection"}
    with pytest.raises(ValueError, match="num_identities is None: set data.train_split"):
        model.setup("fit")
    state = {key: value.clone() for key, value in tiny_model(num_identities=5).state_dict().items()}
    old_layout = {key.replace("criterion.identity.", "identity_loss."): value for key, value in state.items()}
    checkpoint = {"state_dict": old_layout}
    model.on_load_checkpoint(checkpoint)
    model.load_state_dict(checkpoint["state_dict"])
    assert model.criterion.identity.num_identities == 5 and model.hparams.num_identities == 5
    classifier = model.criterion.identity.classifier.weight
    torch.testing.assert_close(classifier, state["criterion.identity.classifier.weight"])


def test_init_weights_from_a_checkpoint_of_the_old_layout_renames_its_keys():
    fixture = Path(__file__).resolve().parents[1] / "fixtures" / "fairmot_v0_1.ckpt"
    saved = read_checkpoint(fixture)
    old = saved["state_dict"]
    arguments = {k: v for k, v in saved["hyper_parameters"].items() if not k.startswith("_")}
    model = FairMOT(**{**arguments, "init_weights": str(fixture)})
    model.setup("fit")
    torch.testing.assert_close(model.criterion.identity.classifier.weight, old["identity_loss.classifier.weight"])
    torch.testing.assert_close(model.criterion.uncertainty.s_id, old["uncertainty.s_id"])


def test_log_variances_are_not_weight_decayed():
    model = tiny_model(optimizer={"name": "AdamW", "lr": 1e-3, "weight_decay": 0.01})
    groups = model.configure_optimizers()["optimizer"].param_groups
    assert [group["weight_decay"] for group in groups] == [0.01, 0.0]
    assert groups[1]["params"] == [model.criterion.uncertainty.s_det, model.criterion.uncertainty.s_id]
    trained = {id(p) for group in groups for p in group["params"]}
    assert trained == {id(p) for p in model.parameters()}  # the classifier and s_det / s_id included


@pytest.mark.parametrize("nms_iou", [None, 0.3])
def test_decoding_gives_unit_embeddings_at_the_peak_cells(nms_iou):
    model = tiny_model().eval()
    with torch.no_grad():
        outputs = model.detector(make_batch()["images"])
    detections = model.detector.decode(outputs, num_detections=20, nms_iou=nms_iou)
    assert detections["embeddings"].shape == (2, 20, 16)
    torch.testing.assert_close(detections["embeddings"].norm(dim=-1), torch.ones(2, 20))
    peaks = topk_peaks(outputs["heatmap"].sigmoid(), 20)
    for b in range(2):
        for k in range(20):
            # Each detection's peak cell (y, x) from the heatmap, and the normalised reid vector there.
            position = (peaks.indices[b] == detections["indices"][b, k]).nonzero()[0, 0]
            y, x = int(peaks.ys[b, position]), int(peaks.xs[b, position])
            torch.testing.assert_close(detections["embeddings"][b, k], F.normalize(outputs["reid"][b, :, y, x], dim=0))
    # The predictor (eager backend: network and decoding in one module) gives the same.
    predicted = model.detect(make_batch()["images"], num_detections=20, nms_iou=nms_iou)
    for key in ("bboxes", "scores", "labels", "embeddings"):
        torch.testing.assert_close(predicted[key], detections[key])


@pytest.fixture(scope="module")
def trained() -> FairMOT:
    """The tiny model after 40 steps on the two images."""
    model = tiny_model(optimizer={"name": "AdamW", "lr": 2e-3})
    batch = make_batch()
    optimizer = model.configure_optimizers()["optimizer"]
    for _ in range(40):
        model.train()
        losses = model.criterion(model.detector(batch["images"]), batch)
        optimizer.zero_grad()
        losses["total"].backward()
        optimizer.step()
    return model


def separation(embeddings: torch.Tensor, identities: torch.Tensor) -> tuple[float, float]:
    """(lowest cosine similarity of two objects of one identity, highest of two of different ones)."""
    similarity = embeddings @ embeddings.T
    same = identities[:, None] == identities[None, :]
    pairs = ~torch.eye(len(identities), dtype=torch.bool)
    return similarity[same & pairs].min().item(), similarity[~same].max().item()


def test_embeddings_learn_identities(trained):
    batch = make_batch()
    same_before, different_before = separation(*object_embeddings(tiny_model(), batch))
    assert different_before > 0.5  # untrained, every embedding points about the same way
    embeddings, identities = object_embeddings(trained, batch)
    same, different = separation(embeddings, identities)
    assert same > 0.9 and different < 0.3, (same, different)
    logits = trained.criterion.identity.classifier(trained.criterion.identity.embedding_scale * embeddings)
    assert (logits.argmax(-1) == identities).all()


def test_tracking_keeps_each_identity_on_one_track(trained):
    frame = make_batch()["images"][:1]  # the network's input as trained: no normalisation to undo
    tracker = trained.build_tracker(high_thresh=0.3)
    tracks = []
    for _ in range(3):  # frame 0 three times: three objects standing still, one track each throughout
        detections = trained.detect(frame)
        keep = detections["labels"][0] >= 0
        tracks.append(tracker.update(*(detections[key][0][keep] for key in ("bboxes", "scores", "embeddings"))))
    assert [len(frame["ids"]) for frame in tracks] == [3, 3, 3]
    assert all((frame["ids"] == tracks[0]["ids"]).all() for frame in tracks)
    with pytest.raises(ValueError, match="model.tracker settings"):
        trained.build_tracker(no_such_setting=1)
