"""Decoding's share of end-to-end time: the old peak extraction against the current one.

ResNet-18 + FPN (the ``CenterNet`` defaults), 80 classes, 512x512 input, eval mode: head widths
64 and 256 at batch 1, and 64 at batch 8 (batch-sized maps). The same network outputs are
decoded three ways, side by side in one run, and all three checked bit for bit:

* ``old``: the decoding before the fast path (``F.max_pool2d`` on the NCHW heatmap, then one
  ``topk`` over all C*H*W scores);
* ``new``: the library's ``decode_outputs`` as wired today (the heatmap head takes the sigmoid
  of the whole batch, then calls ``topk_peaks``);
* ``logits in``: the heatmap head passing its logits to ``topk_peaks(..., logits=True)``, which
  takes the sigmoid image by image (a one-line change in ``HeatmapHead.decode``).

Times are the best of the repeats (other jobs share the machine); page faults are counted with
``resource.getrusage`` over each decode call made right after a forward (the forward frees the
large maps whose pages the decoding then touches afresh). A last line decodes bf16-rounded
logits, whose many equal scores make the new path fall back to the single top-K (its slowest
case).

    python benchmarks/decode_speed.py [--repeats 20] [--batch8-repeats 4] [--threads 2]
"""

from __future__ import annotations

import argparse
import resource
import statistics
import time
from collections.abc import Callable
from typing import Any
from unittest import mock

import torch
import torch.nn.functional as F
from torch import Tensor

from centernet_lightning.decode import Peaks, topk_peaks
from centernet_lightning.models import heads as heads_module
from centernet_lightning.models.detector import decode_outputs
from centernet_lightning.tasks import build_model

SIZE = 512
NUM_CLASSES = 80


