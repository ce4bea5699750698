"""KDSVD's loss: equality with mdistiller's own ``kdsvd_loss`` (numbers stored in
``kdsvd_reference.json``), a value worked out by hand, gradients to the student only, the
non-finite guard, pooling of maps of different sizes, half precision computed in float32, and
the SVD's gradient where singular values repeat (the authors' rule; PyTorch's is NaN there)."""

import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from kdzoo.losses import LOSS_REGISTRY, KDSVDLoss, build_loss
from kdzoo.losses.svd import finite_or_zero, singular_values_and_right_vectors
from kdzoo_testing import kdsvd_reference

HERE = Path(__file__).parent


@pytest.fixture(scope="module")
def reference():
    """(mdistiller's stored numbers, the inputs they were computed on)."""
    fixture = json.loads((HERE / "kdsvd_reference.json").read_text())
    inputs = kdsvd_reference.make_inputs()
    for key, total in fixture["input_sums"].items():
        # A different random stream would make the stored numbers meaningless.
        assert math.isclose(inputs[key].sum().item(), total, rel_tol=1e-12), key
    return fixture, inputs


def test_registered_name():
    assert LOSS_REGISTRY.get("kdsvd") is KDSVDLoss
    assert build_loss("kdsvd", k=2).k == 2


# ------------------------------------------------------------------- (a) mdistiller's numbers
# Singular vectors are defined up to sign and the loss is not invariant to the sign LAPACK picks
# for each layer's teacher vectors (the RBF compares consecutive layers): these equalities hold
# because kdzoo and the reference decompose the same matrices with the same routine.


@pytest.mark.parametrize("k", kdsvd_reference.KS)
def test_values_equal_mdistiller(reference, k):
    fixture, x = reference
    g_s, g_t = kdsvd_reference.layers(x)
    got = KDSVDLoss(k)(g_s, g_t)
    assert got.dtype == torch.float64
    assert math.isclose(got.item(), fixture["values"][f"k{k}"], rel_tol=1e-6)


@pytest.mark.parametrize("k", kdsvd_reference.KS)
def test_float32_values_equal_mdistillers_float32_code(reference, k):
    # The reference as it is casts the maps to float32; so do float32 inputs here. (Its float32
    # and float64 values differ by 1%: sgesdd and dgesdd give one teacher vector opposite signs.)
    fixture, x = reference
    g_s, g_t = kdsvd_reference.layers({key: v.float() for key, v in x.items()})
    got = KDSVDLoss(k)(g_s, g_t)
    assert math.isclose(got.item(), fixture["values_float32"][f"k{k}"], rel_tol=1e-5)


def test_gradients_equal_mdistiller(reference):
    fixture, x = reference
    g_s, g_t = kdsvd_reference.layers(x)
    for key, entry in fixture["gradients"].items():
        student = [m.clone().requires_grad_(f"maps_s{i}" == key) for i, m in enumerate(g_s)]
        KDSVDLoss(1)(student, g_t).backward()
        flat = next(m for m in student if m.requires_grad).grad.reshape(-1)
        for i, expected in zip(entry["index"], entry["value"], strict=True):
            assert math.isclose(flat[i].item(), expected, rel_tol=1e-6, abs_tol=1e-12), (key, i)


# ------------------------------------------------------------------------------- (b) by hand


def _map_with_right_vectors(angle: float, values=(2.0, 1.0)) -> torch.Tensor:
    """A ``[1, 1, 2, 2]`` map whose ``[C*H, W] = [2, 2]`` matrix is ``diag(values) V^T``, ``V``'s
    columns ``(cos a, sin a)`` and ``(-sin a, cos a)``: its first right singular vector is
    ``(cos a, sin a)``, up to sign."""
    c, s = math.cos(angle), math.sin(angle)
    rows = [[values[0] * c, values[0] * s], [-values[1] * s, values[1] * c]]
    return torch.tensor(rows, dtype=torch.float64).reshape(1, 1, 2, 2)


def test_two_layers_by_hand():
    # Teacher: the same map at both layers, first right singular vector v_t = e1 (the sign LAPACK
    # picks is the same for both, and flipping every vector together leaves the loss unchanged).
    # K = 1: the normalised singular value is 1. Student: first vectors at 30 and -20 degrees,
    # the better match of e1 in each (|cos| .87 vs .5 and .94 vs .34), aligned to +e1.
    t = _map_with_right_vectors(0.0)
    a0, a1 = math.radians(30), math.radians(-20)
    s0, s1 = _map_with_right_vectors(a0), _map_with_right_vectors(a1)
    v_t = (1.0, 0.0)
    v_s0, v_s1 = (math.cos(a0), math.sin(a0)), (math.cos(a1), math.sin(a1))

    def rbf(v, w, i, j):  # exp(-(v_i - w_j)^2 / 8), layer 1's entry i against layer 0's entry j
        return math.exp(-((v[i] - w[j]) ** 2) / 8)

    expected = sum(
        (rbf(v_s1, v_s0, i, j) - rbf(v_t, v_t, i, j)) ** 2 for i in range(2) for j in range(2)
    )
    loss = KDSVDLoss(1)([s0, s1], [t, t])
    assert math.isclose(loss.item(), expected, rel_tol=1e-12)
    assert expected > 0.01  # not a vacuous check
    # Two copies of the sample: each layer's sum is divided by the batch size, B = 2.
    loss = KDSVDLoss(1)([s0.repeat(2, 1, 1, 1), s1.repeat(2, 1, 1, 1)], [t.repeat(2, 1, 1, 1)] * 2)
    assert math.isclose(loss.item(), expected, rel_tol=1e-12)


