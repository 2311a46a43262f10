"""int8 post-training quantisation: the calibration images, the nodes kept float, the quantised
ONNX (QDQ) and OpenVINO (NNCF) exports against the float network, the int8 backends and the refusals.

A tiny random CenterNet at 64 px with the ``size`` + ``offset`` box heads (so that one model has a
score-map head kept float and regression heads quantised), calibrated on a handful of images.
"""

from __future__ import annotations

import ast
import functools
import json
import logging
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
import yaml

pytest.importorskip("onnxscript")
onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
pytest.importorskip("onnxruntime.quantization")

from centernet_lightning import CenterNet, InferenceSpec  # noqa: E402
from centernet_lightning.deploy import build_backend, default_backends, export_onnx, load_predictor  # noqa: E402
from centernet_lightning.deploy.quantize import (  # noqa: E402
    FLOAT_HEADS,
    NAME_SCOPES_KEY,
    Calibration,
    calibration_inputs,
    float_node_names,
    quantize_onnx,
)
from centernet_lightning.image_io import read_image  # noqa: E402
from centernet_lightning.inference import (  # noqa: E402
    BACKENDS,
    NetworkBackend,
    OnnxRuntimeBackend,
    Predictor,
)
from centernet_lightning.inference.backends import METADATA_KEY  # noqa: E402
from centernet_lightning.preprocess import letterbox_images  # noqa: E402
from centernet_lightning.tasks import save_checkpoint  # noqa: E402

pytestmark = pytest.mark.usefixtures("one_thread")

SIZE = 64
MAX_DET = 20
CLASS_NAMES = ["cat", "dog"]
CATEGORY_IDS = [3, 7]
CALIBRATION_IMAGES = 4
# (height, width) of the calibration pictures: landscape, portrait, square, larger than the input.
PICTURE_SIZES = [(48, 64), (64, 40), (64, 64), (96, 80), (30, 50), (70, 90)]
# int8 against float32, on the same input: the heatmap head is float, the features it reads are not.
SCORE_TOL = 1e-3  # a random model's scores are ~0.1; the int8 error is ~1e-5
# Input pixels: one output cell (stride 4) and a fraction. A random model's heatmap is nearly flat, so
# int8's small errors may move a peak to the next cell.
BOX_TOL = 4.5
HEATMAP_PROBABILITY_TOL = 1e-3  # mean |sigmoid difference| over the map
TOP = 5  # the float detections looked for in the int8 ones


def tiny_model() -> CenterNet:
    """A seed-0 random CenterNet with the heatmap, size and offset heads and a trained one's spec;
    its size head is biased to 3 cells, so that its boxes have an extent to compare."""
    torch.manual_seed(0)
    model = CenterNet(
        num_classes=len(CLASS_NAMES),
        backbone={"name": "resnet18", "pretrained": False},
        neck={"name": "simple", "upsample_channels": [16] * 3},
        heads={"size": {}, "offset": {}},
        head_width=8,
        num_detections=MAX_DET,
        class_names=CLASS_NAMES,
    )
    model.inference_spec = InferenceSpec(input_size=SIZE, class_names=CLASS_NAMES, category_ids=CATEGORY_IDS)
    with torch.no_grad():
        model.detector.heads[0]["size"].layers[-1].bias.add_(3.0)
    return model.eval()


def picture(index: int, height: int, width: int) -> np.ndarray:
    """A distinct RGB uint8 picture: smooth colour ramps with noise (not all alike, not pure noise)."""
    rng = np.random.default_rng(index)
    ramp = np.linspace(0, 1, width)[None, :, None] * rng.uniform(0, 255, 3) + np.linspace(0, 1, height)[:, None, None]
    noise = rng.normal(0, 30, (height, width, 3))
    return np.clip(ramp * rng.uniform(0.2, 1) + noise, 0, 255).astype(np.uint8)


def write_rgb(path: Path, image: np.ndarray) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    assert cv2.imwrite(str(path), cv2.cvtColor(image, cv2.COLOR_RGB2BGR))
    return path


