"""Detections of whole images: preprocess as validation does, run a detector, map boxes back.

Every inference path (``CenterNet.inference_detection2d``, ``centernet predict``, the ONNX
Runtime detector) goes through :func:`detect_images`, so one image gives the same boxes on all of
them and through ``validate``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence

import numpy as np
import torch
from torch import Tensor

from ..preprocess import preprocess_images
from ..structures import Detections, letterbox_inverse
from .sources import Frame, ImageSource, batched
from .spec import InferenceSpec

__all__ = ["DetectFunction", "detect_images", "detect_source", "empty_detections", "resolve_device"]

# Network input float32 [B, 3, S, S] (on the detector's device) -> Detections in input pixels.
DetectFunction = Callable[[Tensor], Detections]


def resolve_device(device: str | torch.device | None) -> torch.device:
    """``auto``/None: CUDA when available, else CPU; ``cuda`` without a GPU is an error."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    device = torch.device(device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError("--device cuda was asked for, but PyTorch sees no CUDA GPU (use --device cpu or auto)")
    return device


def empty_detections(count: int, k: int) -> dict[str, np.ndarray]:
    """Padding for ``count`` images: ``bboxes`` zeros [count, k, 4], ``scores`` 0, ``labels`` -1."""
    return {
        "bboxes": np.zeros((count, k, 4), np.float32),
        "scores": np.zeros((count, k), np.float32),
        "labels": np.full((count, k), -1, np.int64),
    }


@torch.no_grad()
def detect_images(
    detect: DetectFunction, images: Sequence[np.ndarray], spec: InferenceSpec, device: torch.device | str = "cpu"
) -> dict[str, np.ndarray]:
    """Detections of uint8 HWC RGB images of any sizes, in each image's own pixels.

    Each image is letterboxed to ``spec.input_size`` and normalised exactly as the ``val``
    transform does; the boxes come back through the inverse letterbox and are clipped to the image.

    Returns:
        ``bboxes`` float32 [N, K, 4] XYXY original pixels, ``scores`` float32 [N, K] (descending,
        0 for padding), ``labels`` int64 [N, K] (-1 for padding), and ``embeddings`` float32
        [N, K, D] when the detector gives them (FairMOT).
    """
    inputs, letterbox, original_sizes = preprocess_images(images, spec.input_size, spec.pad_position)
    detections = detect(inputs.to(device))
    bboxes = letterbox_inverse(detections["bboxes"].float().cpu(), letterbox, original_sizes)
    found = {
        "bboxes": bboxes.numpy(),
        "scores": detections["scores"].float().cpu().numpy(),
        "labels": detections["labels"].cpu().numpy().astype(np.int64),
    }
    if "embeddings" in detections:
        found["embeddings"] = detections["embeddings"].float().cpu().numpy()
    return found


def detect_source(
    detect: DetectFunction,
    source: ImageSource,
    spec: InferenceSpec,
    device: torch.device | str,
    batch_size: int,
    k: int,
) -> Iterator[tuple[list[Frame], dict[str, np.ndarray]]]:
    """Run over a source in batches; yields each batch's frames with their detections ([len, K]).

    Frames that could not be read (``image`` None) get padding rows, so results stay aligned with
    the frames.
    """
    for frames in batched(iter(source), batch_size):
        readable = [index for index, frame in enumerate(frames) if frame.image is not None]
        results = empty_detections(len(frames), k)
        if readable:
            found = detect_images(detect, [frames[index].image for index in readable], spec, device)
            width = min(k, found["scores"].shape[1])
            if "embeddings" in found:
                results["embeddings"] = np.zeros((len(frames), k, found["embeddings"].shape[-1]), np.float32)
            for key, values in found.items():
                results[key][readable, :width] = values[:, :width]
        yield frames, results
