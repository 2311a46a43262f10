"""Model size and cost: parameters and GFLOPs of the backbone, the neck and each head.

FLOPs are counted by ``torch.utils.flop_counter.FlopCounterMode`` on one zero image, as
2 x multiply-accumulates (many papers quote multiply-accumulates as "FLOPs": half these
numbers). FlopCounterMode does not know torchvision's ``deform_conv2d``; each
``DeformConv2d`` is added by hand as 2 * out * in / groups * k * k * H_out * W_out (the
bilinear sampling and the modulation are left out; the offset/mask conv is a plain conv and
counted).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode
from torchvision.ops import DeformConv2d

__all__ = ["model_info", "format_info"]


def _find_detector(model: nn.Module) -> nn.Module:
    """The module (``model`` itself or a submodule) holding ``backbone``, ``neck`` and ``heads``."""
    for module in model.modules():
        if all(isinstance(getattr(module, part, None), nn.Module) for part in ("backbone", "neck", "heads")):
            return module
    raise ValueError(f"{type(model).__name__} holds no module with backbone, neck and heads")


def _deform_conv_flops(module: DeformConv2d, output: Tensor) -> int:
    out_channels, in_per_group, kernel_h, kernel_w = module.weight.shape
    return 2 * out_channels * in_per_group * kernel_h * kernel_w * output.shape[-2] * output.shape[-1] * output.shape[0]


def _run_counted(module: nn.Module, *inputs: Any) -> tuple[Any, int]:
    """``module(*inputs)`` and the FLOPs it took, deformable convolutions included."""
    deform_flops = []
    hooks = [
        m.register_forward_hook(lambda m, args, output: deform_flops.append(_deform_conv_flops(m, output)))
        for m in module.modules()
        if isinstance(m, DeformConv2d)
    ]
    try:
        with FlopCounterMode(display=False) as counter:
            output = module(*inputs)
    finally:
        for hook in hooks:
            hook.remove()
    return output, counter.get_total_flops() + sum(deform_flops)


def _parameters(*modules: nn.Module) -> int:
    return sum(p.numel() for module in modules for p in module.parameters())


@torch.no_grad()
def model_info(model: nn.Module, input_size: int = 512) -> list[dict[str, Any]]:
    """Parameters and GFLOPs per part for one ``input_size`` x ``input_size`` image.

    Args:
        model: a detector with ``backbone``, ``neck`` and ``heads`` (``heads[stack][name]``), or
            any module that holds one (a LightningModule).
        input_size: image side in pixels (Hourglass needs a multiple of 128, fusion necks 32).

    Returns:
        Rows ``{"part": str, "params": int, "gflops": float}``: ``backbone``, ``neck``,
        ``head <name>`` (summed over stacks for stacked models) and ``total``.
    """
    detector = _find_detector(model)
    parameter = next(detector.parameters(), None)
    device = parameter.device if parameter is not None else torch.device("cpu")
    images = torch.zeros(1, 3, input_size, input_size, device=device)
    was_training = detector.training
    detector.eval()
    try:
        features, backbone_flops = _run_counted(detector.backbone, images)
        features, neck_flops = _run_counted(detector.neck, features)
        stacks = features if isinstance(features, (list, tuple)) else [features]
        rows = [
            {"part": "backbone", "params": _parameters(detector.backbone), "gflops": backbone_flops / 1e9},
            {"part": "neck", "params": _parameters(detector.neck), "gflops": neck_flops / 1e9},
        ]
        for name in detector.heads[0]:
            heads = [detector.heads[stack][name] for stack in range(len(stacks))]
            flops = sum(_run_counted(head, stack_features)[1] for head, stack_features in zip(heads, stacks))
            rows.append({"part": f"head {name}", "params": _parameters(*heads), "gflops": flops / 1e9})
    finally:
        detector.train(was_training)
    rows.append(
        {
            "part": "total",
            "params": sum(row["params"] for row in rows),
            "gflops": sum(row["gflops"] for row in rows),
        }
    )
    return rows


def format_info(rows: list[dict[str, Any]]) -> str:
    """A text table of :func:`model_info` rows: part, parameters (millions), GFLOPs."""
    width = max(len("part"), *(len(row["part"]) for row in rows))
    lines = [f"{'part':<{width}}  {'params (M)':>10}  {'GFLOPs':>8}"]
    for row in rows:
        if row["part"] == "total":
            lines.append("-" * len(lines[0]))
        lines.append(f"{row['part']:<{width}}  {row['params'] / 1e6:>10.3f}  {row['gflops']:>8.2f}")
    return "\n".join(lines)
