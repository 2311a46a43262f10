"""Exporting a CenterNet or FairMOT to a TensorRT engine: the ONNX graph of :func:`export_onnx`,
built by TensorRT for the GPU it runs on.

TensorRT builds the engine from the very graph ``export_onnx`` writes (decoding inside, fixed-size
outputs), so an engine gives what the ONNX file gives. The engine file holds that graph's
``centernet`` metadata before the engine (the layout is in
:mod:`centernet_lightning.inference.tensorrt`), so ``centernet predict --model best.engine`` needs
nothing else. An engine is tied to its TensorRT version and GPU model: build it where it runs.

Precision: the network is built strongly typed from the ONNX graph, so each tensor keeps the type
the graph gives it. ``half`` exports the graph with a float16 network (``export_onnx(half=True)``:
the input and the decoding stay float32, so boxes keep float32 pixels); without it the engine is
float32 throughout, with TensorRT's TF32 off so that it matches PyTorch's float32. TensorRT 11
removed the weakly typed ``BuilderFlag.FP16`` (and ``platform_has_fast_fp16``), and 10.12
deprecated it; the float16 graph works on both.
"""

from __future__ import annotations

import json
import logging
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..checks import check_int_min, check_range
from ..inference.tensorrt import import_tensorrt, read_engine_file, write_engine_file
from .export import _check_options, _new_output, _read_exported_onnx, export_onnx

__all__ = ["export_engine", "read_engine_file", "write_engine_file"]

log = logging.getLogger(__name__)

GIB = 1 << 30
# TensorRT's TopK takes k <= 3840 (its operator reference); the decoding asks for K + 1 (topk_peaks).
TOPK_LIMIT = 3840


def export_engine(
    model: nn.Module,
    path: str | Path,
    imgsz: int | Sequence[int] = 512,
    batch: int = 1,
    dynamic: bool = False,
    max_batch: int = 32,
    decode: bool = True,
    max_det: int = 100,
    half: bool = True,
    raw_input: bool = False,
    workspace_gib: float = 4.0,
    metadata: dict[str, Any] | None = None,
    verbose: bool = False,
) -> Path:
    """Export ``model`` (a CenterNet, FairMOT or CenterNetDetector) to a new TensorRT engine file
    (``.engine``) built on this machine's GPU; returns its path.

    Args:
        imgsz, batch, dynamic, decode, max_det, raw_input, metadata, verbose: as :func:`export_onnx`'s.
        max_batch: with ``dynamic``, the largest batch the engine takes (its optimisation profile
            is 1 / ``batch`` / ``max_batch`` images: min / the size it is tuned for / max).
        half: a float16 network (input and decoding stay float32); False: float32 throughout.
        workspace_gib: the most GPU memory, in GiB, TensorRT's layers may use as scratch space.

    Raises, before any export work: FileExistsError when ``path`` exists; ValueError for another
    suffix than ``.engine``, bad options (``max_det`` above 3839 with decoding: TensorRT's TopK
    limit), or when PyTorch sees no CUDA GPU; ImportError without the
    ``tensorrt`` package. After: ValueError when TensorRT cannot parse the graph (its errors listed),
    RuntimeError when it cannot build it; on a full disk DiskFullError (an OSError) and no file.
    """
    path = _new_output(path, "engine")
    _check_options(imgsz, batch, max_det)
    if decode and max_det + 1 > TOPK_LIMIT:
        raise ValueError(
            f"max_det {max_det}: TensorRT's TopK takes at most {TOPK_LIMIT} values and the decoding asks for "
            f"K + 1; use K <= {TOPK_LIMIT - 1}"
        )
    if dynamic:
        check_int_min("max_batch", max_batch, batch)
    check_range("workspace_gib", workspace_gib, 0, low_open=True)
    if not torch.cuda.is_available():
        raise ValueError("TensorRT engines are built and run on a CUDA GPU; PyTorch sees none here")
    trt = import_tensorrt()
    with tempfile.TemporaryDirectory(prefix="centernet-tensorrt-") as workdir:
        onnx_path = Path(workdir) / "model.onnx"
        export_onnx(
            model,
            onnx_path,
            imgsz,
            batch,
            dynamic,
            decode,
            max_det,
            half=half,
            raw_input=raw_input,
            metadata=metadata,
            verbose=verbose,
        )
        info = json.loads(_read_exported_onnx(onnx_path)[1])
        serialized = _build(trt, onnx_path, batch, max_batch if dynamic else None, half, workspace_gib, verbose)
    info["tensorrt"] = {"version": trt.__version__, "fp16": half, "max_batch": max_batch if dynamic else batch}
    return write_engine_file(path, info, serialized)


def _build(
    trt: Any, onnx_path: Path, batch: int, max_batch: int | None, half: bool, workspace_gib: float, verbose: bool
) -> bytes:
    """TensorRT's serialised engine of the ONNX graph ``onnx_path`` (``max_batch`` None: the
    graph's fixed batch; else a free batch of 1 to ``max_batch`` tuned for ``batch``)."""
    logger = trt.Logger(trt.Logger.INFO if verbose else trt.Logger.WARNING)
    builder = trt.Builder(logger)
    # Networks are always explicit batch since TensorRT 10; strongly typed: the graph's float16 /
    # float32 split is kept as it is (and it is the only mode TensorRT 11 has).
    network = builder.create_network(1 << int(trt.NetworkDefinitionCreationFlag.STRONGLY_TYPED))
    parser = trt.OnnxParser(network, logger)
    if not parser.parse_from_file(str(onnx_path)):
        errors = [str(parser.get_error(index)) for index in range(parser.num_errors)]
        raise ValueError("TensorRT cannot parse the exported ONNX graph:\n" + "\n".join(errors or ["(no error given)"]))
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, int(workspace_gib * GIB))
    if not half:
        config.clear_flag(trt.BuilderFlag.TF32)  # float32 means float32, as in PyTorch and ONNX Runtime
    elif torch.cuda.get_device_capability() < (7, 0):
        log.warning("This GPU has no tensor cores: a float16 engine may run no faster than a float32 one")
    if max_batch is not None:
        graph_input = network.get_input(0)
        sample = list(graph_input.shape)[1:]  # [3, H, W] or [H, W, 3]
        profile = builder.create_optimization_profile()
        profile.set_shape(graph_input.name, [1, *sample], [batch, *sample], [max_batch, *sample])
        config.add_optimization_profile(profile)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise RuntimeError("TensorRT could not build an engine of the exported graph (its log above says why)")
    return bytes(serialized)
