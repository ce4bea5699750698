"""A training run's folder (``OUTPUT_DIR``): the one place that knows its file names.

As Detectron2 writes it::

    config.yaml        the full merged config            log.txt, env.txt   the log, the machine
    eval/              what --eval-only writes: its own config.yaml, log.txt, eval_<weights>.json
    metrics.json       one JSON object per line: training lines carry ``iteration``, the losses and
                       ``lr``; evaluation lines ``test/top1``, ``test/top5``
    model_0000999.pth  periodic checkpoints (zero-padded: name order is iteration order)
    model_final.pth    the checkpoint after the last iteration
    model_best.pth     the checkpoint of the best test top-1 so far (with TEST.SAVE_BEST)
    last_checkpoint    a text file naming the newest checkpoint

Hooks, the trainer and the tools ask a :class:`RunFolder` for paths and for what the folder holds;
none of them spells a file name.
"""

import json
import os
import re
from typing import Any

from kdzoo.utils.errors import CheckpointError
from kdzoo.utils.file_io import atomic_write, remove_interrupted_writes

from .io import atomic_write_text, load_file

LAST_CHECKPOINT = "last_checkpoint"
FINAL_CHECKPOINT = "model_final.pth"
BEST_CHECKPOINT = "model_best.pth"
#: The kinds of checkpoint: every SOLVER.CHECKPOINT_PERIOD, after the last iteration, of the best
#: evaluation.
CHECKPOINT_KINDS = ("periodic", "final", "best")
_PERIODIC = re.compile(r"model_\d{7}\.pth")
_ANY_CHECKPOINT = re.compile(r"model_.*\.pth")


class RunFolder:
    """The files of the run in ``path``.

    Args:
        path: the run's output folder (``OUTPUT_DIR``); it need not exist yet.
    """

    def __init__(self, path: str) -> None:
        self.path = str(path)
        self.config_file = os.path.join(self.path, "config.yaml")
        self.metrics_file = os.path.join(self.path, "metrics.json")
        self.env_file = os.path.join(self.path, "env.txt")
        self._marker = os.path.join(self.path, LAST_CHECKPOINT)

    def evaluation_folder(self) -> "RunFolder":
        """Where ``--eval-only`` writes its own config, log and results: ``<path>/eval``. An
        evaluation never changes the files of the run it evaluates."""
        return RunFolder(os.path.join(self.path, "eval"))

    def eval_result_file(self, weights: str) -> str:
        """The result of evaluating ``weights`` (a file or a weight name) in this folder:
        ``eval_<name>.json``."""
        name = os.path.splitext(os.path.basename(weights))[0]
        return os.path.join(self.path, f"eval_{name}.json")

    def checkpoint_path(self, iteration: int, kind: str = "periodic") -> str:
        """Where the checkpoint of ``kind`` (:data:`CHECKPOINT_KINDS`) after ``iteration``
        (0-based) goes."""
        names = {
            "periodic": f"model_{iteration:07d}.pth",
            "final": FINAL_CHECKPOINT,
            "best": BEST_CHECKPOINT,
        }
        return os.path.join(self.path, names[kind])

    def holds_run(self) -> bool:
        """Whether a training run has written a checkpoint here (a fresh run must not reuse it)."""
        return os.path.exists(self._marker)

    def is_finished(self) -> bool:
        """Whether the run here reached its last iteration (its final checkpoint exists)."""
        return os.path.isfile(os.path.join(self.path, FINAL_CHECKPOINT))

    def last_checkpoint(self) -> str | None:
        """The checkpoint ``last_checkpoint`` names, or None if there is no such marker."""
        if not os.path.isfile(self._marker):
            return None
        with open(self._marker) as f:
            path = os.path.join(self.path, f.read().strip())
        if not os.path.isfile(path):
            raise CheckpointError(f"{self._marker} names {path}, which does not exist")
        return path

    def read_last_checkpoint(self) -> tuple[str | None, Any]:
        """The path and contents of the checkpoint ``last_checkpoint`` names (``(None, None)``
        without one). If it is missing or unreadable, the one-line error also names the other
        checkpoints a user could point ``last_checkpoint`` at."""
        try:
            path = self.last_checkpoint()
            return path, (load_file(path) if path is not None else None)
        except CheckpointError as e:
            with open(self._marker) as f:
                named = f.read().strip()
            others = sorted(
                name
                for name in os.listdir(self.path)
                if _ANY_CHECKPOINT.fullmatch(name) and name != named
            )
            if not others:
                raise
            raise CheckpointError(
                f"{e}; to resume from another ({', '.join(others)}), write its name into "
                f"{self._marker}"
            ) from None

    def mark_last(self, checkpoint: str) -> None:
        """Point ``last_checkpoint`` at ``checkpoint`` (a file in this folder), atomically."""
        atomic_write_text(os.path.basename(checkpoint), self._marker)

    def prune_periodic(self, keep: int) -> None:
        """Delete all but the newest ``keep`` periodic checkpoints. Read from the folder, not
        remembered: a resumed run also prunes the checkpoints of its earlier attempts."""
        periodic = sorted(name for name in os.listdir(self.path) if _PERIODIC.fullmatch(name))
        for name in periodic[:-keep]:
            os.remove(os.path.join(self.path, name))

    def trim_metrics(self, last_iteration: int) -> None:
        """Keep only the lines of ``metrics.json`` up to ``last_iteration``: a run resumed from
        that iteration's checkpoint recomputes (and rewrites) the later ones. Atomic; nothing to
        do without the file."""
        if not os.path.isfile(self.metrics_file):
            return
        with open(self.metrics_file) as f:
            kept = [
                line
                for line in f
                if line.strip() and json.loads(line)["iteration"] <= last_iteration
            ]
        atomic_write(self.metrics_file, lambda f: f.write("".join(kept).encode()))

    def remove_interrupted_writes(self) -> list[str]:
        """Delete the temporary files of writes a kill cut short; return their names. Only when
        no write is in flight, e.g. before a resumed run starts."""
        return remove_interrupted_writes(self.path)
