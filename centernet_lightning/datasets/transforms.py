"""Bounding-box-aware augmentation, letterboxing and normalisation of samples.

A :class:`DetectionTransform` turns a raw sample (uint8 HWC RGB image, XYXY pixel boxes) into a
model-ready one in three steps:

1. optional Albumentations augmentations, bbox-aware (``pascal_voc`` = our XYXY pixels); ignore
   regions travel with the boxes so they stay aligned, and so do the joints of keypoint samples
   (see "Keypoints" below);
2. the one sanitise step of the data path (:func:`~centernet_lightning.structures.sanitize_boxes`):
   boxes clipped to the augmented image and those left without area dropped;
3. the letterbox: resize so the longer side equals ``input_size`` (aspect kept), then pad to a
   square ``input_size`` canvas, the image centred (``pad_position="center"``, the default, as in
   the original CenterNet's centred affine warp) or at the top-left; with ``input_size=None``
   the image keeps its size and is padded to a multiple of ``size_divisor``. Its parameters go
   to ``sample["letterbox"] = (scale, pad_x, pad_y)`` with ``out_px = in_px * scale + pad``,
   composed with any letterbox the sample already had (``structures.letterbox_inverse`` undoes it);
   then ImageNet normalisation to a float32 CHW tensor.

Step 3 is :mod:`centernet_lightning.preprocess`'s functions, which inference shares.

The letterbox maps the pixels of the image *after augmentation* to the output, so it is the
exact mapping back to the file on disk only when no geometric augmentation ran (evaluation and
prediction), which is the only time it is needed.

Keypoints (``keypoints`` float32 [N, J, 3], ``(x, y, visibility)``): joints are points in the
frame of the boxes (pixel ``i`` spans ``[i, i + 1)``). The labelled ones (visibility > 0) go
through the same Albumentations call as the boxes, as ``xy`` keypoints, and the joints of objects
whose box the augmentation drops are dropped with it. Albumentations 2.0.8 moves keypoints as
pixel indices (pixel ``i`` centred at ``i``) in its flips, rotations and affine warps (x ->
``W - 1 - x``, the original CenterNet's ``width - x - 1``) but scales them as ``x * s``; the
joints therefore enter it shifted by -0.5 px and leave shifted back, which makes mirrors,
rotations, crops and pads exact in the boxes' frame (x -> ``W - x``, as boxes; a joint in the
last column stays in the image) and leaves resizes by a total factor ``s`` off by
``0.5 * |1 - s|`` px (0.2 px at the ``centernet`` preset's extreme scales 0.6 and 1.4 of an
image of the input size), rather than every mirror off by 1 px. (``RandomScale`` also truncates
the image to ``int(W * s)`` px but scales keypoints by ``s``: up to 1 px more at the far edge.)
Then a joint outside the augmented image (``0 <= x < W``, ``0 <= y < H``, Albumentations' own
test) becomes unlabelled (all zero: the original CenterNet gives such joints no target either);
when the augmentation mirrored the image, left and right joints swap (the layout's flip pairs);
the letterbox maps labelled joints as boxes, ``x * scale + pad_x``, and unlabelled ones stay all
zero.
"""

from __future__ import annotations

import difflib
import inspect
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import cv2
import numpy as np
import torch

from centernet_lightning.preprocess import PAD_FILL, letterbox_image, normalize_image
from centernet_lightning.structures import OBJECT_FIELDS, PAD_POSITIONS, KeypointLayout, sanitize_boxes

# Albumentations asks PyPI for a newer version at import; offline that costs a timeout per process.
os.environ.setdefault("NO_ALBUMENTATIONS_UPDATE", "1")
import albumentations as A  # noqa: E402

__all__ = [
    "PRESETS",
    "TRANSFORMS",
    "DetectionTransform",
    "PCALighting",
    "build_albumentation",
    "build_transforms",
]


# ImageNet's RGB eigen-decomposition (AlexNet's PCA lighting), as the original CenterNet uses it.
IMAGENET_EIGENVALUES = np.array([0.2141788, 0.01817699, 0.00341571], dtype=np.float32)
IMAGENET_EIGENVECTORS = np.array(
    [
        [-0.58752847, -0.69563484, 0.41340352],
        [-0.5832747, 0.00994535, -0.81221408],
        [-0.56089297, 0.71832671, 0.41158938],
    ],
    dtype=np.float32,
)


