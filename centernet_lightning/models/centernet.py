"""The CenterNet detector as a LightningModule: backbone -> neck -> heatmap and box heads.

Targets, losses and decoding live in their own modules; this file wires them together.
"""

from __future__ import annotations

import logging
from collections import namedtuple
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lightning as L
import torch
import yaml
from torch import Tensor

from ..checkpoint import read_checkpoint
from ..datasets.transforms import letterbox_inverse
from ..decode import decode_boxes, decode_detections
from ..eval import COCOEvaluator, format_table
from ..losses import get_box_loss, get_heatmap_loss
from ..structures import Batch, Detections, clip_boxes, valid_box_mask
from ..targets import box_target_indices, gaussian_radii, render_heatmaps
from .backbones import build_backbone
from .heads import Box2DHead, HeatmapHead
from .necks import build_neck
from .optim import build_optimizer, build_scheduler, check_optimization_config

__all__ = ["CenterNet", "CenterNetOutput", "build_centernet", "load_weights"]

log = logging.getLogger(__name__)

CenterNetOutput = namedtuple("CenterNetOutput", ["heatmap", "box"])
CenterNetOutput.__doc__ = """Export-friendly outputs: ``heatmap`` probabilities [B, C, H/4, W/4] (after sigmoid)
and ``box`` left/top/right/bottom distances [B, 4, H/4, W/4] in grid cells."""


def _as_spec(spec: str | Mapping[str, Any] | None, kind: str) -> tuple[str, dict[str, Any]]:
    if spec is None:
        raise ValueError(f"{kind} must be a name or a dict with a 'name' key")
    if isinstance(spec, str):
        return spec, {}
    params = dict(spec)
    if "name" not in params:
        raise ValueError(f"{kind} dict needs a 'name' key, got keys {sorted(params)}")
    return params.pop("name"), params


