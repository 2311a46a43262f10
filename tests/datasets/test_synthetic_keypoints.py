"""The synthetic stick-people dataset: files, COCO keypoints json, joints, visibility, views, command."""

from __future__ import annotations

import contextlib
import io
import json
import math
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

from centernet_lightning.datasets.synthetic import _background
from centernet_lightning.datasets.synthetic_keypoints import (
    _FACE,
    _FACE_MARK,
    _HEAD,
    DrawnPerson,
    _camera_rotation,
    _draw_person,
    _render_image,
    _sample_body,
    generate_synthetic_keypoints,
)

# COCO's person category, written out here so that the test does not read the module's copy.
COCO_KEYPOINTS = [
    "nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder", "left_elbow",
    "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee", "right_knee", "left_ankle",
    "right_ankle",
]  # fmt: skip
COCO_SKELETON = [
    [16, 14], [14, 12], [17, 15], [15, 13], [12, 13], [6, 12], [7, 13], [6, 7], [6, 8], [7, 9], [8, 10], [9, 11],
    [2, 3], [1, 2], [1, 3], [2, 4], [3, 5], [4, 6], [5, 7],
]  # fmt: skip
CENTERNET = [sys.executable, "-m", "centernet_lightning.cli"]


def all_files(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def render_many(count: int, image_size: int = 128, seed: int = 7) -> list[tuple[np.ndarray, list[DrawnPerson]]]:
    return [
        _render_image(np.random.default_rng([seed, index]), image_size, (0.25, 0.9), (1, 3)) for index in range(count)
    ]


@pytest.fixture(scope="module")
def dataset(tmp_path_factory) -> Path:
    return generate_synthetic_keypoints(tmp_path_factory.mktemp("kp") / "data", num_train=30, num_val=6, image_size=128)


def test_same_seed_gives_identical_files(tmp_path):
    first = generate_synthetic_keypoints(tmp_path / "a", num_train=4, num_val=2, image_size=96, seed=3)
    second = generate_synthetic_keypoints(tmp_path / "b", num_train=4, num_val=2, image_size=96, seed=3)
    other = generate_synthetic_keypoints(tmp_path / "c", num_train=4, num_val=2, image_size=96, seed=4)
    files = all_files(first)
    assert len(files) == 4 + 2 + 2
    assert files == all_files(second)
    assert (
        files["annotations/person_keypoints_train.json"] != all_files(other)["annotations/person_keypoints_train.json"]
    )


def test_json_is_coco_keypoints(dataset):
    for split, count in (("train", 30), ("val", 6)):
        data = json.loads((dataset / "annotations" / f"person_keypoints_{split}.json").read_text())
        (category,) = data["categories"]
        assert category["id"] == 1 and category["name"] == "person" and category["supercategory"] == "person"
        assert category["keypoints"] == COCO_KEYPOINTS and category["skeleton"] == COCO_SKELETON
        assert len(data["images"]) == count
        for image in data["images"]:
            assert (dataset / "images" / split / image["file_name"]).is_file()
            assert image["width"] == image["height"] == 128
        assert len({a["id"] for a in data["annotations"]}) == len(data["annotations"]) >= count
        for annotation in data["annotations"]:
            assert annotation["category_id"] == 1 and annotation["iscrowd"] == 0
            keypoints = np.asarray(annotation["keypoints"], dtype=np.float64).reshape(-1, 3)
            assert keypoints.shape == (17, 3) and set(keypoints[:, 2]) <= {0, 1, 2}
            assert annotation["num_keypoints"] == np.count_nonzero(keypoints[:, 2])
            assert (keypoints[keypoints[:, 2] == 0, :2] == 0).all()  # unlabelled joints at (0, 0)
            x, y, width, height = annotation["bbox"]
            assert 0 <= x and 0 <= y and width > 0 and height > 0 and x + width <= 128 and y + height <= 128
            labelled = keypoints[keypoints[:, 2] > 0] + [0.5, 0.5, 0]  # COCO's pixel indices -> the boxes' frame
            assert (labelled[:, 0] >= x).all() and (labelled[:, 0] <= x + width).all()
            assert (labelled[:, 1] >= y).all() and (labelled[:, 1] <= y + height).all()
            assert 0 < annotation["area"] <= width * height


def test_gt_as_detections_scores_ap_1_with_cocoeval(dataset):
    """pycocotools reads the file and OKS of the ground truth with itself is 1 (areas, visibility sane)."""
    pytest.importorskip("pycocotools")
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):
        truth = COCO(str(dataset / "annotations" / "person_keypoints_train.json"))
        found = [
            {"image_id": a["image_id"], "category_id": 1, "keypoints": a["keypoints"], "score": 1.0}
            for a in truth.dataset["annotations"]
        ]
        evaluation = COCOeval(truth, truth.loadRes(found), "keypoints")
        evaluation.evaluate()
        evaluation.accumulate()
        evaluation.summarize()
    assert evaluation.stats[0] == pytest.approx(1.0)


