"""Two CPU processes over Gloo: the run completes and both ranks end with the same state."""

import sys
from pathlib import Path

import torch
from conftest import tiny_run_opts

from kdzoo.checkpoint import load_file
from kdzoo.engine import launch

sys.path.insert(0, str(Path(__file__).parent))
import ddp_worker  # noqa: E402


def test_two_process_gloo_run_keeps_ranks_identical(cifar100_slice, tmp_path):
    out = tmp_path / "ddp"
    argv = tiny_run_opts(
        cifar100_slice, out, **{"DISTILLER.NAME": "toy_ema_queue", "SOLVER.MAX_ITER": 4}
    )
    launch(ddp_worker.train_and_dump, 2, backend="gloo", args=(argv, str(tmp_path)))

    rank0 = torch.load(tmp_path / "rank0.pth", weights_only=True)
    rank1 = torch.load(tmp_path / "rank1.pth", weights_only=True)
    assert rank0.keys() == rank1.keys()
    for key in rank0:  # student, BN statistics, EMA copy and the all-gathered queue
        assert torch.equal(rank0[key], rank1[key]), key
    # Every step enqueued the keys of the whole global batch (2 ranks x 16), not one rank's.
    assert int(rank0["queue.ptr"]) == 4 * 32 % 96
    saved = load_file(str(out / "model_final.pth"))
    assert len(saved["rng"]) == 2  # each rank's RNG state is kept for an exact resume
    for key in rank0:
        assert torch.equal(saved["model"][key], rank0[key]), key


def test_a_random_seed_is_the_same_on_every_rank(tmp_path):
    launch(ddp_worker.setup_and_dump_seed, 2, backend="gloo", args=(["SEED", "-1"], str(tmp_path)))
    seeds = {(tmp_path / f"seed{rank}.txt").read_text() for rank in (0, 1)}
    assert len(seeds) == 1 and int(seeds.pop()) >= 0
