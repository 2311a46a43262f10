"""Trained models from their checkpoints, models from configs, and checkpoints from models.

Every checkpoint the project writes (``fit``, ``convert-weights``, :func:`save_checkpoint`) names
the LightningModule class that wrote it and holds its hyperparameters, its weights and its
:class:`~centernet_lightning.structures.InferenceSpec`, so :func:`load_model` rebuilds a CenterNet
or a FairMOT from the file alone, without a Trainer or a config.

Checkpoints are serialised in memory and written by
:func:`~centernet_lightning.atomic_files.write_bytes_atomically`, Lightning's too
(:class:`AtomicCheckpointIO`): a full disk raises one
:class:`~centernet_lightning.atomic_files.DiskFullError` naming the file and leaves the earlier
file (``last.ckpt`` of the previous save) as it was, never a partial one that a resume would read.
"""

from __future__ import annotations

import inspect
import io
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import torch
import yaml
from lightning.fabric.plugins import TorchCheckpointIO

from ..atomic_files import remove_stale_temporaries, write_bytes_atomically, write_new_file
from ..weights import read_checkpoint
from .centernet import TASK_KEY, CenterNet
from .fairmot import FairMOT

__all__ = [
    "TASKS",
    "AtomicCheckpointIO",
    "load_model",
    "build_model",
    "save_checkpoint",
    "task_of_checkpoint",
    "use_atomic_checkpoints",
]

TASKS: dict[str, type[CenterNet]] = {"CenterNet": CenterNet, "FairMOT": FairMOT}


def task_of_checkpoint(checkpoint: Mapping[str, Any]) -> type[CenterNet]:
    """The LightningModule class that wrote a checkpoint dict: its ``task`` entry, else (checkpoints
    written before the entry) the class path Lightning's CLI stored, else FairMOT for
    hyperparameters with ``num_identities`` and CenterNet otherwise."""
    name = checkpoint.get(TASK_KEY)
    hparams = checkpoint.get("hyper_parameters") or {}
    if name is None and hparams.get("_class_path"):
        name = str(hparams["_class_path"]).rsplit(".", 1)[-1]
    if name is None:
        name = "FairMOT" if "num_identities" in hparams else "CenterNet"
    if name not in TASKS:
        raise ValueError(f"The checkpoint was written by {name!r}, which is none of {sorted(TASKS)}")
    return TASKS[name]


def _without_download(backbone: str | Mapping[str, Any]) -> dict[str, Any]:
    """The backbone setting with ``pretrained: False``: the weights come from elsewhere."""
    return {**({"name": backbone} if isinstance(backbone, str) else backbone), "pretrained": False}


def load_model(ckpt_path: str | Path, map_location: str | torch.device = "cpu") -> CenterNet:
    """A trained :class:`CenterNet` or :class:`FairMOT` from its checkpoint, in eval mode.

    The file is read safely (``weights_only``), the module rebuilt from its hyperparameters (no
    ImageNet backbone download, no ``init_weights``: every weight comes from the file), its
    ``on_load_checkpoint`` run (the inference spec; older layouts' keys renamed), then the weights
    loaded strictly. ValueError naming the file when it does not describe a model of the project.
    """
    checkpoint = read_checkpoint(ckpt_path)
    if not isinstance(checkpoint.get("state_dict"), Mapping) or not checkpoint.get("hyper_parameters"):
        raise ValueError(
            f"{ckpt_path} has no state_dict with hyper_parameters: a checkpoint written by training or "
            "`centernet convert-weights` is needed, not a bare state dict"
        )
    task = task_of_checkpoint(checkpoint)
    accepted = set(inspect.signature(task.__init__).parameters) - {"self", "init_weights"}
    arguments = {k: v for k, v in checkpoint["hyper_parameters"].items() if k in accepted}  # drops LightningCLI's
    arguments["backbone"] = _without_download(arguments.get("backbone", "resnet18"))
    try:
        module = task(**arguments)
    except TypeError as error:
        raise ValueError(f"{ckpt_path} does not describe a {task.__name__}: {error}") from None
    module.on_load_checkpoint(checkpoint)
    try:
        module.load_state_dict(checkpoint["state_dict"], strict=True)
    except RuntimeError as error:
        raise ValueError(
            f"The weights in {ckpt_path} do not fit the {task.__name__} its hyperparameters describe: {error}"
        ) from None
    return module.to(map_location).eval()


