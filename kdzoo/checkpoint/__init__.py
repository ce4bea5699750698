"""Checkpoints: the run folder and its atomic training checkpoints, safe loading, initial weights
for backbones, and export to Detectron2."""

from .checkpointer import Checkpointer
from .detectron2 import (
    check_r50c4,
    detectron2_arrays,
    detectron2_config_fragment,
    r50c4_layout,
    save_detectron2_pickle,
    to_detectron2_names,
)
from .io import atomic_save, atomic_write_text, load_file
from .run_folder import RunFolder
from .weights import (
    check_state_matches,
    extract_backbone_state,
    is_torchvision_weight_name,
    load_backbone_weights,
)

__all__ = [
    "Checkpointer",
    "RunFolder",
    "atomic_save",
    "atomic_write_text",
    "check_r50c4",
    "check_state_matches",
    "detectron2_arrays",
    "detectron2_config_fragment",
    "extract_backbone_state",
    "is_torchvision_weight_name",
    "load_backbone_weights",
    "load_file",
    "r50c4_layout",
    "save_detectron2_pickle",
    "to_detectron2_names",
]
