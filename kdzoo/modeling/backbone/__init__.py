"""Backbones: the CIFAR zoo (RepDistiller's names and keys) and torchvision's ImageNet ResNets."""

from . import cifar, torchvision_resnet  # noqa: F401  (registers the models)
from .build import (
    BACKBONE_REGISTRY,
    BackboneDims,
    Classifier,
    build_backbone,
    dummy_forward,
    eval_mode,
    input_size_mismatch,
    probe_backbone,
    probe_features,
    registered_input_size,
)

__all__ = [
    "BACKBONE_REGISTRY",
    "BackboneDims",
    "Classifier",
    "build_backbone",
    "input_size_mismatch",
    "probe_backbone",
    "dummy_forward",
    "eval_mode",
    "probe_features",
    "registered_input_size",
]
