"""Training and test loaders.

Both yield ``{"image": uint8 [B, 3, H, W], "label": [B], "index": [B]}`` on the device; training
batches also carry ``"epoch"``, the 0-based epoch they belong to (an int), which methods with an
epoch-dependent schedule (warm-ups) read instead of counting their calls.

The training order is a pure function of (seed, epoch): each epoch is one seeded permutation of the
dataset cut into global batches of ``SOLVER.IMS_PER_BATCH`` (the incomplete last one dropped), and
rank r takes the r-th slice of each global batch. Hence a run on N processes sees the same global
batches as a run on one, and the loader's whole state is its position ``(epoch, batch)``, which
checkpoints save so a resumed run continues with the very next batch.
"""

from collections.abc import Iterator

import torch
from torch.utils.data import DataLoader, Dataset, Subset

from kdzoo.utils import comm
from kdzoo.utils.errors import ConfigError

from .datasets import InMemoryDataset


class TrainLoader:
    """An endless, resumable stream of training batches for this rank.

    Args:
        dataset: an :class:`InMemoryDataset` (indexed directly, on ``device``) or any dataset whose
            items are ``(uint8 [3, H, W], label, index)`` (read by DataLoader workers).
        global_batch_size: images per step over all ranks; must divide by the world size.
        seed: seed of the per-epoch permutations.
        device: where batches are delivered.
        num_workers: DataLoader workers for datasets that are not in memory.
    """

    def __init__(
        self,
        dataset: Dataset,
        global_batch_size: int,
        seed: int,
        device: torch.device,
        num_workers: int = 0,
    ) -> None:
        world_size = comm.get_world_size()
        if global_batch_size % world_size:
            raise ConfigError(
                f"SOLVER.IMS_PER_BATCH={global_batch_size} does not divide "
                f"into {world_size} processes"
            )
        if len(dataset) < global_batch_size:
            raise ConfigError(
                f"SOLVER.IMS_PER_BATCH={global_batch_size} is more than the dataset's "
                f"{len(dataset)} training images"
            )
        self.dataset = dataset
        self.global_batch_size = global_batch_size
        self.batch_size = global_batch_size // world_size
        self.seed = seed
        self.device = torch.device(device)
        self.num_workers = num_workers
        self.iters_per_epoch = len(dataset) // global_batch_size
        self.epoch = 0
        self.batch = 0  # index of the next batch within the epoch
        self._in_memory = isinstance(dataset, InMemoryDataset)
        if self._in_memory:
            # One copy on the device: a step then costs one gather, no host-to-device traffic.
            self._images = dataset.images.to(self.device)
            self._labels = dataset.labels.to(self.device)

    def epoch_batches(self, epoch: int) -> torch.Tensor:
        """This rank's dataset indices for every batch of ``epoch``: ``[iters_per_epoch, B]``."""
        generator = torch.Generator().manual_seed(self.seed * 100_003 + epoch)
        order = torch.randperm(len(self.dataset), generator=generator)
        order = order[: self.iters_per_epoch * self.global_batch_size]
        rank_start = comm.get_rank() * self.batch_size
        return order.view(self.iters_per_epoch, self.global_batch_size)[
            :, rank_start : rank_start + self.batch_size
        ]

    def __iter__(self) -> Iterator[dict]:
        while True:
            remaining = self.epoch_batches(self.epoch)[self.batch :]
            for batch in self._batches(remaining):
                self.batch += 1
                yield {**batch, "epoch": self.epoch}
            self.epoch, self.batch = self.epoch + 1, 0

    def _batches(self, index_batches: torch.Tensor) -> Iterator[dict]:
        if self._in_memory:
            for indices in index_batches:
                indices = indices.to(self.device)
                yield {
                    "image": self._images[indices],
                    "label": self._labels[indices],
                    "index": indices,
                }
            return
        loader = DataLoader(
            self.dataset,
            batch_sampler=index_batches.tolist(),
            num_workers=self.num_workers,
            pin_memory=self.device.type == "cuda",
            persistent_workers=False,
        )
        for images, labels, indices in loader:
            yield {
                "image": images.to(self.device, non_blocking=True),
                "label": labels.to(self.device, non_blocking=True),
                "index": indices.to(self.device, non_blocking=True),
            }

    def state_dict(self) -> dict:
        return {"epoch": self.epoch, "batch": self.batch}

    def load_state_dict(self, state: dict) -> None:
        self.epoch, self.batch = int(state["epoch"]), int(state["batch"])


class TestLoader:
    """This rank's share of the test set (every world_size-th image), in order and without
    padding, so that summing the per-rank counts gives the exact whole-set accuracy. Iterable
    again for every evaluation.

    Args:
        dataset: an :class:`InMemoryDataset` (sliced directly) or any dataset of
            ``(uint8 [3, H, W], label, index)`` items (read by DataLoader workers).
        batch_size: images per batch on this rank.
        device: where batches are delivered.
        num_workers: DataLoader workers for datasets that are not in memory.
        max_images: evaluate on the first this many images only; 0: all.
    """

    def __init__(
        self,
        dataset: Dataset,
        batch_size: int,
        device: torch.device,
        num_workers: int = 0,
        max_images: int = 0,
    ) -> None:
        self.dataset = dataset
        self.batch_size = batch_size
        self.device = torch.device(device)
        self.num_workers = num_workers
        self.num_images = min(max_images, len(dataset)) if max_images > 0 else len(dataset)

    def __iter__(self) -> Iterator[dict]:
        indices = torch.arange(comm.get_rank(), self.num_images, comm.get_world_size())
        device = self.device
        if isinstance(self.dataset, InMemoryDataset):
            for chunk in indices.split(self.batch_size):
                yield {
                    "image": self.dataset.images[chunk].to(device),
                    "label": self.dataset.labels[chunk].to(device),
                    "index": chunk.to(device),
                }
            return
        subset = Subset(self.dataset, indices.tolist())
        loader = DataLoader(subset, self.batch_size, num_workers=self.num_workers)
        for images, labels, index in loader:
            yield {
                "image": images.to(device),
                "label": labels.to(device),
                "index": index.to(device),
            }
