"""A corpus of bad inputs to the use side: `predict`, `track`, `export`, `benchmark`, `convert-weights`,
the Predictor and its backends, `load_predictor`, the Tracker, `--tracker` and test-time augmentation.

Every case names what must be refused and how: the error type, and the option or key, the value
and the file the message must contain; from the commands one line, no traceback. A few cases are
inputs that are only warned about: they name what is skipped and what must still be written.
Most cases call the parsers and constructors in this process; three run the command end to end.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import pytest
from tiny_models import tiny_centernet

from centernet_lightning import checks
from centernet_lightning.cli.benchmark import benchmark_main
from centernet_lightning.cli.convert_weights import convert_weights_main
from centernet_lightning.cli.export import MIN_OPSET, export_main
from centernet_lightning.cli.predict import predict_main
from centernet_lightning.cli.track import _tracker_settings, no_tracks_hint, track_main
from centernet_lightning.deploy import benchmark_detector, export_onnx, export_torchscript, load_predictor
from centernet_lightning.inference import NetworkBackend, OnnxRuntimeBackend, Predictor, parse_tta
from centernet_lightning.structures import InferenceSpec
from centernet_lightning.tasks import CenterNet, save_checkpoint
from centernet_lightning.tracking import KalmanFilter, Tracker

SIZE = 64
CLASS_NAMES = ["cat", "dog", "bird"]
TRACEBACK = "Traceback (most recent call last)"


def tiny_model() -> CenterNet:
    return tiny_centernet(CLASS_NAMES, SIZE)


@pytest.fixture(scope="module")
def model() -> CenterNet:
    return tiny_model()


def write_frames(folder: Path, count: int = 3) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for index in range(count):
        image = np.full((48, 64, 3), 90, np.uint8)
        image[10:30, 5 + 8 * index : 25 + 8 * index] = 220
        assert cv2.imwrite(str(folder / f"{index:03d}.png"), image)
    return folder


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory, model: CenterNet) -> dict[str, Path]:
    """tiny.ckpt, a folder of three frames, one image, a text file and ONNX files of every wrong kind."""
    work = tmp_path_factory.mktemp("use_side")
    found = {"ckpt": save_checkpoint(model, work / "tiny.ckpt"), "frames": write_frames(work / "frames")}
    found["image"] = found["frames"] / "000.png"
    found["text"] = work / "notes.txt"
    found["text"].write_text("meeting notes, not a model\n")
    found["text.onnx"] = work / "notes.onnx"
    found["text.onnx"].write_text("meeting notes, not a model\n")
    found["empty.onnx"] = work / "empty.onnx"
    found["empty.onnx"].write_bytes(b"")
    found["ckpt.onnx"] = work / "checkpoint.onnx"
    found["ckpt.onnx"].write_bytes(found["ckpt"].read_bytes()[:200_000])
    metadata = json.dumps({"stride": 4, "num_classes": 3, "class_names": CLASS_NAMES})
    graphs = {
        "no-metadata": {},
        "wrong-outputs": {"metadata": json.dumps({"num_classes": 3}), "outputs": ("logits",)},
        "missing-outputs": {"metadata": metadata, "outputs": ("scores",)},
        "bad-metadata": {"metadata": "{not json"},
        "free-size": {"metadata": metadata, "input_shape": ("batch", 3, "height", "width")},
        "valid": {"metadata": metadata},
    }
    for name, options in graphs.items():
        found[name] = onnx_graph(work / f"{name}.onnx", **options)
    found["truncated.onnx"] = work / "truncated.onnx"
    found["truncated.onnx"].write_bytes(found["valid"].read_bytes()[:-40])
    return found


def onnx_graph(
    path: Path,
    metadata: str | None = None,
    outputs: tuple[str, ...] = ("boxes", "scores", "labels"),
    input_shape: tuple[Any, ...] = (1, 3, SIZE, SIZE),
) -> Path:
    """A small ONNX graph with constant outputs: the names and metadata of an export, or not."""
    onnx = pytest.importorskip("onnx")
    helper, proto = onnx.helper, onnx.TensorProto
    shapes = {"boxes": ([1, 5, 4], proto.FLOAT), "scores": ([1, 5], proto.FLOAT), "labels": ([1, 5], proto.INT64)}
    nodes, values = [], []
    for name in outputs:
        shape, dtype = shapes.get(name, ([1, 7], proto.FLOAT))
        count = int(np.prod(shape))
        tensor = helper.make_tensor(f"{name}_value", dtype, shape, [0] * count)
        nodes.append(helper.make_node("Constant", [], [name], value=tensor))
        values.append(helper.make_tensor_value_info(name, dtype, shape))
    images = helper.make_tensor_value_info("images", proto.FLOAT, list(input_shape))
    graph = helper.make_graph(nodes, "not_centernet", [images], values)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    if metadata is not None:
        helper.set_model_props(model, {"centernet": metadata})
    onnx.save(model, str(path))
    return path


def run_main(main: Callable[[list[str]], None], argv: list[str], capsys) -> str:
    """The one line a command that must fail printed (argparse's errors) or exited with."""
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    code = exit_info.value.code
    message = code if isinstance(code, str) else capsys.readouterr().err
    assert code != 0 and TRACEBACK not in message
    lines = message.strip().splitlines()
    assert len(lines) == 1, message
    return lines[0]


# ------------------------------------------------------------------------------ command options
# Refused while parsing, before a model or a source is opened: no file needs to exist.
MODEL_SOURCE = ["--model", "missing.ckpt", "--source", "missing.png"]
OPTION_ERRORS = {
    "predict imgsz huge": (predict_main, ["--imgsz", "65536"], "--imgsz must be in [32, 8192], got 65536"),
    "predict imgsz 0": (predict_main, ["--imgsz", "0"], "--imgsz must be in [32, 8192], got 0"),
    "predict imgsz text": (predict_main, ["--imgsz", "big"], "--imgsz must be an integer, got 'big'"),
    "predict max-det negative": (predict_main, ["--max-det", "-3"], "--max-det must be >= 1, got -3"),
    "predict max-det 0": (predict_main, ["--max-det", "0"], "--max-det must be >= 1, got 0"),
    "predict conf negative": (predict_main, ["--conf", "-0.5"], "--conf must be in [0, 1], got -0.5"),
    "predict conf above 1": (predict_main, ["--conf", "1.5"], "--conf must be in [0, 1], got 1.5"),
    "predict conf nan": (predict_main, ["--conf", "nan"], "--conf must be in [0, 1], got nan"),
    "predict conf text": (predict_main, ["--conf", "abc"], "--conf must be a number, got 'abc'"),
    "predict batch 0": (predict_main, ["--batch", "0"], "--batch must be >= 1, got 0"),
    "predict batch float": (predict_main, ["--batch", "2.5"], "--batch must be an integer, got '2.5'"),
    "predict vid-stride 0": (predict_main, ["--vid-stride", "0"], "--vid-stride must be >= 1, got 0"),
    "predict max-frames -1": (predict_main, ["--max-frames", "-1"], "--max-frames must be >= 1, got -1"),
    "track fps 0": (track_main, ["--fps", "0"], "--fps must be > 0, got 0"),
    "track fps negative": (track_main, ["--fps", "-25"], "--fps must be > 0, got -25"),
    "track imgsz huge": (track_main, ["--imgsz", "99999"], "--imgsz must be in [32, 8192], got 99999"),
    "track batch 0": (track_main, ["--batch", "0"], "--batch must be >= 1, got 0"),
}


@pytest.mark.parametrize("case", OPTION_ERRORS, ids=list(OPTION_ERRORS))
def test_bad_run_options_are_one_line_naming_option_and_value(case: str, capsys, tmp_path: Path) -> None:
    main, options, message = OPTION_ERRORS[case]
    command = "predict" if main is predict_main else "track"
    line = run_main(main, [*MODEL_SOURCE, *options, "--project", str(tmp_path / "runs")], capsys)
    assert line.startswith(f"centernet {command}: {message}"), line
    assert not (tmp_path / "runs").exists()


EXPORT_ERRORS = {
    "torchscript batch 0": (["--format", "torchscript", "--batch", "0"], "--batch must be >= 1, got 0"),
    "onnx batch 0": (["--batch", "0"], "--batch must be >= 1, got 0"),
    "max-det 0": (["--max-det", "0"], "--max-det must be >= 1, got 0"),
    "max-det negative": (["--max-det", "-3"], "--max-det must be >= 1, got -3"),
    "imgsz too large": (["--imgsz", "64", "99999"], "--imgsz must be in [32, 8192], got 99999"),
    "imgsz three sides": (["--imgsz", "64", "64", "64"], "--imgsz takes one side, or height and width, got 64 64 64"),
    "opset too old": (["--opset", "12"], f"--opset must be >= {MIN_OPSET}, got 12"),
}


@pytest.mark.parametrize("case", EXPORT_ERRORS, ids=list(EXPORT_ERRORS))
def test_bad_export_options_are_one_line(case: str, capsys) -> None:
    options, message = EXPORT_ERRORS[case]
    line = run_main(export_main, ["--ckpt_path", "missing.ckpt", *options], capsys)
    assert line.startswith(f"centernet export: {message}"), line


BENCHMARK_ERRORS = {
    "batch 0": (["--batch", "1,0"], "--batch must be >= 1, got 0"),
    "batch text": (["--batch", "1,x"], "--batch must be an integer, got 'x'"),
    "warmup negative": (["--warmup", "-1"], "--warmup must be >= 0, got -1"),
    "iterations 0": (["--iterations", "0"], "--iterations must be >= 1, got 0"),
    "imgsz huge": (["--imgsz", "65536"], "--imgsz must be in [32, 8192], got 65536"),
    "max-det 0": (["--max-det", "0"], "--max-det must be >= 1, got 0"),
    "num-classes 0": (["--num-classes", "0"], "--num-classes must be >= 1, got 0"),
    "compile mode": (["--compile-mode", "fastest"], "--compile-mode must be one of default,"),
}


@pytest.mark.parametrize("case", BENCHMARK_ERRORS, ids=list(BENCHMARK_ERRORS))
def test_bad_benchmark_options_are_one_line(case: str, capsys) -> None:
    options, message = BENCHMARK_ERRORS[case]
    line = run_main(benchmark_main, ["--config", "unused.yaml", "--device", "cpu", *options], capsys)
    assert line.startswith(f"centernet benchmark: {message}"), line


def test_option_bounds_written_out_for_parsing_match_the_library() -> None:
    from centernet_lightning.deploy import export

    assert MIN_OPSET == export.MIN_OPSET


# ------------------------------------------------------------------------------ --tracker KEY=VALUE
TRACKER_OPTION_ERRORS = {
    "not a number": (["high_thresh=abc"], "--tracker high_thresh must be a number, got 'abc'"),
    "empty value": (["low_thresh="], "--tracker low_thresh must be a number, got ''"),
    "not an integer": (["track_buffer=1.5"], "--tracker track_buffer must be an integer, got '1.5'"),
    "not a bool": (["fuse_score=maybe"], "--tracker fuse_score must be true or false, got 'maybe'"),
    "unknown key": (["hig_thresh=0.5"], "--tracker: unknown key 'hig_thresh' (did you mean 'high_thresh'?)"),
    "no equals sign": (["high_thresh"], "--tracker takes KEY=VALUE pairs, got 'high_thresh'"),
    "no equals sign after a preset": (["botsort", "high_thresh"], "--tracker takes KEY=VALUE pairs, got 'high_thresh'"),
    "unknown preset": (["deepsort"], "unknown tracker preset 'deepsort'; presets: default, bytetrack, fairmot"),
    "frame rate": (["frame_rate=25"], "--tracker frame_rate: set the frame rate with --fps"),
    "an object": (["kalman_filter=xywh"], "--tracker kalman_filter cannot be set from text"),
}


@pytest.mark.parametrize("case", TRACKER_OPTION_ERRORS, ids=list(TRACKER_OPTION_ERRORS))
def test_bad_tracker_settings_name_key_and_value(case: str) -> None:
    pairs, message = TRACKER_OPTION_ERRORS[case]
    with pytest.raises(ValueError) as error:
        _tracker_settings(pairs)
    assert str(error.value).startswith(message), error.value
    if case == "unknown key":
        assert "valid keys: high_thresh, low_thresh, new_track_thresh" in str(error.value)


def test_no_tracks_hint_names_the_threshold_that_stops_the_tracks() -> None:
    thresholds = {"high_thresh": 0.99, "new_track_thresh": 0.4, "low_thresh": 0.1}
    hint = no_tracks_hint(0.824, thresholds, None)  # above new_track_thresh but not above high_thresh
    assert "below the tracker's high_thresh 0.99" in hint and "--tracker high_thresh=" in hint
    hint = no_tracks_hint(0.3, {**thresholds, "high_thresh": 0.2}, None)
    assert "below the tracker's new_track_thresh 0.4" in hint
    assert "passes the thresholds" in no_tracks_hint(0.5, {**thresholds, "high_thresh": 0.2}, None)


def test_tracker_settings_are_read_as_the_tracker_takes_them() -> None:
    pairs = ["high_thresh=0.5", "track_buffer=60", "kalman_state=xywh", "new_track_thresh=null", "fuse_score=false"]
    settings = _tracker_settings(pairs)
    assert settings == {
        "high_thresh": 0.5,
        "track_buffer": 60,
        "kalman_state": "xywh",
        "new_track_thresh": None,
        "fuse_score": False,
    }
    assert type(settings["track_buffer"]) is int and Tracker(**settings).max_time_lost == 60
    # a preset first, then pairs over it
    assert _tracker_settings(["botsort", "track_buffer=60"])["camera_motion"] == "sparse_flow"
    assert _tracker_settings(["fairmot", "dynamic_appearance=true"])["dynamic_appearance"] is True


def test_track_with_a_tracker_value_of_the_wrong_type_is_one_line(files: dict[str, Path], capsys, tmp_path) -> None:
    argv = ["--model", str(files["ckpt"]), "--source", str(files["frames"]), "--tracker", "high_thresh=abc"]
    line = run_main(track_main, [*argv, "--project", str(tmp_path / "runs")], capsys)
    assert line == "centernet track: --tracker high_thresh must be a number, got 'abc'"
    assert not (tmp_path / "runs").exists()


def test_track_with_a_tracker_value_out_of_range_is_one_line(files: dict[str, Path], capsys, tmp_path) -> None:
    argv = ["--model", str(files["ckpt"]), "--source", str(files["frames"]), "--tracker", "high_thresh=1.5"]
    line = run_main(track_main, [*argv, "--project", str(tmp_path / "runs"), "--device", "cpu"], capsys)
    assert line == "centernet track: tracker settings: high_thresh must be in [0, 1], got 1.5"
    assert not (tmp_path / "runs").exists()


# ------------------------------------------------------------------------------ the Tracker
TRACKER_ERRORS = {
    "negative thresholds": (
        {"high_thresh": -0.5, "low_thresh": -1},
        ValueError,
        "high_thresh must be in [0, 1], got -0.5",
    ),
    "low threshold negative": ({"low_thresh": -1}, ValueError, "low_thresh must be in [0, 1], got -1"),
    "threshold text": ({"high_thresh": "abc"}, TypeError, "high_thresh must be a number in [0, 1], got 'abc'"),
    "new track above 1": ({"new_track_thresh": 1.5}, ValueError, "new_track_thresh must be in [0, 1], got 1.5"),
    "iou match above 1": ({"iou_match_thresh": 2}, ValueError, "iou_match_thresh must be in [0, 1], got 2"),
    "motion match negative": ({"motion_match_thresh": -0.1}, ValueError, "motion_match_thresh must be in [0, 1]"),
    "low score match nan": ({"low_score_match_thresh": float("nan")}, ValueError, "low_score_match_thresh must be in"),
    "unconfirmed match": ({"unconfirmed_match_thresh": 1.01}, ValueError, "unconfirmed_match_thresh must be in [0, 1]"),
    "embedding match above 2": ({"embedding_match_thresh": 3}, ValueError, "embedding_match_thresh must be in [0, 2]"),
    "ema alpha": ({"ema_alpha": 1.5}, ValueError, "ema_alpha must be in [0, 1], got 1.5"),
    "appearance weight": ({"appearance_weight": -1}, ValueError, "appearance_weight must be in [0, 1], got -1"),
    "gating 0": ({"gating_threshold": 0}, ValueError, "gating_threshold must be > 0, got 0"),
    "frame rate 0": ({"frame_rate": 0}, ValueError, "frame_rate must be > 0, got 0"),
    "frame rate infinite": ({"frame_rate": float("inf")}, ValueError, "frame_rate must be > 0, got inf"),
    "track buffer negative": ({"track_buffer": -1}, ValueError, "track_buffer must be >= 0, got -1"),
    "track buffer float": ({"track_buffer": 2.5}, TypeError, "track_buffer must be an integer >= 0, got 2.5"),
    "fuse score text": ({"fuse_score": "yes"}, TypeError, "fuse_score must be true or false, got 'yes'"),
    "relative thresholds 1": ({"relative_thresholds": 1}, TypeError, "relative_thresholds must be true or false"),
    "kalman filter text": ({"kalman_filter": "xyah"}, TypeError, "kalman_filter must be a KalmanFilter or None"),
    "unknown setting": ({"hig_thresh": 0.5}, ValueError, "Tracker: unknown key 'hig_thresh' (did you mean"),
}


@pytest.mark.parametrize("case", TRACKER_ERRORS, ids=list(TRACKER_ERRORS))
def test_bad_tracker_arguments_name_setting_and_value(case: str) -> None:
    settings, error_type, message = TRACKER_ERRORS[case]
    with pytest.raises(error_type) as error:
        Tracker(**settings)
    assert str(error.value).startswith(message), error.value


def test_the_edges_of_every_range_are_accepted() -> None:
    tracker = Tracker(high_thresh=1, low_thresh=0, new_track_thresh=0, embedding_match_thresh=2, ema_alpha=0)
    assert tracker.high_thresh == 1 and tracker.new_track_thresh == 0
    assert Tracker(track_buffer=0, kalman_filter=KalmanFilter()).max_time_lost == 0


def test_tracker_warns_of_boxes_without_area_and_still_tracks_the_others(caplog) -> None:
    tracker = Tracker()
    boxes = np.array([[10, 10, 50, 60], [30, 30, 30, 40]], np.float32)  # the second has no width
    with caplog.at_level(logging.WARNING):
        tracks = tracker.update(boxes, np.array([0.9, 0.9]))
    assert any("frame 1: skipping detections [1] without positive width" in r.getMessage() for r in caplog.records)
    assert tracks["detection_indices"].tolist() == [0]


# ------------------------------------------------------------------------------ test-time augmentation
TTA_ERRORS = {
    "scale too large": ("flip,9", ValueError, "tta 'flip,9': tta.scales[0] must be in (0, 4], got 9.0"),
    "scale nan": ("0.5,nan", ValueError, "tta '0.5,nan': tta.scales[1] must be in (0, 4], got nan"),
    "scale zero": ({"scales": [1, 0]}, ValueError, r"tta.scales[1] must be in (0, 4], got 0"),
    "scale text": ({"scales": ["big"]}, TypeError, r"tta.scales[0] must be a number in (0, 4], got 'big'"),
    "nms iou text": ({"nms_iou": "high"}, TypeError, "tta.nms_iou must be a number in (0, 1], got 'high'"),
    "nms iou above 1": ({"nms_iou": 2}, ValueError, "tta.nms_iou must be in (0, 1], got 2"),
    "unknown key": ({"scale": [1.0]}, ValueError, "tta: unknown key 'scale' (did you mean 'scales'?)"),
    "flip not a bool": ({"flip": 1}, TypeError, "tta.flip must be true or false, got 1"),
}


@pytest.mark.parametrize("case", TTA_ERRORS, ids=list(TTA_ERRORS))
def test_bad_tta_specs_name_key_and_value(case: str) -> None:
    value, error_type, message = TTA_ERRORS[case]
    with pytest.raises(error_type) as error:
        parse_tta(value)
    assert str(error.value).startswith(message), error.value
    assert isinstance(error.value, ValueError)  # what a config reader catches


# ------------------------------------------------------------------------------ ONNX files
ONNX_ERRORS = {
    "text file": ("text.onnx", "is not an ONNX model (ONNX Runtime: Protobuf parsing failed.)"),
    "empty file": ("empty.onnx", "is not an ONNX model (the file is empty)"),
    "checkpoint renamed": ("ckpt.onnx", "is not an ONNX model"),
    "truncated export": ("truncated.onnx", "is not an ONNX model"),
    "no metadata": (
        "no-metadata",
        "is an ONNX model but not a CenterNet export (centernet export writes one): it has no 'centernet' metadata",
    ),
    "metadata not JSON": (
        "bad-metadata",
        "not a CenterNet export (centernet export writes one): its 'centernet' metadata is not JSON",
    ),
    "other outputs": ("wrong-outputs", "outputs ['logits'], not detections, and has no metadata to decode them"),
    "missing outputs": ("missing-outputs", "its outputs ['scores'] lack ['boxes', 'labels']"),
    "free input size": ("free-size", "not one image batch of a fixed size"),
}


@pytest.mark.parametrize("case", ONNX_ERRORS, ids=list(ONNX_ERRORS))
def test_a_file_that_is_not_a_centernet_export_is_refused_by_name(case: str, files: dict[str, Path]) -> None:
    pytest.importorskip("onnxruntime")
    name, message = ONNX_ERRORS[case]
    path = files[name]
    for attempt in (
        lambda: OnnxRuntimeBackend(path),
        lambda: Predictor.from_onnx(path),
        lambda: load_predictor(path, "onnxruntime", "cpu"),
    ):
        with pytest.raises(ValueError) as error:
            attempt()
        assert str(path) in str(error.value) and message in str(error.value), error.value


def test_a_small_graph_with_the_export_outputs_and_metadata_is_accepted(files: dict[str, Path]) -> None:
    pytest.importorskip("onnxruntime")
    backend = OnnxRuntimeBackend(files["valid"])
    assert (
        backend.input_size == (SIZE, SIZE) and backend.num_detections == 5 and backend.spec.class_names == CLASS_NAMES
    )
    with pytest.raises(TypeError, match="threads must be an integer >= 1, got 0.5"):
        OnnxRuntimeBackend(files["valid"], threads=0.5)
    with pytest.raises(ValueError, match="threads must be >= 1, got 0"):
        OnnxRuntimeBackend(files["valid"], threads=0)


# ------------------------------------------------------------------------------ load_predictor
LOAD_ERRORS = {
    "max_det 0": ({"max_det": 0}, ValueError, "max_det must be >= 1, got 0"),
    "max_det negative": ({"max_det": -3}, ValueError, "max_det must be >= 1, got -3"),
    "imgsz huge": ({"imgsz": 65536}, ValueError, "imgsz must be in [32, 8192], got 65536"),
    "imgsz float": ({"imgsz": 64.0}, TypeError, "imgsz must be an integer in [32, 8192], got 64.0"),
    "backend": ({"backend": "tflite"}, ValueError, "backend must be one of eager, channels_last, compile"),
    "compile mode": ({"compile_mode": "fastest"}, ValueError, "compile_mode must be one of default,"),
    "tta scale": ({"tta": "flip,9"}, ValueError, "tta 'flip,9': tta.scales[0] must be in (0, 4], got 9.0"),
    "device": ({"device": "gpu"}, ValueError, "device must be auto, cpu, cuda or cuda:N, got 'gpu'"),
}


@pytest.mark.parametrize("case", LOAD_ERRORS, ids=list(LOAD_ERRORS))
def test_bad_load_predictor_options_are_named_before_loading(case: str, tmp_path: Path) -> None:
    options, error_type, message = LOAD_ERRORS[case]
    with pytest.raises(error_type) as error:
        load_predictor(tmp_path / "not_read.ckpt", **{"device": "cpu", **options})  # no FileNotFoundError first
    assert str(error.value).startswith(message), error.value


def test_load_predictor_names_a_file_that_is_not_a_checkpoint(files: dict[str, Path]) -> None:
    with pytest.raises(ValueError) as error:  # the wording is the checkpoint reader's (weights.py)
        load_predictor(files["text"], device="cpu")
    assert str(error.value).startswith(str(files["text"]))


# ------------------------------------------------------------------------------ the Predictor
PREDICTOR_ERRORS = {
    "score negative": ({"score_threshold": -0.5}, ValueError, "score_threshold must be in [0, 1], got -0.5"),
    "score text": ({"score_threshold": "0.3"}, TypeError, "score_threshold must be a number in [0, 1], got '0.3'"),
    "nms iou 0": ({"nms_iou": 0}, ValueError, "nms_iou must be in (0, 1], got 0"),
    "nms iou above 1": ({"nms_iou": 1.5}, ValueError, "nms_iou must be in (0, 1], got 1.5"),
    "classes": ({"classes": ["zebra"]}, ValueError, "--classes: the model has no class 'zebra'"),
}


@pytest.mark.parametrize("case", PREDICTOR_ERRORS, ids=list(PREDICTOR_ERRORS))
def test_bad_predictor_arguments_are_named(case: str, model: CenterNet) -> None:
    options, error_type, message = PREDICTOR_ERRORS[case]
    with pytest.raises(error_type) as error:
        Predictor(NetworkBackend(model.detector, 20), model.inference_spec, **options)
    assert str(error.value).startswith(message), error.value


def test_bad_backend_arguments_are_named(model: CenterNet) -> None:
    with pytest.raises(ValueError, match="num_detections must be >= 1, got 0"):
        NetworkBackend(model.detector, 0)
    with pytest.raises(ValueError, match="compile_mode must be one of"):
        NetworkBackend(model.detector, 20, "compile", compile_mode="fastest")


def test_unknown_tracker_settings_of_a_model_are_named(model: CenterNet) -> None:
    predictor = Predictor(NetworkBackend(model.detector, 20), model.inference_spec, tracker={"hig_thresh": 0.5})
    with pytest.raises(ValueError, match=r"tracker settings: Tracker: unknown key 'hig_thresh' \(did you mean"):
        predictor.build_tracker()


def test_a_batch_that_cannot_fit_is_refused_before_it_is_allocated(model: CenterNet, monkeypatch) -> None:
    monkeypatch.setattr(checks, "available_memory", lambda device: 2 * checks.GIB)
    spec = InferenceSpec(input_size=8192, class_names=CLASS_NAMES)
    predictor = Predictor(NetworkBackend(model.detector, 20), spec)
    monkeypatch.setattr("centernet_lightning.inference.predictor.letterbox_images", pytest.fail)  # never reached
    with pytest.raises(ValueError) as error:
        predictor.predict([np.zeros((10, 10, 3), np.uint8)])
    message = str(error.value)
    assert message.startswith("A batch of 1 image at 8192x8192 px needs at least ") and "2.0 GiB available" in message
    assert "lower the batch size (--batch) or the input size (--imgsz)" in message
    predictor.spec = InferenceSpec(input_size=SIZE)
    predictor.check_batch_memory(8)  # a small batch fits


def test_predict_refuses_a_batch_that_cannot_fit_in_one_line(files: dict[str, Path], capsys, monkeypatch, tmp_path):
    monkeypatch.setattr(checks, "available_memory", lambda device: checks.GIB)
    argv = ["--model", str(files["ckpt"]), "--source", str(files["frames"]), "--device", "cpu"]
    line = run_main(predict_main, [*argv, "--imgsz", "8192", "--batch", "64", "--project", str(tmp_path)], capsys)
    # the folder holds 3 images: a batch of 64 is a batch of 3
    assert line.startswith("centernet predict: A batch of 3 images at 8192x8192 px needs at least"), line
    assert line.endswith("lower the batch size (--batch) or the input size (--imgsz)")
    assert not list(tmp_path.iterdir())


def test_predict_warns_of_an_unreadable_image_and_writes_the_others(files, tmp_path: Path, caplog) -> None:
    folder = write_frames(tmp_path / "photos", 2)
    (folder / "broken.png").write_bytes(b"not a png")
    argv = ["--model", str(files["ckpt"]), "--source", str(folder), "--device", "cpu", "--conf", "0", "--no-draw"]
    with caplog.at_level(logging.WARNING):
        predict_main([*argv, "--project", str(tmp_path / "runs")])
    assert any("Skipping" in r.getMessage() and "broken.png" in r.getMessage() for r in caplog.records)
    entries = json.loads((tmp_path / "runs" / "predict" / "predictions.json").read_text())
    assert {entry["image_id"] for entry in entries} == {0, 1}  # the two readable images, in source order


# ------------------------------------------------------------------------------ exports and benchmark
EXPORT_CALL_ERRORS = {
    "batch 0": ({"batch": 0}, ValueError, "batch must be >= 1, got 0"),
    "max_det 0": ({"max_det": 0}, ValueError, "max_det must be >= 1, got 0"),
    "imgsz huge": ({"imgsz": (64, 99999)}, ValueError, "imgsz must be in [32, 8192], got 99999"),
    "imgsz text": ({"imgsz": "64"}, ValueError, "imgsz must be one side or (height, width), got '64'"),
}


@pytest.mark.parametrize("export", [export_onnx, export_torchscript], ids=["onnx", "torchscript"])
@pytest.mark.parametrize("case", EXPORT_CALL_ERRORS, ids=list(EXPORT_CALL_ERRORS))
def test_both_exports_check_their_arguments_before_any_work(export, case: str, model, tmp_path: Path) -> None:
    if export is export_onnx:
        pytest.importorskip("onnx")
    options, error_type, message = EXPORT_CALL_ERRORS[case]
    with pytest.raises(error_type) as error:
        export(model, tmp_path / ("model.onnx" if export is export_onnx else "model.torchscript"), **options)
    assert str(error.value).startswith(message), error.value
    assert not list(tmp_path.iterdir())


BENCHMARK_CALL_ERRORS = {
    "warmup negative": ({"warmup": -1}, ValueError, "warmup must be >= 0, got -1"),
    "iterations 0": ({"iterations": 0}, ValueError, "iterations must be >= 1, got 0"),
    "imgsz huge": ({"imgsz": 65536}, ValueError, "imgsz must be in [32, 8192], got 65536"),
    "batch float": ({"batch_sizes": [1, 2.5]}, TypeError, "batch size must be an integer >= 1, got 2.5"),
    "no batch": ({"batch_sizes": []}, ValueError, "batch_sizes must be a non-empty list of integers"),
    "max_det 0": ({"max_det": 0}, ValueError, "max_det must be >= 1, got 0"),
    "compile mode": ({"compile_mode": "fastest"}, ValueError, "compile_mode must be one of"),
}


@pytest.mark.parametrize("case", BENCHMARK_CALL_ERRORS, ids=list(BENCHMARK_CALL_ERRORS))
def test_bad_benchmark_arguments_are_named_before_any_work(case: str, model: CenterNet) -> None:
    options, error_type, message = BENCHMARK_CALL_ERRORS[case]
    with pytest.raises(error_type) as error:
        benchmark_detector(model, **{"imgsz": SIZE, "backends": "eager", **options})
    assert str(error.value).startswith(message), error.value


def test_benchmark_refuses_a_batch_that_cannot_fit(model: CenterNet, monkeypatch) -> None:
    monkeypatch.setattr(checks, "available_memory", lambda device: checks.GIB)
    with pytest.raises(ValueError, match=r"A batch of 8 images at 4096x4096 px needs at least .* \(--imgsz\)"):
        benchmark_detector(model, 4096, [1, 8], "eager")


# ------------------------------------------------------------------------------ convert-weights
def test_convert_weights_refuses_an_existing_output_before_reading(files: dict[str, Path], capsys) -> None:
    argv = [str(files["text"]), "--config", "missing.yaml", "--out", str(files["ckpt"])]
    line = run_main(convert_weights_main, argv, capsys)
    assert line == f"centernet convert-weights: --out {files['ckpt']} exists; choose another path (nothing was written)"


def test_convert_weights_names_a_file_that_is_not_a_checkpoint(files: dict[str, Path], capsys, tmp_path) -> None:
    argv = [str(files["text"]), "--config", "missing.yaml", "--out", str(tmp_path / "out.ckpt")]
    line = run_main(convert_weights_main, argv, capsys)
    assert line.startswith(f"centernet convert-weights: {files['text']} "), line
    assert not (tmp_path / "out.ckpt").exists()


# ------------------------------------------------------------------------------ end to end
END_TO_END = {
    "predict imgsz": (["predict", "--imgsz", "65536"], "centernet predict: --imgsz must be in [32, 8192], got 65536"),
    "predict text as onnx": (["predict", "--model", "NOTES_ONNX"], "NOTES_ONNX is not an ONNX model"),
    "track tracker value": (
        ["track", "--tracker", "high_thresh=abc"],
        "centernet track: --tracker high_thresh must be a number, got 'abc'",
    ),
}


@pytest.fixture(scope="module")
def end_to_end(files: dict[str, Path], tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Any, Path]]:
    """The END_TO_END commands, run at once in fresh processes (each imports torch: seconds)."""
    env = {**os.environ, "CUDA_VISIBLE_DEVICES": ""}
    running = {}
    for case, (args, _) in END_TO_END.items():
        cwd = tmp_path_factory.mktemp("command")
        command, options = args[0], [arg.replace("NOTES_ONNX", str(files["text.onnx"])) for arg in args[1:]]
        if "--model" not in options:
            options += ["--model", str(files["ckpt"])]
        source = files["frames"] if command == "track" else files["image"]
        argv = [sys.executable, "-m", "centernet_lightning.cli", command, *options, "--source", str(source)]
        running[case] = (
            subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True),
            cwd,
        )
    return {
        case: (process.communicate(timeout=300), process.returncode, cwd) for case, (process, cwd) in running.items()
    }


