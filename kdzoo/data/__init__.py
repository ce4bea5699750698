"""Data: datasets by name, resumable loaders of uint8 batches, augmentation on the device."""

from .augment import BatchAugmentation, CropFlipParams
from .datasets import DATASET_REGISTRY, InMemoryDataset, build_dataset, load_cifar100_npz
from .loader import TrainLoader, iterate_test_batches

__all__ = [
    "DATASET_REGISTRY",
    "BatchAugmentation",
    "CropFlipParams",
    "InMemoryDataset",
    "TrainLoader",
    "build_dataset",
    "iterate_test_batches",
    "load_cifar100_npz",
]