@pytest.fixture(scope="module")
def model() -> CenterNet:
    return tiny_model()


@pytest.fixture(scope="module")
def calib_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Six PNG pictures of assorted sizes (lossless: reading one back gives the array written)."""
    folder = tmp_path_factory.mktemp("calib")
    for index, (height, width) in enumerate(PICTURE_SIZES):
        write_rgb(folder / f"pic{index}.png", picture(index, height, width))
    return folder


@pytest.fixture(scope="module")
def calibration(calib_dir: Path) -> Calibration:
    return Calibration(calib_dir, CALIBRATION_IMAGES)


@pytest.fixture(scope="module")
def exports(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("exports")


@pytest.fixture(scope="module")
def float_onnx(model: CenterNet, exports: Path) -> Path:
    return export_onnx(model, exports / "float.onnx", SIZE, dynamic=True, max_det=MAX_DET)


@pytest.fixture(scope="module")
def int8_onnx(model: CenterNet, exports: Path, calibration: Calibration) -> Path:
    return export_onnx(model, exports / "int8.onnx", SIZE, dynamic=True, max_det=MAX_DET, calibration=calibration)


@pytest.fixture(scope="module")
def int8_maps_onnx(model: CenterNet, exports: Path, calibration: Calibration) -> Path:
    """The int8 graph without its decoding: the raw head maps."""
    return export_onnx(
        model, exports / "int8_maps.onnx", SIZE, dynamic=True, decode=False, max_det=MAX_DET, calibration=calibration
    )


@functools.cache
def network_backend() -> NetworkBackend:
    return NetworkBackend(tiny_model().detector, MAX_DET)


def prepared(images: list[np.ndarray], pad_position: str = "center") -> torch.Tensor:
    """What the predictor feeds the network for ``images``: letterboxed, normalised, float32 [N, 3, S, S]."""
    spec = InferenceSpec(input_size=SIZE, pad_position=pad_position)
    return Predictor(network_backend(), spec).prepare(images)[0]


def unseen_inputs(count: int = 3) -> torch.Tensor:
    """Letterboxed inputs of pictures the calibration never saw."""
    return prepared([picture(100 + index, 50 + 10 * index, 64) for index in range(count)])


def chosen_pictures(inputs: list[np.ndarray], calib_dir: Path) -> list[int]:
    """Which of the folder's pictures (by index) each calibration input is."""
    expected = prepared([read_image(calib_dir / f"pic{index}.png") for index in range(len(PICTURE_SIZES))]).numpy()
    found = []
    for array in inputs:
        differences = np.abs(expected - array).reshape(len(expected), -1).max(axis=1)
        assert differences.min() == 0.0, "a calibration input is no picture of the folder, as prediction prepares it"
        found.append(int(differences.argmin()))
    return found


# ------------------------------------------------------------------------------ calibration images
def test_calibration_from_a_folder_chooses_seeded_images(calib_dir: Path) -> None:
    inputs = calibration_inputs(Calibration(calib_dir, 3), SIZE)
    assert len(inputs) == 3
    chosen = chosen_pictures(inputs, calib_dir)
    assert len(set(chosen)) == 3 and chosen == sorted(chosen)  # distinct, in the folder's order
    assert chosen_pictures(calibration_inputs(Calibration(calib_dir, 3), SIZE), calib_dir) == chosen  # same seed
    choices = {
        tuple(chosen_pictures(calibration_inputs(Calibration(calib_dir, 3, seed=seed), SIZE), calib_dir))
        for seed in (1, 2, 3)
    }
    assert choices - {tuple(chosen)}  # another seed, other images (20 choices of 3 among 6)
    assert Calibration(calib_dir, 3, seed=5).describe() == {"source": calib_dir.name, "images": 3, "seed": 5}


