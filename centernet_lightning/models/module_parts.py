"""What the CenterNet and FairMOT LightningModules share beyond the network: fine-tuning weights,
set-up from the data module, batches whose every image was skipped, predictions mapped back to
the original images. Plain functions, not a base class: each module stays its own composition.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import Tensor

from ..checkpoint import read_checkpoint
from ..inference.spec import InferenceSpec
from ..structures import Batch, letterbox_inverse

__all__ = ["load_weights", "setup_from_data", "zero_loss", "in_original_pixels"]

log = logging.getLogger(__name__)


def setup_from_data(module: L.LightningModule, stage: str) -> None:
    """What a module takes from its trainer's data module at ``setup``: an example input (the model
    summary reports real FLOPs and output shapes), the inference spec when fitting, and the
    ``init_weights`` file, loaded once."""
    datamodule = getattr(module._trainer, "datamodule", None)
    input_size = getattr(datamodule, "hparams", {}).get("input_size")
    if input_size:
        module.example_input_array = torch.zeros(1, 3, input_size, input_size)
    if stage == "fit" and datamodule is not None:
        module.inference_spec = InferenceSpec.from_datamodule(datamodule, module.hparams.class_names)
    if module.hparams.init_weights and not getattr(module, "_weights_loaded", False):
        load_weights(module, module.hparams.init_weights)
        module._weights_loaded = True


def zero_loss(module: torch.nn.Module) -> Tensor:
    """The loss of a batch whose every image was skipped: zero, but in the graph (not None), since
    under DDP every rank must run backward."""
    return sum(p.sum() for p in module.parameters() if p.requires_grad) * 0.0


def in_original_pixels(detections: dict[str, Any], batch: Batch) -> dict[str, Any]:
    """``detections`` (input pixels) with boxes in ORIGINAL image pixels, and each image's id and path."""
    return {
        **detections,
        "bboxes": letterbox_inverse(detections["bboxes"], batch["letterbox"], batch["original_sizes"]),
        "image_ids": batch["image_ids"],
        "image_paths": batch["image_paths"],
    }


def load_weights(model: torch.nn.Module, path: str | Path) -> None:
    """Load matching weights from a Lightning checkpoint or a state-dict file (fine-tuning).

    Tensors missing from the file or of another shape (a head with a different class count) keep
    their current values; each group is reported with a warning.
    """
    state = read_checkpoint(path)
    state = state.get("state_dict", state)
    own = model.state_dict()
    matching = {k: v for k, v in state.items() if k in own and own[k].shape == v.shape}
    mismatched = sorted(k for k, v in state.items() if k in own and own[k].shape != v.shape)
    missing = sorted(k for k in own if k not in state)
    if not matching:
        raise ValueError(f"{path} has no weights that fit this model (keys like {list(state)[:3]})")
    model.load_state_dict(matching, strict=False)
    if mismatched:
        log.warning("Re-initialised %d tensors whose shape differs in %s: %s", len(mismatched), path, mismatched)
    if missing:
        log.warning("%d tensors are not in %s and keep their initialisation: %s", len(missing), path, missing[:8])
