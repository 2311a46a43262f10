"""The LightningModules: :class:`CenterNet` (detection) and :class:`FairMOT` (detection + re-ID
embeddings, for tracking), their optimiser settings, and loading them from checkpoints and configs."""

from .centernet import CenterNet
from .fairmot import FairMOT
from .loading import TASKS, build_model, load_model, save_checkpoint
from .optim import OPTIMIZERS, SCHEDULERS

__all__ = [
    "OPTIMIZERS",
    "SCHEDULERS",
    "TASKS",
    "CenterNet",
    "FairMOT",
    "build_model",
    "load_model",
    "save_checkpoint",
]
