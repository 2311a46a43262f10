"""Collating transformed samples into the one :class:`~centernet_lightning.structures.Batch`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from centernet_lightning.structures import OBJECT_FIELDS, Batch

__all__ = ["collate_detection"]


def collate_detection(samples: Sequence[dict[str, Any] | None]) -> Batch | None:
    """Stack B transformed samples into a :class:`Batch`.

    None entries (images a dataset skipped with ``skip_bad_images``) are left out; a batch of
    nothing but skipped images gives None, which the LightningModules' steps pass over.

    Images must already be float CHW tensors of one size (apply a DetectionTransform with an
    ``input_size``). Objects are padded to the largest count N in the batch; padded rows have
    zero boxes, the field's pad value (label 0, ignore False, track id -1, keypoints all zero) and
    ``mask`` False, so ``mask`` is the only way to tell them apart. Every per-object field of
    ``OBJECT_FIELDS`` that some sample holds is collated (``labels`` always); a sample without it
    gets the pad value for its objects. A field of one value per object is [B, N]; one whose
    objects have ``object_dims`` dimensions more (``keypoints`` [N, J, 3]) is [B, N, *tail], the
    tail (J, 3) taken from the samples that hold it: every sample with objects must give the same
    one (ValueError naming the image otherwise). With no objects anywhere the shapes are
    [B, 0, 4], [B, 0] and [B, 0] ([B, 0, *tail] for a field with a tail).

    Returns:
        ``images`` float32 [B, 3, H, W]; ``bboxes`` float32 [B, N, 4] XYXY input pixels;
        ``labels`` int64 [B, N] and the other present fields [B, N] (``keypoints`` float32
        [B, N, J, 3]); ``mask`` bool [B, N]; ``image_ids`` int64 [B]; ``original_sizes`` int64
        [B, 2] (h, w); ``letterbox`` float32 [B, 3]; ``image_paths``.
    """
    if len(samples) == 0:
        raise ValueError("collate_detection needs at least one sample")
    samples = [sample for sample in samples if sample is not None]
    if not samples:
        return None
    images = [torch.as_tensor(s["image"]) for s in samples]
    if any(image.ndim != 3 or not image.is_floating_point() or image.shape[0] != 3 for image in images):
        raise ValueError(
            "collate_detection expects float CHW image tensors with 3 channels, got "
            f"{[(tuple(i.shape), str(i.dtype)) for i in images]}; apply a DetectionTransform first"
        )
    if len({tuple(image.shape) for image in images}) > 1:
        sizes = ", ".join(f"{tuple(i.shape)} ({s.get('image_path', '?')})" for i, s in zip(images, samples))
        raise ValueError(f"Images in a batch must share one size, got {sizes}; give the transform a fixed input_size")

    batch_size = len(samples)
    boxes_per_image = [torch.as_tensor(s["bboxes"], dtype=torch.float32).reshape(-1, 4) for s in samples]
    max_objects = max(len(boxes) for boxes in boxes_per_image)
    bboxes = torch.zeros(batch_size, max_objects, 4, dtype=torch.float32)
    mask = torch.zeros(batch_size, max_objects, dtype=torch.bool)
    present = [name for name in OBJECT_FIELDS if name == "labels" or any(name in s for s in samples)]
    counts = [len(boxes) for boxes in boxes_per_image]
    fields = {
        name: torch.full(
            (batch_size, max_objects, *_object_tail(name, samples, counts)),
            OBJECT_FIELDS[name].pad,
            dtype=OBJECT_FIELDS[name].dtype,
        )
        for name in present
    }
    for i, (sample, boxes) in enumerate(zip(samples, boxes_per_image, strict=True)):
        count = len(boxes)
        if count and "labels" not in sample:
            raise ValueError(f"Sample {sample.get('image_path', i)} has {count} boxes but no 'labels'")
        bboxes[i, :count] = boxes
        mask[i, :count] = True
        for name in present:
            if name not in sample:
                continue  # a reader that does not fill the field: its objects keep the pad value
            values = torch.as_tensor(sample[name])
            if OBJECT_FIELDS[name].object_dims:  # [count, *tail], its shape checked by _object_tail
                if count:
                    fields[name][i, :count] = values.to(fields[name].dtype)
                continue
            values = values.reshape(-1)
            if len(values) != count:
                raise ValueError(f"Sample {sample.get('image_path', i)} has {count} boxes but {len(values)} {name}")
            fields[name][i, :count] = values.to(fields[name].dtype)

    identity = torch.tensor([1.0, 0.0, 0.0])
    letterbox = [torch.as_tensor(s.get("letterbox", identity), dtype=torch.float32).reshape(3) for s in samples]
    return Batch(
        images=torch.stack([image.float() for image in images]),
        bboxes=bboxes,
        mask=mask,
        **fields,
        image_ids=torch.tensor([int(s["image_id"]) for s in samples], dtype=torch.int64),
        original_sizes=torch.tensor([tuple(s["original_size"]) for s in samples], dtype=torch.int64).reshape(-1, 2),
        letterbox=torch.stack(letterbox),
        image_paths=[str(s["image_path"]) for s in samples],
    )


def _object_tail(name: str, samples: Sequence[dict[str, Any]], counts: Sequence[int]) -> tuple[int, ...]:
    """The shape after the object axis of field ``name`` ((J, 3) for ``keypoints``, () for [N] fields).

    Taken from the samples that hold the field for some objects; ValueError naming the image when
    one holds another number of rows than it has boxes, or another tail than the first. A sample
    without objects may hold any empty array (its tail is used only when no sample has objects).
    """
    object_dims = OBJECT_FIELDS[name].object_dims
    if object_dims == 0:
        return ()
    tail, tail_source, empty_tail = None, "", None
    for sample, count in zip(samples, counts, strict=True):
        if name not in sample:
            continue
        shape = tuple(torch.as_tensor(sample[name]).shape)
        where = sample.get("image_path", "?")
        if count == 0:
            if empty_tail is None and len(shape) == 1 + object_dims:
                empty_tail = shape[1:]
            continue
        if len(shape) != 1 + object_dims or shape[0] != count:
            raise ValueError(
                f"Sample {where} has {count} boxes but {name} of shape {list(shape)} "
                f"(expected {1 + object_dims} dimensions, {count} rows)"
            )
        if tail is None:
            tail, tail_source = shape[1:], where
        elif shape[1:] != tail:
            raise ValueError(
                f"Sample {where} has {name} of shape {list(shape)} but sample {tail_source} of the same batch "
                f"has {list(tail)} per object: the samples of a batch must share one {name} layout"
            )
    if tail is not None:
        return tail
    return empty_tail if empty_tail is not None else (0,) * object_dims
