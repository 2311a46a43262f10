"""The original CenterNet code against our deployment backends, side by side in one run (issue: deployment speed).

One paper model (``--model res18``: ``configs/paper/res18.yaml``, the original ``res_18``; or
``resdcn18``: ``resdcn18.yaml``, the original ``resdcn_18`` with torchvision's deformable
convolution in place of the compiled DCNv2; 80 classes),
one image at ``--size`` (512) px, batch 1, end to end with decoding (no pre-processing, no NMS):

- ``original``: the original code's network (``tests/reference_original.py``, a literal
  re-statement of ``msra_resnet.py`` / ``resnet_dcn.py``) and its ``ctdet_decode`` (``models/decode.py``: 3x3
  max-pool peaks, per-class then overall top-K, gathers; re-stated in
  ``tests/reference_multi_pose.py``'s helpers), in eager PyTorch under ``torch.no_grad()`` as
  ``detectors/ctdet.py`` runs it;
- ours: each backend of ``--backends`` as :func:`centernet_lightning.deploy.build_backend`
  builds it for ``centernet predict``, the same weights loaded into our network by
  :func:`~centernet_lightning.models.original_weights.convert_original_state_dict`.

Before timing, the original network's head maps and ours are compared (within 1e-4) so that
both sides run the same model. The int8 backends calibrate on
``--calib`` (a folder of images or a data config), by default on synthetic shapes generated
into a temporary folder. Each round runs every entry once on the same input, so a slow spell
of the shared machine falls on all of them; p50 over ``--iterations`` rounds after
``--warmup`` untimed ones.

    OMP_NUM_THREADS=1 python benchmarks/deploy_speed.py [--size 512] [--iterations 20] [--threads 1]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

import reference_original as original  # noqa: E402
from reference_multi_pose import _nms, _topk, _transpose_and_gather_feat  # noqa: E402

from centernet_lightning.datasets.synthetic import generate_synthetic_dataset  # noqa: E402
from centernet_lightning.deploy import Calibration, build_backend  # noqa: E402
from centernet_lightning.models.original_weights import convert_original_state_dict  # noqa: E402
from centernet_lightning.tasks import build_model  # noqa: E402

BACKENDS = "eager,onnxruntime,openvino,openvino_bf16,onnxruntime_int8,openvino_int8"
# --model: the original's builder (tests/reference_original.py) and our paper config of the same network
MODELS = {
    "res18": (original.get_msra_resnet, "res18.yaml"),
    "resdcn18": (original.get_resnet_dcn, "resdcn18.yaml"),
}
K = 100


def ctdet_decode(heat: torch.Tensor, wh: torch.Tensor, reg: torch.Tensor, k: int = K) -> torch.Tensor:
    """The original ``ctdet_decode`` (models/decode.py) with ``reg`` and without ``cat_spec_wh``:
    [B, K, 6] (x1, y1, x2, y2 in output cells, score, class)."""
    batch = heat.size(0)
    heat = _nms(heat)
    scores, inds, clses, ys, xs = _topk(heat, K=k)
    reg = _transpose_and_gather_feat(reg, inds).view(batch, k, 2)
    xs = xs.view(batch, k, 1) + reg[:, :, 0:1]
    ys = ys.view(batch, k, 1) + reg[:, :, 1:2]
    wh = _transpose_and_gather_feat(wh, inds).view(batch, k, 2)
    clses = clses.view(batch, k, 1).float()
    scores = scores.view(batch, k, 1)
    bboxes = torch.cat(
        [xs - wh[..., 0:1] / 2, ys - wh[..., 1:2] / 2, xs + wh[..., 0:1] / 2, ys + wh[..., 1:2] / 2], dim=2
    )
    return torch.cat([bboxes, scores, clses], dim=2)


def original_pipeline(network: torch.nn.Module) -> Callable[[torch.Tensor], torch.Tensor]:
    """``detectors/ctdet.py``'s ``process``: the network, sigmoid of ``hm``, ``ctdet_decode``."""

    @torch.no_grad()
    def run(images: torch.Tensor) -> torch.Tensor:
        output = network(images)[-1]
        return ctdet_decode(output["hm"].sigmoid_(), output["wh"], output["reg"])

    return run


