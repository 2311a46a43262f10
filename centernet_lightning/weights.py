"""Reading weight files safely, and loading them into a network: the one weight-file loader.

Every file the library reads weights from goes through :func:`read_checkpoint`: ``torch.load``
with ``weights_only=True`` (never unpickling arbitrary objects from a user's file) and one error
that names the file when it is truncated, corrupt or not a PyTorch file at all. Then:

- :func:`load_state_dict_file` puts a file's weights into a network that must take all of them
  (a local ``pretrained`` file of a torchvision or Hourglass backbone);
- :func:`load_matching_weights` puts in those that fit and reports the rest (``init_weights``:
  fine-tuning from a checkpoint of another class count or task);
- :func:`read_state_dict` gives the tensors themselves (original CenterNet checkpoints, whose keys
  ``models/original_weights.py`` maps onto ours).

timm backbones read their ``pretrained`` file through timm itself, which maps a classifier's
state dict onto its ``features_only`` wrapper.
"""

from __future__ import annotations

import logging
import os
import pickle
import re
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

__all__ = [
    "PretrainedWeightsUnavailable",
    "read_checkpoint",
    "read_state_dict",
    "load_state_dict_file",
    "load_matching_weights",
    "rename_prefixes",
]

log = logging.getLogger(__name__)


class PretrainedWeightsUnavailable(RuntimeError):
    """``pretrained: true`` could not download a backbone's weights (no network, no cached copy)."""

    def __init__(self, name: str, error: BaseException) -> None:
        # One line: the download error's first line, what true needs, and how to do without it.
        reason = f"{type(error).__name__}: {(str(error).strip().splitlines() or [''])[0][:200]}"
        super().__init__(
            f"Could not download pretrained weights for {name!r} ({reason}): pretrained=True needs a network "
            "connection, or the weights in the download cache. Offline, give a local weights file, "
            f"pretrained=<path to a state-dict file> (a config's backbone: {{name: {name}, pretrained: "
            "/path/weights.pth}), or train from scratch with pretrained=False."
        )


