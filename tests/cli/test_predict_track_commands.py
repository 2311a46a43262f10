"""`centernet predict` and `centernet track` as a newcomer meets them: quick help with the everyday
options first, hints when a threshold lets nothing through, a detection-only model that tracks at
the defaults, no boxes from the letterbox padding, video stride / frame limit / streams, class
selection, both label-file conventions, a quiet ONNX path and one-line errors that leave nothing
behind."""

from __future__ import annotations

import functools
import http.server
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from tiny_models import tiny_centernet

from centernet_lightning.inference import Predictor, open_source
from centernet_lightning.inference.track import track_source
from centernet_lightning.tasks import save_checkpoint
from centernet_lightning.tracking import Tracker

SIZE = 64
CLASS_NAMES = ["cat", "dog", "bird"]
CATEGORY_IDS = [5, 9, 2]
FRAMES, HEIGHT, WIDTH = 6, 48, 96  # a non-square video: the letterbox pads above and below
TRACEBACK = "Traceback (most recent call last)"


def tiny_checkpoint(path: Path) -> Path:
    """A detection-only CenterNet with random weights: its scores are low (about 0.1) everywhere."""
    return save_checkpoint(tiny_centernet(CLASS_NAMES, SIZE, CATEGORY_IDS), path)


def frame(index: int) -> np.ndarray:
    """A uint8 RGB frame: a grey gradient with a bright square moving right."""
    image = np.tile(np.linspace(40, 160, WIDTH, dtype=np.uint8)[None, :, None], (HEIGHT, 1, 3))
    image[14:34, 10 + 8 * index : 30 + 8 * index] = (230, 60, 60)
    return np.ascontiguousarray(image)


def write_video(path: Path) -> Path:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (WIDTH, HEIGHT))
    for index in range(FRAMES):
        writer.write(cv2.cvtColor(frame(index), cv2.COLOR_RGB2BGR))
    writer.release()
    return path


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder holding tiny.ckpt, wide.avi (non-square) and one image."""
    work = tmp_path_factory.mktemp("commands")
    tiny_checkpoint(work / "tiny.ckpt")
    write_video(work / "wide.avi")
    cv2.imwrite(str(work / "wide.png"), cv2.cvtColor(frame(0), cv2.COLOR_RGB2BGR))
    return work


def centernet(*args: str, cwd: Path, tmpdir: Path | None = None, timeout: int = 300) -> subprocess.CompletedProcess:
    """``centernet ARGS`` in a fresh process on the CPU; ``tmpdir``: its temporary folder."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": "", "PYTHONUNBUFFERED": "1"}
    if tmpdir is not None:
        env["TMPDIR"] = str(tmpdir)
    command = [sys.executable, "-m", "centernet_lightning.cli", *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=timeout, env=env)


def on_the_video(work: Path) -> list[str]:
    return ["--model", str(work / "tiny.ckpt"), "--source", str(work / "wide.avi")]


def succeeded(result: subprocess.CompletedProcess) -> subprocess.CompletedProcess:
    assert result.returncode == 0, f"exit {result.returncode}\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}"
    return result


# ---------------------------------------------------------------------------------------- help


def test_option_tables_written_out_for_parsing_match_the_library() -> None:
    """The CLI spells out --backend, --save-txt and --format choices so that parsing imports no torch."""
    from centernet_lightning.cli.export import EXPORT_FORMATS
    from centernet_lightning.cli.predict import BACKEND_CHOICES, TXT_LABEL_CHOICES
    from centernet_lightning.deploy.export import SUFFIXES
    from centernet_lightning.inference.backends import BACKENDS
    from centernet_lightning.inference.outputs import TXT_LABELS

    assert BACKEND_CHOICES == BACKENDS
    assert TXT_LABEL_CHOICES == TXT_LABELS
    assert set(EXPORT_FORMATS) == set(SUFFIXES)
    from centernet_lightning.cli.predict import DEFAULT_CALIBRATION_IMAGES
    from centernet_lightning.deploy import quantize

    assert DEFAULT_CALIBRATION_IMAGES == quantize.DEFAULT_CALIBRATION_IMAGES


