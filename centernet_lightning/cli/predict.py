"""``centernet predict --model best.ckpt --source PATH``: the everyday prediction command.

Needs nothing but a model file: a checkpoint (CenterNet or FairMOT), an exported ``.onnx``, an
exported OpenVINO IR ``.xml`` or a TensorRT ``.engine``. Class
names, category ids, input size and normalisation come from it (see
:class:`~centernet_lightning.structures.InferenceSpec`). Writes into a new run folder what
:class:`~centernet_lightning.inference.PredictionFiles` writes: drawn images or a drawn video,
``predictions.json`` (COCO results; ``image_id`` = the image's position in the source, or the
frame number), and with ``--save-txt`` ``labels/<name>.txt``.

Arguments are parsed before anything heavy is imported, so ``--help`` and a bad option answer at
once; torch, the model and OpenCV are imported by the run itself. This module also holds what
``predict`` and ``track`` share: their options, the one-line errors, and the hints printed when a
threshold lets nothing through.
"""

from __future__ import annotations

import argparse
import logging
import math
import os
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, NoReturn

from ..checks import MAX_INPUT_SIZE, MIN_INPUT_SIZE, check_int_range, check_range, parse_setting

if TYPE_CHECKING:
    from ..inference.sources import ImageSource

__all__ = [
    "BACKEND_CHOICES",
    "RUN_BOUNDS",
    "Bound",
    "CommandParser",
    "add_model_arguments",
    "add_output_arguments",
    "add_calibration_arguments",
    "add_run_arguments",
    "calibration_of",
    "check_options",
    "class_list",
    "open_checked_source",
    "predict_main",
    "quiet_video_libraries",
    "suggest_below",
]

log = logging.getLogger(__name__)

# inference.backends.BACKENDS, written out so that parsing needs no torch (a test keeps them equal)
BACKEND_CHOICES = (
    "eager",
    "channels_last",
    "compile",
    "onnxruntime",
    "onnxruntime_int8",
    "openvino",
    "openvino_bf16",
    "openvino_int8",
    "tensorrt",
)
# deploy.quantize.DEFAULT_CALIBRATION_IMAGES, likewise (a test keeps them equal)
DEFAULT_CALIBRATION_IMAGES = 300
# inference.outputs.TXT_LABELS, likewise
TXT_LABEL_CHOICES = ("yolo", "coco")
LIGHTNING_PREDICT_NOTE = (
    "Without --source, `centernet predict --config CONFIG [--ckpt_path CKPT]` is Lightning's datamodule-driven "
    "prediction over a data module's split (see `centernet predict --config CONFIG --help`)."
)


