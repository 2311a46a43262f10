"""The losses that train FairMOT's re-ID head: the identity loss, the uncertainty weighting, FairMOT's loss.

FairMOT (Zhang et al., "FairMOT: On the Fairness of Detection and Re-Identification in Multiple
Object Tracking", IJCV 2021) adds one head to CenterNet: an embedding of ``dim`` channels at every
output cell. An object's embedding is the one at its peak cell; the tracker compares L2-normalised
embeddings by cosine distance.

Where each piece lives, and why:

- :class:`~centernet_lightning.models.heads.ReIDHead` is part of the network (``reid`` in
  ``models/heads.py``): it computes the embedding map and is exported with the detector.
- :class:`IdentityLoss` owns the identity classifier, a linear layer from the embedding to the
  identities of the training set. The classifier only exists to train the embeddings: its size
  depends on the training data, it is never used at inference and must not travel with an
  exported or fine-tuned network, so it belongs to the loss, as it belongs to ``MotLoss`` in the
  original code, not to the head.
- :class:`UncertaintyWeighting` balances the detection and identity losses with two learnt
  log-variances (Kendall et al. 2018), FairMOT's default; a fixed weight is the alternative.
- :class:`FairMOTLoss` is the detection loss (:class:`~centernet_lightning.models.criterion.CenterNetLoss`)
  extended with these two: the detection heads' loop is the detector's own.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..decode import gather_cells
from ..structures import Batch
from .criterion import CenterNetLoss
from .detector import CenterNetDetector, Outputs

__all__ = ["IdentityLoss", "UncertaintyWeighting", "FairMOTLoss", "LOSS_WEIGHTINGS", "fairmot_embedding_scale"]

LOSS_WEIGHTINGS = ("uncertainty", "fixed")


def fairmot_embedding_scale(num_identities: int) -> float:
    """``sqrt(2) * log(num_identities - 1)``: the norm FairMOT (after JDE, Wang et al. 2020) gives the
    normalised embedding before the identity classifier.

    A unit-norm input caps every logit at the classifier's weight norm, and softmax over C classes
    then cannot get near one-hot; L2-constrained softmax (Ranjan et al. 2017) shows the norm must
    grow like ``log(C - 1)`` for the target class to reach a given probability. Defined for
    ``num_identities >= 3`` (it is 0 for 2 identities).
    """
    if num_identities < 3:
        raise ValueError(
            f"FairMOT's embedding scale sqrt(2) * log(num_identities - 1) needs num_identities >= 3, got "
            f"{num_identities}; set embedding_scale explicitly"
        )
    return math.sqrt(2) * math.log(num_identities - 1)


class IdentityLoss(nn.Module):
    """FairMOT's identity loss: classify each object's embedding into the training set's identities.

    The embedding at an object's peak cell is L2-normalised, scaled by ``embedding_scale``
    (default :func:`fairmot_embedding_scale`), and a linear classifier ``dim -> num_identities``
    gives logits for a cross-entropy against the object's identity. Objects without an identity
    (-1) are ignored, as the original's ``CrossEntropyLoss(ignore_index=-1)``; with none at all the
    loss is 0 (the original gives NaN).

    Args:
        dim: embedding channels of the re-ID head.
        num_identities: identities of the training set; identities are ``0 .. num_identities - 1``,
            unique across the whole training set (not per sequence).
        embedding_scale: the norm of the classifier's input; None takes FairMOT's value.
    """

    def __init__(self, dim: int, num_identities: int, embedding_scale: float | None = None) -> None:
        super().__init__()
        if num_identities < 1:
            raise ValueError(f"num_identities must be >= 1, got {num_identities}")
        self.num_identities = num_identities
        self.embedding_scale = (
            fairmot_embedding_scale(num_identities) if embedding_scale is None else float(embedding_scale)
        )
        self.classifier = nn.Linear(dim, num_identities)

    def forward(self, output: Tensor, indices: Tensor, identities: Tensor) -> Tensor:
        """The mean cross-entropy over objects with an identity.

        Args:
            output: the re-ID head's raw output [B, D, H, W].
            indices: int64 [B, N] flat peak cell ``y * W + x`` of every object.
            identities: int64 [B, N] identity of every object, -1 where it has none (padding,
                ignored or degenerate objects too).
        """
        if identities.numel() and int(identities.max()) >= self.num_identities:
            raise ValueError(
                f"Identity {int(identities.max())} in the batch, but the model has num_identities="
                f"{self.num_identities} (identities must be 0 .. {self.num_identities - 1}, -1 for none)"
            )
        embeddings = gather_cells(output.float(), indices)  # [B, N, D]
        logits = self.classifier(self.embedding_scale * F.normalize(embeddings, dim=-1))  # [B, N, num_identities]
        identities = identities.masked_fill(identities < 0, -1)
        # Summed and divided by the count (at least 1) rather than averaged, so a batch with no
        # identity gives 0 instead of NaN, with no data-dependent indexing.
        total = F.cross_entropy(logits.flatten(0, 1), identities.flatten(), ignore_index=-1, reduction="sum")
        return total / (identities >= 0).sum().clamp(min=1)


class UncertaintyWeighting(nn.Module):
    """FairMOT's sum of the detection and identity losses, weighted by learnt task uncertainty.

    ``0.5 * (exp(-s_det) * detection + exp(-s_id) * identity + s_det + s_id)`` with learnable
    log-variances ``s_det``, ``s_id`` (Kendall, Gal & Cipolla, "Multi-Task Learning Using
    Uncertainty to Weigh Losses", CVPR 2018, eq. 7 in the log-variance form). A task whose loss
    stays large gets a larger ``s`` and so a smaller weight; the ``+ s`` terms keep the weights
    from collapsing to 0. The starting values -1.85 and -1.05 are the original's.
    """

    def __init__(self, s_det: float = -1.85, s_id: float = -1.05) -> None:
        super().__init__()
        self.s_det = nn.Parameter(torch.tensor(float(s_det)))
        self.s_id = nn.Parameter(torch.tensor(float(s_id)))

    def forward(self, detection_loss: Tensor, identity_loss: Tensor) -> Tensor:
        weighted = torch.exp(-self.s_det) * detection_loss + torch.exp(-self.s_id) * identity_loss
        return 0.5 * (weighted + self.s_det + self.s_id)


class FairMOTLoss(CenterNetLoss):
    """FairMOT's loss: the detection heads' losses, the identity loss of the ``reid`` head, and their balance.

    Args:
        detector: a detector with a ``reid`` head.
        num_identities, embedding_scale: of the :class:`IdentityLoss` (its classifier is trained here);
            ``num_identities`` None leaves ``identity`` None, for evaluation until a checkpoint sizes it.
        loss_weighting: ``uncertainty`` (FairMOT: :class:`UncertaintyWeighting` with learnt
            ``s_det``, ``s_id``) or ``fixed`` (``detection + weight * reid``, the weight being the
            ``reid`` head's).
        heatmap_method, heatmap_parameter: as for :class:`CenterNetLoss`.

    ``forward(outputs, batch)`` returns every head's unweighted loss, ``detection`` (the weighted sum
    of the detection heads, FairMOT's ``det_loss``) and ``total`` (which can be negative with
    uncertainty weighting: it holds ``(s_det + s_id) / 2``). The batch needs ``track_ids`` [B, N]
    (-1: no identity). In eval mode (validation) only the detection losses are computed: another
    split's identities are other people, numbered on their own, whom the training set's
    classifier cannot name. For stacked outputs every loss is averaged over the stacks.
    """

    separate_heads = ("reid",)

    def __init__(
        self,
        detector: CenterNetDetector,
        num_identities: int | None,
        embedding_scale: float | None = None,
        loss_weighting: str = "uncertainty",
        heatmap_method: str = "cornernet",
        heatmap_parameter: float | None = None,
    ) -> None:
        if loss_weighting not in LOSS_WEIGHTINGS:
            raise ValueError(f"Unknown loss_weighting {loss_weighting!r}; valid names: {list(LOSS_WEIGHTINGS)}")
        if "reid" not in detector.heads[-1]:
            raise ValueError(f"FairMOTLoss needs a detector with a reid head; it has {list(detector.heads[-1])}")
        super().__init__(detector, heatmap_method, heatmap_parameter)
        self.identity: IdentityLoss | None = None
        if num_identities is not None:
            self.identity = IdentityLoss(detector.heads[-1]["reid"].dim, num_identities, embedding_scale)
        self.uncertainty = UncertaintyWeighting() if loss_weighting == "uncertainty" else None
        self.reid_weight = float(detector.heads[-1]["reid"].weight)

    def no_weight_decay(self) -> list[nn.Parameter]:
        """``s_det`` and ``s_id``: log-variances, not weights; weight decay would pull the learnt
        balance towards s = 0 (FairMOT trains them with Adam and no decay)."""
        return list(self.uncertainty.parameters()) if self.uncertainty is not None else []

    def forward(self, outputs: Outputs, batch: Batch) -> dict[str, Tensor]:
        if self.training and "track_ids" not in batch:
            raise ValueError(
                "FairMOT trains on batches with track_ids (identities of the objects); this batch has keys "
                f"{sorted(batch)}: use a tracking dataset, or give every box an identity of its own"
            )
        stacks, targets = self.stacks_and_targets(outputs, batch)
        losses, detection = self.head_losses(stacks, targets)
        losses["detection"] = detection
        if not self.training:
            return losses
        if self.identity is None:
            raise ValueError("FairMOTLoss was built with num_identities=None: it has no identity classifier to train")
        # Objects without a peak (padding, ignore regions, degenerate boxes) have no identity target.
        track_ids = batch["track_ids"].masked_fill(~targets.valid, -1)
        for stack in stacks:
            value = self.identity(stack["reid"], targets.indices, track_ids)
            losses["reid"] = losses.get("reid", 0.0) + value / len(stacks)
        if self.uncertainty is not None:
            losses["total"] = self.uncertainty(detection, losses["reid"])
        else:
            losses["total"] = detection + self.reid_weight * losses["reid"]
        return losses
