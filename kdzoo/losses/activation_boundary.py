"""AB: Heo, Lee, Yun & Choi, "Knowledge Transfer via Distillation of Activation Boundaries Formed
by Hidden Neurons", AAAI 2019.

Computes what RepDistiller's ``distiller_zoo/AB.py`` (commit b84f547) computes.
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from ._feature_maps import check_same_length, full_precision
from .build import LOSS_REGISTRY


@LOSS_REGISTRY.register("ab")
class ABLoss(nn.Module):
    """AB: push each pre-ReLU student neuron (through its connector) to the teacher's side of the
    activation boundary, by at least ``margin``.

    Paper (the alternative loss, with margin ``mu``):
    ``L = || rho(mu 1 - r(S)) * 1[T > 0] + rho(mu 1 + r(S)) * 1[T <= 0] ||_2^2``, ``rho`` the ReLU,
    ``r(S)`` the connector's output from the student's pre-ReLU map, ``T`` the teacher's. What the
    reference computes (AB.py:16-29), and this module too: per layer ``i`` of ``n``, that squared
    norm summed over the batch, channels and positions, times ``2^(i - n + 1)`` (the deepest layer
    1, each shallower one half the next), divided by the batch size, times ``3 / 1000``; a list the
    caller sums (helper/pretrain.py:62-65). Its per-element form
    ``(s + mu)^2 [s > -mu, t <= 0] + (s - mu)^2 [s <= mu, t > 0]`` is the same number, and so is
    its gradient. Teacher maps are detached here.

    Inputs: ``g_s``, ``g_t``, sequences of one length of ``[B, C_k, H_k, W_k]`` maps, pair ``k`` of
    one shape (the connectors map the student's to the teacher's). Output: the list of ``n``
    per-layer losses.
    """

    def __init__(self, margin: float = 1.0) -> None:
        super().__init__()
        self.margin = margin

    @full_precision
    def forward(self, g_s: Sequence[torch.Tensor], g_t: Sequence[torch.Tensor]) -> list:
        check_same_length(g_s, g_t, "ab")
        n, batch_size = len(g_s), g_s[0].shape[0]
        losses = []
        for i, (s, t) in enumerate(zip(g_s, g_t, strict=True)):
            if s.shape != t.shape:
                raise ValueError(
                    f"ab: layer {i}: student map {tuple(s.shape)} and teacher map "
                    f"{tuple(t.shape)}; the connector must give the teacher's shape"
                )
            t = t.detach()
            # ||rho(mu - r(S)) 1[T > 0] + rho(mu + r(S)) 1[T <= 0]||_2^2   (paper; AB.py:26-29)
            hinge = torch.where(t > 0, F.relu(self.margin - s), F.relu(self.margin + s))
            weight = 2.0 ** (i - n + 1)  # AB.py:13
            losses.append(weight * hinge.pow(2).sum() / batch_size / 1000 * 3)  # AB.py:19-23
        return losses