@pytest.mark.slow
def test_predict_help_is_quick_and_lists_the_everyday_options_first(tmp_path: Path) -> None:
    start = time.perf_counter()
    result = succeeded(centernet("predict", "--help", cwd=tmp_path))
    assert time.perf_counter() - start <= 3.0
    text = result.stdout
    options = text[text.index("options:") :]
    everyday = ["--model", "--source", "--conf", "--classes", "--backend", "--imgsz"]
    positions = [options.index(f"  {option} ") for option in everyday]
    assert positions == sorted(positions) and positions[-1] < options.index("--project")
    assert "--vid-stride" in options and "--max-frames" in options and "--save-txt [{yolo,coco}]" in options
    assert "centernet predict --config CONFIG" in " ".join(text.split())  # the Lightning form is named


# ---------------------------------------------------------------------------------------- predictor and tracker


def test_detections_centred_in_the_letterbox_padding_become_padding() -> None:
    """A 64 x 128 (h x w) image letterboxed to 128 has 32 rows of padding above and below: peaks
    there (and boxes without area) are dropped before they reach original pixels."""
    bboxes = torch.tensor(
        [
            [
                [0.0, 4.0, 20.0, 16.0],  # centre y = 10: in the top padding
                [10.0, 40.0, 50.0, 80.0],  # in the image
                [60.0, 30.0, 60.0, 50.0],  # no width
                [70.0, 100.0, 90.0, 124.0],  # centre y = 112: in the bottom padding
                [20.0, 60.0, 40.0, 90.0],  # in the image
            ]
        ]
    )
    detections = {
        "bboxes": bboxes,
        "scores": torch.tensor([[0.9, 0.8, 0.7, 0.6, 0.5]]),
        "labels": torch.tensor([[0, 1, 2, 0, 1]]),
    }
    letterbox = torch.tensor([[1.0, 0.0, 32.0]])  # scale, pad_x, pad_y
    mapped = Predictor.to_original_pixels(detections, letterbox, torch.tensor([[64, 128]]))
    assert mapped["labels"].tolist() == [[1, 1, -1, -1, -1]]
    assert mapped["scores"][0].tolist() == pytest.approx([0.8, 0.5, 0, 0, 0])
    kept = mapped["bboxes"][0, :2]
    torch.testing.assert_close(kept, torch.tensor([[10.0, 8.0, 50.0, 48.0], [20.0, 28.0, 40.0, 58.0]]))


def test_tracker_thresholds_relative_to_the_peak_score_start_tracks_of_a_low_scoring_detector() -> None:
    boxes = np.array([[10.0, 10.0, 30.0, 40.0], [50.0, 10.0, 70.0, 40.0]])
    scores = np.array([0.2, 0.03])
    absolute, relative = Tracker(), Tracker(relative_thresholds=True)
    for step in range(3):
        moved = boxes + [2 * step, 0, 2 * step, 0]
        assert len(absolute.update(moved, scores)["ids"]) == 0  # FairMOT's 0.4 / 0.5 pass nothing
        found = relative.update(moved, scores)
        assert found["ids"].tolist() == [1]  # 0.2 is the peak; 0.03 is below 0.1 of it
    assert relative.peak_score == pytest.approx(0.2)
    assert relative.score_thresholds()["new_track_thresh"] == pytest.approx(0.1)


def test_a_model_without_re_id_head_tracks_with_relative_thresholds_unless_they_are_set(work: Path) -> None:
    from centernet_lightning.deploy import load_predictor

    predictor = load_predictor(work / "tiny.ckpt", device="cpu")
    assert predictor.build_tracker().relative_thresholds
    assert not predictor.build_tracker(high_thresh=0.3).relative_thresholds  # the user's thresholds as given


