"""Reading and writing checkpoint files safely.

Writes are atomic (temp file in the same folder, fsync, rename), so a crash mid-write leaves the
previous file intact. Reads always use ``weights_only=True``: a file that would run code when
unpickled is refused, never executed.
"""

import os
import pickle
import zipfile
from typing import Any

import torch

from kdzoo.utils.errors import CheckpointError
from kdzoo.utils.file_io import atomic_write


def atomic_save(obj: Any, path: str) -> None:
    """``torch.save(obj)`` to ``path`` atomically (see :func:`atomic_write`)."""
    atomic_write(path, lambda f: torch.save(obj, f))


def atomic_write_text(text: str, path: str) -> None:
    """Write a small text file atomically (e.g. ``last_checkpoint``)."""
    atomic_write(path, lambda f: f.write(text.encode()))


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
