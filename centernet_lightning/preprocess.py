"""The network's input preprocessing, defined once: letterbox, ImageNet normalisation, and back.

Validation (the ``val`` transform of ``datasets/transforms.py``), the
:class:`~centernet_lightning.inference.Predictor` (``predict``, ``track``, every backend) and the
exported graphs' ``--raw-input`` all use these functions, so one image gives the same network
input on every path.

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

from .structures import IMAGENET_MEAN, IMAGENET_STD, PAD_POSITIONS

__all__ = [
    "PAD_FILL",
    "letterbox_image",
    "letterbox_images",
    "normalize",
    "normalize_image",
    "denormalize_image",
    "preprocess_images",
]

# Padding in the mean colour normalises to ~0, so padded borders look like "no signal" to the model.
PAD_FILL = tuple(round(255 * m) for m in IMAGENET_MEAN)
# ``(pixel - 255 * mean) * (1 / (255 * std))`` in float32: the one normalisation arithmetic.
_MEAN_255 = torch.tensor(IMAGENET_MEAN, dtype=torch.float32) * 255
_INV_STD_255 = 1.0 / (torch.tensor(IMAGENET_STD, dtype=torch.float32) * 255)


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


def normalize(pixels: Tensor) -> Tensor:
    """uint8 (or float) RGB pixels [..., H, W, 3] -> float32 normalised [..., 3, H, W].

    ``(pixel - 255 * mean) * (1 / (255 * std))`` in float32 with ImageNet's mean and std: the
    ``val`` transform, the predictor and the raw-input exported graphs all compute it here.
    """
    mean, inv_std = _MEAN_255.to(pixels.device), _INV_STD_255.to(pixels.device)
    normalized = (pixels.to(torch.float32) - mean) * inv_std
    return normalized.movedim(-1, -3).contiguous()


def normalize_image(image: np.ndarray) -> Tensor:
    """uint8 [H, W, 3] RGB array -> float32 [3, H, W] tensor (see :func:`normalize`)."""
    return normalize(torch.from_numpy(np.ascontiguousarray(image)))


def denormalize_image(image: Tensor) -> np.ndarray:
    """Undo the normalisation: float32 [3, H, W] tensor -> uint8 [H, W, 3] RGB array (for drawing)."""
    pixels = image.detach().cpu().float().movedim(-3, -1) / _INV_STD_255 + _MEAN_255
    return pixels.round().clamp(0, 255).to(torch.uint8).numpy()


def letterbox_images(
    images: Sequence[np.ndarray], input_size: int, pad_position: str = "center"
) -> tuple[np.ndarray, Tensor, Tensor]:
    """Letterbox a list of uint8 HWC RGB images of any sizes onto square canvases, as validation does.

    Returns:
        ``(canvases, letterbox, original_sizes)``: uint8 [B, S, S, 3] letterboxed images (S =
        ``input_size``), float32 [B, 3] ``(scale, pad_x, pad_y)`` and int64 [B, 2] ``(height, width)``
        of each original image. Raises TypeError naming the first image that is not uint8 [H, W, 3].
    """
    canvases, letterboxes, sizes = [], [], []
    for image in images:
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3 or image.shape[2] != 3:
            described = f"{image.dtype} {list(image.shape)}" if isinstance(image, np.ndarray) else type(image).__name__
            raise TypeError(f"Expected uint8 [H, W, 3] RGB images, got {described}")
        boxed, scale, pad_x, pad_y = letterbox_image(image, input_size, pad_position=pad_position)
        canvases.append(boxed)
        letterboxes.append((scale, pad_x, pad_y))
        sizes.append(image.shape[:2])
    return (
        np.stack(canvases),
        torch.tensor(letterboxes, dtype=torch.float32),
        torch.tensor(sizes, dtype=torch.int64),
    )


def preprocess_images(
    images: Sequence[np.ndarray], input_size: int, pad_position: str = "center"
) -> tuple[Tensor, Tensor, Tensor]:
    """:func:`letterbox_images` then :func:`normalize`: float32 [B, 3, S, S] network inputs, the
    letterbox [B, 3] and the original sizes [B, 2]."""
    canvases, letterbox, original_sizes = letterbox_images(images, input_size, pad_position)
    return normalize(torch.from_numpy(canvases)), letterbox, original_sizes
