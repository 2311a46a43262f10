import numpy as np
import pytest

from centernet_lightning.datasets import InferenceDataset, build_transforms, collate_detection


@pytest.fixture
def image_folder(tmp_path, write_image):
    folder = tmp_path / "images"
    for name, shape in [("b.JPG", (10, 20)), ("a.png", (30, 15)), ("c.webp", (8, 8)), ("d.Bmp", (5, 6))]:
        write_image(folder / name, np.full((*shape, 3), 9, dtype=np.uint8))
    (folder / "notes.txt").write_text("not an image")
    (folder / "sub").mkdir()
    write_image(folder / "sub" / "nested.png", np.zeros((4, 4, 3), dtype=np.uint8))
    return folder


def test_lists_every_image_sorted_with_original_size(image_folder):
    dataset = InferenceDataset(image_folder)
    names = [dataset[i]["image_path"].rsplit("/", 1)[-1] for i in range(len(dataset))]
    assert names == ["a.png", "b.JPG", "c.webp", "d.Bmp"]
    sample = dataset[0]
    assert sample["original_size"] == (30, 15) and sample["image_id"] == 0
    assert sample["bboxes"].shape == (0, 4) and sample["labels"].shape == (0,)


def test_selected_names_and_transform_to_batch(image_folder):
    dataset = InferenceDataset(image_folder, img_names=["d.Bmp", "a.png"], transforms=build_transforms("val", 32))
    batch = collate_detection([dataset[0], dataset[1]])
    assert batch["images"].shape == (2, 3, 32, 32)
    assert batch["original_sizes"].tolist() == [[5, 6], [30, 15]]
    assert batch["bboxes"].shape == (2, 0, 4)
    assert batch["letterbox"][1].tolist() == pytest.approx([32 / 30, 8.0, 0.0])


def test_bad_folder_errors(tmp_path):
    with pytest.raises(FileNotFoundError, match="Image folder not found"):
        InferenceDataset(tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="No images"):
        InferenceDataset(tmp_path)