def old_topk_peaks(scores: Tensor, k: int = 100, kernel: int = 3) -> Peaks:
    """The peak extraction before the fast path, kept verbatim as the baseline."""
    batch_size, num_classes, height, width = scores.shape
    pooled = F.max_pool2d(scores, kernel, stride=1, padding=(kernel - 1) // 2)
    peaks = scores * (pooled == scores).to(scores.dtype)
    k = min(k, num_classes * height * width)
    top_scores, top_indices = peaks.reshape(batch_size, -1).topk(k)
    labels = torch.div(top_indices, height * width, rounding_mode="floor")
    spatial = top_indices - labels * (height * width)
    ys = torch.div(spatial, width, rounding_mode="floor")
    xs = spatial - ys * width
    return Peaks(top_scores, labels, ys, xs, spatial)


def decode_old(outputs: dict[str, Tensor], stride: int) -> dict[str, Tensor]:
    with mock.patch.object(heads_module, "topk_peaks", old_topk_peaks):
        return decode_outputs(outputs, stride, 100)


def decode_new(outputs: dict[str, Tensor], stride: int) -> dict[str, Tensor]:
    return decode_outputs(outputs, stride, 100)


def _decode_logits_inside(output: Tensor, num_detections: int, kernel: int = 3, logits: bool = True) -> Peaks:
    return topk_peaks(output, num_detections, kernel, logits=logits)


def decode_logits_in(outputs: dict[str, Tensor], stride: int) -> dict[str, Tensor]:
    """As ``decode_new``, with the heatmap head passing its logits to ``topk_peaks(..., logits=True)``
    (the sigmoid image by image) instead of taking a batch-sized sigmoid first."""
    with mock.patch.object(heads_module.HeatmapHead, "decode", staticmethod(_decode_logits_inside)):
        return decode_outputs(outputs, stride, 100)


DECODERS = {"old": decode_old, "new": decode_new, "logits in": decode_logits_in}


def timed(function: Callable[..., Any], *args: Any) -> tuple[Any, float, int]:
    """(result, milliseconds, minor page faults) of one call ``function(*args)``."""
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    start = time.perf_counter()
    result = function(*args)
    milliseconds = (time.perf_counter() - start) * 1e3
    return result, milliseconds, resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults


def assert_same(reference: dict[str, Tensor], other: dict[str, Tensor]) -> None:
    for key in ("bboxes", "labels", "scores", "indices"):
        if not torch.equal(reference[key], other[key]):
            raise AssertionError(f"decodings differ in {key!r}")


def measure(head_width: int, batch_size: int, repeats: int) -> dict[str, Any]:
    """Best forward ms, and per decoder its best ms and median page faults right after a forward."""
    torch.manual_seed(0)
    model = build_model(
        {"backbone": {"name": "resnet18", "pretrained": False}, "head_width": head_width}, num_classes=NUM_CLASSES
    ).eval()
    detector = model.detector
    images = torch.randn(batch_size, 3, SIZE, SIZE)
    forward: list[float] = []
    times: dict[str, list[float]] = {name: [] for name in DECODERS}
    faults: dict[str, list[int]] = {name: [] for name in DECODERS}
    names = list(DECODERS)
    with torch.no_grad():
        outputs = detector(images)  # warm-up: first calls pay for one-off allocations
        reference = decode_old(outputs, detector.stride)
        for decode in DECODERS.values():
            assert_same(reference, decode(outputs, detector.stride))
        for repeat in range(repeats):
            # The decoders take turns in a rotating order, each right after its own forward.
            for name in names[repeat % len(names) :] + names[: repeat % len(names)]:
                outputs, forward_ms, _ = timed(detector, images)
                forward.append(forward_ms)
                _, decode_ms, decode_faults = timed(DECODERS[name], outputs, detector.stride)
                times[name].append(decode_ms)
                faults[name].append(decode_faults)
        # Images whose 101 best peaks hold equal scores: for those the new path re-runs the single top-K.
        best = topk_peaks(outputs["heatmap"], 101, logits=True).scores
        tied_images = int((best[:, :-1] <= best[:, 1:]).any(dim=1).sum())
    # Times: the best of the repeats, the figure least disturbed by other jobs on a shared machine.
    return {
        "forward": min(forward),
        "ms": {name: min(values) for name, values in times.items()},
        "faults": {name: statistics.median(values) for name, values in faults.items()},
        "tied_images": tied_images,
    }


def measure_ties(repeats: int) -> dict[str, float]:
    """Best ms of each decoder on bf16-rounded logits [1, 80, 128, 128] (ties: the fall-back)."""
    torch.manual_seed(0)
    logits = (torch.randn(1, NUM_CLASSES, SIZE // 4, SIZE // 4) * 1.5 - 4).bfloat16()
    outputs = {"heatmap": logits, "box_2d": torch.rand(1, 4, SIZE // 4, SIZE // 4)}
    reference = decode_old(outputs, 4)
    for decode in DECODERS.values():
        assert_same(reference, decode(outputs, 4))
    return {name: min(timed(decode, outputs, 4)[1] for _ in range(repeats)) for name, decode in DECODERS.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20, help="forward + decode pairs per decoder at batch 1")
    parser.add_argument("--batch8-repeats", type=int, default=4, help="the same at batch 8 (0: skip batch 8)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(
        f"ResNet-18 + FPN, {NUM_CLASSES} classes, {SIZE}x{SIZE}, {args.threads} threads; ms per call, the best of "
        f"{args.repeats} (batch 1) or {args.batch8_repeats} (batch 8); share = decode / (forward + decode); "
        "median page faults per decode call"
    )
    names = list(DECODERS)
    print(
        f"{'width':>5} {'batch':>5} {'forward':>8} "
        + " ".join(f"{name + ' ms':>12}" for name in names)
        + " "
        + " ".join(f"{name + ' %':>11}" for name in names)
        + " "
        + " ".join(f"{name + ' faults':>16}" for name in names)
    )
    runs = [(64, 1, args.repeats), (256, 1, args.repeats)]
    if args.batch8_repeats > 0:
        runs.append((64, 8, args.batch8_repeats))
    for head_width, batch_size, repeats in runs:
        f = measure(head_width, batch_size, repeats)
        shares = {name: ms / (f["forward"] + ms) for name, ms in f["ms"].items()}
        print(
            f"{head_width:>5} {batch_size:>5} {f['forward']:>8.1f} "
            + " ".join(f"{f['ms'][name]:>12.2f}" for name in names)
            + " "
            + " ".join(f"{shares[name]:>11.1%}" for name in names)
            + " "
            + " ".join(f"{f['faults'][name]:>16.0f}" for name in names)
            + (f"  ({f['tied_images']} of {batch_size} images tied: new fell back)" if f["tied_images"] else "")
        )
    ties = measure_ties(args.repeats)
    print(
        "bf16-rounded logits, batch 1 (ties: new falls back to one top-K): "
        + ", ".join(f"{name} {ms:.2f} ms" for name, ms in ties.items())
    )
    print("all decodings bit-identical to the old one on every output checked")


if __name__ == "__main__":
    main()
