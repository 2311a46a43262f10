"""Data loading throughput: images/s at 512 px with the default train augmentation.

Generates a small synthetic COCO set at 512 px in a temporary folder, then times the loader
(COCO reader + the ``centernet`` augmentation preset + collate) with 0 and 2 worker processes,
side by side in one run.

    python benchmarks/data.py [--images 160] [--batch-size 16] [--workers 2]
"""

from __future__ import annotations

import argparse
import tempfile
import time

from torch.utils.data import DataLoader

from centernet_lightning.datasets import COCODataset, build_transforms, collate_detection, generate_synthetic_dataset


def images_per_second(dataset, batch_size: int, workers: int, epochs: int = 2) -> float:
    loader = DataLoader(
        dataset,
        batch_size=batch_size,
        shuffle=True,
        num_workers=workers,
        collate_fn=collate_detection,
        persistent_workers=workers > 0,
    )
    next(iter(loader))  # start the workers, warm caches
    start, count = time.perf_counter(), 0
    for _ in range(epochs):
        for batch in loader:
            count += batch["images"].shape[0]
    return count / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=160)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--input-size", type=int, default=512)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        generate_synthetic_dataset(folder, num_train=args.images, num_val=1, image_size=args.input_size)
        dataset = COCODataset(folder, "train", transforms=build_transforms("centernet", args.input_size))
        serial = images_per_second(dataset, args.batch_size, 0)
        parallel = images_per_second(dataset, args.batch_size, args.workers)
    print(f"{args.input_size} px, 'centernet' augmentation, batch {args.batch_size}:")
    print(f"  0 workers: {serial:7.1f} images/s")
    print(f"  {args.workers} workers: {parallel:7.1f} images/s  ({parallel / serial:.2f}x)")


if __name__ == "__main__":
    main()
