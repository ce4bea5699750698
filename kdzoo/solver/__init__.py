"""Optimizer, LR schedule and mixed-precision builders."""

from .amp import AMP_DTYPES, amp_dtype, check_amp_dtype
from .build import LRMultiplier, build_lr_scheduler, build_optimizer
from .phases import MAIN_PHASE, Phase, phase_starts, train_only

__all__ = [
    "AMP_DTYPES",
    "LRMultiplier",
    "MAIN_PHASE",
    "Phase",
    "amp_dtype",
    "build_lr_scheduler",
    "build_optimizer",
    "check_amp_dtype",
    "phase_starts",
    "train_only",
]
