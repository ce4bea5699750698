"""WCoRD's losses: Sinkhorn OT against an exact solver, the critic's Lipschitz constraint, and the
inner-product critic against CRD's memory-bank scores."""

import itertools
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from kdzoo.losses import build_loss
from kdzoo.losses.optimal_transport import pairwise_cost, sinkhorn_plan
from kdzoo.losses.wasserstein import Critic, gradient_penalty
from kdzoo.memory import ClassAwareSampler, MomentumMemoryBank, gather_scores
from kdzoo.memory.bank import STUDENT, TEACHER


def test_pairwise_costs_are_the_named_distances():
    torch.manual_seed(0)
    x, y = torch.randn(5, 7, dtype=torch.float64), torch.randn(3, 7, dtype=torch.float64)
    torch.testing.assert_close(pairwise_cost(x, y, "l2"), torch.cdist(x, y) ** 2)
    cos = F.cosine_similarity(x[:, None], y[None], dim=2)
    torch.testing.assert_close(pairwise_cost(x, y, "cosine"), 1 - cos)


def test_sinkhorn_plan_has_the_uniform_marginals():
    torch.manual_seed(0)
    cost = torch.rand(6, 5, dtype=torch.float64)
    plan = sinkhorn_plan(cost, epsilon=0.05, iterations=300)
    assert (plan >= 0).all()
    torch.testing.assert_close(plan.sum(1), torch.full((6,), 1 / 6, dtype=torch.float64))
    torch.testing.assert_close(plan.sum(0), torch.full((5,), 1 / 5, dtype=torch.float64))


@pytest.mark.parametrize("kind", ["l2", "cosine"])
def test_entropic_cost_approaches_the_exact_optimal_transport(kind):
    # Uniform marginals with n = m: an optimal plan is a permutation / n (Birkhoff), so brute force
    # over the 24 permutations is an exact solver. The entropic plan is feasible, so its cost is
    # above the optimum (up to its marginals' residual error), and by at most
    # epsilon (H(a) + H(b)) = 2 epsilon log n.
    torch.manual_seed(1)
    x, y = torch.randn(4, 3, dtype=torch.float64), torch.randn(4, 3, dtype=torch.float64)
    cost = pairwise_cost(x, y, kind)
    exact = min(cost[range(4), list(p)].mean().item() for p in itertools.permutations(range(4)))
    epsilon = 0.005 * cost.max().item()
    loss = build_loss("sinkhorn_ot", epsilon=epsilon, iterations=3000, cost=kind)(x, y).item()
    assert exact - 1e-6 <= loss <= exact + 2 * epsilon * math.log(4)


def test_transport_plan_is_a_constant_for_the_gradient():
    torch.manual_seed(2)
    x = torch.randn(8, 5, dtype=torch.float64, requires_grad=True)
    y = torch.randn(8, 5, dtype=torch.float64, requires_grad=True)
    build_loss("sinkhorn_ot", epsilon=0.1, iterations=50)(x, y).backward()
    cost = pairwise_cost(x, y, "cosine")
    expected = torch.autograd.grad((sinkhorn_plan(cost, 0.1, 50) * cost).sum(), (x, y))
    torch.testing.assert_close(x.grad, expected[0])
    torch.testing.assert_close(y.grad, expected[1])


def _bank_and_indices(n: int = 300, dim: int = 16, b: int = 8, k: int = 40):
    torch.manual_seed(3)
    labels = torch.arange(n) % 10
    memory = MomentumMemoryBank(n, dim)
    memory.banks.copy_(F.normalize(torch.randn(2, n, dim), dim=2))
    index = torch.randperm(n)[:b]
    idx = ClassAwareSampler(labels, k, seed=0)(index, labels[index])
    return memory, idx


def test_inner_critic_reduces_to_crd_scores():
    memory, idx = _bank_and_indices()
    v_s = F.normalize(torch.randn(len(idx), 16), dim=1).requires_grad_(True)
    v_t = F.normalize(torch.randn(len(idx), 16), dim=1)
    loss = build_loss("wasserstein_critic", dim=16, critic="inner", temperature=0.07)
    scores = loss.critic.bank_scores(v_s, memory.banks[TEACHER], idx, "student")
    assert torch.equal(scores, memory.scores(v_s, TEACHER, idx))
    assert torch.equal(scores, gather_scores(v_s, memory.banks[TEACHER], idx))
    teacher_scores = loss.critic.bank_scores(v_t, memory.banks[STUDENT], idx, "teacher")
    assert torch.equal(teacher_scores, memory.scores(v_t, STUDENT, idx))
    # GCKT with this critic is InfoNCE over CRD's scores / T, positive in column 0.
    value = loss(v_s, memory.banks[TEACHER], idx, "student")
    expected = -torch.log_softmax(scores / 0.07, dim=1)[:, 0].mean()
    torch.testing.assert_close(value, expected)
    value.backward()
    assert v_s.grad.abs().sum() > 0


def test_kantorovich_objective_is_the_negated_dual():
    memory, idx = _bank_and_indices()
    v_s = F.normalize(torch.randn(len(idx), 16), dim=1)
    loss = build_loss("wasserstein_critic", dim=16, objective="kantorovich")
    scores = memory.scores(v_s, TEACHER, idx)
    expected = -(scores[:, 0] - scores[:, 1:].mean(1)).mean()
    torch.testing.assert_close(loss(v_s, memory.banks[TEACHER], idx, "student"), expected)