def test_calibration_uses_every_image_when_the_source_has_fewer(calib_dir: Path, caplog) -> None:
    with caplog.at_level(logging.INFO, logger="centernet_lightning.deploy.quantize"):
        inputs = calibration_inputs(Calibration(calib_dir), SIZE)  # 300 asked, 6 there
    assert chosen_pictures(inputs, calib_dir) == list(range(len(PICTURE_SIZES)))
    assert "all 6 images" in caplog.text


def test_calibration_searches_subfolders_and_skips_unreadable_images(tmp_path: Path, caplog) -> None:
    write_rgb(tmp_path / "a.png", picture(0, 40, 60))
    write_rgb(tmp_path / "nested" / "deeper" / "b.jpg", picture(1, 64, 64))
    (tmp_path / "broken.png").write_bytes(b"not an image at all")
    (tmp_path / "notes.txt").write_text("not a candidate")
    with caplog.at_level(logging.WARNING, logger="centernet_lightning.deploy.quantize"):
        inputs = calibration_inputs(Calibration(tmp_path, 10), SIZE)
    assert len(inputs) == 2
    assert "broken.png" in caplog.text and "skips an unreadable image" in caplog.text
    broken_only = tmp_path / "broken_only"
    broken_only.mkdir()
    (broken_only / "x.jpg").write_bytes(b"")
    with pytest.raises(ValueError, match=r"broken_only: none of its 1 images could be read"):
        calibration_inputs(Calibration(broken_only), SIZE)


def test_bad_calibration_sources_are_named(tmp_path: Path) -> None:
    empty = tmp_path / "empty_folder"
    empty.mkdir()
    (empty / "readme.md").write_text("no pictures here")
    with pytest.raises(ValueError, match=r"--calib .*empty_folder: the folder holds no image files"):
        calibration_inputs(Calibration(empty), SIZE)
    with pytest.raises(FileNotFoundError, match=r"--calib .*nowhere: no such data config or folder"):
        calibration_inputs(Calibration(tmp_path / "nowhere"), SIZE)
    text = tmp_path / "pictures.txt"
    text.write_text("a.png\n")
    with pytest.raises(ValueError, match=r"--calib .*pictures.txt: give a data config \(.yaml\) or a folder"):
        calibration_inputs(Calibration(text), SIZE)
    with pytest.raises(ValueError, match="calibration images"):
        Calibration(tmp_path, 0)


def synthetic_config(tmp_path: Path, name: str, **data: object) -> Path:
    """A fit config (or, with ``bare``, the data section alone) of a small synthetic split."""
    bare = data.pop("bare", False)
    section = {
        "dataset": "synthetic",
        "data_dir": str(tmp_path / "shapes"),
        "synthetic": {"num_train": 3, "num_val": 2, "image_size": 64, "num_classes": 2},
        "input_size": SIZE,
        "num_workers": 0,
        **data,
    }
    path = tmp_path / name
    path.write_text(yaml.safe_dump(section if bare else {"trainer": {"max_epochs": 1}, "data": section}))
    return path


def test_calibration_from_a_data_config_reads_its_training_split(tmp_path: Path) -> None:
    config = synthetic_config(tmp_path, "fit.yaml")
    inputs = calibration_inputs(Calibration(config), SIZE)
    assert len(inputs) == 3  # the three training images, not the two validation ones
    train = sorted((tmp_path / "shapes" / "images" / "train").iterdir())  # the generator's layout
    expected = prepared([read_image(path) for path in train]).numpy()
    assert len(expected) == 3
    for array, image in zip(inputs, expected, strict=True):
        np.testing.assert_array_equal(array[0], image)
    bare = synthetic_config(tmp_path, "data.yml", bare=True, train_split=None)  # no training split: validation
    assert len(calibration_inputs(Calibration(bare), SIZE)) == 2
    assert len(calibration_inputs(Calibration(config, 2), SIZE)) == 2


