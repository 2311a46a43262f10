"""The CenterNet LightningModule: wires the detector network, its loss, the predictor and the optimiser.

Data is a DataModule, COCO evaluation a callback (``callbacks/coco.py``); decoding, the mapping
back to original pixels and every way of running the network are the
:class:`~centernet_lightning.inference.Predictor`'s. A task that extends detection subclasses
this module and replaces its parts (:class:`~centernet_lightning.tasks.FairMOT` adds a re-ID head,
its loss and a tracker).
"""

from __future__ import annotations

import inspect
import logging
from typing import Any

import lightning as L
import numpy as np
import torch
from torch import Tensor

from ..inference.backends import NetworkBackend
from ..inference.predictor import Predictor
from ..inference.tta import parse_tta
from ..models.criterion import CenterNetLoss
from ..models.detector import CenterNetDetector, Outputs, build_detector
from ..models.head_table import BOX_HEADS, HEAD_TYPES
from ..structures import Batch, Detections, InferenceSpec, KeypointLayout
from ..weights import load_matching_weights, rename_prefixes
from .optim import build_optimizer, build_scheduler, check_optimization_config

__all__ = ["CenterNet"]

log = logging.getLogger(__name__)

TASK_KEY = "task"  # the checkpoint entry naming the LightningModule class that wrote it


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
            ``{size: {loss: l1, weight: 0.1}, offset: {loss: l1, weight: 1.0}}``; for keypoints
            the original multi_pose's ``keypoint_offsets``, ``keypoint_heatmap`` and
            ``keypoint_peak_offset`` (docs/keypoints.md). Without a box
            head: ``box_2d`` with ``box_loss``, ``box_loss_weight`` and ``center_sampling``.
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
            ``"flip,0.75,1,1.25"`` or ``{flip, scales, nms_iou}`` (see
            :func:`~centernet_lightning.inference.parse_tta`).
        class_names: optional names, kept in the checkpoint for prediction and reports.
        keypoint_layout: the joints of a keypoint dataset (``{names, skeleton}``, see
            :class:`~centernet_lightning.structures.KeypointLayout`; the command line links it from
            the data): the keypoint heads' ``num_keypoints`` and flip pairs, and the skeleton drawn.
        init_weights: a checkpoint or state-dict file to start from (fine-tuning: weights only,
            no optimizer state); tensors whose shape differs, such as a heatmap head with another
            class count, keep their fresh initialisation with a warning.
    """

    # Heads whose loss needs this task's criterion (Head.trained_by_task); detection has none.
    task_heads: tuple[str, ...] = ()
    # State-dict prefixes of older checkpoints -> today's (read by init_weights and checkpoint loading).
    renamed_prefixes: dict[str, str] = {}

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
        keypoint_layout: dict[str, Any] | None = None,
        init_weights: str | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self._keep_own_hyperparameters()
        self.tta = parse_tta(tta)  # fails early on a bad value
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class_names given for num_classes={num_classes}")
        check_optimization_config(optimizer, lr_scheduler)
        heads = dict(heads or {})
        foreign = [name for name in heads if getattr(HEAD_TYPES.get(name), "trained_by_task", False)]
        foreign = [name for name in foreign if name not in self.task_heads]
        if foreign:
            raise ValueError(
                f"heads.{foreign[0]} is trained by another task's loss, which {type(self).__name__} does not have; "
                "for re-ID embeddings use model.class_path centernet_lightning.FairMOT"
            )
        given_box_heads = [name for name in BOX_HEADS if name in heads]
        if given_box_heads and (box_loss, box_loss_weight, center_sampling) != ("giou", 5.0, False):
            log.warning(
                "box_loss, box_loss_weight and center_sampling configure the default box_2d head; with heads=%s "
                "set them inside heads (e.g. heads: {box_2d: {loss: ciou, weight: 2.0}})",
                sorted(heads),
            )
        default_box = {"box_2d": {"loss": box_loss, "weight": box_loss_weight, "center_sampling": center_sampling}}
        head_specs = {
            "heatmap": {"loss": heatmap_loss, "weight": heatmap_loss_weight},
            **({} if given_box_heads else default_box),
            **heads,
        }
        layout = KeypointLayout.from_dict(keypoint_layout) if keypoint_layout else None
        self.detector: CenterNetDetector = build_detector(
            num_classes, backbone, neck, head_specs, head_width, head_depth, layout
        )
        self.criterion: CenterNetLoss = CenterNetLoss(self.detector, heatmap_method, heatmap_parameter)
        self.num_classes = num_classes
        # Input size, normalisation, class names and category ids for inference; completed from the
        # data module in setup() and kept in checkpoints (on_save_checkpoint).
        self.inference_spec = InferenceSpec(class_names=class_names, keypoints=layout.to_dict() if layout else None)
        self._weights_loaded = False

    def _keep_own_hyperparameters(self) -> None:
        """Drop saved hyperparameters that are not arguments of this class: the CLI links the data's
        ``num_identities`` into every model's, and a subclass's first save holds its parent's. (A
        subclass taking ``**kwargs`` passes them on: its parent's arguments are its own then.)"""
        accepted: set[str] = set()
        for cls in type(self).__mro__:
            parameters = inspect.signature(cls.__init__).parameters
            accepted |= set(parameters)
            if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
                break
        for key in [key for key in self.hparams if key not in accepted and not key.startswith("_")]:
            del self.hparams[key]

    # ----------------------------------------------------------------------------- inference
    def forward(self, images: Tensor) -> Outputs:
        """The detector's raw outputs (see :class:`~centernet_lightning.models.CenterNetDetector`)."""
        return self.detector(images)

    def predictor(
        self,
        num_detections: int | None = None,
        score_threshold: float | None = None,
        nms_iou: float | None = None,
        tta: Any = None,
    ) -> Predictor:
        """The :class:`~centernet_lightning.inference.Predictor` of this model on its device (the
        eager backend), with the model's decoding settings unless given (``tta`` None: the model's)."""
        hparams = self.hparams
        backend = NetworkBackend(
            self.detector,
            num_detections or hparams.num_detections,
            tta=parse_tta(tta) if tta is not None else self.tta,
        )
        return Predictor(
            backend,
            self.inference_spec,
            hparams.score_threshold if score_threshold is None else score_threshold,
            hparams.nms_iou if nms_iou is None else nms_iou,
            tracker=hparams.get("tracker"),
        )

    def detect(self, images: Tensor, **settings: Any) -> Detections:
        """Detections of normalised network inputs [B, 3, H, W], in their pixels (see :meth:`predictor`
        for ``settings``)."""
        return self.predictor(**settings).detect(images)

    def inference_detection2d(
        self, source: Any, batch_size: int = 8, skip_bad_images: bool = False, **settings: Any
    ) -> dict[str, np.ndarray]:
        """Detections of whole images in each image's own pixels: ``predictor(**settings)(source)``.

        ``source``: an image path, a folder, a glob, a video, a list of paths, or one or a list of
        uint8 [H, W, 3] RGB arrays. Returns ``bboxes`` float32 [N, K, 4] XYXY original pixels,
        ``scores`` float32 [N, K] (descending, 0 for padding), ``labels`` int64 [N, K] (-1 for
        padding), and for a keypoint model ``keypoints`` float32 [N, K, J, 3] (x, y original pixels,
        score), N images in source order (see :meth:`~centernet_lightning.inference.Predictor.__call__`).
        """
        return self.predictor(**settings)(source, batch_size, skip_bad_images)

    # ----------------------------------------------------------------------------- steps
    def training_step(self, batch: Batch | None, batch_idx: int) -> Tensor:
        if batch is None:  # every image of the batch was skipped (skip_bad_images)
            return self._zero_loss()
        losses = self.criterion(self.detector(batch["images"]), batch)
        batch_size = batch["images"].shape[0]
        self.log_dict({f"train/{k}_loss": v for k, v in losses.items()}, prog_bar=False, batch_size=batch_size)
        self.log("loss", losses["total"], prog_bar=True, logger=False, batch_size=batch_size)
        return losses["total"]

    def validation_step(self, batch: Batch | None, batch_idx: int) -> dict[str, Any] | None:
        return self._evaluation_step(batch, "val")

    def test_step(self, batch: Batch | None, batch_idx: int) -> dict[str, Any] | None:
        return self._evaluation_step(batch, "test")

    def _evaluation_step(self, batch: Batch | None, prefix: str) -> dict[str, Any] | None:
        """Losses logged; the detections, in ORIGINAL pixels, go to the evaluation callbacks."""
        if batch is None:
            return None
        outputs = self.detector(batch["images"])
        losses = self.criterion(outputs, batch)
        batch_size = batch["images"].shape[0]
        self.log_dict({f"{prefix}/{k}_loss": v for k, v in losses.items()}, batch_size=batch_size, sync_dist=True)
        return self.predictor().detect_batch(batch, outputs)

    def predict_step(self, batch: Batch | None, batch_idx: int) -> dict[str, Any] | None:
        """Detections in ORIGINAL image pixels, with each image's id and path (None: all skipped)."""
        return None if batch is None else self.predictor().detect_batch(batch)

    def _zero_loss(self) -> Tensor:
        """The loss of a batch whose every image was skipped: zero, but in the graph (not None), since
        under DDP every rank must run backward."""
        return sum(p.sum() for p in self.parameters() if p.requires_grad) * 0.0

    # ----------------------------------------------------------------------------- set-up
    def setup(self, stage: str) -> None:
        """What the module takes from its trainer's data module: an example input (the model summary
        reports real FLOPs and output shapes), the inference spec when fitting, and the
        ``init_weights`` file, loaded once."""
        datamodule = getattr(self._trainer, "datamodule", None)
        input_size = getattr(datamodule, "hparams", {}).get("input_size")
        if input_size:
            self.example_input_array = torch.zeros(1, 3, input_size, input_size)
        if stage == "fit" and datamodule is not None:
            self.inference_spec = InferenceSpec(
                input_size=int(input_size or self.inference_spec.input_size),
                class_names=self.hparams.class_names,
                category_ids=getattr(datamodule, "category_ids", None),
                keypoints=self.inference_spec.keypoints,
            )
        if self.hparams.init_weights and not self._weights_loaded:
            load_matching_weights(self, self.hparams.init_weights, self.renamed_prefixes)
            self._weights_loaded = True

    def on_save_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        checkpoint[InferenceSpec.CHECKPOINT_KEY] = self.inference_spec.to_dict()
        checkpoint[TASK_KEY] = type(self).__name__

    def on_load_checkpoint(self, checkpoint: dict[str, Any]) -> None:
        self.inference_spec = InferenceSpec.from_checkpoint(checkpoint)
        rename_prefixes(checkpoint.get("state_dict") or {}, self.renamed_prefixes)

    def configure_optimizers(self) -> dict[str, Any]:
        # Parameters of the loss that are not weights (FairMOT's learnt log-variances) get no weight
        # decay, which would pull them towards 0.
        no_decay = {id(p) for p in self.criterion.no_weight_decay()}
        params = [p for p in self.parameters() if p.requires_grad and id(p) not in no_decay]
        groups: list[dict[str, Any]] = [{"params": params}]
        if no_decay:
            groups.append({"params": list(self.criterion.no_weight_decay()), "weight_decay": 0.0})
        optimizer = build_optimizer(groups, self.hparams.optimizer)
        config: dict[str, Any] = {"optimizer": optimizer}
        if self.hparams.lr_scheduler:
            total_steps = int(self.trainer.estimated_stepping_batches) if self._trainer is not None else 1
            config["lr_scheduler"] = build_scheduler(optimizer, self.hparams.lr_scheduler, total_steps)
        return config
