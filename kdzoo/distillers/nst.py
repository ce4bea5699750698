"""NST: Huang & Wang, "Like What You Like: Knowledge Distill via Neuron Selectivity Transfer",
2017 (arXiv:1707.01219).

RepDistiller (``--distill nst``): the post-ReLU stage outputs ``feat[1:-1]`` of student and
teacher, one MMD loss per pair, summed; CE 1, KD 0, NST 50 (``DISTILLER.NST``). Where the maps
differ in size the larger is average-pooled to the smaller (in the loss); where the lists differ
in length the extra maps are dropped, as the reference's ``zip`` does.
"""

import torch
from torch import nn

from kdzoo.losses import NSTLoss

from .build import DISTILLER_REGISTRY
from .feature_distiller import FeatureDistiller, layer_pairs


@DISTILLER_REGISTRY.register("nst")
class NST(FeatureDistiller):
    """``CE_WEIGHT * CE + WEIGHT * sum_j MMD^2(f_s^j, f_t^j)`` (+ ``KD_WEIGHT * KD``)."""

    loss_name = "nst"

    def __init__(self, cfg, student: nn.Module, teacher: nn.Module) -> None:
        super().__init__(cfg, student, teacher, cfg.DISTILLER.NST, NSTLoss())

    def feature_loss(self, feat_s: list[torch.Tensor], feat_t: list[torch.Tensor]) -> torch.Tensor:
        # L_NST = sum_j MMD^2: mean k(t, t) + mean k(s, s) - 2 mean k(s, t),  k(x, y) = (x^T y)^2
        return sum(self.criterion(*layer_pairs(feat_s[1:-1], feat_t[1:-1])))
