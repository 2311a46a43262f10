"""``centernet predict --ckpt_path best.ckpt --source PATH``: the everyday prediction command.

Needs nothing but a checkpoint: class names, category ids, input size and normalisation come from
it (see :class:`~centernet_lightning.inference.InferenceSpec`). Writes into a new run folder:

- drawn images (same names as the sources), or for a video a drawn ``.mp4`` at the source's rate;
- ``predictions.json``: COCO-results entries (``image_id`` = the image's position in the source,
  or the frame number; ``category_id`` the dataset's id; ``bbox`` XYWH original pixels; ``score``;
  ``file_name``);
- with ``--save-txt``, ``labels/<name>.txt`` per image: ``label cx cy w h [score]`` normalised.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from ..atomic_files import write_file_atomically, write_text_atomically
from ..structures import Detections
from ..tta import parse_tta
from ..visualize import draw_boxes
from .outputs import VideoSink, coco_results, new_run_dir, source_progress, unique_name, yolo_lines
from .predictor import detect_source, resolve_device
from .sources import Frame, open_source

__all__ = ["predict_main", "BACKENDS"]

log = logging.getLogger(__name__)

BACKENDS = ("eager", "channels_last", "compile", "onnxruntime")
DRAWN_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")  # others are drawn as .jpg


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="centernet predict",
        description="Detect objects in images or a video with a trained checkpoint (no config needed). "
        "Without --source, `centernet predict` is Lightning's datamodule-driven command (see --help there).",
    )
    parser.add_argument("--ckpt_path", "--ckpt-path", required=True, help="a checkpoint written by training")
    parser.add_argument(
        "--source", required=True, help="an image, a folder, a glob pattern ('photos/*.jpg') or a video"
    )
    parser.add_argument("--conf", type=float, default=0.25, help="smallest score kept (default 0.25; 0.001 for mAP)")
    parser.add_argument("--imgsz", type=int, default=None, help="input side in pixels (default: the checkpoint's)")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N")
    parser.add_argument("--batch", type=int, default=8, help="images per forward pass (default 8; videos use it too)")
    parser.add_argument("--max-det", type=int, default=None, help="detections per image at most (default: the model's)")
    parser.add_argument(
        "--tta",
        nargs="?",
        const="flip",
        default=None,
        help="test-time augmentation: flip (alone), or e.g. 'flip,0.75,1,1.25' (flip at three scales, merged by NMS)",
    )
    parser.add_argument(
        "--backend",
        choices=BACKENDS,
        default="eager",
        help="eager (default), channels_last, compile (torch.compile) or onnxruntime (exported, decoding in the graph)",
    )
    parser.add_argument("--save-txt", action="store_true", help="also write YOLO-style labels/<name>.txt per image")
    parser.add_argument("--save-conf", action="store_true", help="append the score to each --save-txt line")
    parser.add_argument("--no-draw", dest="draw", action="store_false", help="do not write drawn images / video")
    parser.add_argument("--project", default="runs", help="parent of the run folder (default runs)")
    parser.add_argument("--name", default="predict", help="run folder name: predict, predict2, ... (default predict)")
    return parser


def _detect_function(
    model: Any, backend: str, max_det: int, tta: str | None, input_size: int, workdir: Path
) -> Callable[[torch.Tensor], Detections]:
    """The network input -> Detections function of a backend (see docs/benchmarks.md for their speed).

    ``channels_last`` runs the convolutions in NHWC; ``compile`` is ``torch.compile`` with inductor's
    freezing (static shapes: each batch size compiles once); ``onnxruntime`` exports the model with
    its decoding to ``workdir`` and runs the graph in ONNX Runtime.
    """
    augment = parse_tta(tta) if tta is not None else None  # a clear error for a bad --tta before any work
    if augment is not None and backend in ("compile", "onnxruntime"):
        raise ValueError(f"--tta runs on the eager or channels_last backends, not {backend}")
    if backend == "onnxruntime":
        from ..deploy import OnnxDetector, export_onnx

        path = export_onnx(model, workdir / "model.onnx", imgsz=input_size, dynamic=True, max_det=max_det)
        runtime = OnnxDetector(path)

        def detect_onnx(inputs: torch.Tensor) -> Detections:
            return {key: torch.from_numpy(value) for key, value in runtime(inputs).items()}  # type: ignore[return-value]

        return detect_onnx
    if backend in ("channels_last", "compile"):
        model.to(memory_format=torch.channels_last)
    network = model.detector
    if backend == "compile":
        from torch._inductor import config as inductor_config

        network = torch.compile(model.detector, dynamic=False)

    def detect(inputs: torch.Tensor) -> Detections:
        if backend != "eager":
            inputs = inputs.contiguous(memory_format=torch.channels_last)
        if backend == "compile":
            with inductor_config.patch(freezing=True):  # read when a batch size first compiles
                return model.gather_detection2d(network(inputs), num_detections=max_det, score_threshold=0.0)
        return model.detect(inputs, num_detections=max_det, score_threshold=0.0, tta=augment)

    return detect


class _Writer:
    """Draws, collects JSON entries and writes txt files for the frames of one run."""

    def __init__(self, run_dir: Path, args: argparse.Namespace, spec: Any, num_classes: int, fps: float | None) -> None:
        self.run_dir, self.args, self.spec, self.fps = run_dir, args, spec, fps
        self.category_ids = spec.label_to_category_id(num_classes)
        self.results: list[dict[str, Any]] = []
        self.taken: set[str] = set()
        self.video: VideoSink | None = None
        self.detections = 0
        if args.save_txt:
            (run_dir / "labels").mkdir()

    def add(
        self, frame: Frame, bboxes: np.ndarray, scores: np.ndarray, labels: np.ndarray, video_stem: str | None
    ) -> None:
        keep = (scores >= self.args.conf) & (labels >= 0)
        bboxes, scores, labels = bboxes[keep], scores[keep], labels[keep]
        self.detections += len(scores)
        self.results += coco_results(frame.index, bboxes, scores, labels, self.category_ids, file_name=frame.name)
        stem = f"{video_stem}_{frame.index}" if video_stem else Path(frame.name).stem
        if self.args.save_txt:
            height, width = frame.image.shape[:2]
            text = yolo_lines(bboxes, scores, labels, height, width, self.args.save_conf)
            write_text_atomically(self.run_dir / "labels" / unique_name(stem, ".txt", self.taken), text)
        if not self.args.draw:
            return
        drawn = draw_boxes(frame.image, bboxes, labels, scores, self.spec.class_names)
        if video_stem is not None:
            if self.video is None:
                self.video = VideoSink(self.run_dir / f"{video_stem}.mp4", self.fps, drawn.shape[:2])
            self.video.write(drawn)
            return
        suffix = Path(frame.name).suffix.lower()
        name = unique_name(stem, suffix if suffix in DRAWN_SUFFIXES else ".jpg", self.taken)
        ok, encoded = cv2.imencode(Path(name).suffix, cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
        if ok:
            write_file_atomically(self.run_dir / name, lambda temporary: temporary.write_bytes(encoded.tobytes()))

    def close(self) -> None:
        if self.video is not None:
            self.video.close()
        write_text_atomically(self.run_dir / "predictions.json", json.dumps(self.results))


def predict_main(argv: list[str]) -> None:
    """``centernet predict --ckpt_path X --source PATH``: see the module docstring."""
    args = _parser().parse_args(argv)
    from ..models.centernet import load_centernet

    try:
        if args.batch < 1:
            raise ValueError(f"--batch must be >= 1, got {args.batch}")
        device = resolve_device(args.device)
        model = load_centernet(args.ckpt_path, map_location=device)
        spec = model.inference_spec
        if args.imgsz is not None:
            divisor = model.detector.size_divisor
            if args.imgsz < divisor or args.imgsz % divisor:
                raise ValueError(f"--imgsz must be a positive multiple of {divisor}, got {args.imgsz}")
            spec = replace(spec, input_size=args.imgsz)
        max_det = args.max_det or int(model.hparams.num_detections)
        source = open_source(args.source, skip_bad_images=True)
        workdir = Path(tempfile.mkdtemp(prefix="centernet-predict-"))
        detect = _detect_function(model, args.backend, max_det, args.tta, spec.input_size, workdir)
    except (FileNotFoundError, ValueError, OSError, TypeError, ImportError) as error:
        sys.exit(f"centernet predict: {error}")
    if spec.category_ids is None:
        log.info("The checkpoint stores no category ids: predictions.json uses the contiguous labels as ids")

    run_dir = new_run_dir(args.project, args.name)
    writer = _Writer(run_dir, args, spec, model.num_classes, source.fps)
    video_stem = Path(source.name).stem if source.is_video else None
    images = skipped = 0
    start = time.perf_counter()
    try:
        with source_progress() as progress:
            task = progress.add_task(f"predict {source.name}", total=len(source) or None)
            for frames, results in detect_source(detect, source, spec, device, args.batch, max_det):
                for row, frame in enumerate(frames):
                    if frame.image is None:
                        skipped += 1
                        continue
                    images += 1
                    writer.add(frame, *(results[key][row] for key in ("bboxes", "scores", "labels")), video_stem)
                progress.advance(task, len(frames))
    except OSError as error:
        sys.exit(f"centernet predict: {error}")
    finally:
        writer.close()
        shutil.rmtree(workdir, ignore_errors=True)
    seconds = time.perf_counter() - start
    what = f"{images} frames" if source.is_video else f"{images} images"
    skipped_note = f", {skipped} unreadable skipped" if skipped else ""
    print(
        f"{what} in {seconds:.1f} s: {images / max(seconds, 1e-9):.1f} images/s on {device} "
        f"(batch {args.batch}, {args.backend}){skipped_note}; {writer.detections} detections >= {args.conf}"
        f" -> {run_dir}"
    )
