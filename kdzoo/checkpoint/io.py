"""Reading and writing checkpoint files safely.

Writes are atomic (temp file in the same folder, fsync, rename), so a crash mid-write leaves the
previous file intact. Reads always use ``weights_only=True``: a file that would run code when
unpickled is refused, never executed.
"""

import os
import pickle
import tempfile
import zipfile
from typing import Any

import torch

from kdzoo.utils.errors import CheckpointError


def _temp_file(folder: str) -> tuple[int, str]:
    """A temporary file in ``folder`` with the permissions a plain ``open`` would give it."""
    fd, tmp = tempfile.mkstemp(prefix=".tmp_", dir=folder)
    umask = os.umask(0)
    os.umask(umask)
    os.fchmod(fd, 0o666 & ~umask)  # mkstemp makes files private (0600)
    return fd, tmp


def atomic_save(obj: Any, path: str) -> None:
    """``torch.save(obj)`` to ``path`` such that ``path`` is either the old file or the new one."""
    folder = os.path.dirname(os.path.abspath(path))
    os.makedirs(folder, exist_ok=True)
    fd, tmp = _temp_file(folder)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(obj, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.remove(tmp)
        raise
    _fsync_dir(folder)


def atomic_write_text(text: str, path: str) -> None:
    """Write a small text file atomically (e.g. ``last_checkpoint``)."""
    folder = os.path.dirname(os.path.abspath(path))
    fd, tmp = _temp_file(folder)
    with os.fdopen(fd, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    _fsync_dir(folder)


def _fsync_dir(folder: str) -> None:
    # The rename itself is durable only once the directory entry is flushed.
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def load_file(path: str, map_location: str | torch.device = "cpu") -> Any:
    """``torch.load(path, weights_only=True)`` with one-line errors for missing, truncated and
    unsafe files."""
    if not os.path.isfile(path):
        raise CheckpointError(f"checkpoint file not found: {path}")
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except pickle.UnpicklingError as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(
            f"{path}: refused to load (weights_only=True allows only tensors and plain data): "
            f"{first}"
        ) from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as e:
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        raise CheckpointError(
            f"{path}: not a readable checkpoint (truncated or corrupt?): {first}"
        ) from None
