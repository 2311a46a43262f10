"""Scoring backends on a validation split: the data module of a config file, ``ValidationSplit`` and
``evaluate_backend`` (a backend that returns the ground truth scores AP50 1, so the letterbox
inverse and the category ids are right), the AP columns of the benchmark and its command, and
``centernet export --int8``.

Tiny data (a few synthetic shapes, or the three pictures of conftest's COCO folder) and a tiny
random CenterNet at 64 px.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import CLASSES, SCENE, write_rgb
from rich.console import Console
from tiny_models import tiny_centernet

from centernet_lightning import CenterNet
from centernet_lightning.cli.benchmark import benchmark_main
from centernet_lightning.datasets.datamodule import DetectionDataModule
from centernet_lightning.deploy import benchmark_detector, benchmark_table
from centernet_lightning.deploy.accuracy import ValidationSplit, evaluate_backend, spec_and_settings
from centernet_lightning.deploy.benchmark import ACCURACY_COLUMNS, COLUMNS
from centernet_lightning.image_io import read_image
from centernet_lightning.inference import NetworkBackend
from centernet_lightning.preprocess import letterbox_images, normalize
from centernet_lightning.structures import InferenceSpec
from centernet_lightning.tasks import save_checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")

SIZE = 64
MAX_DET = 20
SHAPES = ["circle", "rectangle"]  # the synthetic generator's first two classes
PEAK = 100.0  # GFLOP/s given: no matmul sampling


def data_section(data_dir: Path, **entries: object) -> dict:
    """A small synthetic data section: 3 training and 4 validation images of 96 px, read at 64 px
    (so the letterbox scales them)."""
    return {
        "dataset": "synthetic",
        "data_dir": str(data_dir),
        "synthetic": {"num_train": 3, "num_val": 4, "image_size": 96, "num_classes": 2},
        "input_size": SIZE,
        "batch_size": 2,
        "num_workers": 0,
        **entries,
    }


def write_yaml(path: Path, content: object) -> Path:
    path.write_text(yaml.safe_dump(content))
    return path


@pytest.fixture(scope="module")
def synthetic_config(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fit config whose data section is the small synthetic split."""
    folder = tmp_path_factory.mktemp("synthetic")
    content = {"model": {"backbone": "resnet18"}, "trainer": {"max_epochs": 1}, "data": data_section(folder / "shapes")}
    return write_yaml(folder / "fit.yaml", content)


@pytest.fixture(scope="module")
def synthetic_split(synthetic_config: Path) -> ValidationSplit:
    return ValidationSplit(synthetic_config, SIZE, batch_size=3)


@pytest.fixture(scope="module")
def model() -> CenterNet:
    return tiny_centernet(SHAPES, SIZE, num_detections=MAX_DET)


@pytest.fixture(scope="module")
def calib_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("calib")
    rng = np.random.default_rng(0)
    for index, (height, width) in enumerate([(48, 64), (64, 40), (64, 64), (80, 96)]):
        write_rgb(folder / f"{index}.png", rng.integers(0, 256, (height, width, 3), dtype=np.uint8))
    return folder


def render(table) -> str:
    console = Console(record=True, width=250)
    console.print(table)
    return console.export_text()


# ------------------------------------------------------------------------------ from_config
def test_from_config_reads_a_fit_configs_data_section(tmp_path: Path) -> None:
    section = data_section(tmp_path / "shapes")
    fit = write_yaml(tmp_path / "fit.yaml", {"model": {"head_width": 16}, "data": section})
    datamodule = DetectionDataModule.from_config(fit)
    assert datamodule.hparams.dataset == "synthetic" and datamodule.hparams.input_size == SIZE
    assert datamodule.hparams.synthetic["image_size"] == 96 and datamodule.class_names == SHAPES
    assert not (tmp_path / "shapes").exists()  # reading the config generates nothing
    bare = DetectionDataModule.from_config(write_yaml(tmp_path / "data.yml", section))
    assert bare.hparams.data_dir == section["data_dir"] and bare.hparams.batch_size == 2
    wrapped = {"class_path": "centernet_lightning.DetectionDataModule", "init_args": section}
    init_args = DetectionDataModule.from_config(write_yaml(tmp_path / "wrapped.yaml", {"data": wrapped}))
    assert init_args.hparams.num_workers == 0 and init_args.hparams.synthetic == section["synthetic"]
    overridden = DetectionDataModule.from_config(str(fit), input_size=128, val_batch_size=3)
    assert overridden.hparams.input_size == 128 and overridden.hparams.val_batch_size == 3


