"""Validation images with their ground truth and predictions in the logger, as a Lightning callback."""

from __future__ import annotations

from typing import Any

import lightning as L
from lightning.pytorch.callbacks import Callback

from ..image_io import read_image
from ..structures import letterbox_inverse, letterbox_inverse_points
from ..visualize import draw_boxes

__all__ = ["ValidationImageLogger"]

GROUND_TRUTH_COLOR = (0, 255, 0)


class ValidationImageLogger(Callback):
    """Log the first validation batch's images, as read from disk, with ground truth (green) and
    predictions drawn in original pixels (and the skeletons, for a keypoint model).

    Works with TensorBoard (``add_image``); other loggers are skipped silently.

    Args:
        num_images: images to log per validation epoch.
        score_threshold: smallest score of a drawn prediction.
    """

    def __init__(self, num_images: int = 4, score_threshold: float = 0.3) -> None:
        self.num_images = num_images
        self.score_threshold = score_threshold

    def on_validation_batch_end(
        self,
        trainer: L.Trainer,
        pl_module: L.LightningModule,
        outputs: Any,
        batch: Any,
        batch_idx: int,
        dataloader_idx: int = 0,
    ) -> None:
        if (
            batch is None
            or outputs is None
            or batch_idx != 0
            or trainer.sanity_checking
            or not trainer.is_global_zero
            or self.num_images <= 0
        ):
            return
        experiment = getattr(trainer.logger, "experiment", None)
        if not hasattr(experiment, "add_image"):
            return
        class_names = pl_module.hparams.get("class_names")
        # The evaluation step's detections are in original pixels; the batch's boxes go back through
        # the inverse letterbox, clipped, to be drawn on the image as read from disk. (Not the
        # predictor's mapping: that one also drops and reorders detections, which would misalign
        # the boxes with their labels and mask.)
        truths = letterbox_inverse(batch["bboxes"], batch["letterbox"], batch["original_sizes"])
        layout = getattr(getattr(pl_module, "inference_spec", None), "keypoint_layout", None)
        skeleton = layout.skeleton if layout is not None else ()
        # Joints as boxes: the ground truth's (visibility as the score: unlabelled ones are not drawn)
        # mapped back like its boxes; the predictions' already in original pixels.
        true_joints = None
        if "keypoints" in batch and "keypoints" in outputs:
            true_joints = letterbox_inverse_points(batch["keypoints"], batch["letterbox"], batch["original_sizes"])
        for i in range(min(self.num_images, batch["images"].shape[0])):
            try:
                image = read_image(batch["image_paths"][i])
            except OSError:  # gone since it was loaded: nothing to draw
                continue
            objects = batch["mask"][i] & ~batch["ignore"][i] if "ignore" in batch else batch["mask"][i]
            truth_labels = batch["labels"][i][objects].cpu().numpy()
            image = draw_boxes(
                image,
                truths[i][objects].cpu().numpy(),
                truth_labels,
                class_names=class_names,
                color=GROUND_TRUTH_COLOR,
                keypoints=None if true_joints is None else true_joints[i][objects].cpu().numpy(),
                skeleton=skeleton,
            )
            keep = (outputs["scores"][i] >= self.score_threshold).cpu().numpy()
            image = draw_boxes(
                image,
                outputs["bboxes"][i].cpu().numpy()[keep],
                outputs["labels"][i].cpu().numpy()[keep],
                outputs["scores"][i].cpu().numpy()[keep],
                class_names,
                keypoints=outputs["keypoints"][i].cpu().numpy()[keep] if "keypoints" in outputs else None,
                skeleton=skeleton,
            )
            experiment.add_image(f"val/image_{i}", image, trainer.global_step, dataformats="HWC")
