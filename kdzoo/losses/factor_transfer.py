"""FT: Kim, Park & Kwak, "Paraphrasing Complex Network: Network Compression via Factor Transfer",
NeurIPS 2018.

Computes what RepDistiller's ``distiller_zoo/FT.py`` (commit b84f547) computes.
"""

import torch
import torch.nn.functional as F
from torch import nn

from ._feature_maps import full_precision, pool_to_smaller_map
from .build import LOSS_REGISTRY


@LOSS_REGISTRY.register("factor_transfer")
class FactorTransferLoss(nn.Module):
    """FT's factor loss: the student's factor (its translator's output) against the teacher's (its
    paraphraser's encoder output).

    Paper: ``L_FT = || F_T / ||F_T||_2 - F_S / ||F_S||_2 ||_p`` with ``p = 1``, ``F`` the
    vectorised factors. What the reference computes (FT.py:14-31), and this module too: the larger
    map is average-pooled to the smaller one's ``H x H`` (heights compared), each factor is reduced
    over channels to ``mean_c f^p1`` (``p1 = 2``: one value per position, as AT's attention map),
    flattened and L2-normalised per sample (``F.normalize``, eps ``1e-12``), and the loss is the
    **mean** over batch and positions of ``|difference|`` for ``p2 = 1`` (else of
    ``difference^p2``, as the reference writes it). The channel reduction and the mean (not the
    paper's norm of the whole factor) are the reference's. The teacher's factor is detached here.

    Inputs: ``f_s`` ``[B, C_s, H_s, W_s]``, ``f_t`` ``[B, C_t, H_t, W_t]`` (channels may differ).
    Output: a scalar.
    """

    def __init__(self, p1: float = 2, p2: float = 1) -> None:
        super().__init__()
        self.p1 = p1
        self.p2 = p2

    def factor(self, f: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W] -> [B, H*W]``: ``mean_c f^p1``, each row of unit L2 norm (FT.py:30-31)."""
        return F.normalize(f.pow(self.p1).mean(1).reshape(f.shape[0], -1))

    @full_precision
    def forward(self, f_s: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
        f_s, f_t = pool_to_smaller_map(f_s, f_t.detach())  # FT.py:18-24
        # ||F_T/||F_T||_2 - F_S/||F_S||_2||_p, a mean over elements for p = 1   (paper; FT.py:25-28)
        diff = self.factor(f_s) - self.factor(f_t)
        if self.p2 == 1:
            return diff.abs().mean()
        return diff.pow(self.p2).mean()
