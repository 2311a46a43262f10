"""Training-target cost: the vectorised heatmap renderer against the original per-object loop.

Part 1 renders CenterNet heatmaps for ``--batch`` images x ``--objects`` objects x ``--classes``
classes on a ``--grid`` x ``--grid`` output grid (default 32 x 50 x 80 at 128x128, i.e. COCO-like
512-px inputs) two ways, side by side in one run: :func:`centernet_lightning.targets.render_heatmaps`
(one batched tensor computation) and the straightforward numpy loop over objects that restates the
original CenterNet code (``tests/reference.py``). It checks that both give the same heatmaps
(bit-exact) and prints the median times and their ratio; on CUDA, when available,
the vectorised renderer runs on the GPU too.

Part 2 puts that in the context of a training step: ``CenterNet.criterion`` (targets + focal
loss + GIoU box loss), forward and backward, against the network's own forward and backward, for
resnet18 + FPN (default widths) with 80 classes and 50 objects per image. On CPU the step is
batch 4 at 256 px (64x64 grid), which runs in seconds on 2 cores; on CUDA batch 8 at 512 px.
Part 2 also times the loss alone at the Part 1 sizes.

    python benchmarks/targets.py [--repeats 5] [--skip-step]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from centernet_lightning.losses import cornernet_focal_loss
from centernet_lightning.targets import render_heatmaps
from centernet_lightning.tasks import CenterNet

# The reference loop lives with the tests that pin the renderer to it; one copy only.
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from reference import ctdet_heatmaps  # noqa: E402


def make_objects(
    batch_size: int, num_objects: int, num_classes: int, grid: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Boxes float32 [B, N, 4] XYXY in grid pixels (log-uniform sizes 1..grid, some crossing the
    border), labels int64 [B, N] and an all-True mask [B, N]."""
    rng = np.random.default_rng(seed)
    sizes = np.exp(rng.uniform(0, np.log(grid), (batch_size, num_objects, 2)))
    centers = rng.uniform(0, grid, (batch_size, num_objects, 2))
    boxes = np.concatenate((centers - sizes / 2, centers + sizes / 2), axis=-1).astype(np.float32)
    labels = rng.integers(0, num_classes, (batch_size, num_objects))
    return boxes, labels, np.ones((batch_size, num_objects), dtype=bool)


def median_seconds(fn: Callable[[], object], repeats: int, device: torch.device | None = None) -> float:
    """Median wall time of ``fn`` over ``repeats`` runs after one warm-up run."""

    def sync() -> None:
        if device is not None and device.type == "cuda":
            torch.cuda.synchronize(device)

    fn()
    sync()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_heatmaps(args: argparse.Namespace, devices: list[torch.device]) -> None:
    boxes, labels, mask = make_objects(args.batch, args.objects, args.classes, args.grid)
    size = (args.classes, args.grid, args.grid)
    print(
        f"Heatmap targets: {args.batch} images x {args.objects} objects x {args.classes} classes, "
        f"{args.grid}x{args.grid} grid (median of {args.repeats}, after a warm-up)"
    )
    expected = ctdet_heatmaps(boxes, labels, mask, *size)
    loop_time = median_seconds(lambda: ctdet_heatmaps(boxes, labels, mask, *size), args.repeats)
    print(f"  per-object numpy loop (original)   {loop_time * 1e3:9.2f} ms")
    for device in devices:
        tensors = [torch.from_numpy(array).to(device) for array in (boxes, labels, mask)]
        heatmaps, _ = render_heatmaps(*tensors, *size)
        difference = np.abs(heatmaps.cpu().numpy() - expected).max()
        if difference > 0:
            raise SystemExit(f"render_heatmaps on {device} differs from the reference loop by {difference}")
        vectorised_time = median_seconds(lambda tensors=tensors: render_heatmaps(*tensors, *size), args.repeats, device)
        goal = 50 if device.type == "cuda" else 5
        print(
            f"  render_heatmaps on {device.type:4s}            {vectorised_time * 1e3:9.2f} ms   "
            f"{loop_time / vectorised_time:6.1f}x faster (goal >= {goal}x); max |diff| {difference:.1e}"
        )
        # The floor for any renderer that returns a fresh dense tensor. The numpy loop's np.zeros
        # is mapped lazily by the OS and the loop only writes the Gaussian windows.
        zeros_time = median_seconds(
            lambda device=device: torch.zeros(args.batch, *size, device=device), args.repeats, device
        )
        print(f"    of which a fresh zeroed [B, C, H, W] output alone  {zeros_time * 1e3:9.2f} ms")