def test_classes_by_name_or_index_and_an_unknown_one_named(work: Path) -> None:
    from centernet_lightning.deploy import load_predictor

    everything = load_predictor(work / "tiny.ckpt", device="cpu").predict([frame(0)])
    assert {1, 2} <= set(everything["labels"][0].tolist())  # random weights: peaks of dogs and birds
    birds = load_predictor(work / "tiny.ckpt", device="cpu", classes=["bird"]).predict([frame(0)])
    dogs = load_predictor(work / "tiny.ckpt", device="cpu", classes=[1]).predict([frame(0)])
    assert set(birds["labels"][0].tolist()) == {2, -1} and set(dogs["labels"][0].tolist()) == {1, -1}
    labels = birds["labels"][0]
    real = labels >= 0
    assert not (real[1:] & ~real[:-1]).any()  # kept entries first, padding after
    assert (np.diff(birds["scores"][0][real]) <= 0).all()
    with pytest.raises(ValueError, match=r"'zebra'.*0 cat, 1 dog, 2 bird"):
        load_predictor(work / "tiny.ckpt", device="cpu", classes=["zebra"])


# ---------------------------------------------------------------------------------------- sources


def test_vid_stride_and_max_frames_on_a_video_and_a_folder(work: Path, tmp_path: Path) -> None:
    video = open_source(work / "wide.avi", vid_stride=2)
    assert [f.index for f in video] == [0, 2, 4] and len(video) == 3 and video.fps == pytest.approx(5.0)
    limited = open_source(work / "wide.avi", vid_stride=2, max_frames=2)
    assert [f.index for f in limited] == [0, 2] and len(limited) == 2
    for index in range(5):
        cv2.imwrite(str(tmp_path / f"{index:03d}.png"), frame(index))
    folder = open_source(tmp_path, vid_stride=3, max_frames=5)
    assert [f.index for f in folder] == [0, 3] and len(folder) == 2
    with pytest.raises(ValueError, match="--vid-stride"):
        open_source(tmp_path, vid_stride=0)


