"""Timing and peak-memory measurement for the benchmarks."""

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable

import torch


def _status_kib(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field):
                return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def measure(fn: Callable[[], object], device: torch.device, repeats: int) -> tuple[float, float]:
    """(seconds per call, peak transient MiB) of ``fn``, after one warm-up call.

    On CPU the peak is the growth of the resident size (``VmHWM`` after resetting it through
    ``/proc/self/clear_refs``); run it under :func:`in_fresh_process` with ``exact_memory`` for a
    number that follows the live tensors. On CUDA it is ``torch.cuda.max_memory_allocated``.
    """
    fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")  # reset the peak resident size (VmHWM) to the current one
        base = _status_kib("VmRSS:") * 1024
    start = time.perf_counter()
    for _ in range(repeats):
        fn()
    if device.type == "cuda":
        torch.cuda.synchronize()
        peak = torch.cuda.max_memory_allocated() - base
    else:
        peak = _status_kib("VmHWM:") * 1024 - base
    return (time.perf_counter() - start) / repeats, max(peak, 0) / 2**20


def in_fresh_process(*worker_args: str, exact_memory: bool = False) -> dict:
    """Run ``python -m kdzoo.benchmarks --worker ...`` in a new interpreter and return its JSON.

    A fresh process cannot reuse memory an earlier measurement freed. With ``exact_memory``, glibc
    serves every allocation above 128 KiB with its own mapping and returns it on free, so the
    resident size follows the live tensors and its peak is the computation's (not the allocator
    heap's). That slows allocation: take times from a normal run.
    """
    env = dict(os.environ)
    if exact_memory:
        env["MALLOC_MMAP_THRESHOLD_"] = str(128 * 1024)
    done = subprocess.run(
        [sys.executable, "-m", "kdzoo.benchmarks", "--worker", *worker_args],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    return json.loads(done.stdout.splitlines()[-1])
