"""Export to ONNX and TorchScript with decoding in the graph: parity with the PyTorch decoding.

Tiny random-weight models on drawn 128 px pictures; the BatchNorm statistics are measured on the
pictures so that activations and scores vary as in a trained network. Tolerances from the issue:
scores within 1e-4, boxes within 0.05 input pixels, labels equal.
"""

from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from torch import nn

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")
onnx = pytest.importorskip("onnx")
pytestmark = [
    pytest.mark.filterwarnings("ignore:`torch.jit.*deprecated:FutureWarning"),
    pytest.mark.usefixtures("one_thread"),
]

from centernet_lightning.cli import main  # noqa: E402
from centernet_lightning.cli.export import export_main  # noqa: E402
from centernet_lightning.datasets.transforms import build_transforms  # noqa: E402
from centernet_lightning.deploy import export_onnx, export_torchscript  # noqa: E402
from centernet_lightning.deploy.export import FORBIDDEN_ONNX_OPS  # noqa: E402
from centernet_lightning.inference import OnnxRuntimeBackend, Predictor  # noqa: E402
from centernet_lightning.models import DeformConvBNReLU, InferenceNetwork  # noqa: E402
from centernet_lightning.models.detector import decode_outputs  # noqa: E402
from centernet_lightning.tasks import CenterNet, FairMOT, save_checkpoint  # noqa: E402

SIZE = 128
MAX_DET = 30
SCORE_TOL = 1e-4
BOX_TOL = 0.05  # input pixels
NECK = {"name": "simple", "upsample_channels": [32, 32, 32]}
MODELS = {
    "ltrb": {"neck": NECK},
    "size_offset": {"neck": NECK, "heads": {"size": {}, "offset": {}}},
    # The decoders of the DCN paper models: ResNet-DCN's and DLA-34's (DLA-Up + IDA-Up, resnet18 here
    # as it gives the same channels as dla34 at a fraction of the cost).
    "dcn": {"neck": {**NECK, "conv_type": "dcn", "conv_bias": True}, "heads": {"size": {}, "offset": {}}},
    "ida_dcn": {
        "neck": {"name": "ida", "conv_type": "dcn", "conv_bias": True, "final_levels": 3},
        "heads": {"size": {}, "offset": {}},
    },
    "pose": {  # the original's multi_pose heads on five named joints
        "neck": NECK,
        "heads": {"size": {}, "offset": {}, "keypoint_offsets": {}, "keypoint_heatmap": {}, "keypoint_peak_offset": {}},
        "keypoint_layout": {"names": ["nose", "left_eye", "right_eye", "left_hand", "right_hand"]},
    },
}


