"""A procedurally drawn human-pose dataset, written to disk in COCO keypoints format.

Each image has the background and clutter of the shapes dataset
(:mod:`~centernet_lightning.datasets.synthetic`) and 1-3 articulated stick people with COCO's 17
joints: a head (a disc), a torso (the outline of a slab between shoulders and hips), a neck, and
arms and legs as thick lines along COCO's skeleton. A person is posed in 3-D and projected
orthographically, so poses are those of a body seen from any side:

- **Pose**: the upper body leans (forward -8 to 50 degrees, sideways about +-6) and twists on the
  hips; arms swing forward and out (up to overhead) with the elbow bent 0-145 degrees, forward and
  in; legs stand, walk, straddle or crouch, knees bending backward up to 130 degrees; the head
  turns and nods a little. Proportions follow a 7.5-head figure.
- **View**: any rotation about the vertical (facing the camera, away from it, left, right or in
  between) and a small roll of the whole figure; heights of 25-90 % of the image side.
- **Left and right**: joints are the person's own left and right, as in COCO, and every cue that
  tells them apart is one a mirrored person also shows, so a horizontal flip that swaps left and
  right labels (COCO's flip index) stays consistent: the face (a lighter patch on the side of the
  head the person faces, with dark eyes and nose on it) and a stripe down the front of the torso
  are drawn only on the side facing the camera, so front and back differ, and a profile shows
  which way it faces; feet point forward, knees bend backward and elbows mostly forward; limbs on
  the far side of the body are drawn darker and behind the torso, near ones lighter and in
  front. A person facing the camera has their left on the image right. (A fixed colour per side
  would be easier to learn but would contradict itself under flip augmentation.)
- **Colour**: one colour per person (any hue, contrasting with the pixels it covers), limbs
  shaded by depth, head and stripe in lighter or darker variants.
- **Occlusion**: parts are drawn far to near within a person, people in sequence (a later one
  covers an earlier one; boxes overlap moderately), and about a third of the people get an
  occluder (a rectangle or blob 12-30 % of their height) drawn over one of their joints; people
  may be cut by the image border (up to ~30 % of their extent).

Annotations (one per person, category 1 ``person``): ``keypoints`` are (x, y, v) triplets in the
order of :data:`KEYPOINT_NAMES`, where (x, y) is the point the joint is drawn at as COCO's pixel
indices (a joint drawn in pixel ``i`` has ``i - 0.5 <= x < i + 0.5``; the reader adds half a pixel
to put it in the frame of the boxes, where pixel ``i`` spans ``[i, i + 1)``); v = 2 when the pixel
there shows the person's own part at that joint, 1 when
it is covered (by another person, an occluder, or the person's own nearer parts; the eyes, nose
and ears when on the far side of the head), 0 with x = y = 0 when the joint is outside the image.
``bbox`` is the tight box of every pixel drawn for the person (before later people and
occluders cover some), clipped to the image, so every labelled joint, read, lies inside it; ``area`` the
pixels of the person still visible in the image (COCO's area, which OKS divides by).

Output (COCO keypoints layout)::

    out_dir/annotations/person_keypoints_{train,val}.json
    out_dir/images/{train,val}/000000.jpg ...

Generation is deterministic: every image draws from its own RNG seeded by (seed, split, index),
so the same arguments give byte-identical files.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import cv2
import numpy as np

from centernet_lightning.datasets.coco_keypoints import COCO_PERSON_KEYPOINTS
from centernet_lightning.datasets.synthetic import (
    _SUBPIXEL_BITS,
    _background,
    _clip_to_image,
    _draw_distractors,
    _draw_shape,
    _overlap_ok,
    _paint,
    _with_sensor_noise,
    coco_box,
    write_coco_dataset,
)

__all__ = ["KEYPOINT_NAMES", "SKELETON", "DrawnPerson", "generate_synthetic_keypoints"]

# COCO's person joints (the reader's layout, defined once); the json stores the skeleton 1-based.
KEYPOINT_NAMES = COCO_PERSON_KEYPOINTS.names
SKELETON = tuple((first + 1, second + 1) for first, second in COCO_PERSON_KEYPOINTS.skeleton)

_FIXED = 1 << _SUBPIXEL_BITS

# Body proportions in figure heights (a 7.5-head figure, ankles to the top of the head ~0.97).
_TORSO = 0.30  # hip centre to the shoulder line
_SHOULDER_HALF, _HIP_HALF = 0.115, 0.08
_TORSO_DEPTH_HALF = 0.06
_NECK_TO_HEAD = 0.115  # shoulder line to the head's centre
_UPPER_ARM, _FOREARM = 0.165, 0.15
_THIGH, _SHIN, _FOOT = 0.245, 0.235, 0.055
_FACE_RADIUS = 0.85  # eyes, nose and ears lie on a sphere this fraction of the head's radius
_FACE_CAP = 0.34  # cos 70 degrees: head pixels this close to the facing direction show the face
_NEAR_LIMB_BIAS = 0.03  # limbs level with the torso are drawn in front of it (figure heights)

# Part labels drawn into a person's mask; a joint is visible when its pixel shows one of its parts.
_TORSO_PART, _CHEST, _NECK, _HEAD, _FACE, _FACE_MARK = 1, 2, 3, 4, 5, 6
_LIMB_PARTS = {"left_upper_arm": 7, "left_forearm": 8, "right_upper_arm": 9, "right_forearm": 10}
_LIMB_PARTS |= {"left_thigh": 11, "left_shin": 12, "right_thigh": 13, "right_shin": 14}
_PARTS_PER_PERSON = 16  # owner mask value = (person + 1) * 16 + part; values below 16 are not people
_OCCLUDER = 1
_HEAD_PARTS = (_HEAD, _FACE, _FACE_MARK)
_JOINT_PARTS: tuple[tuple[int, ...], ...] = (
    *[_HEAD_PARTS] * 5,
    *[(_TORSO_PART, _CHEST, _LIMB_PARTS[f"{side}_upper_arm"]) for side in ("left", "right")],
    *[(_LIMB_PARTS[f"{side}_upper_arm"], _LIMB_PARTS[f"{side}_forearm"]) for side in ("left", "right")],
    *[(_LIMB_PARTS[f"{side}_forearm"],) for side in ("left", "right")],
    *[(_TORSO_PART, _CHEST, _LIMB_PARTS[f"{side}_thigh"]) for side in ("left", "right")],
    *[(_LIMB_PARTS[f"{side}_thigh"], _LIMB_PARTS[f"{side}_shin"]) for side in ("left", "right")],
    *[(_LIMB_PARTS[f"{side}_shin"],) for side in ("left", "right")],
)
_SEEN_ON = np.zeros((len(KEYPOINT_NAMES), _PARTS_PER_PERSON), dtype=bool)  # [17, 16] joint x part
for _joint, _parts in enumerate(_JOINT_PARTS):
    _SEEN_ON[_joint, list(_parts)] = True


class DrawnPerson(NamedTuple):
    """One labelled person of a rendered image."""

    keypoints: np.ndarray  # float32 [17, 3]: x, y pixels (pixel i spans [i, i + 1)), v in {0, 1, 2}
    box: np.ndarray  # float32 [4] XYXY pixels, tight around all pixels drawn for it, inside the image
    area: int  # its pixels still visible in the image


class _Placed(NamedTuple):
    """A person as drawn, before the visibility of its joints is known."""

    joints: np.ndarray  # float64 [17, 2] drawing coordinates (pixel centres at integers)
    inside: np.ndarray  # bool [17]: the joint's pixel is in the image
    facing_camera: np.ndarray  # bool [17]: False for face joints on the far side of the head
    box: np.ndarray
    height: float


def _rot_x(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[1.0, 0, 0], [0, c, -s], [0, s, c]])


def _rot_y(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, 0, s], [0, 1.0, 0], [-s, 0, c]])


def _rot_z(angle: float) -> np.ndarray:
    c, s = math.cos(angle), math.sin(angle)
    return np.array([[c, -s, 0], [s, c, 0], [0, 0, 1.0]])


def _bend(direction: np.ndarray, toward: np.ndarray, angle: float) -> np.ndarray:
    """The unit vector ``angle`` radians from unit ``direction``, turned in the plane of ``toward``."""
    across = toward - (toward @ direction) * direction
    norm = np.linalg.norm(across)
    if norm < 1e-6:  # toward is along the bone: bend in any plane
        across = np.cross(direction, [1.0, 0, 0] if abs(direction[0]) < 0.9 else [0, 1.0, 0])
        norm = np.linalg.norm(across)
    return math.cos(angle) * direction + math.sin(angle) * across / norm


def _sample_body(rng: np.random.Generator) -> dict[str, np.ndarray]:
    """A random pose in the body frame (x: the person's left, y: up, z: forward; figure heights,
    origin at the hip centre). Returns named points: ``joints`` [17, 3], ``neck``, ``head`` [3],
    ``toes`` [2, 3] (left, right), ``torso`` [8, 3] (slab corners), ``chest`` [2, 3] (stripe),
    and the unit directions ``head_forward`` and ``chest_forward`` [3]."""
    deg = math.radians
    down, forward = np.array([0, -1.0, 0]), np.array([0, 0, 1.0])
    style = rng.random()
    pitch = rng.uniform(-8, 20) if rng.random() < 0.8 else rng.uniform(20, 50)
    # Legs [left, right]: hip flexion (forward), abduction (outward), knee flexion, in degrees.
    if style < 0.45:  # standing
        flex, abduct, knee = rng.uniform(-8, 15, 2), rng.uniform(0, 12, 2), rng.uniform(0, 15, 2)
    elif style < 0.75:  # walking or running: one leg ahead, the other behind with its knee bent
        flex = np.array([rng.uniform(10, 40), rng.uniform(-30, -5)])
        knee = np.array([rng.uniform(0, 30), rng.uniform(10, 70)])
        if rng.random() < 0.5:
            flex, knee = flex[::-1], knee[::-1]
        abduct = rng.uniform(0, 8, 2)
    elif style < 0.87:  # crouching or sitting
        flex, abduct, knee = rng.uniform(50, 100, 2), rng.uniform(5, 30, 2), rng.uniform(60, 130, 2)
        pitch = rng.uniform(10, 40)
    else:  # straddling
        flex, abduct, knee = rng.uniform(-10, 20, 2), rng.uniform(12, 40, 2), rng.uniform(0, 40, 2)
    upper = (
        _rot_z(deg(float(np.clip(rng.normal(0, 6), -18, 18)))) @ _rot_x(deg(pitch)) @ _rot_y(deg(rng.uniform(-20, 20)))
    )
    neck = upper @ np.array([0, _TORSO, 0])
    head_turn = _rot_y(deg(rng.uniform(-35, 35))) @ _rot_x(deg(rng.uniform(-15, 25))) @ _rot_z(deg(rng.normal(0, 8)))
    head_frame = upper @ head_turn
    head = neck + head_frame @ np.array([0, _NECK_TO_HEAD, 0])
    head_radius = rng.uniform(0.058, 0.072)
    joints, toes = np.zeros((17, 3)), np.zeros((2, 3))
    # Face points in the head's frame: nose ahead, eyes ahead and apart, ears at the sides.
    face = np.array([[0, -0.1, 1], [0.35, 0.15, 0.92], [-0.35, 0.15, 0.92], [1, 0, -0.15], [-1, 0, -0.15]])
    face /= np.linalg.norm(face, axis=1, keepdims=True)
    joints[:5] = head + face @ head_frame.T * head_radius * _FACE_RADIUS
    for side, sign in enumerate((1.0, -1.0)):  # left (+x), right
        shoulder = neck + upper @ np.array([sign * _SHOULDER_HALF, 0, 0])
        abduction = rng.uniform(0, 35) if rng.random() < 0.55 else rng.uniform(35, 170)
        if abduction > 100:
            flexion = rng.uniform(-20, 40)
        else:
            flexion = rng.uniform(-20, 30) if rng.random() < 0.6 else rng.uniform(30, 150)
        arm = upper @ _rot_z(deg(sign * abduction)) @ _rot_x(deg(-flexion)) @ down
        elbow = shoulder + _UPPER_ARM * arm
        # The forearm bends forward, turned toward the body's middle by -30 to 80 degrees.
        toward = upper @ _rot_y(deg(-sign * rng.uniform(-30, 80))) @ forward
        elbow_flexion = rng.uniform(0, 30) if rng.random() < 0.5 else rng.uniform(30, 145)
        wrist = elbow + _FOREARM * _bend(arm, toward, deg(elbow_flexion))
        hip = np.array([sign * _HIP_HALF, 0, 0])
        thigh = _rot_z(deg(sign * abduct[side])) @ _rot_x(deg(-flex[side])) @ down
        knee_point = hip + _THIGH * thigh
        shin = _bend(thigh, -forward, deg(knee[side]))  # knees bend backward
        ankle = knee_point + _SHIN * shin
        toes[side] = ankle + _FOOT * _bend(shin, forward, math.pi / 2)  # feet point forward, square to the shin
        joints[5 + side], joints[7 + side], joints[9 + side] = shoulder, elbow, wrist
        joints[11 + side], joints[13 + side], joints[15 + side] = hip, knee_point, ankle
    chest_forward = upper @ forward
    slab = np.stack([_TORSO_DEPTH_HALF * chest_forward, -_TORSO_DEPTH_HALF * chest_forward])
    hip_slab = np.stack([_TORSO_DEPTH_HALF * forward, -_TORSO_DEPTH_HALF * forward])
    torso = np.concatenate([joints[5:7, None] + slab[None], joints[11:13, None] + hip_slab[None]]).reshape(8, 3)
    chest = np.stack([0.85 * neck, np.zeros(3)]) + 0.8 * _TORSO_DEPTH_HALF * chest_forward  # below the neck to hips
    return {
        "joints": joints,
        "neck": neck,
        "head": head,
        "toes": toes,
        "torso": torso,
        "chest": chest,
        "head_radius": np.array(head_radius),
        "head_forward": head_frame @ forward,
        "chest_forward": chest_forward,
    }


def _camera_rotation(yaw: float, roll: float) -> np.ndarray:
    """[3, 3] from the body frame to the camera frame (x: image right, y: up, z: away from the camera).

    Yaw 0 faces the camera (the person's left is the image right, forward is -z), pi faces away,
    pi / 2 faces the image right; roll turns the whole figure in the image plane."""
    c, s = math.cos(yaw), math.sin(yaw)
    facing = np.array([[c, 0, s], [0, 1.0, 0], [s, 0, -c]])  # columns: the person's left, up, forward
    return _rot_z(roll) @ facing


def _fixed(point: np.ndarray) -> tuple[int, int]:
    """cv2 fixed-point coordinates (``_SUBPIXEL_BITS`` fraction bits) of a drawing point."""
    return int(round(point[0] * _FIXED)), int(round(point[1] * _FIXED))


def _draw_person(
    label: np.ndarray,
    body: dict[str, np.ndarray],
    rotation: np.ndarray,
    height: float,
    origin: np.ndarray,
    widths: tuple[int, int],
) -> tuple[np.ndarray, np.ndarray, dict[int, float]]:
    """Draw one person's part labels into ``label`` (uint8 [S, S]) far to near.

    Returns the joints' drawing coordinates (float64 [17, 2], pixel centres at integers, on the
    1/16 px grid cv2 draws on), whether each joint faces the camera (bool [17]; False only for
    eyes, nose and ears on the far side of the head) and each limb part's depth in pixels
    (positive: farther than the hip centre).
    """
    arm_width, leg_width = widths
    shift = _SUBPIXEL_BITS

    def project(points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        camera = np.asarray(points, dtype=np.float64).reshape(-1, 3) @ rotation.T
        xy = origin + height * camera[:, :2] * np.array([1.0, -1.0])  # image y points down
        return np.round(xy * _FIXED) / _FIXED, height * camera[:, 2]

    joints, joint_depth = project(body["joints"])
    (neck,), _ = project(body["neck"])
    (head,), (head_depth,) = project(body["head"])
    radius = height * float(body["head_radius"])
    # Eyes and nose show on the near half of the head, ears unless well behind it.
    facing = np.ones(len(KEYPOINT_NAMES), dtype=bool)
    facing[:5] = joint_depth[:5] - head_depth <= np.array([0, 0, 0, 0.3, 0.3]) * radius
    steps: list[tuple[float, Callable[[], None]]] = []

    corners, corner_depth = project(body["torso"])
    hull = cv2.convexHull(np.round(corners * _FIXED).astype(np.int32))
    chest, _ = project(body["chest"])
    chest_shown = (rotation @ body["chest_forward"])[2] < 0.1  # the front of the torso faces the camera

    def draw_torso() -> None:
        cv2.fillPoly(label, [hull], _TORSO_PART, cv2.LINE_8, shift)
        if chest_shown:
            cv2.line(label, _fixed(chest[0]), _fixed(chest[1]), _CHEST, max(1, arm_width // 2), cv2.LINE_8, shift)

    steps.append((float(corner_depth.mean()), draw_torso))
    head_forward = rotation @ body["head_forward"]

    def draw_head() -> None:
        cv2.line(label, _fixed(neck), _fixed(head), _NECK, arm_width, cv2.LINE_8, shift)
        cv2.circle(label, _fixed(head), int(round(radius * _FIXED)), _HEAD, -1, cv2.LINE_8, shift)
        # The face: head pixels whose sphere normal is within 70 degrees of where the head faces.
        x0, y0 = np.maximum(np.floor(head - radius).astype(int) - 1, 0)
        x1, y1 = np.minimum(np.ceil(head + radius).astype(int) + 2, label.shape[::-1])
        if x1 <= x0 or y1 <= y0:
            return
        ys, xs = np.mgrid[y0:y1, x0:x1]
        dx, dy = (xs - head[0]) / radius, (ys - head[1]) / radius
        normal_z = -np.sqrt(np.clip(1 - dx**2 - dy**2, 0, None))  # the visible half faces the camera (-z)
        toward = dx * head_forward[0] - dy * head_forward[1] + normal_z * head_forward[2]
        window = label[y0:y1, x0:x1]
        window[(toward > _FACE_CAP) & (window == _HEAD)] = _FACE
        mark = int(round(max(0.5, 0.13 * radius) * _FIXED))
        for joint in np.flatnonzero(facing[:3]):  # nose and eyes
            cv2.circle(label, _fixed(joints[joint]), mark, _FACE_MARK, -1, cv2.LINE_8, shift)

    steps.append((float(head_depth), draw_head))
    (left_toe, right_toe), _ = project(body["toes"])
    limbs = (
        ("left_upper_arm", 5, 7, arm_width, None),
        ("left_forearm", 7, 9, arm_width, None),
        ("right_upper_arm", 6, 8, arm_width, None),
        ("right_forearm", 8, 10, arm_width, None),
        ("left_thigh", 11, 13, leg_width, None),
        ("left_shin", 13, 15, leg_width, left_toe),
        ("right_thigh", 12, 14, leg_width, None),
        ("right_shin", 14, 16, leg_width, right_toe),
    )
    limb_depth: dict[int, float] = {}
    for name, start, end, width, toe in limbs:
        part = _LIMB_PARTS[name]
        limb_depth[part] = float(joint_depth[start] + joint_depth[end]) / 2

        def draw_limb(part: int = part, start: int = start, end: int = end, width: int = width, toe=toe) -> None:
            cv2.line(label, _fixed(joints[start]), _fixed(joints[end]), part, width, cv2.LINE_8, shift)
            if toe is not None:
                cv2.line(label, _fixed(joints[end]), _fixed(toe), part, max(1, width * 3 // 4), cv2.LINE_8, shift)

        steps.append((limb_depth[part] - _NEAR_LIMB_BIAS * height, draw_limb))
    for _, draw in sorted(steps, key=lambda step: -step[0]):  # stable: ties keep torso, head, limbs order
        draw()
    return joints, facing, limb_depth


def _luminance(colour: np.ndarray) -> float:
    return float(colour @ np.array([0.299, 0.587, 0.114]))


def _person_palette(rng: np.random.Generator, covered: np.ndarray, limb_shade: dict[int, float]) -> np.ndarray:
    """float32 [16, 3] RGB 0-255 colour of each part label of one person.

    One colour of any hue, redrawn until it and its lighter and darker variants stand out from
    ``covered`` (the mean RGB under the person); face and chest stripe are a lighter (or, on a light
    colour, darker) variant with marks in black or white; limbs are lighter when nearer than the
    hip centre, darker when farther (``limb_shade``: depth / shoulder half-width, clipped to +-1).
    """
    best, best_distance = np.zeros(3), -1.0
    for _ in range(20):
        hsv = np.array([[[rng.uniform(0, 360), rng.uniform(0, 1), rng.uniform(0.3, 0.85)]]], dtype=np.float32)
        base = cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)[0, 0].astype(np.float64) * 255
        variants = (base, base + 0.35 * (255 - base), 0.65 * base)
        distance = min(float(np.linalg.norm(variant - covered)) for variant in variants)
        if distance > best_distance:
            best, best_distance = base, distance
        if distance >= 60:
            break
    base = best
    face = base + 0.55 * (255 - base) if _luminance(base) < 150 else 0.45 * base
    palette = np.tile(base, (_PARTS_PER_PERSON, 1))
    palette[[_CHEST, _FACE]] = face
    palette[_FACE_MARK] = 0.0 if _luminance(face) > 110 else 255.0
    for part, shade in limb_shade.items():
        nearness = float(np.clip(-shade, -1, 1))
        palette[part] = base + 0.35 * nearness * (255 - base) if nearness > 0 else base * (1 + 0.35 * nearness)
    return palette.astype(np.float32)


def _render_image(
    rng: np.random.Generator, image_size: int, heights: tuple[float, float], people: tuple[int, int]
) -> tuple[np.ndarray, list[DrawnPerson]]:
    """One RGB uint8 [image_size, image_size, 3] image and its people (heights: fractions of the side)."""
    image = _background(rng, image_size)
    _draw_distractors(image, rng, (0.06 * image_size, 0.4 * image_size))
    owners = np.zeros((image_size, image_size), dtype=np.uint16)  # (person + 1) * 16 + part
    placed: list[_Placed] = []
    for _ in range(int(rng.integers(people[0], people[1] + 1))):
        for _attempt in range(15):
            body = _sample_body(rng)
            height = image_size * math.exp(rng.uniform(math.log(heights[0]), math.log(heights[1])))
            rotation = _camera_rotation(rng.uniform(0, 2 * math.pi), math.radians(rng.normal(0, 4)))
            arm_width = max(2, int(round(height * rng.uniform(0.03, 0.055))))
            widths = (arm_width, max(2, int(round(arm_width * rng.uniform(1.1, 1.4)))))
            # The extent around the hip centre, then an origin leaving at most ~30 % of it outside.
            points = np.concatenate([body["joints"], body["toes"], body["torso"], body["head"][None]])
            spread = height * (points @ rotation.T)[:, :2] * np.array([1.0, -1.0])
            margin = height * float(body["head_radius"]) + widths[1]
            low, high = spread.min(axis=0) - margin, spread.max(axis=0) + margin
            first, last = -low - 0.3 * (high - low), image_size - high + 0.3 * (high - low)
            draw = rng.uniform(0, 1, 2)
            origin = np.where(first < last, first + draw * (last - first), (first + last) / 2)
            label = np.zeros((image_size, image_size), dtype=np.uint8)
            joints, facing, limb_depth = _draw_person(label, body, rotation, height, origin, widths)
            pixels = np.floor(joints + 0.5).astype(np.int64)  # cv2 draws point p in pixel round(p)
            inside = ((pixels >= 0) & (pixels < image_size)).all(axis=1)
            # A joint on no drawn pixel (a face point on a head of a few pixels) gets a pixel of its own.
            xs, ys = pixels[inside].T
            blank = label[ys, xs] == 0
            label[ys[blank], xs[blank]] = [_JOINT_PARTS[joint][0] for joint in np.flatnonzero(inside)[blank]]
            drawn = label > 0
            if not drawn.any():
                continue
            rows, cols = np.flatnonzero(drawn.any(axis=1)), np.flatnonzero(drawn.any(axis=0))
            box = np.array([cols[0], rows[0], cols[-1] + 1, rows[-1] + 1], dtype=np.float32)
            if not _overlap_ok(box, [person.box for person in placed]):
                continue  # nothing drawn into the image yet
            limb_shade = {part: depth / (height * _SHOULDER_HALF) for part, depth in limb_depth.items()}
            palette = _person_palette(rng, image[drawn].mean(axis=0), limb_shade)
            parts = label[drawn]
            image[drawn] = palette[parts]
            owners[drawn] = (len(placed) + 1) * _PARTS_PER_PERSON + parts
            placed.append(_Placed(joints, inside, facing, box, height))
            break
    for person in placed:  # occluders over about a third of the people, centred near one of their joints
        candidates = np.flatnonzero(person.inside)
        if rng.random() >= 0.35 or len(candidates) == 0:
            continue
        size = person.height * rng.uniform(0.12, 0.3)
        kind = "rectangle" if rng.random() < 0.6 else "blob"
        mask = _draw_shape(kind, size, rng.uniform(0.35, 1.0), rng.uniform(0, 2 * math.pi), rng)
        cx, cy = person.joints[rng.choice(candidates)] + rng.normal(0, 0.15 * size, 2)
        covered = _clip_to_image(
            mask, int(round(cx)) - mask.shape[1] // 2, int(round(cy)) - mask.shape[0] // 2, image_size
        )
        if covered is None:
            continue
        _paint(image, *covered, rng)
        visible, (ix0, iy0, ix1, iy1) = covered
        owners[iy0:iy1, ix0:ix1][visible] = _OCCLUDER
    drawn_people = []
    for index, person in enumerate(placed):
        keypoints = np.zeros((len(KEYPOINT_NAMES), 3), dtype=np.float32)
        xs, ys = np.clip(np.floor(person.joints + 0.5).astype(np.int64), 0, image_size - 1).T
        owner = owners[ys, xs]
        own = (owner // _PARTS_PER_PERSON == index + 1) & _SEEN_ON[np.arange(len(owner)), owner % _PARTS_PER_PERSON]
        keypoints[:, 2] = np.where(person.inside, np.where(own & person.facing_camera, 2, 1), 0)
        # COCO's pixel indices: cv2 draws point p in pixel round(p) (the reader adds half a pixel).
        keypoints[person.inside, :2] = person.joints[person.inside]
        area = int(np.count_nonzero(owners // _PARTS_PER_PERSON == index + 1))
        drawn_people.append(DrawnPerson(keypoints, person.box, area))
    return _with_sensor_noise(image, rng), drawn_people


def generate_synthetic_keypoints(
    out_dir: str | Path,
    num_train: int = 300,
    num_val: int = 100,
    image_size: int = 256,
    seed: int = 0,
    min_objects: int = 1,
    max_objects: int = 3,
    min_height: float = 0.25,
    max_height: float = 0.9,
    overwrite: bool = False,
) -> Path:
    """Draw a stick-people dataset and write it in COCO keypoints format under ``out_dir``; returns it.

    Args:
        out_dir: destination; must be missing or empty unless ``overwrite`` (then our files are
            overwritten in place; nothing is deleted, so stale extra images may remain).
        num_train, num_val: images per split.
        image_size: side of the square images in pixels (>= 32).
        seed: same seed (and arguments) -> byte-identical json and images.
        min_objects, max_objects: people per image (fewer when one finds no free place).
        min_height, max_height: a person's standing height (ankles to the top of the head) as a
            fraction of the image side, drawn log-uniformly; crouching people are shorter.
    """
    if image_size < 32:
        raise ValueError(f"image_size must be >= 32, got {image_size}")
    if not 0 < min_height <= max_height:
        raise ValueError(f"need 0 < min_height <= max_height, got {min_height}, {max_height}")
    if not 0 <= min_objects <= max_objects <= 1000:
        raise ValueError(f"need 0 <= min_objects <= max_objects <= 1000, got {min_objects}, {max_objects}")
    if num_train < 0 or num_val < 0:
        raise ValueError(f"num_train and num_val must be >= 0, got {num_train}, {num_val}")
    category = {
        "id": 1,
        "name": "person",
        "supercategory": "person",
        "keypoints": list(KEYPOINT_NAMES),
        "skeleton": [list(pair) for pair in SKELETON],
    }

    def draw(rng: np.random.Generator) -> tuple[np.ndarray, list[dict[str, Any]]]:
        image, people = _render_image(rng, image_size, (min_height, max_height), (min_objects, max_objects))
        annotations = []
        for person in people:
            keypoints = [[float(x), float(y), int(v)] if v > 0 else [0, 0, 0] for x, y, v in person.keypoints]
            annotations.append(
                {
                    "category_id": 1,
                    "bbox": coco_box(person.box),
                    "area": person.area,
                    "iscrowd": 0,
                    "keypoints": [value for triplet in keypoints for value in triplet],
                    "num_keypoints": int(np.count_nonzero(person.keypoints[:, 2])),
                }
            )
        return image, annotations

    info = {"description": "centernet-lightning synthetic keypoints", "seed": seed, "image_size": image_size}
    splits = {"train": num_train, "val": num_val}
    return write_coco_dataset(out_dir, splits, seed, draw, [category], info, "person_keypoints_{split}.json", overwrite)