@pytest.mark.parametrize("case", END_TO_END, ids=list(END_TO_END))
def test_commands_end_with_one_line_and_leave_nothing(case: str, end_to_end, files: dict[str, Path]) -> None:
    (_, stderr), returncode, cwd = end_to_end[case]
    message = END_TO_END[case][1].replace("NOTES_ONNX", str(files["text.onnx"]))
    lines = stderr.strip().splitlines()
    assert returncode != 0 and TRACEBACK not in stderr
    assert len(lines) == 1 and message in lines[0], stderr[-2000:]
    assert not (cwd / "runs").exists()


@pytest.mark.parametrize("name", ["", ".", "..", "a/b"])
def test_a_run_folder_name_must_be_a_plain_folder_name(tmp_path: Path, name: str) -> None:
    from centernet_lightning.inference.outputs import new_run_dir

    with pytest.raises(ValueError, match="--name"):
        new_run_dir(tmp_path, name)
    assert list(tmp_path.iterdir()) == []


def test_a_high_thresh_leaving_no_default_new_track_thresh_is_refused() -> None:
    from centernet_lightning.tracking import Tracker

    with pytest.raises(ValueError, match=r"high_thresh 0.95 .* new_track_thresh"):
        Tracker(high_thresh=0.95)
    assert Tracker(high_thresh=0.95, new_track_thresh=0.97).new_track_thresh == 0.97


def test_a_torchscript_export_given_as_a_checkpoint_is_named_as_such(tmp_path: Path) -> None:
    import torch

    from centernet_lightning.weights import read_checkpoint

    path = tmp_path / "model.torchscript"
    torch.jit.save(torch.jit.trace(torch.nn.Linear(2, 2), torch.zeros(1, 2)), str(path))
    with pytest.raises(ValueError, match=r"model.torchscript is a TorchScript export") as error:
        read_checkpoint(path)
    assert "weights_only=False" not in str(error.value)
