"""OFD's margins and partial L2 distance (kdzoo/losses/overhaul.py): by hand on tiny inputs, and
equal to mdistiller's own OFD.py (commit a08d46f) on the seeded inputs of
tests/kdzoo_testing/ofd_reference.py (``tests/losses/ofd_reference.json``)."""

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from kdzoo.losses import LOSS_REGISTRY, OFDLoss, bn_margin, build_loss
from kdzoo.losses.overhaul import partial_l2
from kdzoo_testing.ofd_reference import make_inputs, pair_batch

REFERENCE = json.loads((Path(__file__).parent / "ofd_reference.json").read_text())


def phi(z: float) -> float:
    return math.exp(-z * z / 2) / math.sqrt(2 * math.pi)


def cdf(z: float) -> float:
    return 0.5 * (1 + math.erf(z / math.sqrt(2)))


def test_margin_by_hand():
    # (gamma, beta) -> margin: E[x | x < 0] for x ~ N(beta, gamma^2), or -3 |gamma| where
    # P(x < 0) <= 0.001.
    gamma = torch.tensor([1.0, -1.0, 2.0, 0.5, 0.0, 0.0, 0.0], dtype=torch.float64)
    beta = torch.tensor([0.0, 0.0, -1.0, 3.0, -0.5, 0.7, 0.0], dtype=torch.float64)
    half_normal = -phi(0) / 0.5  # -sqrt(2 / pi): N(0, 1) below zero
    expected = [
        half_normal,
        half_normal,  # the sign of gamma does not matter
        -1 - 2 * phi(0.5) / cdf(0.5),  # mu - sigma phi(mu / sigma) / Phi(-mu / sigma)
        -1.5,  # Phi(-6) < 0.001: -3 sigma
        -0.5,  # sigma 0: a constant channel, beta where negative
        0.0,  # ... and 0 where not (the reference divides by zero in both)
        0.0,
    ]
    got = bn_margin(gamma, beta)
    assert got.dtype == torch.float64
    torch.testing.assert_close(got, torch.tensor(expected, dtype=torch.float64))
    assert math.isclose(half_normal, -math.sqrt(2 / math.pi))
    # The threshold: just above and below P(x < 0) = 0.001 (mu / sigma = 3.0902).
    near = bn_margin(torch.ones(2), torch.tensor([3.08, 3.10]))
    assert near[1] == -3.0 and -0.5 < near[0] < 0  # E[x | x < 0] is close to 0 there
    assert near.dtype == torch.float32  # the weight's dtype, float32 as the reference's


def test_partial_l2_by_hand():
    # One sample, one channel, margin -0.5: each element is one case of the distance.
    #   t > 0:          (s - t)^2 whatever s is          t = 1.0,  s = 0.5 -> 0.25; s = 2 -> 1
    #   m < t <= 0:     (s - t)^2 if s > t, else 0       t = -0.2, s = 0.3 -> 0.25; s = -0.4 -> 0
    #   t <= m:         (s - m)^2 if s > m, else 0       t = -2,   s = 0   -> 0.25; s = -1 -> 0
    s = torch.tensor([0.5, 2.0, 0.3, -0.4, 0.0, -1.0]).view(1, 1, 2, 3)
    t = torch.tensor([1.0, 1.0, -0.2, -0.2, -2.0, -2.0]).view(1, 1, 2, 3)
    margin = torch.tensor([-0.5])
    torch.testing.assert_close(partial_l2(s, t, margin), torch.tensor(0.25 + 1 + 0.25 + 0.25))
    # Summed over channels and positions, divided by the batch size; margins per channel.
    s2 = torch.stack([torch.cat([s, s], 1)[0], torch.zeros(2, 2, 3)])  # [2, 2, 2, 3]
    t2 = torch.stack([torch.cat([t, t], 1)[0], torch.zeros(2, 2, 3)])
    margins = torch.tensor([-0.5, -3.0]).view(1, 2, 1, 1)
    # channel 1 with margin -3: the two t = -2 elements now count as m < t <= 0: s = 0 > -2
    # gives 4, s = -1 > -2 gives 1.
    by_hand = (1.75 + 1.75 - 0.25 + 4 + 1) / 2
    torch.testing.assert_close(partial_l2(s2, t2, margins), torch.tensor(by_hand))


