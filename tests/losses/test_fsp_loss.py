"""FSP's loss (``kdzoo.losses.FSPLoss``): the FSP matrix by hand, equality with RepDistiller's
own ``FSP`` (numbers stored in ``repdistiller_losses.json``), and its gradient."""

import json
import math
from pathlib import Path

import pytest
import torch

from kdzoo.losses import LOSS_REGISTRY, FSPLoss
from kdzoo.losses.fsp import fsp_matrix
from kdzoo_testing import repdistiller_inputs

HERE = Path(__file__).parent


def test_fsp_matrix_by_hand():
    # One sample; bottom: 2 channels of 1 x 2 positions, top: 1 channel.
    bottom = torch.tensor([[[[1.0, 2.0]], [[3.0, -1.0]]]])
    top = torch.tensor([[[[2.0, 4.0]]]])
    g = fsp_matrix(bottom, top)  # [B, C_top, C_bottom]: mean over positions of top_j * bottom_i
    torch.testing.assert_close(g, torch.tensor([[[(2 + 8) / 2, (6 - 4) / 2]]]))


def test_the_larger_map_is_pooled_and_the_loss_is_the_mean_square():
    bottom = torch.rand(2, 3, 4, 4, dtype=torch.float64)
    top = torch.rand(2, 2, 2, 2, dtype=torch.float64)
    pooled = torch.nn.functional.avg_pool2d(bottom, 2)
    torch.testing.assert_close(fsp_matrix(bottom, top), fsp_matrix(pooled, top))
    g_t = [bottom, top]
    g_s = [bottom + 0.1, top]
    (loss,) = FSPLoss()(g_s, g_t)
    diff = fsp_matrix(g_s[0], g_s[1]) - fsp_matrix(g_t[0], g_t[1])
    assert loss.item() == pytest.approx(diff.pow(2).mean().item(), rel=1e-12)


def test_values_and_gradient_equal_repdistiller():
    reference = json.loads((HERE / "repdistiller_losses.json").read_text())["fsp"]
    g_s, g_t = repdistiller_inputs.make_fsp_inputs()
    g_s[0].requires_grad_(True)
    values = FSPLoss()(g_s, g_t)
    assert len(values) == len(reference["values"]) == 2
    for got, expected in zip(values, reference["values"], strict=True):
        assert math.isclose(got.item(), expected, rel_tol=1e-9)
    sum(values).backward()
    flat = g_s[0].grad.reshape(-1)
    for i, expected in zip(reference["index"], reference["gradient"], strict=True):
        assert math.isclose(flat[i].item(), expected, rel_tol=1e-9), i


def test_teacher_is_detached_and_unequal_channels_are_refused():
    s = [torch.randn(2, 3, 4, 4, requires_grad=True), torch.randn(2, 5, 2, 2, requires_grad=True)]
    t = [torch.randn(2, 3, 4, 4, requires_grad=True), torch.randn(2, 5, 2, 2, requires_grad=True)]
    sum(FSPLoss()(s, t)).backward()
    assert all(f.grad is not None for f in s) and all(f.grad is None for f in t)
    with pytest.raises(ValueError, match="same channels"):
        FSPLoss()(s, [t[0], torch.randn(2, 4, 2, 2)])


def test_registered():
    assert LOSS_REGISTRY.get("fsp") is FSPLoss
