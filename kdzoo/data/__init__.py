"""Data: datasets by name, resumable loaders of uint8 batches, augmentation on the device."""

from .augment import BatchAugmentation, CropFlipParams
from .build import build_augmentation, build_test_loader, build_train_loader
from .datasets import DATASET_REGISTRY, InMemoryDataset, build_dataset, load_cifar100_npz
from .loader import TestLoader, TrainLoader

__all__ = [
    "DATASET_REGISTRY",
    "BatchAugmentation",
    "CropFlipParams",
    "InMemoryDataset",
    "TestLoader",
    "TrainLoader",
    "build_augmentation",
    "build_dataset",
    "build_test_loader",
    "build_train_loader",
    "load_cifar100_npz",
]
