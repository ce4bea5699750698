"""CRD's memory bank and its memory-lean scores (the sampler: test_negative_sampler.py)."""

import math

import pytest
import torch
import torch.nn.functional as F

from kdzoo.memory import MomentumMemoryBank, build_memory, gather_scores


def direct_scores(v, bank, idx):
    """The formula as written: gather every indexed row, then inner products. [B, K+1]."""
    return torch.einsum("bkd,bd->bk", bank[idx], v)


@pytest.mark.parametrize("max_elements", [2**23, 1000])  # one chunk / many chunks
@pytest.mark.parametrize("bank_size", [300, 5000])  # dense products / gathered rows
def test_gather_scores_equal_the_direct_evaluation_with_gradients(max_elements, bank_size):
    torch.manual_seed(0)
    v = torch.randn(6, 8, dtype=torch.float64, requires_grad=True)
    bank = torch.randn(bank_size, 8, dtype=torch.float64)
    idx = torch.randint(0, bank_size, (6, 50))
    idx[0, :3] = 7  # repeated rows must accumulate their gradients
    upstream = torch.randn(6, 50, dtype=torch.float64)
    ours = gather_scores(v, bank, idx, max_elements=max_elements)
    (grad_ours,) = torch.autograd.grad((ours * upstream).sum(), v)
    ref = direct_scores(v, bank, idx)
    (grad_ref,) = torch.autograd.grad((ref * upstream).sum(), v)
    torch.testing.assert_close(ours, ref)
    torch.testing.assert_close(grad_ours, grad_ref)
    assert torch.autograd.gradcheck(
        lambda x: gather_scores(x, bank, idx, max_elements=max_elements), (v,)
    )


def test_bank_initialisation_and_momentum_update():
    torch.manual_seed(0)
    memory = build_memory("momentum_bank", num_samples=100, dim=12, momentum=0.5)
    assert isinstance(memory, MomentumMemoryBank) and memory.banks.shape == (2, 100, 12)
    stdv = 1 / math.sqrt(12 / 3)
    assert memory.banks.abs().max() <= stdv and memory.banks.min() < -0.9 * stdv
    before = memory.banks.clone()
    index = torch.tensor([3, 50, 99])
    new = F.normalize(torch.randn(3, 2, 12), dim=2)
    memory.push(new, index)
    assert torch.equal(memory.banks, before)  # nothing is written before commit
    memory.commit()
    for side in (0, 1):
        expected = F.normalize(0.5 * before[side, index] + 0.5 * new[:, side], dim=1)
        torch.testing.assert_close(memory.banks[side, index], expected)
    untouched = torch.ones(100, dtype=torch.bool)
    untouched[index] = False
    assert torch.equal(memory.banks[:, untouched], before[:, untouched])
