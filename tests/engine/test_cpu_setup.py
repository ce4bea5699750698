"""The config's process-wide CPU settings: the C allocator keeps freed host memory."""

import logging
import platform
import subprocess
import sys
import types

import pytest

from kdzoo.config import get_cfg
from kdzoo.engine import defaults, setup_cpu
from kdzoo.utils import host_memory

# Allocates and frees a 64 MiB tensor ten times, after twenty that bring the heap to its steady
# state (glibc reuses a freed block only after a few), and prints the page faults those ten made.
# glibc serves each from a fresh mmap unless freed memory is kept.
_FAULTS_OF_TEN_ALLOCATIONS = """
import resource, sys, torch
from kdzoo.utils.host_memory import keep_freed_memory
if sys.argv[1] == "keep":
    assert keep_freed_memory()
faults = lambda: resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(20):
    torch.ones(16 << 20)
before = faults()
for _ in range(10):
    torch.ones(16 << 20)
print(faults() - before)
"""
_PAGES_OF_64_MIB = (64 << 20) // 4096


def faults_of_ten_allocations(mode: str) -> int:
    out = subprocess.run(
        [sys.executable, "-c", _FAULTS_OF_TEN_ALLOCATIONS, mode],
        capture_output=True,
        text=True,
        check=True,
    )
    return int(out.stdout.split()[-1])


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="keeps memory with glibc's mallopt")
def test_kept_memory_is_reused_without_page_faults():
    fresh = faults_of_ten_allocations("default")
    kept = faults_of_ten_allocations("keep")
    # glibc as it is: every 4 KiB page of every block faults again (some pages may be huge).
    assert fresh > 10 * _PAGES_OF_64_MIB // 2
    assert kept < _PAGES_OF_64_MIB // 10


def test_other_c_libraries_are_left_as_they_are(monkeypatch):
    without_glibc = types.SimpleNamespace(mallopt=lambda *_: pytest.fail("mallopt called"))
    monkeypatch.setattr(host_memory.ctypes, "CDLL", lambda _: without_glibc)
    assert host_memory.keep_freed_memory() is False


@pytest.mark.parametrize("keep", [True, False])
def test_setup_keeps_freed_memory_as_the_config_says(monkeypatch, caplog, keep):
    calls = []
    monkeypatch.setattr(defaults, "keep_freed_memory", lambda: calls.append(1) or True)
    cfg = get_cfg()
    cfg.CPU_KEEP_FREED_MEMORY = keep
    with caplog.at_level(logging.INFO, logger="kdzoo"):
        setup_cpu(cfg)
    assert len(calls) == keep
    assert ("Freed host memory is kept for reuse" in caplog.text) == keep