def test_a_single_layer_has_no_pair_and_equal_maps_give_zero():
    g = torch.Generator().manual_seed(1)
    maps = [torch.randn(2, 3, 4, 4, generator=g, dtype=torch.float64) for _ in range(2)]
    assert KDSVDLoss()(maps[:1], maps[:1]).item() == 0
    # Student = teacher: the student's first vector is the teacher's, aligned to its sign.
    assert KDSVDLoss()(maps, maps).item() == pytest.approx(0, abs=1e-20)


def test_maps_are_read_as_c_times_h_by_w():
    # mdistiller's layout: feat.view(B, C*H, W). The loss of the maps equals that of the same
    # [C*H, W] matrices given as maps of C*H channels and one row, and differs after a transpose
    # of H and W.
    g = torch.Generator().manual_seed(2)
    g_s = [torch.randn(2, 3, 4, 4, generator=g, dtype=torch.float64) for _ in range(2)]
    g_t = [torch.randn(2, 5, 4, 4, generator=g, dtype=torch.float64) for _ in range(2)]
    flat = [[f.reshape(2, -1, 1, 4) for f in g] for g in (g_s, g_t)]
    assert KDSVDLoss()(g_s, g_t).item() == KDSVDLoss()(*flat).item()
    transposed = [[f.transpose(2, 3) for f in g] for g in (g_s, g_t)]
    assert not math.isclose(KDSVDLoss()(g_s, g_t).item(), KDSVDLoss()(*transposed).item())


def test_channels_last_maps_give_the_same_loss():
    # kdzoo trains with MODEL.CHANNELS_LAST: mdistiller's .view would refuse those maps.
    g = torch.Generator().manual_seed(3)
    g_s = [torch.randn(2, 3, 4, 4, generator=g, dtype=torch.float64) for _ in range(3)]
    g_t = [torch.randn(2, 5, 4, 4, generator=g, dtype=torch.float64) for _ in range(3)]
    last = [[f.contiguous(memory_format=torch.channels_last) for f in g] for g in (g_s, g_t)]
    assert not last[0][0].is_contiguous()
    assert KDSVDLoss()(*last).item() == KDSVDLoss()(g_s, g_t).item()


def test_maps_of_different_sizes_are_pooled_to_the_smaller():
    # kdzoo's addition (the reference needs one width per layer): the larger map is pooled.
    g = torch.Generator().manual_seed(4)
    g_s = [torch.randn(2, 3, 8, 8, generator=g, dtype=torch.float64) for _ in range(2)]
    g_t = [torch.randn(2, 5, 4, 4, generator=g, dtype=torch.float64) for _ in range(2)]
    pooled = [F.adaptive_avg_pool2d(f, (4, 4)) for f in g_s]
    assert KDSVDLoss()(g_s, g_t).item() == KDSVDLoss()(pooled, g_t).item()
    with pytest.raises(ValueError, match="pairs"):
        KDSVDLoss()(g_s, g_t[:1])


# ----------------------------------------------------------------------------- (c) gradients


def test_gradients_reach_the_student_only():
    g = torch.Generator().manual_seed(5)
    g_s = [torch.randn(3, 2, s, s, generator=g, dtype=torch.float64) for s in (8, 4)]
    g_t = [torch.randn(3, 4, s, s, generator=g, dtype=torch.float64) for s in (8, 4)]
    for f in (*g_s, *g_t):
        f.requires_grad_(True)
    KDSVDLoss()(g_s, g_t).backward()
    for f in g_s:
        assert f.grad is not None and torch.isfinite(f.grad).all() and f.grad.abs().sum() > 0
    assert all(f.grad is None for f in g_t)  # the teacher is a target, detached inside the loss
    # Teacher maps that do not require grad (computed under no_grad) work the same.
    s = [f.detach().clone().requires_grad_(True) for f in g_s]
    KDSVDLoss()(s, [f.detach() for f in g_t]).backward()
    for a, b in zip(s, g_s, strict=True):
        torch.testing.assert_close(a.grad, b.grad, rtol=0, atol=0)


# ------------------------------------------------------------------------- (d) non-finite


