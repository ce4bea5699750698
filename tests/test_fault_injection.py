"""Kill a real CoCoRD run with SIGKILL at random moments, resume it each time, and compare the
finished run with one that was never interrupted: bit-identical weights, memories and EMA copies,
the same metrics, and never an unreadable checkpoint."""

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch
from conftest import REPO_ROOT, tiny_run_opts

from kdzoo.checkpoint import load_file

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


def command(data_root: Path, out: Path, teacher: Path, resume: bool) -> list[str]:
    opts = tiny_run_opts(data_root, out, **OPTS, **{"MODEL.TEACHER.WEIGHTS": teacher})
    return [
        sys.executable,
        str(REPO_ROOT / "tools" / "train_net.py"),
        *(["--resume"] if resume else []),
        *opts,
    ]


def logged(out: Path) -> int:
    """How many iterations the run in ``out`` has logged so far (one metrics line each)."""
    path = out / "metrics.json"
    return path.read_text().count("\n") if path.exists() else 0


def lines(out: Path) -> list[dict]:
    records = [json.loads(line) for line in (out / "metrics.json").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in ("time", "data_time")} for r in records]


def test_sigkill_anywhere_then_resume_is_bit_identical(cifar100_slice, random_teacher, tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    straight = tmp_path / "straight"
    done = subprocess.run(
        command(cifar100_slice, straight, random_teacher, False),
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]

    killed = tmp_path / "killed"
    rng = random.Random(0)
    kills, attempt = 0, 0
    while True:
        attempt += 1
        assert attempt < 30, "the run never finished"
        process = subprocess.Popen(
            command(cifar100_slice, killed, random_teacher, resume=attempt > 1),
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        last = OPTS["SOLVER.MAX_ITER"] - 1
        if kills < 3 and logged(killed) + 1 < last:
            # Kill once the run has logged a random later iteration, plus a random delay that
            # often lands inside the checkpoint written after every step.
            target = rng.randrange(logged(killed) + 1, min(logged(killed) + 5, last))
            while process.poll() is None and logged(killed) < target:
                time.sleep(0.02)
            time.sleep(rng.uniform(0.0, 0.3))
            if process.poll() is None:
                process.send_signal(signal.SIGKILL)
                process.wait()
                kills += 1
                marker = killed / "last_checkpoint"
                if marker.exists():  # whatever the moment, the named checkpoint is whole
                    load_file(str(killed / marker.read_text().strip()))
                continue
        _, stderr = process.communicate(timeout=300)
        assert process.returncode == 0, stderr[-2000:]
        break
    assert kills >= 2, f"only {kills} kills landed before the run finished"

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
