"""DKD's loss (``kdzoo.losses.DKDLoss``): values by hand, equality with mdistiller's own
``dkd_loss`` (numbers stored in ``mdistiller_losses.json``), and its gradient."""

import json
import math
from pathlib import Path

import pytest
import torch

from kdzoo.losses import LOSS_REGISTRY, DKDLoss, KDLoss
from kdzoo_testing import mdistiller_inputs

HERE = Path(__file__).parent


def _kl(p: list[float], q: list[float]) -> float:
    return sum(a * math.log(a / b) for a, b in zip(p, q, strict=True))


def test_three_classes_by_hand():
    # T = 1, label 0. Student logits [5, 0, 0], teacher [1, ln 3, 0].
    z_s = torch.tensor([[5.0, 0.0, 0.0]], dtype=torch.float64)
    z_t = torch.tensor([[1.0, math.log(3.0), 0.0]], dtype=torch.float64)
    label = torch.tensor([0])
    e5, e1 = math.exp(5), math.e
    b_s = [e5 / (e5 + 2), 2 / (e5 + 2)]  # [p_target, p_rest]
    b_t = [e1 / (e1 + 4), 4 / (e1 + 4)]
    rest_s, rest_t = [0.5, 0.5], [0.75, 0.25]  # classes 1 and 2 alone
    tckd, nckd = _kl(b_t, b_s), _kl(rest_t, rest_s)
    got = DKDLoss(alpha=0.5, beta=3.0, temperature=1.0)(z_s, z_t, label)
    assert got.item() == pytest.approx(0.5 * tckd + 3.0 * nckd, rel=1e-9)


def test_two_classes_is_kd_on_the_binary_split():
    # With two classes the non-target distribution is one class (NCKD = 0) and TCKD is KD.
    g = torch.Generator().manual_seed(0)
    z_s, z_t = torch.randn(5, 2, generator=g), torch.randn(5, 2, generator=g)
    labels = torch.tensor([0, 1, 1, 0, 1])
    got = DKDLoss(alpha=1.0, beta=100.0, temperature=4.0)(z_s, z_t, labels)
    torch.testing.assert_close(got, KDLoss(4.0)(z_s, z_t))


@pytest.fixture(scope="module")
def reference():
    fixture = json.loads((HERE / "mdistiller_losses.json").read_text())
    x = mdistiller_inputs.make_inputs()
    for key, total in fixture["input_sums"].items():
        assert math.isclose(x[key].double().sum().item(), total, rel_tol=1e-12), key
    return fixture, x


def test_values_and_gradients_equal_mdistiller(reference):
    fixture, x = reference
    for entry in fixture["dkd"]:
        logits_s = x["logits_s"].clone().requires_grad_(True)
        loss = DKDLoss(entry["alpha"], entry["beta"], entry["temperature"])(
            logits_s, x["logits_t"], x["labels"]
        )
        assert math.isclose(loss.item(), entry["value"], rel_tol=1e-9), entry["beta"]
        loss.backward()
        flat = logits_s.grad.reshape(-1)
        for i, expected in zip(entry["gradient_index"], entry["gradient"], strict=True):
            assert math.isclose(flat[i].item(), expected, rel_tol=1e-9, abs_tol=1e-15), i


def test_teacher_logits_get_no_gradient_and_bf16_is_computed_in_float32():
    z_s = torch.randn(4, 7, requires_grad=True)
    z_t = torch.randn(4, 7, requires_grad=True)
    labels = torch.tensor([0, 3, 6, 2])
    DKDLoss()(z_s, z_t, labels).backward()
    assert z_t.grad is None and z_s.grad.abs().sum() > 0
    with torch.autocast("cpu", dtype=torch.bfloat16):
        half = DKDLoss()(z_s.detach().bfloat16(), z_t.detach().bfloat16(), labels)
    assert half.dtype == torch.float32


def test_registered():
    assert LOSS_REGISTRY.get("dkd") is DKDLoss
