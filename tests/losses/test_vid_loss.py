"""VID's loss (``kdzoo.losses.VIDLoss``): a value by hand, equality with RepDistiller's own
``VIDLoss`` (numbers stored in ``repdistiller_losses.json``), the initial variance, and which
tensors its gradient reaches."""

import json
import math
from pathlib import Path

import pytest
import torch

from kdzoo.losses import LOSS_REGISTRY, VIDLoss
from kdzoo_testing import repdistiller_inputs

HERE = Path(__file__).parent


def test_value_by_hand():
    # One channel each side, every conv weight 1: mu = ReLU(ReLU(f_s)) = f_s for f_s >= 0.
    vid = VIDLoss(1, 1).double()
    with torch.no_grad():
        for conv in vid.regressor[::2]:
            conv.weight.fill_(1.0)
    f_s = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]], dtype=torch.float64)
    f_t = torch.tensor([[[[1.0, 1.0], [1.0, 2.0]]]], dtype=torch.float64)
    # sigma^2 = 5 at the start; squared errors 0, 1, 4, 4 -> mean 9/4.
    expected = 0.5 * ((9 / 4) / 5 + math.log(5))
    assert vid(f_s, f_t).item() == pytest.approx(expected, rel=1e-6)


def test_initial_variance_is_init_pred_var():
    for init in (5.0, 0.1):
        vid = VIDLoss(3, 4, init_pred_var=init, eps=1e-5)
        var = vid.variance()
        assert var.shape == (1, 4, 1, 1)
        torch.testing.assert_close(var, torch.full_like(var, init))  # softplus(alpha) + eps


def test_the_larger_map_is_pooled_to_the_smaller():
    vid = VIDLoss(2, 3).double()
    s = torch.rand(2, 2, 8, 8, dtype=torch.float64)
    t = torch.rand(2, 3, 4, 4, dtype=torch.float64)
    pooled_s = torch.nn.functional.avg_pool2d(s, 2)
    assert vid(s, t).item() == pytest.approx(vid(pooled_s, t).item(), rel=1e-12)
    pooled_t = torch.nn.functional.avg_pool2d(torch.rand(2, 3, 8, 8, dtype=torch.float64), 2)
    big_t = pooled_t.repeat_interleave(2, dim=2).repeat_interleave(2, dim=3)
    small_s = s[:, :, :4, :4]
    assert vid(small_s, big_t).item() == pytest.approx(vid(small_s, pooled_t).item(), rel=1e-12)


def test_values_and_gradients_equal_repdistiller():
    fixture = json.loads((HERE / "repdistiller_losses.json").read_text())
    reference = fixture["vid"]
    x = repdistiller_inputs.make_inputs()
    for key, total in fixture["input_sums"].items():
        assert math.isclose(x[key].sum().item(), total, rel_tol=1e-12), key
    pairs = repdistiller_inputs.VID_PAIRS
    modules = [VIDLoss(x[s].shape[1], x[t].shape[1]).double() for s, t in pairs]
    repdistiller_inputs.set_vid_parameters(modules)
    student = x[pairs[0][0]].clone().requires_grad_(True)
    maps_s = [student, *(x[s] for s, _ in pairs[1:])]
    values = [m(f_s, x[t]) for m, f_s, (_, t) in zip(modules, maps_s, pairs, strict=True)]
    for got, expected in zip(values, reference["values"], strict=True):
        assert math.isclose(got.item(), expected, rel_tol=1e-9), (got.item(), expected)
    sum(values).backward()
    flat = student.grad.reshape(-1)
    entry = reference["student_gradient"]
    for i, expected in zip(entry["index"], entry["value"], strict=True):
        assert math.isclose(flat[i].item(), expected, rel_tol=1e-9), i
    torch.testing.assert_close(
        modules[0].log_scale.grad,
        torch.tensor(reference["log_scale_gradient"], dtype=torch.float64),
    )


def test_gradients_reach_the_student_and_the_modules_never_the_teacher():
    vid = VIDLoss(2, 3)
    s = torch.randn(2, 2, 4, 4, requires_grad=True)
    t = torch.randn(2, 3, 4, 4, requires_grad=True)
    vid(s, t).backward()
    assert t.grad is None  # the teacher's map is a target
    for p in [s, *vid.parameters()]:
        assert p.grad is not None and p.grad.abs().sum() > 0


def test_bfloat16_maps_are_computed_in_float32():
    vid = VIDLoss(2, 3)
    s, t = torch.randn(2, 2, 4, 4).bfloat16(), torch.randn(2, 3, 4, 4).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = vid(s, t)
    assert loss.dtype == torch.float32
    assert loss.item() == vid(s.float(), t.float()).item()


def test_registered():
    assert LOSS_REGISTRY.get("vid") is VIDLoss