def test_non_finite_entries_become_zero():
    x = torch.tensor([1.5, float("nan"), float("inf"), -float("inf"), -2.0])
    assert finite_or_zero(x).tolist() == [1.5, 0.0, 0.0, 0.0, -2.0]


# --------------------------------------------------------------------- (e) half precision


def test_half_precision_inputs_are_computed_in_float32():
    g = torch.Generator().manual_seed(6)
    g_s = [torch.randn(4, 3, s, s, generator=g).bfloat16() for s in (8, 4)]
    g_t = [torch.randn(4, 5, s, s, generator=g).bfloat16() for s in (8, 4)]
    with torch.autocast("cpu", dtype=torch.bfloat16):
        loss = KDSVDLoss()(g_s, g_t)
    expected = KDSVDLoss()([f.float() for f in g_s], [f.float() for f in g_t])
    assert loss.dtype == torch.float32
    assert loss.item() == expected.item()


# ------------------------------------------ (f) the SVD's gradient where singular values repeat


def _torch_svd(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    _, s, vh = torch.linalg.svd(x, full_matrices=False)
    return s, vh.transpose(-2, -1)


@pytest.mark.parametrize("shape", [(3, 7, 4), (3, 4, 7), (2, 5, 5)])
def test_the_svd_gradient_is_pytorchs_where_singular_values_differ(shape):
    g = torch.Generator().manual_seed(3)
    x = torch.randn(*shape, generator=g, dtype=torch.float64)
    k = min(shape[1:])
    d_s = torch.randn(shape[0], k, generator=g, dtype=torch.float64)
    d_v = torch.randn(shape[0], shape[2], k, generator=g, dtype=torch.float64)
    grads = []
    for svd in (singular_values_and_right_vectors, _torch_svd):
        leaf = x.clone().requires_grad_(True)
        s, v = svd(leaf)
        ((s * d_s).sum() + (v * d_v).sum()).backward()
        grads.append(leaf.grad)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-10, atol=1e-12)


@pytest.mark.parametrize(
    "zeros", [(12, 3, 5), (3, 6, 1)], ids=["tall-zero-columns", "wide-zero-row"]
)
def test_the_svd_gradient_is_finite_and_exact_where_singular_values_repeat(zeros):
    # A map with zero image columns (a random crop's padded border, before any conv): its
    # [C*H, W] matrix has rank 3 of 8 and five singular values exactly 0; and a wide matrix
    # with a zero row (3 x 6, rank 2), whose gradient divides by s. A loss of the leading right
    # vectors (sign-invariant: v v^T) is differentiable there; PyTorch's backward divides 0 by
    # s_i^2 - s_j^2 = 0 (or by s = 0) and returns NaN.
    rows, kept, zeros_ = zeros
    g = torch.Generator().manual_seed(4)
    if rows > kept:  # tall: zero columns
        x = torch.cat([torch.randn(1, rows, kept, generator=g), torch.zeros(1, rows, zeros_)], 2)
    else:  # wide: a zero row
        x = torch.cat(
            [torch.randn(1, rows - zeros_, kept, generator=g), torch.zeros(1, 1, kept)], 1
        )
    x = x.double()
    n = x.shape[2]
    weights = torch.randn(n, n, generator=g, dtype=torch.float64)

    def loss(x: torch.Tensor, svd) -> torch.Tensor:
        top = svd(x)[1][:, :, :2]
        return ((top @ top.transpose(-2, -1)) * weights).sum()

    grads = []
    for svd in (singular_values_and_right_vectors, _torch_svd):
        leaf = x.clone().requires_grad_(True)
        loss(leaf, svd).backward()
        grads.append(leaf.grad)
    assert torch.isnan(grads[1]).any()  # the case PyTorch cannot differentiate
    assert torch.isfinite(grads[0]).all()
    direction = torch.randn(x.shape, generator=g, dtype=torch.float64)
    eps = 1e-6
    central = loss(x + eps * direction, _torch_svd) - loss(x - eps * direction, _torch_svd)
    assert math.isclose(
        (grads[0] * direction).sum().item(), central.item() / (2 * eps), rel_tol=1e-6
    )


def test_a_map_with_repeated_columns_gives_the_student_a_finite_gradient():
    # Padded crop borders, after convolutions: columns that repeat. The loss's gradient was NaN
    # there (the short resnet56 -> resnet20 run diverged at iteration 266).
    g = torch.Generator().manual_seed(5)
    left = torch.randn(4, 3, 4, 3, generator=g)
    g_s = [torch.cat([left, left[..., :1].expand(4, 3, 4, 5)], -1) for _ in range(2)]
    g_s = [f.clone().requires_grad_(True) for f in g_s]
    g_t = [torch.randn(4, 3, 4, 8, generator=g) for _ in range(2)]
    KDSVDLoss()(g_s, g_t).backward()
    assert all(torch.isfinite(f.grad).all() and f.grad.abs().sum() > 0 for f in g_s)
