"""``centernet track --model model.ckpt --source VIDEO_OR_FRAME_DIR``: tracks in a new run folder.

Writes ``<name>.txt`` (MOTChallenge results) and ``<name>.mp4`` (boxes, ids, short trails) into
``runs/track``, ``runs/track2``, ... (see :func:`~centernet_lightning.inference.track_to_files`). A
FairMOT model (checkpoint or ONNX export) tracks with its embeddings and its ``tracker`` settings;
a detection-only CenterNet tracks by motion and IoU (ByteTrack).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..deploy.backends import load_predictor
from ..inference.outputs import new_run_dir, track_to_files
from ..inference.track import source_frame_rate
from .predict import add_run_arguments, open_checked_source

__all__ = ["track_main"]


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="centernet track", description=__doc__.split("\n\n")[0])
    add_run_arguments(parser, "track", "a video file or a folder of frames (sorted by name)")
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
    args = _parser().parse_args(argv)
    try:
        source = open_checked_source(args)
        if source.kind != "video" and len(source) < 2:
            raise ValueError(f"{args.source}: tracking needs a video or a folder of frames, not a single image")
        predictor = load_predictor(args.model, args.backend, args.device, args.imgsz)
        frame_rate = args.fps or source_frame_rate(source)
        tracker = predictor.build_tracker(**{**_tracker_settings(args.tracker), "frame_rate": frame_rate})
    except (FileNotFoundError, ValueError, OSError, TypeError, ImportError) as error:
        sys.exit(f"centernet track: {error}")

    run_dir = new_run_dir(args.project, args.name)
    try:
        written = track_to_files(predictor, source, tracker, run_dir, frame_rate, args.batch, args.draw)
    except OSError as error:
        sys.exit(f"centernet track: {error}")
    print(
        f"{written.frames} frames in {written.seconds:.1f} s ({written.frames / max(written.seconds, 1e-9):.1f} "
        f"frames/s on {predictor.backend.device}): {written.tracks} tracks -> {written.results}"
        + (f" and {written.video}" if written.video is not None else "")
    )
