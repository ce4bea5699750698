"""Benchmarks of kdzoo's hot paths, run by ``tools/benchmark.py``; numbers in BENCHMARKS.md.

Each section is a module with ``run(device, quick) -> dict`` and ``table(results) -> (title,
headers, rows)``; sections that measure in fresh processes also have ``worker(*args) -> dict``.
"""

from . import convolutions, crd, data_path, step_overhead, training

SECTIONS = {
    "convolutions": convolutions,
    "crd": crd,
    "data_path": data_path,
    "step_overhead": step_overhead,
    "training": training,
}

__all__ = ["SECTIONS"]