def test_calibration_inputs_are_what_prediction_feeds(calib_dir: Path) -> None:
    """Float inputs equal ``Predictor.prepare``'s for the same picture, with either letterbox; raw
    inputs are the uint8 letterbox canvases."""
    source = calib_dir / "pic0.png"  # 48x64: letterboxed with padding
    single = Calibration(calib_dir, 1, seed=0)
    for pad_position in ("center", "top_left"):
        calibration = Calibration(calib_dir, len(PICTURE_SIZES), pad_position=pad_position)
        inputs = calibration_inputs(calibration, SIZE)
        assert all(array.shape == (1, 3, SIZE, SIZE) and array.dtype == np.float32 for array in inputs)
        assert all(array.flags.c_contiguous for array in inputs)
        expected = prepared([read_image(source)], pad_position).numpy()
        np.testing.assert_array_equal(inputs[0], expected)
    raw = calibration_inputs(Calibration(calib_dir, len(PICTURE_SIZES)), SIZE, raw_input=True)
    assert all(array.shape == (1, SIZE, SIZE, 3) and array.dtype == np.uint8 for array in raw)
    np.testing.assert_array_equal(raw[0], letterbox_images([read_image(source)], SIZE)[0])
    assert calibration_inputs(single, 96)[0].shape == (1, 3, 96, 96)


# ------------------------------------------------------------------------------ nodes kept float
def node_scopes(node) -> list[str]:
    text = next((entry.value for entry in node.metadata_props if entry.key == NAME_SCOPES_KEY), None)
    return [scope for scope in (ast.literal_eval(text) if text else []) if scope]


def head_of(scopes: list[str]) -> str | None:
    for scope in scopes:
        parts = scope.split(".")
        if len(parts) >= 4 and parts[:2] == ["detector", "heads"]:
            return parts[3]
    return None


def test_float_nodes_are_the_decoding_and_the_heatmap_head(float_onnx: Path) -> None:
    proto = onnx.load(str(float_onnx))
    kept = set(float_node_names(proto))
    assert FLOAT_HEADS == ("heatmap", "keypoint_heatmap")
    convs = {"heatmap": [], "size": [], "offset": [], "network": []}
    decoding = []
    for node in proto.graph.node:
        scopes = node_scopes(node)
        if "detector" not in scopes:  # no module path under the network: the decoding
            decoding.append(node)
            assert node.name in kept, f"decoding node {node.op_type} {node.name} would be quantised"
        elif node.op_type in ("Conv", "ConvTranspose"):
            convs[head_of(scopes) or "network"].append(node.name)
    assert {"Sigmoid", "MaxPool", "TopK"} <= {node.op_type for node in decoding}
    assert len(convs["heatmap"]) == 2 and set(convs["heatmap"]) <= kept
    for part in ("size", "offset", "network"):
        assert convs[part] and not set(convs[part]) & kept, part
    assert len(convs["network"]) > 20  # the backbone and neck convolutions are all quantised


def test_float_nodes_need_the_exporters_module_paths(float_onnx: Path) -> None:
    proto = onnx.load(str(float_onnx))
    for node in proto.graph.node:
        del node.metadata_props[:]
    with pytest.raises(ValueError, match="records no module paths"):
        float_node_names(proto)


def test_quantize_onnx_alone_refuses_an_existing_file_and_records_int8(
    float_onnx: Path, calibration: Calibration, tmp_path: Path
) -> None:
    """The public quantize_onnx never overwrites, and its file is known as int8 without an export's record."""
    taken = tmp_path / "taken.onnx"
    taken.write_bytes(b"mine")
    inputs = calibration_inputs(calibration, SIZE)
    with pytest.raises(FileExistsError, match="taken.onnx exists"):
        quantize_onnx(float_onnx, taken, inputs)
    assert taken.read_bytes() == b"mine"
    path = quantize_onnx(float_onnx, tmp_path / "alone.onnx", inputs)
    backend = OnnxRuntimeBackend(path)
    assert backend.name == "onnxruntime_int8" and backend.metadata["int8"] == {"arrays": len(inputs)}


