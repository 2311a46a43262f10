"""The re-ID head of FairMOT and the losses that train it.

FairMOT (Zhang et al., "FairMOT: On the Fairness of Detection and Re-Identification in Multiple
Object Tracking", IJCV 2021) adds one head to CenterNet: an embedding of ``dim`` channels at every
output cell. An object's embedding is the one at its peak cell; the tracker compares L2-normalised
embeddings by cosine distance.

Where each piece lives, and why:

- :class:`ReIDHead` is part of the network (``models/heads.py`` registers it as ``reid``): it
  computes the embedding map and is exported with the detector.
- :class:`IdentityLoss` owns the identity classifier, a linear layer from the embedding to the
  identities of the training set. The classifier only exists to train the embeddings: its size
  depends on the training data, it is never used at inference and must not travel with an
  exported or fine-tuned network, so it belongs to the training module (``FairMOT``), as it
  belongs to ``MotLoss`` in the original code, not to the head.
- :class:`UncertaintyWeighting` balances the detection and identity losses with two learnt
  log-variances (Kendall et al. 2018), FairMOT's default; a fixed weight is the alternative.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..decode import gather_cells
from ..targets import CenterTargets
from .heads import Head

__all__ = ["ReIDHead", "IdentityLoss", "UncertaintyWeighting", "fairmot_embedding_scale"]


class ReIDHead(Head):
    """Re-ID embeddings [B, dim, H, W] at every output cell (raw, not normalised).

    As FairMOT's ``id`` head: ``depth`` x (3x3 conv + ReLU) and a 1x1 conv to ``dim`` channels,
    all biases starting at 0 (the original ``fill_fc_weights``). ``dim`` is 64 by default; the
    original code uses 128 (512 in its first release), and the paper finds low dimensions better
    when re-ID data is scarce. ``weight`` is the identity loss's factor when the detection and
    re-ID losses are summed with fixed weights.

    The head has no loss of its own: the identity loss needs the classifier of
    :class:`IdentityLoss`, which the training module owns. Detection decoding and export ignore
    the ``reid`` output; :meth:`decode_embeddings` gathers it at the detections' peak cells.
    """

    def __init__(
        self,
        in_channels: int,
        dim: int = 64,
        width: int = 256,
        depth: int = 1,
        loss: str = "cross_entropy",
        weight: float = 1.0,
        init_bias: float = 0.0,
    ) -> None:
        if dim < 1:
            raise ValueError(f"heads.reid.dim must be >= 1, got {dim}")
        if loss != "cross_entropy":
            raise ValueError(f"Unknown re-ID loss {loss!r}; valid names: ['cross_entropy']")
        self.out_channels = dim
        super().__init__(in_channels, width, depth, loss, weight, init_bias)
        for layer in self.layers:  # every conv bias at 0, the original's fill_fc_weights
            if isinstance(layer, nn.Conv2d):
                nn.init.zeros_(layer.bias)
        self.dim = dim

    def loss(self, output: Tensor, targets: CenterTargets) -> Tensor:
        raise RuntimeError(
            "The reid head's loss needs the identity classifier of IdentityLoss, which the training module owns: "
            "train a re-ID head with centernet_lightning.models.FairMOT, not CenterNet"
        )

    def merge_flipped(self, output: Tensor, mirrored_output: Tensor) -> Tensor:
        """The un-mirrored embeddings [B, D, H, W] alone: an embedding describes one view of the
        object, and the original FairMOT has no flip test to follow."""
        return output

    @staticmethod
    def decode_embeddings(output: Tensor, indices: Tensor) -> Tensor:
        """Unit-norm embeddings [B, K, D] (float32) at the flat cells ``indices`` [B, K], as FairMOT's
        tracker normalises the ``id`` map and gathers it at the detections' peaks."""
        return F.normalize(gather_cells(output.float(), indices), dim=-1)


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