class PCALighting(A.ImageOnlyTransform):
    """PCA lighting noise (Krizhevsky et al. 2012) with ImageNet's fixed eigenvectors, as CenterNet.

    Adds ``eigenvectors @ (eigenvalues * alpha)``, ``alpha ~ N(0, alpha_std)`` per image, to the
    colour of every pixel (in [0, 1] units, so x255 on uint8 images, clipped to [0, 255]). The
    original adds the vector to its BGR images; it is added here in the same channel order.
    Hand-written because Albumentations' FancyPCA decomposes each image's own colours instead.
    """

    def __init__(self, alpha_std: float = 0.1, p: float = 1.0) -> None:
        super().__init__(p=p)
        self.alpha_std = alpha_std

    def get_params(self) -> dict[str, Any]:
        return {"alpha": self.random_generator.normal(0.0, self.alpha_std, 3).astype(np.float32)}

    def apply(self, img: np.ndarray, alpha: np.ndarray, **params: Any) -> np.ndarray:
        shift_bgr = IMAGENET_EIGENVECTORS @ (IMAGENET_EIGENVALUES * alpha)
        shift_rgb = shift_bgr[::-1] * 255.0
        return np.clip(np.rint(img.astype(np.float32) + shift_rgb), 0, 255).astype(np.uint8)


# The transforms a config names (``{name: HorizontalFlip, p: 0.5}``): Albumentations' bbox-aware
# spatial transforms, its pixel-level ones, its compositions, and ours. An explicit table rather
# than a lookup in the albumentations module, so that a config names one of these or gets the list.
TRANSFORMS: dict[str, type[A.BasicTransform] | type[A.BaseCompose]] = {
    # flips, rotations, affine
    "HorizontalFlip": A.HorizontalFlip,
    "VerticalFlip": A.VerticalFlip,
    "Transpose": A.Transpose,
    "RandomRotate90": A.RandomRotate90,
    "D4": A.D4,
    "Rotate": A.Rotate,
    "SafeRotate": A.SafeRotate,
    "Affine": A.Affine,
    "ShiftScaleRotate": A.ShiftScaleRotate,
    "Perspective": A.Perspective,
    # scaling, padding, cropping
    "RandomScale": A.RandomScale,
    "LongestMaxSize": A.LongestMaxSize,
    "SmallestMaxSize": A.SmallestMaxSize,
    "Resize": A.Resize,
    "PadIfNeeded": A.PadIfNeeded,
    "Pad": A.Pad,
    "CenterCrop": A.CenterCrop,
    "RandomCrop": A.RandomCrop,
    "Crop": A.Crop,
    "CropAndPad": A.CropAndPad,
    "RandomResizedCrop": A.RandomResizedCrop,
    "RandomSizedCrop": A.RandomSizedCrop,
    "RandomSizedBBoxSafeCrop": A.RandomSizedBBoxSafeCrop,
    "BBoxSafeRandomCrop": A.BBoxSafeRandomCrop,
    "AtLeastOneBBoxRandomCrop": A.AtLeastOneBBoxRandomCrop,
    "RandomCropFromBorders": A.RandomCropFromBorders,
    # colour
    "ColorJitter": A.ColorJitter,
    "HueSaturationValue": A.HueSaturationValue,
    "RandomBrightnessContrast": A.RandomBrightnessContrast,
    "RandomGamma": A.RandomGamma,
    "RGBShift": A.RGBShift,
    "ChannelShuffle": A.ChannelShuffle,
    "ToGray": A.ToGray,
    "ToSepia": A.ToSepia,
    "CLAHE": A.CLAHE,
    "Equalize": A.Equalize,
    "Posterize": A.Posterize,
    "Solarize": A.Solarize,
    "FancyPCA": A.FancyPCA,
    "RandomToneCurve": A.RandomToneCurve,
    "PlanckianJitter": A.PlanckianJitter,
    "PlasmaBrightnessContrast": A.PlasmaBrightnessContrast,
    "PCALighting": PCALighting,  # the original CenterNet's, with ImageNet's eigenvectors (above)
    # blur, noise, compression, sharpness
    "Sharpen": A.Sharpen,
    "Emboss": A.Emboss,
    "Blur": A.Blur,
    "GaussianBlur": A.GaussianBlur,
    "MotionBlur": A.MotionBlur,
    "MedianBlur": A.MedianBlur,
    "Defocus": A.Defocus,
    "ZoomBlur": A.ZoomBlur,
    "GlassBlur": A.GlassBlur,
    "AdvancedBlur": A.AdvancedBlur,
    "GaussNoise": A.GaussNoise,
    "ISONoise": A.ISONoise,
    "MultiplicativeNoise": A.MultiplicativeNoise,
    "ImageCompression": A.ImageCompression,
    "Downscale": A.Downscale,
    # occlusion and weather
    "CoarseDropout": A.CoarseDropout,
    "GridDropout": A.GridDropout,
    "RandomFog": A.RandomFog,
    "RandomRain": A.RandomRain,
    "RandomSnow": A.RandomSnow,
    "RandomShadow": A.RandomShadow,
    "RandomSunFlare": A.RandomSunFlare,
    # compositions: a ``transforms`` list of such dicts
    "OneOf": A.OneOf,
    "SomeOf": A.SomeOf,
    "Sequential": A.Sequential,
    "OneOrOther": A.OneOrOther,
}


