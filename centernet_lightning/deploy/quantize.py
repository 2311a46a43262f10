"""int8 post-training quantisation of the exported graph: ONNX Runtime (QDQ, static) and OpenVINO (NNCF).

Both start from :func:`~centernet_lightning.deploy.export_onnx`'s float32 graph (decoding inside)
and calibrate its activation ranges on real images, letterboxed and normalised exactly as
prediction prepares them (:class:`Calibration`: a data config's training split or a folder of
images, N of them). What needs float stays float: the decoding (sigmoid, peaks, top-K, box
arithmetic) and the heads whose output is a score map (``heatmap``, ``keypoint_heatmap``), whose
probabilities the top-K ranks; the backbone, the neck and the regression heads run in int8.
The nodes to keep are found by the module path the exporter records on every node
(``pkg.torch.onnx.name_scopes``).

- ONNX Runtime: :func:`quantize_onnx` writes a QDQ graph (``quantize_static``, per-channel
  symmetric int8 weights, uint8 activations: the u8s8 kernels that x86 VNNI runs fastest).
- OpenVINO: :func:`quantize_openvino` returns the converted model with NNCF's FakeQuantize nodes
  (``nncf.quantize``, the default ``performance`` preset, fast bias correction).

The tools (onnxruntime's quantisation module, nncf) are imported when used.
"""

from __future__ import annotations

import ast
import json
import logging
import re
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..atomic_files import write_new_file
from ..checks import check_int_min
from ..image_io import IMAGE_EXTENSIONS, read_image
from ..inference.backends import METADATA_KEY
from ..preprocess import letterbox_images, normalize
from .quiet_logging import quiet_loggers

__all__ = [
    "DEFAULT_CALIBRATION_IMAGES",
    "FLOAT_HEADS",
    "Calibration",
    "calibration_inputs",
    "float_node_names",
    "quantize_onnx",
    "quantize_openvino",
]

log = logging.getLogger(__name__)

DEFAULT_CALIBRATION_IMAGES = 300  # NNCF's default subset size; more adds little to the ranges
FLOAT_HEADS = ("heatmap", "keypoint_heatmap")  # score maps: int8 steps would reorder close peaks
NAME_SCOPES_KEY = "pkg.torch.onnx.name_scopes"  # the module path the dynamo exporter records per node
CONFIG_SUFFIXES = (".yaml", ".yml")


@dataclass(frozen=True)
class Calibration:
    """Where int8 calibration images come from.

    Args:
        source: a data config (YAML: a fit config with a ``data`` section, or the section alone), whose
            training split is read, or a folder of images (searched recursively).
        images: how many images, >= 1; fewer when the source has fewer (all of them are used).
        seed: which images, when the source has more (a seeded random choice).
        pad_position: how they are letterboxed: the model's ``InferenceSpec.pad_position`` (an
            export of a CenterNet/FairMOT uses its own).
    """

    source: Path
    images: int = DEFAULT_CALIBRATION_IMAGES
    seed: int = 0
    pad_position: str = "center"

    def __post_init__(self) -> None:
        object.__setattr__(self, "source", Path(self.source))
        check_int_min("calibration images", self.images, 1)

    def describe(self) -> dict[str, Any]:
        """What the exported file records about its calibration."""
        return {"source": self.source.name, "images": self.images, "seed": self.seed}


def _image_paths(source: Path) -> list[Path]:
    """The calibration candidates of ``source``: a folder's image files or a data config's training images."""
    if source.is_dir():
        paths = sorted(path for path in source.rglob("*") if path.suffix.lower() in IMAGE_EXTENSIONS)
        if not paths:
            raise ValueError(
                f"--calib {source}: the folder holds no image files ({', '.join(IMAGE_EXTENSIONS[:5])}, ...)"
            )
        return paths
    if not source.is_file():
        raise FileNotFoundError(f"--calib {source}: no such data config or folder of images")
    if source.suffix.lower() not in CONFIG_SUFFIXES:
        raise ValueError(f"--calib {source}: give a data config (.yaml) or a folder of images")
    from ..datasets.datamodule import DetectionDataModule

    datamodule = DetectionDataModule.from_config(source)
    split = datamodule.hparams.train_split or datamodule.hparams.val_split
    if split is None:
        raise ValueError(f"--calib {source}: the data config has neither a train_split nor a val_split to read")
    if split != datamodule.hparams.train_split:
        log.info("Calibrating on the %s split of %s: it has no training split", split, source)
    dataset = datamodule.make_dataset(split, train=False)
    return [record.path for record in dataset.records]


