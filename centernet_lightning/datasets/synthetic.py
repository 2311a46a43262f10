"""A procedurally drawn shapes dataset, written to disk in COCO format.

Each image has a textured, noisy, low-saturation background, distractor clutter that is not an
object (thin lines, small specks), and 3-8 filled shapes whose class is given by both the shape
and a hue band of its own, so a small CNN learns it in minutes. Shapes vary in size, aspect,
rotation and shade, may be cut by the image border a little and may overlap moderately (a new
shape covers at most ~30% of an earlier one's box). The box of a shape is the tight box of all
the pixels drawn for it (before later shapes cover it), clipped to the image.

Output (readable with :class:`~centernet_lightning.datasets.coco.COCODataset`)::

    out_dir/annotations/instances_{train,val}.json
    out_dir/images/{train,val}/000000.jpg ...

Generation is deterministic: every image draws from its own RNG seeded by (seed, split, index),
so the same arguments give byte-identical files.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import cv2
import numpy as np

__all__ = ["SHAPE_NAMES", "generate_synthetic_dataset"]

SHAPE_NAMES = ("circle", "rectangle", "triangle", "star", "cross", "ring", "hexagon", "crescent")
_SPLIT_CODES = {"train": 0, "val": 1}
_SUBPIXEL_BITS = 4  # cv2 fixed-point drawing, so small rotated shapes keep their form


def _polygon(center: float, radii: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """Integer fixed-point vertices for cv2.fillPoly from polar coordinates around (center, center)."""
    points = center + np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)
    return np.round(points * (1 << _SUBPIXEL_BITS)).astype(np.int32)


def _draw_shape(kind: str, size: float, aspect: float, angle: float, rng: np.random.Generator) -> np.ndarray:
    """A binary uint8 mask (side ~1.5 * size) with one shape of extent ``size`` pixels at its centre."""
    side = int(math.ceil(size * 1.5)) + 4
    mask = np.zeros((side, side), dtype=np.uint8)
    c, r = side / 2, size / 2
    shift = _SUBPIXEL_BITS
    fixed = lambda v: int(round(v * (1 << shift)))
    if kind in ("circle", "ring"):
        axes = (fixed(r), fixed(r * aspect))
        thickness = -1 if kind == "circle" else max(2, int(round(size * 0.18)))
        inner = (fixed(r - thickness / 2), fixed(r * aspect - thickness / 2)) if kind == "ring" else axes
        cv2.ellipse(mask, (fixed(c), fixed(c)), inner, math.degrees(angle), 0, 360, 1, thickness, cv2.LINE_8, shift)
    elif kind == "rectangle":
        corners = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]]) * [r, r * aspect]
        rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
        points = np.round((c + corners @ rotation.T) * (1 << shift)).astype(np.int32)
        cv2.fillPoly(mask, [points], 1, cv2.LINE_8, shift)
    elif kind == "triangle":
        angles = angle + np.radians([0, 120, 240]) + rng.uniform(-0.25, 0.25, 3)
        cv2.fillPoly(mask, [_polygon(c, np.full(3, r), angles)], 1, cv2.LINE_8, shift)
    elif kind == "star":
        angles = angle + np.arange(10) * math.pi / 5
        radii = np.where(np.arange(10) % 2 == 0, r, r * 0.45)
        cv2.fillPoly(mask, [_polygon(c, radii, angles)], 1, cv2.LINE_8, shift)
    elif kind == "hexagon":
        cv2.fillPoly(mask, [_polygon(c, np.full(6, r), angle + np.arange(6) * math.pi / 3)], 1, cv2.LINE_8, shift)
    elif kind == "cross":
        arm = 0.32 * aspect
        for corners in ([[-1, -arm], [1, -arm], [1, arm], [-1, arm]], [[-arm, -1], [arm, -1], [arm, 1], [-arm, 1]]):
            rotation = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
            points = np.round((c + np.array(corners) * r @ rotation.T) * (1 << shift)).astype(np.int32)
            cv2.fillPoly(mask, [points], 1, cv2.LINE_8, shift)
    elif kind == "crescent":
        cv2.circle(mask, (fixed(c), fixed(c)), fixed(r), 1, -1, cv2.LINE_8, shift)
        offset = (fixed(c + 0.45 * r * math.cos(angle)), fixed(c + 0.45 * r * math.sin(angle)))
        cv2.circle(mask, offset, fixed(0.8 * r), 0, -1, cv2.LINE_8, shift)
    return mask


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """float32 [size, size, 3] low-saturation texture: smooth blobs, a gradient, sometimes stripes."""
    grey = rng.uniform(50, 190)
    image = np.full((size, size, 3), grey, dtype=np.float32) + rng.normal(0, 8, 3).astype(np.float32)
    cells = int(rng.integers(3, 9))
    # Mostly brightness blobs with a faint colour cast: the background stays far less saturated
    # than any object, so colour is a reliable (but not the only) cue.
    blobs = rng.normal(0, 1, (cells, cells, 4)).astype(np.float32)
    blobs = blobs[..., :1] * rng.uniform(8, 35) + blobs[..., 1:] * rng.uniform(2, 8)
    image += cv2.resize(blobs, (size, size), interpolation=cv2.INTER_CUBIC)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) / size - 0.5
    direction = rng.uniform(0, 2 * math.pi)
    ramp = xs * math.cos(direction) + ys * math.sin(direction)
    image += (ramp * rng.uniform(-50, 50))[..., None]
    if rng.random() < 0.4:
        period = rng.uniform(4, 16)
        stripe_angle = rng.uniform(0, math.pi)
        phase = (xs * math.cos(stripe_angle) + ys * math.sin(stripe_angle)) * size * 2 * math.pi / period
        image += (np.sin(phase) * rng.uniform(4, 12))[..., None]
    return image


def _class_colour(rng: np.random.Generator, label: int, num_classes: int) -> tuple[float, float, float]:
    """An RGB colour in the class's own hue band (OpenCV hue 0-180), saturated and bright."""
    band = 180.0 / num_classes
    hue = (label * band + rng.uniform(-0.2, 0.2) * band) % 180
    # Float HSV in OpenCV: hue in degrees, saturation and value in [0, 1].
    hsv = np.array([[[2 * hue, rng.uniform(0.67, 1.0), rng.uniform(0.6, 1.0)]]], dtype=np.float32)
    return tuple(float(v) * 255 for v in cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0])


