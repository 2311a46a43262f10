"""The CenterNet LightningModule: wires the detector network, its targets and losses, decoding
and the optimiser. COCO evaluation is a callback (``eval/callbacks.py``), data is a DataModule.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import lightning as L
import numpy as np
import torch
import yaml
from torch import Tensor

from ..checkpoint import load_trained_module
from ..inference.predictor import detect_source
from ..inference.sources import open_source
from ..inference.spec import InferenceSpec
from ..structures import Batch, Detections
from ..targets import CenterTargets, encode_targets, gaussian_radii
from ..tta import detect_with_tta, parse_tta
from .detector import CenterNetDetector, Outputs, build_detector
from .module_parts import in_original_pixels, setup_from_data, zero_loss
from .optim import build_optimizer, build_scheduler, check_optimization_config

__all__ = ["CenterNet", "build_centernet", "load_centernet"]

log = logging.getLogger(__name__)


class CenterNet(L.LightningModule):
    """CenterNet ("Objects as Points", Zhou et al. 2019) for object detection.

    Args:
        num_classes: number of object classes.
        backbone: a backbone name (``resnet18``, ``mobilenet_v2``, ``timm:dla34``, ``hourglass104``,
            ...) or a dict ``{name, pretrained, frozen_stages}``; see
            :func:`~centernet_lightning.models.build_backbone`.
        neck: ``simple``, ``fpn``, ``bifpn``, ``ida`` or ``identity``, or ``{name, **neck arguments}``.
        heads: ``{name: {loss, weight, width, ...}}`` of the heads beside the heatmap: ``box_2d``
            (left/top/right/bottom) or the paper's ``size`` + ``offset``, e.g.
            ``{size: {loss: l1, weight: 0.1}, offset: {loss: l1, weight: 1.0}}``. None: ``box_2d``
            with ``box_loss``, ``box_loss_weight`` and ``center_sampling``.
        head_width, head_depth: hidden channels and number of 3x3 convs of each head. 64 is the
            original's width for ResNets: at 512 px it costs 2.6 GFLOPs of ResNet-18's 25 against 10.4
            of 32.7 for 256, runs 15-18 % faster, and trained as well in a short run
            (docs/benchmarks.md); the original uses 256 for DLA-34 and Hourglass.
        heatmap_loss, heatmap_loss_weight: ``cornernet_focal`` or ``quality_focal`` and its weight.
        box_loss, box_loss_weight: loss of the default ``box_2d`` head: ``l1``, ``smooth_l1``,
            ``iou``, ``giou``, ``diou`` or ``ciou`` on XYXY boxes in grid cells.
        heatmap_method: Gaussian radius rule, ``cornernet`` (original), ``cornernet_fixed`` or ``ttfnet``.
        heatmap_parameter: ``min_overlap`` or TTFNet ``alpha``; None takes the method's default.
        center_sampling: the ``box_2d`` head learns at the 3x3 cells around each centre.
        num_detections, score_threshold, nms_iou: decoding settings (top-K, padding threshold,
            optional class-wise NMS IoU).
        optimizer: ``{name: <torch.optim class>, **params}``, default AdamW lr 1e-3 wd 1e-4.
        lr_scheduler: None, ``{name: warmup_cosine, warmup_steps: int, min_lr_ratio: float}`` or
            ``{name: <torch.optim.lr_scheduler class>, interval: step|epoch, **params}``.
        tta: test-time augmentation of validation, test and prediction: None, ``flip``,
            ``"flip,0.75,1,1.25"`` or ``{flip, scales, nms_iou}`` (see :func:`~centernet_lightning.tta.parse_tta`).
        class_names: optional names, kept in the checkpoint for prediction and reports.
        init_weights: a checkpoint or state-dict file to start from (fine-tuning: weights only,
            no optimizer state); tensors whose shape differs, such as a heatmap head with another
            class count, keep their fresh initialisation with a warning.
    """

    def __init__(
        self,
        num_classes: int,
        backbone: str | dict[str, Any] = "resnet18",
        neck: str | dict[str, Any] = "fpn",
        heads: dict[str, dict[str, Any]] | None = None,
        head_width: int = 64,
        head_depth: int = 1,
        heatmap_loss: str = "cornernet_focal",
        heatmap_loss_weight: float = 1.0,
        box_loss: str = "giou",
        box_loss_weight: float = 5.0,
        heatmap_method: str = "cornernet",
        heatmap_parameter: float | None = None,
        center_sampling: bool = False,
        num_detections: int = 100,
        score_threshold: float = 0.0,
        nms_iou: float | None = None,
        optimizer: dict[str, Any] | None = None,
        lr_scheduler: dict[str, Any] | None = None,
        tta: bool | str | dict[str, Any] | None = None,
        class_names: list[str] | None = None,
        init_weights: str | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.tta = parse_tta(tta)  # fails early on a bad value
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class_names given for num_classes={num_classes}")
        gaussian_radii(torch.ones(1), torch.ones(1), heatmap_method)  # fail early on a bad name
        check_optimization_config(optimizer, lr_scheduler)
        if heads and (box_loss, box_loss_weight, center_sampling) != ("giou", 5.0, False):
            log.warning(
                "box_loss, box_loss_weight and center_sampling configure the default box_2d head; with heads=%s "
                "set them inside heads (e.g. heads: {box_2d: {loss: ciou, weight: 2.0}})",
                sorted(heads),
            )
        head_specs = {
            "heatmap": {"loss": heatmap_loss, "weight": heatmap_loss_weight},
            **(heads or {"box_2d": {"loss": box_loss, "weight": box_loss_weight, "center_sampling": center_sampling}}),
        }
        self.detector: CenterNetDetector = build_detector(
            num_classes, backbone, neck, head_specs, head_width, head_depth
        )
        self.num_classes = num_classes
        self.stride = self.detector.stride
        # Input size, normalisation, class names and category ids for inference; completed from the
        # data module in setup() and kept in checkpoints (on_save_checkpoint).
        self.inference_spec = InferenceSpec(class_names=class_names)

    # ----------------------------------------------------------------------------- inference
    def get_encoded_outputs(self, images: Tensor) -> Outputs | list[Outputs]:
        """Raw outputs for images [B, 3, H, W]: see :class:`~centernet_lightning.models.CenterNetDetector`
        (heatmap logits, box/size/offset in grid cells; one dict per stack when training a stacked model)."""
        return self.detector(images)

    def forward(self, images: Tensor) -> Outputs:
        """Export-friendly forward: the last stack's outputs with the heatmap as probabilities."""
        outputs = self.detector(images)
        outputs = outputs[-1] if isinstance(outputs, list) else outputs
        return {name: value.sigmoid() if name == "heatmap" else value for name, value in outputs.items()}

    def gather_detection2d(
        self,
        outputs: Outputs | Sequence[Outputs],
        num_detections: int | None = None,
        nms_iou: float | None = None,
        score_threshold: float | None = None,
        logits: bool = True,
    ) -> Detections:
        """Decode outputs to detections (XYXY input-image pixels, padded to K per image).

        ``outputs`` is the dict of :meth:`get_encoded_outputs` (heatmap logits; the last stack's
        is used) or, with ``logits=False``, of :meth:`forward`. Defaults come from the
        hyperparameters. ``indices`` in the result are the peak cells of the detections.
        """
        outputs = outputs[-1] if not isinstance(outputs, Mapping) else outputs
        return self.detector.decode(
            outputs,
            num_detections=num_detections or self.hparams.num_detections,
            score_threshold=self.hparams.score_threshold if score_threshold is None else score_threshold,
            nms_iou=self.hparams.nms_iou if nms_iou is None else nms_iou,
            logits=logits,
        )

    @torch.no_grad()
    def detect(
        self,
        images: Tensor,
        num_detections: int | None = None,
        score_threshold: float | None = None,
        nms_iou: float | None = None,
        tta: Any = None,
    ) -> Detections:
        """Run the model on images [B, 3, H, W] and decode (see :meth:`gather_detection2d`).

        ``tta`` (None: the model's ``tta`` setting) runs test-time augmentation instead:
        see :func:`~centernet_lightning.tta.detect_with_tta`.
        """
        augment = parse_tta(tta) if tta is not None else self.tta
        if augment is None or not augment.enabled:
            return self.gather_detection2d(self.get_encoded_outputs(images), num_detections, nms_iou, score_threshold)
        return detect_with_tta(
            self.detector,
            images,
            augment,
            num_detections=num_detections or self.hparams.num_detections,
            score_threshold=self.hparams.score_threshold if score_threshold is None else score_threshold,
            nms_iou=self.hparams.nms_iou if nms_iou is None else nms_iou,
        )

    def inference_detection2d(
        self,
        source: Any,
        num_detections: int = 100,
        score_threshold: float | None = None,
        batch_size: int = 8,
        skip_bad_images: bool = False,
        tta: Any = None,
    ) -> dict[str, np.ndarray]:
        """Detections of whole images, in each image's own pixels.

        Args:
            source: an image path, a folder, a glob pattern, a video file, a list of paths, or one
                or a list of uint8 [H, W, 3] RGB arrays (see :func:`~centernet_lightning.inference.open_source`).
            num_detections: K, detections per image.
            score_threshold: scores below it become padding (None: the model's setting).
            batch_size: images per forward pass.
            skip_bad_images: an unreadable file gives a warning and an all-padding row instead of an error.
            tta: test-time augmentation (None: the model's ``tta`` setting; see :meth:`detect`).

        Images are letterboxed to :attr:`inference_spec` ``.input_size`` and normalised as in
        ``validate``; the model runs in eval mode on its current device.

        Returns:
            ``bboxes`` float32 [N, K, 4] XYXY original pixels, ``scores`` float32 [N, K] (descending, 0
            for padding), ``labels`` int64 [N, K] (-1 for padding), N images in source order.
        """
        images = open_source(source, skip_bad_images=skip_bad_images)
        was_training = self.training
        self.eval()
        try:

            def detect(inputs: Tensor) -> Detections:
                return self.detect(inputs, num_detections=num_detections, score_threshold=score_threshold, tta=tta)

            parts = [
                results
                for _, results in detect_source(
                    detect, images, self.inference_spec, self.device, batch_size, num_detections
                )
            ]
        finally:
            self.train(was_training)
        return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}

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

    def compute_loss(self, outputs: Outputs | Sequence[Outputs], targets: Batch) -> dict[str, Tensor]:
        """Losses for a batch: each head's (unweighted) and the weighted ``total``.

        ``targets`` holds ``bboxes`` [B, N, 4] XYXY input pixels, ``labels`` [B, N], ``mask`` [B, N].
        Boxes are clipped to the input and degenerate ones ignored.
        """
        last = outputs if isinstance(outputs, Mapping) else outputs[-1]
        height, width = last["heatmap"].shape[-2:]
        return self.detector.loss(outputs, self.encode_targets(targets, height, width))

    def training_step(self, batch: Batch | None, batch_idx: int) -> Tensor:
        if batch is None:  # every image of the batch was skipped (skip_bad_images)
            return zero_loss(self)
        losses = self.compute_loss(self.get_encoded_outputs(batch["images"]), batch)
        batch_size = batch["images"].shape[0]
        self.log_dict({f"train/{k}_loss": v for k, v in losses.items()}, prog_bar=False, batch_size=batch_size)
        self.log("loss", losses["total"], prog_bar=True, logger=False, batch_size=batch_size)
        return losses["total"]

    def validation_step(self, batch: Batch | None, batch_idx: int) -> Detections | None:
        return self._evaluation_step(batch, "val")

    def test_step(self, batch: Batch | None, batch_idx: int) -> Detections | None:
        return self._evaluation_step(batch, "test")

    def _evaluation_step(self, batch: Batch | None, prefix: str) -> Detections | None:
        """Losses logged; the detections (input pixels) go to the evaluation callback."""
        if batch is None:
            return None
        outputs = self.get_encoded_outputs(batch["images"])
        losses = self.compute_loss(outputs, batch)
        batch_size = batch["images"].shape[0]
        self.log_dict({f"{prefix}/{k}_loss": v for k, v in losses.items()}, batch_size=batch_size, sync_dist=True)
        if self.tta is not None and self.tta.enabled:
            return self.detect(batch["images"])
        return self.gather_detection2d(outputs)

    def predict_step(self, batch: Batch | None, batch_idx: int) -> dict[str, Any] | None:
        """Detections in ORIGINAL image pixels, with each image's id and path (None: all skipped)."""
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

    def configure_optimizers(self) -> dict[str, Any]:
        params = [p for p in self.parameters() if p.requires_grad]
        optimizer = build_optimizer(params, self.hparams.optimizer)
        config: dict[str, Any] = {"optimizer": optimizer}
        if self.hparams.lr_scheduler:
            total_steps = int(self.trainer.estimated_stepping_batches) if self._trainer is not None else 1
            config["lr_scheduler"] = build_scheduler(optimizer, self.hparams.lr_scheduler, total_steps)
        return config


