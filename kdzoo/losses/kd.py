"""Hinton et al., "Distilling the Knowledge in a Neural Network" (2015)."""

import torch
import torch.nn.functional as F
from torch import nn

from .build import LOSS_REGISTRY


@LOSS_REGISTRY.register("kd_kl")
class KDLoss(nn.Module):
    """``T^2 * KL(softmax(z_t / T) || softmax(z_s / T))``, summed over classes, mean over the batch.

    The ``T^2`` keeps the gradient scale of the soft targets independent of ``T``.
    """

    def __init__(self, temperature: float = 4.0) -> None:
        super().__init__()
        self.temperature = temperature

    def forward(self, student_logits: torch.Tensor, teacher_logits: torch.Tensor) -> torch.Tensor:
        """``student_logits``, ``teacher_logits``: ``[B, C]`` -> scalar."""
        t = self.temperature
        log_p_s = F.log_softmax(student_logits.float() / t, dim=1)
        log_p_t = F.log_softmax(teacher_logits.float() / t, dim=1)
        kl = F.kl_div(log_p_s, log_p_t, reduction="batchmean", log_target=True)
        return kl * t * t
