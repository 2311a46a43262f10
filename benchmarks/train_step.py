"""Training throughput: images/s of full training steps, on CPU and on CUDA when present.

A step is forward + target rendering + losses + backward + AdamW update on random images with
random boxes; the share of target rendering + losses is printed beside it.

    python benchmarks/train_step.py [--size 256] [--batch-size 8] [--steps 5] [--backbone resnet18]
"""

from __future__ import annotations

import argparse
import time

import torch

from centernet_lightning.models import CenterNet


def make_batch(batch_size: int, size: int, objects: int, num_classes: int, device: torch.device) -> dict:
    generator = torch.Generator().manual_seed(0)
    centers = torch.rand(batch_size, objects, 2, generator=generator) * size
    extents = 8 + torch.rand(batch_size, objects, 2, generator=generator) * size / 3
    boxes = torch.cat([centers - extents / 2, centers + extents / 2], dim=-1).clamp(0, size)
    return {
        "images": torch.randn(batch_size, 3, size, size, generator=generator).to(device),
        "bboxes": boxes.to(device),
        "labels": torch.randint(0, num_classes, (batch_size, objects), generator=generator).to(device),
        "mask": torch.ones(batch_size, objects, dtype=torch.bool).to(device),
    }


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


def measure(device: torch.device, args) -> None:
    model = CenterNet(args.num_classes, backbone=args.backbone, neck="fpn").to(device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-4)
    batch = make_batch(args.batch_size, args.size, args.objects, args.num_classes, device)
    step_times, loss_times = [], []
    for step in range(args.steps + 1):  # the first step warms up
        synchronize(device)
        start = time.perf_counter()
        outputs = model.get_encoded_outputs(batch["images"])
        synchronize(device)
        loss_start = time.perf_counter()
        losses = model.compute_loss(outputs, batch)
        synchronize(device)
        loss_time = time.perf_counter() - loss_start
        optimizer.zero_grad(set_to_none=True)
        losses["total"].backward()
        optimizer.step()
        synchronize(device)
        if step:
            step_times.append(time.perf_counter() - start)
            loss_times.append(loss_time)
    step_time = sorted(step_times)[len(step_times) // 2]
    loss_time = sorted(loss_times)[len(loss_times) // 2]
    print(
        f"{device.type:>4}: {args.batch_size / step_time:8.1f} images/s  (step {step_time * 1000:7.1f} ms, "
        f"targets + losses {loss_time * 1000:6.1f} ms = {100 * loss_time / step_time:4.1f}% of the step)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=5)
    parser.add_argument("--objects", type=int, default=20)
    parser.add_argument("--num-classes", type=int, default=80)
    parser.add_argument("--backbone", default="resnet18")
    args = parser.parse_args()
    print(f"{args.backbone} + FPN, {args.size} px, batch {args.batch_size}, {args.objects} objects/image:")
    measure(torch.device("cpu"), args)
    if torch.cuda.is_available():
        measure(torch.device("cuda"), args)


if __name__ == "__main__":
    main()
