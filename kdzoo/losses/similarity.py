"""Losses that match batch similarity matrices: similarity-preserving KD (Tung & Mori, ICCV 2019)
and probabilistic knowledge transfer (Passalis & Tefas, ECCV 2018).

Each computes what RepDistiller's ``distiller_zoo/SP.py`` / ``PKT.py`` (commit b84f547) computes.
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ._feature_maps import check_same_length, full_precision
from .build import LOSS_REGISTRY


@LOSS_REGISTRY.register("similarity_preserving")
class SimilarityPreservingLoss(nn.Module):
    """SP: match the row-normalised ``B x B`` Gram matrices of student and teacher activations.

    Paper, for one layer pair (summed over pairs, weighted by gamma)::

        G~ = Q Q^T,  Q = A reshaped [B, C*H*W];  G[i, :] = G~[i, :] / ||G~[i, :]||_2
        L_SP = 1/B^2 * || G_t - G_s ||_F^2

    The reference (SP.py:16-30) computes exactly this: row-wise L2 normalisation
    (``F.normalize``, eps 1e-12; the commented-out alternative that divides by the global norm,
    SP.py:22 and 25, is not used), then the **sum** of squared differences divided by ``B^2``
    (the mean over the ``B^2`` entries), with no ``1/2``. So the per-pair reduction is the
    paper's; what differs is that RepDistiller distils a single layer pair (below).

    Inputs: ``g_s``, ``g_t``, sequences of ``[B, ...]`` activations (any trailing shape; sizes may
    differ between student and teacher). Output: the **list** of per-pair losses (SP.py:13-14).
    The reference returns each as a shape ``[1]`` tensor (``.view(-1, 1).sum(0)``); here each is
    a 0-dim scalar of the same value. RepDistiller's ``train_student.py`` passes the one pair
    ``[feat[-2]]`` (the last stage's post-ReLU map, helper/loops.py:144-148), sums the list and
    weights it ``-b 3000`` (scripts/run_cifar_distill.sh:11).

    Teacher activations are detached here; the reference detaches them outside
    (helper/loops.py:115-117).
    """

    @staticmethod
    def pair_loss(f_s: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
        bsz = f_s.shape[0]
        f_s = f_s.reshape(bsz, -1)
        f_t = f_t.detach().reshape(bsz, -1)
        g_s = F.normalize(f_s @ f_s.t())  # G_s = row_normalize(Q_s Q_s^T)   (SP.py:21-23)
        g_t = F.normalize(f_t @ f_t.t())  # G_t = row_normalize(Q_t Q_t^T)   (SP.py:24-26)
        diff = g_t - g_s
        return (diff * diff).sum() / (bsz * bsz)  # ||G_t - G_s||_F^2 / B^2   (SP.py:28-29)

    @full_precision
    def forward(
        self, g_s: Sequence[torch.Tensor], g_t: Sequence[torch.Tensor]
    ) -> list[torch.Tensor]:
        check_same_length(g_s, g_t, "similarity_preserving")
        return [self.pair_loss(f_s, f_t) for f_s, f_t in zip(g_s, g_t, strict=True)]


@LOSS_REGISTRY.register("pkt")
class PKTLoss(nn.Module):
    """PKT: KL divergence between the teacher's and the student's cosine-similarity "probabilities".

    Paper: a cosine kernel turned into conditional probabilities, and their KL divergence::

        K(a, b) = 1/2 (a^T b / (||a|| ||b||) + 1)                       in [0, 1]
        p_{i|j} = K(t_i, t_j) / sum_{k != j} K(t_k, t_j),  q_{i|j} likewise on the student
        L_PKT   = sum_i sum_{j != i} p_{j|i} log(p_{j|i} / q_{j|i})

    What the reference computes (PKT.py:17-42), and this module too, with ``eps = 1e-7``::

        x_i <- x_i / (||x_i||_2 + eps);  NaN entries -> 0                  (PKT.py:19-25)
        K   = (X X^T + 1) / 2                                             (PKT.py:28-33)
        P   = K / K.sum(dim=1)   row-wise, the diagonal K_ii included     (PKT.py:36-37)
        L   = mean_{i,j} P^t_ij log((P^t_ij + eps) / (P^s_ij + eps))      (PKT.py:40)

    Departures from the paper: the sample itself (the diagonal, ``K_ii = 1``) stays in every row
    and its normaliser; the KL terms are **averaged** over all ``B^2`` entries (the sum divided
    by ``B^2``), not summed; ``eps`` guards both the norms and the ratio inside the log.

    Inputs: ``f_s`` ``[B, D_s]``, ``f_t`` ``[B, D_t]`` (the dimensions may differ). Output: a
    scalar. RepDistiller passes ``feat[-1]``, the pooled penultimate vectors, directly
    (helper/loops.py:153-156) and weights the loss ``-b 30000`` (scripts/run_cifar_distill.sh:19).
    Teacher features are detached here; the reference detaches them outside
    (helper/loops.py:115-117).
    """

    def __init__(self, eps: float = 1e-7) -> None:
        super().__init__()
        self.eps = eps  # PKT.py:17

    def _probabilities(self, x: torch.Tensor) -> torch.Tensor:
        x = x / (torch.sqrt((x**2).sum(dim=1, keepdim=True)) + self.eps)  # x / (||x|| + eps)
        x = torch.where(torch.isnan(x), torch.zeros_like(x), x)  # NaN -> 0 (PKT.py:21, 25)
        k = (x @ x.t() + 1.0) / 2.0  # K = (cos + 1) / 2, in [0, 1]
        return k / k.sum(dim=1, keepdim=True)  # P_ij = K_ij / sum_j K_ij

    @full_precision
    def forward(self, f_s: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
        p_s = self._probabilities(f_s)
        p_t = self._probabilities(f_t.detach())
        eps = self.eps
        # mean_{i,j} P^t_ij log((P^t_ij + eps) / (P^s_ij + eps))
        return torch.mean(p_t * torch.log((p_t + eps) / (p_s + eps)))
