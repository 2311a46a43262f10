"""The network's input preprocessing, defined once: letterbox, ImageNet normalisation, and back.

Validation (the ``val`` transform of ``datasets/transforms.py``), ``predict``,
``CenterNet.inference_detection2d``, ``OnnxDetector`` and the exported graphs' ``--raw-input``
all use these functions, so one image gives the same network input on every path.

The letterbox resizes an image so that its longer side equals ``input_size`` (aspect kept) and
pads it to a square canvas in the mean colour, centred (as the original CenterNet's centred
affine warp) or at the top-left. It is recorded as ``(scale, pad_x, pad_y)``:
``input_px = original_px * scale + pad`` (see :func:`~centernet_lightning.structures.letterbox_inverse`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import cv2
import numpy as np
import torch
from torch import Tensor

__all__ = [
    "IMAGENET_MEAN",
    "IMAGENET_STD",
    "PAD_FILL",
    "PAD_POSITIONS",
    "letterbox_image",
    "normalize_image",
    "denormalize_image",
    "preprocess_images",
]

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
# Padding in the mean colour normalises to ~0, so padded borders look like "no signal" to the model.
PAD_FILL = tuple(round(255 * m) for m in IMAGENET_MEAN)
PAD_POSITIONS = ("center", "top_left")


def letterbox_image(
    image: np.ndarray, input_size: int | None, size_divisor: int | None = 32, pad_position: str = "center"
) -> tuple[np.ndarray, float, int, int]:
    """Resize (longer side -> ``input_size``) and pad to a square; returns ``(image, scale, pad_x, pad_y)``.

    With ``input_size`` None the image keeps its size and is padded up to multiples of
    ``size_divisor``. Shrinking uses area interpolation, enlarging bilinear.
    """
    if pad_position not in PAD_POSITIONS:
        raise ValueError(f"pad_position must be one of {PAD_POSITIONS}, got {pad_position!r}")
    height, width = image.shape[:2]
    if input_size is not None:
        scale = input_size / max(height, width)
        new_height, new_width = max(1, round(height * scale)), max(1, round(width * scale))
        canvas_height = canvas_width = input_size
        if (new_height, new_width) != (height, width):
            interpolation = cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR
            image = cv2.resize(image, (new_width, new_height), interpolation=interpolation)
    else:
        scale, new_height, new_width = 1.0, height, width
        divisor = size_divisor or 1
        canvas_height, canvas_width = math.ceil(height / divisor) * divisor, math.ceil(width / divisor) * divisor
    pad_x = (canvas_width - new_width) // 2 if pad_position == "center" else 0
    pad_y = (canvas_height - new_height) // 2 if pad_position == "center" else 0
    if (canvas_height, canvas_width) != (new_height, new_width):
        image = cv2.copyMakeBorder(
            image,
            pad_y,
            canvas_height - new_height - pad_y,
            pad_x,
            canvas_width - new_width - pad_x,
            cv2.BORDER_CONSTANT,
            value=PAD_FILL,
        )
    return image, scale, pad_x, pad_y


def normalize_image(image: np.ndarray) -> Tensor:
    """uint8 [H, W, 3] RGB -> float32 [3, H, W]: ``(pixel - 255 * mean) / (255 * std)``.

    Written as ``(pixel - m) * (1 / s)`` in float32, the arithmetic the exported raw-input graphs use.
    """
    mean = np.array(IMAGENET_MEAN, dtype=np.float32) * 255
    inv_std = 1.0 / (np.array(IMAGENET_STD, dtype=np.float32) * 255)
    normalized = (image.astype(np.float32) - mean) * inv_std
    return torch.from_numpy(np.ascontiguousarray(normalized.transpose(2, 0, 1)))


def denormalize_image(image: Tensor) -> np.ndarray:
    """Undo the normalisation: float32 [3, H, W] tensor -> uint8 [H, W, 3] RGB array (for drawing)."""
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    pixels = ((image.detach().cpu().float() * std + mean) * 255).round().clamp(0, 255)
    return pixels.to(torch.uint8).permute(1, 2, 0).numpy()


def preprocess_images(
    images: Sequence[np.ndarray], input_size: int, pad_position: str = "center"
) -> tuple[Tensor, Tensor, Tensor]:
    """Letterbox and normalise a list of uint8 HWC RGB images of any sizes, as validation does.

    Returns:
        ``(inputs, letterbox, original_sizes)``: float32 [B, 3, S, S] network inputs (S =
        ``input_size``), float32 [B, 3] ``(scale, pad_x, pad_y)`` and int64 [B, 2] ``(height, width)``
        of each original image.
    """
    inputs, letterboxes, sizes = [], [], []
    for image in images:
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            described = f"{image.dtype} {list(image.shape)}" if isinstance(image, np.ndarray) else type(image).__name__
            raise TypeError(f"Expected uint8 [H, W, 3] RGB images, got {described}")
        boxed, scale, pad_x, pad_y = letterbox_image(image, input_size, pad_position=pad_position)
        inputs.append(normalize_image(boxed))
        letterboxes.append((scale, pad_x, pad_y))
        sizes.append(image.shape[:2])
    return (
        torch.stack(inputs),
        torch.tensor(letterboxes, dtype=torch.float32),
        torch.tensor(sizes, dtype=torch.int64),
    )
