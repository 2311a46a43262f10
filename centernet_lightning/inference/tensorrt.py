"""TensorRT engines: the ``.engine`` file layout and the ``tensorrt`` backend that runs one on a CUDA GPU.

An engine file (:func:`~centernet_lightning.deploy.engine.export_engine` writes them) is

==============  ==============================================================================
bytes           what they hold
==============  ==============================================================================
4               N, the length of the metadata: unsigned 32-bit integer, little-endian
N               the metadata: UTF-8 JSON, the ONNX export's ``centernet`` metadata (input size,
                outputs, stride, the model's inference spec and predictor settings) plus
                ``"tensorrt": {"version", "fp16", "max_batch"}``
the rest        the serialised TensorRT engine (a plan: one TensorRT version, one GPU model)
==============  ==============================================================================

:func:`write_engine_file` and :func:`read_engine_file` are plain Python, so the layout needs
neither TensorRT nor a GPU. The ``tensorrt`` package is imported only by :class:`TensorRTBackend`.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..atomic_files import write_new_file
from .backends import ExportedGraphBackend, _checked_metadata, resolve_device

__all__ = ["ENGINE_SUFFIX", "TensorRTBackend", "import_tensorrt", "read_engine_file", "write_engine_file"]

ENGINE_SUFFIX = ".engine"
LENGTH = struct.Struct("<I")  # the metadata's length in bytes, before the metadata
# What a backend needs from the metadata beside the engine's own tensors.
REQUIRED_METADATA = ("input_size", "stride", "outputs")


def import_tensorrt() -> Any:
    """The ``tensorrt`` module; ImportError with install advice without it."""
    try:
        import tensorrt
    except ImportError:
        raise ImportError(
            "tensorrt is not installed (pip install tensorrt: NVIDIA's wheels, for a CUDA GPU and its driver)"
        ) from None
    return tensorrt


def write_engine_file(path: str | Path, metadata: dict[str, Any], engine: bytes | bytearray | memoryview) -> Path:
    """Write ``metadata`` (JSON-able) and a serialised ``engine`` as the new file ``path`` in the
    layout of the module docstring; returns the path.

    Written atomically (after removing what an earlier, killed write to ``path`` left): a full disk
    raises :class:`~centernet_lightning.atomic_files.DiskFullError` and leaves no file. Raises
    FileExistsError when ``path`` exists: nothing is overwritten.
    """
    path = Path(path)
    blob = json.dumps(metadata).encode("utf-8")
    return write_new_file(path, b"".join([LENGTH.pack(len(blob)), blob, bytes(engine)]))


def read_engine_file(path: str | Path) -> tuple[dict[str, Any], bytes]:
    """The metadata dict and the serialised engine of an engine file (no TensorRT needed).

    ValueError naming the file when it is too short for the length, the length runs past the file's
    end, the metadata is not a JSON object, it lacks what a backend needs (``input_size``,
    ``stride``, ``outputs``), or no engine follows it.
    """
    path = Path(path)
    data = path.read_bytes()
    not_ours = f"{path} is not a CenterNet TensorRT engine (centernet export --format engine writes one)"
    if len(data) < LENGTH.size:
        raise ValueError(f"{not_ours}: it has {len(data)} bytes, too few for the metadata's length")
    (length,) = LENGTH.unpack_from(data)
    if length > len(data) - LENGTH.size:
        raise ValueError(f"{not_ours}: its metadata length {length} runs past the file's {len(data)} bytes")
    try:
        metadata = json.loads(data[LENGTH.size : LENGTH.size + length].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ValueError(f"{not_ours}: its metadata is not JSON ({error})") from None
    if not isinstance(metadata, dict):
        raise ValueError(f"{not_ours}: its metadata is not a JSON object")
    missing = [key for key in REQUIRED_METADATA if key not in metadata]
    if missing:
        raise ValueError(f"{not_ours}: its metadata lacks {', '.join(missing)}")
    engine = data[LENGTH.size + length :]
    if not engine:
        raise ValueError(f"{not_ours}: no engine follows its metadata (a truncated file?)")
    return metadata, engine


def _dims(shape: Any) -> list[int | None]:
    """A TensorRT shape as a list, None for a dynamic dimension (TensorRT's -1)."""
    return [int(size) if size >= 0 else None for size in shape]


def _torch_dtypes(trt: Any) -> dict[Any, torch.dtype]:
    """The torch dtype of each TensorRT data type an engine of ours may take or give."""
    return {
        trt.DataType.FLOAT: torch.float32,
        trt.DataType.HALF: torch.float16,
        trt.DataType.INT32: torch.int32,
        trt.DataType.INT64: torch.int64,
        trt.DataType.BOOL: torch.bool,
        trt.DataType.UINT8: torch.uint8,
    }


class TensorRTBackend(ExportedGraphBackend):
    """A TensorRT engine of an exported CenterNet graph, run on a CUDA GPU.

    Args:
        path: a ``.engine`` file of :func:`~centernet_lightning.deploy.engine.export_engine`;
            ValueError naming it when it is no such file, or was built by another TensorRT version
            or for another GPU model (engines are not portable: export it again there).
        device: ``cuda`` or ``cuda:N``; ValueError for the CPU or without a GPU.
        threads: accepted for the backends' common signature and unused (TensorRT runs on the GPU).

    Attributes: as :class:`~centernet_lightning.inference.OnnxRuntimeBackend`'s, read from the
    engine's I/O tensors and its metadata; ``max_batch`` (the most images one run takes; a larger
    batch of a dynamic engine runs in chunks of it).

    A batch comes as the other exported backends take it (a CPU tensor or numpy array; a CUDA
    tensor is copied through the host, as for ONNX Runtime), is copied into a torch CUDA tensor,
    and the engine writes its outputs into torch CUDA tensors on its own stream (TensorRT advises
    against the default stream); the outputs come back on the CPU.
    """

    name = "tensorrt"

    def __init__(self, path: str | Path, device: str | torch.device = "cuda", threads: int | None = None) -> None:
        path = Path(path)
        try:
            self.device = resolve_device(device)
        except ValueError as error:
            raise ValueError(f"The TensorRT engine {path} runs on a CUDA GPU: {error}") from None
        if self.device.type != "cuda":
            raise ValueError(f"The TensorRT engine {path} runs on a CUDA GPU, not {self.device}")
        if not path.is_file():
            raise FileNotFoundError(f"TensorRT engine file not found: {path}")
        trt = import_tensorrt()
        self.path = path
        metadata, serialized = read_engine_file(path)
        self._logger = trt.Logger(trt.Logger.WARNING)
        with torch.cuda.device(self.device):
            # The runtime must outlive its engine, the engine its context: all three are kept.
            self._runtime = trt.Runtime(self._logger)
            self.engine = self._runtime.deserialize_cuda_engine(serialized)
            if self.engine is None:
                built_by = (metadata.get("tensorrt") or {}).get("version", "an unknown version")
                raise ValueError(
                    f"TensorRT {trt.__version__} cannot load {path}: it was built by another TensorRT version or "
                    f"for another GPU (it says TensorRT {built_by}); export it again on this machine"
                )
            self.context = self.engine.create_execution_context()
            self._stream = torch.cuda.Stream(self.device)  # not the default stream: TensorRT syncs extra there
        names = [self.engine.get_tensor_name(index) for index in range(self.engine.num_io_tensors)]
        is_input = {name: self.engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT for name in names}
        dtypes = _torch_dtypes(trt)
        self._dtypes: dict[str, torch.dtype] = {}
        for name in names:
            dtype = self.engine.get_tensor_dtype(name)
            if dtype not in dtypes:
                raise ValueError(f"{path}: its tensor {name!r} is {dtype}, which this backend does not handle")
            self._dtypes[name] = dtypes[dtype]
        inputs = [
            (
                name,
                self._dtypes[name] == torch.uint8,
                str(self._dtypes[name]),
                _dims(self.engine.get_tensor_shape(name)),
            )
            for name in names
            if is_input[name]
        ]
        output_shapes = {name: _dims(self.engine.get_tensor_shape(name)) for name in names if not is_input[name]}
        self.metadata: dict[str, Any] = _checked_metadata(
            path, "a TensorRT engine", json.dumps(metadata), inputs, list(output_shapes)
        )
        self._describe_graph(inputs[0][0], inputs[0][1], inputs[0][3], output_shapes)
        self.max_batch: int | None = self.batch or (metadata.get("tensorrt") or {}).get("max_batch")

    def _infer(self, images: np.ndarray) -> list[np.ndarray]:
        """The engine's outputs (in :attr:`output_names` order, on the CPU) of a contiguous batch
        (float32 [N, 3, H, W] or uint8 [N, H, W, 3]); a dynamic engine runs more than
        :attr:`max_batch` images in chunks."""
        if self.max_batch is not None and len(images) > self.max_batch:
            parts = [
                self._infer(images[start : start + self.max_batch]) for start in range(0, len(images), self.max_batch)
            ]
            return [np.concatenate(values) for values in zip(*parts)]
        with torch.cuda.device(self.device):
            stream = self._stream
            batch = torch.from_numpy(images).to(self.device, self._dtypes[self.input_name]).contiguous()
            if not self.context.set_input_shape(self.input_name, tuple(batch.shape)):
                raise ValueError(f"{self.path} cannot take an input of shape {list(batch.shape)}")
            self.context.set_tensor_address(self.input_name, batch.data_ptr())
            outputs = {}
            for name in self.output_names:
                shape = tuple(self.context.get_tensor_shape(name))  # concrete once the input shape is set
                outputs[name] = torch.empty(shape, dtype=self._dtypes[name], device=self.device)
                self.context.set_tensor_address(name, outputs[name].data_ptr())
            stream.wait_stream(torch.cuda.current_stream(self.device))  # the input copy, on that stream, first
            if not self.context.execute_async_v3(stream.cuda_stream):
                raise RuntimeError(f"TensorRT failed to run {self.path} (its log above says why)")
            stream.synchronize()
        return [outputs[name].cpu().numpy() for name in self.output_names]