def calibration_inputs(
    calibration: Calibration, input_size: int, raw_input: bool = False, batch: int = 1
) -> list[np.ndarray]:
    """The calibration images as the exported graph takes them, ``batch`` images per array (a graph
    of a fixed batch size; the last batch is filled up with the first images): normalised float32
    [batch, 3, S, S], or uint8 [batch, S, S, 3] for a raw-input graph (S = ``input_size``).

    Letterboxed as :meth:`~centernet_lightning.inference.Predictor.prepare` does. Unreadable
    images are skipped with a warning; ValueError naming the source when none can be read.
    """
    paths = _image_paths(calibration.source)
    if len(paths) > calibration.images:
        chosen = np.random.default_rng(calibration.seed).choice(len(paths), calibration.images, replace=False)
        paths = [paths[index] for index in sorted(chosen)]
    elif len(paths) < calibration.images:
        log.info(
            "Calibrating on all %d images of %s (%d were asked for)", len(paths), calibration.source, calibration.images
        )
    inputs = []
    for path in paths:
        try:
            image = read_image(path)
        except OSError as error:
            log.warning("Calibration skips an unreadable image: %s", error)
            continue
        canvases, _, _ = letterbox_images([image], input_size, calibration.pad_position)
        pixels = torch.from_numpy(canvases)
        inputs.append(np.ascontiguousarray((pixels if raw_input else normalize(pixels)).numpy()))
    if not inputs:
        raise ValueError(f"--calib {calibration.source}: none of its {len(paths)} images could be read")
    return batched_inputs(inputs, batch)


def batched_inputs(inputs: Sequence[np.ndarray], batch: int) -> list[np.ndarray]:
    """One-image arrays grouped ``batch`` at a time, for a graph of that fixed batch size; the last
    batch is filled up with the first images."""
    if batch == 1:
        return list(inputs)
    count = -(-len(inputs) // batch) * batch  # rounded up to whole batches
    filled = [inputs[index % len(inputs)] for index in range(count)]
    return [np.concatenate(filled[start : start + batch]) for start in range(0, len(filled), batch)]


def has_vnni() -> bool:
    """Whether this CPU has x86 VNNI (AVX-512 VNNI or AVX-VNNI), read from /proc/cpuinfo (False
    where there is none). Without it ONNX Runtime's u8s8 kernels can saturate 16-bit sums."""
    try:
        flags = Path("/proc/cpuinfo").read_text(encoding="utf-8", errors="replace").split()
    except OSError:
        return False
    return "avx512_vnni" in flags or "avx_vnni" in flags


def float_node_names(model: Any) -> list[str]:
    """Names of the nodes of an exported ONNX ``model`` (a ModelProto) that stay float: the decoding
    (every node outside the network ``detector``) and the score-map heads (:data:`FLOAT_HEADS`).

    RuntimeError when the graph records no module paths (not a graph of our exporter).
    """
    kept, scoped = [], 0
    for node in model.graph.node:
        text = next((entry.value for entry in node.metadata_props if entry.key == NAME_SCOPES_KEY), None)
        scopes = ast.literal_eval(text) if text else []
        scoped += bool(scopes)
        path = ".".join(scope for scope in scopes if scope)
        in_network = "detector." in f"{path}."
        head = re.search(r"\bheads\.\d+\.(\w+)", path)
        if not in_network or (head and head.group(1) in FLOAT_HEADS):
            kept.append(node.name)
    if not scoped:
        raise ValueError(
            "The ONNX graph records no module paths (pkg.torch.onnx.name_scopes): quantise an export of "
            "centernet_lightning.deploy.export_onnx at opset 18 or later"
        )
    return kept


class _CalibrationReader:
    """ONNX Runtime's CalibrationDataReader protocol over a list of inputs."""

    def __init__(self, input_name: str, inputs: Sequence[np.ndarray]) -> None:
        self._feeds = iter([{input_name: array} for array in inputs])

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self._feeds, None)

    def rewind(self) -> None:  # quantize_static reads the data once; part of the protocol
        pass


