"""CRD's contrast indices as the reference draws them (RepDistiller, dataset/cifar100.py,
CIFAR100InstanceSample.__getitem__): distinct negatives of other classes, with replacement only
when K exceeds a class's pool; positive: the anchor (exact) or a sample of its class (relax)."""

import pytest
import torch

from kdzoo.memory import ClassAwareSampler
from kdzoo.utils import comm

SIZES = [3, 5, 8, 12, 20, 30, 45, 60, 80, 137]  # N = 400; other-class pools 263 (class 9) to 397
N = sum(SIZES)


def unbalanced_labels() -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    labels = torch.cat([torch.full((n,), c) for c, n in enumerate(SIZES)])
    return labels[torch.randperm(N, generator=generator)]


def repeats_per_row(idx: torch.Tensor) -> torch.Tensor:
    ordered = idx.sort(dim=1).values
    return (ordered[:, 1:] == ordered[:, :-1]).sum(dim=1)


@pytest.mark.parametrize("mode", ["exact", "relax"])
def test_negatives_are_distinct_samples_of_other_classes(mode):
    labels = unbalanced_labels()
    sampler = ClassAwareSampler(labels, num_negatives=200, mode=mode, seed=1)
    index = torch.arange(N).repeat(3)
    idx = sampler(index, labels[index])
    assert idx.shape == (3 * N, 201)
    negatives = idx[:, 1:]
    assert (repeats_per_row(negatives) == 0).all()
    assert not (labels[negatives] == labels[index, None]).any()
    if mode == "exact":
        assert torch.equal(idx[:, 0], index)
    else:
        assert torch.equal(labels[idx[:, 0]], labels[index])
        assert (idx[:, 0] != index).any()


@pytest.mark.parametrize("cls", [0, 9])  # the largest and the smallest pool
def test_distinct_negatives_are_uniform_over_the_other_classes(cls):
    labels = unbalanced_labels()
    rows, k = 300, 200
    anchor = int(torch.nonzero(labels == cls)[0])
    index = torch.full((rows,), anchor)
    idx = ClassAwareSampler(labels, k, seed=2)(index, labels[index])
    counts = torch.bincount(idx[:, 1:].flatten(), minlength=N).double()
    others = labels != cls
    assert counts[~others].sum() == 0
    # Each row holds k of the pool's samples: every sample is in a row with probability p.
    p = k / int(others.sum())
    assert counts[others].mean() == pytest.approx(rows * p)
    binomial_std = (rows * p * (1 - p)) ** 0.5
    assert 0.8 * binomial_std < counts[others].std() < 1.2 * binomial_std


def test_relax_positive_is_uniform_over_the_anchor_class_itself_included():
    labels = unbalanced_labels()
    anchor = int(torch.nonzero(labels == 0)[0])  # class 0: 3 samples
    index = torch.full((300,), anchor)
    idx = ClassAwareSampler(labels, 50, mode="relax", seed=3)(index, labels[index])
    members = torch.nonzero(labels == 0).flatten()
    counts = torch.stack([(idx[:, 0] == m).sum() for m in members])
    assert counts.sum() == 300 and (counts > 70).all() and (counts < 130).all()


