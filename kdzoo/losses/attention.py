"""Attention transfer: Zagoruyko & Komodakis, "Paying More Attention to Attention", ICLR 2017.

Computes what RepDistiller's ``distiller_zoo/AT.py`` (commit b84f547) computes.
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ._feature_maps import check_same_length, full_precision, pool_to_smaller_map
from .build import LOSS_REGISTRY


@LOSS_REGISTRY.register("attention_transfer")
class AttentionTransferLoss(nn.Module):
    """AT: match the L2-normalised spatial attention maps of student and teacher, layer by layer.

    Paper (its eq. for the AT term, summed over the chosen layer pairs j)::

        Q^j = vec(F(A^j)),  F(A) = sum_c |A_c|^p  (p = 2)
        L_AT = beta/2 * sum_j || Q_s^j / ||Q_s^j||_2 - Q_t^j / ||Q_t^j||_2 ||_p

    What the reference computes for one pair (AT.py:18-29), and this module too::

        a(f) = normalize_L2( mean_c f^p  viewed as [B, H*W] )      (eps 1e-12, per sample)
        l    = mean_{b, hw} (a(f_s) - a(f_t))^2

    Inputs: ``g_s``, ``g_t``, sequences of ``[B, C_s, H, W]`` and ``[B, C_t, H', W']`` maps (the
    channel counts may differ). Output: the **list** of per-pair losses (AT.py:15-16), each a
    scalar; RepDistiller's ``train_student.py`` passes ``feat[1:-1]`` of ``model(x, is_feat=True,
    preact=False)`` (helper/loops.py:134-138: the post-ReLU outputs of the stages between the stem
    and the pooled vector), sums the list and weights the sum with ``-b 1000``
    (scripts/run_cifar_distill.sh:9; KD weight 0, CE weight 1).

    Where the reference departs from the paper:

    - Channel **mean** of ``f^p``, not the sum of ``|f|^p``: the factor ``1/C`` cancels under the
      normalisation (up to the 1e-12 eps), and ``abs`` changes nothing for even ``p``.
    - The **mean of the squared** difference over batch and positions, not the (unsquared) 2-norm;
      there is no ``beta/2`` inside (the weight is applied outside, as given on the command line).
    - When the heights differ the larger map is average-pooled to ``H x H`` of the smaller one
      (AT.py:19-25): an addition for teacher/student pairs at different resolutions.

    Teacher maps are detached here; the reference gets the same by computing teacher features
    under ``no_grad`` and detaching them (helper/loops.py:115-117).
    """

    def __init__(self, p: int = 2) -> None:
        super().__init__()
        self.p = p  # AT.py:11, train_student.py:200 builds Attention() with p = 2

    def attention_map(self, f: torch.Tensor) -> torch.Tensor:
        """``[B, C, H, W]`` -> ``[B, H*W]``: ``normalize(mean_c f^p)``, unit L2 norm per sample."""
        return F.normalize(f.pow(self.p).mean(1).view(f.size(0), -1))  # AT.py:29

    def pair_loss(self, f_s: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
        f_s, f_t = pool_to_smaller_map(f_s, f_t.detach())
        # mean_{b,hw} (Q_s/|Q_s| - Q_t/|Q_t|)^2  (AT.py:26)
        return (self.attention_map(f_s) - self.attention_map(f_t)).pow(2).mean()

    @full_precision
    def forward(
        self, g_s: Sequence[torch.Tensor], g_t: Sequence[torch.Tensor]
    ) -> list[torch.Tensor]:
        check_same_length(g_s, g_t, "attention_transfer")
        return [self.pair_loss(f_s, f_t) for f_s, f_t in zip(g_s, g_t, strict=True)]
