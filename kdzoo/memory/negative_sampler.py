"""Sampling contrastive indices by class, on the device, without per-class index lists.

CRD's reference code keeps, for every class, a Python list of the indices of all other classes
(5-10 GB of host memory on ImageNet). Sorting the dataset by label once gives the same draws from
N + C integers: sample r uniformly among the N - n_c indices of other classes, then skip over the
n_c slots of the anchor's class in the sorted order.
"""

import torch
from torch import nn

from kdzoo.utils import comm

SAMPLING_MODES = ("exact", "relax")


class ClassAwareSampler(nn.Module):
    """Draws, for each anchor, one positive and K negatives as dataset indices.

    Modes (CRD's): ``"exact"``: the positive is the anchor itself and negatives come uniformly
    (with replacement) from the other classes; ``"relax"``: the positive is a random sample of the
    anchor's class, negatives are uniform over the dataset.

    Args:
        labels: ``[N]`` label of every training sample.
        num_negatives: K.
        mode: ``"exact"`` or ``"relax"``.
        seed: seed of the sampler's own generator, saved with the module's state.

    Every rank draws the uniforms for the whole global batch and keeps its slice, so N processes
    draw exactly what one process would.
    """

    def __init__(
        self, labels: torch.Tensor, num_negatives: int, mode: str = "exact", seed: int = 0
    ):
        super().__init__()
        if mode not in SAMPLING_MODES:
            raise ValueError(f"sampling mode must be one of {SAMPLING_MODES}, not {mode!r}")
        labels = labels.long()
        counts = torch.bincount(labels)
        self.num_negatives = num_negatives
        self.mode = mode
        self.num_samples = len(labels)
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

    def _uniform(self, rows: int, cols: int) -> torch.Tensor:
        """``[rows, cols]`` float64 uniforms in [0, 1) for this rank's rows of the global batch."""
        world, rank = comm.get_world_size(), comm.get_rank()
        u = torch.rand(
            rows * world,
            cols,
            generator=self.generator,
            dtype=torch.float64,
            device=self.by_class.device,
        )
        return u[rank * rows : (rank + 1) * rows]

    @torch.no_grad()
    def forward(self, index: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
        """Contrast indices ``[B, K + 1]``: column 0 the positive, then K negatives.

        ``index``, ``label``: ``[B]`` dataset indices and labels of the anchors.
        """
        b, k = len(index), self.num_negatives
        u = self._uniform(b, k + 1)
        start, count = self.class_start[label], self.class_count[label]
        if self.mode == "exact":
            r = (u[:, 1:] * (self.num_samples - count)[:, None]).long()
            r = r + (r >= start[:, None]) * count[:, None]  # skip the anchor's class
            negatives = self.by_class[r]
            positive = index[:, None]
        else:
            negatives = (u[:, 1:] * self.num_samples).long()
            positive = self.by_class[start + (u[:, 0] * count).long()][:, None]
        return torch.cat([positive, negatives], dim=1)

    def get_extra_state(self) -> dict:
        return {"generator": self.generator.get_state()}

    def set_extra_state(self, state: dict) -> None:
        self.generator.set_state(state["generator"])