def test_stages_weigh_half_the_next_and_the_larger_map_is_pooled():
    g = torch.Generator().manual_seed(0)
    s = [torch.randn(2, 3, 4, 4, generator=g), torch.randn(2, 5, 2, 2, generator=g)]
    t = [torch.randn(2, 3, 8, 8, generator=g), torch.randn(2, 5, 2, 2, generator=g)]
    margins = [-torch.rand(3, generator=g), -torch.rand(5, generator=g)]
    loss = OFDLoss(margins)
    by_hand = partial_l2(s[0], F.avg_pool2d(t[0], 2), margins[0]) / 2 + partial_l2(
        s[1], t[1], margins[1]
    )
    torch.testing.assert_close(loss(s, t), by_hand)
    # A student map larger than the teacher's is pooled to it (the reference would upsample
    # the teacher's; no shipped pair has one).
    big = [torch.randn(2, 3, 16, 16, generator=g), s[1]]
    by_hand = partial_l2(F.avg_pool2d(big[0], 2), t[0], margins[0]) / 2 + partial_l2(
        s[1], t[1], margins[1]
    )
    torch.testing.assert_close(loss(big, t), by_hand)
    with pytest.raises(ValueError, match="2 margins, got 1 and 2"):
        loss(s[:1], t)


def test_margins_are_buffers_and_the_loss_is_registered():
    loss = build_loss("ofd", margins=[torch.tensor([-1.0, -2.0]), torch.tensor([-0.5])])
    assert isinstance(loss, OFDLoss) and LOSS_REGISTRY.get("ofd") is OFDLoss
    assert list(loss.state_dict()) == ["margin0", "margin1"]
    assert loss.margin0.shape == (1, 2, 1, 1) and not list(loss.parameters())
    assert loss.double().margin1.dtype == torch.float64


def test_teacher_gets_no_gradient_and_half_precision_runs_in_float32():
    g = torch.Generator().manual_seed(1)
    s = torch.randn(2, 3, 4, 4, generator=g, requires_grad=True)
    t = torch.randn(2, 3, 4, 4, generator=g, requires_grad=True)
    loss = OFDLoss([-torch.rand(3, generator=g)])
    loss([s], [t]).backward()
    assert t.grad is None and s.grad is not None and s.grad.abs().sum() > 0
    with torch.autocast("cpu", dtype=torch.bfloat16):
        low = loss([s.bfloat16()], [t.bfloat16()])
    assert low.dtype == torch.float32
    exact = loss([s.bfloat16().float()], [t.bfloat16().float()])
    torch.testing.assert_close(low, exact)


# ---- mdistiller's own numbers ---------------------------------------------------------------


def test_reference_inputs_are_unchanged():
    x = make_inputs()
    x["images"] = pair_batch()[0]
    assert x.keys() == REFERENCE["input_sums"].keys()
    for key, value in REFERENCE["input_sums"].items():
        assert math.isclose(x[key].sum().item(), value, rel_tol=1e-12), key


def test_margins_equal_the_reference():
    x = make_inputs()
    got = bn_margin(x["gamma"], x["beta"])
    # The reference computes in Python floats and returns float32 (torch.FloatTensor).
    want = torch.tensor(REFERENCE["margins"], dtype=torch.float64)
    torch.testing.assert_close(got, want, rtol=1e-6, atol=1e-6)
    torch.testing.assert_close(bn_margin(x["gamma"].float(), x["beta"].float()), want.float())
    assert got[0] == -3 * x["gamma"][0].abs()  # the -3 sigma branch is covered


def test_partial_l2_equals_the_reference_feat_loss():
    x = make_inputs()
    ref = REFERENCE["feat_loss"]
    source = x["source"].clone().requires_grad_(True)
    value = partial_l2(source, x["target"], x["margin"])
    value.backward()
    assert math.isclose(value.item(), ref["value"], rel_tol=1e-6)
    got = source.grad.reshape(-1)[ref["gradient_index"]]
    torch.testing.assert_close(got, torch.tensor(ref["gradient"], dtype=torch.float64))


def test_ofd_loss_equals_the_reference_over_three_stages():
    x = make_inputs()
    ref = REFERENCE["ofd_loss"]
    margins = [bn_margin(x[f"bn_w{i}"], x[f"bn_b{i}"]) for i in range(3)]
    for got, want in zip(margins, ref["margins"], strict=True):
        torch.testing.assert_close(got, torch.tensor(want, dtype=torch.float64), atol=1e-6, rtol=0)
    student = [x[f"s{i}"].clone().requires_grad_(True) for i in range(3)]
    value = OFDLoss(margins)(student, [x[f"t{i}"] for i in range(3)])
    value.backward()
    assert math.isclose(value.item(), ref["value"], rel_tol=1e-6)
    for key, entry in ref["gradients"].items():
        got = student[int(key[1])].grad.reshape(-1)[entry["index"]]
        torch.testing.assert_close(got, torch.tensor(entry["value"], dtype=torch.float64))