def build_centernet(config: str | Path | Mapping[str, Any], num_classes: int | None = None) -> CenterNet:
    """Build a CenterNet from a YAML file or a dict.

    Accepts the model's arguments directly, or a full ``centernet fit`` config whose ``model``
    section holds them (optionally under LightningCLI's ``init_args``). In fit configs the class
    count comes from the data, so pass ``num_classes`` unless the model section sets it.
    """
    if isinstance(config, (str, Path)):
        path = Path(config)
        if not path.is_file():
            raise FileNotFoundError(f"Config file not found: {path}")
        config = yaml.safe_load(path.read_text()) or {}
    config = dict(config)
    if "model" in config:
        config = dict(config["model"] or {})
    if "init_args" in config:
        config = dict(config["init_args"])
    config.pop("class_path", None)
    if num_classes is not None:
        config["num_classes"] = num_classes
    if "num_classes" not in config:
        raise ValueError("The config does not set model.num_classes; pass build_centernet(config, num_classes=...)")
    return CenterNet(**config)


def load_centernet(ckpt_path: str | Path, map_location: str | torch.device = "cpu") -> CenterNet:
    """A trained CenterNet from its checkpoint, in eval mode, without a Trainer or a config (see
    :func:`~centernet_lightning.checkpoint.load_trained_module`)."""
    return load_trained_module(ckpt_path, CenterNet, map_location)
