"""A contrastive loss on the scores of a 1-Lipschitz critic: the dual (Kantorovich-Rubinstein) form
of the Wasserstein distance between the joint distribution of (teacher, student) embeddings and the
product of their marginals, as WCoRD's GCKT uses it (Chen et al., CVPR 2021).

``W(P, Q) = sup_{||g||_L <= 1} E_P[g(t, s)] - E_Q[g(t, s)]``: pairs of the same sample are drawn
from P, pairs with a memory-bank negative from Q. Only the paper's abstract was read; the critic's
form, how the constraint is enforced and the objective on the scores are options (see
:class:`WassersteinCriticLoss`).
"""

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils import parametrize
from torch.nn.utils.parametrizations import spectral_norm

from kdzoo.memory import gather_scores
from kdzoo.utils import comm

from .build import LOSS_REGISTRY

CRITICS = ("inner", "mlp")
CRITIC_INPUTS = ("product", "concat")
LIPSCHITZ = ("spectral_norm", "gradient_penalty")
OBJECTIVES = ("infonce", "kantorovich")
SIDES = ("student", "teacher")


def _check(what: str, value: str, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise ValueError(f"{what} must be one of {choices}, not {value!r}")


class Critic(nn.Module):
    """``g(t, s)``: one score per (teacher, student) embedding pair.

    ``forward(teacher, student)``: ``[..., D]`` each, broadcast against each other -> ``[...]``.
    """

    def bank_scores(
        self, anchor: torch.Tensor, bank: torch.Tensor, idx: torch.Tensor, anchor_side: str
    ) -> torch.Tensor:
        """Scores of each anchor ``[B, D]`` with the bank rows ``[N, D]`` it indexes (``idx``
        ``[B, M]``) -> ``[B, M]``. ``anchor_side`` says which argument of ``g`` the anchor is; the
        bank holds embeddings of the other side."""
        keys = bank[idx].to(anchor.dtype)  # [B, M, D]
        anchor = anchor[:, None]
        return self(keys, anchor) if anchor_side == "student" else self(anchor, keys)


class InnerProductCritic(Critic):
    """``g(t, s) = <t, s>``. On L2-normalised embeddings it is 1-Lipschitz in each argument with
    no constraint to enforce, and its bank scores are exactly CRD's (before ``exp(. / T)``)."""

    def forward(self, teacher: torch.Tensor, student: torch.Tensor) -> torch.Tensor:
        return (teacher * student).sum(-1)

    def bank_scores(
        self, anchor: torch.Tensor, bank: torch.Tensor, idx: torch.Tensor, anchor_side: str
    ) -> torch.Tensor:
        # Symmetric in its arguments, so the side does not matter; gather_scores never holds the
        # B x M x D gathered rows.
        return gather_scores(anchor, bank, idx)


class _SpectralBound(nn.Module):
    """Parametrisation ``W -> W / b(W)``, ``b`` an upper bound of the largest singular value.

    With ``G = W W^T`` (the smaller Gram matrix, ``n x n``) and ``p = 2^k``,
    ``b^2 = tr(G^p)^(1/p)`` lies between ``lambda_max(G) = sigma_max^2`` and ``n^(1/p)`` times it,
    so ``||W / b||_2`` is in ``[n^(-1/2p), 1]``: never above 1, and within 0.07% of it for
    ``n <= 256`` and ``k = 12``. ``G^p`` comes from ``k`` squarings, each rescaled to trace 1 (the
    scales are summed in the log domain), so it only takes matrix products: an SVD would be exact
    but synchronises the host with the GPU, and is slow on a busy CPU.
    """

    def __init__(self, squarings: int = 12) -> None:
        super().__init__()
        self.squarings = squarings

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        rows, cols = weight.shape
        gram = weight @ weight.t() if rows <= cols else weight.t() @ weight
        # log tr(G^p) / p = sum_i 2^-i log t_i + 2^-k log tr(H_k), t_i the trace of the i-th
        # squaring H_i before it is rescaled.
        log_bound = weight.new_zeros(())
        for i in range(self.squarings):
            trace = gram.diagonal().sum()
            log_bound = log_bound + torch.log(trace) / 2**i
            gram = gram / trace
            gram = gram @ gram
        log_bound = log_bound + torch.log(gram.diagonal().sum()) / 2**self.squarings
        return weight * torch.exp(-log_bound / 2)


def _normalise_spectrum(layer: nn.Linear, power_iterations: int) -> None:
    """Divide ``layer.weight`` by its largest singular value: by a certified upper bound
    (``power_iterations == 0``) or by torch's estimate after that many power iterations per
    training forward (SN-GAN)."""
    if power_iterations > 0:
        spectral_norm(layer, n_power_iterations=power_iterations)
    else:
        parametrize.register_parametrization(layer, "weight", _SpectralBound())


class MLPCritic(Critic):
    """``g(t, s) = w_2 . relu(W_1 x + b_1)`` with ``x = t * s`` (``"product"``) or ``[t; s]``
    (``"concat"``); ``[..., D]`` pairs -> ``[...]``.

    With ``spectral=True`` both weights are divided by their largest singular value, so ``g`` is
    1-Lipschitz in ``x`` (ReLU is 1-Lipschitz); on unit-norm embeddings ``t * s`` is 1-Lipschitz
    in each of ``t`` and ``s``, ``[t; s]`` jointly. ``power_iterations == 0`` divides by a
    certified upper bound (:class:`_SpectralBound`: norms in [0.999, 1]); ``> 0`` by torch's
    power-iteration estimate, which lags behind moving weights: measured, one iteration per step
    let a critic weight's norm reach up to 1.6 within a few SGD steps (docs/decisions.md).
    Cost: the hidden layer is ``[B, M, hidden]`` for ``B`` anchors and ``M`` bank rows each.
    """

    def __init__(
        self,
        dim: int,
        hidden: int = 128,
        inputs: str = "product",
        spectral: bool = True,
        power_iterations: int = 0,
    ) -> None:
        super().__init__()
        _check("critic input", inputs, CRITIC_INPUTS)
        self.inputs = inputs
        self.hidden = nn.Linear(2 * dim if inputs == "concat" else dim, hidden)
        # Both objectives are invariant to a constant shift of g: an output bias would get no
        # gradient.
        self.out = nn.Linear(hidden, 1, bias=False)
        if spectral:
            _normalise_spectrum(self.hidden, power_iterations)
            _normalise_spectrum(self.out, power_iterations)

    def forward(self, teacher: torch.Tensor, student: torch.Tensor) -> torch.Tensor:
        weight = self.hidden.weight  # read once: each read of a normalised weight recomputes it
        if self.inputs == "product":
            h = F.linear(teacher * student, weight, self.hidden.bias)
        else:
            # W [t; s] = W_t t + W_s s: broadcast pairs are never concatenated in memory.
            d = teacher.shape[-1]
            h = F.linear(teacher, weight[:, :d]) + F.linear(
                student, weight[:, d:], self.hidden.bias
            )
        return self.out(F.relu(h)).squeeze(-1)


def gradient_penalty(critic: Critic, teacher: torch.Tensor, student: torch.Tensor) -> torch.Tensor:
    """WGAN-GP's two-sided penalty ``mean_p (||grad_(t, s) g(t_p, s_p)||_2 - 1)^2`` over pairs
    ``teacher``, ``student`` ``[P, D]``. The inputs are detached: the penalty shapes the critic
    only, not the embeddings it is evaluated on."""
    t = teacher.detach().requires_grad_(True)
    s = student.detach().requires_grad_(True)
    # Each score depends on its own pair only, so the gradient of the sum is per pair.
    grad_t, grad_s = torch.autograd.grad(critic(t, s).sum(), (t, s), create_graph=True)
    norms = torch.cat([grad_t, grad_s], dim=1).norm(dim=1)
    return (norms - 1).pow(2).mean()


@LOSS_REGISTRY.register("wasserstein_critic")
class WassersteinCriticLoss(nn.Module):
    """Contrast an anchor with its memory-bank positive and K negatives through a critic ``g``.

    ``forward(anchor [B, D], bank [N, D], idx [B, K + 1], anchor_side)``: column 0 of ``idx`` is
    the positive, the others negatives; scores ``g_k = g(bank[idx[:, k]], anchor)`` (student
    anchor) or ``g(anchor, bank[idx[:, k]])`` (teacher anchor). Objectives, mean over B:

    - ``"infonce"``: ``-log softmax_k(g_k / T)[0]``, the InfoNCE bound of the dependency between
      the two sides, with a Lipschitz critic (our reading of WCoRD's dual form, unverified);
    - ``"kantorovich"``: ``mean_{k>=1} g_k - g_0``, the negated Kantorovich-Rubinstein dual itself
      (no temperature).

    Critics (``critic``): ``"inner"`` (:class:`InnerProductCritic`, no parameters, ``lipschitz``
    unused) or ``"mlp"`` (:class:`MLPCritic`, ``critic_input``, ``hidden``). ``lipschitz`` holds the
    MLP to 1-Lipschitz by ``"spectral_norm"`` (a certified bound, or ``power_iterations`` of
    torch's estimate) or adds ``gp_weight *`` :func:`gradient_penalty` at points
    ``u * positive + (1 - u) * first negative`` (u uniform, per anchor) paired with the anchor.
    Critic and embeddings both minimise the loss (the dependency is maximised over both).
    """

    def __init__(
        self,
        dim: int = 128,
        critic: str = "inner",
        critic_input: str = "product",
        hidden: int = 128,
        lipschitz: str = "spectral_norm",
        objective: str = "infonce",
        temperature: float = 0.07,
        gp_weight: float = 10.0,
        power_iterations: int = 0,
    ) -> None:
        super().__init__()
        _check("critic", critic, CRITICS)
        _check("Lipschitz constraint", lipschitz, LIPSCHITZ)
        _check("objective", objective, OBJECTIVES)
        if critic == "inner":
            self.critic: Critic = InnerProductCritic()
        else:
            spectral = lipschitz == "spectral_norm"
            self.critic = MLPCritic(dim, hidden, critic_input, spectral, power_iterations)
        self.gp_weight = gp_weight if critic == "mlp" and lipschitz == "gradient_penalty" else 0.0
        self.objective = objective
        self.temperature = temperature

    def forward(
        self, anchor: torch.Tensor, bank: torch.Tensor, idx: torch.Tensor, anchor_side: str
    ) -> torch.Tensor:
        _check("anchor side", anchor_side, SIDES)
        scores = self.critic.bank_scores(anchor, bank, idx, anchor_side)  # [B, K + 1]
        if self.objective == "infonce":
            target = torch.zeros(len(scores), dtype=torch.long, device=scores.device)
            loss = F.cross_entropy(scores / self.temperature, target)
        else:
            loss = (scores[:, 1:].mean(1) - scores[:, 0]).mean()
        if self.gp_weight > 0:
            # Drawn for the global batch, this rank keeping its slice: N processes draw what one
            # process would.
            b, rank = len(anchor), comm.get_rank()
            u = torch.rand(b * comm.get_world_size(), 1, dtype=anchor.dtype, device=anchor.device)
            u = u[rank * b : (rank + 1) * b]
            key = u * bank[idx[:, 0]] + (1 - u) * bank[idx[:, 1]]
            pair = (key, anchor) if anchor_side == "student" else (anchor, key)
            loss = loss + self.gp_weight * gradient_penalty(self.critic, *pair)
        return loss
