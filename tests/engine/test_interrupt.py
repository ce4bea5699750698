"""Ctrl-C: the job stops with one line naming the last checkpoint and --resume (exit 130), the log
says the run was interrupted, and under --num-gpus N no process outlives the job."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from kdzoo_testing import REPO_ROOT, tiny_run_opts
from kdzoo_testing.runs import worker_pids

pytestmark = [
    pytest.mark.reliability,
    pytest.mark.skipif(
        not Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").exists(),
        reason="finds the ranks through /proc/<pid>/task/<pid>/children (Linux)",
    ),
]


def start(data_root: Path, out: Path, *flags: str) -> subprocess.Popen:
    """A long vanilla run of tools/train_net.py, a checkpoint every step."""
    opts = tiny_run_opts(data_root, out, **{"SOLVER.MAX_ITER": 1000, "SOLVER.CHECKPOINT_PERIOD": 1})
    script = str(REPO_ROOT / "tools" / "train_net.py")
    return subprocess.Popen(
        [sys.executable, script, *opts, *flags],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )


def interrupt_after_a_checkpoint(process: subprocess.Popen, out: Path) -> str:
    """SIGINT to ``process`` (alone, as ``kill -INT`` does) once a checkpoint exists; its stderr."""
    while process.poll() is None and not (out / "last_checkpoint").exists():
        time.sleep(0.05)
    assert process.poll() is None, process.communicate()[1][-2000:]
    os.kill(process.pid, signal.SIGINT)
    _, stderr = process.communicate(timeout=120)
    return stderr


def assert_stopped_with_one_line(process: subprocess.Popen, stderr: str, out: Path) -> None:
    assert process.returncode == 130, stderr[-2000:]
    assert "Traceback" not in stderr, stderr[-2000:]
    last = (out / "last_checkpoint").read_text().strip()
    assert stderr.strip().splitlines()[-1] == (
        f"kdzoo: interrupted; the last checkpoint is {out / last}: add --resume to continue from it"
    )
    log = (out / "log.txt").read_text()
    assert "Interrupted during iteration" in log and "Stopped early after" in log
    assert "Trained " not in log


def test_ctrl_c_stops_a_run_in_one_line(cifar100_slice, tmp_path):
    out = tmp_path / "run"
    process = start(cifar100_slice, out)
    assert_stopped_with_one_line(process, interrupt_after_a_checkpoint(process, out), out)


def test_ctrl_c_stops_every_process_of_the_job(cifar100_slice, tmp_path):
    out = tmp_path / "run"
    process = start(cifar100_slice, out, "--num-gpus", "2")
    while process.poll() is None and len(ranks := worker_pids(process.pid)) < 2:
        time.sleep(0.05)
    stderr = interrupt_after_a_checkpoint(process, out)
    assert_stopped_with_one_line(process, stderr, out)
    assert not any(Path(f"/proc/{pid}").exists() for pid in ranks), "a rank outlived the job"