def build_model(
    config: str | Path | Mapping[str, Any],
    num_classes: int | None = None,
    *,
    untrained: bool = False,
    default_num_classes: int | None = None,
    default_keypoint_layout: Mapping[str, Any] | None = None,
    **overrides: Any,
) -> CenterNet:
    """A model with fresh weights from a ``centernet fit`` config (YAML file or dict) or its ``model`` section.

    The section is ``{class_path, init_args}`` (``class_path`` CenterNet or FairMOT, default
    CenterNet). In fit configs the class count comes from the data (and FairMOT's identity count
    from the training split), so pass ``num_classes`` unless the config sets it.

    Args:
        num_classes: the class count; None: the config's, else ``default_num_classes``.
        untrained: random weights throughout (no ImageNet download, no ``init_weights``): for
            ``info``, ``benchmark`` and ``convert-weights``, which overwrite or never use the
            weights. (FairMOT's identity classifier, training-only, is built when ``num_identities``
            is given.)
        default_keypoint_layout: the joints (``{names, skeleton}``) of a model with keypoint heads
            whose config leaves them to the data without naming them in ``data.keypoint_layout``
            (``info`` and ``benchmark`` pass COCO's 17 person joints).
        overrides: init arguments replacing the config's.
    """
    config_path = None
    if isinstance(config, (str, Path)):
        path = config_path = Path(config)
        if not path.is_file():
            raise FileNotFoundError(f"Config file not found: {path}")
        try:
            config = yaml.safe_load(path.read_text()) or {}
        except yaml.YAMLError as error:
            raise ValueError(f"{path} is not valid YAML: {error}") from None
    data_section = config.get("data") if "model" in config else None
    section = dict(config.get("model", config) or {})
    class_path = str(section.pop("class_path", "CenterNet"))
    task_name = class_path.rsplit(".", 1)[-1]
    if task_name not in TASKS:
        raise ValueError(f"model.class_path {class_path!r} is none of {sorted(TASKS)}")
    arguments = {**dict(section.pop("init_args", None) or {}), **section, **overrides}
    if num_classes is not None:
        arguments["num_classes"] = num_classes
    elif "num_classes" not in arguments and default_num_classes is not None and task_name == "CenterNet":
        arguments["num_classes"] = default_num_classes
    heads = arguments.get("heads") or {}
    if "keypoint_offsets" in heads and not arguments.get("keypoint_layout"):
        # the joints the config's data names (data.keypoint_layout), else the caller's default
        layout = (data_section or {}).get("keypoint_layout") or default_keypoint_layout
        if layout is not None:
            arguments["keypoint_layout"] = dict(layout)
    if task_name == "CenterNet" and "num_classes" not in arguments:
        raise ValueError(
            "The config does not set model.init_args.num_classes; pass build_model(config, num_classes=...)"
        )
    if untrained:
        arguments["backbone"] = _without_download(arguments.get("backbone", "resnet18"))
        arguments["init_weights"] = None
    task = TASKS[task_name]
    unknown = sorted(set(arguments) - set(inspect.signature(task.__init__).parameters))
    if unknown:
        where = f"{config_path}: " if config_path else ""
        raise ValueError(f"{where}model.init_args has keys {task_name} does not take: {unknown}")
    return task(**arguments)


def build_untrained_model(config: str | Path | Mapping[str, Any], num_classes: int | None = None) -> CenterNet:
    """A model of ``config`` with random weights (nothing downloaded, no ``init_weights``), for
    ``info``, ``benchmark`` and ``convert-weights``: where the config leaves them to the data, COCO's
    80 classes and, for keypoint heads, COCO's 17 person joints."""
    from ..datasets.coco_keypoints import COCO_PERSON_KEYPOINTS

    return build_model(
        config,
        num_classes,
        untrained=True,
        default_num_classes=80,
        default_keypoint_layout=COCO_PERSON_KEYPOINTS.to_dict(),
    )


def save_checkpoint(model: CenterNet, path: str | Path, epoch: int = 0) -> Path:
    """Write ``model`` as a checkpoint that ``--ckpt_path`` and :func:`load_model` accept (weights,
    hyperparameters, task and inference spec; no optimizer state). Written atomically; an existing
    file is never overwritten (FileExistsError); a full disk raises DiskFullError (an OSError)."""
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
        "hyper_parameters": dict(model.hparams),
    }
    model.on_save_checkpoint(checkpoint)  # what Lightning's own saving calls: task and inference spec
    return write_new_file(path, _serialised(checkpoint))


def _serialised(checkpoint: Mapping[str, Any]) -> memoryview:
    # In memory, then written from Python: torch's C++ file writer aborts the process on a full disk.
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    return buffer.getbuffer()


def _is_local(path: str | os.PathLike) -> bool:
    return "://" not in str(path)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer and reader with the project's rules, for local files.

    Saving: serialised in memory, written to a temporary file in the checkpoint folder and renamed
    (Lightning's own writer stages the file in the system's temp folder and, across file systems,
    copies it into place, which on a full disk leaves a partial ``last.ckpt``); a full disk raises
    DiskFullError naming the file and keeps the previous file. Loading (resuming): the safe reader
    (:func:`~centernet_lightning.weights.read_checkpoint`: no pickled code runs, an unreadable
    file is named), after removing the temporaries a killed run left beside the checkpoint.
    Remote paths (``s3://``...) go to Lightning's implementation.
    """

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None or not _is_local(path):
            return super().save_checkpoint(checkpoint, path, storage_options)
        path = Path(path)
        remove_stale_temporaries(path.parent, name=path.name)
        write_bytes_atomically(path, _serialised(checkpoint), overwrite=True)  # last.ckpt is rewritten by design

    def load_checkpoint(
        self, path: Any, map_location: Callable | None = None, weights_only: bool | None = None
    ) -> dict[str, Any]:
        if not _is_local(path):
            return super().load_checkpoint(path, map_location or (lambda storage, location: storage), weights_only)
        remove_stale_temporaries(Path(path).parent)
        return read_checkpoint(path)  # on the CPU; Lightning moves the states to the module's device


def use_atomic_checkpoints(trainer: Any) -> None:
    """Make ``trainer`` write and read its checkpoints with :class:`AtomicCheckpointIO`, unless a
    plugin of another kind (async, a cloud writer) was configured."""
    if type(trainer.strategy.checkpoint_io) is TorchCheckpointIO:
        trainer.strategy.checkpoint_io = AtomicCheckpointIO()
