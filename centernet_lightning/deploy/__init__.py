"""Deployment: export to ONNX / TorchScript with decoding in the graph, running ONNX files, and
benchmarking inference (latency, images/s, FLOP rate) on eager, channels_last, compile and ONNX Runtime.

The export tools are an optional extra: ``pip install centernet-lightning[export]`` (onnx,
onnxscript, onnxruntime). They are imported when used, so this package imports without them.
"""

from .benchmark import (
    BACKENDS,
    BenchmarkRow,
    benchmark_detector,
    benchmark_main,
    benchmark_table,
    measure_matmul_peak,
)
from .export import (
    DECODED_OUTPUTS,
    CheckpointModel,
    ExportModule,
    build_export_module,
    export_main,
    export_onnx,
    export_torchscript,
    load_checkpoint_model,
)
from .onnx_runtime import OnnxDetector

__all__ = [
    "BACKENDS",
    "DECODED_OUTPUTS",
    "BenchmarkRow",
    "CheckpointModel",
    "ExportModule",
    "OnnxDetector",
    "benchmark_detector",
    "benchmark_main",
    "benchmark_table",
    "build_export_module",
    "export_main",
    "export_onnx",
    "export_torchscript",
    "load_checkpoint_model",
    "measure_matmul_peak",
]