def _overlap_ok(box: np.ndarray, boxes: list[np.ndarray]) -> bool:
    """A new box may cover at most 30% of an earlier box and 50% of itself (moderate occlusion)."""
    area = (box[2] - box[0]) * (box[3] - box[1])
    for other in boxes:
        iw = min(box[2], other[2]) - max(box[0], other[0])
        ih = min(box[3], other[3]) - max(box[1], other[1])
        if iw > 0 and ih > 0:
            inter = iw * ih
            if inter > 0.3 * (other[2] - other[0]) * (other[3] - other[1]) or inter > 0.5 * area:
                return False
    return True


def _sample_size(rng: np.random.Generator, image_size: int, min_size: float, max_size: float) -> float:
    """Mostly log-uniform in 16-120 px (scaled from 256 px images), a few smaller or larger."""
    low, high = np.clip(np.array([16.0, 120.0]) * image_size / 256, min_size, max_size)
    draw = rng.random()
    if draw < 0.05:
        return float(rng.uniform(min_size, low))
    if draw > 0.95:
        return float(rng.uniform(high, max_size))
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def _render_image(
    rng: np.random.Generator, image_size: int, num_classes: int, sizes: tuple[float, float], objects: tuple[int, int]
) -> tuple[np.ndarray, list[tuple[int, np.ndarray, int]]]:
    """One RGB uint8 image and its objects as ``(label, xyxy box, pixel area)``."""
    image = _background(rng, image_size)
    for _ in range(int(rng.integers(2, 8))):  # distractor lines: thin, long, any colour
        start, end = rng.integers(0, image_size, 2), rng.integers(0, image_size, 2)
        colour = tuple(float(v) for v in rng.uniform(0, 255, 3))
        cv2.line(image, tuple(int(v) for v in start), tuple(int(v) for v in end), colour, int(rng.integers(1, 3)))
    for _ in range(int(rng.integers(5, 30))):  # distractor specks, smaller than any object
        centre = tuple(int(v) for v in rng.integers(0, image_size, 2))
        cv2.circle(image, centre, int(rng.integers(1, 3)), tuple(float(v) for v in rng.uniform(0, 255, 3)), -1)

    placed: list[tuple[int, np.ndarray, int]] = []
    for _ in range(int(rng.integers(objects[0], objects[1] + 1))):
        label = int(rng.integers(num_classes))
        for _attempt in range(15):
            size = _sample_size(rng, image_size, *sizes)
            mask = _draw_shape(SHAPE_NAMES[label], size, rng.uniform(0.45, 1.0), rng.uniform(0, 2 * math.pi), rng)
            margin = min(0.35 * size, image_size / 2)  # at most ~15% of a shape leaves the image
            cx, cy = rng.uniform(margin, image_size - margin, 2)
            x0, y0 = int(round(cx)) - mask.shape[1] // 2, int(round(cy)) - mask.shape[0] // 2
            # Part of the mask inside the image.
            ix0, iy0 = max(x0, 0), max(y0, 0)
            ix1, iy1 = min(x0 + mask.shape[1], image_size), min(y0 + mask.shape[0], image_size)
            visible = mask[iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0].astype(bool)
            rows, cols = np.flatnonzero(visible.any(axis=1)), np.flatnonzero(visible.any(axis=0))
            if len(rows) == 0:
                continue
            box = np.array([ix0 + cols[0], iy0 + rows[0], ix0 + cols[-1] + 1, iy0 + rows[-1] + 1], dtype=np.float32)
            if not _overlap_ok(box, [b for _, b, _ in placed]):
                continue
            image[iy0:iy1, ix0:ix1][visible] = _class_colour(rng, label, num_classes)
            placed.append((label, box, int(visible.sum())))
            break
    noise = rng.normal(0, rng.uniform(2, 8), image.shape).astype(np.float32)
    return np.clip(image + noise, 0, 255).astype(np.uint8), placed


