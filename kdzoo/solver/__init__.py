"""Optimizer, LR schedule and mixed-precision builders."""

from .amp import AMP_DTYPES, amp_dtype, check_amp_dtype
from .build import LRMultiplier, build_lr_scheduler, build_optimizer

__all__ = [
    "AMP_DTYPES",
    "LRMultiplier",
    "amp_dtype",
    "build_lr_scheduler",
    "build_optimizer",
    "check_amp_dtype",
]
