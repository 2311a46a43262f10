"""The FairMOT LightningModule: a CenterNet detector with a re-ID head, trained jointly, and its tracker.

FairMOT (Zhang et al., IJCV 2021) is composed here from the same parts as
:class:`~centernet_lightning.models.CenterNet`: the network is a
:class:`~centernet_lightning.models.CenterNetDetector` built with one more head (``reid``, see
``models/reid.py``); the training module owns the identity classifier (:class:`IdentityLoss`) and
the loss balance (:class:`UncertaintyWeighting` or fixed weights). Tracking metrics (HOTA, MOTA,
IDF1) are computed outside the model, by the evaluation callback
:class:`~centernet_lightning.eval.mot_callback.MOTEvaluation`, which runs :meth:`FairMOT.build_tracker`
over each validation sequence; nothing in ``models/`` imports ``datasets/`` or ``eval/``.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Iterator, Mapping, Sequence
from typing import Any

import lightning as L
import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..inference.spec import InferenceSpec
from ..structures import Batch, Detections
from ..targets import CenterTargets, encode_targets, gaussian_radii
from ..tracking import Tracker, Tracks
from .detector import CenterNetDetector, Outputs, build_detector
from .module_parts import in_original_pixels, setup_from_data, zero_loss
from .optim import build_optimizer, build_scheduler, check_optimization_config
from .reid import IdentityLoss, ReIDHead, UncertaintyWeighting

__all__ = ["FairMOT", "TrackingDetections", "LOSS_WEIGHTINGS", "frame_detections"]

log = logging.getLogger(__name__)

LOSS_WEIGHTINGS = ("uncertainty", "fixed")


class TrackingDetections(Detections):
    """:class:`~centernet_lightning.structures.Detections` with each detection's re-ID embedding:
    ``embeddings`` float32 [B, K, D], unit L2 norm, gathered at the detection's peak cell."""

    embeddings: Tensor


