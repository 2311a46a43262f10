"""A procedurally drawn shapes dataset, written to disk in COCO format.

Each image has a textured background of any colour cast (smooth blobs, a gradient, sometimes
stripes or grain), unlabelled clutter (thin lines, specks and irregular blobs of object size), and
3-8 filled shapes whose class is given by the shape alone: every object, like every distractor,
gets a colour drawn from one distribution (any hue, saturation and brightness) that does not
depend on its class, so colour tells nothing about the class and a detector has to learn the
outline. The only condition on a colour is contrast with the pixels it covers, and that test does
not look at the class either. Shapes vary in size, aspect, rotation and shading, may be cut by the
image border (up to ~30% of their extent) and may overlap moderately (a new shape covers at most
~30% of an earlier one's box). The box of a shape is the tight box of all the pixels drawn for it
(before later shapes cover it), clipped to the image.

Output (readable with :class:`~centernet_lightning.datasets.coco.COCODataset`)::

    out_dir/annotations/instances_{train,val}.json
    out_dir/images/{train,val}/000000.jpg ...

Generation is deterministic: every image draws from its own RNG seeded by (seed, split, index),
so the same arguments give byte-identical files.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np

__all__ = ["SHAPE_NAMES", "coco_box", "generate_synthetic_dataset", "write_coco_dataset"]

SHAPE_NAMES = ("circle", "rectangle", "triangle", "star", "cross", "ring", "hexagon", "crescent")
_SPLIT_CODES = {"train": 0, "val": 1}
_SUBPIXEL_BITS = 4  # cv2 fixed-point drawing, so small rotated shapes keep their form
# Least RGB distance (0-255 units) between a fill colour and the mean of the pixels it covers:
# about a quarter of the colour cube's diagonal, so every object and blob stays visible.
_MIN_CONTRAST = 70.0


class DrawnObject(NamedTuple):
    """One labelled shape of a rendered image."""

    label: int  # index into SHAPE_NAMES
    box: np.ndarray  # float32 [4] XYXY pixels, tight around the drawn pixels, inside the image
    area: int  # pixels drawn for it (before later shapes cover some)
    colour: tuple[float, float, float]  # RGB 0-255 fill before shading and noise


def _polygon(center: float, radii: np.ndarray, angles: np.ndarray) -> np.ndarray:
    """Integer fixed-point vertices for cv2.fillPoly from polar coordinates around (center, center)."""
    points = center + np.stack([radii * np.cos(angles), radii * np.sin(angles)], axis=1)
    return np.round(points * (1 << _SUBPIXEL_BITS)).astype(np.int32)


def _draw_shape(kind: str, size: float, aspect: float, angle: float, rng: np.random.Generator) -> np.ndarray:
    """A binary uint8 mask (side ~1.5 * size) with one shape of extent ``size`` pixels at its centre.

    ``kind`` is a name of SHAPE_NAMES or ``"blob"``, the irregular polygon used as a distractor.
    """
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
    elif kind == "blob":
        # Many vertices at independent radii: a jagged outline that is none of the classes.
        count = int(rng.integers(7, 13))
        angles = angle + np.sort(rng.uniform(0, 2 * math.pi, count))
        cv2.fillPoly(mask, [_polygon(c, r * rng.uniform(0.3, 1.0, count), angles)], 1, cv2.LINE_8, shift)
    else:
        raise ValueError(f"Unknown shape {kind!r}; valid: {SHAPE_NAMES + ('blob',)}")
    return mask


def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """float32 [size, size, 3] texture of any colour cast: coloured blobs, a gradient, stripes, grain."""
    # Any base colour, and blobs that vary per channel: the background is as colourful as the
    # objects, so "saturated region" is no shortcut to "object".
    image = np.empty((size, size, 3), dtype=np.float32)
    image[:] = rng.uniform(30, 225, 3).astype(np.float32)
    cells = int(rng.integers(3, 10))
    blobs = rng.normal(0, 1, (cells, cells, 3)).astype(np.float32) * rng.uniform(10, 40)
    image += cv2.resize(blobs, (size, size), interpolation=cv2.INTER_CUBIC)
    ys, xs = np.mgrid[0:size, 0:size].astype(np.float32) / size - 0.5
    direction = rng.uniform(0, 2 * math.pi)
    ramp = xs * math.cos(direction) + ys * math.sin(direction)
    image += (ramp * rng.uniform(-50, 50))[..., None]
    if rng.random() < 0.4:
        period = rng.uniform(4, 16)
        stripe_angle = rng.uniform(0, math.pi)
        phase = (xs * math.cos(stripe_angle) + ys * math.sin(stripe_angle)) * size * 2 * math.pi / period
        image += np.sin(phase)[..., None] * rng.uniform(-15, 15, 3).astype(np.float32)
    if rng.random() < 0.4:  # grain a few pixels wide, coarser than the sensor noise added last
        grain_cells = max(1, size // int(rng.integers(2, 6)))
        grain = rng.normal(0, rng.uniform(5, 15), (grain_cells, grain_cells, 3)).astype(np.float32)
        image += cv2.resize(grain, (size, size), interpolation=cv2.INTER_LINEAR)
    return image


def _random_colour(rng: np.random.Generator, covered: np.ndarray) -> tuple[float, float, float]:
    """An RGB 0-255 colour of any hue, saturation and brightness that stands out from ``covered``.

    ``covered`` is the mean RGB of the pixels the shape will cover. Colours are drawn uniformly
    in HSV and redrawn until one is ``_MIN_CONTRAST`` away from it; the most distant of the draws
    is kept when none is. The class plays no part, so the colour says nothing about it.
    """
    best, best_distance = (0.0, 0.0, 0.0), -1.0
    for _ in range(20):
        # Float HSV in OpenCV: hue in degrees, saturation and value in [0, 1].
        hsv = np.array([[[rng.uniform(0, 360), rng.uniform(0, 1), rng.uniform(0.1, 1)]]], dtype=np.float32)
        rgb = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float64) * 255
        distance = float(np.linalg.norm(rgb - covered))
        if distance > best_distance:
            best, best_distance = (float(rgb[0]), float(rgb[1]), float(rgb[2])), distance
        if distance >= _MIN_CONTRAST:
            break
    return best


def _clip_to_image(
    mask: np.ndarray, x0: int, y0: int, image_size: int
) -> tuple[np.ndarray, tuple[int, int, int, int]] | None:
    """The part of ``mask`` (top-left at pixel (x0, y0)) inside the image, as a bool array, and its
    window ``(ix0, iy0, ix1, iy1)`` in image pixels; None when no pixel of the shape is inside."""
    ix0, iy0 = max(x0, 0), max(y0, 0)
    ix1, iy1 = min(x0 + mask.shape[1], image_size), min(y0 + mask.shape[0], image_size)
    if ix1 <= ix0 or iy1 <= iy0:
        return None
    visible = mask[iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0].astype(bool)
    return (visible, (ix0, iy0, ix1, iy1)) if visible.any() else None


def _paint(
    image: np.ndarray, visible: np.ndarray, window: tuple[int, int, int, int], rng: np.random.Generator
) -> tuple[float, float, float]:
    """Fill the ``visible`` pixels of ``window`` in a random colour with a linear shading; returns
    the colour (RGB 0-255)."""
    ix0, iy0, ix1, iy1 = window
    pixels = image[iy0:iy1, ix0:ix1]
    colour = _random_colour(rng, pixels[visible].mean(axis=0))
    # Light from one side: up to +-15% brightness across the shape, so objects are not flat stickers.
    ys, xs = np.nonzero(visible)
    direction = rng.uniform(0, 2 * math.pi)
    ramp = (xs * math.cos(direction) + ys * math.sin(direction)) / max(visible.shape)
    shade = (1 + rng.uniform(-0.3, 0.3) * (ramp - ramp.mean())).astype(np.float32)
    pixels[ys, xs] = np.clip(np.asarray(colour, dtype=np.float32) * shade[:, None], 0, 255)
    return colour


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
    """Mostly log-uniform in 20-120 px (scaled from 256 px images), a few smaller or larger."""
    low, high = np.clip(np.array([20.0, 120.0]) * image_size / 256, min_size, max_size)
    draw = rng.random()
    if draw < 0.05:
        return float(rng.uniform(min_size, low))
    if draw > 0.95:
        return float(rng.uniform(high, max_size))
    return float(np.exp(rng.uniform(np.log(low), np.log(high))))


def _draw_distractors(
    image: np.ndarray, rng: np.random.Generator, sizes: tuple[float, float], blobs: bool = True
) -> None:
    """Unlabelled clutter, drawn before the objects: thin lines, specks and (``blobs``) irregular blobs."""
    image_size = image.shape[0]
    for _ in range(int(rng.integers(2, 8))):  # lines: thin, long, any colour
        start, end = rng.integers(0, image_size, 2), rng.integers(0, image_size, 2)
        colour = tuple(float(v) for v in rng.uniform(0, 255, 3))
        cv2.line(image, tuple(int(v) for v in start), tuple(int(v) for v in end), colour, int(rng.integers(1, 3)))
    for _ in range(int(rng.integers(5, 30))):  # specks, smaller than any object
        centre = tuple(int(v) for v in rng.integers(0, image_size, 2))
        cv2.circle(image, centre, int(rng.integers(1, 3)), tuple(float(v) for v in rng.uniform(0, 255, 3)), -1)
    for _ in range(int(rng.integers(1, 4)) if blobs else 0):  # blobs as large and as colourful as objects
        mask = _draw_shape("blob", _sample_size(rng, image_size, *sizes), 1.0, rng.uniform(0, 2 * math.pi), rng)
        cx, cy = rng.uniform(0, image_size, 2)
        inside = _clip_to_image(
            mask, int(round(cx)) - mask.shape[1] // 2, int(round(cy)) - mask.shape[0] // 2, image_size
        )
        if inside is not None:
            _paint(image, *inside, rng)


def _render_image(
    rng: np.random.Generator, image_size: int, num_classes: int, sizes: tuple[float, float], objects: tuple[int, int]
) -> tuple[np.ndarray, list[DrawnObject]]:
    """One RGB uint8 [image_size, image_size, 3] image and its labelled objects."""
    image = _background(rng, image_size)
    _draw_distractors(image, rng, sizes)
    placed: list[DrawnObject] = []
    for _ in range(int(rng.integers(objects[0], objects[1] + 1))):
        label = int(rng.integers(num_classes))
        for _attempt in range(15):
            size = _sample_size(rng, image_size, *sizes)
            mask = _draw_shape(SHAPE_NAMES[label], size, rng.uniform(0.45, 1.0), rng.uniform(0, 2 * math.pi), rng)
            # The centre stays 0.2 * size inside, so up to ~30% of a shape's extent leaves the image.
            margin = min(0.2 * size, image_size / 2)
            cx, cy = rng.uniform(margin, image_size - margin, 2)
            inside = _clip_to_image(
                mask, int(round(cx)) - mask.shape[1] // 2, int(round(cy)) - mask.shape[0] // 2, image_size
            )
            if inside is None:
                continue
            visible, (ix0, iy0, _, _) = inside
            rows, cols = np.flatnonzero(visible.any(axis=1)), np.flatnonzero(visible.any(axis=0))
            box = np.array([ix0 + cols[0], iy0 + rows[0], ix0 + cols[-1] + 1, iy0 + rows[-1] + 1], dtype=np.float32)
            if not _overlap_ok(box, [drawn.box for drawn in placed]):
                continue  # nothing drawn yet, so a refused place leaves no trace
            placed.append(DrawnObject(label, box, int(visible.sum()), _paint(image, *inside, rng)))
            break
    return _with_sensor_noise(image, rng), placed


def _with_sensor_noise(image: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``image`` (float HWC, 0-255) with Gaussian noise of a random strength (sigma 2-8), as uint8."""
    noise = rng.normal(0, rng.uniform(2, 8), image.shape).astype(np.float32)
    return np.clip(image + noise, 0, 255).astype(np.uint8)


