"""Builders of the data side of a run from ``DATASETS``, ``DATALOADER``, ``INPUT`` and ``TEST``."""

import logging

import torch

from .augment import BatchAugmentation
from .datasets import build_dataset
from .loader import TestLoader, TrainLoader


def build_train_loader(cfg, device: torch.device) -> TrainLoader:
    """The training split of ``DATASETS.NAME`` as a resumable stream of global batches of
    ``SOLVER.IMS_PER_BATCH`` (this rank's share), delivered on ``device``."""
    dataset = build_dataset(cfg, train=True)
    return TrainLoader(
        dataset, cfg.SOLVER.IMS_PER_BATCH, cfg.SEED, device, cfg.DATALOADER.NUM_WORKERS
    )


def build_test_loader(cfg, device: torch.device) -> TestLoader:
    """The test split of ``DATASETS.NAME`` (its first ``TEST.MAX_IMAGES``, if set): this rank's
    share, in batches of ``TEST.IMS_PER_BATCH``."""
    dataset = build_dataset(cfg, train=False)
    loader = TestLoader(
        dataset,
        cfg.TEST.IMS_PER_BATCH,
        device,
        cfg.DATALOADER.NUM_WORKERS,
        max_images=cfg.TEST.MAX_IMAGES,
    )
    subset = " (TEST.MAX_IMAGES)" if loader.num_images < len(dataset) else ""
    logging.getLogger("kdzoo").info(
        f"Evaluations use {loader.num_images} of the {len(dataset)} test images{subset}"
    )
    return loader


def build_augmentation(cfg, device: torch.device) -> BatchAugmentation:
    """``INPUT``'s crop, flip and normalisation, run on ``device`` and seeded by ``SEED``."""
    return BatchAugmentation(
        size=cfg.INPUT.SIZE,
        padding=cfg.INPUT.CROP_PADDING,
        hflip=cfg.INPUT.HFLIP,
        mean=list(cfg.INPUT.PIXEL_MEAN),
        std=list(cfg.INPUT.PIXEL_STD),
        device=device,
        seed=cfg.SEED,
        memory_format=torch.channels_last if cfg.MODEL.CHANNELS_LAST else torch.contiguous_format,
    )