@pytest.fixture
def served(work: Path) -> Iterator[str]:
    """``http://127.0.0.1:PORT/`` serving ``work`` from a thread of this process (loopback only)."""

    class Quiet(http.server.SimpleHTTPRequestHandler):
        def log_message(self, *args: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(work)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        thread.join()


@pytest.mark.slow
def test_predict_reads_an_http_stream_with_stride_and_frame_limit(work: Path, served: str, tmp_path: Path) -> None:
    url = served + "wide.avi"
    try:
        stream = open_source(url)
    except OSError as error:
        pytest.skip(f"this OpenCV's FFmpeg reads no http:// streams: {error}")
    assert stream.kind == "stream" and stream.stem == "wide" and len(list(stream)) == FRAMES
    options = ["--vid-stride", "2", "--max-frames", "2", "--conf", "0"]
    model = str(work / "tiny.ckpt")
    result = succeeded(centernet("predict", "--model", model, "--source", url, *options, cwd=tmp_path))
    assert "2 frames in" in result.stdout
    run = tmp_path / "runs" / "predict"
    assert {entry["image_id"] for entry in json.loads((run / "predictions.json").read_text())} == {0, 2}
    assert int(cv2.VideoCapture(str(run / "wide.mp4")).get(cv2.CAP_PROP_FRAME_COUNT)) == 2


@pytest.mark.slow
def test_an_unopenable_stream_is_one_quick_line(tmp_path: Path) -> None:
    start = time.perf_counter()
    result = centernet("predict", "--model", "any.ckpt", "--source", "rtsp://127.0.0.1:9/x", cwd=tmp_path)
    assert time.perf_counter() - start < 30
    assert result.returncode != 0 and TRACEBACK not in result.stderr
    assert result.stderr.strip().splitlines() == [
        "centernet predict: Cannot open the stream rtsp://127.0.0.1:9/x (unreachable, refused, or a format "
        "OpenCV's FFmpeg cannot read)"
    ]
    assert not (tmp_path / "runs").exists()


# ---------------------------------------------------------------------------------------- runs


@pytest.mark.slow
def test_track_at_the_defaults_on_a_non_square_video(work: Path, tmp_path: Path) -> None:
    """A detection-only model whose scores are all about 0.1 starts tracks at the default settings,
    and no peak in the letterbox padding reaches the tracker as a zero-height box."""
    result = succeeded(centernet("track", *on_the_video(work), "--no-draw", cwd=tmp_path))
    assert "without positive width and height" not in result.stderr
    assert " 0 tracks" not in result.stdout
    rows = np.loadtxt(tmp_path / "runs" / "track" / "wide.txt", delimiter=",", ndmin=2)
    assert len(rows) > 0 and (rows[:, 4] > 0).all() and (rows[:, 5] > 0).all()  # width, height


@pytest.mark.slow
def test_track_that_finds_nothing_says_which_thresholds_to_lower(work: Path, tmp_path: Path) -> None:
    options = ["--no-draw", "--classes", "bird", "--tracker", "high_thresh=0.6"]
    result = succeeded(centernet("track", *on_the_video(work), *options, cwd=tmp_path))
    line = result.stdout.strip().splitlines()[-1]
    assert " 0 tracks (the highest detection score was 0.1" in line
    assert "--tracker high_thresh=" in line and "new_track_thresh=" in line and "low_thresh=" in line


@pytest.mark.slow
def test_predict_classes_stride_and_label_files_in_both_conventions(work: Path, tmp_path: Path) -> None:
    args = ["predict", *on_the_video(work), "--conf", "0"]
    result = succeeded(centernet(*args, "--classes", "dog", "--vid-stride", "2", "--save-txt", "coco", cwd=tmp_path))
    assert "3 frames in" in result.stdout
    run = tmp_path / "runs" / "predict"
    entries = json.loads((run / "predictions.json").read_text())
    assert entries and {e["category_id"] for e in entries} == {9} and {e["image_id"] for e in entries} == {0, 2, 4}
    assert all(e["bbox"][2] > 0 and e["bbox"][3] > 0 for e in entries)  # nothing from the padding
    columns = [line.split()[0] for path in (run / "labels").iterdir() for line in path.read_text().splitlines()]
    assert len(columns) == len(entries) and set(columns) == {"9"}  # the JSON's category id
    succeeded(centernet(*args, "--classes", "1", "--max-frames", "1", "--save-txt", cwd=tmp_path))
    yolo = (tmp_path / "runs" / "predict2" / "labels" / "wide_0.txt").read_text().splitlines()
    assert yolo and {line.split()[0] for line in yolo} == {"1"}  # YOLO's 0-based class index


@pytest.mark.slow
def test_predict_that_keeps_nothing_names_the_best_score_and_the_onnx_path_is_quiet(work: Path, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    options = ["--model", str(work / "tiny.ckpt"), "--source", str(work / "wide.png"), "--backend", "onnxruntime"]
    result = succeeded(centernet("predict", *options, "--no-draw", cwd=tmp_path))
    assert "0 detections >= 0.25 (the highest score was 0.1" in result.stdout and "--conf 0.1" in result.stdout
    assert "INFO onnx" not in result.stderr and "onnxscript" not in result.stderr, result.stderr[-2000:]


@pytest.mark.slow
@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["track", "--imgsz", "100"], "centernet track: --imgsz 100: The input size must be a positive multiple of 32"),
        (["track", "--batch", "0"], "centernet track: --batch must be >= 1, got 0"),
        (["predict", "--imgsz", "100"], "centernet predict: --imgsz 100: The input size must be a positive multiple"),
        (["predict", "--classes", "zebra"], "centernet predict: --classes: the model has no class 'zebra'"),
        (["convert-weights", "missing.pth", "--config", "x.yaml", "--out", "x.ckpt"], "missing.pth"),
    ],
    ids=["track-imgsz", "track-batch", "predict-imgsz", "predict-classes", "convert-missing"],
)
def test_errors_are_one_line_and_leave_nothing_behind(args: list[str], message: str, work: Path, tmp_path: Path):
    if args[0] != "convert-weights":
        args = [*args, *on_the_video(work)]
    temporary = tmp_path / "tmp"
    temporary.mkdir()
    result = centernet(*args, cwd=tmp_path, tmpdir=temporary)
    assert result.returncode != 0 and TRACEBACK not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], result.stderr[-2000:]
    assert not (tmp_path / "runs").exists() and not list(temporary.iterdir())


