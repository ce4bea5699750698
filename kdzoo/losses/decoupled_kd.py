"""Decoupled knowledge distillation: Zhao, Cui, Song, Qiu & Liang, "Decoupled Knowledge
Distillation", CVPR 2022.

Computes what mdistiller's ``mdistiller/distillers/DKD.py`` (commit a08d46f, the authors' code)
computes.
"""

import torch
import torch.nn.functional as F
from torch import nn

from ._feature_maps import full_precision
from .build import LOSS_REGISTRY

#: Subtracted from the target class's logit to leave it out of the non-target distribution
#: (DKD.py:21-26): its probability becomes exp(-1000 T) relative to the others, zero in float32.
_MASK_OUT = 1000.0


def target_vs_rest(p: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """The binary distribution ``[p_target, 1 - p_target]`` of each row of ``p`` ``[B, C]``, as
    the two sums over ``target`` (a ``[B, C]`` one-hot mask) and its complement: ``[B, 2]``."""
    return torch.stack([(p * target).sum(1), (p * ~target).sum(1)], dim=1)


@LOSS_REGISTRY.register("dkd")
class DKDLoss(nn.Module):
    """``alpha * TCKD + beta * NCKD`` between student and teacher logits.

    Paper (Eq. 1-5): KD's ``KL(p_t || p_s)`` splits into ``TCKD + (1 - p_t^target) NCKD``, where
    TCKD is the KL of the binary target/non-target distributions ``b = [p^target, p^rest]`` and
    NCKD the KL of the distributions over the non-target classes alone; DKD weighs the two freely,
    ``alpha TCKD + beta NCKD``, dropping the factor ``1 - p_t^target`` that suppresses NCKD.

    What the reference computes (DKD.py:8-32), and this module too, with ``z / T`` softened logits::

        b_s, b_t = [p^target, p^rest] of softmax(z_s / T), softmax(z_t / T)
        TCKD     = T^2 / B * sum KL(b_t || b_s)       (the log of b_s, not a log_softmax)
        NCKD     = T^2 / B * sum KL(softmax(z_t / T - 1000 y) || softmax(z_s / T - 1000 y))

    with ``y`` the one-hot labels: summed over classes and samples, divided by the batch size.
    Both distributions over the non-target classes are taken by pushing the target logit down by
    1000 rather than by dropping its column. Half-precision logits are computed in float32. The
    teacher's logits are detached (its forward runs under ``no_grad`` in the reference).

    ``forward(logits_s, logits_t, labels)``: ``[B, C]``, ``[B, C]``, ``[B]`` -> scalar.
    """

    def __init__(self, alpha: float = 1.0, beta: float = 8.0, temperature: float = 4.0) -> None:
        super().__init__()
        self.alpha = alpha
        self.beta = beta
        self.temperature = temperature

    @full_precision
    def forward(
        self, logits_s: torch.Tensor, logits_t: torch.Tensor, labels: torch.Tensor
    ) -> torch.Tensor:
        t = self.temperature
        z_s, z_t = logits_s / t, logits_t.detach() / t
        target = F.one_hot(labels, z_s.shape[1]).bool()
        scale = t * t / labels.shape[0]
        # TCKD = KL(b_t || b_s) over the binary target / non-target split
        b_s = target_vs_rest(z_s.softmax(1), target)
        b_t = target_vs_rest(z_t.softmax(1), target)
        tckd = F.kl_div(b_s.log(), b_t, reduction="sum") * scale
        # NCKD = KL(p_t^rest || p_s^rest) over the non-target classes
        log_rest_s = F.log_softmax(z_s - _MASK_OUT * target, dim=1)
        rest_t = F.softmax(z_t - _MASK_OUT * target, dim=1)
        nckd = F.kl_div(log_rest_s, rest_t, reduction="sum") * scale
        return self.alpha * tckd + self.beta * nckd