def quantize_onnx(source: str | Path, output: str | Path, inputs: Sequence[np.ndarray]) -> Path:
    """Write the int8 QDQ version of the exported float32 ONNX file ``source`` as the new file ``output``.

    ``inputs``: calibration batches as the graph takes them (:func:`calibration_inputs`). The
    file keeps ``source``'s metadata, with an ``int8`` entry when it had none. ONNX Runtime's
    shape pre-processing runs first (graph optimisation, BatchNorm folded; its symbolic shape
    inference is skipped: it has no rule for the decoding's TopK on a computed K). On a CPU without
    VNNI the weights use 7 bits (``reduce_range``), as ONNX Runtime advises against saturation.
    FileExistsError when ``output`` exists; RuntimeError naming the step when ONNX Runtime fails.
    """
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    source, output = Path(source), Path(output)
    if output.exists():
        raise FileExistsError(f"{output} exists; choose another output path (nothing was written)")
    original = onnx.load(str(source))
    # Found in the exporter's graph: the pre-processing keeps node names but drops their metadata.
    kept = float_node_names(original)
    metadata = {entry.key: entry.value for entry in original.metadata_props}
    if METADATA_KEY in metadata and "int8" not in json.loads(metadata[METADATA_KEY]):
        metadata[METADATA_KEY] = json.dumps({**json.loads(metadata[METADATA_KEY]), "int8": {"arrays": len(inputs)}})
    with tempfile.TemporaryDirectory(prefix="centernet-int8-") as workdir:
        prepared, quantized_path = Path(workdir) / "prepared.onnx", Path(workdir) / "int8.onnx"
        try:
            quant_pre_process(str(source), str(prepared), skip_symbolic_shape=True)
            quantize_static(
                str(prepared),
                str(quantized_path),
                _CalibrationReader(original.graph.input[0].name, inputs),
                quant_format=QuantFormat.QDQ,
                per_channel=True,
                reduce_range=not has_vnni(),
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                nodes_to_exclude=kept,
            )
        except Exception as error:  # ONNX Runtime's own errors: one line naming the step
            raise RuntimeError(f"ONNX Runtime's int8 quantisation of {source.name} failed: {error}") from error
        quantized = onnx.load(str(quantized_path))
        onnx.helper.set_model_props(quantized, metadata)
        return write_new_file(output, quantized.SerializeToString())


def quantize_openvino(converted: Any, onnx_model: Any, inputs: Sequence[np.ndarray], verbose: bool = False) -> Any:
    """``converted`` (the OpenVINO model of the exported ONNX graph ``onnx_model``, a ModelProto) with int8
    FakeQuantize nodes from NNCF, calibrated on ``inputs``; the nodes of :func:`float_node_names`
    (OpenVINO keeps the ONNX node names, a convolution's adding ``/WithoutBiases``) are ignored.
    ``verbose``: let NNCF's INFO lines through (one per node it leaves alone)."""
    try:
        import nncf
    except ImportError:
        raise ImportError("nncf is not installed (pip install 'centernet-lightning[export]')") from None
    kept = float_node_names(onnx_model)
    patterns = [rf"^{re.escape(name)}(/.*)?$" for name in kept]
    # NNCF's import sets its logger to INFO (so it is quietened after the import), and its check for
    # a PyTorch model loads torch's C++ extension helper, which warns when there is no CUDA.
    try:
        with quiet_loggers(("nncf",), verbose), quiet_loggers(("torch.utils.cpp_extension",), verbose, logging.ERROR):
            return nncf.quantize(
                converted,
                nncf.Dataset(list(inputs)),
                subset_size=len(inputs),
                ignored_scope=nncf.IgnoredScope(patterns=patterns, validate=False),
            )
    except Exception as error:  # NNCF's errors derive from Exception only: one line naming the step
        raise RuntimeError(f"NNCF's int8 quantisation for OpenVINO failed: {error}") from error
