"""The C allocator's handling of freed host memory, for a training process.

A training step allocates and frees the same activations every iteration. glibc's malloc, left
as it is, serves every block above its mmap threshold (128 KiB, adapting up to 32 MiB) with a
fresh ``mmap`` and gives it back to the kernel when it is freed, and gives back the free top of
its heap beyond 128 KiB. Every step then starts on untouched pages, and the kernel zero-fills
each 4 KiB page of them on first touch, step after step (measured in docs/decisions.md, "Freed
host memory is kept"). PyTorch's CPU allocator keeps no cache of its own; keeping the memory is
what ``LD_PRELOAD``-ing jemalloc or tcmalloc, PyTorch's tuning advice for CPUs, also buys,
without a library to install.
"""

import ctypes

# mallopt's parameter numbers (glibc's <malloc.h>).
_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4


def keep_freed_memory() -> bool:
    """Make glibc's malloc keep freed memory for the process's next allocations: large blocks
    come from the heap, not one ``mmap`` each (``M_MMAP_MAX`` 0), and the heap is never trimmed
    (``M_TRIM_THRESHOLD`` -1). The process's resident memory then stays at its peak, which a
    training loop reaches in its first step anyway.

    Process-wide and for the rest of the process (and of the data workers it forks). Returns
    whether it was applied: ``False``, changing nothing, where the C library is not glibc
    (macOS, Windows, musl).
    """
    try:
        libc = ctypes.CDLL(None)
        libc.gnu_get_libc_version  # noqa: B018 -- present in glibc only
        mallopt = libc.mallopt
    except (OSError, TypeError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, -1))
