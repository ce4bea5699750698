"""Kill a real CoCoRD run with SIGKILL at random moments, resume it each time, and compare the
finished run with one that was never interrupted: bit-identical weights, memories and EMA copies,
the same metrics, and never an unreadable checkpoint."""

import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from kdzoo.checkpoint import load_file
from kdzoo.engine import main
from kdzoo.utils.file_io import TEMPORARY_PREFIX
from kdzoo_testing import REPO_ROOT, tiny_run_opts
from kdzoo_testing.runs import worker_pids

pytestmark = pytest.mark.reliability

OPTS = {
    "DISTILLER.NAME": "cocord",
    "MODEL.TEACHER.NAME": "resnet8",
    "DISTILLER.COCORD.PROJ_DIM": 64,
    "DISTILLER.COCORD.PROJ_HIDDEN": 64,
    "DISTILLER.COCORD.PRED_HIDDEN": 16,
    "DISTILLER.COCORD.QUEUE_SIZE": 100,
    "SOLVER.MAX_ITER": 16,
    "SOLVER.CHECKPOINT_PERIOD": 1,  # a checkpoint every step: kills often land mid-write
    "SOLVER.CHECKPOINT_KEEP": 3,
    "TEST.EVAL_PERIOD": 8,
    "LOG_PERIOD": 1,  # one line per step, so a resumed run's lines match exactly
}


SHORT = {"SOLVER.MAX_ITER": 8}  # for the two-process run


def train_argv(
    data_root: Path, out: Path, teacher: Path, resume: bool, *flags: str, **overrides
) -> list[str]:
    """The arguments of ``tools/train_net.py`` for the CoCoRD run of these tests."""
    opts = {**OPTS, "MODEL.TEACHER.WEIGHTS": teacher, **overrides}
    return [*(["--resume"] if resume else []), *flags, *tiny_run_opts(data_root, out, **opts)]


def command(*args, **overrides) -> list[str]:
    """``train_argv(*args, **overrides)`` as a command line for a fresh interpreter."""
    script = str(REPO_ROOT / "tools" / "train_net.py")
    return [sys.executable, script, *train_argv(*args, **overrides)]


def logged(out: Path) -> int:
    """How many iterations the run in ``out`` has logged so far (one metrics line each)."""
    path = out / "metrics.json"
    return path.read_text().count("\n") if path.exists() else 0


def writes_in_flight(out: Path) -> list[str]:
    """The temporary files of atomic writes in ``out``: a write under way, or one a kill cut."""
    return [p.name for p in out.glob(f"{TEMPORARY_PREFIX}*")] if out.is_dir() else []


def lines(out: Path) -> list[dict]:
    records = [json.loads(line) for line in (out / "metrics.json").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in ("time", "data_time")} for r in records]


