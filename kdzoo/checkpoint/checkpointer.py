"""The training checkpointer: one file holds everything needed to continue a run exactly.

Layout of ``model_XXXXXXX.pth`` / ``model_final.pth``::

    {"model": distiller.state_dict(),          # student, teacher, heads, memories, EMA copies
     "iteration": i,                           # the last finished iteration
     <name>: obj.state_dict() for each checkpointable (optimizer, scheduler, data position, hooks),
     "rng": [per-rank RNG states]}             # gathered from every rank, restored on each

``last_checkpoint`` (a text file) names the newest checkpoint, as in Detectron2.
"""

import logging
import os
from typing import Any

from torch import nn

from kdzoo.utils.errors import CheckpointError

from .io import atomic_save, atomic_write_text, load_file

LAST_CHECKPOINT = "last_checkpoint"


def find_last_checkpoint(save_dir: str) -> str | None:
    """The checkpoint ``<save_dir>/last_checkpoint`` names, or None if there is no such marker."""
    marker = os.path.join(save_dir, LAST_CHECKPOINT)
    if not os.path.isfile(marker):
        return None
    with open(marker) as f:
        path = os.path.join(save_dir, f.read().strip())
    if not os.path.isfile(path):
        raise CheckpointError(f"{marker} names {path}, which does not exist")
    return path


class Checkpointer:
    """Saves and loads a model plus named objects that have ``state_dict``/``load_state_dict``.

    Args:
        model: the distiller (not a DDP wrapper).
        save_dir: the run's output folder.
        save_to_disk: whether this process writes (only the main process does under DDP).
        checkpointables: other objects to save, by name.
    """

    def __init__(
        self, model: nn.Module, save_dir: str, save_to_disk: bool = True, **checkpointables
    ):
        self.model = model
        self.save_dir = save_dir
        self.save_to_disk = save_to_disk
        self.checkpointables = checkpointables
        self.logger = logging.getLogger("kdzoo")

    def save(self, name: str, **extra: Any) -> str:
        """Write ``<save_dir>/<name>.pth`` atomically and point ``last_checkpoint`` at it."""
        path = os.path.join(self.save_dir, f"{name}.pth")
        if not self.save_to_disk:
            return path
        data = {"model": self.model.state_dict()}
        data.update({k: obj.state_dict() for k, obj in self.checkpointables.items()})
        data.update(extra)
        try:
            atomic_save(data, path)
            atomic_write_text(os.path.basename(path), os.path.join(self.save_dir, LAST_CHECKPOINT))
        except OSError as e:  # a full disk, a lost mount: the atomic writes kept the last one
            previous = find_last_checkpoint(self.save_dir)
            raise CheckpointError(
                f"cannot write checkpoint {path}: {e.strerror or e}; "
                + (f"the last checkpoint, {previous}, is intact" if previous else "none was kept")
            ) from None
        self.logger.info(f"Saved checkpoint {path}")
        return path

    def last_checkpoint(self) -> str | None:
        """Path of the newest checkpoint of ``save_dir``, or None if it has none."""
        return find_last_checkpoint(self.save_dir)

    def load(self, path: str) -> dict[str, Any]:
        """Restore the model and every checkpointable from ``path``; return the other entries."""
        return self.restore(load_file(path), path)

    def restore(self, data: Any, path: str) -> dict[str, Any]:
        """:meth:`load` from ``data``, the contents of the checkpoint file ``path``."""
        if not isinstance(data, dict) or "model" not in data:
            raise CheckpointError(f"{path}: not a kdzoo checkpoint (no 'model' entry)")
        missing = [k for k in self.checkpointables if k not in data]
        if missing:
            raise CheckpointError(f"{path}: not a kdzoo training checkpoint (lacks {missing})")
        try:
            self.model.load_state_dict(data.pop("model"))
        except RuntimeError as e:
            first = str(e).strip().splitlines()[0]
            raise CheckpointError(f"{path} does not fit this model: {first}") from None
        for name, obj in self.checkpointables.items():
            obj.load_state_dict(data.pop(name))
        self.logger.info(f"Loaded checkpoint {path}")
        return data
