"""Linear probing: how linearly separable a frozen student's features are on another dataset.

Each image is resized to the backbone's input side, normalised as the student was trained, and
mapped once to its pooled penultimate embedding (``model(x)["embedding"]``, eval mode); the
features of each split are cached in the output folder, so probing again with other classifier
settings does not run the backbone.

The classifier is one ``nn.Linear`` on features standardised with the training split's
per-dimension mean and std (a BatchNorm without affine parameters, as MAE's linear probe uses),
trained with mini-batch SGD (momentum 0.9, cosine decay to 0) and cross-entropy from zero weights.
SGD rather than L-BFGS: it runs in constant memory on Tiny-ImageNet's 100k features, follows the
SGD protocol of the papers, and standardising lets one learning rate serve backbones whose
feature scales differ.
"""

import logging
import math
import os
import time
from collections.abc import Callable, Iterable, Iterator

import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset

from kdzoo.checkpoint import atomic_save, load_file
from kdzoo.config import get_cfg
from kdzoo.data import DATASET_REGISTRY, BatchAugmentation, InMemoryDataset, build_dataset
from kdzoo.utils.errors import DataError

from .classification import topk_correct

logger = logging.getLogger(__name__)
PROGRESS_SECONDS = 10  # between progress lines of a feature pass

#: The registered datasets (``kdzoo.data.DATASET_REGISTRY``) the probe accepts.
PROBE_DATASETS = ("cifar100", "stl10", "tinyimagenet")
Batches = Iterable[tuple[torch.Tensor, torch.Tensor]]  # (uint8 [B, 3, H, W], int64 [B])


def _in_memory_batches(dataset: InMemoryDataset, batch_size: int) -> Iterator:
    for start in range(0, len(dataset), batch_size):
        stop = start + batch_size
        yield dataset.images[start:stop], dataset.labels[start:stop]


def _loader_batches(dataset: Dataset, batch_size: int, num_workers: int) -> Iterator:
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=num_workers)
    for images, labels, _ in loader:  # kdzoo datasets yield (image, label, index)
        yield images, labels


def probe_batches(
    dataset: str,
    root: str,
    train: bool,
    size: int,
    batch_size: int = 256,
    num_workers: int = 4,
    download: bool = False,
) -> Batches:
    """Uint8 batches of one split of ``dataset``, one of :data:`PROBE_DATASETS`, built by
    :func:`kdzoo.data.build_dataset` from ``root`` (``DATASETS.ROOT``), ``download``
    (``DATASETS.DOWNLOAD``) and ``size`` (``INPUT.SIZE``): ``cifar100`` (``root`` holds
    ``cifar100.npz`` or torchvision's files), ``stl10`` (torchvision's, 10 classes) or
    ``tinyimagenet`` (an ImageFolder ``root/train``, ``root/val``; 200 classes).

    In-memory datasets are sliced from their tensors (and resized by :func:`extract_features`);
    folder datasets decode and resize to ``size`` in ``num_workers`` DataLoader workers.
    """
    if dataset not in PROBE_DATASETS or dataset not in DATASET_REGISTRY:
        raise DataError(f"unknown probe dataset {dataset!r}; choose one of {list(PROBE_DATASETS)}")
    cfg = get_cfg()
    cfg.DATASETS.NAME, cfg.DATASETS.ROOT, cfg.DATASETS.DOWNLOAD = dataset, root, download
    cfg.INPUT.SIZE = size
    data = build_dataset(cfg, train)
    if isinstance(data, InMemoryDataset):
        return _in_memory_batches(data, batch_size)
    return _loader_batches(data, batch_size, num_workers)