def test_from_config_names_what_it_cannot_take(tmp_path: Path) -> None:
    section = data_section(tmp_path / "shapes", bogus_setting=1)
    path = write_yaml(tmp_path / "odd.yaml", {"data": section})
    with pytest.raises(ValueError, match=r"odd.yaml: unknown data setting\(s\) \['bogus_setting'\]") as caught:
        DetectionDataModule.from_config(path)
    assert "valid: dataset, data_dir, train_split" in str(caught.value)
    good = write_yaml(tmp_path / "good.yaml", {"data": data_section(tmp_path / "shapes")})
    with pytest.raises(ValueError, match=r"unknown data setting\(s\) \['imgsz'\]"):
        DetectionDataModule.from_config(good, imgsz=64)  # an override is checked as well
    with pytest.raises(ValueError, match="expected a data config"):
        DetectionDataModule.from_config(write_yaml(tmp_path / "list.yaml", ["dataset", "synthetic"]))
    with pytest.raises(ValueError, match="nodata.yaml: a fit config without a data section"):
        DetectionDataModule.from_config(write_yaml(tmp_path / "nodata.yaml", {"model": {}, "trainer": {}}))
    broken = tmp_path / "broken.yaml"
    broken.write_text("data: {dataset: [unclosed\n")
    with pytest.raises(ValueError, match="broken.yaml: not valid YAML"):
        DetectionDataModule.from_config(broken)
    with pytest.raises(FileNotFoundError, match="missing.yaml"):
        DetectionDataModule.from_config(tmp_path / "missing.yaml")
    with pytest.raises(ValueError, match="Unknown dataset"):  # the data module's own checks still apply
        DetectionDataModule.from_config(good, dataset="imagenet")


# ------------------------------------------------------------------------------ the split
def test_validation_split_reads_the_val_split(synthetic_split: ValidationSplit, synthetic_config: Path) -> None:
    assert len(synthetic_split) == 4 and synthetic_split.class_names == SHAPES
    assert synthetic_split.datamodule.hparams.input_size == SIZE
    assert synthetic_split.datamodule.hparams.val_batch_size == 3
    assert synthetic_split.category_ids.tolist() == [1, 2]  # the generator's ids
    synthetic_split.check_classes(2)
    synthetic_split.check_classes(None)
    with pytest.raises(ValueError, match=r"fit.yaml: the model has 3 classes, its validation split 2 \(circle, rect"):
        synthetic_split.check_classes(3)


def test_a_config_without_a_val_split_is_refused(synthetic_config: Path, tmp_path: Path) -> None:
    content = yaml.safe_load(synthetic_config.read_text())
    content["data"]["val_split"] = None
    with pytest.raises(ValueError, match="no val_split to score the backends on"):
        ValidationSplit(write_yaml(tmp_path / "no_val.yaml", content), SIZE)


def test_eager_backend_of_a_random_model_scores_fractions(model: CenterNet, synthetic_split: ValidationSplit) -> None:
    spec, score_threshold, nms_iou = spec_and_settings(model, SIZE)
    assert spec.input_size == SIZE and score_threshold == model.hparams.score_threshold
    metrics = evaluate_backend(NetworkBackend(model.detector, MAX_DET), synthetic_split, spec, score_threshold, nms_iou)
    for name in ("AP", "AP50"):
        assert np.isfinite(metrics[name]) and 0.0 <= metrics[name] <= 1.0, metrics
    assert metrics["AP"] <= metrics["AP50"]