@pytest.mark.parametrize("inputs", ["product", "concat"])
def test_mlp_critic_scores_each_pair_in_teacher_student_order(inputs):
    memory, idx = _bank_and_indices(k=5)
    critic = build_loss("wasserstein_critic", dim=16, critic="mlp", critic_input=inputs).critic
    critic.eval()  # no power iteration between the calls compared
    anchor = F.normalize(torch.randn(len(idx), 16), dim=1)
    bank = memory.banks[TEACHER]
    w, b = critic.hidden.weight, critic.hidden.bias

    def direct(t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
        x = t * s if inputs == "product" else torch.cat([t, s])
        return critic.out(torch.relu(w @ x + b)).squeeze()

    for side in ("student", "teacher"):
        scores = critic.bank_scores(anchor, bank, idx, side)
        for i, j in itertools.product(range(len(idx)), range(idx.shape[1])):
            row, a = bank[idx[i, j]], anchor[i]
            pair = (row, a) if side == "student" else (a, row)
            torch.testing.assert_close(scores[i, j], direct(*pair))


def _train_critic(inputs: str, power_iterations: int, steps: int = 3):
    """An MLP critic with spectral normalisation after ``steps`` SGD steps (CIFAR protocol's
    lr and momentum); returns it with its unnormalised weights before training."""
    memory, idx = _bank_and_indices(dim=128)
    loss = build_loss(
        "wasserstein_critic",
        dim=128,
        critic="mlp",
        critic_input=inputs,
        power_iterations=power_iterations,
    )
    anchor = F.normalize(torch.randn(len(idx), 128), dim=1)
    layers = (loss.critic.hidden, loss.critic.out)
    before = [layer.parametrizations.weight.original.detach().clone() for layer in layers]
    optimizer = torch.optim.SGD(loss.parameters(), lr=0.05, momentum=0.9)
    for _ in range(steps):
        optimizer.zero_grad()
        loss(anchor, memory.banks[TEACHER], idx, "student").backward()
        optimizer.step()
    for layer, start in zip(layers, before, strict=True):
        original = layer.parametrizations.weight.original.detach()
        assert not torch.equal(original, start)  # it did train
    return loss, layers


@pytest.mark.parametrize("inputs", ["product", "concat"])
def test_spectral_norm_holds_the_critic_1_lipschitz_while_it_trains(inputs):
    _, layers = _train_critic(inputs, power_iterations=0)
    for layer in layers:
        norm = torch.linalg.matrix_norm(layer.weight.detach(), ord=2).item()
        assert 0.999 <= norm <= 1 + 1e-5


def test_power_iteration_spectral_norm_converges_once_the_weights_rest():
    # torch's estimate lags behind moving weights (the norm may exceed 1 while training); with the
    # weights fixed, its power iterations, one per training forward, converge to the exact value.
    loss, layers = _train_critic("concat", power_iterations=1)
    for _ in range(300):
        for layer in layers:
            layer.weight  # noqa: B018  (each read of the weight in train mode iterates once)
    for layer in layers:
        assert torch.linalg.matrix_norm(layer.weight.detach(), ord=2) <= 1 + 1e-3


class _LinearCritic(Critic):
    """``g(t, s) = <w, [t; s]>``: Lipschitz constant ``||w||``."""

    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = nn.Parameter(w)

    def forward(self, teacher: torch.Tensor, student: torch.Tensor) -> torch.Tensor:
        return torch.cat([teacher, student], -1) @ self.w


def test_gradient_penalty_vanishes_on_a_1_lipschitz_critic():
    torch.manual_seed(5)
    w = F.normalize(torch.randn(32, dtype=torch.float64), dim=0)
    t, s = torch.randn(2, 10, 16, dtype=torch.float64).unbind()
    assert gradient_penalty(_LinearCritic(w), t, s).item() < 1e-20
    # A 3-Lipschitz one: (||grad|| - 1)^2 = 4 everywhere.
    torch.testing.assert_close(gradient_penalty(_LinearCritic(3 * w), t, s).item(), 4.0)


def test_gradient_penalty_option_adds_the_weighted_penalty():
    memory, idx = _bank_and_indices()
    anchor = F.normalize(torch.randn(len(idx), 16), dim=1)
    bank = memory.banks[STUDENT]
    opts = {"dim": 16, "critic": "mlp", "lipschitz": "gradient_penalty"}
    penalised = build_loss("wasserstein_critic", gp_weight=10.0, **opts)
    plain = build_loss("wasserstein_critic", gp_weight=0.0, **opts)
    plain.load_state_dict(penalised.state_dict())
    torch.manual_seed(6)
    value = penalised(anchor, bank, idx, "teacher")
    torch.manual_seed(6)
    u = torch.rand(len(anchor), 1)
    points = u * bank[idx[:, 0]] + (1 - u) * bank[idx[:, 1]]
    expected_penalty = gradient_penalty(penalised.critic, anchor, points)
    torch.testing.assert_close(value, plain(anchor, bank, idx, "teacher") + 10 * expected_penalty)
    value.backward()
    grads = [p.grad for p in penalised.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)


def test_unknown_options_are_refused():
    with pytest.raises(ValueError, match="critic must be one of"):
        build_loss("wasserstein_critic", critic="bilinear")
    with pytest.raises(ValueError, match="OT cost must be one of"):
        build_loss("sinkhorn_ot", cost="l1")
