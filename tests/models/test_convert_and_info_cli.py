"""`centernet convert-weights` and `centernet info` on the paper configs."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_original_weights import assert_outputs_equal, randomized_original, save_original  # noqa: E402

from centernet_lightning.cli import main  # noqa: E402
from centernet_lightning.datasets.coco import COCO_CLASSES  # noqa: E402
from centernet_lightning.tasks import load_model  # noqa: E402
from centernet_lightning.weights import read_checkpoint  # noqa: E402

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "paper"


def test_convert_weights_writes_a_checkpoint_that_reproduces_the_original(tmp_path, capsys):
    reference = randomized_original("resdcn18")
    original = save_original(reference, tmp_path / "ctdet_coco_resdcn18.pth", prefix="module.", legacy=True)
    out = tmp_path / "resdcn18.ckpt"
    main(["convert-weights", str(original), "--config", str(CONFIGS / "resdcn18.yaml"), "--out", str(out)])
    assert "Converted" in capsys.readouterr().out
    checkpoint = read_checkpoint(out)
    assert checkpoint["hyper_parameters"]["num_classes"] == 80
    assert checkpoint["hyper_parameters"]["class_names"] == list(COCO_CLASSES)
    # predict writes COCO's own category ids (1-90 with gaps) and letterboxes to the paper's 512 px
    assert checkpoint["inference"]["category_ids"][:12] == [1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13]
    assert checkpoint["inference"]["category_ids"][-1] == 90 and checkpoint["inference"]["input_size"] == 512
    model = load_model(out)
    assert_outputs_equal(reference, model.detector, size=64)

    with pytest.raises(SystemExit, match="exists"):  # never overwrite; one line naming the file
        main(["convert-weights", str(original), "--config", str(CONFIGS / "resdcn18.yaml"), "--out", str(out)])


def test_convert_weights_of_another_architecture_names_the_keys(tmp_path):
    original = save_original(randomized_original("res18"), tmp_path / "ctdet_coco_res18.pth")
    with pytest.raises(SystemExit, match=str(original)):
        main(
            ["convert-weights", str(original), "--config", str(CONFIGS / "resdcn18.yaml"), "--out", str(tmp_path / "x")]
        )
    assert not (tmp_path / "x").exists()


def test_info_prints_parameters_and_gflops_per_part(capsys):
    main(["info", "--config", str(CONFIGS / "resdcn18.yaml"), "--input-size", "128"])
    printed = capsys.readouterr().out
    for part in ("backbone", "neck", "head heatmap", "head size", "head offset", "total"):
        assert part in printed
    total = next(line for line in printed.splitlines() if line.startswith("total")).split()
    assert float(total[1]) == pytest.approx(14.437, abs=1e-3)  # millions, as the original resdcn18
    assert float(total[2]) == pytest.approx(26.62 / 16, rel=0.02)  # GFLOPs scale with the pixel count


def test_info_lists_the_reid_head_of_a_tracking_config(capsys):
    main(["info", "--config", str(CONFIGS.parent / "demo_track.yaml"), "--input-size", "128"])
    printed = capsys.readouterr().out
    assert "1 classes" in printed
    for part in ("backbone", "neck", "head heatmap", "head box_2d", "head reid", "total"):
        assert part in printed
