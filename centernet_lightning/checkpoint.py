"""Reading checkpoint files safely, and checking that one fits the model and data it is used with.

Every checkpoint the library opens (``--ckpt_path``, ``--model.init_weights``) goes through
:func:`read_checkpoint`: ``torch.load`` with ``weights_only=True`` (never unpickling arbitrary
objects from a user's file) and one error that names the file when it is truncated, corrupt or
not a PyTorch file at all.
"""

from __future__ import annotations

import inspect
import logging
import zipfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, TypeVar

import torch

from .atomic_files import write_file_atomically

__all__ = [
    "read_checkpoint",
    "save_checkpoint",
    "load_trained_module",
    "check_checkpoint_classes",
    "describe_hparam_changes",
]

log = logging.getLogger(__name__)


def read_checkpoint(path: str | Path) -> dict[str, Any]:
    """The dict saved in ``path`` (a Lightning checkpoint or a state dict), loaded on the CPU.

    Raises FileNotFoundError, or ValueError naming the file when it is not a readable checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Checkpoint file not found: {path}")
    is_zip = zipfile.is_zipfile(path)  # torch.save has written zip archives since PyTorch 1.6
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=is_zip)
    except Exception as error:  # torch raises many types here; all mean "cannot use this file"
        # torch's first line says what failed; the rest advises weights_only=False, which would
        # unpickle arbitrary code from the file: not advice to pass on.
        first_line = f"{type(error).__name__}: {(str(error).strip().splitlines() or [''])[0][:300]}"
        if is_zip:
            reason = first_line
        else:
            reason = f"not a zip archive as torch.save writes, and not a legacy-format file either ({first_line})"
        raise ValueError(f"{path} is not a readable checkpoint ({reason})") from None
    if not isinstance(checkpoint, Mapping):
        raise ValueError(f"{path} holds a {type(checkpoint).__name__}, not a checkpoint or state dict")
    return dict(checkpoint)


def save_checkpoint(model: torch.nn.Module, path: str | Path, epoch: int = 0) -> Path:
    """Write ``model`` (a LightningModule with saved hyperparameters) as a checkpoint that
    ``--ckpt_path`` of ``validate``/``predict``/``fit`` accepts (weights and hyperparameters, no
    optimizer state). Written atomically; an existing file is never overwritten (FileExistsError).
    """
    import lightning

    path = Path(path)
    if path.exists():  # before the state dict is gathered
        raise FileExistsError(f"{path} exists; choose another output path (nothing was written)")
    checkpoint = {
        "epoch": epoch,
        "global_step": 0,
        "pytorch-lightning_version": lightning.__version__,
        "state_dict": model.state_dict(),
        "hparams_name": "kwargs",
        "hyper_parameters": dict(getattr(model, "hparams", {})),
    }
    if hasattr(model, "on_save_checkpoint"):  # what Lightning's own saving calls (CenterNet adds "inference")
        model.on_save_checkpoint(checkpoint)
    return write_file_atomically(path, lambda temporary: torch.save(checkpoint, temporary))


ModuleT = TypeVar("ModuleT", bound=torch.nn.Module)


def load_trained_module(
    ckpt_path: str | Path, module_class: type[ModuleT], map_location: str | torch.device = "cpu"
) -> ModuleT:
    """A trained LightningModule (CenterNet, FairMOT) from its checkpoint, in eval mode, without a
    Trainer or a config.

    The file is read safely (``weights_only``), the module rebuilt from its hyperparameters (no
    ImageNet backbone download, no ``init_weights``: every weight comes from the file), the weights
    loaded strictly and ``on_load_checkpoint`` called (CenterNet reads its inference spec there).
    ValueError when the file does not describe a ``module_class``.
    """
    checkpoint = read_checkpoint(ckpt_path)
    if not isinstance(checkpoint.get("state_dict"), Mapping) or not checkpoint.get("hyper_parameters"):
        raise ValueError(
            f"{ckpt_path} has no state_dict with hyper_parameters: a checkpoint written by training or "
            "`centernet convert-weights` is needed, not a bare state dict"
        )
    accepted = set(inspect.signature(module_class.__init__).parameters) - {"self", "init_weights"}
    arguments = {k: v for k, v in checkpoint["hyper_parameters"].items() if k in accepted}  # drops LightningCLI's
    backbone = arguments.get("backbone", "resnet18")
    arguments["backbone"] = {**({"name": backbone} if isinstance(backbone, str) else backbone), "pretrained": False}
    try:
        module = module_class(**arguments)
    except TypeError as error:
        raise ValueError(f"{ckpt_path} does not describe a {module_class.__name__}: {error}") from None
    try:
        module.load_state_dict(checkpoint["state_dict"], strict=True)
    except RuntimeError as error:
        raise ValueError(
            f"The weights in {ckpt_path} do not fit the model its hyperparameters describe: {error}"
        ) from None
    if hasattr(module, "on_load_checkpoint"):
        module.on_load_checkpoint(checkpoint)
    return module.to(map_location).eval()


def check_checkpoint_classes(
    path: str | Path, checkpoint: Mapping[str, Any], num_classes: int, class_names: Sequence[str] | None
) -> None:
    """ValueError when a checkpoint was trained on another number of classes than the data has;
    a warning when the counts agree but the names differ."""
    hparams = checkpoint.get("hyper_parameters") or {}
    trained_classes = hparams.get("num_classes")
    trained_names = hparams.get("class_names")
    if trained_classes is None:
        return
    if int(trained_classes) != int(num_classes):
        raise ValueError(
            f"Checkpoint {path} was trained on {trained_classes} classes ({_names(trained_names)}) but the data "
            f"has {num_classes} ({_names(class_names)}). Use a checkpoint of this dataset, or fine-tune from it "
            "with --model.init_weights (the heatmap head is then re-initialised)."
        )
    if trained_names and class_names and list(trained_names) != list(class_names):
        log.warning(
            "Checkpoint %s names its %d classes %s, the data %s: labels are matched by position.",
            path,
            num_classes,
            list(trained_names),
            list(class_names),
        )


def describe_hparam_changes(configured: Mapping[str, Any], from_checkpoint: Mapping[str, Any]) -> list[str]:
    """``key: configured -> checkpoint`` for every model setting a checkpoint changes."""
    ignored = {"num_classes", "class_names", "init_weights"}  # linked from the data / fine-tuning only
    changes = []
    for key in sorted(set(configured) & set(from_checkpoint) - ignored):
        if _comparable(configured[key]) != _comparable(from_checkpoint[key]):
            changes.append(f"{key}: {configured[key]!r} -> {from_checkpoint[key]!r}")
    return changes


def _comparable(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {k: _comparable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_comparable(v) for v in value]
    return value


def _names(names: Sequence[str] | None) -> str:
    if not names:
        return "names unknown"
    shown = ", ".join(map(str, list(names)[:10]))
    return shown + (", ..." if len(names) > 10 else "")