# ------------------------------------------------------------------------------ a perfect backend
class GroundTruthBackend:
    """A backend whose detections are the annotated objects (score 1), read from the annotation
    file itself: it finds each input among the images letterboxed as prediction letterboxes them,
    and returns their boxes in input pixels. ``shift`` moves every label to the next class,
    ``unmapped`` leaves the boxes in original pixels (both to show that the scoring notices)."""

    name = "ground_truth"
    raw_input = False
    input_size = None  # any multiple of the size divisor, as a network
    size_divisor = 32
    device = torch.device("cpu")
    spec = None
    has_embeddings = False
    field_shapes: dict = {}

    def __init__(self, annotations: Path, image_dir: Path, shift: int = 0, unmapped: bool = False) -> None:
        coco = json.loads(annotations.read_text())
        category_ids = sorted(category["id"] for category in coco["categories"])  # labels follow sorted ids
        self.num_classes = len(category_ids)
        pictures = [read_image(image_dir / image["file_name"]) for image in coco["images"]]
        canvases, letterbox, _ = letterbox_images(pictures, SIZE)
        self.inputs = normalize(torch.from_numpy(canvases))
        self.objects = []
        for image, (scale, pad_x, pad_y) in zip(coco["images"], letterbox.tolist()):
            boxes, labels = [], []
            for annotation in coco["annotations"]:
                if annotation["image_id"] == image["id"]:
                    x, y, width, height = annotation["bbox"]
                    box = np.array([x, y, x + width, y + height], dtype=np.float64)
                    boxes.append(box if unmapped else box * scale + [pad_x, pad_y, pad_x, pad_y])
                    labels.append((category_ids.index(annotation["category_id"]) + shift) % self.num_classes)
            self.objects.append((boxes, labels))
        self.num_detections = max(1, max(len(boxes) for boxes, _ in self.objects))
        self.calls = 0

    def __call__(self, inputs: torch.Tensor) -> dict[str, torch.Tensor]:
        self.calls += 1
        count, k = len(inputs), self.num_detections
        detections = {
            "bboxes": torch.zeros(count, k, 4),
            "scores": torch.zeros(count, k),
            "labels": torch.full((count, k), -1, dtype=torch.int64),
        }
        for row, image in enumerate(inputs):
            differences = (self.inputs - image).abs().flatten(1).amax(1)
            index = int(differences.argmin())
            assert float(differences[index]) < 1e-3, "the split's input is not the letterboxed image"
            boxes, labels = self.objects[index]
            for column, (box, label) in enumerate(zip(boxes, labels)):
                detections["bboxes"][row, column] = torch.tensor(box, dtype=torch.float32)
                detections["scores"][row, column] = 1.0
                detections["labels"][row, column] = label
        return detections


def coco_fixture_config(coco_root: Path, tmp_path: Path) -> Path:
    """conftest's COCO folder (48x64, 40x80 and 50x50 pictures, category ids 5, 9, 2) as a validation split."""
    section = {
        "dataset": "coco",
        "data_dir": str(coco_root),
        "train_split": "train",
        "val_split": "train",
        "input_size": SIZE,
        "num_workers": 0,
    }
    return write_yaml(tmp_path / "coco.yaml", {"data": section})


def test_a_backend_returning_the_ground_truth_scores_one(coco_root: Path, tmp_path: Path) -> None:
    """Non-square pictures (letterbox padding on either side), an image without objects, COCO
    category ids that are not the labels: AP50 and AP are 1."""
    split = ValidationSplit(coco_fixture_config(coco_root, tmp_path), SIZE, batch_size=2)
    assert len(split) == len(SCENE) and split.category_ids.tolist() == [2, 5, 9]
    assert split.class_names == ["bird", "cat", "dog"] and sorted(split.class_names) == sorted(CLASSES)
    annotations, images = coco_root / "annotations" / "instances_train.json", coco_root / "images" / "train"
    perfect = GroundTruthBackend(annotations, images)
    metrics = evaluate_backend(perfect, split, InferenceSpec(input_size=SIZE))
    assert perfect.calls == 2  # batches of 2 and 1
    assert metrics["AP50"] == 1.0 and metrics["AP"] == pytest.approx(1.0, abs=1e-6), metrics
    wrong_class = evaluate_backend(
        GroundTruthBackend(annotations, images, shift=1), split, InferenceSpec(input_size=SIZE)
    )
    assert wrong_class["AP50"] == 0.0
    unmapped = evaluate_backend(
        GroundTruthBackend(annotations, images, unmapped=True), split, InferenceSpec(input_size=SIZE)
    )
    assert unmapped["AP50"] < 1.0


def test_a_perfect_backend_on_the_synthetic_split(synthetic_split: ValidationSplit) -> None:
    """96 px pictures read at 64 px: the boxes come back scaled by 1.5."""
    data_dir = Path(synthetic_split.datamodule.hparams.data_dir)
    perfect = GroundTruthBackend(data_dir / "annotations" / "instances_val.json", data_dir / "images" / "val")
    metrics = evaluate_backend(perfect, synthetic_split, InferenceSpec(input_size=SIZE), 0.5, 0.7)
    assert metrics["AP50"] == 1.0 and metrics["AP"] == pytest.approx(1.0, abs=1e-6), metrics


def test_a_model_of_other_classes_is_refused(synthetic_split: ValidationSplit) -> None:
    data_dir = Path(synthetic_split.datamodule.hparams.data_dir)
    perfect = GroundTruthBackend(data_dir / "annotations" / "instances_val.json", data_dir / "images" / "val")
    perfect.num_classes = 5
    with pytest.raises(ValueError, match="the model has 5 classes, its validation split 2"):
        evaluate_backend(perfect, synthetic_split, InferenceSpec(input_size=SIZE))
    assert perfect.calls == 0  # refused before running anything


