"""Tracker update time per frame for 10, 100 and 1000 detections, with 64-d embeddings and without.

The scene: N pedestrians (boxes 40x100 px) walking at constant velocity in a frame whose area
grows with N (about 300 x 300 px per object, so the density stays that of a crowded street
scene), observed with 2 px box jitter; 10 % of the detections get a score between the low and
the high threshold (the ByteTrack stage), and each object's 64-d embedding is its own random
unit vector plus noise. After ``--warmup`` frames (tracks confirmed, arrays at full size) it times
``--frames`` calls of ``Tracker.update`` and prints the median and the 90th percentile, and how
many tracks each frame reported (should be about N).

    python benchmarks/tracker_speed.py [--frames 50] [--warmup 10] [--sizes 10 100 1000]
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from centernet_lightning.tracking import Tracker

BOX_WIDTH, BOX_HEIGHT = 40.0, 100.0
AREA_PER_OBJECT = 300.0**2  # px^2
EMBEDDING_DIM = 64


def make_sequence(count: int, frames: int, seed: int) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per frame: boxes [N, 4] XYXY, scores [N], embeddings [N, 64]."""
    rng = np.random.default_rng(seed)
    side = np.sqrt(AREA_PER_OBJECT * count)
    start = rng.uniform(0, side, (count, 2))
    velocity = rng.normal(0, 2.0, (count, 2))  # px / frame
    identity = rng.normal(0, 1, (count, EMBEDDING_DIM))
    identity /= np.linalg.norm(identity, axis=1, keepdims=True)
    half = np.array([BOX_WIDTH, BOX_HEIGHT]) / 2
    sequence = []
    for frame in range(frames):
        centres = start + velocity * frame
        boxes = np.concatenate((centres - half, centres + half), axis=1) + rng.normal(0, 2.0, (count, 4))
        scores = rng.uniform(0.6, 0.95, count)
        low = rng.uniform(size=count) < 0.1
        scores[low] = rng.uniform(0.15, 0.35, low.sum())
        embeddings = identity + rng.normal(0, 0.1, identity.shape)
        sequence.append((boxes, scores, embeddings))
    return sequence


def time_tracker(sequence: list, warmup: int, with_embeddings: bool) -> tuple[np.ndarray, float]:
    """Per-frame update seconds over the timed frames, and the mean number of reported tracks."""
    tracker = Tracker()
    seconds, reported = [], []
    for index, (boxes, scores, embeddings) in enumerate(sequence):
        start = time.perf_counter()
        tracks = tracker.update(boxes, scores, embeddings if with_embeddings else None)
        elapsed = time.perf_counter() - start
        if index >= warmup:
            seconds.append(elapsed)
            reported.append(len(tracks["ids"]))
    return np.array(seconds), float(np.mean(reported))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=50, help="timed frames per run")
    parser.add_argument("--warmup", type=int, default=10, help="untimed frames first")
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 100, 1000], help="detections per frame")
    args = parser.parse_args()

    print(f"{'detections':>10} {'embeddings':>10} {'median ms':>10} {'p90 ms':>8} {'tracks/frame':>13}")
    for count in args.sizes:
        sequence = make_sequence(count, args.warmup + args.frames, seed=count)
        for with_embeddings in (True, False):
            seconds, reported = time_tracker(sequence, args.warmup, with_embeddings)
            label = f"{EMBEDDING_DIM}-d" if with_embeddings else "none"
            median, p90 = np.median(seconds) * 1e3, np.percentile(seconds, 90) * 1e3
            print(f"{count:>10} {label:>10} {median:>10.2f} {p90:>8.2f} {reported:>13.1f}")


if __name__ == "__main__":
    main()
