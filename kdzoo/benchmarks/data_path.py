"""CIFAR augmentation: kdzoo's batched on-device path against torchvision's per-image pipeline.

The torchvision side is what a CIFAR loader worker does per image: ``Image.fromarray`` (as
torchvision's CIFAR100 does), RandomCrop(32, padding=4), RandomHorizontalFlip, ToTensor,
Normalize. The kdzoo side is :class:`~kdzoo.data.BatchAugmentation` on uint8 batches of 64. Both
run on one CPU thread ("per core"); the pixels are random uint8 (the cost does not depend on them).
"""

import time

import numpy as np
import torch
from PIL import Image
from torchvision import transforms as T

from kdzoo.data import BatchAugmentation

MEAN, STD = [0.5071, 0.4867, 0.4408], [0.2675, 0.2565, 0.2761]


def _images_per_second(fn, count: int, min_seconds: float) -> float:
    fn()  # warm-up
    done, start = 0, time.perf_counter()
    while True:
        fn()
        done += count
        elapsed = time.perf_counter() - start
        if elapsed >= min_seconds:
            return done / elapsed


def run(device: torch.device, quick: bool) -> dict:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        rng = np.random.default_rng(0)
        images = rng.integers(0, 256, (1024, 32, 32, 3), dtype=np.uint8)
        pipeline = T.Compose(
            [
                T.RandomCrop(32, padding=4),
                T.RandomHorizontalFlip(),
                T.ToTensor(),
                T.Normalize(MEAN, STD),
            ]
        )
        subset = images[:256]

        def per_image() -> None:
            for array in subset:
                pipeline(Image.fromarray(array))

        batch = torch.from_numpy(images[:64]).permute(0, 3, 1, 2).contiguous().to(device)
        augment = BatchAugmentation(32, 4, True, MEAN, STD, device, seed=0)

        def batched() -> None:
            augment(batch)
            if device.type == "cuda":
                torch.cuda.synchronize()

        seconds = 0.5 if quick else 3.0
        torchvision_rate = _images_per_second(per_image, len(subset), seconds)
        kdzoo_rate = _images_per_second(batched, len(batch), seconds)
    finally:
        torch.set_num_threads(threads)
    return {
        "torchvision_img_s": torchvision_rate,
        "kdzoo_img_s": kdzoo_rate,
        "ratio": kdzoo_rate / torchvision_rate,
        "device": str(device),
    }


def table(results: dict) -> tuple[str, list[str], list[list]]:
    rows = [
        ["torchvision, per image (PIL)", f"{results['torchvision_img_s']:.0f}"],
        [f"kdzoo, batched on {results['device']}", f"{results['kdzoo_img_s']:.0f}"],
        ["ratio", f"{results['ratio']:.1f}x"],
    ]
    return "CIFAR augmentation, one CPU thread", ["pipeline", "images/s"], rows
