"""CRD's memory bank, its memory-lean scores, and class-aware negative sampling."""

import math

import pytest
import torch
import torch.nn.functional as F

from kdzoo.memory import ClassAwareSampler, MomentumMemoryBank, build_memory, gather_scores
from kdzoo.utils import comm


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


def imbalanced_labels() -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate([5, 40, 1, 20, 34])])
    return labels[torch.randperm(len(labels), generator=generator)]


def test_exact_mode_negatives_never_share_the_anchor_class():
    labels = imbalanced_labels()
    sampler = ClassAwareSampler(labels, num_negatives=4000, mode="exact", seed=1)
    index = torch.arange(len(labels))
    idx = sampler(index, labels)
    assert idx.shape == (len(labels), 4001)
    assert torch.equal(idx[:, 0], index)  # the positive is the anchor itself
    assert not (labels[idx[:, 1:]] == labels[:, None]).any()
    # Uniform over the other classes: an anchor of class 2 (1 sample) sees each other sample
    # with probability 1/99.
    anchor = int(torch.nonzero(labels == 2)[0])
    counts = torch.bincount(idx[anchor, 1:], minlength=len(labels)).float()
    others = labels != 2
    assert counts[~others].sum() == 0
    assert counts[others].mean() == pytest.approx(4000 / 99)
    assert counts[others].std() < 0.35 * counts[others].mean()


def test_relax_mode_positive_is_a_sample_of_the_same_class():
    labels = imbalanced_labels()
    sampler = ClassAwareSampler(labels, num_negatives=10, mode="relax", seed=1)
    index = torch.arange(len(labels)).repeat(20)
    idx = sampler(index, labels[index])
    assert torch.equal(labels[idx[:, 0]], labels[index])
    assert (idx[:, 0] != index).any()  # not always the anchor itself


def test_sampler_is_reproducible_and_its_state_is_saved():
    labels = imbalanced_labels()
    a = ClassAwareSampler(labels, 16, seed=3)
    b = ClassAwareSampler(labels, 16, seed=3)
    index = torch.arange(8)
    assert torch.equal(a(index, labels[index]), b(index, labels[index]))
    state = a.state_dict()
    assert set(state) == {"_extra_state"}  # label-derived buffers are rebuilt, not saved
    expected = a(index, labels[index])
    b.load_state_dict(state)
    assert torch.equal(b(index, labels[index]), expected)


def test_ranks_draw_slices_of_one_global_draw(monkeypatch):
    labels = imbalanced_labels()
    index = torch.arange(10)
    single = ClassAwareSampler(labels, 16, seed=5)(index, labels[index])
    monkeypatch.setattr(comm, "get_world_size", lambda: 2)
    parts = []
    for rank, rows in ((0, index[:5]), (1, index[5:])):
        monkeypatch.setattr(comm, "get_rank", lambda rank=rank: rank)
        parts.append(ClassAwareSampler(labels, 16, seed=5)(rows, labels[rows]))
    assert torch.equal(torch.cat(parts), single)
