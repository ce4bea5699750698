"""Losses (``LOSS_REGISTRY``): building blocks that distillers weight and sum."""

from .activation_boundary import ABLoss
from .attention import AttentionTransferLoss
from .build import LOSS_REGISTRY, build_loss
from .contrastive import InfoNCELoss, NormalizedMSELoss
from .crd import CRDNCELoss
from .decoupled_kd import DKDLoss
from .factor_transfer import FactorTransferLoss
from .fsp import FSPLoss
from .kd import KDLoss
from .neuron_selectivity import NSTLoss
from .optimal_transport import SinkhornOTLoss
from .overhaul import OFDLoss, bn_margin
from .relational import CorrelationCongruenceLoss, RKDLoss
from .review import HCLLoss
from .similarity import PKTLoss, SimilarityPreservingLoss
from .svd import KDSVDLoss
from .variational import VIDLoss
from .wasserstein import WassersteinCriticLoss

__all__ = [
    "LOSS_REGISTRY",
    "ABLoss",
    "AttentionTransferLoss",
    "CRDNCELoss",
    "CorrelationCongruenceLoss",
    "DKDLoss",
    "FSPLoss",
    "FactorTransferLoss",
    "HCLLoss",
    "InfoNCELoss",
    "KDLoss",
    "KDSVDLoss",
    "NSTLoss",
    "NormalizedMSELoss",
    "OFDLoss",
    "PKTLoss",
    "RKDLoss",
    "SimilarityPreservingLoss",
    "SinkhornOTLoss",
    "VIDLoss",
    "WassersteinCriticLoss",
    "bn_margin",
    "build_loss",
]
