"""Running an exported CenterNet ONNX file with ONNX Runtime.

:class:`OnnxDetector` returns the structure of the PyTorch detections (``bboxes``, ``scores``,
``labels``; see :class:`~centernet_lightning.structures.Detections`) as numpy arrays, from a
graph with the decoding inside or, for a ``--no-decode`` export, by decoding the raw maps with
the library's own decoder.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .export import DECODED_OUTPUTS, METADATA_KEY

__all__ = ["OnnxDetector"]

DEFAULT_PROVIDERS = ("CUDAExecutionProvider", "CPUExecutionProvider")


class OnnxDetector:
    """An exported CenterNet graph in an ONNX Runtime session.

    Args:
        path: a file written by :func:`~centernet_lightning.deploy.export_onnx`.
        providers: ONNX Runtime execution providers; None: CUDA when available, else CPU.

    Attributes (read from the graph and its ``centernet`` metadata):
        input_size: ``(height, width)`` of the network input in pixels.
        batch: the graph's batch size, None when it is free (``--dynamic``).
        raw_input: the input is uint8 [B, H, W, 3] RGB rather than normalised float32 [B, 3, H, W].
        num_detections: K, the detections per image.
        class_names, category_ids: from the checkpoint, or None.
        metadata: everything the exporter stored (stride, num_classes, opset, ...).
    """

    def __init__(self, path: str | Path, providers: Sequence[str] | None = None) -> None:
        import onnxruntime as ort

        if not Path(path).is_file():
            raise FileNotFoundError(f"ONNX file not found: {path}")
        if providers is None:
            providers = [name for name in DEFAULT_PROVIDERS if name in ort.get_available_providers()]
        self.session = ort.InferenceSession(str(path), providers=list(providers))
        self.metadata: dict[str, Any] = json.loads(
            self.session.get_modelmeta().custom_metadata_map.get(METADATA_KEY, "{}")
        )
        graph_input = self.session.get_inputs()[0]
        self.input_name: str = graph_input.name
        self.raw_input: bool = graph_input.type == "tensor(uint8)"
        shape = graph_input.shape
        self.input_size: tuple[int, int] = tuple(shape[1:3] if self.raw_input else shape[2:4])
        self.batch: int | None = shape[0] if isinstance(shape[0], int) else None
        self.output_names: list[str] = [output.name for output in self.session.get_outputs()]
        self.decoded: bool = self.output_names == list(DECODED_OUTPUTS)
        if not self.decoded and "stride" not in self.metadata:
            raise ValueError(f"{path} outputs {self.output_names}, not {list(DECODED_OUTPUTS)}, and has no metadata")
        self.num_detections: int = (
            self.session.get_outputs()[1].shape[1] if self.decoded else int(self.metadata.get("max_det", 100))
        )
        self.class_names: list[str] | None = self.metadata.get("class_names")
        self.category_ids: list[int] | None = self.metadata.get("category_ids")

    def __call__(self, images: np.ndarray | torch.Tensor) -> dict[str, np.ndarray]:
        """Detections of a batch of network inputs.

        Args:
            images: float32 [N, 3, H, W] normalised RGB (what the ``val`` transform gives), or for a
                raw-input graph uint8 [N, H, W, 3] RGB; H, W = :attr:`input_size`. A graph with a
                fixed batch size runs N images in chunks of it.

        Returns:
            ``bboxes`` float32 [N, K, 4] XYXY input pixels, ``scores`` float32 [N, K] (descending),
            ``labels`` int64 [N, K].
        """
        images = images.detach().cpu().numpy() if isinstance(images, torch.Tensor) else np.asarray(images)
        self._check_input(images)
        chunk = self.batch or len(images)
        parts = [self._run(images[start : start + chunk]) for start in range(0, len(images), chunk)]
        return {key: np.concatenate([part[key] for part in parts]) for key in parts[0]}

    def detect_images(self, images: Sequence[np.ndarray]) -> dict[str, np.ndarray]:
        """Detections of whole images (uint8 HWC RGB, any size), in their own pixels.

        The same pre- and post-processing as ``CenterNet.inference_detection2d``
        (:func:`~centernet_lightning.inference.detect_images`): the validation letterbox, the graph,
        the inverse letterbox with clipping. Returns the arrays of :meth:`__call__`.
        """
        from ..inference import InferenceSpec, detect_images
        from ..preprocess import IMAGENET_MEAN, IMAGENET_STD
        from ..structures import Detections

        height, width = self.input_size
        if height != width:
            raise ValueError(f"detect_images letterboxes to a square; this graph's input is {height}x{width}")
        spec = InferenceSpec(input_size=height, pad_position=self.metadata.get("pad_position", "center"))
        # The letterboxed pixels back from the normalised input: exact, as the graph's own
        # normalisation reproduces the val transform's float32 arithmetic.
        mean = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1) * 255
        std = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1) * 255

        def detect(inputs: torch.Tensor) -> Detections:
            if self.raw_input:
                inputs = (inputs * std + mean).round().clamp(0, 255).to(torch.uint8).permute(0, 2, 3, 1)
            found = self(inputs)
            return {key: torch.from_numpy(value) for key, value in found.items()}  # type: ignore[return-value]

        return detect_images(detect, images, spec)

    def _check_input(self, images: np.ndarray) -> None:
        height, width = self.input_size
        expected = ("uint8", (height, width, 3)) if self.raw_input else ("float32", (3, height, width))
        if images.ndim != 4 or not len(images) or images.dtype != expected[0] or tuple(images.shape[1:]) != expected[1]:
            layout = "uint8 [N, H, W, 3] RGB" if self.raw_input else "normalised float32 [N, 3, H, W]"
            raise ValueError(
                f"This graph takes {layout} images with (H, W) = {self.input_size}; "
                f"got {images.dtype} {list(images.shape)}"
            )

    def _run(self, images: np.ndarray) -> dict[str, np.ndarray]:
        """One session run; a short last chunk of a fixed-batch graph is padded with zeros."""
        count = len(images)
        if self.batch is not None and count < self.batch:
            padding = np.zeros((self.batch - count, *images.shape[1:]), dtype=images.dtype)
            images = np.concatenate([images, padding])
        outputs = dict(zip(self.output_names, self.session.run(None, {self.input_name: np.ascontiguousarray(images)})))
        if self.decoded:
            detections = {"bboxes": outputs["boxes"], "scores": outputs["scores"], "labels": outputs["labels"]}
        else:
            detections = self._decode({name: torch.from_numpy(value) for name, value in outputs.items()})
        return {key: value[:count] for key, value in detections.items()}

    def _decode(self, outputs: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
        from ..models.detector import decode_outputs

        detections = decode_outputs(outputs, int(self.metadata["stride"]), self.num_detections)
        return {key: detections[key].numpy() for key in ("bboxes", "scores", "labels")}
