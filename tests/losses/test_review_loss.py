"""ReviewKD's hierarchical context loss (``kdzoo.losses.HCLLoss``): values worked out by hand,
equality with mdistiller's own ``hcl_loss`` (numbers stored in ``reviewkd_reference.json``),
which tensors its gradient reaches, and half precision computed in float32."""

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from kdzoo.losses import LOSS_REGISTRY, HCLLoss, build_loss
from kdzoo_testing import reviewkd_reference

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def reference():
    """(mdistiller's stored HCL numbers, the maps they were computed on)."""
    fixture = json.loads((HERE / "reviewkd_reference.json").read_text())
    maps_s, maps_t = reviewkd_reference.make_hcl_inputs()
    sums = fixture["input_sums"]
    # A different random stream would make the stored numbers meaningless.
    assert math.isclose(sum(m.sum() for m in maps_s).item(), sums["hcl_student"], rel_tol=1e-12)
    assert math.isclose(sum(m.sum() for m in maps_t).item(), sums["hcl_teacher"], rel_tol=1e-12)
    return fixture["hcl"], maps_s, maps_t


def test_registered():
    assert LOSS_REGISTRY.get("hcl") is HCLLoss
    assert build_loss("hcl").levels == (4, 2, 1)


# ------------------------------------------------------------------------------------ by hand


def test_a_two_by_two_map_has_the_full_level_and_the_one_by_one_pool():
    # Pools of 4 and 2 are not smaller than the map and are skipped; the 1 x 1 pool weighs 1/2.
    f_s = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]], dtype=torch.float64)
    f_t = torch.zeros_like(f_s)
    full = (1 + 4 + 9 + 16) / 4  # 7.5
    pooled = 2.5**2  # the mean 2.5 against 0
    expected = (full + 0.5 * pooled) / (1 + 0.5)
    assert HCLLoss()([f_s], [f_t]).item() == pytest.approx(expected, rel=1e-12)


def test_a_four_by_four_map_has_the_two_and_one_pools_weighted_half_and_quarter():
    f_s = torch.arange(16, dtype=torch.float64).view(1, 1, 4, 4)
    f_t = torch.ones_like(f_s)
    d = f_s - f_t
    full = d.square().mean()
    two = F.avg_pool2d(d, 2).square().mean()  # 2 x 2 windows of a 4 x 4 map
    one = d.mean().square()
    expected = (full + 0.5 * two + 0.25 * one) / 1.75
    assert HCLLoss()([f_s], [f_t]).item() == pytest.approx(expected.item(), rel=1e-12)


def test_an_eight_by_eight_map_has_four_levels_and_pairs_are_summed():
    g = torch.Generator().manual_seed(0)
    f_s, f_t = (torch.randn(2, 3, 8, 8, generator=g, dtype=torch.float64) for _ in range(2))
    v_s, v_t = (torch.randn(2, 5, 1, 1, generator=g, dtype=torch.float64) for _ in range(2))
    d = f_s - f_t
    levels = [d, F.avg_pool2d(d, 2), F.avg_pool2d(d, 4), F.avg_pool2d(d, 8)]  # 8, 4, 2, 1
    weights = [1, 0.5, 0.25, 0.125]
    eight = sum(w * x.square().mean() for w, x in zip(weights, levels, strict=True)) / 1.875
    vector = F.mse_loss(v_s, v_t)  # a 1 x 1 map: the full level alone
    got = HCLLoss()([f_s, v_s], [f_t, v_t])
    assert got.item() == pytest.approx((eight + vector).item(), rel=1e-12)


def test_maps_of_different_shapes_or_counts_are_refused():
    with pytest.raises(ValueError, match="one shape"):
        HCLLoss()([torch.zeros(1, 2, 4, 4)], [torch.zeros(1, 3, 4, 4)])
    with pytest.raises(ValueError, match="pairs"):
        HCLLoss()([torch.zeros(1, 2, 4, 4)], [])


# --------------------------------------------------------------------------- mdistiller's numbers


def test_values_equal_mdistiller(reference):
    expected, maps_s, maps_t = reference
    hcl = HCLLoss()
    for i, (f_s, f_t) in enumerate(zip(maps_s, maps_t, strict=True)):
        got = hcl([f_s], [f_t]).item()
        assert math.isclose(got, expected["per_pair"][i], rel_tol=1e-6), (f_s.shape, got)
    got = hcl(maps_s, maps_t)
    assert got.dtype == torch.float64
    assert math.isclose(got.item(), expected["value"], rel_tol=1e-6)


def test_gradients_equal_mdistiller(reference):
    expected, maps_s, maps_t = reference
    student = [m.clone().requires_grad_(True) for m in maps_s]
    HCLLoss()(student, maps_t).backward()
    for m, values in zip(student, expected["gradients"], strict=True):
        flat = m.grad.reshape(-1)
        for i, value in zip(expected["gradient_index"], values, strict=True):
            assert math.isclose(flat[i].item(), value, rel_tol=1e-6, abs_tol=1e-12), (m.shape, i)


# --------------------------------------------------------------------------------- the rest


def test_gradients_reach_the_student_never_the_teacher():
    s = [torch.randn(2, 3, 4, 4, requires_grad=True), torch.randn(2, 3, 1, 1, requires_grad=True)]
    t = [torch.randn(2, 3, 4, 4, requires_grad=True), torch.randn(2, 3, 1, 1, requires_grad=True)]
    HCLLoss()(s, t).backward()
    assert all(m.grad is None for m in t)  # the teacher's maps are targets
    assert all(m.grad is not None and m.grad.abs().sum() > 0 for m in s)


def test_bfloat16_maps_are_computed_in_float32():
    s, t = torch.randn(2, 3, 8, 8).bfloat16(), torch.randn(2, 3, 8, 8).bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = HCLLoss()([s], [t])
    assert loss.dtype == torch.float32
    assert loss.item() == HCLLoss()([s.float()], [t.float()]).item()
