"""Optimizer and LR schedule builders."""

from .build import LRMultiplier, build_lr_scheduler, build_optimizer

__all__ = ["LRMultiplier", "build_lr_scheduler", "build_optimizer"]
