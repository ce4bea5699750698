"""RepDistiller's feature and relation losses (AT, SP, PKT, RKD, NST, CC): values worked out by
hand on tiny inputs, equality with RepDistiller's own modules (numbers stored in
``repdistiller_losses.json``), and gradients reaching the student only."""

import json
import math
from pathlib import Path

import pytest
import torch

from kdzoo.losses import (
    LOSS_REGISTRY,
    AttentionTransferLoss,
    CorrelationCongruenceLoss,
    NSTLoss,
    PKTLoss,
    RKDLoss,
    SimilarityPreservingLoss,
    build_loss,
)
from kdzoo_testing import repdistiller_inputs

HERE = Path(__file__).parent
NAMES = {
    "attention_transfer": AttentionTransferLoss,
    "similarity_preserving": SimilarityPreservingLoss,
    "pkt": PKTLoss,
    "rkd": RKDLoss,
    "nst": NSTLoss,
    "correlation_congruence": CorrelationCongruenceLoss,
}


def _t(rows) -> torch.Tensor:
    return torch.tensor(rows, dtype=torch.float64)


@pytest.fixture(scope="module")
def reference():
    """(RepDistiller's stored numbers, the inputs they were computed on)."""
    fixture = json.loads((HERE / "repdistiller_losses.json").read_text())
    inputs = repdistiller_inputs.make_inputs()
    for key, total in fixture["input_sums"].items():
        # A different random stream would make the stored numbers meaningless.
        assert math.isclose(inputs[key].sum().item(), total, rel_tol=1e-12), key
    return fixture, inputs


def test_registered_names():
    for name, cls in NAMES.items():
        assert LOSS_REGISTRY.get(name) is cls
        assert isinstance(build_loss(name), cls)


# ----------------------------------------------------------------------------- (a) by hand


def test_attention_transfer_by_hand():
    # Student: 2 samples, 2 channels, 1 x 2 maps. mean_c f^2 = [1, 2] and [2, 5].
    f_s = _t([[[[1, 2]], [[1, 0]]], [[[0, 3]], [[2, 1]]]])
    # Teacher: 1 channel. f^2 = [1, 1] and [0, 4].
    f_t = _t([[[[1, 1]]], [[[0, 2]]]])
    (loss,) = AttentionTransferLoss()([f_s], [f_t])
    r2, r5, r29 = math.sqrt(2), math.sqrt(5), math.sqrt(29)
    squared = [(1 / r5 - 1 / r2) ** 2, (2 / r5 - 1 / r2) ** 2, (2 / r29) ** 2, (5 / r29 - 1) ** 2]
    assert math.isclose(loss.item(), sum(squared) / 4, rel_tol=1e-12)


def test_similarity_preserving_by_hand():
    f_s = _t([[1, 0], [1, 1]])  # Gram [[1, 1], [1, 2]] -> rows [1, 1]/sqrt2, [1, 2]/sqrt5
    f_t = _t([[2, 0], [0, 3]])  # Gram [[4, 0], [0, 9]] -> rows [1, 0], [0, 1]
    (loss,) = SimilarityPreservingLoss()([f_s], [f_t])
    r2, r5 = math.sqrt(2), math.sqrt(5)
    squared = [(1 - 1 / r2) ** 2, (1 / r2) ** 2, (1 / r5) ** 2, (1 - 2 / r5) ** 2]
    assert loss.dim() == 0
    assert math.isclose(loss.item(), sum(squared) / 2**2, rel_tol=1e-12)


def test_pkt_by_hand():
    eps = 1e-7
    n2 = (1 / (1 + eps)) ** 2  # a unit vector's cosine with itself after x / (|x| + eps)
    f_s = _t([[1, 0], [0, 1]])  # K = [[(n2+1)/2, 1/2], [1/2, (n2+1)/2]]
    f_t = _t([[1, 0], [2, 0]])  # every cosine is n2: K and P are constant, P = 1/2
    loss = PKTLoss()(f_s, f_t)
    k_self = (n2 + 1) / 2
    p_s_self, p_s_other = k_self / (k_self + 0.5), 0.5 / (k_self + 0.5)
    terms = [0.5 * math.log((0.5 + eps) / (p + eps)) for p in (p_s_self, p_s_other)]
    assert math.isclose(loss.item(), 2 * sum(terms) / 4, rel_tol=1e-12)
    # Without eps, with the paper's KL written out: ~ 1/4 * (log(3/4) + log(3/2)).
    assert math.isclose(loss.item(), 0.25 * (math.log(0.75) + math.log(1.5)), rel_tol=1e-5)


