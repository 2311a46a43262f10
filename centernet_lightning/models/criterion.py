"""The loss of a batch: targets encoded once, every head's loss on them, and their weighted total.

:class:`CenterNetLoss` is the one loss object of the library. A task that adds a head with a loss
of its own extends it: FairMOT's :class:`~centernet_lightning.models.reid.FairMOTLoss` adds the
identity term and its uncertainty weighting, and leaves the detection heads' loop here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from ..structures import Batch
from ..targets import CenterTargets, encode_targets, gaussian_radii
from .detector import AUX_OUTPUTS, CenterNetDetector, Outputs

__all__ = ["CenterNetLoss"]


class CenterNetLoss(nn.Module):
    """Losses of a batch for a :class:`~centernet_lightning.models.CenterNetDetector`'s outputs.

    Args:
        detector: the network whose heads' losses are computed (each head owns its loss and weight).
        heatmap_method, heatmap_parameter: the Gaussian radius rule of the heatmap target (see
            :func:`~centernet_lightning.targets.gaussian_radii`).

    ``forward(outputs, batch)`` takes the detector's output dict and a
    :class:`~centernet_lightning.structures.Batch` (``bboxes``, ``labels``, ``mask``, optional
    ``ignore`` and ``keypoints``) and returns every head's unweighted loss, ``total`` (the weighted sum the
    optimiser minimises) and, for stacked models, ``stack<i>`` (stack i's weighted sum). Stacked
    outputs (``aux_outputs``) are supervised too, every head's loss averaged over the stacks, as
    the original does for Hourglass-104 (``loss / num_stacks`` per stack).
    """

    # Heads whose loss a subclass computes itself (they need parts the detector lacks).
    separate_heads: tuple[str, ...] = ()

    def __init__(
        self, detector: CenterNetDetector, heatmap_method: str = "cornernet", heatmap_parameter: float | None = None
    ) -> None:
        super().__init__()
        gaussian_radii(torch.ones(1), torch.ones(1), heatmap_method, heatmap_parameter)  # fail early on a bad name
        # A plain list, not registered: the heads are the detector's modules (and its state dict's).
        self._heads: list[nn.ModuleDict] = list(detector.heads)
        self.num_classes = detector.num_classes
        self.stride = detector.stride
        self.heatmap_method = heatmap_method
        self.heatmap_parameter = heatmap_parameter
        # Joints shape the targets (and which boxes are regressed) only for a model that learns them.
        self.learns_keypoints = any(hasattr(head, "num_keypoints") for head in detector.heads[-1].values())

    def encode_targets(self, batch: Batch | Mapping[str, Any], height: int, width: int) -> CenterTargets:
        """The batch's targets on a ``height x width`` grid; ignore regions are not learnt (the one
        place their mask is built)."""
        mask = batch["mask"] & ~batch["ignore"] if "ignore" in batch else batch["mask"]
        return encode_targets(
            batch["bboxes"],
            batch["labels"],
            mask,
            self.num_classes,
            height,
            width,
            self.stride,
            self.heatmap_method,
            self.heatmap_parameter,
            batch.get("keypoints") if self.learns_keypoints else None,
        )

    def forward(self, outputs: Outputs, batch: Batch | Mapping[str, Any]) -> dict[str, Tensor]:
        stacks, targets = self.stacks_and_targets(outputs, batch)
        losses, detection = self.head_losses(stacks, targets)
        losses["total"] = detection
        return losses

    def no_weight_decay(self) -> list[nn.Parameter]:
        """The loss's parameters that are not weights, to be trained without weight decay (none here)."""
        return []

    def stacks_and_targets(
        self, outputs: Outputs, batch: Batch | Mapping[str, Any]
    ) -> tuple[list[Outputs], CenterTargets]:
        """The outputs of every stack (earliest first) and the batch's targets, encoded once."""
        stacks = [*outputs.get(AUX_OUTPUTS, []), outputs]
        height, width = outputs["heatmap"].shape[-2:]
        return stacks, self.encode_targets(batch, height, width)

    def head_losses(self, stacks: Sequence[Outputs], targets: CenterTargets) -> tuple[dict[str, Tensor], Tensor]:
        """Every head's unweighted loss averaged over the stacks (``stack<i>``: stack i's weighted
        sum, for stacked models), and the weighted sum over heads and stacks / number of stacks."""
        num_stacks = len(stacks)
        losses: dict[str, Tensor] = {}
        detection: Tensor | float = 0.0
        for index, (heads, stack) in enumerate(zip(self._heads[-num_stacks:], stacks)):
            stack_total: Tensor | float = 0.0
            for name, head in heads.items():
                if name in self.separate_heads:
                    continue
                value = head.loss(stack[name], targets)
                losses[name] = losses.get(name, 0.0) + value / num_stacks
                stack_total = stack_total + head.weight * value
                detection = detection + head.weight * value / num_stacks
            if num_stacks > 1:
                losses[f"stack{index}"] = stack_total
        return losses, detection  # type: ignore[return-value]