def check_same_model(theirs: torch.nn.Module, ours: torch.nn.Module, images: torch.Tensor) -> float:
    """The largest difference between the original network's head maps and ours on ``images``
    (the decodings are compared with the original's in tests/test_decode.py)."""
    with torch.no_grad():
        original_maps, our_maps = theirs(images)[-1], ours(images)
    pairs = {"hm": "heatmap", "wh": "size", "reg": "offset"}
    return max(float((original_maps[name] - our_maps[mine]).abs().max()) for name, mine in pairs.items())


def calibration_source(given: str | None, size: int, count: int, workdir: Path) -> Path:
    """``--calib``, or a folder of ``count`` synthetic shape images of ``size`` px made in ``workdir``."""
    if given:
        return Path(given)
    generate_synthetic_dataset(workdir / "synthetic", num_train=count, num_val=1, image_size=size, overwrite=True)
    return workdir / "synthetic"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=list(MODELS), default="res18")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--backends", default=BACKENDS)
    parser.add_argument("--calib", default=None, help="folder of images or data config (default: synthetic shapes)")
    parser.add_argument("--calib-images", type=int, default=64)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    torch.manual_seed(0)
    build_original, config = MODELS[args.model]
    theirs = build_original(18).eval()
    with torch.no_grad():  # random weights with BatchNorm statistics away from the identity
        for module in theirs.modules():
            if isinstance(module, torch.nn.BatchNorm2d):
                module.running_mean.uniform_(-0.1, 0.1)
                module.running_var.uniform_(0.5, 1.5)
    model = build_model(ROOT / "configs/paper" / config, 80, untrained=True)
    converted, untouched = convert_original_state_dict(theirs.state_dict(), model.detector.state_dict())
    assert not untouched, untouched
    model.detector.load_state_dict(converted)
    detector = model.detector.eval()
    images = torch.randn(1, 3, args.size, args.size, generator=torch.Generator().manual_seed(1))

    original_run = original_pipeline(theirs)
    runs: dict[str, Callable] = {"original": original_run}
    with tempfile.TemporaryDirectory(prefix="deploy-speed-") as workdir:
        source = calibration_source(args.calib, args.size, args.calib_images, Path(workdir))
        calibration = Calibration(source, images=args.calib_images)
        for name in args.backends.split(","):
            started = time.perf_counter()
            try:
                backend = build_backend(name, detector, "cpu", K, args.size, calibration=calibration)
            except Exception as error:  # a backend that cannot be built here is reported, the others still run
                print(f"{name}: {type(error).__name__}: {error}")
                continue
            print(f"built {name} in {time.perf_counter() - started:.1f} s", flush=True)
            runs[name] = torch.inference_mode()(backend)
    difference = check_same_model(theirs, detector, images)
    assert difference < 1e-4, f"our network's maps differ from the original's by {difference:.2g}"
    print(f"the original network and ours give the same head maps (largest difference {difference:.1g})")

    times: dict[str, list[float]] = {name: [] for name in runs}
    for run in runs.values():
        run(images)  # first call: sessions and compiled models initialise
    for round_index in range(args.warmup + args.iterations):
        for name, run in runs.items():
            started = time.perf_counter()
            run(images)
            if round_index >= args.warmup:
                times[name].append((time.perf_counter() - started) * 1000)

    p50 = {name: statistics.median(values) for name, values in times.items()}
    print(f"\n{args.model}, {args.size}x{args.size}, batch 1, {args.threads} thread(s), {args.iterations} rounds")
    print(f"{'backend':<18} {'p50 ms':>8} {'p90 ms':>8} {'x original':>11} {'x onnxruntime':>14}")
    for name, values in times.items():
        p90 = statistics.quantiles(values, n=10)[-1] if len(values) > 1 else values[0]
        versus_ort = f"{p50['onnxruntime'] / p50[name]:.2f}" if "onnxruntime" in p50 else ""
        print(f"{name:<18} {p50[name]:>8.1f} {p90:>8.1f} {p50['original'] / p50[name]:>11.2f} {versus_ort:>14}")


if __name__ == "__main__":
    main()