def bench_training_step(args: argparse.Namespace, device: torch.device) -> None:
    batch_size, image_size = (8, 512) if device.type == "cuda" else (4, 256)
    torch.manual_seed(0)
    model = CenterNet(args.classes, backbone="resnet18", neck="fpn").to(device).train()
    grid = image_size // model.detector.stride

    def make_batch(batch: int, grid_size: int) -> dict[str, torch.Tensor]:
        boxes, labels, mask = make_objects(batch, args.objects, args.classes, grid_size, seed=1)
        return {
            "bboxes": torch.from_numpy(boxes * model.detector.stride).to(device),
            "labels": torch.from_numpy(labels).to(device),
            "mask": torch.from_numpy(mask).to(device),
        }

    def loss_step(outputs: dict[str, torch.Tensor], batch: dict[str, torch.Tensor]) -> None:
        leaves = {key: value.detach().requires_grad_(True) for key, value in outputs.items()}
        model.criterion(leaves, batch)["total"].backward()

    images = torch.randn(batch_size, 3, image_size, image_size, device=device)
    batch = make_batch(batch_size, grid)
    with torch.no_grad():
        outputs = model.detector(images)
    projections = {key: torch.randn_like(value) for key, value in outputs.items()}

    def network_step() -> None:
        model.zero_grad(set_to_none=True)
        new_outputs = model.detector(images)
        sum((new_outputs[key] * projections[key]).sum() for key in new_outputs).backward()

    network_time = median_seconds(network_step, max(3, args.repeats // 2), device)
    loss_time = median_seconds(lambda: loss_step(outputs, batch), args.repeats, device)
    print(
        f"\nTraining step on {device.type}: resnet18 + FPN, batch {batch_size} at {image_size} px "
        f"({grid}x{grid} grid), {args.classes} classes, {args.objects} objects per image"
    )
    print(f"  network forward + backward          {network_time * 1e3:9.2f} ms")
    print(
        f"  targets + losses forward + backward {loss_time * 1e3:9.2f} ms   "
        f"({100 * loss_time / (loss_time + network_time):.1f}% of the step)"
    )

    big_batch = make_batch(args.batch, args.grid)
    big_outputs = {
        "heatmap": torch.randn(args.batch, args.classes, args.grid, args.grid, device=device),
        "box_2d": torch.rand(args.batch, 4, args.grid, args.grid, device=device) * 8,
    }
    big_time = median_seconds(lambda: loss_step(big_outputs, big_batch), max(3, args.repeats // 2), device)
    heatmaps, _ = render_heatmaps(
        big_batch["bboxes"] / model.detector.stride,
        big_batch["labels"],
        big_batch["mask"],
        args.classes,
        args.grid,
        args.grid,
    )
    logits = big_outputs["heatmap"].requires_grad_(True)
    focal_time = median_seconds(
        lambda: cornernet_focal_loss(logits, heatmaps).backward(), max(3, args.repeats // 2), device
    )
    print(
        f"  targets + losses at the Part 1 size ({args.batch} x {args.objects} x {args.classes}, "
        f"{args.grid}x{args.grid}): {big_time * 1e3:.2f} ms, of which the focal loss forward + backward "
        f"{focal_time * 1e3:.2f} ms"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--objects", type=int, default=50)
    parser.add_argument("--classes", type=int, default=80)
    parser.add_argument("--grid", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--skip-step", action="store_true", help="only part 1")
    args = parser.parse_args()

    devices = [torch.device("cpu")]
    if torch.cuda.is_available():
        devices.append(torch.device("cuda"))
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads", end="")
    print(f", GPU: {torch.cuda.get_device_name()}" if torch.cuda.is_available() else ", no GPU")
    bench_heatmaps(args, devices)
    if not args.skip_step:
        for device in devices:
            bench_training_step(args, device)


if __name__ == "__main__":
    main()