# ------------------------------------------------------------------------------ the int8 ONNX graph
def producers(graph) -> dict[str, object]:
    return {output: node for node in graph.node for output in node.output}


def test_int8_onnx_graph_is_qdq_with_the_heatmap_head_float(int8_onnx: Path, calibration: Calibration) -> None:
    proto = onnx.load(str(int8_onnx))
    op_types = [node.op_type for node in proto.graph.node]
    assert op_types.count("QuantizeLinear") > 10 and op_types.count("DequantizeLinear") > 10
    made_by = producers(proto.graph)
    initializers = {tensor.name: tensor for tensor in proto.graph.initializer}
    heatmap, quantised = [], []
    for node in proto.graph.node:
        if node.op_type != "Conv":
            continue
        weight = node.input[1]
        producer = made_by.get(weight)
        if ".heads.0.heatmap." in weight:
            heatmap.append(node.name)
            assert producer is None, f"{node.name}: the heatmap head's weight is dequantised ({weight})"
            assert initializers[weight].data_type == onnx.TensorProto.FLOAT
        else:
            quantised.append(weight)
            assert producer is not None and producer.op_type == "DequantizeLinear", f"{node.name} has float weights"
    assert len(heatmap) == 2
    assert any(".heads.0.size." in name for name in quantised) and any(".heads.0.offset." in name for name in quantised)
    # The file keeps the float export's metadata, with the calibration recorded.
    metadata = json.loads({entry.key: entry.value for entry in proto.metadata_props}[METADATA_KEY])
    assert metadata["int8"] == calibration.describe() == {"source": calibration.source.name, "images": 4, "seed": 0}
    assert metadata["category_ids"] == CATEGORY_IDS and metadata["max_det"] == MAX_DET


def test_int8_backend_is_named_and_shaped_as_the_float_one(float_onnx: Path, int8_onnx: Path) -> None:
    floating, quantised = OnnxRuntimeBackend(float_onnx, threads=1), OnnxRuntimeBackend(int8_onnx, threads=1)
    assert (floating.name, floating.int8) == ("onnxruntime", False)
    assert (quantised.name, quantised.int8) == ("onnxruntime_int8", True)
    shapes = [(output.name, output.shape, output.type) for output in quantised.session.get_outputs()]
    assert shapes == [(output.name, output.shape, output.type) for output in floating.session.get_outputs()]
    assert quantised.spec == floating.spec and quantised.input_size == (SIZE, SIZE)
    inputs = unseen_inputs()
    found, reference = quantised(inputs), floating(inputs)
    for key in ("bboxes", "scores", "labels"):
        assert found[key].shape == reference[key].shape and found[key].dtype == reference[key].dtype


def assert_top_detections_found(actual: dict, expected: dict) -> None:
    """Each of the float network's top detections is among the int8 ones, with its label, a close
    score and a close box (a random model scores its peaks nearly alike: their order may differ, and
    a peak may move to the next cell)."""
    for image in range(len(expected["scores"])):
        boxes, scores, labels = (actual[key][image].numpy() for key in ("bboxes", "scores", "labels"))
        for box, score, label in zip(*(expected[key][image, :TOP].numpy() for key in ("bboxes", "scores", "labels"))):
            match = (labels == label) & (np.abs(scores - score) <= SCORE_TOL)
            match &= np.abs(boxes - box).max(axis=1) <= BOX_TOL
            assert match.any(), f"image {image}: int8 lacks label {label} score {score:.5f} box {box}"


def test_int8_onnx_detections_are_close_to_the_float_network(model: CenterNet, int8_onnx: Path) -> None:
    inputs = unseen_inputs()
    expected = NetworkBackend(model.detector, MAX_DET)(inputs)
    actual = OnnxRuntimeBackend(int8_onnx, threads=1)(inputs)
    assert_top_detections_found(actual, expected)


