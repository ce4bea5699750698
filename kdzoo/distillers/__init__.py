"""Distillers (``DISTILLER_REGISTRY``): one file per method."""

# Importing each method's file registers it.
from . import (  # noqa: F401
    ab,
    at,
    cc,
    cocord,
    crd,
    dkd,
    fitnet,
    fsp,
    ft,
    kd,
    kdsvd,
    nst,
    ofd,
    pkt,
    reviewkd,
    rkd,
    sp,
    vanilla,
    vid,
    wcord,
)
from .base import Distiller, EMAPair
from .build import (
    DISTILLER_REGISTRY,
    MODEL_ZOO_PREFIX,
    build_distiller,
    build_network,
    build_student,
    check_weight_files,
    where_to_get_a_teacher,
)

__all__ = [
    "DISTILLER_REGISTRY",
    "MODEL_ZOO_PREFIX",
    "Distiller",
    "EMAPair",
    "build_distiller",
    "build_network",
    "build_student",
    "check_weight_files",
    "where_to_get_a_teacher",
]