def test_a_run_that_fails_before_writing_leaves_no_folder(tmp_path: Path) -> None:
    from centernet_lightning.inference import run_folder

    with pytest.raises(OSError), run_folder(tmp_path, "predict") as run_dir:
        (run_dir / "labels").mkdir()  # made at the start, still empty
        raise OSError("the stream dropped")
    assert not (tmp_path / "predict").exists()
    with pytest.raises(SystemExit), run_folder(tmp_path, "predict") as run_dir:
        (run_dir / "predictions.json").write_text("[]")
        sys.exit("failed after writing")
    assert (tmp_path / "predict" / "predictions.json").is_file()  # results written before a failure are kept


@pytest.mark.slow
def test_a_keypoint_model_predicts_draws_and_tracks_joints(work: Path, tmp_path: Path) -> None:
    """predictions.json carries COCO keypoint results in original pixels; the drawn image and the
    tracked video come out; the Python tracker output carries each track's joints."""
    torch.manual_seed(0)
    layout = {"names": ["head", "left_hand", "right_hand"], "skeleton": [[0, 1], [0, 2]]}
    model = tiny_centernet(CLASS_NAMES, SIZE, CATEGORY_IDS)
    keypoint_model = type(model)(
        num_classes=3,
        backbone={"name": "resnet18", "pretrained": False},
        neck={"name": "simple", "upsample_channels": [16] * 3},
        head_width=8,
        heads={"box_2d": {}, "keypoint_offsets": {}, "keypoint_heatmap": {}},  # box_2d: boxes have area untrained
        keypoint_layout=layout,
        class_names=CLASS_NAMES,
    ).eval()
    keypoint_model.inference_spec = type(model.inference_spec)(
        input_size=SIZE, class_names=CLASS_NAMES, category_ids=CATEGORY_IDS, keypoints=layout
    )
    checkpoint = save_checkpoint(keypoint_model, tmp_path / "pose.ckpt")
    image = ["--model", str(checkpoint), "--source", str(work / "wide.png"), "--conf", "0"]
    succeeded(centernet("predict", *image, cwd=tmp_path))
    run = tmp_path / "runs" / "predict"
    entries = json.loads((run / "predictions.json").read_text())
    assert entries and all(len(entry["keypoints"]) == 9 for entry in entries)
    joints = np.array([entry["keypoints"] for entry in entries]).reshape(-1, 3, 3)
    # COCO's pixel indices of joints clipped to the image: [-0.5, side - 0.5]
    assert (joints[..., :2] >= -0.5).all() and (joints[..., 0] <= WIDTH - 0.5).all()
    assert (joints[..., 1] <= HEIGHT - 0.5).all()
    assert (run / "wide.png").is_file()

    predictor = keypoint_model.predictor(score_threshold=0.0)
    tracked = list(track_source(predictor, open_source(work / "wide.avi"), Tracker(relative_thresholds=True)))
    assert tracked and all(tracks["keypoints"].shape == (len(tracks["ids"]), 3, 3) for _, tracks in tracked)
    video = succeeded(centernet("track", "--model", str(checkpoint), "--source", str(work / "wide.avi"), cwd=tmp_path))
    assert "Traceback" not in video.stderr
