"""Losses (``LOSS_REGISTRY``): building blocks that distillers weight and sum."""

from .build import LOSS_REGISTRY, build_loss
from .kd import KDLoss

__all__ = ["LOSS_REGISTRY", "KDLoss", "build_loss"]
