"""What inference needs to know about a trained model, kept in its checkpoint.

``centernet predict --ckpt_path best.ckpt`` needs no config: the checkpoint's ``"inference"`` entry
(written by :meth:`CenterNet.on_save_checkpoint <centernet_lightning.models.CenterNet>`) holds the
input size, the letterbox placement, the normalisation, the class names and the dataset's
category ids. Checkpoints written before it existed fall back to the data module's hyperparameters
Lightning saved beside the model's.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from ..preprocess import IMAGENET_MEAN, IMAGENET_STD, PAD_POSITIONS

__all__ = ["InferenceSpec", "DEFAULT_INPUT_SIZE"]

log = logging.getLogger(__name__)

DEFAULT_INPUT_SIZE = 512
CHECKPOINT_KEY = "inference"


@dataclass
class InferenceSpec:
    """The preprocessing and the label meaning of a trained model.

    Attributes:
        input_size: side of the square network input in pixels (the letterbox target).
        pad_position: ``center`` or ``top_left`` placement of the image in the letterbox.
        mean, std: RGB normalisation of ``pixel / 255`` (ImageNet's, the only one supported).
        class_names: the name of each contiguous label, or None.
        category_ids: the dataset's id of each contiguous label (COCO ids for COCO-format data,
            the label itself for other formats), or None when unknown.
    """

    input_size: int = DEFAULT_INPUT_SIZE
    pad_position: str = "center"
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    class_names: list[str] | None = None
    category_ids: list[int] | None = field(default=None)

    def __post_init__(self) -> None:
        if self.pad_position not in PAD_POSITIONS:
            raise ValueError(f"pad_position must be one of {PAD_POSITIONS}, got {self.pad_position!r}")
        self.mean, self.std = tuple(float(v) for v in self.mean), tuple(float(v) for v in self.std)
        if self.mean != IMAGENET_MEAN or self.std != IMAGENET_STD:
            raise ValueError(
                f"The model was trained with mean {self.mean} / std {self.std}; this version preprocesses with "
                f"ImageNet's {IMAGENET_MEAN} / {IMAGENET_STD} only"
            )
        if self.category_ids is not None and self.class_names is not None:
            if len(self.category_ids) != len(self.class_names):
                raise ValueError(f"{len(self.category_ids)} category_ids for {len(self.class_names)} class_names")

    def label_to_category_id(self, num_classes: int) -> list[int]:
        """The category id of each label, the label itself when none are stored."""
        return list(self.category_ids) if self.category_ids is not None else list(range(num_classes))

    def to_dict(self) -> dict[str, Any]:
        values = asdict(self)
        return {**values, "mean": list(self.mean), "std": list(self.std)}

    @classmethod
    def from_datamodule(cls, datamodule: Any, class_names: list[str] | None) -> InferenceSpec:
        """The spec of a model trained on ``datamodule`` (its ``input_size`` and ``category_ids``)."""
        input_size = getattr(datamodule, "hparams", {}).get("input_size") or DEFAULT_INPUT_SIZE
        return cls(
            input_size=int(input_size), class_names=class_names, category_ids=getattr(datamodule, "category_ids", None)
        )

    @classmethod
    def from_checkpoint(cls, checkpoint: Mapping[str, Any]) -> InferenceSpec:
        """The spec of a checkpoint dict: its ``inference`` entry, else what the data module and
        model hyperparameters say (older checkpoints), else the defaults."""
        stored = checkpoint.get(CHECKPOINT_KEY)
        if isinstance(stored, Mapping):
            known = {name: stored[name] for name in cls.__dataclass_fields__ if name in stored}
            return cls(**known)
        data = checkpoint.get("datamodule_hyper_parameters") or {}
        hparams = checkpoint.get("hyper_parameters") or {}
        input_size = data.get("input_size") if isinstance(data, Mapping) else None
        if not input_size:
            log.warning("The checkpoint stores no input size; using %d", DEFAULT_INPUT_SIZE)
        return cls(input_size=int(input_size or DEFAULT_INPUT_SIZE), class_names=hparams.get("class_names"))