def test_int8_onnx_head_maps_are_close_to_the_float_network(model: CenterNet, int8_maps_onnx: Path) -> None:
    inputs = unseen_inputs()
    with torch.no_grad():
        expected = {name: value.numpy() for name, value in model.detector(inputs).items()}
    session = ort.InferenceSession(str(int8_maps_onnx), providers=["CPUExecutionProvider"])
    names = [output.name for output in session.get_outputs()]
    assert set(names) == {"heatmap", "size", "offset"}
    actual = dict(zip(names, session.run(None, {session.get_inputs()[0].name: inputs.numpy()})))
    for name in names:
        assert actual[name].shape == expected[name].shape
    probability = torch.sigmoid(torch.from_numpy(actual["heatmap"])) - torch.sigmoid(
        torch.from_numpy(expected["heatmap"])
    )
    assert float(probability.abs().mean()) < HEATMAP_PROBABILITY_TOL
    for name in ("size", "offset"):  # quantised heads: within a few per cent of the maps' magnitude
        error = np.abs(actual[name] - expected[name]).mean()
        assert error < 0.05 * np.abs(expected[name]).mean() + 1e-3, (name, error)
    assert OnnxRuntimeBackend(int8_maps_onnx).name == "onnxruntime_int8"  # decodes the maps itself


# ------------------------------------------------------------------------------ the int8 OpenVINO IR
class _Records(logging.Handler):
    """Every record a logger passes on (NNCF's logger does not propagate, so caplog sees none)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


def test_int8_openvino_ir_has_fake_quantize_and_a_float_heatmap_head(
    model: CenterNet, float_onnx: Path, calibration: Calibration, tmp_path: Path
) -> None:
    ov = pytest.importorskip("openvino")
    pytest.importorskip("nncf")
    from centernet_lightning.deploy import export_openvino
    from centernet_lightning.inference import OpenVINOBackend

    nncf_records = _Records()
    logging.getLogger("nncf").addHandler(nncf_records)
    try:
        path = export_openvino(
            model, tmp_path / "int8.xml", SIZE, dynamic=True, max_det=MAX_DET, calibration=calibration
        )
    finally:
        logging.getLogger("nncf").removeHandler(nncf_records)
    assert path.with_suffix(".bin").is_file()
    # NNCF's INFO line per node it leaves alone is not logged without verbose.
    assert [record.getMessage() for record in nncf_records.records if record.levelno < logging.WARNING] == []
    ir = ov.Core().read_model(str(path))
    operations = ir.get_ordered_ops()
    assert sum(op.get_type_name() == "FakeQuantize" for op in operations) > 10
    kept = set(float_node_names(onnx.load(str(float_onnx))))
    convolutions = [op for op in operations if op.get_type_name() == "Convolution"]
    heatmap = [op for op in convolutions if op.get_friendly_name().split("/")[0] in kept]
    assert len(heatmap) == 2 and len(convolutions) > len(heatmap)

    def sources(op) -> list:
        return [port.get_source_output().get_node() for port in op.inputs()]

    for op in convolutions:
        features, weights = sources(op)
        float_weights = weights.get_type_name() == "Constant" and weights.get_element_type() == ov.Type.f32
        if op in heatmap:
            assert features.get_type_name() != "FakeQuantize" and float_weights, op.get_friendly_name()
        else:
            assert not float_weights, f"{op.get_friendly_name()} kept float weights"
    backend = OpenVINOBackend(path, threads=1)
    assert (backend.name, backend.int8) == ("openvino_int8", True)
    assert json.loads(ir.get_rt_info(METADATA_KEY).astype(str))["int8"] == calibration.describe()
    inputs = unseen_inputs()
    actual = backend(inputs)
    expected = NetworkBackend(model.detector, MAX_DET)(inputs)
    assert actual["scores"].shape == expected["scores"].shape == (3, MAX_DET)
    assert_top_detections_found(actual, expected)


# ------------------------------------------------------------------------------ refusals
def test_int8_export_refusals(model: CenterNet, calibration: Calibration, tmp_path: Path) -> None:
    target = tmp_path / "refused.onnx"
    with pytest.raises(ValueError, match="--int8 and --half exclude each other"):
        export_onnx(model, target, SIZE, half=True, calibration=calibration)
    with pytest.raises(ValueError, match=r"square input: give one side, not \(64, 96\)"):
        export_onnx(model, target, (64, 96), calibration=calibration)
    with pytest.raises(FileNotFoundError, match="missing_folder"):  # a bad source fails before the export's work
        export_onnx(model, target, SIZE, calibration=Calibration(tmp_path / "missing_folder"))
    assert not target.exists()
    try:
        import openvino  # noqa: F401

        from centernet_lightning.deploy import export_openvino
    except ImportError:
        pass
    else:
        with pytest.raises(ValueError, match="square input"):
            export_openvino(model, tmp_path / "refused.xml", [64, 96], calibration=calibration)
        with pytest.raises(ValueError, match="half"):
            export_openvino(model, tmp_path / "refused.xml", SIZE, half=True, calibration=calibration)
    assert not list(tmp_path.iterdir())


def test_int8_export_of_a_fixed_batch_of_two(model: CenterNet, calibration: Calibration, tmp_path: Path) -> None:
    """A fixed ``batch=2`` calibrates on pairs of images (the last pair filled up) and runs 3 images in chunks."""
    path = export_onnx(model, tmp_path / "b2.onnx", SIZE, batch=2, max_det=MAX_DET, calibration=calibration)
    backend = OnnxRuntimeBackend(path)
    assert backend.batch == 2 and backend.name == "onnxruntime_int8"
    assert backend(torch.zeros(3, 3, SIZE, SIZE))["scores"].shape == (3, MAX_DET)
    pairs = calibration_inputs(calibration, SIZE, batch=2)
    singles = calibration_inputs(calibration, SIZE)
    assert all(pair.shape == (2, 3, SIZE, SIZE) for pair in pairs)
    assert len(pairs) == -(-len(singles) // 2)
    np.testing.assert_array_equal(pairs[0][1], singles[1][0])


def test_int8_export_at_opset_17_is_refused(model: CenterNet, calibration: Calibration, tmp_path: Path) -> None:
    """Opset 17 goes through ONNX's version converter, which drops the module paths the float nodes are found by."""
    with pytest.raises(ValueError, match="opset 18 or later, not 17"):
        export_onnx(model, tmp_path / "opset17.onnx", SIZE, opset=17, max_det=MAX_DET, calibration=calibration)
    assert not list(tmp_path.iterdir())