def test_people_are_cut_hidden_and_of_plausible_size():
    """Over a few dozen images some joints are hidden (v = 1) and some outside (v = 0); most show."""
    people = [person for _, drawn in render_many(40) for person in drawn]
    assert 40 <= len(people) <= 120
    visibility = np.concatenate([person.keypoints[:, 2] for person in people])
    assert 0.02 < np.mean(visibility == 0) < 0.25
    assert 0.08 < np.mean(visibility == 1) < 0.4
    assert np.mean(visibility == 2) > 0.5
    # Heights of 25-90 % of the side; the drawn pixels fill a fair part of the box (OKS divides by the area).
    boxes = np.stack([person.box for person in people])
    tall = (boxes[:, 3] - boxes[:, 1]) / 128
    assert tall.min() < 0.4 and tall.max() > 0.7
    fill = np.array([person.area for person in people]) / np.prod(boxes[:, 2:] - boxes[:, :2], axis=1)
    assert 0.15 < np.median(fill) < 0.7


def test_visible_joints_are_drawn():
    """The pixel of a visible joint differs from the background drawn there before any person.

    ``_background`` is the first draw of an image's RNG, so the same seed redraws it. A face mark on
    a background of its colour, or clutter on top, can match it: the check is on the rate.
    """
    differs = []
    for index in range(30):
        image, people = _render_image(np.random.default_rng([7, index]), 128, (0.25, 0.9), (1, 3))
        background = _background(np.random.default_rng([7, index]), 128)
        for person in people:
            visible = person.keypoints[person.keypoints[:, 2] == 2]
            xs, ys = np.floor(visible[:, :2]).astype(int).T
            gap = np.linalg.norm(image[ys, xs].astype(np.float32) - background[ys, xs], axis=1)
            differs += (gap > 30).tolist()
    assert len(differs) > 300
    assert np.mean(differs) > 0.9


@pytest.mark.parametrize("yaw", [0.0, math.pi])
def test_left_and_right_follow_the_view(yaw):
    """Facing the camera the person's left is on the image right and the face fills most of the head;
    facing away, the left is on the image left, the eyes and nose are hidden and at most an edge of
    the face shows (a turned or bowed head)."""
    rng = np.random.default_rng(11)
    for _ in range(20):
        label = np.zeros((200, 200), dtype=np.uint8)
        joints, facing, _ = _draw_person(
            label, _sample_body(rng), _camera_rotation(yaw, 0.0), 150.0, np.array([100.0, 100.0]), (5, 6)
        )
        left_minus_right = joints[5::2, 0] - joints[6::2, 0]  # shoulders, elbows, wrists, hips, knees, ankles
        face = np.isin(label, [_FACE, _FACE_MARK]).sum() / np.isin(label, [_HEAD, _FACE, _FACE_MARK]).sum()
        if yaw == 0:
            assert left_minus_right[0] > 0 and left_minus_right[3] > 0  # shoulders and hips
            assert facing[:3].all() and face > 0.4
        else:
            assert left_minus_right[0] < 0 and left_minus_right[3] < 0
            assert not facing[:3].any() and face < 0.15


def test_speed():
    start = time.perf_counter()
    render_many(20, image_size=256)
    assert time.perf_counter() - start < 5  # ~10 ms an image on one core


def test_refuses_non_empty_folder_and_rejects_bad_arguments(tmp_path):
    (tmp_path / "mine.txt").write_text("keep me")
    with pytest.raises(FileExistsError, match="not empty"):
        generate_synthetic_keypoints(tmp_path, num_train=1, num_val=1)
    generate_synthetic_keypoints(tmp_path, num_train=1, num_val=1, image_size=64, overwrite=True)
    assert (tmp_path / "mine.txt").read_text() == "keep me"
    with pytest.raises(ValueError, match="min_height"):
        generate_synthetic_keypoints(tmp_path / "x", min_height=0.9, max_height=0.5)
    with pytest.raises(ValueError, match="min_objects"):
        generate_synthetic_keypoints(tmp_path / "y", min_objects=3, max_objects=1)


def test_command_writes_keypoints_and_refuses_num_classes(tmp_path):
    out = tmp_path / "people"
    args = ["data", "synth", "--task", "keypoints", "--out", str(out), "--num-train", "2", "--num-val", "1"]
    done = subprocess.run([*CENTERNET, *args, "--image-size", "64"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "person_keypoints_{train,val}.json" in done.stdout
    train = json.loads((out / "annotations" / "person_keypoints_train.json").read_text())
    assert len(train["images"]) == 2 and train["images"][0]["width"] == 64
    # --num-classes belongs to the shapes; the data command refuses it before importing anything heavy.
    argv = ["synth", "--task", "keypoints", "--out", str(tmp_path / "x"), "--num-classes", "2"]
    program = (
        "import sys\nfrom centernet_lightning.cli.data import data_main\n"
        f"try:\n    data_main({argv!r})\n"
        "except SystemExit as exit:\n    print('EXIT', exit.code)\n"
        "print('HEAVY', sorted(name for name in ('torch', 'cv2') if name in sys.modules))\n"
    )
    refused = subprocess.run([sys.executable, "-c", program], capture_output=True, text=True, timeout=120)
    assert "EXIT 2" in refused.stdout and "HEAVY []" in refused.stdout, refused.stdout + refused.stderr
    assert "--num-classes applies to --task boxes only" in refused.stderr
    assert not (tmp_path / "x").exists()
