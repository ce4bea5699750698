"""The one path from a config to a ready distiller: student, teacher, method, dataset-sized state.

The engine, ``--eval-only``, ``tools/analyze_model.py`` and the benchmarks all build through
:func:`build_distiller` (``--eval-only``, which needs the student alone, through
:func:`build_network`, the function every backbone here is built with); nothing else looks a
method up in ``DISTILLER_REGISTRY``.
"""

import logging
import os

import torch
from torch import nn

from kdzoo.checkpoint import is_torchvision_weight_name, load_backbone_weights
from kdzoo.model_zoo import get_checkpoint_url, get_config, list_configs, list_models
from kdzoo.modeling import build_backbone, input_size_mismatch
from kdzoo.utils.errors import CheckpointError, ConfigError
from kdzoo.utils.registry import Registry, lookup

from .base import Distiller

#: Weight specs that name a model of the model zoo start with this.
MODEL_ZOO_PREFIX = "kdzoo://"

DISTILLER_REGISTRY = Registry("DISTILLER")
DISTILLER_REGISTRY.__doc__ = (
    "Distillers by name: ``cls(cfg, student, teacher) -> Distiller``; options in DISTILLER.<NAME>."
)


def build_network(
    name: str, weights: str, num_classes: int, input_size: int | None = None
) -> nn.Module:
    """A backbone from the registry with its initial weights: a file, a model-zoo name
    (``kdzoo://NAME``), a torchvision weight name (``IMAGENET1K_V1``), or none (``""``: random).
    Given the images' ``input_size``
    (``INPUT.SIZE``), a backbone made for another size is built all the same, with a one-line
    warning naming the registered ones that fit (``resnet50`` on CIFAR: ``ResNet50``)."""
    weights = resolve_weights(weights)
    pretrained = bool(weights) and is_torchvision_weight_name(weights)
    model = build_backbone(name, num_classes, **({"weights": weights} if pretrained else {}))
    mismatch = input_size_mismatch(name, model, input_size) if input_size else None
    if mismatch:
        logging.getLogger(__name__).warning(mismatch)
    if weights and not pretrained:
        load_backbone_weights(model, weights)
    return model


def build_student(cfg, load_weights: bool = True) -> nn.Module:
    """``MODEL.STUDENT``: the backbone, with ``MODEL.STUDENT.WEIGHTS`` if ``load_weights``."""
    student = cfg.MODEL.STUDENT
    return build_network(
        student.NAME,
        student.WEIGHTS if load_weights else "",
        cfg.MODEL.NUM_CLASSES,
        cfg.INPUT.SIZE,
    )


def _build_teacher(cfg, load_weights: bool) -> nn.Module:
    """``MODEL.TEACHER`` for a method that needs one; its weights are required when loaded."""
    _require_teacher(cfg)
    weights = teacher_weights(cfg) if load_weights else ""
    return build_network(cfg.MODEL.TEACHER.NAME, weights, cfg.MODEL.NUM_CLASSES, cfg.INPUT.SIZE)


def _require_teacher(cfg) -> None:
    if not cfg.MODEL.TEACHER.NAME:
        method = cfg.DISTILLER.NAME
        raise ConfigError(f"distiller {method!r} needs a teacher: set MODEL.TEACHER.NAME")


def teacher_weights(cfg) -> str:
    """``MODEL.TEACHER.WEIGHTS`` resolved (a file or a torchvision weight name), or a one-line
    error when the teacher or its weights are missing, saying how to get them."""
    _require_teacher(cfg)
    teacher, method = cfg.MODEL.TEACHER, cfg.DISTILLER.NAME
    if not teacher.WEIGHTS:
        raise ConfigError(
            f"distiller {method!r} needs MODEL.TEACHER.WEIGHTS (a trained teacher); "
            f"{where_to_get_a_teacher(cfg)}"
        )
    weights = resolve_weights(teacher.WEIGHTS)
    if not is_torchvision_weight_name(weights) and not os.path.isfile(weights):
        raise CheckpointError(
            f"checkpoint file not found: {weights}; it is the teacher (MODEL.TEACHER.WEIGHTS): "
            f"{where_to_get_a_teacher(cfg)}"
        )
    return weights


def check_weight_files(cfg) -> None:
    """Raise, now, the one-line error building ``cfg``'s distiller would raise for a missing
    teacher or student weight file, without building anything (a sweep checks every run first)."""
    if lookup(DISTILLER_REGISTRY, cfg.DISTILLER.NAME).needs_teacher:
        teacher_weights(cfg)
    student = resolve_weights(cfg.MODEL.STUDENT.WEIGHTS)
    if student and not is_torchvision_weight_name(student) and not os.path.isfile(student):
        raise CheckpointError(f"checkpoint file not found: {student} (MODEL.STUDENT.WEIGHTS)")


def where_to_get_a_teacher(cfg) -> str:
    """How to get trained weights for ``MODEL.TEACHER.NAME`` on ``DATASETS.NAME``: the shipped
    config that trains it, and the model zoo's teacher, where they exist."""
    name, dataset = cfg.MODEL.TEACHER.NAME, cfg.DATASETS.NAME
    ways = []
    config = f"{dataset}/vanilla/{name}.yaml"
    if config in list_configs():
        ways.append(f"train it with --config configs/{config} (its OUTPUT_DIR's model_final.pth)")
    for model in list_models():
        trained = get_config(model)
        if (name, dataset) == (trained.MODEL.STUDENT.NAME, trained.DATASETS.NAME):
            ways.append(f"take the model zoo's: MODEL.TEACHER.WEIGHTS {MODEL_ZOO_PREFIX}{model}")
    if not ways:
        return f"train one with configs/{dataset}/vanilla/<arch>.yaml"
    return ", or ".join(ways)


def resolve_weights(spec: str) -> str:
    """A weight spec with model-zoo names resolved (``kdzoo://cifar100/short_schedule/resnet56``
    -> that model's checkpoint, as Detectron2 resolves ``detectron2://``); others unchanged."""
    if spec.startswith(MODEL_ZOO_PREFIX):
        return get_checkpoint_url(spec[len(MODEL_ZOO_PREFIX) :])
    return spec


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