class CenterNet(L.LightningModule):
    """CenterNet ("Objects as Points", Zhou et al. 2019) with left/top/right/bottom box regression.

    Args:
        num_classes: number of object classes.
        backbone: a backbone name (``resnet18``, ``mobilenet_v2``, ``timm:dla34``, ...) or a dict
            ``{name, pretrained, frozen_stages}``; see :func:`~centernet_lightning.models.build_backbone`.
        neck: ``simple``, ``fpn``, ``bifpn`` or ``ida``, or a dict ``{name, **neck arguments}``.
        head_width, head_depth: hidden channels and number of 3x3 convs of each head.
        heatmap_loss, heatmap_loss_weight: ``cornernet_focal`` or ``quality_focal`` and its weight.
        box_loss, box_loss_weight: ``l1``, ``smooth_l1``, ``iou``, ``giou``, ``diou`` or ``ciou`` on
            XYXY boxes measured in grid cells (so L1 weights follow the original's 0.1 scale).
        heatmap_method: Gaussian radius rule, ``cornernet`` (original), ``cornernet_fixed`` or ``ttfnet``.
        heatmap_parameter: ``min_overlap`` or TTFNet ``alpha``; None takes the method's default.
        center_sampling: supervise boxes at the 3x3 cells around each centre instead of the centre.
        num_detections, score_threshold, nms_iou: decoding settings (top-K, padding threshold,
            optional class-wise NMS IoU).
        optimizer: ``{name: <torch.optim class>, **params}``, default AdamW lr 1e-3 wd 1e-4.
        lr_scheduler: None, ``{name: warmup_cosine, warmup_steps: int, min_lr_ratio: float}`` or
            ``{name: <torch.optim.lr_scheduler class>, interval: step|epoch, **params}``.
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
        head_width: int = 256,
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
        class_names: list[str] | None = None,
        init_weights: str | None = None,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if num_classes < 1:
            raise ValueError(f"num_classes must be >= 1, got {num_classes}")
        if class_names is not None and len(class_names) != num_classes:
            raise ValueError(f"{len(class_names)} class_names given for num_classes={num_classes}")
        self.heatmap_loss_fn = get_heatmap_loss(heatmap_loss)
        self.box_loss_fn = get_box_loss(box_loss)
        gaussian_radii(torch.ones(1), torch.ones(1), heatmap_method)  # fail early on a bad name
        check_optimization_config(optimizer, lr_scheduler)

        neck_name, neck_params = _as_spec(neck, "neck")
        backbone_name, backbone_params = _as_spec(backbone, "backbone")
        # Fusion necks need every stage; the simple neck only the last.
        backbone_params.setdefault("return_features", neck_name != "simple")
        self.backbone = build_backbone(backbone_name, **backbone_params)
        expected_strides = [4, 8, 16, 32] if backbone_params["return_features"] else [32]
        if list(self.backbone.strides)[-len(expected_strides) :] != expected_strides:
            raise ValueError(
                f"Backbone {backbone_name!r} gives strides {self.backbone.strides}; the necks need "
                f"{expected_strides} (a dilated or stride-16 model does not fit)"
            )
        self.neck = build_neck(neck_name, self.backbone.out_channels, **neck_params)
        self.heatmap_head = HeatmapHead(self.neck.out_channels, num_classes, head_width, head_depth)
        self.box_head = Box2DHead(self.neck.out_channels, head_width, head_depth)
        self.num_classes = num_classes
        self.stride = self.neck.stride
        self.evaluator: COCOEvaluator | None = None
        self._evaluator_cache: dict[str, tuple[dict[str, Any], COCOEvaluator]] = {}

    # ----------------------------------------------------------------------------- inference
    def get_encoded_outputs(self, images: Tensor) -> dict[str, Tensor]:
        """Raw outputs for images [B, 3, H, W]: ``heatmap`` logits [B, C, H/4, W/4] and ``box``
        distances [B, 4, H/4, W/4] (grid cells)."""
        features = self.neck(self.backbone(images))
        if features.shape[-2] * self.stride != images.shape[-2] or features.shape[-1] * self.stride != images.shape[-1]:
            raise ValueError(
                f"Input size {tuple(images.shape[-2:])} gives a {tuple(features.shape[-2:])} output grid, not 1/"
                f"{self.stride} of it: image sides must be divisible by 32 (the 'val' transform pads to that)"
            )
        return {"heatmap": self.heatmap_head(features), "box": self.box_head(features)}

    def forward(self, images: Tensor) -> CenterNetOutput:
        """Export-friendly forward: heatmap probabilities and box distances."""
        outputs = self.get_encoded_outputs(images)
        return CenterNetOutput(heatmap=outputs["heatmap"].sigmoid(), box=outputs["box"])

    def gather_detection2d(
        self,
        outputs: Mapping[str, Tensor] | CenterNetOutput,
        num_detections: int | None = None,
        nms_iou: float | None = None,
        score_threshold: float | None = None,
    ) -> Detections:
        """Decode outputs to detections (XYXY input-image pixels, padded to K per image).

        ``outputs`` is the dict of :meth:`get_encoded_outputs` (heatmap logits) or the
        :class:`CenterNetOutput` of :meth:`forward` (probabilities). Defaults come from the
        model's hyperparameters.
        """
        if isinstance(outputs, CenterNetOutput):
            heatmap, box = outputs.heatmap, outputs.box
        else:
            heatmap, box = outputs["heatmap"].sigmoid(), outputs["box"]
        return decode_detections(
            heatmap.float(),
            box.float(),
            self.stride,
            num_detections=num_detections or self.hparams.num_detections,
            score_threshold=self.hparams.score_threshold if score_threshold is None else score_threshold,
            nms_iou=self.hparams.nms_iou if nms_iou is None else nms_iou,
        )

    @torch.no_grad()
    def detect(self, images: Tensor, **decode_kwargs: Any) -> Detections:
        """Run the model on images [B, 3, H, W] and decode (see :meth:`gather_detection2d`)."""
        return self.gather_detection2d(self.get_encoded_outputs(images), **decode_kwargs)

    # ----------------------------------------------------------------------------- training
    def compute_loss(self, outputs: Mapping[str, Tensor], targets: Batch) -> dict[str, Tensor]:
        """Losses of both heads for a batch: ``heatmap``, ``box`` (unweighted) and weighted ``total``.

        ``targets`` holds ``bboxes`` [B, N, 4] XYXY input pixels, ``labels`` [B, N], ``mask`` [B, N].
        Boxes are clipped to the input and degenerate ones ignored.
        """
        heatmap_logits, box_map = outputs["heatmap"], outputs["box"]
        batch_size, num_classes, height, width = heatmap_logits.shape
        stride = self.stride
        boxes = clip_boxes(targets["bboxes"].float(), height * stride, width * stride)
        valid = targets["mask"] & valid_box_mask(boxes)

        heatmaps, centers = render_heatmaps(
            boxes / stride,
            targets["labels"],
            valid,
            num_classes,
            height,
            width,
            self.hparams.heatmap_method,
            self.hparams.heatmap_parameter,
        )
        heatmap_loss = self.heatmap_loss_fn(heatmap_logits, heatmaps)

        indices, supervised = box_target_indices(centers, height, width, self.hparams.center_sampling)
        num_objects, num_samples = indices.shape[1:]
        flat = indices.reshape(batch_size, -1)
        pred_boxes = decode_boxes(box_map.float(), flat // width, flat % width, stride)
        pred_boxes = pred_boxes.view(batch_size, num_objects, num_samples, 4)
        target_boxes = boxes.unsqueeze(2).expand_as(pred_boxes)
        # Grid-cell units: IoU losses are scale-free, and L1 matches the original's wh scale.
        per_box = self.box_loss_fn(pred_boxes[supervised] / stride, target_boxes[supervised] / stride)
        box_loss = per_box.sum() / supervised.sum().clamp(min=1)

        total = self.hparams.heatmap_loss_weight * heatmap_loss + self.hparams.box_loss_weight * box_loss
        return {"heatmap": heatmap_loss, "box": box_loss, "total": total}

    def training_step(self, batch: Batch | None, batch_idx: int) -> Tensor | None:
        if batch is None:  # every image of the batch was skipped (skip_bad_images)
            return None
        losses = self.compute_loss(self.get_encoded_outputs(batch["images"]), batch)
        batch_size = batch["images"].shape[0]
        self.log_dict({f"train/{k}_loss": v for k, v in losses.items()}, prog_bar=False, batch_size=batch_size)
        self.log("loss", losses["total"], prog_bar=True, logger=False, batch_size=batch_size)
        return losses["total"]

    def validation_step(self, batch: Batch | None, batch_idx: int) -> Detections | None:
        return self._evaluation_step(batch, "val")

    def test_step(self, batch: Batch | None, batch_idx: int) -> Detections | None:
        return self._evaluation_step(batch, "test")

    def predict_step(self, batch: Batch | None, batch_idx: int) -> dict[str, Any] | None:
        """Detections in ORIGINAL image pixels, with each image's id and path (None: all skipped)."""
        if batch is None:
            return None
        detections = self.detect(batch["images"])
        return {
            **detections,
            "bboxes": letterbox_inverse(detections["bboxes"], batch["letterbox"], batch["original_sizes"]),
            "image_ids": batch["image_ids"],
            "image_paths": batch["image_paths"],
        }

    # ----------------------------------------------------------------------------- evaluation
    def on_validation_epoch_start(self) -> None:
        self._start_evaluation("validate")

    def on_test_epoch_start(self) -> None:
        self._start_evaluation("test")

    def on_validation_epoch_end(self) -> None:
        self._finish_evaluation("val")

    def on_test_epoch_end(self) -> None:
        self._finish_evaluation("test")

    def _start_evaluation(self, stage: str) -> None:
        """Set up a COCO evaluator when the datamodule provides ground truth for this stage."""
        self.evaluator = None
        datamodule = getattr(self.trainer, "datamodule", None)
        if self.trainer.sanity_checking or not hasattr(datamodule, "ground_truth"):
            return
        ground_truth = datamodule.ground_truth(stage)
        if ground_truth is None:
            return
        coco_gt, label_to_category_id = ground_truth
        # The evaluator indexes the ground truth once; later epochs on the same ground truth reuse it.
        cached_gt, evaluator = self._evaluator_cache.get(stage, (None, None))
        if cached_gt is not coco_gt:
            evaluator = COCOEvaluator(coco_gt)
            self._evaluator_cache[stage] = (coco_gt, evaluator)
        evaluator.reset()
        self.evaluator = evaluator
        self._category_ids = torch.tensor(label_to_category_id, dtype=torch.int64)

    def _evaluation_step(self, batch: Batch | None, prefix: str) -> Detections | None:
        if batch is None:
            return None
        outputs = self.get_encoded_outputs(batch["images"])
        losses = self.compute_loss(outputs, batch)
        batch_size = batch["images"].shape[0]
        self.log_dict({f"{prefix}/{k}_loss": v for k, v in losses.items()}, batch_size=batch_size, sync_dist=True)
        detections = self.gather_detection2d(outputs)
        if self.evaluator is not None:
            # Evaluate in ORIGINAL image pixels and the dataset's own category ids.
            bboxes = letterbox_inverse(detections["bboxes"], batch["letterbox"], batch["original_sizes"])
            labels = detections["labels"].cpu()
            category_ids = torch.where(labels >= 0, self._category_ids[labels.clamp(min=0)], -1)
            self.evaluator.add(batch["image_ids"], bboxes, detections["scores"], category_ids)
        return detections

    def _finish_evaluation(self, prefix: str) -> None:
        evaluator = self.evaluator
        if evaluator is None:
            return
        metrics = evaluator.evaluate()
        self.log_dict({f"{prefix}/{name}": value for name, value in metrics.items()}, sync_dist=False)
        self.last_metrics = metrics
        self.last_per_class_ap = evaluator.per_class_ap()
        per_class = {f"{prefix}/AP_class/{name}": ap for name, ap in self.last_per_class_ap.items() if ap == ap}
        self.log_dict(per_class, sync_dist=False)  # classes without ground truth (nan) are left out
        if self.trainer.state.fn in ("validate", "test") and self.trainer.is_global_zero:
            print(format_table(metrics, self.last_per_class_ap))
            if self.trainer.log_dir:
                path = Path(self.trainer.log_dir) / f"detections_{prefix}.json"
                evaluator.save_results(path)
                print(f"Detections (COCO results format) written to {path}")
        self.evaluator = None

    # ----------------------------------------------------------------------------- fine-tuning
    def setup(self, stage: str) -> None:
        input_size = getattr(getattr(self._trainer, "datamodule", None), "hparams", {}).get("input_size")
        if input_size:  # lets the model summary report real FLOPs and output shapes
            self.example_input_array = torch.zeros(1, 3, input_size, input_size)
        if self.hparams.init_weights and not getattr(self, "_weights_loaded", False):
            load_weights(self, self.hparams.init_weights)
            self._weights_loaded = True

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


def load_weights(model: torch.nn.Module, path: str | Path) -> None:
    """Load matching weights from a Lightning checkpoint or a state-dict file (fine-tuning).

    Tensors missing from the file or of another shape (a head with a different class count) keep
    their current values; each group is reported with a warning.
    """
    state = read_checkpoint(path)
    state = state.get("state_dict", state)
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
