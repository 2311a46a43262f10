"""Our tracker against maintained peer trackers, all fed the same per-frame detections.

Every tracker sees the same boxes, scores and 64-d embeddings of a simulated detector (the
"moderate" noise of ``tracker_noise.py``: box jitter, misses, 3-8 frame occlusion gaps, low-score
partial detections at 0.15-0.4, false positives; embeddings = the object's identity unit vector
plus Gaussian noise, same-object cosine distance median about 0.17). Printed per data set and
tracker: HOTA, MOTA, IDF1 (means over seeds), IDSW (summed) and milliseconds per frame of the
update call alone (mean over seeds; camera-motion estimation included for the trackers that
are given the image). Scores are TrackEval's (``centernet_lightning.eval.mot.evaluate_tracks``).

Data sets (``--only`` takes the group name):

- ``static``: synthetic pedestrian-like scenes (``tracker_noise.make_scene``), 1280x720, at three
  object speeds drawn uniformly from 0.5-3, 2-6 and 4-10 px/frame.
- ``panning``: the same speeds in a 2560x1440 world watched by a 1280x720 viewport that pans
  smoothly (two sinusoids per axis: a few px/frame, accelerating and turning). Ground truth and
  detections are in viewport coordinates (boxes clipped to it, kept while half visible). Each
  frame is also rendered as a grayscale crop of one fixed textured world image (objects are not
  drawn), for the trackers that compensate camera motion: ours through
  ``update(..., image=gray)``, boxmot's BoT-SORT and
  DeepOCSORT (sparse optical flow, their shipped setting) as BGR. Without the image (static
  scenes, TUD) their camera-motion compensation is switched off.
- ``tud``: TUD-Campus and TUD-Stadtmitte ground truth shipped with the ``motmetrics`` package
  (MOT15, 640x480), with the same simulated detector on the true boxes.

Trackers (:data:`OURS`): ``ours`` (:class:`~centernet_lightning.tracking.Tracker()` with
embeddings), on panning scenes ``ours + CMC`` (the same with sparse-flow camera-motion
compensation from the rendered frames), ``ours, FairMOT preset`` (FairMOT's association as
published), ``ours (no emb)`` (``Tracker()`` without embeddings) and ``ours, ByteTrack preset``;
``perfect association`` links every true detection above the low threshold under its true id: an
upper bound for any tracker fed these detections. Peers
(:data:`PEERS`): boxmot's ByteTrack, BoT-SORT, OC-SORT and DeepOCSORT (BoT-SORT and DeepOCSORT fed
our embeddings, L2-normalised; no re-ID model is loaded), and Roboflow's
``trackers.ByteTrackTracker`` fed ``sv.Detections``: supervision 0.31 no longer has
``sv.ByteTrack`` and points to that package instead. They run on their shipped settings except
the score thresholds, which are set to ours (high, low, new track: the detector is the same), or
their own with ``--peer-defaults``.

The peers never enter the project's environment: the first run creates the virtual environment
``runs/bench_env/peers`` (a ``.pth`` file there reuses torch, numpy and OpenCV from ``.venv``),
installs boxmot 25.0.0 (``--no-deps``: its pins would pull another OpenCV, pandas and pyarrow)
with the two small packages it needs, supervision 0.31 and trackers into it, and runs the peers in
a subprocess of its Python (this same file with ``--peer-worker``, detections and tracks passed
as ``.npz`` files). Timing runs single-threaded (torch, OpenCV and the BLAS libraries).

    .venv/bin/python benchmarks/tracker_peers.py [--frames 200] [--seeds 0 1] [--only static|panning|tud]
                                                  [--no-peers] [--peer-defaults]
"""

from __future__ import annotations

import os

for _variable in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_variable, "1")  # single-threaded timing, set before numpy loads

import argparse  # noqa: E402
import importlib.util  # noqa: E402
import json  # noqa: E402
import subprocess  # noqa: E402
import sysconfig  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
import venv  # noqa: E402
from collections.abc import Callable  # noqa: E402
from dataclasses import dataclass, replace  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import cv2  # noqa: E402
import numpy as np  # noqa: E402
from tracker_noise import (  # noqa: E402
    EMBEDDING_DIM,
    FRAME_HEIGHT,
    FRAME_WIDTH,
    SETTINGS,
    Noise,
    Scene,
    detect,
    make_scene,
)

