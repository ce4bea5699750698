"""Neuron selectivity transfer: Huang & Wang, "Like What You Like: Knowledge Distill via Neuron
Selectivity Transfer", 2017.

Computes what RepDistiller's ``distiller_zoo/NST.py`` (commit b84f547) computes.
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ._feature_maps import check_same_length, full_precision, pool_to_smaller_map
from .build import LOSS_REGISTRY


def polynomial_kernel(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """``k(x, y) = (x^T y)^2`` between the rows of ``a`` ``[B, C_a, N]`` and ``b`` ``[B, C_b, N]``.

    Returns ``[B, C_b, C_a]`` with ``[n, j, i] = (b_nj . a_ni)^2``, the layout of NST.py:38-42
    (which broadcasts to ``[B, C_b, C_a, N]`` and sums; a batched matmul gives the same numbers
    without that tensor). Only its mean is used, so the layout does not change the loss.
    """
    return torch.bmm(b, a.transpose(1, 2)).pow(2)  # (x^T y + c)^d with d = 2, c = 0


@LOSS_REGISTRY.register("nst")
class NSTLoss(nn.Module):
    """NST: squared MMD between the sets of per-channel activation maps of student and teacher.

    Paper: each channel's map ``f^k`` (a vector over the ``H*W`` positions) is L2-normalised,
    and the channels of one sample are samples of a distribution compared by MMD::

        MMD^2 = 1/C_t^2 sum_{i,i'} k(t_i, t_i') + 1/C_s^2 sum_{j,j'} k(s_j, s_j')
                - 2/(C_t C_s) sum_{i,j} k(t_i, s_j)
        L_NST = H(y, p_s) + lambda/2 * MMD^2,  with e.g. the polynomial kernel (x^T y + c)^d

    What the reference computes for one pair (NST.py:16-42), and this module too::

        f       <- f viewed as [B, C, H*W], each channel's map L2-normalised (eps 1e-12)
        k(x, y) = (x^T y)^2                                   polynomial kernel, d = 2, c = 0
        l       = mean k(t, t)  +  mean k(s, s)  -  2 mean k(s, t)

    each mean over all ``B x C x C'`` entries: the biased MMD^2 of every sample, **averaged over
    the batch**. The teacher-teacher term is a constant, detached (NST.py:33); it is kept
    (``full_loss = True``, NST.py:31), so the loss is the full MMD^2, 0 when the maps agree.
    There is no ``lambda/2``: the weight is applied outside, ``-b 50``
    (scripts/run_cifar_distill.sh:27). As in AT, when the heights differ the larger map is
    average-pooled to ``H x H`` of the smaller one first (NST.py:17-23).

    Inputs: ``g_s``, ``g_t``, sequences of ``[B, C_s, H, W]`` and ``[B, C_t, H', W']`` maps (the
    channel counts may differ). Output: the **list** of per-pair losses (NST.py:13-14);
    RepDistiller's ``train_student.py`` passes ``feat[1:-1]`` (post-ReLU stage outputs,
    ``preact=False``) and sums the list (helper/loops.py:139-143). Teacher maps are detached here;
    the reference detaches them outside (helper/loops.py:115-117).
    """

    @staticmethod
    def pair_loss(f_s: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
        f_s, f_t = pool_to_smaller_map(f_s, f_t.detach())
        f_s = F.normalize(f_s.reshape(f_s.shape[0], f_s.shape[1], -1), dim=2)  # f^k / ||f^k||_2
        f_t = F.normalize(f_t.reshape(f_t.shape[0], f_t.shape[1], -1), dim=2)
        # MMD^2 = mean k(t, t) + mean k(s, s) - 2 mean k(s, t)   (NST.py:33-34)
        return (
            polynomial_kernel(f_t, f_t).mean().detach()
            + polynomial_kernel(f_s, f_s).mean()
            - 2 * polynomial_kernel(f_s, f_t).mean()
        )

    @full_precision
    def forward(
        self, g_s: Sequence[torch.Tensor], g_t: Sequence[torch.Tensor]
    ) -> list[torch.Tensor]:
        check_same_length(g_s, g_t, "nst")
        return [self.pair_loss(f_s, f_t) for f_s, f_t in zip(g_s, g_t, strict=True)]
