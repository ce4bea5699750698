"""Memory modules (``MEMORY_REGISTRY``): key queues and memory banks, written after each step."""

from .bank import MomentumMemoryBank, gather_scores
from .build import MEMORY_REGISTRY, Memory, build_memory
from .negative_sampler import SAMPLING_MODES, ClassAwareSampler
from .queue import KeyQueue

__all__ = [
    "MEMORY_REGISTRY",
    "SAMPLING_MODES",
    "ClassAwareSampler",
    "KeyQueue",
    "Memory",
    "MomentumMemoryBank",
    "build_memory",
    "gather_scores",
]