def _centernet_preset(input_size: int) -> list[A.BasicTransform]:
    """Original CenterNet training recipe (Zhou et al. 2019, Sec. 5): scale 0.6-1.4, crop, flip, colour
    jitter and PCA lighting."""
    return [
        A.LongestMaxSize(max_size=input_size),
        A.RandomScale(scale_limit=(-0.4, 0.4), p=1.0),
        A.RandomCrop(
            height=input_size,
            width=input_size,
            pad_if_needed=True,
            pad_position="random",
            border_mode=cv2.BORDER_CONSTANT,
            fill=PAD_FILL,
        ),
        A.HorizontalFlip(p=0.5),
        # No hue shift: colour is often what tells classes apart; CenterNet only jitters b/c/s.
        A.ColorJitter(brightness=0.4, contrast=0.4, saturation=0.4, hue=0.0, p=0.8),
        PCALighting(alpha_std=0.1, p=1.0),
    ]


def _light_preset(input_size: int) -> list[A.BasicTransform]:
    """Flip and mild colour jitter; the letterbox step then fits the image to ``input_size``."""
    return [
        A.HorizontalFlip(p=0.5),
        A.ColorJitter(brightness=0.2, contrast=0.2, saturation=0.2, hue=0.0, p=0.5),
    ]


def _val_preset(input_size: int) -> list[A.BasicTransform]:
    """No augmentation: only the letterbox."""
    return []


PRESETS: dict[str, Callable[[int], list[A.BasicTransform]]] = {
    "centernet": _centernet_preset,
    "light": _light_preset,
    "val": _val_preset,
}


def build_albumentation(spec: Mapping[str, Any]) -> A.BasicTransform | A.BaseCompose:
    """One transform of :data:`TRANSFORMS` from ``{"name": "HorizontalFlip", "p": 0.5, ...}``.

    Compositions (``OneOf``, ``SomeOf``, ``Sequential``, ``OneOrOther``) take a ``transforms`` list
    of such dicts. Raises ValueError listing close names when ``name`` is not in the table.
    """
    arguments = dict(spec)
    name = arguments.pop("name", None)
    transform_class = TRANSFORMS.get(name) if isinstance(name, str) else None
    if transform_class is None:
        close = difflib.get_close_matches(str(name), list(TRANSFORMS), n=5, cutoff=0.5)
        hint = f"; did you mean one of {close}?" if close else f"; valid names: {sorted(TRANSFORMS)}"
        raise ValueError(f"Unknown albumentations transform {name!r} in {dict(spec)}{hint}")
    if issubclass(transform_class, A.BaseCompose):
        arguments["transforms"] = [build_albumentation(child) for child in arguments.get("transforms", [])]
    # Albumentations only warns about unknown arguments; a typo in a config should stop the run.
    parameters = inspect.signature(transform_class.__init__).parameters
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in parameters.values()):
        unknown = sorted(set(arguments) - set(parameters))
        if unknown:
            valid = sorted(set(parameters) - {"self"})
            raise ValueError(f"albumentations.{name} got unknown arguments {unknown}; valid arguments: {valid}")
    try:
        return transform_class(**arguments)
    except (TypeError, ValueError) as error:
        raise ValueError(f"Cannot build albumentations.{name} from {dict(spec)}: {error}") from error


