"""Losses on relations between the samples of a batch: relational KD (Park et al., CVPR 2019) and
correlation congruence (Peng et al., ICCV 2019).

Each computes what RepDistiller's ``distiller_zoo/RKD.py`` / ``CC.py`` (commit b84f547) computes.
"""

import torch
import torch.nn.functional as F
from torch import nn

from ._feature_maps import full_precision
from .build import LOSS_REGISTRY


def pairwise_distances(e: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """``[B, D]`` -> ``[B, B]`` Euclidean distances, as ``RKDLoss.pdist`` (RKD.py:47-58).

    ``d_ij = sqrt(max(|e_i|^2 + |e_j|^2 - 2 e_i.e_j, eps))``, then the diagonal set to 0 (no
    gradient flows through it). Off the diagonal every entry is at least ``sqrt(eps) = 1e-6``,
    also for two identical samples.
    """
    sq = e.pow(2).sum(dim=1)
    d = (sq.unsqueeze(1) + sq.unsqueeze(0) - 2 * (e @ e.t())).clamp(min=eps).sqrt()
    diagonal = torch.eye(len(e), dtype=torch.bool, device=e.device)
    return d.masked_fill(diagonal, 0)


def normalized_distances(e: torch.Tensor, eps: float = 1e-12) -> torch.Tensor:
    """psi_D: pairwise distances divided by their mean over the positive entries (RKD.py:21-27)."""
    d = pairwise_distances(e, eps)
    return d / d[d > 0].mean()  # psi_D(i, j) = d_ij / mu,  mu = mean_{d_kl > 0} d_kl


def angles(e: torch.Tensor) -> torch.Tensor:
    """psi_A: ``[B, D]`` -> ``[B^3]``: ``cos`` of the angle at ``e_i`` between ``e_j`` and ``e_k``,
    flattened in ``(i, j, k)`` order (RKD.py:33-39); 0 where ``j == i`` or ``k == i``."""
    diff = e.unsqueeze(0) - e.unsqueeze(1)  # diff[i, j] = e_j - e_i
    unit = F.normalize(diff, p=2, dim=2)  # (e_j - e_i) / max(||e_j - e_i||, 1e-12)
    return torch.bmm(unit, unit.transpose(1, 2)).view(-1)  # <u_ij, u_ik>


@LOSS_REGISTRY.register("rkd")
class RKDLoss(nn.Module):
    """RKD: Huber losses between the distance and the angle structures of student and teacher.

    Paper::

        psi_D(t_i, t_j)      = ||t_i - t_j||_2 / mu,  mu = 1/|pairs| sum_{i != j} ||t_i - t_j||_2
        psi_A(t_i, t_j, t_k) = <(t_i - t_j)/||t_i - t_j||, (t_k - t_j)/||t_k - t_j||>
        L = w_d sum_{pairs} huber(psi_D(s), psi_D(t)) + w_a sum_{triplets} huber(psi_A(s), psi_A(t))

    with ``huber(x, y) = (x - y)^2 / 2`` if ``|x - y| <= 1`` else ``|x - y| - 1/2``.

    What the reference computes (RKD.py:15-45), and this module too::

        d_ij    = sqrt(max(|x_i|^2 + |x_j|^2 - 2 x_i.x_j, 1e-12)),  d_ii = 0
        psi_D   = d / mean(d[d > 0])                   (teacher: under no_grad; student: the
                                                         gradient flows through its mean too)
        loss_d  = mean over all B^2 entries of smooth_l1(psi_D(s), psi_D(t))       (beta = 1)
        psi_A   = [<u_ij, u_ik>]_{i,j,k},  u_ij = normalize(x_j - x_i) (eps 1e-12; u_ii = 0)
        loss_a  = mean over all B^3 entries of smooth_l1(psi_A(s), psi_A(t))
        L       = 25 * loss_d + 50 * loss_a

    Departures from the paper: distances come from the expanded square clamped at ``1e-12``
    before the root, so two identical samples are ``1e-6`` apart and count among the "positive"
    distances of ``mu``; the diagonal's zero distances and the degenerate triplets (``j == i`` or
    ``k == i``, both sides 0) stay in the **means** (over ``B^2`` and ``B^3`` entries) that replace
    the paper's sums over distinct pairs and triplets. The weights ``w_d = 25``, ``w_a = 50`` are
    RKD.py:10 defaults, which ``train_student.py:206`` keeps; the whole loss is then weighted
    ``-b 1`` (scripts/run_cifar_distill.sh:17).

    Inputs: ``f_s`` ``[B, ...]``, ``f_t`` ``[B, ...]``, flattened to ``[B, D_s]`` and ``[B, D_t]``
    (the dimensions may differ). RepDistiller passes ``feat[-1]``, the pooled penultimate
    vectors (helper/loops.py:149-152). Output: a scalar. The teacher side is computed without
    gradient, as in the reference (RKD.py:20-23, 32-35).
    """

    def __init__(self, distance_weight: float = 25.0, angle_weight: float = 50.0) -> None:
        super().__init__()
        self.distance_weight = distance_weight  # w_d (RKD.py:10)
        self.angle_weight = angle_weight  # w_a (RKD.py:10)

    @full_precision
    def forward(self, f_s: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
        student = f_s.reshape(f_s.shape[0], -1)
        teacher = f_t.detach().reshape(f_t.shape[0], -1)
        with torch.no_grad():
            t_distance = normalized_distances(teacher)
            t_angle = angles(teacher)
        loss_d = F.smooth_l1_loss(normalized_distances(student), t_distance)  # mean_{i,j} huber
        loss_a = F.smooth_l1_loss(angles(student), t_angle)  # mean_{i,j,k} huber
        return self.distance_weight * loss_d + self.angle_weight * loss_a


@LOSS_REGISTRY.register("correlation_congruence")
class CorrelationCongruenceLoss(nn.Module):
    """CC as RepDistiller runs it: products of the absolute student-teacher differences of
    neighbouring samples in the batch.

    Paper: the congruence of the sample-to-sample correlation matrices::

        psi(F)_ij = k(F_i, F_j),  k a Gaussian RBF approximated by its Taylor expansion of order P
        L_CC = 1/B^2 * || psi(F_t) - psi(F_s) ||_F^2

    What the reference computes (CC.py:14-17, code its header credits to the paper's authors),
    and this module too::

        delta = |f_s - f_t|                                       elementwise, [B, D]
        L     = 1/(B-1) * sum_{i=0}^{B-2} sum_d delta_{i,d} * delta_{i+1,d}

    Departures from the paper: there is no kernel, no ``gamma`` and no Taylor order ``P`` at all,
    hence no defaults for them; no ``B x B`` matrix is formed; only consecutive pairs ``(i, i+1)``
    of the batch order enter, and the loss is the mean of ``B - 1`` sums over dimensions.
    (RepDistiller's own earlier reading of the paper, a Gram-matrix loss like SP, is left
    commented out in CC.py:20-42.)

    Inputs: ``f_s``, ``f_t``: ``[B, D]`` of one size. RepDistiller feeds
    ``LinearEmbed(d, 128)`` of ``feat[-1]`` for each side: a plain ``nn.Linear`` with bias and
    **no** normalisation (models/util.py:185-194, train_student.py:211-218,
    helper/loops.py:162-165); both embeddings are trained. So, unlike the other losses here,
    **the teacher side is not detached**: its gradient trains the teacher's embedding (the teacher
    backbone's features are detached before it, helper/loops.py:115-117). Weight ``-b 0.02``
    (scripts/run_cifar_distill.sh:13). Output: a scalar.
    """

    @full_precision
    def forward(self, f_s: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
        delta = torch.abs(f_s - f_t)  # |s_i - t_i|
        # mean_i sum_d delta_{i,d} delta_{i+1,d}   (CC.py:15-16)
        return torch.mean((delta[:-1] * delta[1:]).sum(1))