# ------------------------------------------------------------------------------ the benchmark
def test_benchmark_scores_the_backends_it_times(model: CenterNet, synthetic_split: ValidationSplit) -> None:
    rows = benchmark_detector(
        model, SIZE, [1], "eager", warmup=0, iterations=1, max_det=MAX_DET, matmul_peak=PEAK, data=synthetic_split
    )
    (row,) = rows
    assert row.error is None and row.ap50 is not None and row.ap is not None
    assert 0.0 <= row.ap <= row.ap50 <= 1.0
    spec, score_threshold, nms_iou = spec_and_settings(model, SIZE)
    direct = evaluate_backend(NetworkBackend(model.detector, MAX_DET), synthetic_split, spec, score_threshold, nms_iou)
    assert (row.ap50, row.ap) == (direct["AP50"], direct["AP"])  # the same predictor settings
    text = render(benchmark_table(rows))
    assert ACCURACY_COLUMNS == ("AP50", "AP")
    for column in (*COLUMNS, *ACCURACY_COLUMNS):
        assert column in text
    assert f"{row.ap50:.3f}" in text and f"{row.ap:.3f}" in text
    unscored = render(benchmark_table(benchmark_detector(model, SIZE, [1], "eager", warmup=0, matmul_peak=PEAK)))
    assert "AP50" not in unscored


def test_benchmark_refuses_data_of_other_classes(synthetic_split: ValidationSplit) -> None:
    three = tiny_centernet(["a", "b", "c"], SIZE)
    with pytest.raises(ValueError, match="the model has 3 classes, its validation split 2"):
        benchmark_detector(three, SIZE, [1], "eager", warmup=0, iterations=1, matmul_peak=PEAK, data=synthetic_split)


def table_rows(output: str) -> dict[str, list[str]]:
    """The cells of each backend's row of a printed benchmark table."""
    rows = {}
    for line in output.splitlines():
        cells = [cell.strip() for cell in line.strip().strip("│┃").split("│")]
        if cells and cells[0] in ("eager", "onnxruntime_int8"):
            rows[cells[0]] = cells
    return rows


def test_benchmark_command_scores_eager_and_int8(
    model: CenterNet, synthetic_config: Path, synthetic_split: ValidationSplit, tmp_path: Path, capsys
) -> None:
    """``centernet benchmark --data CONFIG --backend eager,onnxruntime_int8 --calib CONFIG``: both
    rows timed and scored (the int8 backend calibrated on the config's training images)."""
    pytest.importorskip("onnxscript")
    pytest.importorskip("onnxruntime.quantization")
    ckpt = save_checkpoint(model, tmp_path / "tiny.ckpt")
    benchmark_main(
        ["--ckpt_path", str(ckpt), "--data", str(synthetic_config), "--backend", "eager,onnxruntime_int8"]
        + ["--calib", str(synthetic_config), "--batch", "1", "--iterations", "1", "--warmup", "0", "--device", "cpu"]
    )
    output = capsys.readouterr().out
    assert "AP50" in output and re.search(r"\bAP\b", output)
    rows = table_rows(output)
    assert set(rows) == {"eager", "onnxruntime_int8"}, output
    for name, cells in rows.items():
        ap50, ap = (float(value) for value in cells[-2:])
        assert 0.0 <= ap <= ap50 <= 1.0, (name, cells)
    assert float(rows["eager"][2]) > 0  # timed: p50 ms


def test_benchmark_command_refusals(model: CenterNet, synthetic_config: Path, tmp_path: Path, capsys) -> None:
    ckpt = save_checkpoint(tiny_centernet(["a", "b", "c"], SIZE), tmp_path / "three.ckpt")
    with pytest.raises(SystemExit) as exit_info:
        benchmark_main(["--ckpt_path", str(ckpt), "--backend", "eager", "--calib-images", "3"])
    assert exit_info.value.code == 2
    assert "--calib-images goes with --calib" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:  # --calib that nothing would use
        benchmark_main(["--ckpt_path", str(ckpt), "--backend", "eager,onnxruntime", "--calib", str(synthetic_config)])
    assert exit_info.value.code == 2
    assert "--calib calibrates the int8 backends" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:  # an int8 backend without its images: refused before any timing
        benchmark_main(["--ckpt_path", str(ckpt), "--backend", "eager,onnxruntime_int8", "--device", "cpu"])
    assert exit_info.value.code == 2
    assert "onnxruntime_int8 needs calibration images: give --calib" in capsys.readouterr().err
    with pytest.raises(SystemExit) as exit_info:
        benchmark_main(["--ckpt_path", str(ckpt), "--backend", "eager,tensorrt", "--device", "cpu"])
    assert exit_info.value.code == 2
    assert "the tensorrt backend runs on a CUDA GPU, not cpu" in capsys.readouterr().err
    with pytest.raises(SystemExit, match="the model has 3 classes, its validation split 2"):
        benchmark_main(["--ckpt_path", str(ckpt), "--data", str(synthetic_config), "--backend", "eager"])


