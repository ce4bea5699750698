"""CRD's memory bank: one L2-normalised embedding per training sample, for the student and for the
teacher, refreshed at the batch's rows with momentum after every step."""

import math

import torch
import torch.nn.functional as F

from .build import MEMORY_REGISTRY, Memory

STUDENT, TEACHER = 0, 1


def _rows(bank: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """``bank[idx]`` as ``[*idx.shape, D]`` (index_select is the fastest gather on CPU)."""
    return torch.index_select(bank, 0, idx.reshape(-1)).view(*idx.shape, bank.shape[1])


class _GatherScores(torch.autograd.Function):
    """``scores[b, j] = <v[b], bank[idx[b, j]]>`` without keeping the gathered rows.

    The reference gathers ``B x (K + 1) x D`` rows (1 GiB for two banks at B = 64, K = 16384) and
    keeps them for backward. Here anchors are taken a chunk at a time, in one of two ways:
    - dense (when the bank is not much larger than K): the chunk's products with the whole bank,
      ``[chunk, N]``, then pick the K + 1 it needs; backward scatters the incoming gradient into
      ``[chunk, N]`` and multiplies by the bank. Matrix products instead of a memory-bound gather.
    - gathered (large banks, e.g. ImageNet's 1.28M rows): gather the chunk's rows, take the
      products, drop the rows; backward gathers them again.
    Same numbers either way; transient memory is bounded by the chunk size.
    """

    @staticmethod
    def forward(ctx, v, bank, idx, chunk: int, dense: bool):
        ctx.save_for_backward(bank, idx)
        ctx.chunk, ctx.dense = chunk, dense
        parts = []
        for vc, ic in zip(v.split(chunk), idx.split(chunk), strict=True):
            if dense:
                parts.append((vc @ bank.t()).gather(1, ic))
            else:
                parts.append(torch.bmm(_rows(bank, ic), vc.unsqueeze(2)).squeeze(2))
        return torch.cat(parts)

    @staticmethod
    def backward(ctx, grad):
        bank, idx = ctx.saved_tensors
        parts = []
        for gc, ic in zip(grad.split(ctx.chunk), idx.split(ctx.chunk), strict=True):
            if ctx.dense:
                dense = torch.zeros(len(gc), len(bank), dtype=gc.dtype, device=gc.device)
                parts.append(dense.scatter_add_(1, ic, gc) @ bank)
            else:
                parts.append(torch.bmm(gc.unsqueeze(1), _rows(bank, ic)).squeeze(1))
        return torch.cat(parts), None, None, None, None


def gather_scores(
    v: torch.Tensor, bank: torch.Tensor, idx: torch.Tensor, max_elements: int = 2**21
) -> torch.Tensor:
    """Inner products of each anchor with the bank rows it indexes.

    ``v``: ``[B, D]``; ``bank``: ``[N, D]``; ``idx``: ``[B, K + 1]`` -> ``[B, K + 1]``. Transient
    memory is at most about ``max_elements`` floats (8 MiB by default: small enough to be reused
    by the allocator rather than mapped and unmapped per chunk) beyond the output.
    """
    n, (b, k1) = len(bank), idx.shape
    # Dense products cost N / (K + 1) times the multiply-adds of a gather, but run as matrix
    # products; on CPU they win up to N of about 8 (K + 1) (measured: BENCHMARKS.md).
    dense = n <= 8 * k1
    per_anchor = n if dense else k1 * bank.shape[1]
    chunk = max(1, min(b, max_elements // per_anchor))
    return _GatherScores.apply(v, bank.to(v.dtype), idx, chunk, dense)


@MEMORY_REGISTRY.register("momentum_bank")
class MomentumMemoryBank(Memory):
    """Two banks ``[2, N, D]`` (``[0]`` student, ``[1]`` teacher embeddings), as CRD keeps them.

    Initialised uniform in ``[-1/sqrt(D/3), 1/sqrt(D/3)]`` (the reference's init). Entries are
    pushed as ``[B, 2, D]`` (student, teacher) with their dataset indices and, at commit,
    ``row = normalize(momentum * row + (1 - momentum) * new)``.
    """

    def __init__(self, num_samples: int, dim: int, momentum: float = 0.5) -> None:
        super().__init__()
        stdv = 1.0 / math.sqrt(dim / 3)
        self.register_buffer("banks", torch.rand(2, num_samples, dim).mul_(2 * stdv).add_(-stdv))
        self.momentum = momentum

    def scores(self, v: torch.Tensor, bank: int, idx: torch.Tensor) -> torch.Tensor:
        """``<v[b], banks[bank][idx[b, j]]>``: ``v`` ``[B, D]``, ``idx`` ``[B, K + 1]``."""
        return gather_scores(v, self.banks[bank], idx)

    def write(self, keys: torch.Tensor, index: torch.Tensor | None) -> None:
        """``keys``: ``[B, 2, D]``, the new (student, teacher) embeddings of samples ``index``."""
        rows = self.banks[:, index]  # [2, B, D]
        mixed = rows * self.momentum + keys.transpose(0, 1).to(rows.dtype) * (1 - self.momentum)
        self.banks[:, index] = F.normalize(mixed, dim=2)