def read_checkpoint(path: str | os.PathLike) -> dict[str, Any]:
    """The dict saved in ``path`` (a Lightning checkpoint or a state dict), loaded on the CPU.

    Raises FileNotFoundError, or ValueError naming the file when it is not a readable checkpoint,
    or when it holds pickled objects other than weights (code, arbitrary classes): those are
    refused unread, never run.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Checkpoint file not found: {path}")
    is_zip = zipfile.is_zipfile(path)  # torch.save has written zip archives since PyTorch 1.6
    if is_zip and _is_torchscript_archive(path):
        raise ValueError(
            f"{path} is a TorchScript export, not a checkpoint: load it with torch.jit.load; the commands "
            "take the checkpoint (.ckpt) it was exported from, or its ONNX, OpenVINO or TensorRT export "
            "(.onnx, .xml, .engine)"
        )
    try:
        checkpoint = torch.load(path, map_location="cpu", weights_only=True, mmap=is_zip)
    except Exception as error:  # torch raises many types here; all mean "cannot use this file"
        lines = [line.strip() for line in str(error).strip().splitlines() if line.strip()]
        if isinstance(error, pickle.UnpicklingError) and str(error).startswith("Weights only load failed"):
            # torch's message advises weights_only=False, which would run the file's code. A GLOBAL
            # is a function or class the pickle would call or build: a payload, refused unread.
            # Anything else it refused (an unknown opcode) means a damaged or foreign file.
            refused = re.search(r"GLOBAL ([\w.]+)", str(error))
            if refused:
                raise ValueError(
                    f"{path} holds pickled Python objects that are not weights (it would call or build "
                    f"{refused[1]}); they were refused unread: load only checkpoints written by this project "
                    "or plain state dicts"
                ) from None
            detail = re.search(r"Unsupported operand[^\n.]*", str(error))
            lines = [detail[0] if detail else "weights-only unpickling failed"]
        # torch's first line says what failed; the rest advises weights_only=False, which would
        # unpickle arbitrary code from the file: not advice to pass on.
        first_line = (lines or [""])[0]
        first_line = re.split(r"\s*(?:Re-running torch\.load|In PyTorch 2\.6|weights_only=False)", first_line)[0]
        first_line = f"{type(error).__name__}: {first_line[:300]}"
        if is_zip:
            reason = first_line
        else:
            reason = f"not a zip archive as torch.save writes, and not a legacy-format file either ({first_line})"
        raise ValueError(f"{path} is not a readable checkpoint ({reason})") from None
    if not isinstance(checkpoint, Mapping):
        raise ValueError(f"{path} holds a {type(checkpoint).__name__}, not a checkpoint or state dict")
    return dict(checkpoint)


def _is_torchscript_archive(path: Path) -> bool:
    """Whether a zip file is a ``torch.jit.save`` archive (its code folder and constants) rather
    than a ``torch.save`` checkpoint."""
    with zipfile.ZipFile(path) as archive:
        return any(
            name.endswith(("/constants.pkl", "/code/")) or "/code/__torch__" in name for name in archive.namelist()
        )


def read_state_dict(path: str | os.PathLike) -> dict[str, Tensor]:
    """The tensors of a weight file: a Lightning checkpoint's ``state_dict``, an original CenterNet
    ``{'epoch', 'state_dict'}`` file or a bare state dict, with DataParallel's ``module.`` prefixes
    removed. ValueError naming the file when it holds no state dict of tensors."""
    content = read_checkpoint(path)
    state_dict = content.get("state_dict", content)
    if not isinstance(state_dict, Mapping) or not all(isinstance(v, Tensor) for v in state_dict.values()):
        raise ValueError(f"{path} holds no state dict of tensors (found {type(state_dict).__name__})")
    return {key.removeprefix("module."): tensor for key, tensor in state_dict.items()}


def load_state_dict_file(model: nn.Module, path: str | os.PathLike, ignore_prefixes: tuple[str, ...] = ()) -> None:
    """Load every weight of ``model`` from ``path`` (keys under ``ignore_prefixes`` may be missing,
    e.g. a classifier's ``fc.``); extra keys in the file are ignored with a warning.

    Raises FileNotFoundError, or ValueError naming the file when its tensors do not fit.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Pretrained weights file not found: {path}")
    state_dict = read_state_dict(path)
    try:
        missing, unexpected = model.load_state_dict(state_dict, strict=False)
    except RuntimeError as error:  # tensors of another shape: weights of a different architecture
        raise ValueError(f"{path} does not fit this backbone: {error}") from error
    missing = [key for key in missing if not key.startswith(ignore_prefixes)]
    if missing:
        raise ValueError(f"{path} does not fit this backbone; missing keys: {missing[:8]}")
    if unexpected:
        log.warning("Ignored %d unexpected keys in %s, e.g. %s", len(unexpected), path, unexpected[:4])


def rename_prefixes(state: dict[str, Any], renamed: Mapping[str, str]) -> dict[str, Any]:
    """``state`` with keys starting with an old prefix of ``renamed`` moved to its new prefix
    (checkpoints written before a module moved), in place; returns ``state``."""
    for key in [key for key in state if key.startswith(tuple(renamed))]:
        old = next(prefix for prefix in renamed if key.startswith(prefix))
        state[renamed[old] + key[len(old) :]] = state.pop(key)
    return state


def load_matching_weights(
    model: nn.Module, path: str | os.PathLike, renamed_prefixes: Mapping[str, str] | None = None
) -> None:
    """Load the weights of ``path`` that fit ``model`` (fine-tuning: ``init_weights``).

    Keys are first renamed by ``renamed_prefixes`` (:func:`rename_prefixes`). Tensors missing from
    the file or of another shape (a heatmap head with a different class count) keep their current
    values; each group is reported with a warning. ValueError when nothing fits.
    """
    state = rename_prefixes(read_state_dict(path), renamed_prefixes or {})
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
