"""Optimizers and learning-rate schedules by name: explicit tables of ``torch.optim``'s classes."""

from __future__ import annotations

import inspect
import math
from collections.abc import Iterable, Mapping
from typing import Any

import torch
from torch.optim import Optimizer, lr_scheduler
from torch.optim.lr_scheduler import LambdaLR

__all__ = [
    "OPTIMIZERS",
    "SCHEDULERS",
    "build_optimizer",
    "build_scheduler",
    "check_optimization_config",
    "warmup_cosine_factor",
]

DEFAULT_OPTIMIZER = {"name": "AdamW", "lr": 1e-3, "weight_decay": 1e-4}

OPTIMIZERS: dict[str, type[Optimizer]] = {
    "SGD": torch.optim.SGD,
    "Adam": torch.optim.Adam,
    "AdamW": torch.optim.AdamW,
    "Adamax": torch.optim.Adamax,
    "NAdam": torch.optim.NAdam,
    "RAdam": torch.optim.RAdam,
    "RMSprop": torch.optim.RMSprop,
    "Adagrad": torch.optim.Adagrad,
    "Adadelta": torch.optim.Adadelta,
    "ASGD": torch.optim.ASGD,
    "Rprop": torch.optim.Rprop,
}
# ``warmup_cosine`` (ours, stepped per batch) and these torch schedulers, configured by their own
# arguments (schedulers taking a function, as LambdaLR, cannot come from a config).
SCHEDULERS: dict[str, type] = {
    "StepLR": lr_scheduler.StepLR,
    "MultiStepLR": lr_scheduler.MultiStepLR,
    "ExponentialLR": lr_scheduler.ExponentialLR,
    "CosineAnnealingLR": lr_scheduler.CosineAnnealingLR,
    "CosineAnnealingWarmRestarts": lr_scheduler.CosineAnnealingWarmRestarts,
    "OneCycleLR": lr_scheduler.OneCycleLR,
    "CyclicLR": lr_scheduler.CyclicLR,
    "LinearLR": lr_scheduler.LinearLR,
    "ConstantLR": lr_scheduler.ConstantLR,
    "PolynomialLR": lr_scheduler.PolynomialLR,
    "ReduceLROnPlateau": lr_scheduler.ReduceLROnPlateau,
}


def _checked_arguments(cls: type, spec: dict[str, Any], config_key: str) -> dict[str, Any]:
    """``spec`` checked against the signature of ``cls``: ValueError naming the config key and value.

    torch.optim reports a wrong type from deep inside (``'<=' not supported between 'float' and
    'str'``), so keys and types are checked here. Numbers written as strings (PyYAML reads
    ``1e-3`` without a dot as a string) are converted.
    """
    parameters = inspect.signature(cls).parameters
    accepts_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values())
    valid = sorted(
        k for k, p in parameters.items() if k not in ("self", "params", "optimizer") and p.kind.name != "VAR_KEYWORD"
    )
    checked = {}
    for key, value in spec.items():
        if key not in parameters and not accepts_any:
            raise ValueError(f"{config_key}.{key}: {cls.__name__} has no parameter {key!r}; valid keys: {valid}")
        default = parameters[key].default if key in parameters else None
        annotation = parameters[key].annotation if key in parameters else None
        wants_number = isinstance(default, (int, float)) and not isinstance(default, bool)
        wants_number |= default is inspect.Parameter.empty and annotation in (int, float, "int", "float")
        if wants_number and not isinstance(value, bool):
            if isinstance(value, str):
                try:
                    value = float(value)
                except ValueError:
                    raise ValueError(f"{config_key}.{key} must be a number, got {value!r}") from None
            elif not isinstance(value, (int, float)):
                raise ValueError(f"{config_key}.{key} must be a number, got {value!r}")
        elif isinstance(default, bool) and not isinstance(value, bool):
            raise ValueError(f"{config_key}.{key} must be true or false, got {value!r}")
        elif isinstance(default, tuple) and not isinstance(value, (list, tuple)):
            raise ValueError(f"{config_key}.{key} must be a list like {list(default)}, got {value!r}")
        checked[key] = value
    return checked


def _construct(cls: type, first: Any, arguments: dict[str, Any], config_key: str) -> Any:
    try:
        return cls(first, **arguments)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{config_key}: {cls.__name__} rejects the settings {arguments}: {error}") from error


def build_optimizer(
    params: Iterable[torch.nn.Parameter], spec: Mapping[str, Any] | None, config_key: str = "model.optimizer"
) -> Optimizer:
    """``{name: "AdamW", lr: 1e-3, ...}`` -> ``torch.optim.AdamW(params, lr=1e-3, ...)``.

    Bad keys or values raise a ValueError naming ``config_key.<key>`` and the value.
    """
    spec = dict(spec or DEFAULT_OPTIMIZER)
    name = spec.pop("name", "AdamW")
    if name not in OPTIMIZERS:
        raise ValueError(f"Unknown optimizer {name!r}; valid names: {sorted(OPTIMIZERS)}")
    cls = OPTIMIZERS[name]
    return _construct(cls, params, _checked_arguments(cls, spec, config_key), config_key)


def check_optimization_config(optimizer: Mapping[str, Any] | None, lr_scheduler: Mapping[str, Any] | None) -> None:
    """Build the optimizer and scheduler of a config on a dummy parameter, so a bad setting fails
    when the model is created (naming the key), not after the data is loaded."""
    dummy = build_optimizer([torch.nn.Parameter(torch.zeros(1))], optimizer)
    if lr_scheduler:
        build_scheduler(dummy, lr_scheduler, total_steps=1)


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
    config_key = "model.lr_scheduler"
    if not isinstance(spec, Mapping) or "name" not in spec:
        raise ValueError(f"{config_key} must be a dict with a 'name' key, got {spec!r}")
    spec = dict(spec)
    name = spec.pop("name")
    if name == "warmup_cosine":
        try:
            warmup_steps = int(float(spec.pop("warmup_steps", 0)))  # YAML reads 1e3 as a string
            min_lr_ratio = float(spec.pop("min_lr_ratio", 0.0))
        except (TypeError, ValueError) as error:
            raise ValueError(
                f"{config_key}: warmup_steps must be an integer and min_lr_ratio a number ({error})"
            ) from None
        if spec:
            raise ValueError(
                f"{config_key}: unknown warmup_cosine parameters {sorted(spec)}; valid: min_lr_ratio, warmup_steps"
            )
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
    if name not in SCHEDULERS:
        raise ValueError(f"Unknown lr_scheduler {name!r}; valid names: {sorted(['warmup_cosine', *SCHEDULERS])}")
    cls = SCHEDULERS[name]
    scheduler = _construct(cls, optimizer, _checked_arguments(cls, spec, config_key), config_key)
    return {"scheduler": scheduler, **lightning_keys}
