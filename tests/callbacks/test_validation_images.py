"""ValidationImageLogger: ground truth and predictions drawn in original pixels, skeletons included."""

from __future__ import annotations

from types import SimpleNamespace

import cv2
import numpy as np
import torch

from centernet_lightning.callbacks import ValidationImageLogger
from centernet_lightning.structures import InferenceSpec

LAYOUT = {"names": ["head", "left_hand", "right_hand"], "skeleton": [[0, 1], [0, 2]]}


def test_joints_of_the_ground_truth_and_of_the_predictions_are_drawn(tmp_path):
    path = tmp_path / "image.png"
    cv2.imwrite(str(path), np.zeros((40, 80, 3), np.uint8))  # letterboxed to 80 px: 20 rows of padding above
    logged = []
    experiment = SimpleNamespace(add_image=lambda tag, image, step, dataformats: logged.append(image))
    trainer = SimpleNamespace(
        logger=SimpleNamespace(experiment=experiment), sanity_checking=False, is_global_zero=True, global_step=3
    )
    module = SimpleNamespace(hparams={"class_names": ["person"]}, inference_spec=InferenceSpec(keypoints=LAYOUT))
    # one person: joints in input pixels (x, y + 20 of padding), the right hand unlabelled
    joints = torch.tensor([[[[20.5, 35.5, 2.0], [30.5, 45.5, 1.0], [0.0, 0.0, 0.0]]]])
    batch = {
        "bboxes": torch.tensor([[[5.0, 22.0, 40.0, 58.0]]]),
        "labels": torch.zeros(1, 1, dtype=torch.long),
        "mask": torch.ones(1, 1, dtype=torch.bool),
        "keypoints": joints,
        "letterbox": torch.tensor([[1.0, 0.0, 20.0]]),
        "original_sizes": torch.tensor([[40, 80]]),
        "image_paths": [str(path)],
        "images": torch.zeros(1, 3, 80, 80),
    }
    outputs = {  # in original pixels
        "bboxes": torch.tensor([[[50.0, 2.0, 75.0, 38.0]]]),
        "labels": torch.zeros(1, 1, dtype=torch.long),
        "scores": torch.tensor([[0.9]]),
        "keypoints": torch.tensor([[[[60.0, 20.0, 0.8], [70.0, 30.0, 0.05], [55.0, 30.0, 0.6]]]]),
    }
    ValidationImageLogger(num_images=1).on_validation_batch_end(trainer, module, outputs, batch, 0)
    (image,) = logged
    # (below the captions, which cover the top 12 rows of each box)
    assert image[15, 20].any() and image[25, 30].any()  # the true head and left hand, back in original pixels
    assert image[20, 60].any() and image[30, 55].any()  # the predicted head and right hand
    assert not image[30, 70].any()  # a predicted joint scored under 0.1 is not drawn
    assert not image[0, 0].any()  # nor the unlabelled one (mapped onto the corner)
