"""Entropic optimal transport between two sets of embeddings (the primal form of the Wasserstein
distance), solved by Sinkhorn iterations in the log domain. WCoRD's LCKT uses it between the
teacher and student embeddings of a mini-batch; any distiller can build it as ``"sinkhorn_ot"``."""

import math

import torch
import torch.nn.functional as F
from torch import nn

from .build import LOSS_REGISTRY

#: Ground costs ``pairwise_cost`` knows.
COSTS = ("cosine", "l2")


def _check_cost(kind: str) -> None:
    if kind not in COSTS:
        raise ValueError(f"OT cost must be one of {COSTS}, not {kind!r}")


def pairwise_cost(x: torch.Tensor, y: torch.Tensor, kind: str = "cosine") -> torch.Tensor:
    """Ground cost between every row of ``x`` ``[n, D]`` and of ``y`` ``[m, D]`` -> ``[n, m]``.

    ``"cosine"``: ``1 - cos(x_i, y_j)``, in [0, 2]; ``"l2"``: ``||x_i - y_j||^2``.
    """
    _check_cost(kind)
    if kind == "cosine":
        return 1 - F.normalize(x, dim=1) @ F.normalize(y, dim=1).t()
    # The expanded square can dip below 0 by rounding when x_i == y_j.
    sq = x.pow(2).sum(1, keepdim=True) + y.pow(2).sum(1) - 2 * x @ y.t()
    return sq.clamp_min(0)


@torch.no_grad()
def sinkhorn_plan(cost: torch.Tensor, epsilon: float, iterations: int) -> torch.Tensor:
    """The entropic OT plan ``[n, m]`` of ``cost`` ``[n, m]`` between uniform marginals.

    Solves ``min_P <P, C> - epsilon H(P)`` s.t. ``P 1 = 1/n``, ``P^T 1 = 1/m`` by alternating
    updates of the dual potentials ``f`` ``[n]`` and ``g`` ``[m]``::

        f_i = eps (log a_i - logsumexp_j((g_j - C_ij) / eps))
        g_j = eps (log b_j - logsumexp_i((f_i - C_ij) / eps))
        P_ij = exp((f_i + g_j - C_ij) / eps)

    Working with potentials instead of the kernel ``exp(-C / eps)`` keeps small ``eps`` from
    underflowing. A fixed number of iterations (no convergence test) costs no host sync; the
    column marginals are exact after the last update, the row marginals converge.
    """
    n, m = cost.shape
    log_a, log_b = -math.log(n), -math.log(m)
    f = cost.new_zeros(n)
    g = cost.new_zeros(m)
    for _ in range(iterations):
        f = epsilon * (log_a - torch.logsumexp((g[None, :] - cost) / epsilon, dim=1))
        g = epsilon * (log_b - torch.logsumexp((f[:, None] - cost) / epsilon, dim=0))
    return torch.exp((f[:, None] + g[None, :] - cost) / epsilon)


@LOSS_REGISTRY.register("sinkhorn_ot")
class SinkhornOTLoss(nn.Module):
    """``sum_ij P_ij C_ij``: the transport cost of the entropic plan ``P`` between ``x`` and ``y``.

    ``P`` (uniform marginals, :func:`sinkhorn_plan`) is computed without gradient and treated as a
    constant, so gradients flow through the cost ``C`` only (:func:`pairwise_cost`).

    Args:
        epsilon: entropic regularisation, in units of the cost.
        iterations: Sinkhorn iterations.
        cost: ``"cosine"`` or ``"l2"``.
    """

    def __init__(self, epsilon: float = 0.05, iterations: int = 100, cost: str = "cosine") -> None:
        super().__init__()
        _check_cost(cost)
        self.epsilon = epsilon
        self.iterations = iterations
        self.cost = cost

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """``x`` ``[n, D]``, ``y`` ``[m, D]`` -> scalar."""
        cost = pairwise_cost(x, y, self.cost)
        plan = sinkhorn_plan(cost.detach(), self.epsilon, self.iterations)
        return (plan * cost).sum()
