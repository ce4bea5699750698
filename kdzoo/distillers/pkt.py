"""PKT: Passalis & Tefas, "Learning Deep Representations with Probabilistic Knowledge Transfer",
ECCV 2018.

RepDistiller (``--distill pkt``): ``feat[-1]``, the pooled penultimate vectors of student and
teacher; CE 1, KD 0, PKT 30000 (``DISTILLER.PKT``). The loss compares ``B x B`` cosine
"probabilities", so the two vectors may differ in size.
"""

import torch
from torch import nn

from kdzoo.losses import PKTLoss

from .build import DISTILLER_REGISTRY
from .feature_distiller import FeatureDistiller, over_global_batch


@DISTILLER_REGISTRY.register("pkt")
class PKT(FeatureDistiller):
    """``CE_WEIGHT * CE + WEIGHT * PKT(feat_s[-1], feat_t[-1])`` (+ ``KD_WEIGHT * KD``)."""

    loss_name = "pkt"

    def __init__(self, cfg, student: nn.Module, teacher: nn.Module) -> None:
        super().__init__(cfg, student, teacher, cfg.DISTILLER.PKT, PKTLoss())

    def feature_loss(self, feat_s: list[torch.Tensor], feat_t: list[torch.Tensor]) -> torch.Tensor:
        # L_PKT = mean_ij P^t_ij log(P^t_ij / P^s_ij),  P_ij = K_ij / sum_j K_ij,  K = (cos + 1)/2
        return over_global_batch(self.criterion, feat_s[-1], feat_t[-1])  # relations of all ranks
