"""Training throughput: images/s of full training steps, on CPU and on CUDA when present.

A step is forward + target rendering + losses + backward + AdamW update on random images with
random boxes; the share of target rendering + losses is printed beside it. Each device runs four
set-ups side by side, fp32 or bf16 autocast (``precision: bf16-mixed``) in NCHW or NHWC memory
format (the :class:`~centernet_lightning.callbacks.ChannelsLast` callback), their steps
interleaved, and prints each one's speed relative to fp32 NCHW.

    python benchmarks/train_step.py [--size 256] [--batch-size 8] [--steps 10] [--backbone resnet18]
                                    [--model centernet|fairmot]

``--model fairmot`` times the tracking demo's network instead: FairMOT with its re-ID head and
identity classifier (1 class, 5000 identities, the demo's FPN widths).
"""

from __future__ import annotations

import argparse
import time

import torch

from centernet_lightning.tasks import CenterNet, FairMOT


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
        "track_ids": torch.arange(batch_size * objects).view(batch_size, objects).to(device),
    }


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize()


class Setup:
    """One model + optimizer + batch in a precision and memory format; :meth:`step` times one step."""

    def __init__(self, device: torch.device, args, bf16: bool, channels_last: bool) -> None:
        torch.manual_seed(0)
        if args.model == "fairmot":
            neck = {"name": "fpn", "upsample_channels": [128, 64, 64]}
            model = FairMOT(5000, args.num_classes, backbone=args.backbone, neck=neck, head_width=64)
        else:
            model = CenterNet(args.num_classes, backbone=args.backbone, neck="fpn")
        self.model = model.to(device).train()
        self.batch = make_batch(args.batch_size, args.size, args.objects, args.num_classes, device)
        if channels_last:  # what ChannelsLast does: the weights once, the images of every batch
            self.model = self.model.to(memory_format=torch.channels_last)
            self.batch["images"] = self.batch["images"].contiguous(memory_format=torch.channels_last)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=1e-4)
        self.device, self.bf16 = device, bf16
        self.name = f"{'bf16' if bf16 else 'fp32'} {'NHWC' if channels_last else 'NCHW'}"
        self.step_times: list[float] = []
        self.loss_times: list[float] = []

    def step(self, record: bool = True) -> None:
        device = self.device
        synchronize(device)
        start = time.perf_counter()
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.bf16):
            outputs = self.model.detector(self.batch["images"])
            synchronize(device)
            loss_start = time.perf_counter()
            losses = self.model.criterion(outputs, self.batch)
            synchronize(device)
        loss_time = time.perf_counter() - loss_start
        self.optimizer.zero_grad(set_to_none=True)
        losses["total"].backward()
        self.optimizer.step()
        synchronize(device)
        if record:
            self.step_times.append(time.perf_counter() - start)
            self.loss_times.append(loss_time)


def median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def report(device: torch.device, args) -> None:
    """Steps of the four set-ups interleaved (round robin), so that the machine's changing speed
    hits them alike; medians per set-up."""
    setups = [Setup(device, args, bf16, channels_last) for bf16 in (False, True) for channels_last in (False, True)]
    for setup in setups:
        setup.step(record=False)  # warm-up
    for _ in range(args.steps):
        for setup in setups:
            setup.step()
    baseline = median(setups[0].step_times)
    for setup in setups:
        step_time, loss_time = median(setup.step_times), median(setup.loss_times)
        print(
            f"{device.type:>4} {setup.name}: {args.batch_size / step_time:7.1f} images/s, {baseline / step_time:4.2f}x "
            f"(step {step_time * 1000:7.1f} ms, targets + losses {loss_time * 1000:6.1f} ms = "
            f"{100 * loss_time / step_time:4.1f}% of the step)"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--steps", type=int, default=10, help="timed steps per set-up")
    parser.add_argument("--objects", type=int, default=20)
    parser.add_argument("--num-classes", type=int, default=80)
    parser.add_argument("--backbone", default="resnet18")
    parser.add_argument("--model", choices=("centernet", "fairmot"), default="centernet")
    args = parser.parse_args()
    if args.model == "fairmot":
        args.num_classes = 1
    print(
        f"{args.model}: {args.backbone} + FPN, {args.size} px, batch {args.batch_size}, "
        f"{args.objects} objects/image, {args.num_classes} classes:"
    )
    report(torch.device("cpu"), args)
    if torch.cuda.is_available():
        report(torch.device("cuda"), args)


if __name__ == "__main__":
    main()
