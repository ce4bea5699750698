"""Sampling contrastive indices by class, on the device, without per-class index lists.

CRD's reference code keeps, for every class, a Python list of the indices of all other classes
(5-10 GB of host memory on ImageNet) and draws an anchor's K negatives from its class's list,
without replacement unless K exceeds the list. Sorting the dataset by label once gives the same
draws from N + C integers: an anchor of class c (n_c samples) draws offsets in [0, N - n_c), and
offset r is the r-th sorted slot, or the (r + n_c)-th past the slots of class c.
"""

import torch
from torch import nn

from kdzoo.utils import comm

SAMPLING_MODES = ("exact", "relax")


class ClassAwareSampler(nn.Module):
    """Draws, for each anchor, one positive and K negatives as dataset indices.

    Negatives, in both of CRD's modes: K samples of the classes other than the anchor's, uniform
    and distinct, as the reference draws them (``numpy.random.choice(..., replace=False)``);
    an anchor whose class leaves fewer than K other samples draws them with replacement, as the
    reference does then. ``with_replacement=True`` draws every anchor's negatives with
    replacement: cheap at any dataset size, and a repeat is rare when K is small beside the pool
    (ImageNet: ~0.6% of draws), where the distinct draw costs ``[global batch, N]`` random keys.

    Positives (column 0): ``"exact"``: the anchor itself; ``"relax"``: a uniform sample of the
    anchor's class (the anchor included, as in the reference).

    Args:
        labels: ``[N]`` label of every training sample.
        num_negatives: K.
        mode: ``"exact"`` or ``"relax"``.
        seed: seed of the sampler's own generator, saved with the module's state.
        with_replacement: draw every anchor's negatives with replacement.

    Every rank draws for the whole global batch and keeps its rows, so N processes draw exactly
    what one process would. What is drawn per call depends only on the dataset and the global
    batch size, never on the labels of a rank's rows, so the ranks' generators stay in step.
    """

    # Distinct draws make random keys for at most this many (row, offset) pairs at once: bounds
    # their memory (128 MiB of float64) when the global batch times N is large (ImageNet).
    max_key_elements = 2**24

    def __init__(
        self,
        labels: torch.Tensor,
        num_negatives: int,
        mode: str = "exact",
        seed: int = 0,
        with_replacement: bool = False,
    ):
        super().__init__()
        if mode not in SAMPLING_MODES:
            raise ValueError(f"sampling mode must be one of {SAMPLING_MODES}, not {mode!r}")
        labels = labels.long()
        counts = torch.bincount(labels)
        self.num_negatives = num_negatives
        self.mode = mode
        self.with_replacement = with_replacement
        self.num_samples = len(labels)
        pools = self.num_samples - counts[counts > 0]  # other-class samples, per class present
        self.max_pool = int(pools.max())
        # What each call draws, fixed by the dataset: uniforms for negatives with replacement when
        # some class needs them, random keys for distinct ones when some class allows them.
        self.draws_with_replacement = with_replacement or num_negatives > int(pools.min())
        self.draws_distinct = not with_replacement and num_negatives <= self.max_pool
        # Constants derived from the labels: rebuilt identically from the dataset, never saved.
        self.register_buffer("by_class", torch.argsort(labels, stable=True), persistent=False)
        self.register_buffer("class_start", torch.cumsum(counts, 0) - counts, persistent=False)
        self.register_buffer("class_count", counts, persistent=False)
        self.seed = seed
        self._generator: torch.Generator | None = None

    @property
    def generator(self) -> torch.Generator:
        """The sampler's own generator, on the device of its buffers (made there on first use)."""
        device = self.by_class.device
        if self._generator is None or self._generator.device != device:
            self._generator = torch.Generator(device=device)
            self._generator.manual_seed(self.seed)
        return self._generator

    def _rand(self, rows: int, cols: int) -> torch.Tensor:
        """``[rows, cols]`` float64 uniforms in [0, 1): 2^-53 steps, so ties among N keys are
        negligible (N / 2^53 per row) and offsets ``u * pool`` unbiased."""
        return torch.rand(
            rows, cols, generator=self.generator, dtype=torch.float64, device=self.by_class.device
        )

    def _distinct_offsets(self, pool: torch.Tensor, rows: int, mine: slice) -> torch.Tensor:
        """K distinct offsets per row of ``mine``, row i uniform in [0, pool[i]): the positions of
        the K smallest of ``pool[i]`` uniform keys (a uniformly random K-subset)."""
        k, width = self.num_negatives, self.max_pool
        chunk = max(1, self.max_key_elements // width)
        columns = torch.arange(width, device=self.by_class.device)
        parts = []
        for first in range(0, rows, chunk):
            last = min(first + chunk, rows)
            keys = self._rand(last - first, width)  # drawn by every rank, used by one
            lo, hi = max(first, mine.start), min(last, mine.stop)
            if lo >= hi:
                continue
            keys = keys[lo - first : hi - first]
            own_pool = pool[lo - mine.start : hi - mine.start, None]
            keys.masked_fill_(columns >= own_pool, 2.0)  # past the row's pool: never among them
            parts.append(torch.topk(keys, k, dim=1, largest=False, sorted=False).indices)
        return torch.cat(parts)

    @torch.no_grad()
    def forward(self, index: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """Contrast indices ``[B, K + 1]``: column 0 the positive, then K negatives.

        ``index``, ``label``: ``[B]`` dataset indices and labels of the anchors.
        """
        b, k = len(index), self.num_negatives
        world, rank = comm.get_world_size(), comm.get_rank()
        rows, mine = b * world, slice(rank * b, (rank + 1) * b)
        start, count = self.class_start[label], self.class_count[label]
        pool = self.num_samples - count
        # Column 0: the relaxed positive; then, when drawn, K uniforms for offsets with replacement.
        u = self._rand(rows, 1 + k if self.draws_with_replacement else 1)[mine]
        if self.draws_with_replacement:
            offsets = (u[:, 1:] * pool[:, None]).long()
        if self.draws_distinct:
            distinct = self._distinct_offsets(pool, rows, mine)
            if self.draws_with_replacement:  # only the rows whose pool is smaller than K replace
                distinct = torch.where((pool >= k)[:, None], distinct, offsets)
            offsets = distinct
        offsets = offsets + (offsets >= start[:, None]) * count[:, None]  # skip the anchor's class
        negatives = self.by_class[offsets]
        if self.mode == "exact":
            positive = index
        else:
            positive = self.by_class[start + (u[:, 0] * count).long()]
        return torch.cat([positive[:, None], negatives], dim=1)

    def get_extra_state(self) -> dict:
        return {"generator": self.generator.get_state()}

    def set_extra_state(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