def test_with_replacement_draws_as_before():
    """``with_replacement``: the previous draw, uniform offsets among the other classes."""
    labels = unbalanced_labels()
    k, index = 200, torch.arange(N)
    idx = ClassAwareSampler(labels, k, seed=4, with_replacement=True)(index, labels[index])
    # The previous formula: K + 1 float64 uniforms per row from the seeded generator, column 0
    # (relax's positive) unused in exact mode, offsets skipping the anchor's class.
    u = torch.rand(N, k + 1, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    counts = torch.bincount(labels)
    start, count = (torch.cumsum(counts, 0) - counts)[labels], counts[labels]
    r = (u[:, 1:] * (N - count)[:, None]).long()
    r = r + (r >= start[:, None]) * count[:, None]
    expected = torch.argsort(labels, stable=True)[r]
    assert torch.equal(idx[:, 0], index) and torch.equal(idx[:, 1:], expected)
    assert (repeats_per_row(idx[:, 1:]) > 0).all()  # ~26% of 200 draws from <= 397 repeat
    assert not (labels[idx[:, 1:]] == labels[:, None]).any()
    relax = ClassAwareSampler(labels, k, mode="relax", seed=4, with_replacement=True)
    idx = relax(index, labels)
    assert torch.equal(labels[idx[:, 0]], labels)
    assert not (labels[idx[:, 1:]] == labels[:, None]).any()


@pytest.mark.parametrize("mode", ["exact", "relax"])
def test_a_pool_smaller_than_k_is_drawn_with_replacement(mode):
    """As the reference: ``replace = k > len(cls_negative[target])``, per anchor."""
    labels = unbalanced_labels()
    index = torch.arange(N)
    idx = ClassAwareSampler(labels, 300, mode=mode, seed=5)(index, labels)
    negatives = idx[:, 1:]
    assert not (labels[negatives] == labels[:, None]).any()
    small_pool = labels == 9  # 263 other samples < 300: repeats are certain
    assert (repeats_per_row(negatives[small_pool]) > 0).all()
    assert (repeats_per_row(negatives[~small_pool]) == 0).all()
    # K above every pool: every row with replacement, and no keys for distinct draws.
    sampler = ClassAwareSampler(labels, 500, mode=mode, seed=5)
    assert not sampler.draws_distinct
    negatives = sampler(index, labels)[:, 1:]
    assert (repeats_per_row(negatives) > 0).all()
    assert not (labels[negatives] == labels[:, None]).any()


@pytest.mark.parametrize("mode", ["exact", "relax"])
@pytest.mark.parametrize("with_replacement", [False, True])
def test_same_seed_same_draws_and_the_state_dict_continues_the_stream(mode, with_replacement):
    labels = unbalanced_labels()
    a, b = (
        ClassAwareSampler(labels, 300, mode, seed=3, with_replacement=with_replacement)
        for _ in range(2)
    )
    index = torch.arange(8)
    first = a(index, labels[index])
    assert torch.equal(first, b(index, labels[index]))
    state = a.state_dict()
    assert set(state) == {"_extra_state"}  # label-derived buffers are rebuilt, not saved
    expected = a(index, labels[index])
    assert not torch.equal(expected[:, 1:], first[:, 1:])  # the stream moves on
    c = ClassAwareSampler(labels, 300, mode, seed=0, with_replacement=with_replacement)
    c.load_state_dict(state)
    assert torch.equal(c(index, labels[index]), expected)


@pytest.mark.parametrize("mode", ["exact", "relax"])
@pytest.mark.parametrize("with_replacement", [False, True])
@pytest.mark.parametrize("k", [200, 300])  # every pool >= K / class 9's pool < K
@pytest.mark.parametrize("chunk_rows", [None, 3])  # keys in one piece / in chunks across ranks
def test_ranks_draw_slices_of_one_global_draw(monkeypatch, mode, with_replacement, k, chunk_rows):
    labels = unbalanced_labels()
    index = torch.cat([torch.nonzero(labels == 9).flatten()[:3], torch.arange(7)])  # 10 anchors

    def sampler():
        s = ClassAwareSampler(labels, k, mode, seed=5, with_replacement=with_replacement)
        if chunk_rows:
            s.max_key_elements = chunk_rows * s.max_pool
        return s

    single = sampler()(index, labels[index])
    monkeypatch.setattr(comm, "get_world_size", lambda: 2)
    parts = []
    for rank, rows in ((0, index[:5]), (1, index[5:])):
        monkeypatch.setattr(comm, "get_rank", lambda rank=rank: rank)
        parts.append(sampler()(rows, labels[rows]))
    assert torch.equal(torch.cat(parts), single)