class FairMOT(L.LightningModule):
    """FairMOT: one network for detection and re-ID embeddings, for multi-object tracking.

    Args:
        num_identities: identities of the training set (the size of the identity classifier);
            ``track_ids`` of the training batches are ``0 .. num_identities - 1`` (-1: none).
        num_classes: object classes (1 for pedestrians, as FairMOT). The tracker is class-agnostic.
        backbone, neck, heads, head_width, head_depth, heatmap_loss, heatmap_loss_weight,
            box_loss, box_loss_weight, heatmap_method, heatmap_parameter, center_sampling,
            nms_iou, optimizer, lr_scheduler, class_names, init_weights: as for
            :class:`~centernet_lightning.models.CenterNet`. ``heads`` may hold a ``reid`` entry
            to set the re-ID head's own ``width``/``depth``. ``init_weights`` may be a CenterNet
            detection checkpoint: its detector weights fit, the re-ID head starts fresh.
        reid_dim: embedding channels (64; the original code uses 128).
        loss_weighting: ``uncertainty`` (FairMOT: learnt ``s_det``, ``s_id``, see
            :class:`~centernet_lightning.models.reid.UncertaintyWeighting`) or ``fixed``
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

    def __init__(
        self,
        num_identities: int,
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
        super().__init__()
        self.save_hyperparameters()
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class_names given for num_classes={num_classes}")
        if loss_weighting not in LOSS_WEIGHTINGS:
            raise ValueError(f"Unknown loss_weighting {loss_weighting!r}; valid names: {list(LOSS_WEIGHTINGS)}")
        gaussian_radii(torch.ones(1), torch.ones(1), heatmap_method)  # fail early on a bad name
        check_optimization_config(optimizer, lr_scheduler)
        self.build_tracker()  # fail early on a bad tracker setting
        heads = dict(heads or {})
        reid_spec = {"dim": reid_dim, "weight": reid_loss_weight, **dict(heads.pop("reid", None) or {})}
        head_specs = {
            "heatmap": {"loss": heatmap_loss, "weight": heatmap_loss_weight},
            **(heads or {"box_2d": {"loss": box_loss, "weight": box_loss_weight, "center_sampling": center_sampling}}),
            "reid": reid_spec,
        }
        self.detector: CenterNetDetector = build_detector(
            num_classes, backbone, neck, head_specs, head_width, head_depth
        )
        reid_head: ReIDHead = self.detector.heads[-1]["reid"]
        self.identity_loss = IdentityLoss(reid_head.dim, num_identities, embedding_scale)
        self.uncertainty = UncertaintyWeighting() if loss_weighting == "uncertainty" else None
        self.num_classes = num_classes
        self.stride = self.detector.stride
        # Input size, normalisation, class names and category ids for inference (see CenterNet).
        self.inference_spec = InferenceSpec(class_names=class_names)

    # ----------------------------------------------------------------------------- inference
    def get_encoded_outputs(self, images: Tensor) -> Outputs | list[Outputs]:
        """Raw outputs for images [B, 3, H, W]: the detector's heads plus ``reid`` [B, D, h, w] raw
        embeddings (one dict per stack when training a stacked model)."""
        return self.detector(images)

    def forward(self, images: Tensor) -> Outputs:
        """Export-friendly forward: the last stack's outputs, heatmap as probabilities and ``reid``
        L2-normalised over its channels (unit embeddings at every cell)."""
        outputs = self.detector(images)
        outputs = outputs[-1] if isinstance(outputs, list) else outputs
        converted = {"heatmap": outputs["heatmap"].sigmoid(), "reid": F.normalize(outputs["reid"], dim=1)}
        return {name: converted.get(name, value) for name, value in outputs.items()}

    def gather_tracking2d(
        self,
        outputs: Outputs | Sequence[Outputs],
        num_detections: int | None = None,
        nms_iou: float | None = None,
        score_threshold: float | None = None,
        logits: bool = True,
    ) -> TrackingDetections:
        """Detections (XYXY input pixels, padded to K per image) with their unit re-ID embeddings.

        ``outputs`` is the dict of :meth:`get_encoded_outputs` (the last stack's is used) or, with
        ``logits=False``, of :meth:`forward`. Defaults come from the hyperparameters. Each
        detection's embedding is the ``reid`` output at its peak cell (``indices``), L2-normalised,
        as FairMOT's tracker takes it.
        """
        outputs = outputs[-1] if not isinstance(outputs, Mapping) else outputs
        detections = self.detector.decode(
            outputs,
            num_detections=num_detections or self.hparams.num_detections,
            score_threshold=self.hparams.score_threshold if score_threshold is None else score_threshold,
            nms_iou=self.hparams.nms_iou if nms_iou is None else nms_iou,
            logits=logits,
        )
        embeddings = ReIDHead.decode_embeddings(outputs["reid"], detections["indices"])
        return TrackingDetections(**detections, embeddings=embeddings)

    @torch.no_grad()
    def detect(self, images: Tensor, **decode_kwargs: Any) -> TrackingDetections:
        """Run the model on images [B, 3, H, W] and decode (see :meth:`gather_tracking2d`)."""
        return self.gather_tracking2d(self.get_encoded_outputs(images), **decode_kwargs)

    def build_tracker(self, **overrides: Any) -> Tracker:
        """A fresh :class:`~centernet_lightning.tracking.Tracker` with the ``tracker`` settings
        (and ``overrides``, e.g. the sequence's ``frame_rate``); one tracker follows one video."""
        try:
            return Tracker(**{**(self.hparams.tracker or {}), **overrides})
        except TypeError as error:
            raise ValueError(f"model.tracker: {error}") from None

    @torch.no_grad()
    def track_frames(self, frames: Iterable[Tensor | np.ndarray], tracker: Tracker | None = None) -> Iterator[Tracks]:
        """Track one video online: for each frame, the tracks reported at that frame.

        Args:
            frames: the video's frames in order, each a float [3, H, W] (or [1, 3, H, W]) image
                normalised as the model was trained (the ``val`` transform), sides divisible by 32.
            tracker: the tracker to advance (None: :meth:`build_tracker`).

        Yields:
            :class:`~centernet_lightning.tracking.Tracks` per frame, boxes in pixels of the frame as
            given (map letterboxed frames back with
            :func:`~centernet_lightning.structures.letterbox_inverse`).
        """
        tracker = self.build_tracker() if tracker is None else tracker
        for frame in frames:
            images = torch.as_tensor(frame, dtype=torch.float32, device=self.device)
            images = images.unsqueeze(0) if images.ndim == 3 else images
            if images.ndim != 4 or images.shape[:2] != (1, 3):
                raise ValueError(f"track_frames takes one [3, H, W] image per frame, got shape {tuple(images.shape)}")
            boxes, scores, embeddings = frame_detections(self.detect(images), 0)
            yield tracker.update(boxes, scores, embeddings)

    # ----------------------------------------------------------------------------- training
    def encode_targets(self, batch: Batch, height: int, width: int) -> CenterTargets:
        """The batch's targets on an ``height x width`` grid (ignore regions are not learnt)."""
        mask = batch["mask"] & ~batch["ignore"] if "ignore" in batch else batch["mask"]
        return encode_targets(
            batch["bboxes"],
            batch["labels"],
            mask,
            self.num_classes,
            height,
            width,
            self.stride,
            self.hparams.heatmap_method,
            self.hparams.heatmap_parameter,
        )

    def compute_loss(
        self, outputs: Outputs | Sequence[Outputs], batch: Batch, identities: bool = True
    ) -> dict[str, Tensor]:
        """Losses for a batch: each head's unweighted loss, ``detection`` (the weighted sum of the
        detection heads, FairMOT's ``det_loss``) and ``total``.

        ``total`` is :class:`UncertaintyWeighting` of ``detection`` and ``reid`` (it can be negative:
        it holds ``(s_det + s_id) / 2``) or, with fixed weighting, ``detection + weight * reid``.
        ``batch`` needs ``track_ids`` [B, N] (identities, -1 for none) beside the detection targets.
        With ``identities=False`` only the detection heads' losses and ``detection`` are computed
        (validation: the classifier knows the training set's identities, not another split's).
        For stacked outputs every loss is averaged over the stacks.
        """
        if identities and "track_ids" not in batch:
            raise ValueError(
                "FairMOT trains on batches with track_ids (identities of the objects); this batch has keys "
                f"{sorted(batch)}: use a tracking dataset, or give every box an identity of its own"
            )
        per_stack = [outputs] if isinstance(outputs, Mapping) else list(outputs)
        height, width = per_stack[-1]["heatmap"].shape[-2:]
        targets = self.encode_targets(batch, height, width)
        # Objects without a peak (padding, ignore regions, degenerate boxes) have no identity target.
        track_ids = batch["track_ids"].masked_fill(~targets.valid, -1) if identities else None
        num_stacks = len(per_stack)
        losses: dict[str, Tensor] = {}
        detection: Tensor | float = 0.0
        for stack_heads, stack_outputs in zip(self.detector.heads[-num_stacks:], per_stack):
            for name, head in stack_heads.items():
                if isinstance(head, ReIDHead):
                    if track_ids is None:
                        continue
                    value = self.identity_loss(stack_outputs[name], targets.indices, track_ids)
                else:
                    value = head.loss(stack_outputs[name], targets)
                    detection = detection + head.weight * value / num_stacks
                losses[name] = losses.get(name, 0.0) + value / num_stacks
        losses["detection"] = detection
        if not identities:
            return losses
        if self.uncertainty is not None:
            losses["total"] = self.uncertainty(detection, losses["reid"])
        else:
            losses["total"] = detection + self.detector.heads[-1]["reid"].weight * losses["reid"]
        return losses

    def training_step(self, batch: Batch | None, batch_idx: int) -> Tensor:
        if batch is None:  # every image of the batch was skipped (skip_bad_images)
            return zero_loss(self)
        losses = self.compute_loss(self.get_encoded_outputs(batch["images"]), batch)
        batch_size = batch["images"].shape[0]
        self.log_dict({f"train/{k}_loss": v for k, v in losses.items()}, batch_size=batch_size)
        if self.uncertainty is not None:
            self.log_dict(
                {"train/s_det": self.uncertainty.s_det.detach(), "train/s_id": self.uncertainty.s_id.detach()},
                batch_size=batch_size,
            )
        self.log("loss", losses["total"], prog_bar=True, logger=False, batch_size=batch_size)
        return losses["total"]

    def validation_step(self, batch: Batch | None, batch_idx: int) -> TrackingDetections | None:
        return self._evaluation_step(batch, "val")

    def test_step(self, batch: Batch | None, batch_idx: int) -> TrackingDetections | None:
        return self._evaluation_step(batch, "test")

    def _evaluation_step(self, batch: Batch | None, prefix: str) -> TrackingDetections | None:
        """Detection losses logged; the detections with their embeddings (input pixels) go to the
        evaluation callbacks (``MOTEvaluation`` runs the tracker per sequence).

        The identity loss is not evaluated: another split's identities are other people, numbered
        on their own, whom the training set's classifier cannot name.
        """
        if batch is None:
            return None
        outputs = self.get_encoded_outputs(batch["images"])
        losses = self.compute_loss(outputs, batch, identities=False)
        batch_size = batch["images"].shape[0]
        self.log_dict({f"{prefix}/{k}_loss": v for k, v in losses.items()}, batch_size=batch_size, sync_dist=True)
        return self.gather_tracking2d(outputs)

    def predict_step(self, batch: Batch | None, batch_idx: int) -> dict[str, Any] | None:
        """Detections with embeddings in ORIGINAL image pixels, with each image's id and path."""
        if batch is None:
            return None
        return in_original_pixels(self.detect(batch["images"]), batch)

    # ----------------------------------------------------------------------------- set-up
    def setup(self, stage: str) -> None:
        setup_from_data(self, stage)

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint["inference"] = self.inference_spec.to_dict()

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.inference_spec = InferenceSpec.from_checkpoint(checkpoint)

    def inference_tracking2d(
        self, source: Any, batch_size: int = 8, tracker: Tracker | None = None, **tracker_overrides: Any
    ) -> list[Tracks]:
        """Track a video or a folder of frames (sorted by name): the tracks reported at each frame.

        Frames are letterboxed and normalised as in validation (:attr:`inference_spec`), detected in
        batches of ``batch_size`` on the model's device, and fed to ``tracker`` (None: a fresh
        :meth:`build_tracker` with ``tracker_overrides``; the frame rate defaults to the video's or
        the ``seqinfo.ini``'s). Returns one :class:`~centernet_lightning.tracking.Tracks` per frame:
        ``ids`` int [M], ``boxes`` float [M, 4] XYXY original pixels, ``scores`` [M].
        """
        from ..inference.sources import open_source
        from ..inference.track import source_frame_rate, track_source

        frames = open_source(source)
        if tracker is None:
            tracker = self.build_tracker(**{"frame_rate": source_frame_rate(frames), **tracker_overrides})
        was_training = self.training
        self.eval()
        try:
            k = int(self.hparams.num_detections)
            found = track_source(self.detect, frames, self.inference_spec, tracker, self.device, batch_size, k)
            return [tracks for _, tracks in found]
        finally:
            self.train(was_training)

    def configure_optimizers(self) -> dict[str, Any]:
        # s_det and s_id are log-variances, not weights: weight decay would pull the learnt balance
        # towards s = 0 (FairMOT trains them with Adam and no decay).
        uncertainty = {id(p) for p in self.uncertainty.parameters()} if self.uncertainty is not None else set()
        params = [p for p in self.parameters() if p.requires_grad and id(p) not in uncertainty]
        groups: list[dict[str, Any]] = [{"params": params}]
        if uncertainty:
            groups.append({"params": list(self.uncertainty.parameters()), "weight_decay": 0.0})
        optimizer = build_optimizer(groups, self.hparams.optimizer)
        config: dict[str, Any] = {"optimizer": optimizer}
        if self.hparams.lr_scheduler:
            total_steps = int(self.trainer.estimated_stepping_batches) if self._trainer is not None else 1
            config["lr_scheduler"] = build_scheduler(optimizer, self.hparams.lr_scheduler, total_steps)
        return config


def frame_detections(detections: TrackingDetections, index: int) -> tuple[Tensor, Tensor, Tensor]:
    """Image ``index``'s real detections (padding dropped) as the tracker takes them: boxes [M, 4],
    scores [M], unit embeddings [M, D], on the CPU. Boxes are in the pixels ``detections`` are in."""
    keep = (detections["labels"][index] >= 0) & (detections["scores"][index] > 0)
    return (
        detections["bboxes"][index][keep].float().cpu(),
        detections["scores"][index][keep].float().cpu(),
        detections["embeddings"][index][keep].float().cpu(),
    )
