"""The training checkpointer: one file holds everything needed to continue a run exactly.

What ``model_XXXXXXX.pth`` / ``model_final.pth`` hold::

    {"model": distiller.state_dict(),          # student, teacher, heads, memories, EMA copies
     <name>: obj.state_dict() for each checkpointable (optimizer, scheduler, data position, ...),
     "rng": [{<name>: stream.state_dict()} for each rank],   # every rank's random streams
     "iteration": i,                           # the last finished iteration
     <extra entries the trainer adds>}         # e.g. "hooks": the hooks' states

Writes are atomic and ``last_checkpoint`` names the newest file (:class:`RunFolder`).
"""

import logging
from typing import Any, Protocol

import torch
from torch import nn

from kdzoo.utils import comm
from kdzoo.utils.errors import CheckpointError

from .io import atomic_save
from .run_folder import RunFolder


class Stateful(Protocol):
    def state_dict(self) -> Any: ...

    def load_state_dict(self, state: Any) -> Any: ...


class Checkpointer:
    """Saves and restores a model, the objects that continue its training, and every rank's
    random streams, in the run folder.

    Args:
        model: the distiller (not a DDP wrapper).
        folder: the run's folder.
        checkpointables: objects the same on every rank (optimizer, scheduler, data position).
        rng: each rank's own random streams (the global generators, the augmentation's); saving
            gathers them from every rank and resuming gives each rank its own back.
        keep: periodic checkpoints to keep (0: all); the final one is always kept.
    """

    def __init__(
        self,
        model: nn.Module,
        folder: RunFolder,
        checkpointables: dict[str, Stateful],
        rng: dict[str, Stateful],
        keep: int = 0,
    ) -> None:
        self.model = model
        self.folder = folder
        self.checkpointables = checkpointables
        self.rng = rng
        self.keep = keep
        self.logger = logging.getLogger("kdzoo")

    def save(self, iteration: int, kind: str = "periodic", **extra: Any) -> str:
        """Write the checkpoint of ``kind`` (periodic, final, best) after ``iteration``; a periodic
        or final one becomes the one ``last_checkpoint`` names (resume continues from the newest,
        not from the best).

        Called on every rank (it gathers each rank's random streams); the main rank writes.
        """
        path = self.folder.checkpoint_path(iteration, kind)
        rng = [None] * comm.get_world_size()
        local = {name: stream.state_dict() for name, stream in self.rng.items()}
        if comm.get_world_size() > 1:
            torch.distributed.all_gather_object(rng, local)
        else:
            rng = [local]
        if not comm.is_main_process():
            return path
        data = {"model": self.model.state_dict()}
        data.update({name: obj.state_dict() for name, obj in self.checkpointables.items()})
        data.update(rng=rng, iteration=iteration, **extra)
        try:
            atomic_save(data, path)
            if kind != "best":
                self.folder.mark_last(path)
        except OSError as e:  # a full disk, a lost mount: the atomic writes kept the last one
            previous = self.folder.last_checkpoint()
            raise CheckpointError(
                f"cannot write checkpoint {path}: {e.strerror or e}; "
                + (f"the last checkpoint, {previous}, is intact" if previous else "none was kept")
            ) from None
        self.logger.info(f"Saved checkpoint {path}")
        if kind == "periodic" and self.keep > 0:
            self.folder.prune_periodic(self.keep)
        return path

    def resume(self) -> dict[str, Any] | None:
        """Restore the newest checkpoint of the run folder, if there is one, and return its other
        entries (``iteration``, the trainer's extras); None without a checkpoint."""
        path, data = self.folder.read_last_checkpoint()
        if path is None:
            return None
        if not isinstance(data, dict) or "model" not in data:
            raise CheckpointError(f"{path}: not a kdzoo checkpoint (no 'model' entry)")
        missing = [k for k in (*self.checkpointables, "rng", "iteration") if k not in data]
        if missing:
            raise CheckpointError(f"{path}: not a kdzoo training checkpoint (lacks {missing})")
        try:
            self.model.load_state_dict(data.pop("model"))
        except RuntimeError as e:
            first = str(e).strip().splitlines()[0]
            raise CheckpointError(f"{path} does not fit this model: {first}") from None
        for name, obj in self.checkpointables.items():
            obj.load_state_dict(data.pop(name))
        self._restore_rng(data.pop("rng"))
        self.logger.info(f"Loaded checkpoint {path}")
        return data

    def _restore_rng(self, per_rank: list[dict]) -> None:
        if len(per_rank) == comm.get_world_size():
            mine = per_rank[comm.get_rank()]
        else:
            self.logger.warning(
                f"checkpoint was written by {len(per_rank)} processes, this run has "
                f"{comm.get_world_size()}: random streams restart from rank 0's state"
            )
            mine = per_rank[0]
        for name, stream in self.rng.items():
            stream.load_state_dict(mine[name])
