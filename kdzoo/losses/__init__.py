"""Losses (``LOSS_REGISTRY``): building blocks that distillers weight and sum."""

from .build import LOSS_REGISTRY, build_loss
from .contrastive import InfoNCELoss, NormalizedMSELoss
from .crd import CRDNCELoss
from .kd import KDLoss
from .optimal_transport import SinkhornOTLoss
from .wasserstein import WassersteinCriticLoss

__all__ = [
    "LOSS_REGISTRY",
    "CRDNCELoss",
    "InfoNCELoss",
    "KDLoss",
    "NormalizedMSELoss",
    "SinkhornOTLoss",
    "WassersteinCriticLoss",
    "build_loss",
]
