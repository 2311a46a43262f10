"""The one inference pipeline: whole images in, detections in each image's own pixels out.

A :class:`Predictor` is a backend (a network run by PyTorch, or an exported ONNX file: see
:mod:`~centernet_lightning.inference.backends`), the model's
:class:`~centernet_lightning.structures.InferenceSpec` and its decoding settings. It serves
``centernet predict`` and ``centernet track``, ``inference_detection2d`` and ``inference_tracking2d``,
``benchmark``, test-time augmentation and the evaluation steps of training alike:

1. images are letterboxed to ``spec.input_size`` and normalised exactly as the ``val`` transform
   does (:mod:`~centernet_lightning.preprocess`);
2. the backend returns the top-K detections in input pixels;
3. the score threshold, the class selection and the optional class-wise NMS turn entries into
   padding (label -1, score 0);
4. :meth:`Predictor.to_original_pixels`, the one place that does it, maps the boxes back through the
   inverse letterbox and clips them to each original image; a detection whose centre lies in the
   letterbox padding (a peak outside the image), or whose clipped box has no area, becomes padding.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..checks import MAX_INPUT_SIZE, MIN_INPUT_SIZE, check_int_min, check_int_range, check_memory, check_range
from ..decode import apply_nms, mask_detections, reorder_detections, threshold_detections
from ..models.detector import Outputs
from ..preprocess import letterbox_images, normalize
from ..structures import (
    Batch,
    Detections,
    InferenceSpec,
    clip_boxes,
    is_detection,
    letterbox_inverse,
    letterbox_inverse_points,
    to_numpy,
)
from ..tracking import THRESHOLD_SETTINGS, Tracker
from .backends import ExportedGraphBackend, NetworkBackend, OnnxRuntimeBackend, OpenVINOBackend
from .sources import Frame, ImageSource, batched, open_source

__all__ = ["Predictor", "Backend", "empty_detections", "class_indices"]

Backend = NetworkBackend | OnnxRuntimeBackend | OpenVINOBackend


def empty_detections(
    count: int, k: int, field_shapes: Mapping[str, Sequence[int]] | None = None
) -> dict[str, np.ndarray]:
    """Padding for ``count`` images: ``bboxes`` zeros [count, k, 4], ``scores`` 0, ``labels`` -1,
    and zeros [count, k, *shape] for each per-detection field of ``field_shapes`` (``embeddings``
    [D], ``keypoints`` [J, 3])."""
    empty = {
        "bboxes": np.zeros((count, k, 4), np.float32),
        "scores": np.zeros((count, k), np.float32),
        "labels": np.full((count, k), -1, np.int64),
    }
    for field, shape in (field_shapes or {}).items():
        empty[field] = np.zeros((count, k, *shape), np.float32)
    return empty


# Bytes per input pixel a batch needs at the least, to refuse one that cannot fit before allocating
# it: on the host the uint8 letterbox canvas (3) and its normalised float32 copy (12); on the
# network's device its float32 input (12) and the first feature map, which every backbone here
# holds at >= 64 float32 channels at stride 2 or >= 16 at stride 1 (64 bytes per input pixel).
CANVAS_BYTES_PER_PIXEL = 3
HOST_BYTES_PER_PIXEL = CANVAS_BYTES_PER_PIXEL + 12
NETWORK_BYTES_PER_PIXEL = 12 + 64

# numpy dtypes of predict()'s arrays; every other entry (boxes, scores, embeddings) is float32.
NUMPY_DTYPES = {"labels": np.int64, "indices": np.int64}


def class_indices(selection: Sequence[str | int], class_names: Sequence[str] | None, num_classes: int) -> list[int]:
    """The 0-based labels of ``selection``: class names, or label indices (ints or digit strings).

    ValueError naming the first unknown entry and listing the model's classes.
    """
    names = list(class_names or [])
    valid = ", ".join(f"{index} {name}" for index, name in enumerate(names)) or f"0..{num_classes - 1}"
    labels = []
    for item in selection:
        text = str(item).strip()
        if text in names:
            labels.append(names.index(text))
        elif text.isdigit() and int(text) < num_classes:
            labels.append(int(text))
        else:
            raise ValueError(f"--classes: the model has no class {text!r}; its classes: {valid}")
    return sorted(set(labels))


def check_input_size(input_size: int, size_divisor: int) -> None:
    """ValueError unless the letterbox side ``input_size`` is a multiple of ``size_divisor`` in
    ``[MIN_INPUT_SIZE, MAX_INPUT_SIZE]``; TypeError for a non-integer."""
    check_int_range("input size", input_size, MIN_INPUT_SIZE, MAX_INPUT_SIZE)
    if input_size < size_divisor or input_size % size_divisor:
        raise ValueError(f"The input size must be a positive multiple of {size_divisor}, got {input_size}")


class Predictor:
    """A backend with the model's preprocessing and decoding settings: run it on whole images.

    Args:
        backend: a :class:`~centernet_lightning.inference.backends.NetworkBackend` or
            :class:`~centernet_lightning.inference.backends.OnnxRuntimeBackend`.
        spec: input size, letterbox, class names, category ids; None: the backend's (an exported
            file carries it), else the defaults.
        score_threshold: detections scored below it become padding; in [0, 1].
        nms_iou: IoU in (0, 1] of an optional class-wise NMS after decoding (None: none, as the original).
        tracker: the model's :class:`~centernet_lightning.tracking.Tracker` settings, for
            :meth:`build_tracker`.
        classes: keep only these classes (names or 0-based labels; see :func:`class_indices`);
            None keeps all. The others become padding before NMS and tracking.
    """

    def __init__(
        self,
        backend: Backend,
        spec: InferenceSpec | None = None,
        score_threshold: float = 0.0,
        nms_iou: float | None = None,
        tracker: Mapping[str, Any] | None = None,
        classes: Sequence[str | int] | None = None,
    ) -> None:
        self.backend = backend
        self.spec = spec or backend.spec or InferenceSpec()
        fixed = backend.input_size
        if fixed is not None and tuple(fixed) != (self.spec.input_size, self.spec.input_size):
            raise ValueError(
                f"The {backend.name} backend takes {fixed[0]}x{fixed[1]} inputs; the predictor letterboxes to "
                f"{self.spec.input_size}x{self.spec.input_size} (export the model at that size)"
            )
        check_input_size(self.spec.input_size, backend.size_divisor)
        self.score_threshold = check_range("score_threshold", score_threshold, 0.0, 1.0)
        self.nms_iou = None if nms_iou is None else check_range("nms_iou", nms_iou, 0.0, 1.0, low_open=True)
        self.tracker_settings = dict(tracker or {})
        self.classes = None if classes is None else class_indices(classes, self.spec.class_names, backend.num_classes)

    @classmethod
    def from_onnx(
        cls,
        path: Any,
        device: str | torch.device = "cpu",
        threads: int | None = None,
        classes: Sequence[str | int] | None = None,
    ) -> Predictor:
        """A predictor of an exported ONNX file, with the spec and settings its export stored."""
        return cls.from_exported(OnnxRuntimeBackend(path, device, threads), classes)

    @classmethod
    def from_openvino(
        cls,
        path: Any,
        device: str | torch.device = "cpu",
        threads: int | None = None,
        classes: Sequence[str | int] | None = None,
        precision: str = "f32",
    ) -> Predictor:
        """A predictor of an exported OpenVINO IR (``.xml``), with the spec and settings its export stored."""
        return cls.from_exported(OpenVINOBackend(path, device, threads, precision), classes)

    @classmethod
    def from_exported(cls, backend: ExportedGraphBackend, classes: Sequence[str | int] | None = None) -> Predictor:
        """A predictor of an exported graph's backend, with the spec and settings its export stored."""
        settings = backend.metadata.get("predictor") or {}
        return cls(
            backend,
            backend.spec,
            settings.get("score_threshold", 0.0),
            settings.get("nms_iou"),
            settings.get("tracker"),
            classes,
        )

    @property
    def num_detections(self) -> int:
        return self.backend.num_detections

    @property
    def has_embeddings(self) -> bool:
        return self.backend.has_embeddings

    # ------------------------------------------------------------------------------ batches
    def detect(self, inputs: Tensor) -> Detections:
        """Detections of network inputs (what :meth:`prepare` gives), in input pixels."""
        return self.finalize(self.backend(inputs))

    def finalize(self, detections: Detections) -> Detections:
        """The score threshold, the class selection and the optional NMS: entries below, of other
        classes or suppressed become padding."""
        detections = threshold_detections(detections, self.score_threshold)
        if self.classes is not None:
            labels = detections["labels"]
            selected = torch.isin(labels, torch.tensor(self.classes, device=labels.device))
            detections = keep_detections(detections, selected)
        return apply_nms(detections, self.nms_iou) if self.nms_iou is not None else detections

    def detect_batch(self, batch: Batch, outputs: Outputs | None = None) -> dict[str, Any]:
        """Detections of a collated batch in ORIGINAL image pixels, with its ``image_ids`` and ``image_paths``.

        ``outputs``: the network's raw outputs of ``batch["images"]`` when the caller has them
        already (the evaluation steps compute them for the loss); they are decoded instead of
        running the network again, unless test-time augmentation needs its own forwards.
        """
        use_outputs = outputs is not None and isinstance(self.backend, NetworkBackend) and self.backend.tta is None
        raw = self.backend.decode(outputs) if use_outputs else self.backend(batch["images"])
        detections = self.to_original_pixels(self.finalize(raw), batch["letterbox"], batch["original_sizes"])
        return {**detections, "image_ids": batch["image_ids"], "image_paths": batch["image_paths"]}

    @staticmethod
    def to_original_pixels(detections: Detections, letterbox: Tensor, original_sizes: Tensor) -> Detections:
        """``detections`` with boxes (and joints) mapped from input pixels back to each original image
        and clipped to it: the one place this is done. ``letterbox`` [B, 3], ``original_sizes`` [B, 2] (h, w).

        A detection whose box centre lies outside the image (a heatmap peak in the letterbox
        padding of a non-square image) or whose clipped box has no area becomes padding: it
        would be a zero-size box on the image's border.
        """
        bboxes = detections["bboxes"]
        device = bboxes.device
        letterbox, original_sizes = letterbox.to(device), original_sizes.to(device)
        unclipped = letterbox_inverse(bboxes, letterbox)  # [B, K, 4]
        mapped = clip_boxes(unclipped, original_sizes)
        centres = (unclipped[..., :2] + unclipped[..., 2:]) / 2  # [B, K, 2] x, y
        sizes = original_sizes.flip(-1).to(centres.dtype).unsqueeze(-2)  # [B, 1, 2] w, h
        inside = ((centres >= 0) & (centres <= sizes)).all(-1)
        has_area = (mapped[..., 2:] > mapped[..., :2]).all(-1)
        mapped_detections = {**detections, "bboxes": mapped}
        if "keypoints" in detections:
            mapped_detections["keypoints"] = letterbox_inverse_points(
                detections["keypoints"], letterbox, original_sizes
            )
        return keep_detections(mapped_detections, inside & has_area)

    def check_batch_memory(self, batch_size: int) -> None:
        """ValueError, before anything is allocated, when ``batch_size`` images at the input size
        need more memory than the host (or the backend's GPU) has available: a lower bound of what
        a batch takes (letterbox canvases, network inputs, the first feature map; times the
        scales and flip of test-time augmentation), naming ``--batch`` and ``--imgsz``."""
        check_int_min("batch size", batch_size, 1)
        side = self.spec.input_size
        pixels = batch_size * side * side
        tta = getattr(self.backend, "tta", None)
        augmented = max(tta.scales) ** 2 * (2 if tta.flip else 1) if tta is not None else 1
        network = int(pixels * NETWORK_BYTES_PER_PIXEL * augmented)
        host = pixels * (CANVAS_BYTES_PER_PIXEL if self.backend.raw_input else HOST_BYTES_PER_PIXEL)
        what = f"A batch of {batch_size} image{'s' if batch_size > 1 else ''} at {side}x{side} px"
        advice = "lower the batch size (--batch) or the input size (--imgsz)"
        device = torch.device(self.backend.device)
        if device.type == "cpu":
            check_memory(what, host + network, "cpu", advice)
        else:
            check_memory(what, host, "cpu", advice)
            check_memory(what, network, device, advice)

    # ------------------------------------------------------------------------------ images
    def prepare(self, images: Sequence[np.ndarray]) -> tuple[Tensor, Tensor, Tensor]:
        """Letterboxed network inputs of uint8 HWC RGB images of any sizes, as validation makes them.

        Returns ``(inputs, letterbox, original_sizes)``: float32 [B, 3, S, S] normalised (uint8
        [B, S, S, 3] for a raw-input graph), float32 [B, 3] and int64 [B, 2].
        """
        canvases, letterbox, original_sizes = letterbox_images(images, self.spec.input_size, self.spec.pad_position)
        pixels = torch.from_numpy(canvases)
        return (pixels if self.backend.raw_input else normalize(pixels)), letterbox, original_sizes

    def predict(self, images: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        """Detections of uint8 HWC RGB images of any sizes, in each image's own pixels.

        Returns:
            ``bboxes`` float32 [N, K, 4] XYXY original pixels, ``scores`` float32 [N, K] (descending,
            0 for padding), ``labels`` int64 [N, K] (-1 for padding), ``embeddings`` float32
            [N, K, D] for a model with a re-ID head, and ``keypoints`` float32 [N, K, J, 3] (x, y
            original pixels, score) for a keypoint model.

        ValueError before any allocation when the N images cannot fit (see :meth:`check_batch_memory`).
        """
        self.check_batch_memory(max(len(images), 1))
        inputs, letterbox, original_sizes = self.prepare(images)
        detections = self.to_original_pixels(self.detect(inputs), letterbox, original_sizes)
        return {key: to_numpy(value, NUMPY_DTYPES.get(key, np.float32)) for key, value in detections.items()}

    def predict_source(
        self, source: ImageSource, batch_size: int = 8
    ) -> Iterator[tuple[list[Frame], dict[str, np.ndarray]]]:
        """Run over a source in batches; yields each batch's frames with their detections ([len, K]).

        Frames that could not be read (``image`` None) get padding rows, so results stay aligned with
        the frames.
        """
        k = self.num_detections
        field_shapes = self.backend.field_shapes
        for frames in batched(iter(source), batch_size):
            readable = [index for index, frame in enumerate(frames) if frame.image is not None]
            results = empty_detections(len(frames), k, field_shapes)
            if readable:
                found = self.predict([frames[index].image for index in readable])
                width = min(k, found["scores"].shape[1])
                for key, values in found.items():
                    results[key][readable, :width] = values[:, :width]
            yield frames, results

    def __call__(self, source: Any, batch_size: int = 8, skip_bad_images: bool = False) -> dict[str, np.ndarray]:
        """Detections of a whole source (see :func:`~centernet_lightning.inference.open_source`: an
        image path, a folder, a glob, a video, a list of paths or of uint8 [H, W, 3] RGB arrays), in
        each image's own pixels: the arrays of :meth:`predict`, N images in source order. An
        unreadable file raises an error naming it, or with ``skip_bad_images`` gives a warning and
        an all-padding row."""
        parts = [results for _, results in self.predict_source(open_source(source, skip_bad_images), batch_size)]
        return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}

    # ------------------------------------------------------------------------------ tracking
    def build_tracker(self, **overrides: Any) -> Tracker:
        """A fresh :class:`~centernet_lightning.tracking.Tracker` with the model's settings and
        ``overrides`` (e.g. the sequence's ``frame_rate``); one tracker follows one video.

        A model without a re-ID head (a detection-only CenterNet) whose settings name none of the
        score thresholds gets ``relative_thresholds=True``: its thresholds follow the sequence's
        highest score, since FairMOT's absolute defaults (0.4 / 0.5) were set for FairMOT's scores,
        and a detector's (briefly trained, other data) may all lie below them.
        """
        settings = {**self.tracker_settings, **overrides}
        if not self.has_embeddings and not set(THRESHOLD_SETTINGS) & settings.keys():
            settings.setdefault("relative_thresholds", True)
        try:
            return Tracker(**settings)
        except (TypeError, ValueError) as error:  # the model's settings or the overrides: say which part
            raise ValueError(f"tracker settings: {error}") from None


def keep_detections(detections: Detections, kept: Tensor) -> Detections:
    """``detections`` where ``kept`` [B, K] is False made padding (score 0, label -1) and moved after
    the kept ones, whose order (descending score) is unchanged."""
    masked = mask_detections(detections, kept)
    dropped = ~is_detection(masked["labels"])
    order = torch.argsort(dropped.to(torch.uint8), dim=1, stable=True)  # [B, K]: kept first, in order
    return reorder_detections(masked, order)