def test_int8_backends_need_calibration(model: CenterNet) -> None:
    assert {"onnxruntime_int8", "openvino_int8", "tensorrt"} <= set(BACKENDS)
    for name in ("onnxruntime_int8", "openvino_int8"):
        with pytest.raises(ValueError, match=f"The {name} backend quantises .* give --calib"):
            build_backend(name, model.detector, "cpu", MAX_DET, SIZE)


def test_default_backends() -> None:
    cpu = default_backends("cpu")
    assert cpu == ("eager", "channels_last", "compile", "onnxruntime", "openvino", "openvino_bf16")
    assert default_backends("cpu", calibrated=True) == (*cpu[:4], "onnxruntime_int8", *cpu[4:], "openvino_int8")
    assert "tensorrt" not in default_backends("cpu", True)
    gpu = ("eager", "channels_last", "compile", "onnxruntime", "tensorrt")
    assert default_backends("cuda") == default_backends(torch.device("cuda:0"), True) == gpu


def test_load_predictor_refuses_calibration_where_it_does_not_apply(
    model: CenterNet, float_onnx: Path, int8_onnx: Path, calibration: Calibration, tmp_path: Path
) -> None:
    for exported in (float_onnx, int8_onnx):
        with pytest.raises(ValueError, match="--calib: .* is an export: --calib quantises a checkpoint"):
            load_predictor(exported, device="cpu", calibration=calibration)
    ckpt = save_checkpoint(model, tmp_path / "tiny.ckpt")
    for backend in ("eager", "onnxruntime", "openvino"):
        with pytest.raises(ValueError, match=f"--calib calibrates the int8 backends .*, not {backend}"):
            load_predictor(ckpt, backend=backend, device="cpu", calibration=calibration)
    with pytest.raises(ValueError, match="give --calib"):
        load_predictor(ckpt, backend="onnxruntime_int8", device="cpu")
    # A float file asked to run in int8 is refused, not run in float32 under the int8 name.
    with pytest.raises(ValueError, match="is not quantised: export it with --int8"):
        load_predictor(float_onnx, backend="onnxruntime_int8", device="cpu")
    # An int8 file runs as it is: its backend is named after it.
    predictor = load_predictor(int8_onnx, device="cpu")
    assert predictor.backend.name == "onnxruntime_int8" and predictor.spec.category_ids == CATEGORY_IDS


