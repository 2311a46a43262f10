"""Optimizers and learning-rate schedules by name, from ``torch.optim``."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LambdaLR

__all__ = ["build_optimizer", "build_scheduler", "warmup_cosine_factor"]

DEFAULT_OPTIMIZER = {"name": "AdamW", "lr": 1e-3, "weight_decay": 1e-4}


def _torch_class(module: Any, name: str, base: type, kind: str) -> type:
    cls = getattr(module, name, None)
    if not (isinstance(cls, type) and issubclass(cls, base)) or cls is base:
        valid = sorted(
            n for n, c in vars(module).items() if isinstance(c, type) and issubclass(c, base) and c is not base
        )
        raise ValueError(f"Unknown {kind} {name!r}; valid names: {valid}")
    return cls


def build_optimizer(params: Iterable[torch.nn.Parameter], spec: Mapping[str, Any] | None) -> Optimizer:
    """``{name: "AdamW", lr: 1e-3, ...}`` -> ``torch.optim.AdamW(params, lr=1e-3, ...)``."""
    spec = dict(spec or DEFAULT_OPTIMIZER)
    name = spec.pop("name", "AdamW")
    return _torch_class(torch.optim, name, Optimizer, "optimizer")(params, **spec)


def warmup_cosine_factor(step: int, warmup_steps: int, total_steps: int, min_lr_ratio: float = 0.0) -> float:
    """Learning-rate factor: linear warmup from ~0 to 1 over ``warmup_steps``, then cosine to ``min_lr_ratio``."""
    if step < warmup_steps:
        return (step + 1) / warmup_steps
    progress = min(1.0, (step - warmup_steps) / max(1, total_steps - warmup_steps))
    return min_lr_ratio + (1 - min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def build_scheduler(optimizer: Optimizer, spec: Mapping[str, Any], total_steps: int) -> dict[str, Any]:
    """A Lightning ``lr_scheduler`` config from ``{name, interval, **params}``.

    ``warmup_cosine`` (stepped per batch): ``warmup_steps`` (default 0) and ``min_lr_ratio``
    (default 0). Any other name is a ``torch.optim.lr_scheduler`` class with its own parameters,
    stepped per ``interval`` (default ``epoch``).
    """
    spec = dict(spec)
    name = spec.pop("name")
    if name == "warmup_cosine":
        warmup_steps = int(spec.pop("warmup_steps", 0))
        min_lr_ratio = float(spec.pop("min_lr_ratio", 0.0))
        if spec:
            raise ValueError(f"Unknown warmup_cosine parameters: {sorted(spec)}")
        scheduler = LambdaLR(
            optimizer, lambda step: warmup_cosine_factor(step, warmup_steps, total_steps, min_lr_ratio)
        )
        return {"scheduler": scheduler, "interval": "step"}
    # Keys of Lightning's scheduler config, not of the scheduler (monitor: e.g. ReduceLROnPlateau).
    lightning_keys = {key: spec.pop(key) for key in ("interval", "frequency", "monitor") if key in spec}
    lightning_keys.setdefault("interval", "epoch")
    if name == "ReduceLROnPlateau":
        lightning_keys.setdefault("monitor", "val/AP")
        spec.setdefault("mode", "max")
    cls = getattr(torch.optim.lr_scheduler, name, None)
    if not isinstance(cls, type) or not hasattr(cls, "step"):
        valid = sorted(
            n for n, c in vars(torch.optim.lr_scheduler).items() if isinstance(c, type) and hasattr(c, "step")
        )
        raise ValueError(f"Unknown lr_scheduler {name!r}; valid names: {valid}")
    return {"scheduler": cls(optimizer, **spec), **lightning_keys}
