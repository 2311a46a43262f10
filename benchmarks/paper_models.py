"""Forward time of the paper models (configs/paper/*.yaml) beside their parameters and GFLOPs.

Every model runs in eval mode on one image at ``--size`` (default 512) on CPU, and on CUDA when
present; the median of ``--repeats`` timed forwards follows one warm-up.

    python benchmarks/paper_models.py [--size 512] [--repeats 3] [--models res18,resdcn18,...]
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path

import torch

from centernet_lightning.models import model_info
from centernet_lightning.tasks import build_model

CONFIGS = Path(__file__).resolve().parents[1] / "configs" / "paper"
MODELS = ["res18", "resdcn18", "resdcn101", "dla34", "hourglass104"]


@torch.no_grad()
def forward_ms(model: torch.nn.Module, images: torch.Tensor, repeats: int) -> float:
    model(images)  # warm-up
    times = []
    for _ in range(repeats):
        if images.is_cuda:
            torch.cuda.synchronize()
        start = time.perf_counter()
        model(images)
        if images.is_cuda:
            torch.cuda.synchronize()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--models", default=",".join(MODELS))
    args = parser.parse_args()
    devices = [torch.device("cpu")] + ([torch.device("cuda")] if torch.cuda.is_available() else [])
    print(f"{torch.get_num_threads()} CPU threads, input {args.size}x{args.size}, batch 1, eval mode")
    print(f"{'model':<14} {'params (M)':>10} {'GFLOPs':>8} " + " ".join(f"{d.type + ' ms':>10}" for d in devices))
    for name in args.models.split(","):
        model = build_model(CONFIGS / f"{name}.yaml", 80, untrained=True).detector.eval()
        total = model_info(model, args.size)[-1]
        timings = []
        for device in devices:
            images = torch.randn(1, 3, args.size, args.size, device=device)
            timings.append(forward_ms(model.to(device), images, args.repeats))
        cells = " ".join(f"{ms:>10.1f}" for ms in timings)
        print(f"{name:<14} {total['params'] / 1e6:>10.2f} {total['gflops']:>8.1f} {cells}")


if __name__ == "__main__":
    main()
