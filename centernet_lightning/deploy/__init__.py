"""Deployment: export to ONNX / TorchScript / OpenVINO IR / TensorRT engines with decoding in the graph, int8
quantisation (ONNX Runtime, OpenVINO), building inference backends
and predictors from model files by name (checkpoints and ONNX files), and benchmarking the backends
(latency, images/s, FLOP rate).

The export tools are an optional extra: ``pip install centernet-lightning[export]`` (onnx,
onnxscript, onnxruntime, openvino, nncf; TensorRT's ``tensorrt`` on a CUDA machine). They are imported when
used, so this package imports without them.
"""

from .backends import build_backend, default_backends, load_predictor, parse_backends
from .benchmark import COLUMNS, BenchmarkRow, benchmark_detector, benchmark_table, measure_matmul_peak
from .engine import export_engine
from .export import (
    FORBIDDEN_ONNX_OPS,
    build_inference_network,
    export_onnx,
    export_openvino,
    export_torchscript,
    model_metadata,
)
from .quantize import DEFAULT_CALIBRATION_IMAGES, Calibration, quantize_onnx, quantize_openvino

__all__ = [
    "COLUMNS",
    "DEFAULT_CALIBRATION_IMAGES",
    "FORBIDDEN_ONNX_OPS",
    "BenchmarkRow",
    "Calibration",
    "benchmark_detector",
    "benchmark_table",
    "build_backend",
    "build_inference_network",
    "default_backends",
    "export_engine",
    "export_onnx",
    "export_openvino",
    "export_torchscript",
    "load_predictor",
    "measure_matmul_peak",
    "model_metadata",
    "parse_backends",
    "quantize_onnx",
    "quantize_openvino",
]