# Mirroring is detected from three points sent through the same Albumentations call as the joints:
# Albumentations 2.0.8 moves keypoints but never swaps left/right labels, and a mirror can come from
# any orientation-reversing composition (HorizontalFlip, VerticalFlip, Transpose, D4, ...), which
# the sign of the mapped frame's cross product tells without knowing which transforms ran.
PROBE_OFFSETS = np.array([[0.0, 0.0], [1.0, 0.0], [0.0, 1.0]], dtype=np.float32)  # centre, +1 px in x, in y
# Where Albumentations puts the centre of pixel 0 for keypoints, in the boxes' frame (module docstring).
ALBUMENTATIONS_PIXEL_CENTRE = 0.5


def _probe_points(height: int, width: int) -> np.ndarray:
    """float32 [3, 2]: the image centre and the points 1 px right of it and 1 px below it."""
    return np.array([width / 2, height / 2], dtype=np.float32) + PROBE_OFFSETS


def _mirrors(probes: np.ndarray) -> bool:
    """Whether the map that sent :func:`_probe_points` to ``probes`` [3, 2] reverses orientation: the
    cross product of the mapped x and y unit edges is negative (it is +1 before any transform)."""
    (x_edge, y_edge) = probes[1:] - probes[0]
    return bool(x_edge[0] * y_edge[1] - x_edge[1] * y_edge[0] < 0)


def _unlabel_outside(joints: np.ndarray, height: int, width: int) -> np.ndarray:
    """``joints`` [N, J, 3] with those outside a ``height`` x ``width`` image set to unlabelled (all zero)."""
    x, y = joints[..., 0], joints[..., 1]
    inside = (x >= 0) & (x < width) & (y >= 0) & (y < height)  # False for NaN too
    return np.where(inside[..., None], joints, np.float32(0.0)).astype(np.float32)


