"""Deployment: export to ONNX / TorchScript / OpenVINO IR with decoding in the graph, building inference backends
and predictors from model files by name (checkpoints and ONNX files), and benchmarking the backends
(latency, images/s, FLOP rate).

The export tools are an optional extra: ``pip install centernet-lightning[export]`` (onnx,
onnxscript, onnxruntime, openvino). They are imported when used, so this package imports without them.
"""

from .backends import build_backend, load_predictor, parse_backends
from .benchmark import COLUMNS, BenchmarkRow, benchmark_detector, benchmark_table, measure_matmul_peak
from .export import (
    FORBIDDEN_ONNX_OPS,
    build_inference_network,
    export_onnx,
    export_openvino,
    export_torchscript,
    model_metadata,
)

__all__ = [
    "COLUMNS",
    "FORBIDDEN_ONNX_OPS",
    "BenchmarkRow",
    "benchmark_detector",
    "benchmark_table",
    "build_backend",
    "build_inference_network",
    "export_onnx",
    "export_openvino",
    "export_torchscript",
    "load_predictor",
    "measure_matmul_peak",
    "model_metadata",
    "parse_backends",
]
