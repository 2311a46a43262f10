"""``centernet predict --model best.ckpt --source PATH``: the everyday prediction command.

Needs nothing but a model file: a checkpoint (CenterNet or FairMOT) or an exported ``.onnx``. Class
names, category ids, input size and normalisation come from it (see
:class:`~centernet_lightning.structures.InferenceSpec`). Writes into a new run folder what
:class:`~centernet_lightning.inference.PredictionFiles` writes: drawn images or a drawn video,
``predictions.json`` (COCO results; ``image_id`` = the image's position in the source, or the
frame number), and with ``--save-txt`` YOLO-style ``labels/<name>.txt``.
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path

from ..deploy.backends import load_predictor
from ..inference.backends import BACKENDS
from ..inference.outputs import PredictionFiles, new_run_dir, source_progress
from ..inference.sources import ImageSource, open_source

__all__ = ["predict_main", "add_run_arguments", "open_checked_source"]

log = logging.getLogger(__name__)


def add_run_arguments(parser: argparse.ArgumentParser, run_name: str, source_help: str) -> None:
    """The options ``predict`` and ``track`` share: the model (``--model`` / ``--ckpt_path``), how it
    runs (``--device``, ``--backend``, ``--imgsz``, ``--batch``), the source and the run folder."""
    model = parser.add_mutually_exclusive_group(required=True)
    model.add_argument("--model", help="a checkpoint (.ckpt) or an exported ONNX file (.onnx)")
    model.add_argument("--ckpt_path", "--ckpt-path", dest="model", help="a checkpoint (same as --model)")
    parser.add_argument("--source", required=True, help=source_help)
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N")
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default="eager",
        help="eager (default), channels_last, compile (torch.compile) or onnxruntime (exported, decoding in the "
        "graph); an .onnx model runs on onnxruntime",
    )
    parser.add_argument("--imgsz", type=int, default=None, help="input side in pixels (default: the model's)")
    parser.add_argument("--batch", type=int, default=8, help="images (video frames) per forward pass (default 8)")
    parser.add_argument("--no-draw", dest="draw", action="store_false", help="do not write drawn images / video")
    parser.add_argument("--project", default="runs", help="parent of the run folder (default runs)")
    parser.add_argument(
        "--name", default=run_name, help=f"run folder name: {run_name}, {run_name}2, ... (default {run_name})"
    )


def open_checked_source(args: argparse.Namespace) -> ImageSource:
    """The run's source (unreadable images are skipped with a warning), once its ``--batch`` is checked."""
    if args.batch < 1:
        raise ValueError(f"--batch must be >= 1, got {args.batch}")
    return open_source(args.source, skip_bad_images=True)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="centernet predict",
        description="Detect objects in images or a video with a trained model (no config needed). "
        "Without --source, `centernet predict` is Lightning's datamodule-driven command (see --help there).",
    )
    add_run_arguments(parser, "predict", "an image, a folder, a glob pattern ('photos/*.jpg') or a video")
    parser.add_argument("--conf", type=float, default=0.25, help="smallest score kept (default 0.25; 0.001 for mAP)")
    parser.add_argument("--max-det", type=int, default=None, help="detections per image at most (default: the model's)")
    parser.add_argument(
        "--tta",
        nargs="?",
        const="flip",
        default=None,
        help="test-time augmentation: flip (alone), or e.g. 'flip,0.75,1,1.25' (flip at three scales, merged by NMS)",
    )
    parser.add_argument(
        "--save-txt", action="store_true", help="also write labels/<name>.txt per image (YOLO: 0-based class index)"
    )
    parser.add_argument("--save-conf", action="store_true", help="append the score to each --save-txt line")
    return parser


def predict_main(argv: list[str]) -> None:
    """``centernet predict --model X --source PATH``: see the module docstring."""
    args = _parser().parse_args(argv)
    try:
        source = open_checked_source(args)
        predictor = load_predictor(args.model, args.backend, args.device, args.imgsz, args.max_det, args.tta)
    except (FileNotFoundError, ValueError, OSError, TypeError, ImportError) as error:
        sys.exit(f"centernet predict: {error}")
    spec = predictor.spec
    if spec.category_ids is None:
        log.info("The model stores no category ids: predictions.json uses the contiguous labels as ids")

    run_dir = new_run_dir(args.project, args.name)
    video = Path(source.name).stem if source.is_video else None
    files = PredictionFiles(
        run_dir,
        spec,
        predictor.backend.num_classes,
        args.conf,
        args.draw,
        args.save_txt,
        args.save_conf,
        video,
        source.fps,
    )
    images = skipped = 0
    start = time.perf_counter()
    try:
        with source_progress() as progress:
            task = progress.add_task(f"predict {source.name}", total=len(source) or None)
            for frames, results in predictor.predict_source(source, args.batch):
                added = files.add_frames(frames, results)
                images, skipped = images + added, skipped + len(frames) - added
                progress.advance(task, len(frames))
    except OSError as error:
        sys.exit(f"centernet predict: {error}")
    finally:
        files.close()
    seconds = time.perf_counter() - start
    what = f"{images} frames" if source.is_video else f"{images} images"
    skipped_note = f", {skipped} unreadable skipped" if skipped else ""
    device = predictor.backend.device
    print(
        f"{what} in {seconds:.1f} s: {images / max(seconds, 1e-9):.1f} images/s on {device} "
        f"(batch {args.batch}, {predictor.backend.name}){skipped_note}; {files.detections} detections >= {args.conf}"
        f" -> {run_dir}"
    )
