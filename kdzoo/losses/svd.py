"""KDSVD: Lee, Kim & Song, "Self-supervised Knowledge Distillation Using Singular Value
Decomposition", ECCV 2018.

Computes what mdistiller's ``mdistiller/distillers/KDSVD.py`` (commit a08d46f, ``kdsvd_loss``)
computes, which differs from RepDistiller's ``distiller_zoo/KDSVD.py`` (commit b84f547) and the
paper in the matrix that is decomposed (see :class:`KDSVDLoss` and docs/decisions.md,
"Baselines").
"""

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from ._feature_maps import check_same_length, full_precision, pool_to_smaller_map
from .build import LOSS_REGISTRY


def finite_or_zero(x: torch.Tensor) -> torch.Tensor:
    """``x`` with its NaN and infinite entries set to 0 (the reference's ``removenan``)."""
    return torch.where(torch.isfinite(x), x, torch.zeros_like(x))


class _SingularValuesAndRightVectors(torch.autograd.Function):
    """``s`` ``[B, k]`` and ``V`` ``[B, n, k]`` of ``x = U diag(s) V^T`` ``[B, m, n]``,
    ``k = min(m, n)``, with a gradient that stays finite where singular values repeat.

    The gradient (Townsend, "Differentiating the singular value decomposition", 2016, with no
    gradient through ``U``) is::

        dx = U [diag(ds) + diag(s) (F o (V^T dV - dV^T V))] V^T
             + U diag(1/s) dV^T (I - V V^T)            (only where n > m: V is not square;
                                                          1/s taken as 0 where s = 0)
        F_ij = 1 / (s_j^2 - s_i^2)

    PyTorch's own backward divides by ``s_j^2 - s_i^2`` as is, so a pair of exactly equal
    singular values makes the whole sample's gradient NaN, even where the loss does not depend
    on their vectors. That happens in real training: a map whose image columns repeat (the
    zero-padded border of a random crop) is rank-deficient, and LAPACK returns its null
    space's singular values as one repeated tiny number (kdzoo's short resnet56 -> resnet20 run
    went NaN at iteration 266; mdistiller's ``torch.svd`` would too). Here ``F`` is 0 where it
    is not finite: the entries of ``V^T dV - dV^T V`` that pair two unused vectors are 0, so
    where only leading vectors distinct from the rest are used (KDSVD's ``K + 3``), the
    gradient is the exact one. (The authors' TensorFlow code guards the case with an
    approximate SVD gradient of its own; see docs/decisions.md, KDSVD.)
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        u, s, vh = torch.linalg.svd(x, full_matrices=False)  # torch.svd(x): V = Vh^T
        v = vh.transpose(-2, -1)
        ctx.save_for_backward(u, s, v)
        return s, v

    @staticmethod
    @once_differentiable
    def backward(ctx, d_s: torch.Tensor | None, d_v: torch.Tensor | None) -> torch.Tensor:
        u, s, v = ctx.saved_tensors
        inner = torch.zeros(*s.shape, s.shape[-1], dtype=s.dtype, device=s.device)  # [B, k, k]
        if d_v is not None:
            s2 = s.pow(2)
            f = finite_or_zero(1 / (s2.unsqueeze(-2) - s2.unsqueeze(-1)))  # F_ij, 0 on i = j
            vt_dv = v.transpose(-2, -1) @ d_v
            inner = inner + s.unsqueeze(-1) * (f * (vt_dv - vt_dv.transpose(-2, -1)))
        if d_s is not None:
            inner = inner + torch.diag_embed(d_s)
        d_x = u @ inner @ v.transpose(-2, -1)
        if d_v is not None and v.shape[-2] > v.shape[-1]:
            outside = d_v - v @ (v.transpose(-2, -1) @ d_v)  # (I - V V^T) dV: [B, n, k]
            inverse = finite_or_zero(1 / s)  # 0 where s = 0, as F where values repeat
            d_x = d_x + u @ (outside.transpose(-2, -1) * inverse.unsqueeze(-1))
        return d_x


def singular_values_and_right_vectors(x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """``s`` ``[B, k]`` (descending) and ``V`` ``[B, n, k]`` of the matrices ``x`` ``[B, m, n]``,
    ``k = min(m, n)``: ``torch.linalg.svd``'s, with a gradient that stays finite where singular
    values repeat (:class:`_SingularValuesAndRightVectors`)."""
    return _SingularValuesAndRightVectors.apply(x)


def truncated_svd(feat: torch.Tensor, n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The first ``n`` singular values and right singular vectors of each sample's map.

    ``feat`` ``[B, C, H, W]`` is read as the ``[B, C*H, W]`` matrix ``X = U S V^T`` (mdistiller's
    ``feat.view(B, C*H, W)``: rows mix channels and image rows, so ``V`` spans the ``W`` columns;
    ``reshape`` gives the same numbers and also takes the channels-last maps kdzoo trains with).
    Returns ``s`` ``[B, n']`` and ``v`` ``[B, W, n']``, ``n' = min(n, C*H, W)``, NaNs and
    infinities zeroed, then ``s`` L2-normalised over its ``n'`` values and each column of ``v``
    (already of unit norm) L2-normalised again, as the reference does (which changes the
    gradient: the normalisation projects out the radial part). ``U`` is not used by the loss.
    """
    x = feat.reshape(feat.shape[0], feat.shape[1] * feat.shape[2], feat.shape[3])
    s, v = singular_values_and_right_vectors(x)
    s, v = finite_or_zero(s), finite_or_zero(v)
    return F.normalize(s[:, :n], dim=1), F.normalize(v[:, :, :n], dim=1)