class DetectionTransform:
    """``sample -> sample``: augment (optional), letterbox, sanitise boxes, normalise.

    Args:
        augmentations: Albumentations transforms applied first (bbox-aware).
        input_size: side of the square output in pixels; None keeps the size (padded to
            ``size_divisor``), so only batch size 1 or same-size images can be collated.
        pad_position: ``"center"`` or ``"top_left"`` placement of the image on the canvas.
        size_divisor: padding multiple when ``input_size`` is None.
        min_visibility, min_area: boxes keeping less than this fraction / area (pixels^2) after
            augmentation are dropped (Albumentations ``BboxParams``).
        seed: seed of the augmentation RNG in the main process; DataLoader workers reseed from
            their torch worker seed so they do not all draw the same augmentations.
        keypoint_layout: the joints of keypoint samples, whose flip pairs swap when an augmentation
            mirrors the image; without it such a sample meeting a mirror is a ValueError.

    Output sample: ``image`` float32 [3, H, W]; ``bboxes`` float32 [N, 4] and every per-object
    field (``labels``, ``ignore``, ...; see ``structures.OBJECT_FIELDS``) [N] as tensors, for the
    objects that survive augmentation and the letterbox (``keypoints`` float32 [N, J, 3] in
    output pixels, see the module docstring); ``letterbox`` float32 [3]; other keys unchanged.
    """

    def __init__(
        self,
        augmentations: Sequence[A.BasicTransform | A.BaseCompose] = (),
        input_size: int | None = 512,
        pad_position: str = "center",
        size_divisor: int | None = 32,
        min_visibility: float = 0.25,
        min_area: float = 4.0,
        seed: int | None = None,
        keypoint_layout: KeypointLayout | None = None,
    ) -> None:
        if pad_position not in PAD_POSITIONS:
            raise ValueError(f"pad_position must be one of {PAD_POSITIONS}, got {pad_position!r}")
        self.input_size = input_size
        self.pad_position = pad_position
        self.size_divisor = size_divisor
        self.keypoint_layout = keypoint_layout
        self.augment = None
        if augmentations:
            bbox_params = A.BboxParams(
                format="pascal_voc",
                label_fields=["object_index"],
                min_visibility=min_visibility,
                min_area=min_area,
                clip=True,
                filter_invalid_bboxes=True,
            )
            # Every keypoint is kept wherever it lands: the joints are put back in their objects by position.
            keypoint_params = A.KeypointParams(format="xy", remove_invisible=False)
            self.augment = A.Compose(
                list(augmentations), bbox_params=bbox_params, keypoint_params=keypoint_params, seed=seed
            )
        self._seeded_worker: tuple[int, int] | None = None

    def _reseed_in_worker(self) -> None:
        # Workers receive copies of this object with identical RNG states: reseed once per worker.
        worker = torch.utils.data.get_worker_info()
        if self.augment is None or worker is None:
            return
        key = (os.getpid(), worker.seed)
        if key != self._seeded_worker:
            self.augment.set_random_seed(worker.seed % 2**32)
            self._seeded_worker = key

    def _object_values(self, sample: dict[str, Any], name: str, count: int) -> np.ndarray:
        """The per-object array ``sample[name]``: [N] for one value per object, [N, J, 3] float32 joints."""
        if name != "keypoints":
            return np.asarray(sample[name]).reshape(-1)
        joints = np.array(sample[name], dtype=np.float32)  # a copy: the sample's own stays as it is
        num_joints = self.keypoint_layout.num_keypoints if self.keypoint_layout is not None else None
        if joints.size == 0 and count == 0:
            return joints.reshape(0, num_joints or (joints.shape[1] if joints.ndim == 3 else 0), 3)
        if joints.ndim != 3 or joints.shape[0] != count or joints.shape[2] != 3:
            raise ValueError(
                f"Sample {sample.get('image_path', '?')} has {count} boxes but keypoints of shape "
                f"{list(joints.shape)}, not [{count}, J, 3]"
            )
        if num_joints is not None and joints.shape[1] != num_joints:
            raise ValueError(
                f"Sample {sample.get('image_path', '?')} has {joints.shape[1]} joints per object but the "
                f"transform's keypoint layout has {num_joints}: {list(self.keypoint_layout.names)}"
            )
        return joints

    def _moved_keypoints(
        self, joints: np.ndarray, labelled: np.ndarray, moved: np.ndarray, sample: dict[str, Any]
    ) -> np.ndarray:
        """``joints`` [N, J, 3] with the labelled ones at their augmented positions ``moved[:-3]``, left
        and right swapped when the probe points ``moved[-3:]`` say the image was mirrored."""
        if len(moved) != int(labelled.sum()) + len(PROBE_OFFSETS):
            raise ValueError(
                f"The augmentation returned {len(moved)} keypoints for {int(labelled.sum())} joints and "
                f"{len(PROBE_OFFSETS)} probes; a transform that drops keypoints cannot be used with keypoint data"
            )
        joints = joints.copy()
        joints[labelled, :2] = moved[: -len(PROBE_OFFSETS)]
        if not _mirrors(moved[-len(PROBE_OFFSETS) :]):
            return joints
        if self.keypoint_layout is None:
            raise ValueError(
                f"An augmentation mirrored sample {sample.get('image_path', '?')}, whose keypoints then need their "
                "left and right joints swapped: give DetectionTransform / build_transforms a keypoint_layout"
            )
        return joints[:, self.keypoint_layout.flip_permutation()]

    def __call__(self, sample: dict[str, Any]) -> dict[str, Any]:
        image = sample["image"]
        if not isinstance(image, np.ndarray) or image.dtype != np.uint8 or image.ndim != 3:
            raise TypeError("DetectionTransform expects a uint8 HWC numpy image (an untransformed sample)")
        bboxes = np.asarray(sample["bboxes"], dtype=np.float32).reshape(-1, 4)
        objects = {name: self._object_values(sample, name, len(bboxes)) for name in OBJECT_FIELDS if name in sample}

        if self.augment is not None:
            self._reseed_in_worker()
            # Every per-object field follows its box through the geometric ops by the box's index.
            targets = {"image": image, "bboxes": bboxes, "object_index": np.arange(len(bboxes))}
            if "keypoints" in objects:
                labelled = objects["keypoints"][..., 2] > 0  # [N, J]
                probes = _probe_points(image.shape[0], image.shape[1])  # [3, 2]
                points = np.concatenate([objects["keypoints"][labelled][:, :2], probes])
                targets["keypoints"] = points - ALBUMENTATIONS_PIXEL_CENTRE
            out = self.augment(**targets)
            image = out["image"]
            bboxes = np.asarray(out["bboxes"], dtype=np.float32).reshape(-1, 4)
            if "keypoints" in objects:
                moved = np.asarray(out["keypoints"], dtype=np.float32).reshape(-1, 2) + ALBUMENTATIONS_PIXEL_CENTRE
                objects["keypoints"] = self._moved_keypoints(objects["keypoints"], labelled, moved, sample)
            kept = np.asarray(out["object_index"], dtype=np.int64).reshape(-1)
            objects = {name: values[kept] for name, values in objects.items()}
        if "keypoints" in objects:
            objects["keypoints"] = _unlabel_outside(objects["keypoints"], *image.shape[:2])

        # The one sanitise step of the data path: boxes clipped to the (augmented) image, those left
        # without area dropped, before the letterbox maps them onto the canvas (never into its padding).
        bboxes, keep = sanitize_boxes(bboxes, *image.shape[:2])
        image, scale, pad_x, pad_y = letterbox_image(image, self.input_size, self.size_divisor, self.pad_position)
        bboxes = bboxes * scale + np.array([pad_x, pad_y, pad_x, pad_y], dtype=np.float32)
        keep &= (bboxes[:, 2] > bboxes[:, 0]) & (bboxes[:, 3] > bboxes[:, 1])  # still boxes once scaled
        if "keypoints" in objects:
            joints = objects["keypoints"]
            xy = joints[..., :2] * np.float32(scale) + np.array([pad_x, pad_y], dtype=np.float32)
            joints[..., :2] = np.where(joints[..., 2:] > 0, xy, 0.0)  # unlabelled joints stay all zero

        # Compose with the sample's letterbox: out = (orig * s0 + p0) * s + p.
        previous = np.asarray(sample.get("letterbox", (1.0, 0.0, 0.0)), dtype=np.float64)
        letterbox = np.array(
            [previous[0] * scale, previous[1] * scale + pad_x, previous[2] * scale + pad_y], dtype=np.float32
        )
        return {
            **sample,
            "image": normalize_image(image),
            "bboxes": torch.from_numpy(bboxes[keep]),
            **{name: torch.from_numpy(np.ascontiguousarray(values[keep])) for name, values in objects.items()},
            "letterbox": torch.from_numpy(letterbox),
        }


