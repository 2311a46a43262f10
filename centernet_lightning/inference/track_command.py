"""``centernet track --ckpt_path model.ckpt --source VIDEO_OR_FRAME_DIR``: tracks in a new run folder.

Writes ``<name>.txt`` (MOTChallenge results: ``frame, id, bb_left, bb_top, bb_width, bb_height,
score, -1, -1, -1``, frames from 1) and ``<name>.mp4`` (boxes, ids, short trails, one colour per
id) into ``runs/track``, ``runs/track2``, ... A FairMOT checkpoint tracks with its embeddings and
its ``tracker`` settings; a detection-only CenterNet checkpoint tracks by motion and IoU (ByteTrack).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from ..checkpoint import load_trained_module, read_checkpoint
from ..tracking import Tracker
from .outputs import VideoSink, new_run_dir, source_progress
from .predictor import resolve_device
from .sources import ImageSource, open_source
from .spec import InferenceSpec
from .track import TrackDrawer, source_frame_rate, track_source

__all__ = ["TrackingRun", "load_tracking_model", "track_main", "track_to_files"]


def load_tracking_model(ckpt_path: str | Path, device: Any = "cpu") -> Any:
    """A FairMOT (checkpoints with ``num_identities``) or a CenterNet, in eval mode on ``device``."""
    from ..models.centernet import CenterNet
    from ..models.fairmot import FairMOT

    hparams = read_checkpoint(ckpt_path).get("hyper_parameters") or {}
    module_class = FairMOT if "num_identities" in hparams else CenterNet
    return load_trained_module(ckpt_path, module_class, device)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="centernet track", description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt_path", "--ckpt-path", required=True, help="a FairMOT or CenterNet checkpoint")
    parser.add_argument("--source", required=True, help="a video file or a folder of frames (sorted by name)")
    parser.add_argument("--imgsz", type=int, default=None, help="input side in pixels (default: the checkpoint's)")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda or cuda:N")
    parser.add_argument("--batch", type=int, default=8, help="frames per forward pass (default 8)")
    parser.add_argument(
        "--fps", type=float, default=None, help="frame rate (default: the video's or seqinfo.ini's, else 30)"
    )
    parser.add_argument(
        "--tracker",
        nargs="*",
        default=[],
        metavar="KEY=VALUE",
        help="tracker settings, e.g. high_thresh=0.5 track_buffer=60 kalman_state=xywh",
    )
    parser.add_argument("--no-draw", dest="draw", action="store_false", help="do not write the drawn video")
    parser.add_argument("--project", default="runs", help="parent of the run folder (default runs)")
    parser.add_argument("--name", default="track", help="run folder name: track, track2, ... (default track)")
    return parser


def _tracker_settings(pairs: list[str]) -> dict[str, Any]:
    import yaml

    settings = {}
    for pair in pairs:
        key, separator, value = pair.partition("=")
        if not separator or not key:
            raise ValueError(f"--tracker takes KEY=VALUE pairs, got {pair!r}")
        settings[key] = yaml.safe_load(value)
    return settings


def track_main(argv: list[str]) -> None:
    """``centernet track``: see the module docstring."""
    from dataclasses import replace

    args = _parser().parse_args(argv)
    try:
        device = resolve_device(args.device)
        model = load_tracking_model(args.ckpt_path, device)
        spec: InferenceSpec = model.inference_spec
        if args.imgsz is not None:
            spec = replace(spec, input_size=args.imgsz)
        source = open_source(args.source, skip_bad_images=True)
        if source.kind != "video" and len(source) < 2:
            raise ValueError(f"{args.source}: tracking needs a video or a folder of frames, not a single image")
        frame_rate = args.fps or source_frame_rate(source)
        settings = {**_tracker_settings(args.tracker), "frame_rate": frame_rate}
        tracker = model.build_tracker(**settings) if hasattr(model, "build_tracker") else Tracker(**settings)
    except (FileNotFoundError, ValueError, OSError, TypeError) as error:
        sys.exit(f"centernet track: {error}")

    run_dir = new_run_dir(args.project, args.name)
    try:
        written = track_to_files(model, source, spec, tracker, run_dir, frame_rate, device, args.batch, args.draw)
    except OSError as error:
        sys.exit(f"centernet track: {error}")
    print(
        f"{written.frames} frames in {written.seconds:.1f} s ({written.frames / max(written.seconds, 1e-9):.1f} "
        f"frames/s on {device}): {written.tracks} tracks -> {written.results}"
        + (f" and {written.video}" if written.video is not None else "")
    )


class TrackingRun(NamedTuple):
    """What :func:`track_to_files` wrote and measured."""

    results: Path  # MOTChallenge txt
    video: Path | None  # drawn mp4
    frames: int
    tracks: int  # distinct ids
    seconds: float


def track_to_files(
    model: Any,
    source: ImageSource,
    spec: InferenceSpec,
    tracker: Tracker,
    run_dir: Path,
    frame_rate: float = 30.0,
    device: Any = "cpu",
    batch_size: int = 8,
    draw: bool = True,
) -> TrackingRun:
    """Track ``source`` with ``model`` (FairMOT or CenterNet) and write ``<name>.txt`` (and
    ``<name>.mp4`` at ``frame_rate`` when ``draw``) into ``run_dir``, with a Rich progress bar."""
    from ..eval.mot_io import write_mot_txt

    name = Path(source.name.rstrip("/"))
    stem = (name.parent.name if name.name == "img1" else name.stem) or "track"  # MOTChallenge: SEQ/img1
    frames, ids, boxes, scores = [], [], [], []
    drawer, video = TrackDrawer(), None
    count, start = 0, time.perf_counter()
    k = int(model.hparams.num_detections)
    try:
        with source_progress() as progress:
            task = progress.add_task(f"track {source.name}", total=len(source) or None)
            for frame, tracks in track_source(model.detect, source, spec, tracker, device, batch_size, k):
                count += 1
                frames.append(np.full(len(tracks["ids"]), frame.index + 1))
                ids.append(np.asarray(tracks["ids"]))
                boxes.append(np.asarray(tracks["boxes"]).reshape(-1, 4))
                scores.append(np.asarray(tracks["scores"]))
                if draw and frame.image is not None:
                    drawn = drawer.draw(frame.image, tracks)
                    video = video or VideoSink(run_dir / f"{stem}.mp4", frame_rate, drawn.shape[:2])
                    video.write(drawn)
                progress.advance(task)
    finally:
        if video is not None:
            video.close()
    all_ids = np.concatenate(ids) if ids else np.zeros(0, np.int64)
    results = write_mot_txt(
        run_dir / f"{stem}.txt",
        np.concatenate(frames) if frames else np.zeros(0, np.int64),
        all_ids,
        np.concatenate(boxes) if boxes else np.zeros((0, 4)),
        np.concatenate(scores) if scores else np.zeros(0),
    )
    return TrackingRun(
        results, video.path if video else None, count, len(np.unique(all_ids)), time.perf_counter() - start
    )