def generate_synthetic_dataset(
    out_dir: str | Path,
    num_train: int = 300,
    num_val: int = 100,
    image_size: int = 256,
    num_classes: int = 3,
    seed: int = 0,
    min_size: float = 6,
    max_size: float = 200,
    min_objects: int = 3,
    max_objects: int = 8,
    overwrite: bool = False,
) -> Path:
    """Draw a shapes dataset and write it in COCO format under ``out_dir``; returns ``out_dir``.

    Args:
        out_dir: destination; must be missing or empty unless ``overwrite`` (then our files are
            overwritten in place; nothing is deleted, so stale extra images may remain).
        num_train, num_val: images per split.
        image_size: side of the square images in pixels.
        num_classes: 1 to 8; classes are ``SHAPE_NAMES[:num_classes]``.
        seed: same seed (and arguments) -> byte-identical json and images.
        min_size, max_size: object extent limits in pixels (most objects are 16-120 px at 256 px).
        min_objects, max_objects: objects per image (fewer when a shape finds no free place).
    """
    if not 1 <= num_classes <= len(SHAPE_NAMES):
        raise ValueError(f"num_classes must be in [1, {len(SHAPE_NAMES)}] (shapes: {SHAPE_NAMES}), got {num_classes}")
    if not 0 < min_size <= max_size:
        raise ValueError(f"need 0 < min_size <= max_size, got {min_size}, {max_size}")
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise FileExistsError(f"{out_dir} is not empty; choose an empty folder or pass overwrite=True")
    categories = [{"id": i + 1, "name": name, "supercategory": "shape"} for i, name in enumerate(SHAPE_NAMES)]
    for split, count in (("train", num_train), ("val", num_val)):
        image_dir = out_dir / "images" / split
        image_dir.mkdir(parents=True, exist_ok=True)
        images: list[dict[str, Any]] = []
        annotations: list[dict[str, Any]] = []
        for index in range(count):
            rng = np.random.default_rng([seed, _SPLIT_CODES[split], index])
            image, objects = _render_image(
                rng, image_size, num_classes, (min_size, max_size), (min_objects, max_objects)
            )
            file_name = f"{index:06d}.jpg"
            ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
            if not ok:
                raise OSError(f"could not encode {image_dir / file_name}")
            (image_dir / file_name).write_bytes(encoded.tobytes())
            images.append({"id": index + 1, "file_name": file_name, "width": image_size, "height": image_size})
            for label, box, area in objects:
                x1, y1, x2, y2 = (int(v) for v in box)
                annotations.append(
                    {
                        "id": len(annotations) + 1,
                        "image_id": index + 1,
                        "category_id": label + 1,
                        "bbox": [x1, y1, x2 - x1, y2 - y1],
                        "area": area,
                        "iscrowd": 0,
                    }
                )
        info = {"description": "centernet-lightning synthetic shapes", "seed": seed, "image_size": image_size}
        data = {"info": info, "images": images, "annotations": annotations, "categories": categories[:num_classes]}
        (out_dir / "annotations").mkdir(parents=True, exist_ok=True)
        (out_dir / "annotations" / f"instances_{split}.json").write_text(json.dumps(data), encoding="utf-8")
    return out_dir
