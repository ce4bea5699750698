"""A FIFO queue of L2-normalised keys: MoCo's dictionary, CoCoRD's teacher dictionary."""

import torch
import torch.nn.functional as F

from .build import MEMORY_REGISTRY, Memory


@MEMORY_REGISTRY.register("key_queue")
class KeyQueue(Memory):
    """``keys`` ``[N, D]``, initialised random and L2-normalised; new keys overwrite the oldest.

    Any N and batch size work: writes wrap around the end. The keys of a step are staged with
    ``push`` and written at ``commit`` (after the optimizer step), so they are never negatives of
    the step that produced them. The queue is read in place (``keys``), never copied.
    """

    def __init__(self, size: int, dim: int) -> None:
        super().__init__()
        self.register_buffer("keys", F.normalize(torch.randn(size, dim), dim=1))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))  # next row to overwrite

    def write(self, keys: torch.Tensor, index: torch.Tensor | None = None) -> None:
        """Enqueue ``keys`` ``[B, D]`` (B <= N) in order, dropping the B oldest."""
        size = len(self.keys)
        if len(keys) > size:
            raise ValueError(f"cannot enqueue {len(keys)} keys into a queue of {size}")
        rows = (self.ptr + torch.arange(len(keys), device=keys.device)) % size
        self.keys[rows] = keys.to(self.keys.dtype)
        self.ptr.copy_((self.ptr + len(keys)) % size)