from centernet_lightning.datasets.mot_io import read_mot_txt  # noqa: E402
from centernet_lightning.eval.mot import evaluate_tracks  # noqa: E402
from centernet_lightning.tracking import Tracker, tracker_settings  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
PEER_ENV = ROOT / "runs" / "bench_env" / "peers"
# pip arguments, one install each; boxmot without its dependencies (see the module docstring)
PEER_INSTALLS = (
    ["--no-deps", "boxmot==25.0.0"],
    ["lapx>=0.5.5,<1", "filterpy>=1.4.5,<2", "supervision>=0.31,<0.32", "trackers>=2.6,<3"],
)
PEER_PACKAGES = ("boxmot", "lapx", "filterpy", "supervision", "trackers")

EMBEDDING_NOISE = 0.057  # per dimension: same-object cosine distance median about 0.17
# The simulated detectors of tracker_noise.py, with embeddings of that same-object distance.
DETECTORS = {noise.name: replace(noise, embedding_noise=EMBEDDING_NOISE) for noise in SETTINGS if noise.name != "clean"}
SPEEDS = {"0.5-3 px/frame": (0.5, 3.0), "2-6 px/frame": (2.0, 6.0), "4-10 px/frame": (4.0, 10.0)}
VIEWPORT = (int(FRAME_WIDTH), int(FRAME_HEIGHT))  # width, height of the panning camera's image
WORLD = (2 * VIEWPORT[0], 2 * VIEWPORT[1])  # the area the panning camera looks into
WORLD_OBJECTS = 60  # objects alive at a time in the world: about 15 in view, as in the static scenes
TUD_SEQUENCES = ("TUD-Campus", "TUD-Stadtmitte")
TUD_SIZE = (640.0, 480.0)
GROUPS = {
    "static": "Static camera, 1280x720",
    "panning": "Panning camera, 1280x720 view of a 2560x1440 world",
    "tud": "TUD ground truth (motmetrics' MOT15 files, 640x480) with simulated detections",
}

# Our tracker's rows: (settings, fed embeddings, fed images, groups it runs on; None: every one).
OURS: dict[str, tuple[dict[str, Any], bool, bool, tuple[str, ...] | None]] = {
    "ours": ({}, True, False, None),
    "ours + CMC": ({"camera_motion": "sparse_flow"}, True, True, ("panning",)),
    "ours, FairMOT preset": (tracker_settings("fairmot"), True, False, None),
    "ours (no emb)": ({}, False, False, None),  # ByteTrack + OC-SORT's recovery
    "ours, ByteTrack preset": (tracker_settings("bytetrack"), False, False, None),
}
ORACLE = "perfect association"  # every true detection above the low threshold under its true id


@dataclass(frozen=True)
class Peer:
    """A peer tracker: its library, its name there, and its names for the score thresholds.

    ``thresholds`` maps ``high`` (first association), ``low`` (lowest score used) and ``new`` (a
    new track) to the tracker's argument; a role it lacks is left out. boxmot trackers are built by
    its ``create_tracker``, on the defaults of its shipped configs; camera-motion compensation is
    switched on where the data set has images.
    """

    library: str
    tracker: str
    thresholds: dict[str, str]


PEERS: dict[str, Peer] = {
    # new tracks: track_thresh as well
    "boxmot ByteTrack": Peer("boxmot", "bytetrack", {"high": "track_thresh", "low": "min_conf"}),
    "boxmot BoT-SORT": Peer(
        "boxmot", "botsort", {"high": "track_high_thresh", "low": "track_low_thresh", "new": "new_track_thresh"}
    ),
    # min_conf: its low-score (BYTE) stage, off by default (use_byte=False)
    "boxmot OC-SORT": Peer("boxmot", "ocsort", {"high": "det_thresh", "low": "min_conf"}),
    "boxmot DeepOCSORT": Peer("boxmot", "deepocsort", {"high": "det_thresh"}),
    # supervision 0.31's tracker; every score below high is low
    "trackers ByteTrack (sv)": Peer(
        "trackers", "ByteTrackTracker", {"high": "high_conf_det_threshold", "new": "track_activation_threshold"}
    ),
}

