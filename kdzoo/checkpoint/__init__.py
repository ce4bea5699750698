"""Checkpoints: atomic training checkpoints, safe loading, initial weights for backbones."""

from .checkpointer import LAST_CHECKPOINT, Checkpointer, find_last_checkpoint
from .io import atomic_save, load_file
from .weights import (
    check_state_matches,
    extract_backbone_state,
    is_torchvision_weight_name,
    load_backbone_weights,
)

__all__ = [
    "LAST_CHECKPOINT",
    "Checkpointer",
    "atomic_save",
    "check_state_matches",
    "extract_backbone_state",
    "find_last_checkpoint",
    "is_torchvision_weight_name",
    "load_backbone_weights",
    "load_file",
]
