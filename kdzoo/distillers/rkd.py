"""RKD: Park, Kim, Lu & Cho, "Relational Knowledge Distillation", CVPR 2019.

RepDistiller (``--distill rkd``): ``feat[-1]``, the pooled penultimate vectors of student and
teacher; CE 1, KD 0, RKD 1, with the distance and angle terms weighted 25 and 50 inside the loss
(``DISTILLER.RKD``). The loss compares relations between the samples of the batch, so the two
vectors may differ in size.
"""

import torch
from torch import nn

from kdzoo.losses import RKDLoss

from .build import DISTILLER_REGISTRY
from .feature_distiller import FeatureDistiller, over_global_batch


@DISTILLER_REGISTRY.register("rkd")
class RKD(FeatureDistiller):
    """``CE_WEIGHT * CE + WEIGHT * RKD(feat_s[-1], feat_t[-1])`` (+ ``KD_WEIGHT * KD``)."""

    loss_name = "rkd"

    def __init__(self, cfg, student: nn.Module, teacher: nn.Module) -> None:
        opts = cfg.DISTILLER.RKD
        criterion = RKDLoss(opts.DISTANCE_WEIGHT, opts.ANGLE_WEIGHT)
        super().__init__(cfg, student, teacher, opts, criterion)

    def feature_loss(self, feat_s: list[torch.Tensor], feat_t: list[torch.Tensor]) -> torch.Tensor:
        # L_RKD = w_d * huber(psi_D(s), psi_D(t)) + w_a * huber(psi_A(s), psi_A(t))
        return over_global_batch(self.criterion, feat_s[-1], feat_t[-1])  # relations of all ranks
