"""Procedurally drawn tracking sequences, written in MOTChallenge layout.

Each sequence has a static textured background with clutter (thin lines and specks, drawn by
the helpers of the detection set, :mod:`~centernet_lightning.datasets.synthetic`; not its
object-sized blobs) and a set of identities, each with an appearance of its own that it keeps in
every frame: a shape (one of the detection set's compact shapes: circle, rectangle, triangle,
hexagon, star), a fill colour and a second colour laid out in a pattern (stripes, halves, a dot,
a checker or none), shaded from one side. There is one class, ``object``: the shape and colours
tell identities apart, not classes, so a re-ID head has to learn the appearance.

Motion, per identity: constant velocity or a constant turn rate (the velocity rotates a little
every frame), 0.8-3 px per frame at 256 px. Some identities are in the image from the first
frame, some enter later through a border, any may leave through one (and a turning one may come
back, keeping its id, as in MOTChallenge). Pairs of identities are set on courses that cross at a
chosen point and frame. Every identity has a depth; frames are drawn far to near, so nearer
objects hide farther ones. Courses are planned over at least 40 frames: a shorter sequence is a
window of such a plan at a random start, so its frames look like those of a long one.

Ground truth, one ``gt.txt`` row per identity and frame where any of its pixels is inside the
image: the box is the tight box of the identity's pixels inside the image, hidden ones included
(amodal under occlusion; cut at the image border, as KITTI's boxes are and as a detector sees
the object); class 1; ``visibility`` = its pixels that are drawn in the frame (inside the image
and not covered by a nearer object) / all its pixels, so it counts both occlusion and the part
outside the image, as MOT16's does (0 when fully hidden). ``conf`` is 1, or 0 (MOTChallenge's
"not considered" flag) when ``visibility`` is below ``min_visibility`` (0.25): evaluation does not
count objects hidden or outside the image that much as targets (TrackEval drops rows flagged 0;
a box predicted on one is still a false positive), and
:class:`~centernet_lightning.datasets.mot.MOTDataset` drops them from training (background), so
no tracker is asked for a box its detector cannot see. Boxes are written in MOTChallenge's 1-based
pixels, ``bb_left = x1 + 1``, ``bb_top = y1 + 1`` for a drawn box whose 0-based XYXY is
``(x1, y1, x2, y2)`` (see :mod:`~centernet_lightning.datasets.mot`), so MOTDataset and
:func:`~centernet_lightning.datasets.mot_io.read_mot_txt` both read back the boxes that were drawn.

Output::

    out_dir/{train,val}/SEQ-01/seqinfo.ini
    out_dir/{train,val}/SEQ-01/img1/000001.jpg ...
    out_dir/{train,val}/SEQ-01/gt/gt.txt

Generation is deterministic: each sequence draws from its own RNG seeded by (seed, split,
index), so the same arguments give byte-identical files.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import NamedTuple

import cv2
import numpy as np

from centernet_lightning.datasets.synthetic import (
    _background,
    _draw_distractors,
    _draw_shape,
    _random_colour,
)

__all__ = ["generate_tracking_sequences"]

logger = logging.getLogger(__name__)

_SPLIT_CODES = {"train": 0, "val": 1}
_PATTERNS = ("plain", "stripes", "halves", "dot", "checker")
# The detection set's compact shapes: a ring's hole, a crescent's bite or a cross's arms let the
# background through, so their boxes hold much background, which makes detection the hard part of
# a tracking set.
_SPRITE_SHAPES = ("circle", "rectangle", "triangle", "hexagon", "star")
# Courses are planned over at least this many frames (see _render_sequence).
_PLAN_FRAMES = 40


class RenderedSequence(NamedTuple):
    """One sequence as drawn, before JPEG encoding.

    ``frames`` uint8 [T, S, S, 3] RGB; ``rows`` float64 [R, 9] the ``gt.txt`` rows as written
    (frame 1-based, id 1-based, bb_left, bb_top 1-based pixels, width, height, conf, class,
    visibility) sorted by id then frame; ``owners`` int32 [T, S, S] (0-based pixel indices), the
    id whose pixel is drawn there (0: background).
    """

    frames: np.ndarray
    rows: np.ndarray
    owners: np.ndarray


class _Identity(NamedTuple):
    mask: np.ndarray  # bool [h, w], tight around the shape
    texture: np.ndarray  # float32 [h, w, 3] RGB 0-255
    centres: np.ndarray  # float64 [T, 2] (x, y) pixel centre per frame, NaN before it appears
    depth: float


def _texture(rng: np.random.Generator, mask: np.ndarray, background_mean: np.ndarray) -> np.ndarray:
    """float32 [h, w, 3] fill of a sprite: a colour, a second colour in a pattern, shading."""
    height, width = mask.shape
    primary = np.asarray(_random_colour(rng, background_mean), dtype=np.float32)
    secondary = np.asarray(_random_colour(rng, primary), dtype=np.float32)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    ys, xs = (ys - height / 2) / max(height, width), (xs - width / 2) / max(height, width)  # about [-0.5, 0.5]
    angle = rng.uniform(0, math.pi)
    along = xs * math.cos(angle) + ys * math.sin(angle)
    pattern = _PATTERNS[int(rng.integers(len(_PATTERNS)))]
    if pattern == "stripes":
        second = np.sin(along * 2 * math.pi * rng.uniform(2.5, 4.5)) > 0
    elif pattern == "halves":
        second = along > 0
    elif pattern == "dot":
        second = xs**2 + ys**2 < rng.uniform(0.15, 0.25) ** 2
    elif pattern == "checker":
        cells = rng.uniform(2.5, 4)
        second = (np.floor((xs + 0.5) * cells) + np.floor((ys + 0.5) * cells)) % 2 == 1
    else:
        second = np.zeros_like(mask)
    texture = np.where(second[..., None], secondary, primary)
    # Light from one side, as in the detection set: +-15% across the sprite.
    direction = rng.uniform(0, 2 * math.pi)
    ramp = xs * math.cos(direction) + ys * math.sin(direction)
    return np.clip(texture * (1 + rng.uniform(-0.3, 0.3) * ramp)[..., None], 0, 255).astype(np.float32)


def _sprite(rng: np.random.Generator, image_size: int, background_mean: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """A shape mask cropped tight (bool [h, w]) and its texture, extent 8-20% of the image side."""
    size = image_size * rng.uniform(0.08, 0.2)
    kind = _SPRITE_SHAPES[int(rng.integers(len(_SPRITE_SHAPES)))]
    mask = _draw_shape(kind, size, rng.uniform(0.5, 1.0), rng.uniform(0, 2 * math.pi), rng).astype(bool)
    rows, cols = np.flatnonzero(mask.any(axis=1)), np.flatnonzero(mask.any(axis=0))
    mask = mask[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    return mask, _texture(rng, mask, background_mean)


def _course(
    num_frames: int,
    start: int,
    position: np.ndarray,
    heading: float,
    speed: float,
    turn: float,
) -> np.ndarray:
    """float64 [T, 2] centres: at ``position`` in frame ``start`` (0-based), then moving ``speed``
    px per frame along ``heading`` (radians) that turns by ``turn`` radians per frame; NaN before."""
    frames = np.arange(num_frames, dtype=np.float64)
    headings = heading + turn * (frames - start)
    steps = speed * np.stack([np.cos(headings), np.sin(headings)], axis=1) * (frames > start)[:, None]
    centres = position + np.cumsum(steps, axis=0)
    centres[frames < start] = np.nan
    return centres


def _plan_courses(rng: np.random.Generator, num_objects: int, num_frames: int, image_size: int) -> list[np.ndarray]:
    """Courses of ``num_objects`` identities: crossing pairs, objects present from the start, late entries."""
    courses: list[np.ndarray] = []
    speed = lambda: image_size * rng.uniform(0.003, 0.012)
    turn = lambda: 0.0 if rng.random() < 0.5 else rng.choice([-1, 1]) * rng.uniform(0.01, 0.05)
    num_crossing = 2 * (num_objects // 4)
    for _ in range(num_crossing // 2):
        # Two straight courses through one point at one frame: they meet there (one hides the other).
        meeting = rng.uniform(0.3, 0.7, 2) * image_size
        when = int(rng.integers(num_frames // 4, max(num_frames * 3 // 4, num_frames // 4 + 1)))
        first = rng.uniform(0, 2 * math.pi)
        for heading in (first, first + rng.choice([-1, 1]) * rng.uniform(math.pi / 3, math.pi)):
            velocity = speed() * np.array([math.cos(heading), math.sin(heading)])
            courses.append(_course(num_frames, 0, meeting - velocity * when, heading, float(np.hypot(*velocity)), 0))
    # Border sides as (outward direction, a point on the side at fraction `along`).
    outward = [np.array([-1.0, 0.0]), np.array([1.0, 0.0]), np.array([0.0, -1.0]), np.array([0.0, 1.0])]
    on_side = lambda side, along: [(0.0, along), (1.0, along), (along, 0.0), (along, 1.0)][side]
    for index in range(num_objects - num_crossing):
        side, along, velocity = int(rng.integers(4)), rng.uniform(0.1, 0.9), speed()
        if index % 3 == 0:  # in the image from the first frame, going anywhere
            position = rng.uniform(0.15, 0.85, 2) * image_size
            courses.append(_course(num_frames, 0, position, rng.uniform(0, 2 * math.pi), velocity, turn()))
        elif index % 3 == 1:  # enters later through a border, heading roughly inwards
            position = (np.array(on_side(side, along)) + 0.06 * outward[side]) * image_size
            heading = math.atan2(-outward[side][1], -outward[side][0]) + rng.uniform(-0.5, 0.5)
            start = int(rng.integers(1, max(2, num_frames * 2 // 3)))
            courses.append(_course(num_frames, start, position, heading, velocity, turn()))
        else:  # starts inside near a border and leaves through it within the sequence
            depth = velocity * num_frames * rng.uniform(0.2, 0.6)
            position = np.array(on_side(side, along)) * image_size - outward[side] * depth
            heading = math.atan2(outward[side][1], outward[side][0]) + rng.uniform(-0.5, 0.5)
            courses.append(_course(num_frames, 0, position, heading, velocity, 0.0))
    return courses


def _render_sequence(
    rng: np.random.Generator, num_frames: int, image_size: int, num_objects: int, min_visibility: float = 0.25
) -> RenderedSequence:
    """Draw one sequence and its ground truth (see the module docstring)."""
    background = _background(rng, image_size)
    _draw_distractors(background, rng, (image_size * 0.06, image_size * 0.25), blobs=False)
    background_mean = background.reshape(-1, 3).mean(axis=0)
    # A sequence shorter than a plan is a window of one at a random start, so that its frames
    # show what a long sequence's do: crossings at every stage, objects well inside the image.
    # (Planned over its own few frames, a two-frame sequence would have every crossing pair
    # centred on one point and every entering or leaving object half out of the image.)
    plan_frames = max(num_frames, _PLAN_FRAMES)
    start = int(rng.integers(plan_frames - num_frames + 1)) if plan_frames > num_frames else 0
    identities = [
        _Identity(*_sprite(rng, image_size, background_mean), centres[start : start + num_frames], float(rng.random()))
        for centres in _plan_courses(rng, num_objects, plan_frames, image_size)
    ]
    draw_order = sorted(range(len(identities)), key=lambda k: -identities[k].depth)  # far to near
    noise_sigma = rng.uniform(2, 6)
    frames = np.empty((num_frames, image_size, image_size, 3), dtype=np.uint8)
    owners = np.zeros((num_frames, image_size, image_size), dtype=np.int32)
    rows = []
    for t in range(num_frames):
        image = background.copy()
        owner = owners[t]
        boxes = {}
        for k in draw_order:
            identity = identities[k]
            if np.isnan(identity.centres[t, 0]):
                continue
            height, width = identity.mask.shape
            x0 = int(round(identity.centres[t, 0] - width / 2))
            y0 = int(round(identity.centres[t, 1] - height / 2))
            ix0, iy0 = max(x0, 0), max(y0, 0)
            ix1, iy1 = min(x0 + width, image_size), min(y0 + height, image_size)
            if ix1 <= ix0 or iy1 <= iy0:
                continue
            inside = identity.mask[iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0]
            if not inside.any():
                continue
            image[iy0:iy1, ix0:ix1][inside] = identity.texture[iy0 - y0 : iy1 - y0, ix0 - x0 : ix1 - x0][inside]
            owner[iy0:iy1, ix0:ix1][inside] = k + 1
            # The tight box of its pixels inside the image, hidden ones included (module docstring).
            rows_in, cols_in = np.flatnonzero(inside.any(axis=1)), np.flatnonzero(inside.any(axis=0))
            boxes[k] = (ix0 + cols_in[0], iy0 + rows_in[0], cols_in[-1] - cols_in[0] + 1, rows_in[-1] - rows_in[0] + 1)
        visible = np.bincount(owner.ravel(), minlength=len(identities) + 1)
        for k, (x0, y0, width, height) in boxes.items():
            visibility = round(float(visible[k + 1] / identities[k].mask.sum()), 5)
            considered = int(visibility >= min_visibility)
            # MOTChallenge counts frames, ids and pixels from 1: bb_left = x0 + 1 (module docstring).
            rows.append((t + 1, k + 1, x0 + 1, y0 + 1, width, height, considered, 1, visibility))
        # Uniform sensor noise of std noise_sigma: five times cheaper to draw than Gaussian noise.
        noise = (rng.random(image.shape, dtype=np.float32) - 0.5) * np.float32(noise_sigma * math.sqrt(12))
        frames[t] = np.clip(image + noise, 0, 255).astype(np.uint8)
    table = np.array(rows, dtype=np.float64).reshape(-1, 9)
    table = table[np.lexsort((table[:, 0], table[:, 1]))]  # by id, then frame, as MOTChallenge files are
    return RenderedSequence(frames, table, owners)


def _seqinfo(name: str, num_frames: int, image_size: int, frame_rate: int) -> str:
    return (
        f"[Sequence]\nname={name}\nimDir=img1\nframeRate={frame_rate}\nseqLength={num_frames}\n"
        f"imWidth={image_size}\nimHeight={image_size}\nimExt=.jpg\n"
    )


def _gt_lines(rows: np.ndarray) -> str:
    return "".join(
        f"{int(f)},{int(i)},{int(x)},{int(y)},{int(w)},{int(h)},{int(c)},{int(k)},{v:.5f}\n"
        for f, i, x, y, w, h, c, k, v in rows
    )


def generate_tracking_sequences(
    out_dir: str | Path,
    num_sequences: int = 4,
    num_val_sequences: int = 2,
    frames_per_sequence: int = 50,
    val_frames_per_sequence: int | None = None,
    image_size: int = 256,
    objects_per_sequence: tuple[int, int] = (4, 8),
    val_objects_per_sequence: tuple[int, int] | None = None,
    seed: int = 0,
    frame_rate: int = 30,
    min_visibility: float = 0.25,
    overwrite: bool = False,
) -> Path:
    """Draw tracking sequences and write them in MOTChallenge layout under ``out_dir``; returns it.

    Args:
        out_dir: destination; must be missing or empty unless ``overwrite`` (then our files are
            rewritten in place and nothing is deleted: a warning names sequence folders that this
            call did not write, which MOTDataset would still read).
        num_sequences: sequences in ``train/``; ``num_val_sequences`` in ``val/`` (held out, with gt).
        frames_per_sequence: frames per sequence.
        val_frames_per_sequence: frames per sequence of ``val/``; None: ``frames_per_sequence``.
            (Many short training sequences show more distinct scenes for the same frames; a
            longer held-out one tests tracking.)
        image_size: side of the square frames in pixels.
        objects_per_sequence: ``(min, max)`` identities per sequence, over all its frames
            (a short sequence shows those of its window of a 40-frame plan, module docstring).
        val_objects_per_sequence: the same for ``val/``; None: ``objects_per_sequence``.
            (Training scenes more crowded than the held-out ones show more overlaps per step.)
        seed: same seed (and arguments) -> byte-identical files.
        frame_rate: written to ``seqinfo.ini`` (the trackers' time base).
        min_visibility: rows of objects less visible than this (a fraction of their pixels, see the
            module docstring) are written with ``conf`` 0, MOTChallenge's "not considered" flag.
    """
    val_objects = objects_per_sequence if val_objects_per_sequence is None else val_objects_per_sequence
    for name, (low, high) in (("", objects_per_sequence), ("val_", val_objects)):
        if not 1 <= low <= high:
            raise ValueError(f"{name}objects_per_sequence must be (min, max) with 1 <= min <= max, got {(low, high)}")
    if not 0.0 <= min_visibility <= 1.0:
        raise ValueError(f"min_visibility must be in [0, 1], got {min_visibility}")
    val_frames = frames_per_sequence if val_frames_per_sequence is None else val_frames_per_sequence
    if min(frames_per_sequence, val_frames) < 1 or image_size < 32:
        raise ValueError(
            "need frames_per_sequence >= 1, val_frames_per_sequence >= 1 and image_size >= 32, "
            f"got {frames_per_sequence}, {val_frames}, {image_size}"
        )
    out_dir = Path(out_dir)
    if out_dir.exists() and any(out_dir.iterdir()) and not overwrite:
        raise FileExistsError(f"{out_dir} is not empty; choose an empty folder or pass overwrite=True")
    for split, count, num_frames, (low, high) in (
        ("train", num_sequences, frames_per_sequence, objects_per_sequence),
        ("val", num_val_sequences, val_frames, val_objects),
    ):
        names = [f"SEQ-{index + 1:02d}" for index in range(count)]
        for index, name in enumerate(names):
            rng = np.random.default_rng([seed, _SPLIT_CODES[split], index])
            num_objects = int(rng.integers(low, high + 1))
            sequence = _render_sequence(rng, num_frames, image_size, num_objects, min_visibility)
            folder = out_dir / split / name
            (folder / "img1").mkdir(parents=True, exist_ok=True)
            (folder / "gt").mkdir(exist_ok=True)
            for t, frame in enumerate(sequence.frames):
                ok, encoded = cv2.imencode(
                    ".jpg", cv2.cvtColor(frame, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 95]
                )
                if not ok:
                    raise OSError(f"could not encode frame {t + 1} of {folder}")
                (folder / "img1" / f"{t + 1:06d}.jpg").write_bytes(encoded.tobytes())
            (folder / "seqinfo.ini").write_text(_seqinfo(name, num_frames, image_size, frame_rate))
            (folder / "gt" / "gt.txt").write_text(_gt_lines(sequence.rows))
        split_dir = out_dir / split
        stale = (
            sorted(p.name for p in split_dir.iterdir() if p.is_dir() and p.name not in names)
            if split_dir.is_dir()
            else []
        )
        if stale:
            logger.warning(
                "%s holds sequence folders this call did not write (still read by MOTDataset): %s", split_dir, stale
            )
    return out_dir
