"""The tracker alone on a synthetic scene: how MOTA / IDF1 / HOTA degrade with detector and re-ID noise.

The scene (generated here, seeded): objects of 60-200 px height walk through a 1280x720 frame at
1-5 px per frame, turning now and then and bouncing off the borders, with a few pairs sent
straight at each other so that they cross; they appear and leave over the sequence. A simulated
detector observes them with

- box jitter (centre and log-size noise proportional to the box height),
- misses: independent ones, plus occlusion-like gaps of 3-8 frames,
- partly occluded detections whose score falls into the low band (0.15-0.4),
- false positives (random boxes, scores 0.1-0.6, random embeddings),
- 64-d embeddings: the object's identity vector plus Gaussian noise.

Each setting is run through five trackers on the same detections:

- ``ours``: :class:`~centernet_lightning.tracking.Tracker` with embeddings (FairMOT's appearance
  + motion association, then ByteTrack's low-score stage);
- ``xywh state``: the same with BoT-SORT's Kalman state (width and height instead of aspect ratio
  and height);
- ``no low-score stage``: the same with ``low_thresh = high_thresh`` (FairMOT alone);
- ``no embeddings``: the tracker without embeddings (ByteTrack);
- ``perfect association``: every detection of a real object above ``low_thresh`` under its
  true id, false positives dropped: what an oracle linking these detections would score, an
  upper bound for any tracker fed them.

A second table sweeps the embedding noise at the moderate detector noise (``ours`` against
``no embeddings``), from re-ID that separates objects well (same-object cosine 0.86) to re-ID
barely better than chance, to show where the appearance stage's threshold stops holding.

Scores are TrackEval's (``centernet_lightning.eval.mot.evaluate_tracks``), IoU 0.5.

    python benchmarks/tracker_noise.py [--frames 600] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import time
from dataclasses import dataclass, replace

import numpy as np

from centernet_lightning.eval.mot import evaluate_tracks
from centernet_lightning.tracking import Tracker

FRAME_WIDTH, FRAME_HEIGHT = 1280.0, 720.0
EMBEDDING_DIM = 64
ASPECT = 0.4  # width / height, pedestrians
LOW_THRESH = Tracker().low_thresh  # the oracle keeps what the tracker could use


@dataclass(frozen=True)
class Noise:
    """A simulated detector."""

    name: str
    jitter: float  # std of centre noise, fraction of the box height; also std of log(w), log(h)
    miss: float  # probability of an independent miss
    gap: float  # probability per frame that a 3-8 frame occlusion gap starts
    low_score: float  # probability that a detection's score falls to 0.15-0.4
    false_positives: float  # mean number per frame
    embedding_noise: float  # std per embedding dimension (identity vectors have unit norm)


SETTINGS = [  # detector noise, with embeddings of a good re-ID head
    Noise("clean", 0.0, 0.0, 0.0, 0.0, 0.0, 0.0),
    Noise("mild", 0.02, 0.05, 0.005, 0.05, 0.5, 0.05),
    Noise("moderate", 0.04, 0.10, 0.01, 0.15, 2.0, 0.05),
    Noise("hard", 0.06, 0.20, 0.02, 0.25, 5.0, 0.05),
]
# Embedding noise sweep at the moderate detector noise: per-dimension std of 64-d embeddings.
EMBEDDING_NOISE = [0.05, 0.08, 0.10, 0.12, 0.15]


@dataclass
class Scene:
    """Ground truth per frame: ids int [N_t], boxes float [N_t, 4] XYXY."""

    ids: list[np.ndarray]
    boxes: list[np.ndarray]


def make_scene(
    frames: int,
    rng: np.random.Generator,
    objects_per_frame: int = 15,
    speed_range: tuple[float, float] = (1.0, 5.0),
    area: tuple[float, float] = (FRAME_WIDTH, FRAME_HEIGHT),
) -> Scene:
    """Trajectories with constant velocity, turns, border bounces, births and deaths, crossings.

    ``speed_range``: the range (px per frame) each object's speed is drawn from, uniformly; ``area``: the
    width and height of the region they walk in (the frame, or a world a moving camera looks into).
    """
    area_width, area_height = area
    lifetime = (100, 400)
    count = int(objects_per_frame * frames / np.mean(lifetime)) + objects_per_frame
    start = rng.integers(-lifetime[1] // 2, frames, count)
    start[:objects_per_frame] = 0
    end = start + rng.integers(*lifetime, count)
    height = rng.uniform(60, 200, count)
    position = np.stack((rng.uniform(50, area_width - 50, count), rng.uniform(100, area_height - 100, count)), 1)
    heading = rng.uniform(-np.pi, np.pi, count)
    speed = rng.uniform(*speed_range, count)
    turn = np.zeros(count)
    # Every fifth pair is sent head-on along a horizontal line: they cross mid-frame.
    for first in range(objects_per_frame, count - 1, 10):
        y = rng.uniform(200, area_height - 200)
        position[first], position[first + 1] = (100, y), (area_width - 100, y + rng.normal(0, 10))
        heading[first], heading[first + 1] = 0.0, np.pi
        speed[first + 1] = speed[first]
        start[first + 1], end[first + 1] = start[first], end[first]
    ids, boxes = [], []
    for frame in range(-lifetime[1] // 2, frames):
        alive = (start <= frame) & (frame < end)
        change = alive & (rng.uniform(size=count) < 0.02)  # a new turn rate now and then
        turn[change] = rng.choice([0.0, 0.0, -0.03, 0.03], change.sum())
        heading[alive] += turn[alive]
        position[alive] += speed[alive, None] * np.stack((np.cos(heading[alive]), np.sin(heading[alive])), 1)
        half = np.stack((height * ASPECT, height), 1) / 2
        low, high = half, np.array([area_width, area_height]) - half
        for axis in range(2):  # bounce off the borders
            out = alive & ((position[:, axis] < low[:, axis]) | (position[:, axis] > high[:, axis]))
            position[out, axis] = np.clip(position[out, axis], low[out, axis], high[out, axis])
            heading[out] = np.pi - heading[out] if axis == 0 else -heading[out]
        if frame >= 0:
            ids.append(np.flatnonzero(alive) + 1)
            boxes.append(np.concatenate((position[alive] - half[alive], position[alive] + half[alive]), 1))
    return Scene(ids, boxes)


def detect(
    scene: Scene,
    noise: Noise,
    rng: np.random.Generator,
    image_size: tuple[float, float] = (FRAME_WIDTH, FRAME_HEIGHT),
):
    """Per frame: boxes [D, 4], scores [D], embeddings [D, 64], true ids [D] (0 = false positive).

    False positives fall anywhere in the image of ``image_size`` (width, height).
    """
    num_ids = max(int(ids.max(initial=0)) for ids in scene.ids) + 1
    identity = rng.normal(0, 1, (num_ids, EMBEDDING_DIM))
    identity /= np.linalg.norm(identity, axis=1, keepdims=True)
    gap_until = np.zeros(num_ids, dtype=np.int64)
    frames = []
    for frame, (ids, boxes) in enumerate(zip(scene.ids, scene.boxes)):
        starting = (gap_until[ids] <= frame) & (rng.uniform(size=len(ids)) < noise.gap)
        gap_until[ids[starting]] = frame + rng.integers(3, 9, starting.sum())
        seen = (gap_until[ids] <= frame) & (rng.uniform(size=len(ids)) >= noise.miss)
        ids, boxes = ids[seen], boxes[seen]
        height = boxes[:, 3] - boxes[:, 1]
        centre = (boxes[:, :2] + boxes[:, 2:]) / 2 + rng.normal(0, 1, (len(ids), 2)) * noise.jitter * height[:, None]
        size = (boxes[:, 2:] - boxes[:, :2]) * np.exp(rng.normal(0, noise.jitter, (len(ids), 2)))
        boxes = np.concatenate((centre - size / 2, centre + size / 2), 1)
        scores = rng.uniform(0.5, 0.95, len(ids))
        occluded = rng.uniform(size=len(ids)) < noise.low_score
        scores[occluded] = rng.uniform(0.15, 0.4, occluded.sum())
        embeddings = identity[ids] + rng.normal(0, noise.embedding_noise, (len(ids), EMBEDDING_DIM))

        num_false = rng.poisson(noise.false_positives)
        false_height = rng.uniform(60, 200, num_false)
        false_centre = rng.uniform(0, 1, (num_false, 2)) * np.asarray(image_size)
        false_half = np.stack((false_height * ASPECT, false_height), 1) / 2
        boxes = np.concatenate((boxes, np.concatenate((false_centre - false_half, false_centre + false_half), 1)))
        scores = np.concatenate((scores, rng.uniform(0.1, 0.6, num_false)))
        embeddings = np.concatenate((embeddings, rng.normal(0, 1, (num_false, EMBEDDING_DIM))))
        true_ids = np.concatenate((ids, np.zeros(num_false, dtype=np.int64)))
        order = rng.permutation(len(true_ids))  # detection order carries no identity
        frames.append((boxes[order], scores[order], embeddings[order], true_ids[order]))
    return frames


def run_tracker(detections, tracker: Tracker | None, use_embeddings: bool):
    """Predicted ids and boxes per frame; ``tracker=None`` is the perfect association."""
    pred_ids, pred_boxes = [], []
    for boxes, scores, embeddings, true_ids in detections:
        if tracker is None:
            keep = (true_ids > 0) & (scores > LOW_THRESH)
            pred_ids.append(true_ids[keep])
            pred_boxes.append(boxes[keep])
            continue
        tracks = tracker.update(boxes, scores, embeddings if use_embeddings else None)
        pred_ids.append(tracks["ids"])
        pred_boxes.append(tracks["boxes"])
    return pred_ids, pred_boxes


def evaluate(scene: Scene, detections, build, use_embeddings: bool) -> tuple[dict[str, float], float]:
    """TrackEval metrics of one tracker on one sequence, and its seconds per frame."""
    start = time.perf_counter()
    pred_ids, pred_boxes = run_tracker(detections, build(), use_embeddings)
    seconds = (time.perf_counter() - start) / len(detections)
    return evaluate_tracks(scene.ids, scene.boxes, pred_ids, pred_boxes), seconds


def same_object_cosine(embedding_noise: float, rng: np.random.Generator) -> float:
    """Mean cosine similarity of two noisy observations of one object (1 = perfect re-ID)."""
    identity = rng.normal(0, 1, (1000, EMBEDDING_DIM))
    identity /= np.linalg.norm(identity, axis=1, keepdims=True)
    first, second = (identity + rng.normal(0, embedding_noise, identity.shape) for _ in range(2))
    cosine = (first * second).sum(1) / np.linalg.norm(first, axis=1) / np.linalg.norm(second, axis=1)
    return float(cosine.mean())


def print_table(title: str, rows: list[tuple[str, str, list[dict[str, float]], float]]) -> None:
    """One line per (setting, tracker): means over seeds, IDSW / FP / FN summed."""
    print(f"\n{title}")
    print(f"{'setting':<22} {'tracker':<20} " + " ".join(f"{name:>6}" for name in METRICS) + f" {'ms/frame':>8}")
    for setting, tracker, per_seed, seconds in rows:
        cells = []
        for name in METRICS:
            values = [metrics[name] for metrics in per_seed]
            cells.append(f"{np.sum(values):>6.0f}" if name in COUNTS else f"{np.mean(values):>6.3f}")
        print(f"{setting:<22} {tracker:<20} {' '.join(cells)} {seconds * 1e3:>8.2f}")


METRICS = ["MOTA", "IDF1", "HOTA", "IDSW", "FP", "FN"]
COUNTS = ("IDSW", "FP", "FN")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=600, help="frames per sequence (30 fps)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2], help="one sequence per seed")
    args = parser.parse_args()
    high_thresh = Tracker().high_thresh
    trackers = {
        "ours": (Tracker, True),
        "xywh state": (lambda: Tracker(kalman_state="xywh"), True),
        "no low-score stage": (lambda: Tracker(low_thresh=high_thresh), True),
        "no embeddings": (Tracker, False),
        "perfect association": (lambda: None, True),
    }

    def run(noise: Noise, names: list[str]) -> list[tuple[str, list[dict[str, float]], float]]:
        results = {name: ([], 0.0) for name in names}
        for seed in args.seeds:
            rng = np.random.default_rng(seed)
            scene = make_scene(args.frames, rng)
            detections = detect(scene, noise, rng)
            for name in names:
                metrics, seconds = evaluate(scene, detections, *trackers[name])
                per_seed, total = results[name]
                results[name] = ([*per_seed, metrics], total + seconds / len(args.seeds))
        return [(name, per_seed, seconds) for name, (per_seed, seconds) in results.items()]

    print(f"{args.frames} frames x {len(args.seeds)} seeds (sequences); means over them, IDSW / FP / FN summed")
    rows = []
    for noise in SETTINGS:
        rows += [(noise.name, *row) for row in run(noise, list(trackers))]
    print_table("Detector noise (embeddings: same-object cosine about 0.86)", rows)

    moderate = next(noise for noise in SETTINGS if noise.name == "moderate")
    rows = []
    for embedding_noise in EMBEDDING_NOISE:
        cosine = same_object_cosine(embedding_noise, np.random.default_rng(0))
        noise = replace(moderate, embedding_noise=embedding_noise)
        setting = f"std {embedding_noise:.2f}, cos {cosine:.2f}"
        rows += [(setting, *row) for row in run(noise, ["ours", "no embeddings"])]
    print_table("Embedding noise at the moderate detector noise", rows)


if __name__ == "__main__":
    main()