Frame = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]  # boxes [D, 4], scores, embeddings, true ids
Tracks = tuple[list[np.ndarray], list[np.ndarray]]  # per frame: ids [M], boxes [M, 4] XYXY


@dataclass
class Sequence:
    """One sequence: ground truth, the simulated detections and, when panning, how to render it."""

    group: str
    setting: str
    seed: int
    truth: Scene
    detections: list[Frame]
    world: np.ndarray | None = None  # uint8 [H, W] world image (panning only)
    offsets: np.ndarray | None = None  # int [T, 2] viewport top-left x, y in the world per frame

    def image(self, frame: int) -> np.ndarray:
        """The grayscale uint8 viewport image of a frame (panning sequences)."""
        assert self.world is not None and self.offsets is not None
        return render(self.world, self.offsets[frame])


# --------------------------------------------------------------------------------------------
# Data


def normalized(embeddings: np.ndarray) -> np.ndarray:
    """Rows scaled to unit length, as a re-ID head outputs them (DeepOCSORT relies on it)."""
    return (embeddings / np.linalg.norm(embeddings, axis=1, keepdims=True)).astype(np.float32)


def simulate(truth: Scene, rng: np.random.Generator, image_size: tuple[float, float], noise: Noise) -> list[Frame]:
    """A simulated detector on the ground truth, embeddings normalised."""
    frames = detect(truth, noise, rng, image_size=image_size)
    return [(boxes, scores, normalized(embeddings), ids) for boxes, scores, embeddings, ids in frames]


def static_sequence(frames: int, seed: int, setting: str, noise: Noise) -> Sequence:
    """Pedestrian-like objects in a fixed 1280x720 frame, speeds drawn from ``SPEEDS[setting]``."""
    rng = np.random.default_rng(seed)
    truth = make_scene(frames, rng, speed_range=SPEEDS[setting])
    return Sequence("static", setting, seed, truth, simulate(truth, rng, (FRAME_WIDTH, FRAME_HEIGHT), noise))