def test_rkd_by_hand():
    student = _t([[0, 0], [1, 0], [2, 0]])  # collinear
    teacher = _t([[0, 0], [1, 0], [0, 1]])  # right angle at the first point
    r2 = math.sqrt(2)
    # Distances over their mean off the diagonal: student 1, 2, 1 (mean 4/3); teacher 1, 1, r2.
    mu_t = (2 + r2) / 3
    diffs = [3 / 4 - 1 / mu_t, 6 / 4 - 1 / mu_t, 3 / 4 - r2 / mu_t]  # pairs 01, 02, 12
    assert all(abs(d) < 1 for d in diffs)  # Huber's quadratic side
    loss_d = 2 * sum(0.5 * d**2 for d in diffs) / 9  # each pair twice among 3 x 3 entries
    # Angles <u_ij, u_ik> at vertex i; the non-zero student-teacher differences:
    # vertex 0: (j,k) = (1,2), (2,1): 1 - 0 = 1 -> Huber 1 - 1/2
    # vertex 1: (0,2), (2,0): -1 - 1/r2 -> Huber |.| - 1/2
    # vertex 2: (0,1), (1,0): 1 - 1/r2 -> Huber (.)^2 / 2
    huber = 2 * 0.5 + 2 * (1 + 1 / r2 - 0.5) + 2 * 0.5 * (1 - 1 / r2) ** 2
    loss_a = huber / 27
    loss = RKDLoss()(student, teacher)
    assert math.isclose(loss.item(), 25 * loss_d + 50 * loss_a, rel_tol=1e-12)
    # Scale does not matter to distances over their mean nor to angles.
    assert RKDLoss()(2 * teacher, teacher).item() == pytest.approx(0, abs=1e-12)


def test_nst_by_hand():
    # Sample 0: student channel [3, 4] -> [0.6, 0.8]; teacher channels [1, 0] and [0, 1].
    #   mean k(t,t) = 1/2, k(s,s) = 1, mean k(s,t) = (0.36 + 0.64)/2 = 1/2: MMD^2 = 1/2.
    # Sample 1: every channel [1, 0]: all kernels 1: MMD^2 = 0.
    f_s = _t([[[[3, 4]]], [[[1, 0]]]])
    f_t = _t([[[[1, 0]], [[0, 1]]], [[[1, 0]], [[1, 0]]]])
    (loss,) = NSTLoss()([f_s], [f_t])
    assert math.isclose(loss.item(), (0.5 + 0) / 2, rel_tol=1e-12)


def test_correlation_congruence_by_hand():
    f_s = _t([[1, 2], [0, 0], [3, 1]])
    f_t = _t([[0, 0], [1, 1], [1, 1]])
    # |s - t| = [1, 2], [1, 1], [2, 0]; neighbours: 1*1 + 2*1 = 3 and 1*2 + 1*0 = 2.
    loss = CorrelationCongruenceLoss()(f_s, f_t)
    assert math.isclose(loss.item(), (3 + 2) / 2, rel_tol=1e-12)


# ------------------------------------------------------------------- (b) RepDistiller's numbers


def _kdzoo_values(x: dict) -> dict:
    g_s = [x[f"maps_s{i}"] for i in range(3)]
    g_t = [x[f"maps_t{i}"] for i in range(3)]
    return {
        "attention_transfer": [v.item() for v in AttentionTransferLoss()(g_s, g_t)],
        "nst": [v.item() for v in NSTLoss()(g_s, g_t)],
        "similarity_preserving": [
            v.item() for v in SimilarityPreservingLoss()([x["sp_s"]], [x["sp_t"]])
        ],
        "pkt": PKTLoss()(x["vec_s"], x["vec_t"]).item(),
        "rkd": RKDLoss()(x["vec_s"], x["vec_t"]).item(),
        "correlation_congruence": CorrelationCongruenceLoss()(x["emb_s"], x["emb_t"]).item(),
    }