def generate_synthetic_dataset(
    out_dir: str | Path,
    num_train: int = 300,
    num_val: int = 100,
    image_size: int = 256,
    num_classes: int = 3,
    seed: int = 0,
    min_size: float = 16,
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
        min_size, max_size: object extent limits in pixels (most objects are 20-120 px at 256 px;
            much below 16 px the outlines, the only class cue, blur into a few pixels).
        min_objects, max_objects: objects per image (fewer when a shape finds no free place).
    """
    if not 1 <= num_classes <= len(SHAPE_NAMES):
        raise ValueError(f"num_classes must be in [1, {len(SHAPE_NAMES)}] (shapes: {SHAPE_NAMES}), got {num_classes}")
    if not 0 < min_size <= max_size:
        raise ValueError(f"need 0 < min_size <= max_size, got {min_size}, {max_size}")
    categories = [{"id": i + 1, "name": name, "supercategory": "shape"} for i, name in enumerate(SHAPE_NAMES)]

    def draw(rng: np.random.Generator) -> tuple[np.ndarray, list[dict[str, Any]]]:
        image, objects = _render_image(rng, image_size, num_classes, (min_size, max_size), (min_objects, max_objects))
        return image, [
            {"category_id": drawn.label + 1, "bbox": coco_box(drawn.box), "area": drawn.area, "iscrowd": 0}
            for drawn in objects
        ]

    info = {"description": "centernet-lightning synthetic shapes", "seed": seed, "image_size": image_size}
    splits = {"train": num_train, "val": num_val}
    return write_coco_dataset(
        out_dir, splits, seed, draw, categories[:num_classes], info, "instances_{split}.json", overwrite
    )


def coco_box(box: np.ndarray) -> list[int]:
    """A drawn XYXY pixel box as COCO's integer ``[x, y, w, h]``."""
    x1, y1, x2, y2 = (int(v) for v in box)
    return [x1, y1, x2 - x1, y2 - y1]


def write_coco_dataset(
    out_dir: str | Path,
    splits: dict[str, int],
    seed: int,
    draw: Callable[[np.random.Generator], tuple[np.ndarray, list[dict[str, Any]]]],
    categories: list[dict[str, Any]],
    info: dict[str, Any],
    annotation_file: str,
    overwrite: bool = False,
) -> Path:
    """Draw ``splits[split]`` images per split and write them in COCO layout under ``out_dir``.

    ``draw(rng)`` gives a uint8 HWC RGB image and its objects' annotation fields (``category_id``,
    ``bbox``, ...; ``id`` and ``image_id`` are added here). Every image draws from its own RNG seeded
    by ``(seed, split, index)``, so the same arguments give byte-identical files. Images go to
    ``images/{split}/{index:06d}.jpg``, annotations to ``annotations/`` + ``annotation_file`` formatted
    with the split. FileExistsError when ``out_dir`` holds files, unless ``overwrite``.
    """
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise FileExistsError(f"{out_dir} is not empty; choose an empty folder or pass overwrite=True")
    for split, count in splits.items():
        image_dir = out_dir / "images" / split
        image_dir.mkdir(parents=True, exist_ok=True)
        images: list[dict[str, Any]] = []
        annotations: list[dict[str, Any]] = []
        for index in range(count):
            image, objects = draw(np.random.default_rng([seed, _SPLIT_CODES[split], index]))
            file_name = f"{index:06d}.jpg"
            ok, encoded = cv2.imencode(".jpg", cv2.cvtColor(image, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95])
            if not ok:
                raise OSError(f"could not encode {image_dir / file_name}")
            (image_dir / file_name).write_bytes(encoded.tobytes())
            height, width = image.shape[:2]
            images.append({"id": index + 1, "file_name": file_name, "width": width, "height": height})
            annotations += [{"id": len(annotations) + 1 + n, "image_id": index + 1, **fields} for n, fields in
                            enumerate(objects)]  # fmt: skip
        data = {"info": info, "images": images, "annotations": annotations, "categories": categories}
        (out_dir / "annotations").mkdir(parents=True, exist_ok=True)
        (out_dir / "annotations" / annotation_file.format(split=split)).write_text(json.dumps(data), encoding="utf-8")
    return out_dir