def world_image(rng: np.random.Generator) -> np.ndarray:
    """A fixed textured uint8 world: blurred noise at three scales plus random flat rectangles."""
    width, height = WORLD
    image = np.zeros((height, width), np.float32)
    for cell, amplitude in ((64, 90.0), (16, 50.0), (4, 25.0)):  # coarse to fine blobs
        noise = rng.normal(0, amplitude, (height // cell, width // cell)).astype(np.float32)
        image += cv2.resize(noise, (width, height), interpolation=cv2.INTER_CUBIC)
    for _ in range(400):  # edges and corners for feature trackers
        x, y = rng.integers(0, width - 20), rng.integers(0, height - 20)
        w, h = rng.integers(10, 120, 2)
        image[y : y + h, x : x + w] = 0.3 * image[y : y + h, x : x + w] + rng.uniform(-120, 120)
    return np.clip(image + 128, 0, 255).astype(np.uint8)


def camera_path(frames: int, rng: np.random.Generator) -> np.ndarray:
    """Viewport top-left per frame, int [T, 2]: per axis a slow sweep plus a faster sway."""
    room = np.subtract(WORLD, VIEWPORT) / 2  # how far the view may move from the centre, per axis
    time_steps = np.arange(frames)[:, None]
    slow_period, fast_period = rng.uniform(400, 800, 2), rng.uniform(120, 250, 2)  # frames, per axis
    slow_amplitude, fast_amplitude = room * rng.uniform(0.5, 0.75, 2), room * rng.uniform(0.05, 0.15, 2)
    phase = rng.uniform(0, 2 * np.pi, (2, 2))
    position = (
        room
        + slow_amplitude * np.sin(2 * np.pi * time_steps / slow_period + phase[0])
        + fast_amplitude * np.sin(2 * np.pi * time_steps / fast_period + phase[1])
    )
    return np.round(position).astype(np.int64)


def render(world: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """The viewport's grayscale image: a contiguous crop of the world."""
    x, y = int(offset[0]), int(offset[1])
    return np.ascontiguousarray(world[y : y + VIEWPORT[1], x : x + VIEWPORT[0]])


def to_viewport(world_scene: Scene, offsets: np.ndarray, min_visible: float = 0.5) -> Scene:
    """World boxes in viewport coordinates, clipped to it; objects less than half visible dropped."""
    limits = np.array([VIEWPORT[0], VIEWPORT[1], VIEWPORT[0], VIEWPORT[1]], dtype=np.float64)
    ids, boxes = [], []
    for frame_ids, frame_boxes, offset in zip(world_scene.ids, world_scene.boxes, offsets, strict=True):
        shifted = frame_boxes - np.tile(offset, 2)
        clipped = np.clip(shifted, 0, limits)
        area = np.prod(shifted[:, 2:] - shifted[:, :2], axis=1)
        visible = np.prod(np.maximum(clipped[:, 2:] - clipped[:, :2], 0), axis=1)
        keep = visible >= min_visible * area
        ids.append(frame_ids[keep])
        boxes.append(clipped[keep])
    return Scene(ids, boxes)


def panning_sequence(frames: int, seed: int, setting: str, noise: Noise) -> Sequence:
    """Objects in the world seen through the panning viewport, with the world image to render."""
    rng = np.random.default_rng(seed)
    world_scene = make_scene(frames, rng, objects_per_frame=WORLD_OBJECTS, speed_range=SPEEDS[setting], area=WORLD)
    offsets = camera_path(frames, rng)
    truth = to_viewport(world_scene, offsets)
    detections = simulate(truth, rng, (FRAME_WIDTH, FRAME_HEIGHT), noise)
    return Sequence("panning", setting, seed, truth, detections, world_image(rng), offsets)


def tud_file(name: str) -> Path | None:
    """``motmetrics/data/<name>/gt.txt`` of the installed motmetrics package, if it ships it."""
    spec = importlib.util.find_spec("motmetrics")
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "data" / name / "gt.txt"
    return path if path.is_file() else None


def tud_sequence(path: Path, seed: int, noise: Noise) -> Sequence:
    """A TUD ground truth (MOT15 rules: rows flagged 0 dropped) with simulated detections."""
    rows = read_mot_txt(path)  # 1-based MOTChallenge boxes -> 0-based XYXY, as the project reads them
    kept = rows.scores != 0  # column 7, the evaluate flag of ground truth
    frames, ids, boxes = rows.frames[kept], rows.ids[kept], rows.boxes[kept]
    truth = Scene(
        [ids[frames == frame] for frame in range(1, int(frames.max()) + 1)],
        [boxes[frames == frame] for frame in range(1, int(frames.max()) + 1)],
    )
    detections = simulate(truth, np.random.default_rng(seed), TUD_SIZE, noise)
    return Sequence("tud", path.parent.name, seed, truth, detections)


def make_sequences(group: str, frames: int, seeds: list[int], noise: Noise) -> list[Sequence]:
    """Every sequence of one data set group, settings outer, seeds inner."""
    if group == "tud":
        sequences = []
        for name in TUD_SEQUENCES:
            path = tud_file(name)
            if path is None:
                print(f"note: motmetrics/data/{name}/gt.txt is not in the installed motmetrics package: skipped")
                continue
            sequences += [tud_sequence(path, seed, noise) for seed in seeds]
        return sequences
    build = static_sequence if group == "static" else panning_sequence
    return [build(frames, seed, setting, noise) for setting in SPEEDS for seed in seeds]


# --------------------------------------------------------------------------------------------
# Our tracker


def our_thresholds() -> dict[str, float]:
    """The score thresholds of ``ours``, in the roles of :class:`Peer`: given to the peers too."""
    tracker = Tracker()
    return {"high": tracker.high_thresh, "low": tracker.low_thresh, "new": tracker.new_track_thresh}


def our_rows(group: str) -> list[str]:
    """The rows of :data:`OURS` that run on a data set group."""
    return [name for name, (*_, groups) in OURS.items() if groups is None or group in groups]


def run_ours(sequence: Sequence, name: str) -> tuple[Tracks, float]:
    """Our tracker's tracks on a sequence and its mean seconds per ``update`` call."""
    settings, with_embeddings, with_image, _ = OURS[name]
    tracker = Tracker(**settings)
    pred_ids, pred_boxes, seconds = [], [], 0.0
    for index, (boxes, scores, embeddings, _) in enumerate(sequence.detections):
        image = sequence.image(index) if with_image else None
        start = time.perf_counter()
        tracks = tracker.update(boxes, scores, embeddings if with_embeddings else None, image=image)
        seconds += time.perf_counter() - start
        pred_ids.append(np.asarray(tracks["ids"]))
        pred_boxes.append(np.asarray(tracks["boxes"]))
    return (pred_ids, pred_boxes), seconds / len(sequence.detections)


def run_oracle(sequence: Sequence) -> tuple[Tracks, float]:
    """The perfect association of these detections: an upper bound for any tracker fed them."""
    low = Tracker().low_thresh
    kept = [(true_ids > 0) & (scores > low) for _, scores, _, true_ids in sequence.detections]
    pred_ids = [frame[3][keep] for frame, keep in zip(sequence.detections, kept)]
    pred_boxes = [frame[0][keep] for frame, keep in zip(sequence.detections, kept)]
    return (pred_ids, pred_boxes), 0.0


# --------------------------------------------------------------------------------------------
# Peers: their environment, and the worker that runs them in it


def peer_python() -> Path:
    """The peer environment's Python, creating and filling ``runs/bench_env/peers`` the first time."""
    python = PEER_ENV / "bin" / "python"
    marker = PEER_ENV / ".installed"
    if marker.exists():
        return python
    print(f"setting up the peer environment in {PEER_ENV} (once)", flush=True)
    venv.EnvBuilder(with_pip=True, clear=True).create(PEER_ENV)
    site_packages = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    # torch, numpy, OpenCV, ... come from the project's environment; the peers' own packages go first
    (Path(site_packages) / "project_venv.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    for arguments in PEER_INSTALLS:
        subprocess.run(
            [python, "-m", "pip", "install", "--quiet", "--disable-pip-version-check", *arguments], check=True
        )
    torch_file = subprocess.run(
        [python, "-c", "import torch; print(torch.__file__)"], check=True, capture_output=True, text=True
    ).stdout.strip()
    if not torch_file.startswith(sysconfig.get_paths()["purelib"]):
        raise RuntimeError(f"the peer environment installed its own torch ({torch_file}); remove {PEER_ENV}")
    marker.write_text("")
    return python


def peer_versions(python: Path) -> str:
    """``name version`` of the installed peer packages, as the peer environment reports them."""
    code = "from importlib.metadata import version; print(', '.join(f'{n} {version(n)}' for n in %r))"
    result = subprocess.run([python, "-c", code % (PEER_PACKAGES,)], check=True, capture_output=True, text=True)
    return result.stdout.strip()


def save_sequence(sequence: Sequence, path: Path) -> None:
    """Detections (and the world to render, when panning) for the worker."""
    boxes, scores, embeddings, _ = (np.concatenate(column) for column in zip(*sequence.detections, strict=True))
    arrays = {
        "counts": np.array([len(frame[1]) for frame in sequence.detections]),
        "boxes": boxes.astype(np.float32),
        "scores": scores.astype(np.float32),
        "embeddings": embeddings.astype(np.float32),
    }
    if sequence.world is not None:
        arrays |= {"world": sequence.world, "offsets": sequence.offsets}
    np.savez(path, **arrays)


def split(values: np.ndarray, counts: np.ndarray) -> list[np.ndarray]:
    """Concatenated per-frame rows back into one array per frame."""
    return np.split(values, np.cumsum(counts)[:-1])


def run_peers(
    sequences: list[Sequence], thresholds: dict[str, float] | None
) -> tuple[dict[tuple[int, str], tuple[Tracks, float] | str], str]:
    """Every peer on every sequence in one worker subprocess: {(sequence, peer): (tracks, s/frame) or error}."""
    python = peer_python()
    results: dict[tuple[int, str], tuple[Tracks, float] | str] = {}
    (ROOT / "runs" / "bench_env").mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=ROOT / "runs" / "bench_env") as folder:
        (Path(folder) / "thresholds.json").write_text(json.dumps(thresholds))
        for index, sequence in enumerate(sequences):
            save_sequence(sequence, Path(folder) / f"sequence_{index:03d}.npz")
        environment = os.environ | {"OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
        environment["PYTHONPATH"] = os.pathsep.join((str(ROOT), str(ROOT / "benchmarks")))
        print(f"running {len(PEERS)} peers on {len(sequences)} sequences in {python}", flush=True)
        subprocess.run([python, __file__, "--peer-worker", folder], check=True, env=environment)
        for index in range(len(sequences)):
            with np.load(Path(folder) / f"tracks_{index:03d}.npz") as saved:
                for slot, name in enumerate(saved["names"]):
                    if str(saved["errors"][slot]):
                        results[index, str(name)] = str(saved["errors"][slot])
                        continue
                    counts = saved[f"counts_{slot}"]
                    tracks = (split(saved[f"ids_{slot}"], counts), split(saved[f"boxes_{slot}"], counts))
                    results[index, str(name)] = (tracks, float(saved[f"seconds_{slot}"]))
    return results, peer_versions(python)


def build_peer(name: str, with_image: bool, thresholds: dict[str, float] | None) -> Any:
    """A peer tracker, with our score thresholds unless ``thresholds`` is None (its own defaults).

    boxmot's BoT-SORT and DeepOCSORT compensate camera motion only when there is an image.
    """
    import logging

    peer = PEERS[name]
    options = {argument: thresholds[role] for role, argument in peer.thresholds.items()} if thresholds else {}
    if peer.library == "trackers":
        import trackers

        return getattr(trackers, peer.tracker)(**options)
    import boxmot.utils  # noqa: F401 (sets boxmot's logger to INFO when first imported)
    from boxmot import create_tracker
    from boxmot.trackers.specs import TrackerSpec

    logging.getLogger("boxmot").setLevel(logging.WARNING)  # no INFO line per tracker built
    if peer.tracker == "botsort":
        options["use_cmc"] = with_image
    elif peer.tracker == "deepocsort":
        options["cmc_off"] = not with_image
    return create_tracker(TrackerSpec(name=peer.tracker, options=tuple(sorted(options.items()))))  # sorted: required


def peer_adapter(
    name: str, tracker: Any
) -> tuple[Callable[..., tuple], Callable[[Any], tuple[np.ndarray, np.ndarray]]]:
    """How a peer takes one frame (boxes, scores, embeddings, gray image or None) and how its output reads."""
    if PEERS[name].library == "trackers":
        import supervision as sv

        def trackers_inputs(boxes, scores, embeddings, image) -> tuple:
            return (sv.Detections(xyxy=boxes, confidence=scores, class_id=np.zeros(len(scores), dtype=int)),)

        def trackers_tracks(output) -> tuple[np.ndarray, np.ndarray]:
            confirmed = output.tracker_id >= 0  # -1: not (yet) a track
            return output.tracker_id[confirmed], output.xyxy[confirmed]

        return trackers_inputs, trackers_tracks

    import torch
    from boxmot.structures import Boxes, Detections

    needs = tracker.requirements  # embeddings: BoT-SORT and DeepOCSORT; frame: when CMC is on

    def boxmot_inputs(boxes, scores, embeddings, image) -> tuple:
        detections = Detections(
            geometry=Boxes(torch.from_numpy(boxes)),
            scores=torch.from_numpy(scores),
            class_ids=torch.zeros(len(scores), dtype=torch.int64),
            sample_id="frame",
            embeddings=torch.from_numpy(embeddings) if needs.embeddings else None,
        )
        # BGR, as OpenCV reads a video
        return detections, cv2.cvtColor(image, cv2.COLOR_GRAY2BGR) if needs.frame else None

    def boxmot_tracks(output) -> tuple[np.ndarray, np.ndarray]:
        return output.track_ids.numpy(), output.geometry.values.numpy()

    return boxmot_inputs, boxmot_tracks


def run_peer(
    name: str, arrays: dict[str, np.ndarray], thresholds: dict[str, float] | None
) -> tuple[list[np.ndarray], list[np.ndarray], float]:
    """One peer on one saved sequence: ids and boxes per frame, and mean seconds per update call."""
    counts = arrays["counts"]
    boxes, scores, embeddings = (split(arrays[key], counts) for key in ("boxes", "scores", "embeddings"))
    world, offsets = arrays.get("world"), arrays.get("offsets")
    tracker = build_peer(name, world is not None, thresholds)
    inputs_of, tracks_of = peer_adapter(name, tracker)
    pred_ids, pred_boxes, seconds = [], [], 0.0
    for index in range(len(counts)):
        image = None if world is None else render(world, offsets[index])
        inputs = inputs_of(boxes[index], scores[index], embeddings[index], image)
        start = time.perf_counter()
        output = tracker.update(*inputs)
        seconds += time.perf_counter() - start
        ids, frame_boxes = tracks_of(output)
        pred_ids.append(ids.astype(np.int64))
        pred_boxes.append(frame_boxes.astype(np.float64))
    return pred_ids, pred_boxes, seconds / len(counts)


def peer_worker(folder: Path) -> None:
    """Run every peer on every ``sequence_*.npz`` in ``folder``, writing ``tracks_*.npz`` beside them.

    ``folder/thresholds.json`` holds the score thresholds to give the peers, or null.
    """
    import torch

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    thresholds = json.loads((folder / "thresholds.json").read_text())
    for path in sorted(folder.glob("sequence_*.npz")):
        with np.load(path) as saved:
            arrays = dict(saved)
        out: dict[str, np.ndarray] = {}
        errors = []
        for slot, name in enumerate(PEERS):
            try:
                ids, boxes, seconds = run_peer(name, arrays, thresholds)
            except Exception as error:  # one failing peer must not cost the others' results
                errors.append(f"{type(error).__name__}: {error}".replace("\n", " ")[:300])
                continue
            errors.append("")
            out |= {
                f"ids_{slot}": np.concatenate(ids).astype(np.int64),
                f"boxes_{slot}": np.concatenate(boxes).reshape(-1, 4),
                f"counts_{slot}": np.array([len(frame) for frame in ids]),
                f"seconds_{slot}": np.array(seconds),
            }
        np.savez(path.with_name(path.name.replace("sequence_", "tracks_")), names=list(PEERS), errors=errors, **out)


# --------------------------------------------------------------------------------------------
# Scores and tables


@dataclass
class Row:
    """One (setting, tracker) line: metrics per seed and seconds per frame per seed."""

    setting: str
    tracker: str
    metrics: list[dict[str, float]]
    seconds: list[float]
    error: str = ""

    def value(self, name: str) -> float:
        values = [metrics[name] for metrics in self.metrics]
        return float(np.sum(values) if name == "IDSW" else np.mean(values))


METRICS = ("HOTA", "MOTA", "IDF1", "IDSW")


def print_table(title: str, rows: list[Row], notes: list[str]) -> None:
    """The table of a data set group, then per setting the best peer by HOTA and IDF1 against ours."""
    print(f"\n{title}")
    for note in notes:
        print(f"  ({note})")
    print(f"{'setting':<16} {'tracker':<24} " + " ".join(f"{name:>6}" for name in METRICS) + f" {'ms/frame':>8}")
    for row in rows:
        if row.error:
            print(f"{row.setting:<16} {row.tracker:<24} failed: {row.error}")
            continue
        cells = [f"{row.value(name):>6.0f}" if name == "IDSW" else f"{row.value(name):>6.3f}" for name in METRICS]
        print(f"{row.setting:<16} {row.tracker:<24} {' '.join(cells)} {np.mean(row.seconds) * 1e3:>8.2f}")
    for setting in dict.fromkeys(row.setting for row in rows):
        ours = next((row for row in rows if row.setting == setting and row.tracker == "ours"), None)
        peers = [row for row in rows if row.setting == setting and row.tracker in PEERS and not row.error]
        if ours is None or not peers:
            continue
        verdicts = []
        for metric in ("HOTA", "IDF1"):
            best = max(peers, key=lambda row: row.value(metric))
            mine, theirs = ours.value(metric), best.value(metric)
            verdicts.append(
                f"best peer by {metric}: {best.tracker} {theirs:.3f}, ours {mine:.3f} {'>=' if mine >= theirs else '<'}"
            )
        print(f"  {setting}: " + "; ".join(verdicts))


def evaluate(sequence: Sequence, tracks: Tracks) -> dict[str, float]:
    """TrackEval's metrics of one tracker on one sequence."""
    return evaluate_tracks(sequence.truth.ids, sequence.truth.boxes, *tracks)


def same_object_distance(rng: np.random.Generator, count: int = 2000) -> float:
    """Median cosine distance between two simulated embeddings of one object."""
    identity = normalized(rng.normal(0, 1, (count, EMBEDDING_DIM)))
    first, second = (normalized(identity + rng.normal(0, EMBEDDING_NOISE, identity.shape)) for _ in range(2))
    return float(np.median(1 - (first * second).sum(1)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=200, help="frames per synthetic sequence (30 fps)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1], help="one sequence per seed and setting")
    parser.add_argument("--only", choices=list(GROUPS), help="run one data set group")
    parser.add_argument(
        "--noise", choices=list(DETECTORS), default="moderate", help="the simulated detector (tracker_noise.py)"
    )
    parser.add_argument("--no-peers", action="store_true", help="our tracker only (no peer environment needed)")
    parser.add_argument(
        "--peer-defaults", action="store_true", help="peers keep their own score thresholds instead of ours"
    )
    parser.add_argument("--peer-worker", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.peer_worker is not None:
        peer_worker(args.peer_worker)
        return

    import torch

    torch.set_num_threads(1)
    cv2.setNumThreads(1)
    started = time.perf_counter()
    groups = [args.only] if args.only else list(GROUPS)
    sequences = [
        sequence
        for group in groups
        for sequence in make_sequences(group, args.frames, args.seeds, DETECTORS[args.noise])
    ]
    rows_of: dict[tuple[str, str, str], Row] = {}

    def add(sequence: Sequence, tracker: str, result: tuple[Tracks, float] | str) -> None:
        row = rows_of.setdefault((sequence.group, sequence.setting, tracker), Row(sequence.setting, tracker, [], []))
        if isinstance(result, str):
            row.error = result
            return
        tracks, seconds = result
        row.metrics.append(evaluate(sequence, tracks))
        row.seconds.append(seconds)

    for sequence in sequences:
        for name in our_rows(sequence.group):
            add(sequence, name, run_ours(sequence, name))
        add(sequence, ORACLE, run_oracle(sequence))
    versions = "peers skipped (--no-peers)"
    if not args.no_peers and sequences:
        peer_results, versions = run_peers(sequences, None if args.peer_defaults else our_thresholds())
        for (index, name), result in peer_results.items():
            add(sequences[index], name, result)

    cosine = same_object_distance(np.random.default_rng(0))
    print(
        f"\n{args.frames} frames per synthetic sequence, seeds {args.seeds}; detector: {args.noise} noise, embeddings "
        f"64-d, same-object cosine distance median {cosine:.2f}. Means over seeds, IDSW summed; ms/frame: the update "
        f"call, one thread.\nPeers: {versions}; score thresholds: "
        + ("their own" if args.peer_defaults else f"ours {our_thresholds()}")
    )
    for group in groups:
        notes = []
        if group == "panning":
            paths = [sequence.offsets for sequence in sequences if sequence.offsets is not None]
            speed = np.concatenate([np.linalg.norm(np.diff(path, axis=0), axis=1) for path in paths])
            notes.append(f"camera speed mean {speed.mean():.1f}, max {speed.max():.1f} px/frame")
            notes.append("ours + CMC: sparse-flow camera-motion compensation from the rendered image, time included")
            if not args.no_peers:
                notes.append("CMC from the image: boxmot BoT-SORT and DeepOCSORT (sparse optical flow), time included")
        elif not args.no_peers:
            notes.append("no images: boxmot BoT-SORT and DeepOCSORT ran without camera-motion compensation")
        settings = list(dict.fromkeys(sequence.setting for sequence in sequences if sequence.group == group))
        trackers = our_rows(group) + list(PEERS) + [ORACLE]
        rows = sorted(
            (row for (row_group, _, _), row in rows_of.items() if row_group == group),
            key=lambda row: (settings.index(row.setting), trackers.index(row.tracker)),
        )
        if rows:
            print_table(GROUPS[group], rows, notes)
    print(f"\ntotal {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
