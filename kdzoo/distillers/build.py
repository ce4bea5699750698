"""The distiller registry: ``DISTILLER.NAME`` -> a class built as ``cls(cfg, student, teacher)``."""

from torch import nn

from kdzoo.utils.errors import ConfigError
from kdzoo.utils.registry import Registry, lookup

DISTILLER_REGISTRY = Registry("DISTILLER")
DISTILLER_REGISTRY.__doc__ = (
    "Distillers by name: ``cls(cfg, student, teacher) -> Distiller``; options in DISTILLER.<NAME>."
)


def build_distiller(cfg, student: nn.Module, teacher: nn.Module | None) -> nn.Module:
    """Build ``cfg.DISTILLER.NAME`` around a student and (if the method needs one) a teacher."""
    cls = lookup(DISTILLER_REGISTRY, cfg.DISTILLER.NAME)
    if getattr(cls, "needs_teacher", True) and teacher is None:
        raise ConfigError(
            f"distiller {cfg.DISTILLER.NAME!r} needs a teacher: set MODEL.TEACHER.NAME"
        )
    return cls(cfg, student, teacher)
