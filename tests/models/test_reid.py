"""The re-ID head, FairMOT's identity loss and its uncertainty weighting, against hand computations."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from centernet_lightning.models import CenterNetLoss, InferenceNetwork, build_detector
from centernet_lightning.models.detector import decode_outputs
from centernet_lightning.models.head_table import HEAD_TYPES, build_heads
from centernet_lightning.models.heads import ReIDHead
from centernet_lightning.models.reid import IdentityLoss, UncertaintyWeighting, fairmot_embedding_scale


def test_reid_head_shape_zero_bias_and_registration():
    assert HEAD_TYPES["reid"] is ReIDHead
    torch.manual_seed(0)
    heads = build_heads({"heatmap": {}, "box_2d": {}, "reid": {"dim": 12, "depth": 2}}, 8, 1, width=6, depth=1)
    head = heads["reid"]
    output = head(torch.randn(2, 8, 5, 7))
    assert output.shape == (2, 12, 5, 7)
    assert head.dim == 12 and head.out_channels == 12
    convs = [layer for layer in head.layers if isinstance(layer, torch.nn.Conv2d)]
    assert len(convs) == 3 and all((conv.bias == 0).all() for conv in convs)  # the original's fill_fc_weights


@pytest.mark.parametrize("spec, message", [({"dim": 0}, "dim must be >= 1"), ({"loss": "triplet"}, "cross_entropy")])
def test_reid_head_rejects_bad_settings(spec, message):
    with pytest.raises(ValueError, match=message):
        ReIDHead(8, **spec)


def test_reid_head_has_no_loss_of_its_own_and_keeps_the_unmirrored_embedding():
    head = ReIDHead(4, dim=3, width=4)
    with pytest.raises(RuntimeError, match="FairMOT"):
        head.loss(torch.zeros(1, 3, 2, 2), None)
    output, mirrored = torch.randn(1, 3, 2, 4), torch.randn(1, 3, 2, 4)
    assert head.merge_flipped(output, mirrored) is output


def test_decode_embeddings_are_unit_vectors_at_the_cells():
    output = torch.randn(2, 5, 3, 4)
    indices = torch.tensor([[0, 7, 11], [5, 5, 2]])
    embeddings = ReIDHead.decode_embeddings(output, indices)
    assert embeddings.shape == (2, 3, 5)
    torch.testing.assert_close(embeddings.norm(dim=-1), torch.ones(2, 3))
    # Cell 7 of a 3x4 grid is row 1, column 3.
    expected = output[0, :, 1, 3] / output[0, :, 1, 3].norm()
    torch.testing.assert_close(embeddings[0, 1], expected)


def test_embedding_scale_is_fairmots():
    # The JDE training set of FairMOT has nID = 14455 identities.
    assert fairmot_embedding_scale(14455) == pytest.approx(math.sqrt(2) * math.log(14454))
    assert fairmot_embedding_scale(14455) == pytest.approx(13.5464, abs=1e-4)
    assert fairmot_embedding_scale(3) == pytest.approx(math.sqrt(2) * math.log(2))
    with pytest.raises(ValueError, match="num_identities >= 3"):
        fairmot_embedding_scale(2)
    assert IdentityLoss(4, 2, embedding_scale=5.0).embedding_scale == 5.0
    assert IdentityLoss(4, 10).embedding_scale == pytest.approx(math.sqrt(2) * math.log(9))


def hand_identity_loss(loss: IdentityLoss, output, indices, identities) -> torch.Tensor:
    """Object by object: gather, normalise, scale, classify, -log softmax of the identity; mean over
    objects with an identity."""
    terms = []
    height, width = output.shape[-2:]
    for b in range(indices.shape[0]):
        for n in range(indices.shape[1]):
            if identities[b, n] < 0:
                continue
            y, x = divmod(int(indices[b, n]), width)
            vector = output[b, :, y, x]
            logits = loss.classifier.weight @ (loss.embedding_scale * vector / vector.norm()) + loss.classifier.bias
            terms.append(-torch.log_softmax(logits, dim=0)[identities[b, n]])
    return torch.stack(terms).mean()


def test_identity_loss_matches_a_hand_computation_and_ignores_objects_without_identity():
    torch.manual_seed(0)
    loss = IdentityLoss(dim=6, num_identities=5)
    output = torch.randn(2, 6, 4, 4)
    indices = torch.tensor([[3, 9, 0], [15, 4, 4]])
    identities = torch.tensor([[0, 4, -1], [2, -1, 1]])
    value = loss(output, indices, identities)
    torch.testing.assert_close(value, hand_identity_loss(loss, output, indices, identities))
    # Same value through PyTorch's own ignore_index and mean, as the original's CrossEntropyLoss(ignore_index=-1).
    embeddings = torch.stack([output[b].flatten(1)[:, indices[b]].T for b in range(2)])
    logits = loss.classifier(loss.embedding_scale * F.normalize(embeddings, dim=-1))
    torch.testing.assert_close(value, F.cross_entropy(logits.flatten(0, 1), identities.flatten(), ignore_index=-1))

    # Objects without identity do not count: changing their embedding changes nothing.
    changed = output.clone()
    changed[0, :, 0, 0] = 100.0  # cell 0 holds only object (0, 2), identity -1
    torch.testing.assert_close(loss(changed, indices, identities), value)


def test_identity_loss_without_identities_is_zero_not_nan():
    loss = IdentityLoss(dim=3, num_identities=4)
    output = torch.randn(1, 3, 2, 2, requires_grad=True)
    value = loss(output, torch.zeros(1, 2, dtype=torch.int64), torch.full((1, 2), -1))
    assert value.item() == 0.0
    value.backward()
    assert (output.grad == 0).all()


def test_identity_out_of_range_is_a_clear_error():
    loss = IdentityLoss(dim=3, num_identities=4)
    with pytest.raises(ValueError, match="Identity 4 in the batch, but the model has num_identities=4"):
        loss(torch.randn(1, 3, 2, 2), torch.zeros(1, 1, dtype=torch.int64), torch.tensor([[4]]))


def test_uncertainty_weighting_matches_fairmot_and_trains_its_log_variances():
    weighting = UncertaintyWeighting()
    assert weighting.s_det.item() == pytest.approx(-1.85) and weighting.s_id.item() == pytest.approx(-1.05)
    detection, identity = torch.tensor(2.0), torch.tensor(3.0)
    value = weighting(detection, identity)
    expected = 0.5 * (math.exp(1.85) * 2.0 + math.exp(1.05) * 3.0 - 1.85 - 1.05)
    assert value.item() == pytest.approx(expected, rel=1e-6)
    value.backward()
    # d/ds of 0.5 * (exp(-s) * L + s) is 0.5 * (1 - exp(-s) * L).
    assert weighting.s_det.grad.item() == pytest.approx(0.5 * (1 - math.exp(1.85) * 2.0), rel=1e-6)
    assert weighting.s_id.grad.item() == pytest.approx(0.5 * (1 - math.exp(1.05) * 3.0), rel=1e-6)


def test_decoding_and_export_add_the_embeddings_to_the_detections():
    torch.manual_seed(0)
    detector = build_detector(
        2, "resnet18", {"name": "simple", "upsample_channels": [16, 16, 16]}, {"box_2d": {}, "reid": {"dim": 8}}, 8
    ).eval()
    with torch.no_grad():
        outputs = detector(torch.randn(1, 3, 64, 64))
    assert outputs["reid"].shape == (1, 8, 16, 16)
    without = {name: value for name, value in outputs.items() if name != "reid"}
    with_reid, plain = decode_outputs(outputs, 4, 10), decode_outputs(without, 4, 10)
    for key in plain:  # the boxes do not depend on the embeddings
        torch.testing.assert_close(with_reid[key], plain[key])
    assert with_reid["embeddings"].shape == (1, 10, 8) and "embeddings" not in plain

    with torch.no_grad():
        boxes, scores, labels, embeddings = InferenceNetwork(detector, num_detections=10)(torch.randn(1, 3, 64, 64))
    assert boxes.shape == (1, 10, 4) and scores.shape == (1, 10) and labels.shape == (1, 10)
    torch.testing.assert_close(embeddings.norm(dim=-1), torch.ones(1, 10))
    raw = InferenceNetwork(detector, decode=False)
    assert raw.output_names == ("heatmap", "box_2d", "reid")  # the raw maps include the embeddings
    with torch.no_grad():
        assert raw(torch.randn(1, 3, 64, 64))[2].shape == (1, 8, 16, 16)


def test_the_detection_loss_of_a_reid_detector_names_fairmot():
    neck = {"name": "simple", "upsample_channels": [8, 8, 8]}
    detector = build_detector(1, "resnet18", neck, {"box_2d": {}, "reid": {}}, 8)
    outputs = detector(torch.randn(1, 3, 64, 64))
    boxes, labels, mask = (
        torch.tensor([[[2.0, 2.0, 20.0, 20.0]]]),
        torch.zeros(1, 1, dtype=torch.int64),
        torch.ones(1, 1, dtype=torch.bool),
    )
    with pytest.raises(RuntimeError, match="FairMOT"):
        CenterNetLoss(detector)(outputs, {"bboxes": boxes, "labels": labels, "mask": mask})
