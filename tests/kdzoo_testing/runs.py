"""Running the engine from tests: ``tools/train_net.py`` in a fresh interpreter, a whole run in
this process, one interrupted and resumed, or the command line's exit status and stderr; and
reading what a run wrote."""

import contextlib
import io
import json
import os
import subprocess
import sys
from pathlib import Path

import torch

from kdzoo.checkpoint import load_file
from kdzoo.config import get_cfg
from kdzoo.data import TrainLoader, build_dataset
from kdzoo.distillers import build_distiller
from kdzoo.engine import (
    HookBase,
    Trainer,
    default_argument_parser,
    default_setup,
    main,
    run,
    setup_cfg,
)
from kdzoo.solver import train_only
from kdzoo_testing import REPO_ROOT, tiny_run_opts


def train_net(*argv: str) -> subprocess.CompletedProcess:
    """Run tools/train_net.py in a fresh interpreter, as a user would."""
    return subprocess.run(
        [sys.executable, str(REPO_ROOT / "tools" / "train_net.py"), *argv],
        capture_output=True,
        text=True,
        timeout=600,
        cwd=REPO_ROOT,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def metrics(output_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (output_dir / "metrics.json").read_text().splitlines()]


def assert_rows_written(banks: torch.Tensor, data_root: Path, steps: int) -> None:
    """The rows of the first ``steps`` batches (32 anchors each, seed 0) hold normalised
    embeddings; most others still hold their initial values (norm about 0.98, not 1)."""
    cfg = get_cfg()
    cfg.merge_from_list(["DATASETS.ROOT", str(data_root)])
    loader = TrainLoader(build_dataset(cfg, train=True), 32, seed=0, device="cpu")
    written = loader.epoch_batches(0)[:steps].flatten()
    norms = banks.norm(dim=2)
    torch.testing.assert_close(norms[:, written], torch.ones(2, len(written)))
    others = torch.ones(banks.shape[1], dtype=torch.bool)
    others[written] = False
    assert ((norms[:, others] - 1).abs() > 1e-3).float().mean() > 0.95


def run_in_process(*argv: str):
    """``tools/train_net.py ARGV`` in this process (registered test distillers are visible)."""
    return run(default_argument_parser().parse_args(list(argv)))


def train_net_in_process(*argv: str) -> subprocess.CompletedProcess:
    """``tools/train_net.py ARGV`` through :func:`kdzoo.engine.main` in this process.

    The same code path as the command line (argument parsing, the user-error handler and its exit
    status) without a fresh interpreter, which costs ~4 s of imports per call; the bad-input
    catalogue runs here, and ``test_training.py`` keeps one real subprocess as the check of the
    interpreter-level behaviour. Returns what ``subprocess.run`` would: the exit status and
    stderr (stdout is not captured).
    """
    stderr = io.StringIO()
    with contextlib.redirect_stderr(stderr):
        try:
            main(list(argv))
            returncode = 0
        except SystemExit as e:
            returncode = e.code if isinstance(e.code, int) else 1
    return subprocess.CompletedProcess(argv, returncode, stdout=None, stderr=stderr.getvalue())


class Stop(Exception):
    """Raised by :class:`StopAfter` to end a run as a kill between two steps would."""


class StopAfter(HookBase):
    """Ends the run right after iteration ``n`` (1-based) completes, hooks included."""

    def __init__(self, n: int) -> None:
        self.n = n

    def after_step(self) -> None:
        if self.trainer.iter + 1 == self.n:
            raise Stop


def straight_and_resumed(data_root: Path, out: Path, stop_after: int, **opts) -> tuple[dict, dict]:
    """Train ``opts`` straight through, and again stopped after ``stop_after`` iterations then
    continued with ``--resume``; return both final checkpoints (in ``out/straight`` and
    ``out/resumed``)."""
    straight, resumed = out / "straight", out / "resumed"
    run_in_process(*tiny_run_opts(data_root, straight, **opts))
    args = default_argument_parser().parse_args(tiny_run_opts(data_root, resumed, **opts))
    cfg = setup_cfg(args)
    default_setup(cfg, args)
    trainer = Trainer(cfg)
    trainer.register_hooks([StopAfter(stop_after)])
    try:
        trainer.train()
    except Stop:
        pass
    else:
        raise AssertionError("the run was expected to stop early")
    del trainer
    run_in_process("--resume", *tiny_run_opts(data_root, resumed, **opts))
    return (
        load_file(str(straight / "model_final.pth")),
        load_file(str(resumed / "model_final.pth")),
    )


def worker_pids(parent: int) -> list[int]:
    """The processes ``--num-gpus`` spawned under ``parent`` (not multiprocessing's helpers)."""
    children = Path(f"/proc/{parent}/task/{parent}/children").read_text().split()
    return sorted(int(pid) for pid in children if b"spawn_main" in _cmdline(int(pid)))


def _cmdline(pid: int) -> bytes:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes()
    except FileNotFoundError:  # it exited meanwhile
        return b""


def tiny_distiller(method: str, student: str = "resnet8", teacher: str = "resnet8", **opts):
    """The distiller ``method`` between random networks (seeded), in train mode; ``opts`` are
    ``KEY=value`` config overrides."""
    cfg = get_cfg()
    cfg.merge_from_list(["DISTILLER.NAME", method, "MODEL.STUDENT.NAME", student])
    cfg.merge_from_list(["MODEL.TEACHER.NAME", teacher])
    cfg.merge_from_list([str(x) for kv in opts.items() for x in kv])
    torch.manual_seed(0)
    return build_distiller(cfg, torch.arange(100) % 100, load_weights=False).train()


class Snapshots(HookBase):
    """The distiller's state (cloned) after chosen iterations, 1-based: ``states[i]``."""

    def __init__(self, iterations: set[int]) -> None:
        self.iterations = iterations
        self.states: dict[int, dict] = {}

    def after_step(self) -> None:
        if self.trainer.iter + 1 in self.iterations:
            state = self.trainer.distiller.state_dict()
            self.states[self.trainer.iter + 1] = {k: v.clone() for k, v in state.items()}


def enter_phase(distiller, trainable: list, phase) -> None:
    """What the engine does at a phase boundary (``Trainer._build_phase``): of the parameters
    that were ``trainable`` when the run was built, exactly the phase's require gradients, then
    ``distiller.phase`` is its name."""
    train_only(phase, trainable)
    distiller.phase = phase.name


def tiny_batch(n: int = 4) -> dict:
    """A seeded batch of ``n`` random 32x32 views, as the engine hands one to a distiller."""
    g = torch.Generator().manual_seed(1)
    return {
        "views": [torch.randn(n, 3, 32, 32, generator=g)],
        "label": torch.arange(n),
        "index": torch.arange(n),
        "epoch": 0,
    }
