"""FSP: Yim, Joo, Bae & Kim, "A Gift from Knowledge Distillation: Fast Optimization, Network
Minimization and Transfer Learning", CVPR 2017.

Computes what RepDistiller's ``distiller_zoo/FSP.py`` (commit b84f547) computes.
"""

from collections.abc import Sequence

import torch
from torch import nn

from ._feature_maps import check_same_length, full_precision, pool_to_smaller_map
from .build import LOSS_REGISTRY


def fsp_matrix(bottom: torch.Tensor, top: torch.Tensor) -> torch.Tensor:
    """The flow of solution procedure between two maps of one network: ``[B, C_top, C_bottom]``
    with ``G[b, j, i] = mean_{h,w} top[b, j, h, w] * bottom[b, i, h, w]``.

    ``bottom`` ``[B, C_bottom, H, W]`` and ``top`` ``[B, C_top, H', W']``; the larger map is
    average-pooled to the smaller one's ``H x H`` first (FSP.py:33-39). The paper sums over the
    ``H x W`` positions and divides by ``H x W``: the same mean.
    """
    bottom, top = pool_to_smaller_map(bottom, top)
    # G_ij = 1/(h w) sum_{s,t} F^1_{s,t,i} F^2_{s,t,j}   (paper, Eq. 1)
    return torch.einsum("bihw,bjhw->bji", bottom, top) / (bottom.shape[2] * bottom.shape[3])


@LOSS_REGISTRY.register("fsp")
class FSPLoss(nn.Module):
    """FSP: match the student's FSP matrices between consecutive maps to the teacher's.

    Paper (Eq. 2): ``L = 1/N sum_x sum_i lambda_i ||G_i^T(x) - G_i^S(x)||_2^2`` with equal
    ``lambda_i``. What the reference computes (FSP.py:19-30), and this module too: for consecutive
    maps ``(f_0, f_1), (f_1, f_2), ...`` of each network, the FSP matrices
    (:func:`fsp_matrix`), then per pair the **mean** of ``(G_s - G_t)^2`` over the batch and
    both channel axes, a list the caller sums (helper/pretrain.py:69-71). RepDistiller passes
    ``feat[:-1]``, the stem and the stage outputs (after their ReLU), and requires the two
    networks' maps to have the same channel counts (FSP.py:13-17): only same-style pairs, a
    ``ValueError`` otherwise (as the reference's). Teacher maps are detached here.

    Inputs: ``g_s``, ``g_t``, sequences of ``[B, C_k, H_k, W_k]`` maps of one length. Output: the
    list of ``len - 1`` per-pair losses.
    """

    @staticmethod
    def check_channels(s_channels: Sequence[int], t_channels: Sequence[int]) -> None:
        """The reference's check at build time (FSP.py:13-17)."""
        if list(s_channels) != list(t_channels):
            raise ValueError(
                f"FSP needs student and teacher maps with the same channels; got "
                f"{list(s_channels)} and {list(t_channels)} (a pair of one family and width, "
                "as the CRD paper's FSP column)"
            )

    @full_precision
    def forward(self, g_s: Sequence[torch.Tensor], g_t: Sequence[torch.Tensor]) -> list:
        check_same_length(g_s, g_t, "fsp")
        self.check_channels([f.shape[1] for f in g_s], [f.shape[1] for f in g_t])
        g_t = [f.detach() for f in g_t]
        losses = []
        for i in range(len(g_s) - 1):
            fsp_s, fsp_t = fsp_matrix(g_s[i], g_s[i + 1]), fsp_matrix(g_t[i], g_t[i + 1])
            losses.append((fsp_s - fsp_t).pow(2).mean())
        return losses
