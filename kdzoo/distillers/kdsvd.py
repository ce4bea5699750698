"""KDSVD: Lee, Kim & Song, "Self-supervised Knowledge Distillation Using Singular Value
Decomposition", ECCV 2018.

mdistiller (``DISTILLER.TYPE: KDSVD``, commit a08d46f, ``mdistiller/distillers/KDSVD.py``): the
post-ReLU stage outputs ``feats[1:]`` of its models (kdzoo's ``features[1:-1]``), one truncated
SVD per map (the teacher keeps ``K = 1`` singular vectors, the student ``K + 3``), RBF relations
between consecutive layers, summed squared differences over the batch size; CE 1, KDSVD 1
(``CFG.KDSVD.K``, ``LOSS.CE_WEIGHT``, ``LOSS.FEAT_WEIGHT``, engine/cfg.py), no KD
(``DISTILLER.KDSVD``). RepDistiller's ``--distill kdsvd`` computes the same steps on another
matrix of each map (positions by channels instead of mdistiller's ``[C*H, W]``); kdzoo follows
mdistiller (docs/decisions.md, "Baselines"). Where the maps of a layer differ in size the larger
is average-pooled to the smaller (in the loss; the reference fails there); where the lists differ
in length the extra maps are dropped, as the reference's ``zip`` does.
"""

import torch
from torch import nn

from kdzoo.losses import KDSVDLoss

from .build import DISTILLER_REGISTRY
from .feature_distiller import FeatureDistiller, layer_pairs


@DISTILLER_REGISTRY.register("kdsvd")
class KDSVD(FeatureDistiller):
    """``CE_WEIGHT * CE + WEIGHT * KDSVD(f_s^1..n, f_t^1..n)`` (+ ``KD_WEIGHT * KD``)."""

    loss_name = "kdsvd"

    def __init__(self, cfg, student: nn.Module, teacher: nn.Module) -> None:
        opts = cfg.DISTILLER.KDSVD
        super().__init__(cfg, student, teacher, opts, KDSVDLoss(opts.K))

    def feature_loss(self, feat_s: list[torch.Tensor], feat_t: list[torch.Tensor]) -> torch.Tensor:
        # L = sum_{i>0} sum (G_s^i - G_t^i)^2 / B,  G^i = exp(-(v^i - v^{i-1})^2 / 8) (KDSVD.py)
        return self.criterion(*layer_pairs(feat_s[1:-1], feat_t[1:-1]))
