"""Memory modules: state a distiller keeps across steps (key queues, memory banks).

A memory holds buffers only, so it lives in the distiller's state_dict and in every checkpoint. It
is written in two phases so that the optimizer step never sees a half-updated memory and every
rank holds the same contents: during ``forward`` the distiller calls :meth:`Memory.push` to stage
new entries; after the optimizer step the engine's ``MemoryCommitHook`` calls
:meth:`Memory.commit`, which all-gathers the staged entries over ranks (in rank order) and writes
them.
"""

import torch
from torch import nn

from kdzoo.utils import comm
from kdzoo.utils.registry import Registry, lookup

MEMORY_REGISTRY = Registry("MEMORY")
MEMORY_REGISTRY.__doc__ = "Memory modules by name: ``obj(**kwargs) -> Memory``."


class Memory(nn.Module):
    """Base class: stages ``(keys, index)`` in :meth:`push`, writes them in :meth:`write`."""

    def __init__(self) -> None:
        super().__init__()
        self._staged: list[tuple[torch.Tensor, torch.Tensor | None]] = []

    @torch.no_grad()
    def push(self, keys: torch.Tensor, index: torch.Tensor | None = None) -> None:
        """Stage ``keys`` ``[B, D]`` (and their dataset ``index`` ``[B]``, for banks) for commit."""
        self._staged.append((keys.detach(), None if index is None else index.detach()))

    @torch.no_grad()
    def commit(self) -> None:
        """Gather what every rank staged since the last commit and write it, identically on all."""
        for keys, index in self._staged:
            keys = comm.all_gather_tensor(keys)
            index = None if index is None else comm.all_gather_tensor(index)
            self.write(keys, index)
        self._staged.clear()

    def write(self, keys: torch.Tensor, index: torch.Tensor | None) -> None:
        """Write gathered ``keys`` ``[world_size * B, D]`` into the memory's buffers."""
        raise NotImplementedError


def build_memory(name: str, **kwargs) -> Memory:
    """Build the memory registered as ``name`` with its options as keyword arguments."""
    return lookup(MEMORY_REGISTRY, name)(**kwargs)
