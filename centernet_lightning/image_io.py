"""Reading image files: the formats OpenCV decodes, one error naming the file, EXIF orientation.

Shared by the dataset readers, inference on images and videos, and drawing.
"""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np
from PIL import Image

__all__ = ["IMAGE_EXTENSIONS", "read_image", "read_image_size"]

# Every still-image format OpenCV's imdecode reads (lower case; readers match any case).
IMAGE_EXTENSIONS = (
    ".jpg", ".jpeg", ".jpe", ".png", ".bmp", ".dib", ".webp", ".tif", ".tiff", ".jp2",
    ".pbm", ".pgm", ".ppm", ".pnm", ".pxm", ".sr", ".ras", ".exr", ".hdr", ".pic",
)  # fmt: skip


def read_image(path: str | Path, apply_orientation: bool = True) -> np.ndarray:
    """Read an image file as a uint8 HWC RGB array, rotated by its EXIF orientation unless
    ``apply_orientation`` is False.

    Raises FileNotFoundError when the file does not exist and OSError when it cannot be decoded,
    both naming the file. Grey and RGBA images are converted to 3-channel RGB.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"Image file not found: {path}")
    # np.fromfile + imdecode instead of cv2.imread: imread silently returns None on non-ASCII
    # paths on some platforms, and we want one error message for every decoding failure.
    data = np.fromfile(str(path), dtype=np.uint8)
    flags = cv2.IMREAD_COLOR if apply_orientation else cv2.IMREAD_COLOR | cv2.IMREAD_IGNORE_ORIENTATION
    image = cv2.imdecode(data, flags) if data.size else None
    if image is None:
        raise OSError(f"Cannot decode image file (corrupt or unsupported format): {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def read_image_size(path: str | Path) -> tuple[int, int]:
    """``(height, width)`` of an image from its header, as :func:`read_image` would return it.

    Reads only the header (PIL), so it is cheap enough to call at construction. EXIF rotations
    by 90 degrees swap the sides, matching OpenCV's default orientation handling in read_image.
    """
    path = Path(path)
    try:
        with Image.open(path) as image:
            width, height = image.size
            orientation = image.getexif().get(0x0112, 1)
    except FileNotFoundError:
        raise FileNotFoundError(f"Image file not found: {path}") from None
    except OSError as error:
        raise OSError(f"Cannot read image header of {path}: {error}") from error
    if orientation in (5, 6, 7, 8):  # EXIF transpose / rotate 90 / transverse / rotate 270
        width, height = height, width
    return height, width
