"""The one path from a config to a ready distiller: student, teacher, method, dataset-sized state.

The engine, ``--eval-only``, ``tools/analyze_model.py`` and the benchmarks all build through
:func:`build_distiller` (or, for a student alone, :func:`build_student`); nothing else looks a
method up in ``DISTILLER_REGISTRY``.
"""

import torch
from torch import nn

from kdzoo.checkpoint import is_torchvision_weight_name, load_backbone_weights
from kdzoo.modeling import build_backbone
from kdzoo.utils.errors import ConfigError
from kdzoo.utils.registry import Registry, lookup

from .base import Distiller

DISTILLER_REGISTRY = Registry("DISTILLER")
DISTILLER_REGISTRY.__doc__ = (
    "Distillers by name: ``cls(cfg, student, teacher) -> Distiller``; options in DISTILLER.<NAME>."
)


def build_network(name: str, weights: str, num_classes: int) -> nn.Module:
    """A backbone from the registry with its initial weights: a file, a torchvision weight name
    (``IMAGENET1K_V1``), or none (``""``: random)."""
    if weights and is_torchvision_weight_name(weights):
        return build_backbone(name, num_classes, weights=weights)
    model = build_backbone(name, num_classes)
    if weights:
        load_backbone_weights(model, weights)
    return model


def build_student(cfg, load_weights: bool = True) -> nn.Module:
    """``MODEL.STUDENT``: the backbone, with ``MODEL.STUDENT.WEIGHTS`` if ``load_weights``."""
    student = cfg.MODEL.STUDENT
    return build_network(
        student.NAME, student.WEIGHTS if load_weights else "", cfg.MODEL.NUM_CLASSES
    )


def _build_teacher(cfg, load_weights: bool) -> nn.Module:
    """``MODEL.TEACHER`` for a method that needs one; its weights are required when loaded."""
    teacher, method = cfg.MODEL.TEACHER, cfg.DISTILLER.NAME
    if not teacher.NAME:
        raise ConfigError(f"distiller {method!r} needs a teacher: set MODEL.TEACHER.NAME")
    if load_weights and not teacher.WEIGHTS:
        raise ConfigError(
            f"distiller {method!r} needs MODEL.TEACHER.WEIGHTS (a trained teacher); "
            "train one with configs/<dataset>/vanilla/<arch>.yaml"
        )
    return build_network(
        teacher.NAME, teacher.WEIGHTS if load_weights else "", cfg.MODEL.NUM_CLASSES
    )


def build_distiller(cfg, train_labels: torch.Tensor, load_weights: bool = True) -> Distiller:
    """The distiller ``DISTILLER.NAME`` around the configured student and (if the method needs
    one) teacher, frozen, with its dataset-sized state (memory banks, samplers) sized by the
    training set's ``train_labels`` ``[N]``.

    ``load_weights=False`` builds every backbone with random weights and reads no weight file
    (cost analysis: sizes do not depend on values).
    """
    cls = lookup(DISTILLER_REGISTRY, cfg.DISTILLER.NAME)
    student = build_student(cfg, load_weights)
    teacher = _build_teacher(cfg, load_weights) if cls.needs_teacher else None
    distiller = cls(cfg, student, teacher)
    distiller.bind_dataset(train_labels)
    return distiller