def test_load_predictor_quantises_a_checkpoint(model: CenterNet, calib_dir: Path, tmp_path: Path) -> None:
    """``load_predictor(ckpt, backend="onnxruntime_int8", calibration=...)``: exported and quantised
    at the checkpoint's size and K, with its spec and settings; detections close to eager's."""
    ckpt = save_checkpoint(model, tmp_path / "tiny.ckpt")
    predictor = load_predictor(
        ckpt, backend="onnxruntime_int8", device="cpu", calibration=Calibration(calib_dir, CALIBRATION_IMAGES)
    )
    assert predictor.backend.name == "onnxruntime_int8" and predictor.backend.int8
    assert predictor.backend.input_size == (SIZE, SIZE) and predictor.num_detections == MAX_DET
    assert predictor.spec.category_ids == CATEGORY_IDS
    eager = load_predictor(ckpt, device="cpu")
    images = [picture(200 + index, 40 + 8 * index, 64) for index in range(2)]
    inputs = predictor.prepare(images)[0]
    np.testing.assert_array_equal(inputs, eager.prepare(images)[0])
    # Before the score threshold: the random model's scores lie about it (0.1).
    assert_top_detections_found(predictor.backend(inputs), eager.backend(inputs))


def test_predict_command_on_the_int8_backend(
    model: CenterNet, calib_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch
) -> None:
    """``centernet predict --backend onnxruntime_int8 --calib FOLDER`` of a checkpoint: the int8 run
    is named, and finds what eager finds; ``--calib`` is refused with another backend."""
    from centernet_lightning.cli.predict import predict_main

    save_checkpoint(model, tmp_path / "tiny.ckpt")
    for index in range(2):
        write_rgb(tmp_path / "images" / f"{index}.png", picture(300 + index, 48, 64))
    monkeypatch.chdir(tmp_path)
    common = ["--model", "tiny.ckpt", "--source", "images", "--conf", "0.05", "--no-draw", "--device", "cpu"]
    calib = ["--calib", str(calib_dir), "--calib-images", str(CALIBRATION_IMAGES)]
    predict_main([*common, "--backend", "onnxruntime_int8", *calib, "--name", "int8"])
    assert ", onnxruntime_int8); " in capsys.readouterr().out
    predict_main([*common, "--name", "eager"])
    int8, eager = (
        json.loads((tmp_path / "runs" / name / "predictions.json").read_text()) for name in ("int8", "eager")
    )
    assert int8 and abs(len(int8) - len(eager)) <= 2  # a peak at the letterbox's edge may move out, or in
    assert {item["category_id"] for item in int8} <= set(CATEGORY_IDS)
    best = [max(item["score"] for item in run) for run in (int8, eager)]
    assert best[0] == pytest.approx(best[1], abs=SCORE_TOL)
    with pytest.raises(SystemExit, match="--calib calibrates the int8 backends"):
        predict_main([*common, "--backend", "onnxruntime", *calib, "--name", "refused"])
