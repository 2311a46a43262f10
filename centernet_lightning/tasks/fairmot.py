"""The FairMOT LightningModule: CenterNet with a re-ID head, trained jointly, and its tracker.

FairMOT (Zhang et al., IJCV 2021) is the detection core plus three pieces: a ``reid`` head on the
same network (:class:`~centernet_lightning.models.ReIDHead`), its loss term and the balance of
the two (:class:`~centernet_lightning.models.FairMOTLoss`, which owns the identity classifier), and
a tracker (:class:`~centernet_lightning.tracking.Tracker`, built by the predictor from the
``tracker`` settings). Tracking metrics (HOTA, MOTA, IDF1) are computed outside the model, by the
callback :class:`~centernet_lightning.callbacks.MOTEvaluation`.
"""

from __future__ import annotations

import logging
import os
from typing import Any

from torch import Tensor

from ..inference.sources import open_source
from ..inference.track import track_source
from ..models.reid import FairMOTLoss, IdentityLoss
from ..structures import Batch
from ..tracking import Tracker, Tracks, tracker_settings
from .centernet import CenterNet

__all__ = ["FairMOT"]

log = logging.getLogger(__name__)


class FairMOT(CenterNet):
    """FairMOT: one network for detection and re-ID embeddings, for multi-object tracking.

    Args:
        num_identities: identities of the training set (the size of the identity classifier);
            ``track_ids`` of the training batches are ``0 .. num_identities - 1`` (-1: none).
            None (no training split, or detection data) is enough to validate, test or predict
            with a checkpoint, which sizes the classifier; training needs the count.
        num_classes: object classes (1 for pedestrians, as FairMOT); the tracker follows each class on its own.
        backbone, neck, heads, head_width, head_depth, heatmap_loss, heatmap_loss_weight,
            box_loss, box_loss_weight, heatmap_method, heatmap_parameter, center_sampling,
            nms_iou, optimizer, lr_scheduler, class_names, init_weights: as for
            :class:`~centernet_lightning.tasks.CenterNet`. ``heads`` may hold a ``reid`` entry
            to set the re-ID head's own ``width``/``depth``. ``init_weights`` may be a CenterNet
            detection checkpoint: its detector weights fit, the re-ID head starts fresh.
        reid_dim: embedding channels (64; the original code uses 128).
        loss_weighting: ``uncertainty`` (FairMOT: learnt ``s_det``, ``s_id``, see
            :class:`~centernet_lightning.models.UncertaintyWeighting`) or ``fixed``
            (detection total + ``reid_loss_weight`` x identity loss).
        reid_loss_weight: the identity loss's weight with ``fixed`` weighting (FairMOT's ``id_weight``).
        embedding_scale: norm of the embedding fed to the identity classifier; None gives
            FairMOT's ``sqrt(2) * log(num_identities - 1)``.
        num_detections: K, peaks decoded per frame (FairMOT's ``K`` is 500).
        score_threshold: decoded detections below it become padding. 0 keeps all K: the tracker
            applies its own thresholds.
        tracker: keyword arguments of :class:`~centernet_lightning.tracking.Tracker` for validation
            and inference (thresholds, ``track_buffer``, ``frame_rate``, ...).
    """

    task_heads = ("reid",)
    # Checkpoints written before the loss owned the identity classifier and the uncertainty weights.
    renamed_prefixes = {"identity_loss.": "criterion.identity.", "uncertainty.": "criterion.uncertainty."}

    def __init__(
        self,
        num_identities: int | None = None,
        num_classes: int = 1,
        backbone: str | dict[str, Any] = "resnet18",
        neck: str | dict[str, Any] = "fpn",
        heads: dict[str, dict[str, Any]] | None = None,
        head_width: int = 256,
        head_depth: int = 1,
        reid_dim: int = 64,
        loss_weighting: str = "uncertainty",
        reid_loss_weight: float = 1.0,
        embedding_scale: float | None = None,
        heatmap_loss: str = "cornernet_focal",
        heatmap_loss_weight: float = 1.0,
        box_loss: str = "giou",
        box_loss_weight: float = 5.0,
        heatmap_method: str = "cornernet",
        heatmap_parameter: float | None = None,
        center_sampling: bool = False,
        num_detections: int = 500,
        score_threshold: float = 0.0,
        nms_iou: float | None = None,
        tracker: dict[str, Any] | None = None,
        optimizer: dict[str, Any] | None = None,
        lr_scheduler: dict[str, Any] | None = None,
        class_names: list[str] | None = None,
        init_weights: str | None = None,
    ) -> None:
        # New names: save_hyperparameters reads the arguments' variables, which must keep their values.
        detection_heads = dict(heads or {})
        reid = {"dim": reid_dim, "weight": reid_loss_weight, **dict(detection_heads.pop("reid", None) or {})}
        super().__init__(
            num_classes,
            backbone,
            neck,
            {**detection_heads, "reid": reid},
            head_width,
            head_depth,
            heatmap_loss,
            heatmap_loss_weight,
            box_loss,
            box_loss_weight,
            heatmap_method,
            heatmap_parameter,
            center_sampling,
            num_detections,
            score_threshold,
            nms_iou,
            optimizer,
            lr_scheduler,
            tta=None,
            class_names=class_names,
            init_weights=init_weights,
        )
        self.save_hyperparameters()  # FairMOT's own arguments, not those it passes on
        self._keep_own_hyperparameters()
        self.criterion = FairMOTLoss(
            self.detector, num_identities, embedding_scale, loss_weighting, heatmap_method, heatmap_parameter
        )
        self.build_tracker()  # fail early on a bad tracker setting

    # ----------------------------------------------------------------------------- inference
    def build_tracker(self, **overrides: Any) -> Tracker:
        """A fresh :class:`~centernet_lightning.tracking.Tracker` with the ``tracker`` settings
        (and ``overrides``, e.g. the sequence's ``frame_rate``); one tracker follows one video."""
        try:
            return self.predictor().build_tracker(**overrides)
        except ValueError as error:
            raise ValueError(f"model.{error}") from None

    def inference_tracking2d(
        self, source: Any, batch_size: int = 8, tracker: Tracker | None = None, **tracker_overrides: Any
    ) -> list[Tracks]:
        """Track a video or a folder of frames (sorted by name): the tracks reported at each frame.

        Frames go through the :meth:`predictor` in batches of ``batch_size`` and feed ``tracker``
        (None: a fresh :meth:`build_tracker` with ``tracker_overrides``; the frame rate defaults to
        the video's or the ``seqinfo.ini``'s). Returns one :class:`~centernet_lightning.tracking.Tracks`
        per frame: ``ids`` int [M], ``boxes`` float [M, 4] XYXY original pixels, ``scores`` [M].
        """
        from ..inference.track import source_frame_rate

        frames = open_source(source)
        if isinstance(tracker, (str, os.PathLike)):  # a preset or a settings file, as --tracker takes
            tracker_overrides = {**tracker_settings(tracker), **tracker_overrides}
            tracker = None
        if tracker is not None and not isinstance(tracker, Tracker):
            raise TypeError(
                f"tracker must be a Tracker, a preset name or a settings file, got {type(tracker).__name__}"
            )
        if tracker is None:
            tracker = self.build_tracker(**{"frame_rate": source_frame_rate(frames), **tracker_overrides})
        return [tracks for _, tracks in track_source(self.predictor(), frames, tracker, batch_size)]

    # ----------------------------------------------------------------------------- steps
    def setup(self, stage: str) -> None:
        if stage == "fit" and self.criterion.identity is None:
            raise ValueError(
                "FairMOT trains an identity classifier sized by the training set's identities, and "
                "model.init_args.num_identities is None: set data.train_split to a tracking dataset's "
                "split (or num_identities explicitly)"
            )
        super().setup(stage)

    def training_step(self, batch: Batch | None, batch_idx: int) -> Tensor:
        loss = super().training_step(batch, batch_idx)
        uncertainty = self.criterion.uncertainty
        if batch is not None and uncertainty is not None:
            self.log_dict(
                {"train/s_det": uncertainty.s_det.detach(), "train/s_id": uncertainty.s_id.detach()},
                batch_size=batch["images"].shape[0],
            )
        return loss

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        """The inference spec; keys of the layout before the loss owned the identity classifier
        renamed; and the classifier sized as the checkpoint's (another dataset's identity count,
        linked from the data, would not take its weights: the checkpoint is the model)."""
        super().on_load_checkpoint(checkpoint)
        weight = (checkpoint.get("state_dict") or {}).get("criterion.identity.classifier.weight")
        identity = self.criterion.identity
        if weight is not None and (identity is None or weight.shape[0] != identity.num_identities):
            if identity is not None:
                log.info(
                    "The checkpoint's identity classifier has %d identities (not %d): sized as the checkpoint's",
                    weight.shape[0],
                    identity.num_identities,
                )
            identity = IdentityLoss(weight.shape[1], weight.shape[0], self.hparams.embedding_scale)
            self.criterion.identity = identity.to(self.device)
            self.hparams.num_identities = int(weight.shape[0])
