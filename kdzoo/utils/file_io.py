"""Atomic file writes: a reader, or a crash at any moment, sees the old file or the new one."""

import os
import tempfile
from collections.abc import Callable
from typing import BinaryIO

TEMPORARY_PREFIX = ".tmp_"


def atomic_write(path: str, write: Callable[[BinaryIO], None]) -> None:
    """Call ``write(f)`` on a temporary file beside ``path``, fsync it, then rename it over
    ``path``: readers (and a crash at any moment) see either the old file or the complete new one.
    On failure the temporary file is removed and ``path`` is untouched."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=TEMPORARY_PREFIX, dir=folder)
    try:
        umask = os.umask(0)
        os.umask(umask)
        os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes files private (0600); match a plain open
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    # The rename itself is durable only once the directory entry is flushed.
    dir_fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)


def remove_interrupted_writes(folder: str) -> list[str]:
    """Delete the temporary files that writes killed mid-way left in ``folder`` (never read: the
    file they were to replace is intact) and return their names. Call it only when no write is
    in flight, e.g. before a resumed run starts."""
    if not os.path.isdir(folder):
        return []
    leftovers = sorted(n for n in os.listdir(folder) if n.startswith(TEMPORARY_PREFIX))
    for name in leftovers:
        os.remove(os.path.join(folder, name))
    return leftovers
