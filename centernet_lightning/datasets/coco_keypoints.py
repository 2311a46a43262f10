"""COCO-format keypoints dataset (``annotations/person_keypoints_{split}.json``): boxes and joints."""

from __future__ import annotations

from typing import Any

import numpy as np

from centernet_lightning.datasets.coco import COCODataset
from centernet_lightning.datasets.common import ImageRecord
from centernet_lightning.structures import KeypointLayout

__all__ = ["COCO_PERSON_KEYPOINTS", "COCOKeypointsDataset", "COCO_KEYPOINT_SHIFT", "to_coco_keypoints"]

# COCO's person category: 17 joints and the 1-based skeleton of person_keypoints_*.json.
COCO_PERSON_KEYPOINTS = KeypointLayout.from_coco_category(
    {
        "keypoints": [
            "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
            "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
            "right_knee", "left_ankle", "right_ankle",
        ],
        "skeleton": [
            [16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7], [6, 8], [7, 9], [8, 10],
            [9, 11], [2, 3], [1, 2], [1, 3], [2, 4], [3, 5], [4, 6], [5, 7],
        ],
    }
)  # fmt: skip

VISIBILITIES = (0, 1, 2)  # not labelled, labelled but hidden, visible
# COCO's joints are pixel indices (a joint in pixel i has x = i), the library's continuous (pixel i
# spans [i, i + 1), as for boxes): reading adds half a pixel, writing results takes it off, as
# Detectron2 does. (The original CenterNet keeps indices and mirrors them to W - 1 - x.)
COCO_KEYPOINT_SHIFT = 0.5


def to_coco_keypoints(keypoints: np.ndarray) -> np.ndarray:
    """Joints ``[..., J, 3]`` in the library's continuous pixels as COCO's pixel indices: x and y
    minus :data:`COCO_KEYPOINT_SHIFT`, the third value (score or visibility) kept. float64."""
    coco = np.array(keypoints, dtype=np.float64)
    coco[..., :2] -= COCO_KEYPOINT_SHIFT
    return coco


