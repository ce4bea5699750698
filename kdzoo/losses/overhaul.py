"""OFD: Heo, Kim, Yun, Park, Kwak & Choi, "A Comprehensive Overhaul of Feature Distillation",
ICCV 2019.

Computes what mdistiller (commit a08d46f, ``mdistiller/distillers/OFD.py``) computes: the margin
of each teacher channel from the BatchNorm before its ReLU (``init_ofd_modules``, OFD.py:90-109),
the partial L2 distance to the teacher's map clipped at that margin (``feat_loss``, OFD.py:11-19)
and its sum over stages, each stage weighted half as much as the next (``ofd_loss``,
OFD.py:142-161). The authors' code (``CIFAR-100/distiller.py`` of clovaai/overhaul-distillation)
computes the same numbers, written as ``mse_loss(s, max(t, m)) * ((s > max(t, m)) | (t > 0))``
summed, then divided by the batch size in its training loop; mdistiller's three masked terms
are that product expanded (with ``m <= 0``), and its ``.mean(dim=0).sum()`` is the same division.
"""

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ._feature_maps import full_precision, pool_to_smaller_map
from .build import LOSS_REGISTRY

#: Below this probability of a negative response, a channel's margin is ``-3 sigma`` instead of
#: the expectation (OFD.py:98, 107; the authors' ``get_margin_from_BN``).
MIN_NEGATIVE_MASS = 0.001


def bn_margin(weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """The margin of each channel of a BatchNorm's output: ``[C]`` weight and bias -> ``[C]``.

    The BN's output of channel ``c`` is taken as ``N(mu, sigma^2)`` with ``mu = bias_c`` and
    ``sigma = |weight_c|``; its margin is the expectation of its negative responses,
    ``E[x | x < 0]``, or ``-3 sigma`` where fewer than ``MIN_NEGATIVE_MASS`` of them are negative.
    Computed in float64 (the reference uses Python floats and scipy's normal cdf) and returned
    in ``weight``'s dtype (the reference's ``torch.FloatTensor``: float32). Always ``<= 0``.

    A zero ``weight`` makes the reference divide by zero; here it gives the limit, ``min(bias, 0)``
    (``bias`` if negative, else ``-3 * 0``).
    """
    sigma = weight.detach().double().abs()
    mu = bias.detach().double()
    alpha = -mu / sigma
    mass = torch.special.ndtr(alpha)  # P(x < 0) = Phi(-mu / sigma)
    pdf = torch.exp(-0.5 * alpha.square()) / math.sqrt(2 * math.pi)  # phi(mu / sigma)
    # m = E[x | x < 0] = mu - sigma phi(mu / sigma) / Phi(-mu / sigma): the paper's margin
    expected = mu - sigma * pdf / mass
    margin = torch.where(mass > MIN_NEGATIVE_MASS, expected, -3 * sigma)
    return margin.to(weight.dtype)


def partial_l2(source: torch.Tensor, target: torch.Tensor, margin: torch.Tensor) -> torch.Tensor:
    """OFD's partial L2 distance between the student's transformed map and the teacher's, summed
    over channels and positions and divided by the batch size.

    ``source`` (the student's map through its connector) and ``target`` (the teacher's map before
    its ReLU): ``[B, C, H, W]``; ``margin``: ``[1, C, 1, 1]`` or ``[C]`` (``<= 0``) -> scalar.

    The teacher's map goes through the paper's margin ReLU, ``max(t, m)``; an element counts
    unless the student is already below a non-positive target (both would be zero after a ReLU),
    the paper's partial L2 distance::

        d_p(T, S) = sum_i 0             if S_i <= T_i <= 0
                          (T_i - S_i)^2 otherwise,     T = max(t, m)
    """
    margin = margin.to(source).reshape(1, -1, 1, 1)
    target = torch.maximum(target, margin)  # sigma_m(t) = max(t, m): the margin ReLU
    # d_p: (T - S)^2 where S > T or T > 0, summed, over the batch size
    counted = (source > target) | (target > 0)
    squared = F.mse_loss(source, target, reduction="none")
    return (squared * counted).sum() / source.shape[0]


@LOSS_REGISTRY.register("ofd")
class OFDLoss(nn.Module):
    """OFD's loss over the distilled stages: ``sum_i d_p(t_i, s_i; m_i) / 2^(n - 1 - i)``.

    ``margins``: one ``[C_i]`` tensor per stage (:func:`bn_margin` of the teacher's BatchNorms
    before the stages' last ReLU), kept as buffers ``margin0``, ``margin1``, ... shaped
    ``[1, C_i, 1, 1]``; they travel with the module (device, checkpoints).

    ``forward(g_s, g_t)``: the ``n`` student maps already through their connectors,
    ``[B, C_i, H_i, W_i]``, and the teacher's maps before their ReLU, ``[B, C_i, H'_i, W'_i]``
    (detached here) -> scalar. Where the sizes differ the larger map is average-pooled to the
    smaller: the reference pools the teacher's map to the student's size (``adaptive_avg_pool2d``,
    OFD.py:156-158), which is the same on every shipped pair (the teacher's map is never the
    smaller there). The last stage weighs 1, each earlier one half the next (OFD.py:160).
    """

    def __init__(self, margins: Sequence[torch.Tensor]) -> None:
        super().__init__()
        self.num_stages = len(margins)
        for i, margin in enumerate(margins):
            self.register_buffer(f"margin{i}", margin.detach().clone().reshape(1, -1, 1, 1))

    def margins(self) -> list[torch.Tensor]:
        """The ``[1, C_i, 1, 1]`` margin buffers, in stage order."""
        return [getattr(self, f"margin{i}") for i in range(self.num_stages)]

    @full_precision
    def forward(self, g_s: Sequence[torch.Tensor], g_t: Sequence[torch.Tensor]) -> torch.Tensor:
        n = self.num_stages
        if len(g_s) != n or len(g_t) != n:
            raise ValueError(f"OFDLoss has {n} margins, got {len(g_s)} and {len(g_t)} maps")
        total = 0
        for i, (f_s, f_t, margin) in enumerate(zip(g_s, g_t, self.margins(), strict=True)):
            f_s, f_t = pool_to_smaller_map(f_s, f_t.detach())
            # L_distill = sum_i d_p(sigma_m(F_t^i), r(F_s^i)) / 2^(n - 1 - i)
            total = total + partial_l2(f_s, f_t, margin) / 2 ** (n - 1 - i)
        return total
