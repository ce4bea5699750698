"""Memory modules (``MEMORY_REGISTRY``): key queues and memory banks, written after each step."""

from .build import MEMORY_REGISTRY, Memory, build_memory

__all__ = ["MEMORY_REGISTRY", "Memory", "build_memory"]