class CommandParser(argparse.ArgumentParser):
    """An argument parser whose errors are one line naming the option: ``centernet track: argument
    --batch: must be >= 1, got 0 (see centernet track --help)``."""

    def __init__(self, *args: Any, description: str | None = None, **kwargs: Any) -> None:
        # Descriptions are often a docstring: its ``literals`` read as plain text in a terminal.
        super().__init__(*args, description=description and description.replace("``", ""), **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


@dataclass(frozen=True)
class Bound:
    """What a numeric option takes: ``kind`` (int or float) in ``[low, high]`` (``low`` excluded
    when ``low_open``)."""

    kind: type
    low: float
    high: float = math.inf
    low_open: bool = False


# The options predict and track share, by dest; each command adds its own (see check_options).
CALIBRATION_BOUNDS = {"calib_images": Bound(int, 1)}
RUN_BOUNDS = {
    "imgsz": Bound(int, MIN_INPUT_SIZE, MAX_INPUT_SIZE),
    "batch": Bound(int, 1),
    "vid_stride": Bound(int, 1),
    "max_frames": Bound(int, 1),
    **CALIBRATION_BOUNDS,
}


def check_options(parser: argparse.ArgumentParser, args: argparse.Namespace, bounds: Mapping[str, Bound]) -> None:
    """Every option of ``bounds`` (by dest; a list option item by item) read from its text and
    checked against its bound, replaced by its number; the first bad one ends the command with one
    line naming it and the value: ``centernet predict: --conf must be in [0, 1], got -0.5``."""
    for dest, bound in bounds.items():
        value = getattr(args, dest)
        if value is None:
            continue
        option = "--" + dest.replace("_", "-")
        try:
            numbers = [_checked(option, item, bound) for item in (value if isinstance(value, list) else [value])]
        except ValueError as error:  # a WrongTypeError too
            parser.error(str(error))
        setattr(args, dest, numbers if isinstance(value, list) else numbers[0])


def _checked(option: str, value: Any, bound: Bound) -> int | float:
    # An integer stays one where a number is taken, so the error quotes what was typed: "got 0", not "got 0.0".
    kind = bound.kind if bound.kind is int else (int, bound.kind)
    number = parse_setting(option, value, kind) if isinstance(value, str) else value
    if bound.kind is int:
        return check_int_range(option, number, int(bound.low), bound.high)
    return check_range(option, number, bound.low, bound.high, low_open=bound.low_open)


def class_list(values: list[str] | None) -> list[str] | None:
    """``--classes person car`` or ``--classes 0,2``: one flat list of names / indices (None: all)."""
    return [part.strip() for value in values or [] for part in value.split(",") if part.strip()] or None


def add_model_arguments(parser: argparse.ArgumentParser, source_help: str) -> None:
    """``--model`` (alias ``--ckpt_path``) and ``--source``: the two options every run needs."""
    parser.add_argument(
        "--model",
        "--ckpt_path",
        "--ckpt-path",
        dest="model",
        required=True,
        metavar="FILE",
        help="a checkpoint (.ckpt: CenterNet or FairMOT), an exported ONNX file (.onnx), OpenVINO IR (.xml) or "
        "TensorRT engine (.engine)",
    )
    parser.add_argument("--source", required=True, help=source_help)


def add_calibration_arguments(parser: CommandParser, what: str) -> None:
    """``--calib`` and ``--calib-images``: the images int8 quantisation calibrates on."""
    parser.add_argument(
        "--calib",
        default=None,
        metavar="SOURCE",
        help=f"{what}: a data config (.yaml; its training split is read) or a folder of images",
    )
    parser.add_argument(
        "--calib-images",
        default=None,
        metavar="N",
        help=f"calibration images, >= 1 (default {DEFAULT_CALIBRATION_IMAGES}, or all the source has)",
    )


def calibration_of(args: argparse.Namespace) -> Any:
    """The :class:`~centernet_lightning.deploy.Calibration` of ``--calib`` / ``--calib-images`` (None without
    ``--calib``); ValueError for ``--calib-images`` alone."""
    if args.calib is None:
        if args.calib_images is not None:
            raise ValueError("--calib-images goes with --calib (the images to calibrate int8 on)")
        return None
    from ..deploy.quantize import Calibration

    return Calibration(args.calib, args.calib_images or DEFAULT_CALIBRATION_IMAGES)


def add_run_arguments(parser: argparse.ArgumentParser) -> None:
    """The options ``predict`` and ``track`` share on which detections and how the model runs:
    ``--classes``, ``--backend``, ``--imgsz``, ``--device``, ``--batch``, ``--vid-stride``, ``--max-frames``."""
    parser.add_argument(
        "--classes",
        nargs="+",
        default=None,
        metavar="CLASS",
        help="keep only these classes: names or 0-based indices, e.g. --classes person car, --classes 0 2",
    )
    parser.add_argument(
        "--backend",
        choices=BACKEND_CHOICES,
        default="eager",
        help="eager (default), channels_last, compile (torch.compile), onnxruntime (exported, decoding in the "
        "graph), openvino (exported to OpenVINO IR, CPU, float32), openvino_bf16 (the same in bfloat16), "
        "onnxruntime_int8 / openvino_int8 (quantised to int8 on --calib images) or tensorrt (fp16 engine, CUDA); "
        "an .onnx model runs on onnxruntime, an OpenVINO .xml on openvino, an .engine on tensorrt",
    )
    add_calibration_arguments(parser, "for onnxruntime_int8 / openvino_int8 of a checkpoint, the calibration images")
    parser.add_argument(
        "--imgsz",
        default=None,
        metavar="PX",
        help=f"input side in pixels, a multiple of 32 in {MIN_INPUT_SIZE}..{MAX_INPUT_SIZE} (default: the model's)",
    )
    parser.add_argument("--device", default="auto", help="auto (CUDA when present; default), cpu, cuda or cuda:N")
    parser.add_argument("--batch", default=8, help="images (video frames) per forward pass, >= 1 (default 8)")
    parser.add_argument(
        "--vid-stride",
        default=1,
        metavar="N",
        help="every N-th video frame (image) only; skipped frames are not decoded (default 1: all)",
    )
    parser.add_argument("--max-frames", default=None, metavar="N", help="stop after N frames (images), N >= 1")


def add_output_arguments(parser: argparse.ArgumentParser, run_name: str) -> None:
    """Where a run writes (``--no-draw``, ``--project``, ``--name``) and ``--verbose``."""
    parser.add_argument("--no-draw", dest="draw", action="store_false", help="do not write drawn images / video")
    parser.add_argument("--project", default="runs", help="parent of the run folder (default runs)")
    parser.add_argument(
        "--name", default=run_name, help=f"run folder name: {run_name}, {run_name}2, ... (default {run_name})"
    )
    parser.add_argument("--verbose", action="store_true", help="show the ONNX exporter's and FFmpeg's own messages too")


def quiet_video_libraries(verbose: bool) -> None:
    """Unless ``verbose``, keep OpenCV's and FFmpeg's own log lines (``Connection refused``,
    ``can't be used to capture by name``) off the terminal: a source that cannot be opened gets
    one line of ours. FFmpeg reads its level once, before the first capture is opened."""
    if verbose:
        return
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
    import cv2

    cv2.utils.logging.setLogLevel(cv2.utils.logging.LOG_LEVEL_ERROR)


def open_checked_source(args: argparse.Namespace) -> ImageSource:
    """The run's source (unreadable images are skipped with a warning), with its stride and frame limit."""
    from ..inference.sources import open_source

    return open_source(args.source, skip_bad_images=True, vid_stride=args.vid_stride, max_frames=args.max_frames)


def suggest_below(score: float) -> str:
    """A round threshold just under ``score``, to suggest lowering a threshold to: 0.1 for 0.137."""
    rounded = math.floor(score * 100) / 100
    return f"{rounded:g}" if rounded > 0 else f"{score * 0.9:.2g}"


def no_detections_hint(best_score: float, conf: float, classes: list[str] | None) -> str:
    """Why a prediction run kept nothing: the highest score seen and the option that lowers the bar."""
    among = " of the --classes asked for" if classes else ""
    if best_score <= 0:
        return f" (the model found no detection{among} at all)"
    lower = suggest_below(best_score)
    return f" (the highest score{among} was {best_score:.3g}: lower --conf to keep it, e.g. --conf {lower})"


PREDICT_BOUNDS = {**RUN_BOUNDS, "conf": Bound(float, 0.0, 1.0), "max_det": Bound(int, 1)}


def _parser() -> CommandParser:
    parser = CommandParser(
        prog="centernet predict",
        description="Detect objects in images, a video or a stream with a trained model (no config needed): "
        "drawn images or video, predictions.json (COCO results) and optionally labels/*.txt in runs/predict, "
        "runs/predict2, ... " + LIGHTNING_PREDICT_NOTE,
    )
    add_model_arguments(
        parser,
        "an image, a folder, a glob pattern ('photos/*.jpg'), a video, a camera index (0) or a stream address "
        "(rtsp://, rtmp://, http(s)://)",
    )
    parser.add_argument("--conf", default=0.25, help="smallest score kept, in [0, 1] (default 0.25; 0.001 for mAP)")
    add_run_arguments(parser)
    parser.add_argument(
        "--max-det", default=None, metavar="K", help="detections per image at most, >= 1 (default: the model's)"
    )
    parser.add_argument(
        "--save-txt",
        nargs="?",
        const="yolo",
        default=None,
        choices=TXT_LABEL_CHOICES,
        help="also write labels/<name>.txt per image, 'label cx cy w h' normalised by the image size; label: the "
        "0-based class index with yolo (the default), the category id of predictions.json with coco",
    )
    parser.add_argument("--save-conf", action="store_true", help="append the score to each --save-txt line")
    parser.add_argument(
        "--tta",
        nargs="?",
        const="flip",
        default=None,
        help="test-time augmentation: flip (alone), or e.g. 'flip,0.75,1,1.25' (flip at three scales, merged by NMS)",
    )
    add_output_arguments(parser, "predict")
    return parser


def predict_main(argv: list[str]) -> None:
    """``centernet predict --model X --source PATH``: see the module docstring."""
    parser = _parser()
    args = parser.parse_args(argv)
    check_options(parser, args, PREDICT_BOUNDS)
    quiet_video_libraries(args.verbose)
    try:
        source = open_checked_source(args)  # a missing file or a dead stream fails before torch is imported
        from ..deploy.backends import load_predictor

        predictor = load_predictor(
            args.model,
            args.backend,
            args.device,
            args.imgsz,
            args.max_det,
            args.tta,
            classes=class_list(args.classes),
            verbose=args.verbose,
            calibration=calibration_of(args),
        )
        predictor.check_batch_memory(min(args.batch, len(source) or args.batch))  # before the run folder
    except (ValueError, OSError, TypeError, ImportError, RuntimeError) as error:  # RuntimeError: int8, TensorRT builds
        sys.exit(f"centernet predict: {error}")
    from ..inference.outputs import PredictionFiles, run_folder, source_progress

    spec = predictor.spec
    if spec.category_ids is None:
        log.info("The model stores no category ids: predictions.json uses the contiguous labels as ids")

    with run_folder(args.project, args.name) as run_dir:
        files = PredictionFiles(
            run_dir,
            spec,
            predictor.backend.num_classes,
            args.conf,
            args.draw,
            args.save_txt,
            args.save_conf,
            source.stem if source.is_video else None,
            source.fps,
        )
        images = skipped = 0
        start = time.perf_counter()
        completed = False
        try:
            with source_progress() as progress:
                task = progress.add_task(f"predict {source.name}", total=len(source) or None)
                for frames, results in predictor.predict_source(source, args.batch):
                    added = files.add_frames(frames, results)
                    images, skipped = images + added, skipped + len(frames) - added
                    progress.advance(task, len(frames))
            completed = True
        except OSError as error:  # a stream that drops, a full disk
            sys.exit(f"centernet predict: {error}")
        finally:
            if completed or images:  # what was predicted before a failure is kept; nothing is not written
                try:
                    files.close()
                except OSError as error:  # predictions.json or the video on a full disk
                    sys.exit(f"centernet predict: {error}")
    seconds = time.perf_counter() - start
    what = f"{images} frames" if source.is_video else f"{images} images"
    skipped_note = f", {skipped} unreadable skipped" if skipped else ""
    hint = no_detections_hint(files.best_score, args.conf, args.classes) if files.detections == 0 else ""
    device = predictor.backend.device
    print(
        f"{what} in {seconds:.1f} s: {images / max(seconds, 1e-9):.1f} images/s on {device} "
        f"(batch {args.batch}, {predictor.backend.name}){skipped_note}; {files.detections} detections >= {args.conf}"
        f"{hint} -> {run_dir}"
    )