@torch.no_grad()
def extract_features(
    model: nn.Module,
    batches: Batches,
    pixel_mean: list[float],
    pixel_std: list[float],
    device: str | torch.device = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Pooled embeddings of every image: float32 ``[N, D]`` and labels int64 ``[N]``, on the CPU.

    Images of another side than ``model.input_size`` are resized (bilinear, antialiased) first.
    """
    size = model.input_size
    model.eval()
    # Only its normalisation is used: the test-time input exactly as training saw it.
    normalize = BatchAugmentation(size, 0, False, pixel_mean, pixel_std, device, seed=0).normalize
    features, labels = [], []
    done, last_report = 0, time.perf_counter()
    for images, targets in batches:
        x = images.to(device).float()
        if x.shape[-2:] != (size, size):
            x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True)
        features.append(model(normalize(x))["embedding"].float().cpu())
        labels.append(targets.long())
        done += len(targets)
        if time.perf_counter() - last_report > PROGRESS_SECONDS:  # a long pass says it is alive
            logger.info(f"Extracting features: {done} images so far")
            last_report = time.perf_counter()
    if not features:
        raise DataError("the dataset is empty")
    logger.info(f"Extracted the features of {done} images")
    return torch.cat(features), torch.cat(labels)


def cached_features(
    path: str, key: dict, extract: Callable[[], tuple[torch.Tensor, torch.Tensor]]
) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """``(features, labels, reused)``: from ``path`` if it was written for the same ``key`` (plain
    data naming the model, weights, dataset and preprocessing), else ``extract()``, saved there."""
    if os.path.isfile(path):
        cached = load_file(path)  # weights_only=True
        if isinstance(cached, dict) and cached.get("key") == key:
            return cached["features"], cached["labels"], True
        logger.info(f"{path} was extracted with other settings; extracting again")
    features, labels = extract()
    atomic_save({"key": key, "features": features, "labels": labels}, path)
    return features, labels, False


def train_linear_probe(
    train_features: torch.Tensor,
    train_labels: torch.Tensor,
    test_features: torch.Tensor,
    test_labels: torch.Tensor,
    epochs: int = 100,
    lr: float = 0.1,
    batch_size: int = 256,
    weight_decay: float = 0.0,
    num_classes: int | None = None,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> float:
    """Train a linear classifier on ``train_features`` ``[N, D]`` / ``train_labels`` ``[N]`` and
    return its top-1 accuracy (percent) on ``test_features`` ``[M, D]`` / ``test_labels`` ``[M]``.

    ``num_classes`` defaults to the largest label + 1. Runs are deterministic for a ``seed``.
    """
    if train_features.shape[1] != test_features.shape[1]:
        raise ValueError(
            f"train features have {train_features.shape[1]} dimensions, test features "
            f"{test_features.shape[1]}"
        )
    classes = num_classes or int(max(train_labels.max(), test_labels.max())) + 1
    mean = train_features.mean(dim=0)
    std = train_features.std(dim=0, correction=0).clamp_min(1e-6)  # constant dims stay finite
    x = ((train_features - mean) / std).to(device)
    y = train_labels.long().to(device)
    classifier = nn.Linear(x.shape[1], classes).to(device)
    nn.init.zeros_(classifier.weight)  # the problem is convex: no random start is needed
    nn.init.zeros_(classifier.bias)
    optimizer = torch.optim.SGD(
        classifier.parameters(), lr=lr, momentum=0.9, weight_decay=weight_decay
    )
    total_steps = epochs * math.ceil(len(x) / batch_size)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(total_steps, 1))
    generator = torch.Generator().manual_seed(seed)
    for _ in range(epochs):
        for step in torch.randperm(len(x), generator=generator).split(batch_size):
            step = step.to(device)
            loss = F.cross_entropy(classifier(x[step]), y[step])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
    with torch.no_grad():
        logits = classifier(((test_features - mean) / std).to(device))
        hits = topk_correct(logits, test_labels.long().to(device), (1,))
    return 100.0 * hits.item() / len(test_labels)


def run_linear_probe(
    model: nn.Module,
    model_key: dict,
    dataset: str,
    data_root: str,
    output_dir: str,
    pixel_mean: list[float],
    pixel_std: list[float],
    *,
    device: str = "cpu",
    extract_batch_size: int = 256,
    num_workers: int = 4,
    download: bool = False,
    **probe_options,
) -> dict:
    """Probe a frozen ``model`` on ``dataset``: extract (or reuse) the features of both splits in
    ``output_dir``, then :func:`train_linear_probe` with ``probe_options``.

    ``model_key`` names the model and its weights (e.g. ``{"backbone": ..., "weights_sha256":
    ...}``); a cache is reused only for the same key, dataset, root and normalisation.
    Returns ``{"top1", "num_train", "num_test", "feature_dim", "reused_cache"}``.
    """
    model.requires_grad_(False).to(device)
    splits, reused = {}, []
    for split, train in (("train", True), ("test", False)):
        key = {
            **model_key,
            "dataset": dataset,
            "data_root": os.path.abspath(data_root),
            "split": split,
            "input_size": model.input_size,
            "pixel_mean": [float(v) for v in pixel_mean],
            "pixel_std": [float(v) for v in pixel_std],
        }

        def extract(train: bool = train) -> tuple[torch.Tensor, torch.Tensor]:
            batches = probe_batches(
                dataset,
                data_root,
                train,
                model.input_size,
                extract_batch_size,
                num_workers,
                download,
            )
            return extract_features(model, batches, pixel_mean, pixel_std, device)

        path = os.path.join(output_dir, f"features_{dataset}_{split}.pth")
        features, labels, was_cached = cached_features(path, key, extract)
        splits[split] = (features, labels)
        reused.append(was_cached)
    (train_x, train_y), (test_x, test_y) = splits["train"], splits["test"]
    top1 = train_linear_probe(train_x, train_y, test_x, test_y, device=device, **probe_options)
    return {
        "top1": top1,
        "num_train": len(train_y),
        "num_test": len(test_y),
        "feature_dim": train_x.shape[1],
        "reused_cache": all(reused),
    }
