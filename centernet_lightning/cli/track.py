"""``centernet track --model model.ckpt --source VIDEO_OR_FRAME_DIR``: tracks in a new run folder.

Writes ``<name>.txt`` (MOTChallenge results) and ``<name>.mp4`` (boxes, ids, short trails) into
``runs/track``, ``runs/track2``, ... (see :func:`~centernet_lightning.inference.track_to_files`). A
FairMOT model (checkpoint or ONNX export) tracks with its embeddings and its ``tracker`` settings;
a detection-only CenterNet tracks by motion and IoU (ByteTrack), its score thresholds relative to
the sequence's highest score unless ``--tracker`` sets them.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

from .predict import (
    RUN_BOUNDS,
    Bound,
    CommandParser,
    add_model_arguments,
    add_output_arguments,
    add_run_arguments,
    calibration_of,
    check_options,
    class_list,
    open_checked_source,
    quiet_video_libraries,
    suggest_below,
)

__all__ = ["track_main"]

DESCRIPTION = (
    "Track objects in a video, a stream or a folder of frames with a trained model: MOTChallenge results "
    "(<name>.txt) and a drawn video in runs/track, runs/track2, ... A FairMOT model tracks with its "
    "embeddings; a detection-only CenterNet by motion and IoU (ByteTrack), its score thresholds relative "
    "to the sequence's highest score unless --tracker sets them."
)


TRACK_BOUNDS = {**RUN_BOUNDS, "fps": Bound(float, 0.0, low_open=True)}


def _parser() -> CommandParser:
    parser = CommandParser(prog="centernet track", description=DESCRIPTION)
    add_model_arguments(
        parser,
        "a video file, a folder of frames (sorted by name), a camera index (0) or a stream address (rtsp://, "
        "http(s)://)",
    )
    add_run_arguments(parser)
    parser.add_argument("--fps", default=None, help="frame rate, > 0 (default: the video's or seqinfo.ini's, else 30)")
    parser.add_argument(
        "--tracker",
        nargs="*",
        default=[],
        metavar="PRESET|FILE KEY=VALUE",
        help="a tracker preset (default, bytetrack, fairmot, botsort: moving cameras, ocsort) or a YAML file of "
        "settings, then KEY=VALUE settings, e.g. --tracker botsort high_thresh=0.5 track_buffer=60 "
        "(see docs/tracking.md)",
    )
    add_output_arguments(parser, "track")
    return parser


def _tracker_settings(values: list[str]) -> dict[str, Any]:
    """``--tracker [PRESET | FILE.yaml] [KEY=VALUE ...]`` as settings: a preset's or a file's, then the
    pairs, each value read as the type the Tracker's parameter takes; ValueError naming the pair, an
    unknown preset or key (with the valid ones) or a value of the wrong type."""
    from ..checks import setting_types
    from ..tracking import Tracker, tracker_settings

    preset = values[0] if values and "=" not in values[0] else None
    if preset in setting_types(Tracker):  # a setting without its value, not a preset
        raise ValueError(f"--tracker takes KEY=VALUE pairs, got {preset!r}")
    pairs = values[1:] if preset is not None else values
    from ..tracking.presets import parse_tracker_overrides

    settings = tracker_settings(preset) if preset is not None else {}
    settings.update(parse_tracker_overrides(pairs, "--tracker"))
    if "frame_rate" in settings:  # the run sets it: the source's, or --fps
        raise ValueError("--tracker frame_rate: set the frame rate with --fps")
    return settings


def no_tracks_hint(peak_score: float, thresholds: dict[str, float], classes: list[str] | None) -> str:
    """Why a tracking run found no track: the highest score the tracker saw against its thresholds,
    and the ``--tracker`` settings that would let it start tracks."""
    if peak_score <= 0:
        among = " of the --classes asked for" if classes else ""
        return f" (the model found no detection{among} at all)"
    # a track starts from a detection above high_thresh and at least new_track_thresh
    binding = max(("new_track_thresh", "high_thresh"), key=lambda name: thresholds[name])
    if peak_score > thresholds["high_thresh"] and peak_score >= thresholds["new_track_thresh"]:
        return f" (the highest detection score {peak_score:.3g} passes the thresholds; no detection had a usable box)"
    high, new = suggest_below(peak_score * 0.8), suggest_below(peak_score)
    low = min(thresholds["low_thresh"], float(high) / 4)
    return (
        f" (the highest detection score was {peak_score:.3g}, below the tracker's {binding} "
        f"{thresholds[binding]:.3g}: lower it, e.g. --tracker high_thresh={high} "
        f"new_track_thresh={new} low_thresh={low:.2g})"
    )


def track_main(argv: list[str]) -> None:
    """``centernet track``: see the module docstring."""
    parser = _parser()
    args = parser.parse_args(argv)
    check_options(parser, args, TRACK_BOUNDS)
    quiet_video_libraries(args.verbose)
    classes = class_list(args.classes)
    try:
        source = open_checked_source(args)  # a missing file or a dead stream fails before torch is imported
        if source.kind not in ("video", "stream") and len(source) < 2:
            what = "a single image" if Path(args.source).is_file() else f"{len(source)} frame(s)"
            raise ValueError(f"{args.source}: tracking needs a video or at least 2 frames, not {what}")
        settings = _tracker_settings(args.tracker)
        from ..deploy.backends import load_predictor
        from ..inference.track import source_frame_rate

        predictor = load_predictor(
            args.model,
            args.backend,
            args.device,
            args.imgsz,
            classes=classes,
            verbose=args.verbose,
            calibration=calibration_of(args),
        )
        frame_rate = args.fps / args.vid_stride if args.fps else source_frame_rate(source)
        tracker = predictor.build_tracker(**{**settings, "frame_rate": frame_rate})
        predictor.check_batch_memory(min(args.batch, len(source) or args.batch))  # before the run folder
    except (ValueError, OSError, TypeError, ImportError, RuntimeError) as error:  # RuntimeError: int8, TensorRT builds
        sys.exit(f"centernet track: {error}")
    import yaml

    from ..atomic_files import write_text_atomically
    from ..inference.outputs import run_folder, track_to_files

    with run_folder(args.project, args.name) as run_dir:
        try:
            written = track_to_files(predictor, source, tracker, run_dir, frame_rate, args.batch, args.draw)
            # what the tracker ran with: the model's settings, the preset and pairs, the frame rate
            effective = {**predictor.tracker_settings, **settings, "frame_rate": frame_rate}
            effective["relative_thresholds"] = tracker.relative_thresholds
            header = f"# centernet track --tracker {' '.join(args.tracker)}\n" if args.tracker else ""
            settings_file = write_text_atomically(
                run_dir / "tracker.yaml", header + yaml.safe_dump(effective, sort_keys=True)
            )
        except (OSError, ValueError) as error:
            sys.exit(f"centernet track: {error}")
    hint = no_tracks_hint(written.peak_score, tracker.score_thresholds(), classes) if written.tracks == 0 else ""
    print(
        f"{written.frames} frames in {written.seconds:.1f} s ({written.frames / max(written.seconds, 1e-9):.1f} "
        f"frames/s on {predictor.backend.device}): {written.tracks} tracks{hint} -> {written.results}"
        + (f" and {written.video}" if written.video is not None else "")
        + f"; tracker settings in {settings_file}"
    )
