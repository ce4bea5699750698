"""Variational information distillation: Ahn, Hu, Damianou, Lawrence & Dai, "Variational
Information Distillation for Knowledge Transfer", CVPR 2019.

Computes what RepDistiller's ``distiller_zoo/VID.py`` (commit b84f547, the authors' code) computes.
"""

import math

import torch
import torch.nn.functional as F
from torch import nn

from ._feature_maps import full_precision, pool_to_smaller_map
from .build import LOSS_REGISTRY


def conv1x1(in_channels: int, out_channels: int) -> nn.Conv2d:
    return nn.Conv2d(in_channels, out_channels, kernel_size=1, bias=False)


def inverse_softplus(y: float) -> float:
    """The ``x`` with ``log(1 + exp(x)) = y``: ``log(exp(y) - 1)``."""
    return math.log(math.expm1(y))


@LOSS_REGISTRY.register("vid")
class VIDLoss(nn.Module):
    """VID for one pair of maps: the negative log-likelihood of the teacher's map under a
    Gaussian whose mean a regressor predicts from the student's map and whose per-channel
    variance is learned.

    Paper (Eq. 2-5): maximise a variational lower bound of the mutual information between the
    teacher's and the student's features, ``q(t | s) = N(t; mu(s), sigma^2)`` with a
    heteroscedastic mean ``mu`` (a small conv net) and a homoscedastic variance per channel,
    ``sigma_c^2 = log(1 + exp(alpha_c)) + eps``::

        -log q(t | s) = sum_{c,h,w} [ log sigma_c + (t_chw - mu_chw(s))^2 / (2 sigma_c^2) ] + const

    What the reference computes (VID.py:9-53), and this module too::

        f_s, f_t <- the larger map average-pooled to the smaller one's H x H
        mu       = conv1x1(C_t) . ReLU . conv1x1(C_t) . ReLU . conv1x1(C_s -> C_t) (f_s)
        var_c    = log(1 + exp(alpha_c)) + eps,     alpha_c = log(exp(INIT_PRED_VAR - eps) - 1)
        l        = mean over [B, C_t, H, W] of 0.5 * ((mu - f_t)^2 / var + log var)

    a **mean** over batch, channels and positions where the paper sums over channels and
    positions (the factor ``C H W`` is absorbed by the weight, ``-b 1``); the constant is dropped.
    The regressor's middle width is ``C_t`` (``VIDLoss(s, t, t)``, train_student.py:219-223), its
    convolutions have no bias, and both the regressor and ``alpha`` are trained with the student
    (``trainable_list``). The teacher's map is detached (helper/loops.py:115-117).

    ``student_channels``, ``teacher_channels``: ``C_s``, ``C_t``. ``forward(f_s, f_t)``:
    ``[B, C_s, H, W]`` and ``[B, C_t, H', W']`` -> scalar.
    """

    def __init__(
        self,
        student_channels: int,
        teacher_channels: int,
        init_pred_var: float = 5.0,
        eps: float = 1e-5,
    ) -> None:
        super().__init__()
        self.regressor = nn.Sequential(
            conv1x1(student_channels, teacher_channels),
            nn.ReLU(),
            conv1x1(teacher_channels, teacher_channels),
            nn.ReLU(),
            conv1x1(teacher_channels, teacher_channels),
        )
        # alpha_c, so that the initial variance is exactly INIT_PRED_VAR (VID.py:33-35)
        self.log_scale = nn.Parameter(
            torch.full((teacher_channels,), inverse_softplus(init_pred_var - eps))
        )
        self.eps = eps

    def variance(self) -> torch.Tensor:
        """``sigma_c^2 = log(1 + exp(alpha_c)) + eps``, shaped ``[1, C_t, 1, 1]``."""
        return (F.softplus(self.log_scale) + self.eps).view(1, -1, 1, 1)

    @full_precision
    def forward(self, f_s: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
        f_s, f_t = pool_to_smaller_map(f_s, f_t.detach())
        mean, var = self.regressor(f_s), self.variance()
        # -log q(t | s) per element, up to a constant: 0.5 ((t - mu)^2 / sigma^2 + log sigma^2)
        return (0.5 * ((mean - f_t).pow(2) / var + var.log())).mean()