def align_to_teacher(v_s: torch.Tensor, v_t: torch.Tensor) -> torch.Tensor:
    """The student's singular vectors matched to the teacher's (the reference's ``align_rsv``).

    ``v_s`` ``[B, D, m]``, ``v_t`` ``[B, D, k]``. For each teacher vector ``j`` the student vector
    ``i`` with the largest ``|cos(v_s^i, v_t^j)|`` is taken, times the sign of that cosine (all
    of them, summed, on an exact tie). Returns ``[B, D, k]``. The selection is not differentiated;
    the gradient flows through the selected student vectors.
    """
    cosine = v_s.transpose(-2, -1) @ v_t  # [B, m, k]
    best = cosine.abs().amax(dim=1, keepdim=True)
    mask = torch.where(cosine.abs() == best, cosine.sign(), torch.zeros_like(cosine))
    return v_s @ mask


def consecutive_rbf(v: torch.Tensor, v_prev: torch.Tensor) -> torch.Tensor:
    """``exp(-(v_a - v'_b)^2 / 8)`` between every entry ``a`` of ``v`` ``[B, D, k]`` and every entry
    ``b`` of the previous layer's ``v_prev`` ``[B, D', k]``, per singular vector: ``[B, D, D', k]``
    (``D`` and ``D'`` may differ)."""
    return torch.exp(-(v.unsqueeze(2) - v_prev.unsqueeze(1)).pow(2) / 8)


@LOSS_REGISTRY.register("kdsvd")
class KDSVDLoss(nn.Module):
    """KDSVD: match how the dominant singular vectors of consecutive layers relate.

    Paper: each layer's feature map is compressed by a truncated SVD; the student's right singular
    vectors are sign-aligned to the teacher's and scaled by the teacher's normalised singular
    values; the relation between the vectors of consecutive layers is a Gaussian RBF, and the
    student's relations are pulled to the teacher's by an L2 loss.

    What the reference computes, and this module too, for layers ``i = 0..n-1``::

        s_t, v_t = svd_k(f_t^i)          k singular values/vectors (K = 1), v_t [B, W_i, k]
        s_s, v_s = svd_{k+3}(f_s^i)      the student keeps k + 3
        v_s      = align(v_s, v_t)       best |cosine| match, with its sign: [B, W_i, k]
        v_t, v_s = v_t * s_t, v_s * s_t  both scaled by the teacher's normalised values
        for i > 0:
            G^i  = exp(-(v^i_a - v^{i-1}_b)^2 / 8)          [B, W_i, W_{i-1}, k], each side
            l_i  = sum (G_s^i - G_t^i)^2 / B                non-finite entries dropped
        L = sum_i l_i

    The decomposed matrix is mdistiller's ``[B, C*H, W]`` (:func:`truncated_svd`), so ``v``
    spans the ``W`` columns of the map; RepDistiller's KDSVD and the authors' TensorFlow code
    decompose ``[B, H*W, C]`` (positions by channels), so theirs spans the channels. The two give
    different numbers. The reference casts the maps to float32 (``.float()``); here half
    precision is cast up to float32 and float64 stays float64 (``full_precision``).

    kdzoo's addition: the reference needs the student's and the teacher's maps of one layer to
    have the same width (``align_rsv``'s product), which 6 of the 13 shipped CIFAR-100 pairs do
    not (e.g. resnet32x4 -> ShuffleV1: 32 vs 16). Where the heights differ the larger map is
    average-pooled to ``H x H`` of the smaller one first, as kdzoo's AT and NST do (after
    RepDistiller's); on maps of one size nothing changes.

    Inputs: ``g_s``, ``g_t``, sequences of ``[B, C_s, H, W]`` and ``[B, C_t, H', W']`` maps, one
    per layer, in order (channel counts may differ; mdistiller passes the stage outputs
    ``feats[1:]``, kdzoo's ``features[1:-1]``). Output: the scalar ``L`` (0 for a single layer).
    Teacher maps are detached here; the reference computes them under ``no_grad``.
    """

    def __init__(self, k: int = 1) -> None:
        super().__init__()
        self.k = k  # mdistiller's CFG.KDSVD.K = 1 (engine/cfg.py)

    @full_precision
    def forward(self, g_s: Sequence[torch.Tensor], g_t: Sequence[torch.Tensor]) -> torch.Tensor:
        check_same_length(g_s, g_t, "kdsvd")
        total = g_s[0].new_zeros(())
        prev_s = prev_t = None
        for f_s, f_t in zip(g_s, g_t, strict=True):
            f_s, f_t = pool_to_smaller_map(f_s, f_t.detach())
            s_t, v_t = truncated_svd(f_t, self.k)
            _, v_s = truncated_svd(f_s, self.k + 3)
            v_s = align_to_teacher(v_s, v_t)
            v_t, v_s = v_t * s_t.unsqueeze(1), v_s * s_t.unsqueeze(1)  # v * s_t / ||s_t||
            if prev_s is not None:
                # sum (exp(-(v_s^i - v_s^{i-1})^2 / 8) - exp(-(v_t^i - v_t^{i-1})^2 / 8))^2
                diff = consecutive_rbf(v_s, prev_s) - consecutive_rbf(v_t, prev_t)
                total = total + finite_or_zero(diff.pow(2)).sum() / g_s[0].shape[0]
            prev_s, prev_t = v_s, v_t
        return total
