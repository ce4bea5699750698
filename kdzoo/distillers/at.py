"""AT: Zagoruyko & Komodakis, "Paying More Attention to Attention: Improving the Performance of
Convolutional Neural Networks via Attention Transfer", ICLR 2017.

RepDistiller (``--distill attention``): the post-ReLU stage outputs ``feat[1:-1]`` of student and
teacher, one attention loss per pair, summed; CE 1, KD 0, AT 1000 (``DISTILLER.AT``). Where the
maps differ in size the larger is average-pooled to the smaller (in the loss); where the lists
differ in length the extra maps are dropped, as the reference's ``zip`` does.
"""

import torch
from torch import nn

from kdzoo.losses import AttentionTransferLoss

from .build import DISTILLER_REGISTRY
from .feature_distiller import FeatureDistiller, layer_pairs


@DISTILLER_REGISTRY.register("at")
class AT(FeatureDistiller):
    """``CE_WEIGHT * CE + WEIGHT * sum_j AT(f_s^j, f_t^j)`` (+ ``KD_WEIGHT * KD``)."""

    loss_name = "at"

    def __init__(self, cfg, student: nn.Module, teacher: nn.Module) -> None:
        opts = cfg.DISTILLER.AT
        super().__init__(cfg, student, teacher, opts, AttentionTransferLoss(opts.P))

    def feature_loss(self, feat_s: list[torch.Tensor], feat_t: list[torch.Tensor]) -> torch.Tensor:
        # L_AT = sum_j mean (Q_s^j/||Q_s^j|| - Q_t^j/||Q_t^j||)^2,  Q^j = mean_c (f^j)^p
        return sum(self.criterion(*layer_pairs(feat_s[1:-1], feat_t[1:-1])))