class COCOKeypointsDataset(COCODataset):
    """Images, boxes and joints of one split of a COCO keypoints dataset.

    Layout::

        data_dir/annotations/person_keypoints_{split}.json
        data_dir/images/{split}/<file_name>     (or data_dir/{split}/<file_name>)

    Everything :class:`COCODataset` does (labels, ``ignore`` crowd regions, image ids,
    ``coco_gt_path`` for the OKS evaluator) plus a ``keypoints`` float32 [N, J, 3] field per sample:
    each object's joints ``(x, y, visibility)`` in image pixels, the file's pixel indices plus half a
    pixel (:data:`COCO_KEYPOINT_SHIFT`: the frame of the boxes), with visibility 0 (not
    labelled, x = y = 0 here whatever the file says), 1 (labelled, hidden) or 2
    (visible). Crowd regions and annotations without a ``keypoints`` list have no labelled joint.

    The classes are the categories with a ``keypoints`` list of joint names (COCO: ``person``);
    they must name the same joints, which give :attr:`keypoint_layout` (skeleton of the lowest
    category id). Categories without joints are no classes, and an annotation of one is refused.

    Raises:
        ValueError naming the file: no keypoint category, categories naming other joints, an
        annotation of a category without joints, a ``keypoints`` list that is not 3 numbers per
        joint (naming the annotation id too), a visibility other than 0, 1 or 2, a labelled joint
        that is not a finite number.
    """

    annotation_file = "person_keypoints_{split}.json"
    keypoint_layout: KeypointLayout  # set from the categories, before the annotations are read

    def _categories(self, data: dict[str, Any]) -> list[dict[str, Any]]:
        """The categories with joints; sets :attr:`keypoint_layout` from them."""
        path = self.coco_gt_path
        categories = list(data["categories"])
        with_joints = [c for c in categories if isinstance(c, dict) and c.get("keypoints")]
        if not with_joints:
            raise ValueError(
                f"{path}: no category has a 'keypoints' list of joint names, so this is no COCO keypoints file "
                "(read boxes alone with the 'coco' dataset)"
            )
        layouts = {int(c["id"]): tuple(map(str, c["keypoints"])) for c in with_joints}
        if len(set(layouts.values())) > 1:
            raise ValueError(
                f"{path}: the keypoint categories name different joints ({layouts}); one dataset needs one joint layout"
            )
        first = min(with_joints, key=lambda c: int(c["id"]))
        try:
            self.keypoint_layout = KeypointLayout.from_coco_category(first)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{path}: category {first['id']} has a bad keypoint layout: {error}") from error
        self._jointless_categories = {int(c["id"]): c.get("name") for c in categories if c not in with_joints}
        return with_joints

    def _attach_annotations(self, records: list[ImageRecord], annotations: list[dict[str, Any]]) -> None:
        """The annotations of COCODataset, refusing those of jointless categories first; every record gets
        a ``keypoints`` field ([0, J, 3] for images without objects, so every sample has one)."""
        category_ids = [a.get("category_id") if isinstance(a, dict) else None for a in annotations]
        jointless = [i for i, cid in enumerate(category_ids) if cid in self._jointless_categories]
        if jointless:
            first = annotations[jointless[0]]
            category_id = first["category_id"]
            raise ValueError(
                f"{self.coco_gt_path}: annotation {first.get('id', jointless[0])} is of category {category_id} "
                f"({self._jointless_categories[category_id]!r}), which has no joints, as have {len(jointless) - 1} "
                "more annotations; a keypoints dataset reads the categories with a 'keypoints' list only"
            )
        super()._attach_annotations(records, annotations)
        for record in records:
            record.fields.setdefault("keypoints", np.zeros((0, self.keypoint_layout.num_keypoints, 3), np.float32))

    def _object_fields(self, annotations: list[dict[str, Any]], crowd: np.ndarray) -> dict[str, np.ndarray]:
        """``keypoints`` float32 [A, J, 3] of the annotations (file order); see the class docstring."""
        path, num_joints = self.coco_gt_path, self.keypoint_layout.num_keypoints
        listed = [a.get("keypoints") for a in annotations]
        # -1: no list (no labelled joint), -2: not a list
        lengths = np.array([-1 if v is None else len(v) if isinstance(v, list) else -2 for v in listed])
        wrong = (lengths != 3 * num_joints) & (lengths != -1)
        if wrong.any():
            first = int(np.argmax(wrong))
            found = f"{lengths[first]} values" if lengths[first] >= 0 else f"a {type(listed[first]).__name__}"
            raise ValueError(
                f"{path}: annotation {annotations[first].get('id', first)} has 'keypoints' of {found}, not a list "
                f"of {3 * num_joints} (x, y, visibility of each joint of {list(self.keypoint_layout.names)})"
            )
        unlabelled = [0.0] * (3 * num_joints)
        try:
            joints = np.array([unlabelled if v is None else v for v in listed], dtype=np.float32)
        except (TypeError, ValueError) as error:
            raise ValueError(f"{path}: 'keypoints' must be lists of numbers ({error})") from error
        joints = joints.reshape(len(annotations), num_joints, 3)
        joints[crowd] = 0.0  # a crowd region is no person: no joint of it is a target
        visibility = joints[..., 2]
        not_finite = (visibility > 0) & ~np.isfinite(joints[..., :2]).all(axis=-1)
        problems = (
            (~np.isin(visibility, VISIBILITIES), "a visibility other than 0, 1 or 2"),
            (not_finite, "a labelled joint that is no finite number"),
        )
        for bad, what in problems:
            if bad.any():
                annotation, joint = np.argwhere(bad)[0]
                raise ValueError(
                    f"{path}: annotation {annotations[annotation].get('id', annotation)} has {what} at joint "
                    f"{joint} ({self.keypoint_layout.names[joint]}): {joints[annotation, joint].tolist()}"
                )
        joints[..., :2] += COCO_KEYPOINT_SHIFT
        joints[visibility == 0] = 0.0  # unlabelled joints carry no position (COCO writes 0, 0, 0 but not always)
        return {"keypoints": joints}
