"""Distillers (``DISTILLER_REGISTRY``): one file per method."""

from . import cocord, crd, kd, vanilla, wcord  # noqa: F401  (registers the methods)
from .base import Distiller, EMAPair
from .build import DISTILLER_REGISTRY, build_distiller, build_network, build_student

__all__ = [
    "DISTILLER_REGISTRY",
    "Distiller",
    "EMAPair",
    "build_distiller",
    "build_network",
    "build_student",
]
