"""SP: Tung & Mori, "Similarity-Preserving Knowledge Distillation", ICCV 2019.

RepDistiller (``--distill similarity``): the one pair ``[feat[-2]]``, the last stage's post-ReLU
output of student and teacher; CE 1, KD 0, SP 3000 (``DISTILLER.SP``). The loss compares
``B x B`` similarity matrices, so the two maps may differ in every size but the batch.
"""

import torch
from torch import nn

from kdzoo.losses import SimilarityPreservingLoss

from .build import DISTILLER_REGISTRY
from .feature_distiller import FeatureDistiller, over_global_batch


@DISTILLER_REGISTRY.register("sp")
class SP(FeatureDistiller):
    """``CE_WEIGHT * CE + WEIGHT * SP(feat_s[-2], feat_t[-2])`` (+ ``KD_WEIGHT * KD``)."""

    loss_name = "sp"

    def __init__(self, cfg, student: nn.Module, teacher: nn.Module) -> None:
        super().__init__(cfg, student, teacher, cfg.DISTILLER.SP, SimilarityPreservingLoss())

    def feature_loss(self, feat_s: list[torch.Tensor], feat_t: list[torch.Tensor]) -> torch.Tensor:
        # L_SP = 1/B^2 ||G_t - G_s||_F^2,  G = row_normalize(Q Q^T),  Q = feat[-2] as [B, CHW]
        # over the global batch: G is B x B over every rank's samples
        return over_global_batch(lambda s, t: sum(self.criterion([s], [t])), feat_s[-2], feat_t[-2])
