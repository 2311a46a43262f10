"""Deployment: export to ONNX / TorchScript with decoding in the graph, and running ONNX files.

The export tools are an optional extra: ``pip install centernet-lightning[export]`` (onnx,
onnxscript, onnxruntime). They are imported when used, so this package imports without them.
"""

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
    "DECODED_OUTPUTS",
    "CheckpointModel",
    "ExportModule",
    "OnnxDetector",
    "build_export_module",
    "export_main",
    "export_onnx",
    "export_torchscript",
    "load_checkpoint_model",
]