def build_transforms(
    spec: str | Sequence[Mapping[str, Any]] | None,
    input_size: int | None = 512,
    *,
    pad_position: str = "center",
    size_divisor: int | None = 32,
    min_visibility: float = 0.25,
    min_area: float = 4.0,
    seed: int | None = None,
    keypoint_layout: KeypointLayout | None = None,
) -> DetectionTransform:
    """A :class:`DetectionTransform` from a preset name or a list of Albumentations specs.

    Args:
        spec: ``"centernet"`` | ``"light"`` | ``"val"`` (see :data:`PRESETS`), a list of dicts such
            as ``[{"name": "HorizontalFlip", "p": 0.5}]`` (any Albumentations transform), or None
            for no augmentation. The letterbox to ``input_size`` always follows.
        input_size: square output side in pixels (see DetectionTransform).
        keypoint_layout: the joints of keypoint data (their left/right pairs swap under mirrors).
        Other keyword arguments are passed to DetectionTransform.
    """
    if spec is None:
        augmentations = []
    elif isinstance(spec, str):
        if spec not in PRESETS:
            raise ValueError(f"Unknown transform preset {spec!r}; valid presets: {sorted(PRESETS)}")
        if input_size is None and spec == "centernet":
            raise ValueError("The 'centernet' preset crops to input_size, so input_size must be set")
        augmentations = PRESETS[spec](input_size)  # type: ignore[arg-type]
    else:
        augmentations = [build_albumentation(item) for item in spec]
    return DetectionTransform(
        augmentations,
        input_size=input_size,
        pad_position=pad_position,
        size_divisor=size_divisor,
        min_visibility=min_visibility,
        min_area=min_area,
        seed=seed,
        keypoint_layout=keypoint_layout,
    )
