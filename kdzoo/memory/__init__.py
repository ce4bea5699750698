"""Memory modules (``MEMORY_REGISTRY``): key queues and memory banks, written after each step."""

from .bank import MomentumMemoryBank, gather_scores
from .build import MEMORY_REGISTRY, Memory, build_memory
from .negative_sampler import ClassAwareSampler

__all__ = [
    "MEMORY_REGISTRY",
    "ClassAwareSampler",
    "Memory",
    "MomentumMemoryBank",
    "build_memory",
    "gather_scores",
]
