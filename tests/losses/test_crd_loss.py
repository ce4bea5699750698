"""CRD's NCE loss and the partition estimate Z against direct evaluations of their formulas."""

import math

import torch

from kdzoo.losses import build_loss
from kdzoo.losses.crd import PartitionEstimate


def test_nce_loss_equals_the_formula():
    torch.manual_seed(0)
    n, k, eps = 1000, 7, 1e-7
    scores = torch.rand(3, k + 1, dtype=torch.float64) * 0.02
    loss = build_loss("crd_nce", num_samples=n, eps=eps)(scores)
    expected = 0.0
    for row in scores.tolist():
        pos, negs = row[0], row[1:]
        expected -= math.log(pos / (pos + k / n + eps))
        expected -= sum(math.log((k / n) / (p + k / n + eps)) for p in negs)
    assert math.isclose(loss.item(), expected / 3, rel_tol=1e-12)


def test_z_is_estimated_on_the_first_batch_then_frozen():
    z = PartitionEstimate(num_samples=500)
    first = torch.rand(4, 9) + 0.5
    out = z(first)
    expected_z = first.mean() * 500
    torch.testing.assert_close(z.z, expected_z)
    torch.testing.assert_close(out, first / expected_z)
    z(torch.rand(4, 9) * 100)
    torch.testing.assert_close(z.z, expected_z)  # frozen

    restored = PartitionEstimate(num_samples=500)
    restored.load_state_dict(z.state_dict())
    torch.testing.assert_close(restored(first), first / expected_z)


def test_z_with_momentum_tracks_the_scores():
    z = PartitionEstimate(num_samples=10, momentum=0.9)
    a, b = torch.full((2, 3), 2.0), torch.full((2, 3), 4.0)
    z(a)
    torch.testing.assert_close(z.z, torch.tensor(20.0))
    z(b)
    torch.testing.assert_close(z.z, torch.tensor(0.9 * 20.0 + 0.1 * 40.0))