# ------------------------------------------------------------------------------ export --int8
def test_export_command_writes_an_int8_onnx_file(model: CenterNet, calib_dir: Path, tmp_path: Path, capsys) -> None:
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    pytest.importorskip("onnxruntime.quantization")
    from centernet_lightning.cli.export import export_main
    from centernet_lightning.inference import OnnxRuntimeBackend

    ckpt = save_checkpoint(model, tmp_path / "tiny.ckpt")
    export_main(["--ckpt_path", str(ckpt), "--int8", "--calib", str(calib_dir), "--calib-images", "3"])
    output = capsys.readouterr().out
    path = tmp_path / "tiny_int8.onnx"
    assert path.is_file() and not (tmp_path / "tiny.onnx").exists()
    assert f"to {path} (onnx, int8)" in output and "output scores float32 [1, 20]" in output
    proto = onnx.load(str(path))
    metadata = json.loads({entry.key: entry.value for entry in proto.metadata_props}["centernet"])
    assert metadata["int8"] == {"source": calib_dir.name, "images": 3, "seed": 0}
    assert metadata["checkpoint"] == "tiny.ckpt"
    weights = {node.input[1] for node in proto.graph.node if node.op_type == "Conv"}
    assert {weight for weight in weights if ".heads.0.heatmap." in weight} == {
        "detector.heads.0.heatmap.layers.0.weight",
        "detector.heads.0.heatmap.layers.2.weight",
    }  # float: no DequantizeLinear before them
    assert any(weight.startswith("detector.heads.0.box_2d.") and "DequantizeLinear" in weight for weight in weights)
    backend = OnnxRuntimeBackend(path)
    assert backend.name == "onnxruntime_int8" and backend.batch == 1
    with pytest.raises(SystemExit, match="tiny_int8.onnx exists"):  # never overwritten
        export_main(["--ckpt_path", str(ckpt), "--int8", "--calib", str(calib_dir)])


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["--format", "torchscript", "--int8", "--calib", "X"], "--int8 quantises the onnx and openvino formats, not "),
        (
            ["--format", "engine", "--int8", "--calib", "X"],
            "--int8 quantises the onnx and openvino formats, not engine",
        ),
        (["--int8"], "--int8 needs calibration images: --calib data.yaml or --calib FOLDER"),
        (["--calib", "X"], "--calib and --calib-images go with --int8"),
        (["--calib-images", "5"], "--calib and --calib-images go with --int8"),
        (["--int8", "--calib", "X", "--calib-images", "0"], "--calib-images"),
        (["--int8", "--calib", "X", "--half"], "--half and --int8 exclude each other"),
        (["--format", "onnx", "--output", "model.xml"], "--output: onnx files end in .onnx; got model.xml"),
        (["--format", "torchscript", "--output", "m.onnx"], "torchscript files end in .torchscript or .pt or .ts"),
    ],
)
def test_export_command_int8_usage_errors(options: list[str], message: str, tmp_path: Path, capsys) -> None:
    from centernet_lightning.cli.export import export_main

    with pytest.raises(SystemExit) as exit_info:
        export_main(["--ckpt_path", str(tmp_path / "unread.ckpt"), *options])
    assert exit_info.value.code == 2
    assert message in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


def test_export_command_int8_refusals_after_loading(model: CenterNet, calib_dir: Path, tmp_path: Path) -> None:
    from centernet_lightning.cli.export import export_main

    ckpt = save_checkpoint(model, tmp_path / "tiny.ckpt")
    int8 = ["--ckpt_path", str(ckpt), "--int8", "--calib", str(calib_dir)]
    with pytest.raises(SystemExit, match="centernet export: int8 calibration letterboxes to a square input"):
        export_main([*int8, "--imgsz", "64", "96"])
    with pytest.raises(SystemExit, match="centernet export: --calib .*nowhere: no such data config or folder"):
        export_main(["--ckpt_path", str(ckpt), "--int8", "--calib", str(tmp_path / "nowhere")])
    assert sorted(path.name for path in tmp_path.iterdir()) == ["tiny.ckpt"]