@pytest.fixture
def one_thread():
    """This process computes with one thread, as the killed runs do (OMP_NUM_THREADS=1)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_sigkill_anywhere_then_resume_is_bit_identical(
    cifar100_slice, random_teacher, tmp_path, one_thread
):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    straight = tmp_path / "straight"
    main(train_argv(cifar100_slice, straight, random_teacher, False))  # uninterrupted, here

    killed = tmp_path / "killed"
    rng = random.Random(0)
    kills, mid_write_kills, attempt = 0, 0, 0
    while True:
        attempt += 1
        assert attempt < 30, "the run never finished"
        process = subprocess.Popen(
            command(cifar100_slice, killed, random_teacher, attempt > 1),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        last = OPTS["SOLVER.MAX_ITER"] - 1
        # The first kill comes after a random delay; then kills wait for a write to begin (its
        # temporary file exists: a checkpoint, or last_checkpoint, half written) until one lands
        # inside it (a write takes ~1-3 ms here, so a kill can come just after it); then one more
        # random kill.
        aim_at_a_write = kills >= 1 and not mid_write_kills
        if (kills < 3 or aim_at_a_write) and kills < 8 and logged(killed) + 1 < last:
            target = logged(killed) + 1
            if not aim_at_a_write:  # a random later iteration
                target = rng.randrange(target, min(logged(killed) + 5, last))
            while process.poll() is None and logged(killed) < target:
                time.sleep(0.02)
            if aim_at_a_write:
                while process.poll() is None and not writes_in_flight(killed):
                    pass
            else:
                time.sleep(rng.uniform(0.0, 0.3))
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                process.wait()
                kills += 1
                mid_write_kills += bool(writes_in_flight(killed))
                marker = killed / "last_checkpoint"
                if marker.exists():  # whatever the moment, the named checkpoint is whole
                    load_file(str(killed / marker.read_text().strip()))
                continue
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr[-2000:]
        break
    assert kills >= 2, f"only {kills} kills landed before the run finished"
    assert mid_write_kills >= 1, "no kill landed inside a write"
    assert not writes_in_flight(killed)  # --resume removed what the killed writes left

    a = load_file(str(straight / "model_final.pth"))["model"]
    b = load_file(str(killed / "model_final.pth"))["model"]
    assert a.keys() == b.keys()
    for key in a:  # student, heads, predictor, slow student, teacher dictionary
        assert torch.equal(a[key], b[key]), key
    assert lines(killed) == lines(straight)
    for checkpoint in killed.glob("model_*.pth"):
        load_file(str(checkpoint))
    # CHECKPOINT_KEEP holds across resumes: only the newest 3 periodic checkpoints remain.
    periodic = sorted(p.name for p in killed.glob("model_0*.pth"))
    assert periodic == ["model_0000012.pth", "model_0000013.pth", "model_0000014.pth"]


@pytest.mark.skipif(
    not Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").exists(),
    reason="finds the ranks through /proc/<pid>/task/<pid>/children (Linux)",
)
def test_a_killed_rank_stops_the_job_and_resume_finishes_it(
    cifar100_slice, random_teacher, tmp_path, monkeypatch
):
    """2 Gloo processes (``--num-gpus 2``): SIGKILL one rank mid-run. The launcher ends the other
    rank and exits non-zero instead of hanging in a collective; the checkpoint it names loads; and
    ``--resume`` finishes a run bit-identical to one that was never interrupted.

    The killed job runs from a real interpreter; the uninterrupted and the resumed ones are started
    from this process (``main``, the same launcher; each spawns fresh workers), with the same one
    thread per worker."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    straight, killed = tmp_path / "straight", tmp_path / "killed"

    def two_ranks(out: Path, resume: bool, build=train_argv) -> list[str]:
        return build(cifar100_slice, out, random_teacher, resume, "--num-gpus", "2", **SHORT)

    main(two_ranks(straight, False))

    process = subprocess.Popen(
        two_ranks(killed, False, build=command),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    while process.poll() is None and logged(killed) < 3:
        time.sleep(0.02)
    ranks = worker_pids(process.pid)
    assert len(ranks) == 2, ranks
    os.kill(ranks[-1], signal.SIGKILL)  # spawned second: local rank 1
    _, stderr = process.communicate(timeout=120)  # not a hang in Gloo
    assert process.returncode == 1
    last = stderr.strip().splitlines()[-1]
    assert last.startswith(
        f"kdzoo: error: local process 1 (pid {ranks[-1]}) was killed by SIGKILL"
    ), stderr[-2000:]
    assert not any(Path(f"/proc/{pid}").exists() for pid in ranks), "a rank outlived the job"
    load_file(str(killed / (killed / "last_checkpoint").read_text().strip()))
    assert not (killed / "model_final.pth").exists()

    main(two_ranks(killed, True))
    starts = re.findall(r"Starting training from iteration (\d+)", (killed / "log.txt").read_text())
    assert starts[0] == "0" and int(starts[-1]) > 0  # the second attempt resumed
    a = load_file(str(straight / "model_final.pth"))
    b = load_file(str(killed / "model_final.pth"))
    assert len(a["rng"]) == len(b["rng"]) == 2
    assert a["model"].keys() == b["model"].keys()
    for key in a["model"]:  # student, heads, predictor, slow student, teacher dictionary
        assert torch.equal(a["model"][key], b["model"][key]), key
    assert lines(killed) == lines(straight)