def test_values_equal_repdistiller(reference):
    fixture, x = reference
    ours = _kdzoo_values(x)
    assert set(ours) == set(fixture["values"])
    for name, expected in fixture["values"].items():
        got = ours[name]
        if isinstance(expected, list):
            assert len(got) == len(expected), name
        else:
            got, expected = [got], [expected]
        for g, e in zip(got, expected, strict=True):
            assert math.isclose(g, e, rel_tol=1e-6), (name, g, e)


def test_gradients_equal_repdistiller(reference):
    fixture, x = reference
    g_t = [x[f"maps_t{i}"] for i in range(3)]
    for name, entry in fixture["gradients"].items():
        student = x[entry["input"]].clone().requires_grad_(True)
        if name == "attention_transfer":
            g_s = [student, x["maps_s1"], x["maps_s2"]]
            loss = sum(AttentionTransferLoss()(g_s, g_t))  # summed as train_student.py does
        else:
            loss = build_loss(name)(student, x["vec_t"])
        loss.backward()
        flat = student.grad.reshape(-1)
        for i, expected in zip(entry["index"], entry["value"], strict=True):
            assert math.isclose(flat[i].item(), expected, rel_tol=1e-6), (name, i)


def test_float32_inputs_stay_close_to_the_float64_reference(reference):
    fixture, x = reference
    ours = _kdzoo_values({k: v.float() for k, v in x.items()})
    for name, expected in fixture["values"].items():
        got = ours[name] if isinstance(expected, list) else [ours[name]]
        expected = expected if isinstance(expected, list) else [expected]
        for g, e in zip(got, expected, strict=True):
            assert math.isclose(g, e, rel_tol=1e-4), (name, g, e)


# ------------------------------------------------------------------------- (c) gradients


def _pair(shape_s, shape_t, seed):
    g = torch.Generator().manual_seed(seed)
    s = torch.randn(shape_s, generator=g, dtype=torch.float64).requires_grad_(True)
    t = torch.randn(shape_t, generator=g, dtype=torch.float64).requires_grad_(True)
    return s, t


@pytest.mark.parametrize(
    "name, shape_s, shape_t, as_list",
    [
        ("attention_transfer", (3, 2, 4, 4), (3, 5, 2, 2), True),
        ("nst", (3, 2, 2, 2), (3, 4, 4, 4), True),
        ("similarity_preserving", (3, 2, 2, 2), (3, 5, 2, 2), True),
        ("pkt", (3, 4), (3, 6), False),
        ("rkd", (3, 4), (3, 6), False),
    ],
)
def test_gradients_reach_the_student_only(name, shape_s, shape_t, as_list):
    s, t = _pair(shape_s, shape_t, seed=7)
    out = build_loss(name)([s], [t]) if as_list else build_loss(name)(s, t)
    loss = sum(out) if as_list else out
    loss.backward()
    assert s.grad is not None and torch.isfinite(s.grad).all() and s.grad.abs().sum() > 0
    assert t.grad is None  # the teacher is a target, detached inside the loss


def test_correlation_congruence_trains_both_embeddings():
    # RepDistiller feeds CC trainable embeddings of both networks (helper/loops.py:162-165):
    # the teacher-side input is not detached, its gradient trains the teacher's embedding.
    s, t = _pair((3, 4), (3, 4), seed=7)
    CorrelationCongruenceLoss()(s, t).backward()
    assert s.grad.abs().sum() > 0 and t.grad.abs().sum() > 0


def test_nst_and_at_are_zero_on_equal_maps_and_keep_one_loss_per_pair():
    s, _ = _pair((2, 3, 4, 4), (1,), seed=3)
    maps = [s.detach(), s.detach()[:, :2]]
    for loss in (AttentionTransferLoss(), NSTLoss()):
        values = loss(maps, maps)
        assert len(values) == 2
        for v in values:
            assert v.item() == pytest.approx(0, abs=1e-12)
    with pytest.raises(ValueError, match="pairs"):
        NSTLoss()(maps, maps[:1])


def test_half_precision_inputs_are_computed_in_float32():
    s, t = _pair((4, 3, 2, 2), (4, 5, 2, 2), seed=5)
    s16, t16 = s.detach().bfloat16(), t.detach().bfloat16()
    with torch.autocast("cpu", dtype=torch.bfloat16):
        (loss,) = SimilarityPreservingLoss()([s16], [t16])
    (expected,) = SimilarityPreservingLoss()([s16.float()], [t16.float()])
    assert loss.dtype == torch.float32
    assert loss.item() == expected.item()
