"""COCO box AP of a backend on a data config's validation split: what a format (int8, bfloat16) costs.

``centernet benchmark --data CONFIG`` scores every backend it times this way, as Ultralytics'
benchmark does: the validation images are letterboxed by the data module (as ``centernet
validate`` does), each backend runs them through a :class:`~centernet_lightning.inference.Predictor`
with the model's score threshold and NMS, and the detections, mapped back to the original
pixels, are scored by :class:`~centernet_lightning.eval.COCOEvaluator` against the split's
annotations.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import torch

from ..datasets.datamodule import DetectionDataModule
from ..eval.coco import COCOEvaluator
from ..eval.coco_gt import category_ids_of, coco_ground_truth
from ..inference.predictor import Backend, Predictor
from ..structures import InferenceSpec

__all__ = ["ACCURACY_METRICS", "ValidationSplit", "evaluate_backend", "spec_and_settings"]

ACCURACY_METRICS = ("AP50", "AP")


class ValidationSplit:
    """The validation split of a data config, read once and scored against by every backend.

    Args:
        config: a data config (YAML: a fit config's ``data`` section, or the section alone).
        input_size: the letterbox side the backends take (the data config's is replaced by it).
        batch_size: images per backend call.
        num_workers: the data loader's worker processes (0: in this process).
    """

    def __init__(self, config: str | Path, input_size: int, batch_size: int = 8, num_workers: int = 0) -> None:
        self.config = Path(config)
        self.datamodule = DetectionDataModule.from_config(
            self.config, input_size=input_size, val_batch_size=batch_size, num_workers=num_workers
        )
        if self.datamodule.hparams.val_split is None:
            raise ValueError(f"{self.config}: the data config has no val_split to score the backends on")
        self.datamodule.setup("validate")
        self.dataset = self.datamodule.datasets["val"]
        self.coco_gt, label_to_category_id = coco_ground_truth(self.dataset)
        self.category_ids = torch.tensor(label_to_category_id, dtype=torch.int64)

    def __len__(self) -> int:
        return len(self.dataset)

    @property
    def class_names(self) -> list[str]:
        return list(self.dataset.class_names)

    def check_classes(self, num_classes: int | None) -> None:
        """ValueError naming the config when a model of ``num_classes`` classes cannot be scored here."""
        if num_classes is not None and num_classes != len(self.class_names):
            raise ValueError(
                f"{self.config}: the model has {num_classes} classes, its validation split "
                f"{len(self.class_names)} ({', '.join(self.class_names)})"
            )


@torch.inference_mode()
def evaluate_backend(
    backend: Backend,
    split: ValidationSplit,
    spec: InferenceSpec,
    score_threshold: float = 0.0,
    nms_iou: float | None = None,
) -> dict[str, float]:
    """COCO box metrics (fractions: ``AP``, ``AP50``, ...) of ``backend`` on ``split``; the
    predictor letterboxes as ``spec`` says and keeps what ``score_threshold`` and ``nms_iou`` keep.
    ValueError when the model's classes are not the split's."""
    split.check_classes(backend.num_classes)
    predictor = Predictor(backend, spec, score_threshold, nms_iou)
    evaluator = COCOEvaluator(split.coco_gt)
    for batch in split.datamodule.val_dataloader():
        detections = predictor.detect_batch(batch)
        category_ids = category_ids_of(detections["labels"], split.category_ids)
        evaluator.add(batch["image_ids"], detections["bboxes"].cpu(), detections["scores"].cpu(), category_ids)
    return evaluator.evaluate()


def spec_and_settings(model: Any, input_size: int) -> tuple[InferenceSpec, float, float | None]:
    """A CenterNet's inference spec at ``input_size`` with its score threshold and NMS IoU; the
    defaults (no threshold, no NMS) for a bare detector."""
    spec = replace(getattr(model, "inference_spec", None) or InferenceSpec(), input_size=input_size)
    hparams = getattr(model, "hparams", {})
    return spec, float(hparams.get("score_threshold", 0.0) or 0.0), hparams.get("nms_iou")