def drawn_picture(seed: int, height: int = SIZE, width: int = SIZE) -> np.ndarray:
    """uint8 [H, W, 3] RGB: a shaded background with filled rectangles, ellipses and triangles."""
    rng = np.random.default_rng(seed)
    ys, xs = np.mgrid[0:height, 0:width].astype(np.float32)
    base = rng.uniform(40, 200, 3)
    slope = rng.uniform(-0.6, 0.6, (2, 3))
    image = base + ys[..., None] * slope[0] + xs[..., None] * slope[1] + rng.normal(0, 6, (height, width, 3))
    image = np.clip(image, 0, 255).astype(np.uint8)
    for _ in range(6):
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        x, y = int(rng.integers(0, width - 16)), int(rng.integers(0, height - 16))
        w, h = int(rng.integers(10, width // 2)), int(rng.integers(10, height // 2))
        shape = rng.integers(3)
        if shape == 0:
            cv2.rectangle(image, (x, y), (x + w, y + h), colour, -1)
        elif shape == 1:
            cv2.ellipse(
                image, (x + w // 2, y + h // 2), (w // 2, h // 2), float(rng.uniform(0, 180)), 0, 360, colour, -1
            )
        else:
            cv2.fillPoly(image, [np.array([[x, y + h], [x + w, y + h], [x + w // 2, y]], np.int32)], colour)
    return cv2.GaussianBlur(image, (3, 3), 0)


def normalised(pictures: list[np.ndarray]) -> torch.Tensor:
    """float32 [N, 3, H, W] through the val transform, as validation feeds the network."""
    transform = build_transforms("val", SIZE)
    return torch.stack([transform({"image": p, "bboxes": np.zeros((0, 4), np.float32)})["image"] for p in pictures])


def tiny_model(kind: str, **kwargs) -> CenterNet:
    """A resnet18 CenterNet with 32-channel neck and 16-channel heads, BatchNorm measured on pictures."""
    torch.manual_seed(0)
    model = CenterNet(3, backbone="resnet18", head_width=16, **MODELS[kind], **kwargs)
    for module in model.modules():
        if isinstance(module, DeformConvBNReLU):  # deformed sampling: offsets of a few pixels
            nn.init.normal_(module.offset_mask.weight, std=0.02)
        if isinstance(module, nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # a plain average over the calibration pass
    model.train()
    with torch.no_grad():
        model.detector(normalised([drawn_picture(seed) for seed in range(100, 104)]))
    return model.eval()


def pytorch_detections(model: CenterNet, images: torch.Tensor) -> dict[str, np.ndarray]:
    """The reference: the detector in eval mode and the library's decoding, without NMS."""
    with torch.no_grad():
        detections = decode_outputs(model.detector(images), model.detector.stride, MAX_DET)
    return {key: detections[key].numpy() for key in ("bboxes", "scores", "labels")}


def run(backend: OnnxRuntimeBackend, images) -> dict[str, np.ndarray]:
    """The backend's detections as numpy arrays."""
    return {key: value.numpy() for key, value in backend(images).items()}


def assert_same_detections(actual: dict, expected: dict, box_tol: float = BOX_TOL) -> None:
    """Scores within 1e-4 position by position; every expected detection found with its label, score
    and box. Peaks whose scores differ by less than the tolerance may swap places, and those at the
    K-th score may be cut in one run and kept in the other, so detections are matched, not indexed."""
    np.testing.assert_allclose(actual["scores"], expected["scores"], rtol=0, atol=SCORE_TOL)
    for image, scores in enumerate(expected["scores"]):
        assert np.ptp(scores) > 1e-3, "degenerate scores: the test would not tell detections apart"
        unmatched = list(range(len(scores)))
        for i in np.flatnonzero(scores > scores[-1] + SCORE_TOL):
            candidates = [
                j
                for j in unmatched
                if actual["labels"][image][j] == expected["labels"][image][i]
                and abs(actual["scores"][image][j] - scores[i]) <= SCORE_TOL
                and np.abs(actual["bboxes"][image][j] - expected["bboxes"][image][i]).max() <= box_tol
            ]
            assert candidates, f"image {image}: detection {i} {expected['bboxes'][image][i]} not found"
            unmatched.remove(candidates[0])


@pytest.mark.parametrize(
    ("kind", "options"),
    [
        ("ltrb", {"opset": 17}),  # converted down from the exporter's 18
        ("size_offset", {"dynamic": True}),
        ("dcn", {"batch": 2}),
        ("ida_dcn", {}),
    ],
)
def test_onnx_runtime_matches_pytorch(tmp_path: Path, kind: str, options: dict) -> None:
    model = tiny_model(kind)
    path = export_onnx(model, tmp_path / f"{kind}.onnx", imgsz=SIZE, max_det=MAX_DET, **options)

    proto = onnx.load(str(path))
    onnx.checker.check_model(proto, full_check=True)
    op_types = {node.op_type for node in proto.graph.node}
    assert not op_types & FORBIDDEN_ONNX_OPS
    assert [output.name for output in proto.graph.output] == ["boxes", "scores", "labels"]
    opset = next(entry.version for entry in proto.opset_import if entry.domain in ("", "ai.onnx"))
    assert opset == {"ltrb": 17, "size_offset": 18}.get(kind, 19)
    assert ("DeformConv" in op_types) == kind.endswith("dcn")

    detector = OnnxRuntimeBackend(path)
    assert detector.input_size == (SIZE, SIZE) and not detector.raw_input and detector.num_detections == MAX_DET
    assert detector.batch == (None if options.get("dynamic") else options.get("batch", 1))
    images = normalised([drawn_picture(seed) for seed in range(3)])  # 3 images: chunked and padded at batch 1, 2
    actual = run(detector, images)
    assert actual["bboxes"].shape == (3, MAX_DET, 4) and actual["labels"].dtype == np.int64
    assert_same_detections(actual, pytorch_detections(model, images))
    if options.get("dynamic"):
        assert_same_detections(run(detector, images[:1]), pytorch_detections(model, images[:1]))


def test_raw_input_graph_normalises_in_the_graph_and_the_predictor_maps_back(tmp_path: Path) -> None:
    model = tiny_model("size_offset", class_names=["a", "b", "c"])
    model.inference_spec.input_size = SIZE
    path = export_onnx(model, tmp_path / "raw.onnx", imgsz=SIZE, max_det=MAX_DET, raw_input=True, dynamic=True)
    detector = OnnxRuntimeBackend(path)
    assert detector.raw_input and detector.metadata["raw_input"]
    assert detector.spec.class_names == ["a", "b", "c"] and detector.spec.input_size == SIZE
    pictures = [drawn_picture(seed) for seed in range(2)]
    assert_same_detections(run(detector, np.stack(pictures)), pytorch_detections(model, normalised(pictures)))
    with pytest.raises(ValueError, match="uint8"):
        detector(normalised(pictures))

    # Whole pictures of other sizes: letterboxed as in validation, boxes back in their own pixels.
    originals = [drawn_picture(7, 150, 100), drawn_picture(8, 90, 120)]
    transform = build_transforms("val", SIZE)
    samples = [transform({"image": p, "bboxes": np.zeros((0, 4), np.float32)}) for p in originals]
    expected = pytorch_detections(model, torch.stack([s["image"] for s in samples]))
    letterboxes = torch.stack([s["letterbox"] for s in samples])
    sizes = torch.tensor([p.shape[:2] for p in originals])
    # the one inverse letterbox, which also drops peaks centred in the padding
    mapped = Predictor.to_original_pixels({k: torch.from_numpy(v) for k, v in expected.items()}, letterboxes, sizes)
    expected = {key: value.numpy() for key, value in mapped.items()}
    scale = float(letterboxes[:, 0].min())
    predicted = Predictor.from_onnx(path).predict(originals)  # uint8 letterboxed pixels into the graph
    assert_same_detections(predicted, expected, box_tol=BOX_TOL / scale)


def test_no_decode_exports_the_raw_maps(tmp_path: Path) -> None:
    model = tiny_model("ltrb")
    path = export_onnx(model, tmp_path / "maps.onnx", imgsz=SIZE, decode=False, max_det=MAX_DET)
    images = normalised([drawn_picture(0)])
    detector = OnnxRuntimeBackend(path)
    assert detector.output_names == ["heatmap", "box_2d"]
    maps = dict(zip(detector.output_names, detector.session.run(None, {"images": images.numpy()})))
    with torch.no_grad():
        outputs = model.detector(images)
    for name, value in maps.items():
        np.testing.assert_allclose(value, outputs[name].numpy(), rtol=0, atol=1e-4)
    assert_same_detections(run(detector, images), pytorch_detections(model, images))  # decoded after the graph


def test_half_graph_keeps_float32_input_and_outputs(tmp_path: Path) -> None:
    model = tiny_model("dcn")
    path = export_onnx(model, tmp_path / "half.onnx", imgsz=SIZE, max_det=MAX_DET, half=True)
    proto = onnx.load(str(path))
    weights = [t for t in proto.graph.initializer if t.name.endswith("conv.weight")]
    assert weights and all(t.data_type == onnx.TensorProto.FLOAT16 for t in weights)
    images = normalised([drawn_picture(0)])
    actual = run(OnnxRuntimeBackend(path), images)  # ONNX Runtime's CPU provider has float16 Conv and DeformConv
    expected = pytorch_detections(model, images)
    assert actual["scores"].dtype == np.float32
    np.testing.assert_allclose(actual["scores"], expected["scores"], rtol=0, atol=1e-2)  # float16: ~4e-3 seen


def test_torchscript_trace_matches_pytorch_with_a_free_batch(tmp_path: Path) -> None:
    model = tiny_model("dcn")
    path = export_torchscript(model, tmp_path / "dcn.torchscript", imgsz=SIZE, max_det=MAX_DET, batch=1)
    extra = {"centernet": ""}
    traced = torch.jit.load(str(path), _extra_files=extra)
    assert json.loads(extra["centernet"])["stride"] == 4
    images = normalised([drawn_picture(seed) for seed in range(2)])  # traced with one image
    with torch.no_grad():
        boxes, scores, labels = traced(images)
    actual = {"bboxes": boxes.numpy(), "scores": scores.numpy(), "labels": labels.numpy()}
    assert_same_detections(actual, pytorch_detections(model, images))


def test_inference_network_takes_uint8_like_the_val_transform() -> None:
    model = tiny_model("ltrb")
    pictures = [drawn_picture(seed) for seed in range(2)]
    module = InferenceNetwork(model.detector, num_detections=MAX_DET, raw_input=True).eval()
    with torch.no_grad():
        boxes, scores, labels = module(torch.from_numpy(np.stack(pictures)))
    expected = pytorch_detections(model, normalised(pictures))
    np.testing.assert_allclose(scores.numpy(), expected["scores"], rtol=0, atol=1e-6)
    np.testing.assert_array_equal(labels.numpy(), expected["labels"])


def test_export_command_writes_a_new_file_and_never_overwrites(tmp_path: Path, capsys) -> None:
    torch.manual_seed(0)
    model = CenterNet(2, backbone="resnet18", neck=NECK, head_width=8, num_detections=12, class_names=["cat", "dog"])
    ckpt = save_checkpoint(model, tmp_path / "best.ckpt")
    assert ckpt.stat().st_mode & 0o777 == 0o644

    export_main(["--ckpt_path", str(ckpt), "--imgsz", "64", "--dynamic"])
    output = tmp_path / "best.onnx"
    printed = capsys.readouterr().out
    assert str(output) in printed and "boxes" in printed and "labels" in printed and "batch" in printed
    detector = OnnxRuntimeBackend(output)
    assert detector.spec.class_names == ["cat", "dog"] and detector.num_detections == 12 and detector.batch is None
    assert detector(np.zeros((2, 3, 64, 64), np.float32))["scores"].shape == (2, 12)
    assert detector.metadata["predictor"] == {"score_threshold": 0.0, "nms_iou": None, "tracker": None}

    written = output.read_bytes()
    with pytest.raises(SystemExit, match="exists"):
        export_main(["--ckpt_path", str(ckpt), "--imgsz", "64"])
    assert output.read_bytes() == written

    main(["export", "--ckpt_path", str(ckpt), "--format", "torchscript", "--imgsz", "64", "--no-decode"])
    assert "heatmap" in capsys.readouterr().out  # through the `centernet` command
    assert torch.jit.load(str(tmp_path / "best.torchscript"))(torch.zeros(1, 3, 64, 64))[0].shape == (1, 2, 16, 16)

    # A height other than the width exports, with a word that the commands letterbox to squares.
    export_main(["--ckpt_path", str(ckpt), "--imgsz", "64", "96", "--output", str(tmp_path / "wide.onnx")])
    printed = capsys.readouterr().out
    assert "images float32 [1, 3, 64, 96]" in printed
    assert "Note: a 64x96 input is for your own pipeline" in printed
    written = sorted(p.name for p in tmp_path.iterdir())
    assert written == ["best.ckpt", "best.onnx", "best.torchscript", "wide.onnx"]  # no temp files


def test_a_fairmot_export_outputs_the_embeddings_and_its_tracker_settings(tmp_path: Path) -> None:
    torch.manual_seed(0)
    tracker = {"high_thresh": 0.3, "low_thresh": 0.05}
    model = FairMOT(5, backbone="resnet18", neck=NECK, head_width=8, reid_dim=6, num_detections=10, tracker=tracker)
    model.eval()
    path = export_onnx(model, tmp_path / "fairmot.onnx", imgsz=64, dynamic=True, max_det=10)
    predictor = Predictor.from_onnx(path)
    assert predictor.backend.output_names == ["boxes", "scores", "labels", "embeddings"]
    assert predictor.has_embeddings and predictor.backend.field_shapes["embeddings"] == [6]
    assert predictor.build_tracker().high_thresh == 0.3  # the checkpoint's tracker settings travel
    images = torch.randn(2, 3, 64, 64)
    found = predictor.detect(images)
    expected = model.detect(images)
    np.testing.assert_allclose(found["scores"].numpy(), expected["scores"].numpy(), rtol=0, atol=SCORE_TOL)
    np.testing.assert_allclose(found["embeddings"].numpy()[:, 0], expected["embeddings"].numpy()[:, 0], atol=1e-4)


def test_a_keypoint_export_outputs_the_joints_of_pytorch(tmp_path: Path) -> None:
    """The joints come out of the graph ([B, K, J, 3]) as PyTorch decodes them, and the predictor maps
    them back to the original pixels with the boxes."""
    model = tiny_model("pose")
    path = export_onnx(model, tmp_path / "pose.onnx", imgsz=SIZE, max_det=MAX_DET, dynamic=True)
    proto = onnx.load(str(path))
    assert not {node.op_type for node in proto.graph.node} & FORBIDDEN_ONNX_OPS
    backend = OnnxRuntimeBackend(path)
    assert backend.output_names == ["boxes", "scores", "labels", "keypoints"]
    assert backend.field_shapes == {"keypoints": [5, 3]}
    images = normalised([drawn_picture(seed) for seed in range(2)])
    actual = run(backend, images)
    with torch.no_grad():
        expected = decode_outputs(model.detector(images), model.detector.stride, MAX_DET)
    assert actual["keypoints"].shape == (2, MAX_DET, 5, 3)
    assert_same_detections(actual, {key: expected[key].numpy() for key in ("bboxes", "scores", "labels")})
    # The best detections' joints (their scores are far apart, so they keep their places)
    np.testing.assert_allclose(actual["keypoints"][:, :5], expected["keypoints"][:, :5].numpy(), atol=BOX_TOL)
    predictor = Predictor.from_onnx(path)
    pictures = [drawn_picture(7, 96, 128)]
    mapped = predictor.predict(pictures)
    inputs, letterbox, sizes = predictor.prepare(pictures)
    raw = predictor.detect(inputs)
    scale, pad_x, pad_y = letterbox[0].tolist()
    # the raw detection of the first mapped one (detections centred in the padding are dropped)
    raw_boxes = np.clip((raw["bboxes"][0].numpy() - [pad_x, pad_y, pad_x, pad_y]) / scale, 0, [128, 96, 128, 96])
    source = int(np.abs(raw_boxes - mapped["bboxes"][0, 0]).sum(-1).argmin())
    first = raw["keypoints"][0, source].numpy()
    expected_xy = np.clip((first[:, :2] - [pad_x, pad_y]) / scale, 0, [128, 96])
    np.testing.assert_allclose(mapped["keypoints"][0, 0, :, :2], expected_xy, atol=1e-4)
    np.testing.assert_allclose(mapped["keypoints"][0, 0, :, 2], first[:, 2])


def test_export_refuses_what_cannot_work(tmp_path: Path) -> None:
    model = tiny_model("dcn")
    with pytest.raises(ValueError, match="opset 19"):
        export_onnx(model, tmp_path / "dcn.onnx", imgsz=SIZE, opset=18)
    with pytest.raises(ValueError, match="multiples of 32"):
        export_onnx(model, tmp_path / "dcn.onnx", imgsz=100)
    with pytest.raises(SystemExit, match="not found"):
        export_main(["--ckpt_path", str(tmp_path / "missing.ckpt")])
    # Another format's suffix would send the file to the wrong runtime later: refused before the work.
    with pytest.raises(ValueError, match=r"onnx files end in \.onnx; got .*model\.xml"):
        export_onnx(model, tmp_path / "model.xml", imgsz=SIZE)
    with pytest.raises(ValueError, match=r"torchscript files end in \.torchscript or \.pt or \.ts; got"):
        export_torchscript(model, tmp_path / "model.onnx", imgsz=SIZE)
    assert not list(tmp_path.iterdir())


def test_public_names_import() -> None:
    import centernet_lightning.deploy as deploy

    assert all(hasattr(deploy, name) for name in deploy.__all__)
