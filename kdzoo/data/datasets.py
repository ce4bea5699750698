"""Datasets, registered by name in ``DATASET_REGISTRY`` and built as ``fn(cfg, train) -> Dataset``.

Small datasets (CIFAR-100, STL-10, the digits demo) live in memory as one uint8 tensor
``[N, 3, H, W]``; the loader indexes it directly, with no workers. Image folders (ImageNet,
Tiny-ImageNet) decode and crop in DataLoader workers and also hand uint8 ``[3, H, W]`` tensors to
the training device, where the float work (flip, normalisation) runs batched.
"""

import os
import shutil
from collections.abc import Callable

import numpy as np
import torch
from torch.utils.data import Dataset

from kdzoo.utils.errors import DataError
from kdzoo.utils.registry import Registry, lookup

DATASET_REGISTRY = Registry("DATASET")
DATASET_REGISTRY.__doc__ = "Datasets by name: ``fn(cfg, train: bool) -> Dataset``."


class InMemoryDataset(Dataset):
    """Images held as one tensor. ``images``: uint8 ``[N, 3, H, W]``; ``labels``: int64 ``[N]``."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, class_names=None) -> None:
        if images.dtype != torch.uint8 or images.dim() != 4 or images.shape[1] != 3:
            raise DataError(
                f"images must be uint8 [N, 3, H, W]; got {images.dtype} {list(images.shape)}"
            )
        if labels.shape != (images.shape[0],):
            raise DataError(f"{images.shape[0]} images but labels of shape {list(labels.shape)}")
        self.images = images.contiguous()
        self.labels = labels.long()
        self.class_names = list(class_names) if class_names is not None else None

    def __len__(self) -> int:
        return self.images.shape[0]

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int]:
        return self.images[index], int(self.labels[index]), index


def load_cifar100_npz(path: str, train: bool) -> InMemoryDataset:
    """CIFAR-100 from an ``.npz`` with ``x_train`` ``[50000, 32, 32, 3]`` uint8, ``y_train``,
    ``x_test``, ``y_test`` and optionally ``class_names`` (the format of the team's file)."""
    split = "train" if train else "test"
    with np.load(path, allow_pickle=False) as data:
        missing = {f"x_{split}", f"y_{split}"} - set(data.files)
        if missing:
            raise DataError(f"{path}: missing arrays {sorted(missing)} (has {sorted(data.files)})")
        x, y = data[f"x_{split}"], data[f"y_{split}"]
        names = data["class_names"] if "class_names" in data.files else None
    if x.dtype != np.uint8 or x.ndim != 4 or x.shape[3] != 3:
        raise DataError(
            f"{path}: x_{split} must be uint8 [N, H, W, 3]; got {x.dtype} {list(x.shape)}"
        )
    if y.shape != (x.shape[0],):
        raise DataError(f"{path}: y_{split} has shape {list(y.shape)}, expected [{x.shape[0]}]")
    images = torch.from_numpy(x).permute(0, 3, 1, 2)
    return InMemoryDataset(images, torch.from_numpy(y.astype(np.int64)), names)


def read_torchvision_dataset(missing: str, cfg, read: Callable[[], Dataset]) -> Dataset:
    """``read()``, a torchvision dataset over ``DATASETS.ROOT``, with a one-line error that starts
    with ``missing`` when its files are absent or their download fails (a mistyped root, no
    network). A root folder that did not exist before is not left behind."""
    root = cfg.DATASETS.ROOT
    existed = os.path.exists(root)
    try:
        return read()
    except (RuntimeError, OSError) as e:  # missing files; URLError and the like are OSErrors
        if not existed:
            shutil.rmtree(root, ignore_errors=True)  # torchvision created it to download into
        if not cfg.DATASETS.DOWNLOAD:
            raise DataError(f"{missing}; DATASETS.DOWNLOAD True fetches it") from None
        reason = getattr(e, "reason", None) or str(e).strip().splitlines()[0]
        raise DataError(
            f"{missing}, and downloading it failed ({reason}); check DATASETS.ROOT, or put the "
            "files there and set DATASETS.DOWNLOAD False"
        ) from None


@DATASET_REGISTRY.register("cifar100")
def build_cifar100(cfg, train: bool) -> InMemoryDataset:
    """``DATASETS.ROOT/cifar100.npz`` if present, else torchvision's CIFAR100 files (downloaded
    into ``DATASETS.ROOT`` when ``DATASETS.DOWNLOAD``)."""
    root = cfg.DATASETS.ROOT
    npz = os.path.join(root, "cifar100.npz")
    if os.path.isfile(npz):
        return load_cifar100_npz(npz, train)
    from torchvision.datasets import CIFAR100

    tv = read_torchvision_dataset(
        f"CIFAR-100 not found in {root!r} (neither cifar100.npz nor cifar-100-python/)",
        cfg,
        lambda: CIFAR100(root, train=train, download=cfg.DATASETS.DOWNLOAD),
    )
    images = torch.from_numpy(tv.data).permute(0, 3, 1, 2)
    return InMemoryDataset(images, torch.tensor(tv.targets), tv.classes)


@DATASET_REGISTRY.register("stl10")
def build_stl10(cfg, train: bool) -> InMemoryDataset:
    """STL-10's labelled images (10 classes, 96x96; 5,000 train, 8,000 test): torchvision's
    ``stl10_binary`` files in ``DATASETS.ROOT``, downloaded there when ``DATASETS.DOWNLOAD``.
    The unlabelled split is not read."""
    from torchvision.datasets import STL10

    root = cfg.DATASETS.ROOT
    stl = read_torchvision_dataset(
        f"STL-10 not found in DATASETS.ROOT {root!r} (no stl10_binary/)",
        cfg,
        lambda: STL10(root, split="train" if train else "test", download=cfg.DATASETS.DOWNLOAD),
    )
    # torchvision keeps STL-10 as [N, 3, H, W] already (the binary files are channel-major), and
    # names its classes only when class_names.txt was downloaded too.
    images, labels = torch.from_numpy(stl.data), torch.from_numpy(stl.labels).long()
    return InMemoryDataset(images, labels, getattr(stl, "classes", None))


@DATASET_REGISTRY.register("digits")
def build_digits(cfg, train: bool) -> InMemoryDataset:
    """scikit-learn's 1,797 real 8x8 handwritten digits, upsampled to ``INPUT.SIZE`` RGB.

    Ships inside scikit-learn, so the quickstart runs offline. A fixed, class-stratified split
    keeps 20% of each digit for testing.
    """
    try:
        from sklearn.datasets import load_digits
    except ImportError:
        raise DataError("the digits dataset needs scikit-learn: pip install scikit-learn") from None
    digits = load_digits()
    pixels = torch.from_numpy(digits.images).float() * (255.0 / 16.0)
    size = cfg.INPUT.SIZE
    pixels = torch.nn.functional.interpolate(pixels[:, None], size=(size, size), mode="bilinear")
    images = pixels.round().clamp(0, 255).to(torch.uint8).expand(-1, 3, -1, -1)
    labels = torch.from_numpy(digits.target).long()
    generator = torch.Generator().manual_seed(0)
    test_mask = torch.zeros(len(labels), dtype=torch.bool)
    for c in range(10):
        members = torch.nonzero(labels == c).flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        test_mask[members[: len(members) // 5]] = True
    keep = ~test_mask if train else test_mask
    return InMemoryDataset(images[keep], labels[keep], [str(i) for i in range(10)])


@DATASET_REGISTRY.register("synthetic")
def build_synthetic(cfg, train: bool) -> InMemoryDataset:
    """Random uint8 images and labels (``DATASETS.SYNTHETIC_SIZES``), seeded: for benchmarks,
    which time the computation and not what is learned."""
    size = cfg.DATASETS.SYNTHETIC_SIZES[0 if train else 1]
    generator = torch.Generator().manual_seed(0 if train else 1)
    side = cfg.INPUT.SIZE
    images = torch.randint(0, 256, (size, 3, side, side), dtype=torch.uint8, generator=generator)
    labels = torch.randint(0, cfg.MODEL.NUM_CLASSES, (size,), generator=generator)
    return InMemoryDataset(images, labels)


class FolderDataset(Dataset):
    """An ImageNet-style folder (one sub-folder per class) decoded to uint8 ``[3, S, S]`` tensors:
    RandomResizedCrop(S) for training, Resize(S * 8/7) + CenterCrop(S) for testing; or, with
    ``resize_whole``, every image resized whole to S x S (small images such as Tiny-ImageNet's,
    cropped and flipped later on the device like CIFAR's)."""

    def __init__(self, root: str, size: int, train: bool, resize_whole: bool = False) -> None:
        from torchvision import transforms as T
        from torchvision.datasets import ImageFolder

        if not os.path.isdir(root):
            raise DataError(f"image folder not found: {root}")
        if resize_whole:
            crop = [T.Resize((size, size))]
        elif train:
            crop = [T.RandomResizedCrop(size)]
        else:
            crop = [T.Resize(round(size * 8 / 7)), T.CenterCrop(size)]
        self.folder = ImageFolder(root, transform=T.Compose([*crop, T.PILToTensor()]))
        self.labels = torch.tensor(self.folder.targets)
        self.class_names = self.folder.classes

    def __len__(self) -> int:
        return len(self.folder)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, int, int]:
        image, label = self.folder[index]
        return image, label, index


@DATASET_REGISTRY.register("imagefolder")
def build_imagefolder(cfg, train: bool) -> FolderDataset:
    """``DATASETS.ROOT/train`` and ``DATASETS.ROOT/val`` in torchvision's ImageFolder layout."""
    return FolderDataset(
        os.path.join(cfg.DATASETS.ROOT, "train" if train else "val"), cfg.INPUT.SIZE, train
    )


@DATASET_REGISTRY.register("tinyimagenet")
def build_tinyimagenet(cfg, train: bool) -> FolderDataset:
    """Tiny-ImageNet (200 classes, 64x64; 100,000 train, 10,000 val): ``DATASETS.ROOT/train``
    and ``DATASETS.ROOT/val`` in ImageFolder layout, each image resized whole to ``INPUT.SIZE``.

    Tiny-ImageNet ships ``val/`` as one folder of images plus ``val_annotations.txt``; ImageFolder
    would read that as one class, so both splits must list the same class folders.
    """
    root = cfg.DATASETS.ROOT
    folders = {split: os.path.join(root, split) for split in ("train", "val")}
    for folder in folders.values():
        if not os.path.isdir(folder):
            raise DataError(f"image folder not found: {folder}")
    classes = {
        split: sorted(e.name for e in os.scandir(f) if e.is_dir()) for split, f in folders.items()
    }
    if classes["train"] != classes["val"]:
        raise DataError(
            f"{folders['val']} has {len(classes['val'])} class folders, {folders['train']} has "
            f"{len(classes['train'])}: sort val/ into one folder per class (val_annotations.txt)"
        )
    return FolderDataset(
        folders["train" if train else "val"], cfg.INPUT.SIZE, train, resize_whole=True
    )


def build_dataset(cfg, train: bool) -> Dataset:
    """The dataset ``DATASETS.NAME`` (train or test split)."""
    return lookup(DATASET_REGISTRY, cfg.DATASETS.NAME)(cfg, train)
