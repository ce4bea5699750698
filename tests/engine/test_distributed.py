"""Two CPU processes over Gloo: the run completes and both ranks end with the same state."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from kdzoo.checkpoint import load_file
from kdzoo.engine import launch, main
from kdzoo_testing import REPO_ROOT, ddp_worker, tiny_run_opts
from kdzoo_testing.runs import metrics


def test_two_process_gloo_run_keeps_ranks_identical(cifar100_slice, tmp_path):
    out = tmp_path / "ddp"
    argv = tiny_run_opts(
        cifar100_slice, out, **{"DISTILLER.NAME": "toy_ema_queue", "SOLVER.MAX_ITER": 4}
    )
    launch(ddp_worker.train_dump_and_watch_teardown, 2, backend="gloo", args=(argv, str(tmp_path)))

    # The finished Trainer's cycles were collected first: Gloo was torn down with nothing left
    # holding it (left to interpreter exit, it once aborted a rank of a finished run).
    for rank in (0, 1):
        assert (tmp_path / f"ddp_alive_at_teardown{rank}.txt").read_text() == "0"
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


SMALL_COCORD = {
    "DISTILLER.NAME": "cocord",
    "DISTILLER.COCORD.PROJ_DIM": 64,
    "DISTILLER.COCORD.PROJ_HIDDEN": 64,
    "DISTILLER.COCORD.PRED_HIDDEN": 32,
    "DISTILLER.COCORD.QUEUE_SIZE": 100,
}
EQUIVALENCE_CASES = {
    "crd": {"DISTILLER.NAME": "crd", "DISTILLER.MEMORY_BANK.NUM_NEGATIVES": 256},
    "cocord": SMALL_COCORD,
    # No predictor then: once a parameter without gradients, which stalled DDP's reduction.
    "cocord_without_prediction": {**SMALL_COCORD, "DISTILLER.COCORD.PREDICTION_TARGET": "none"},
}


@pytest.mark.reliability
@pytest.mark.parametrize("case", sorted(EQUIVALENCE_CASES))
def test_two_processes_with_sync_bn_equal_one_process(
    cifar100_slice, random_teacher, tmp_path, case
):
    """Real BatchNorm networks (resnet8 student and teacher, BN in CoCoRD's heads and slow
    student): with MODEL.SYNC_BN, 2 Gloo processes over the global batch equal 1 process.

    Compared: ranks (exactly equal), the memories after one step (to 1e-6) and after three, every
    step's losses (tightly), the whole state after the first step (to float noise). The early
    layers' gradients are sums that nearly cancel, so their rounding differs visibly with the
    order of summation: two one-process runs that differ only in memory format (NCHW vs
    channels_last) have first-step gradients 0.25% apart in the first convolution and weights 2e-2
    apart after three steps, more than one and two processes (3e-5 after one step, 1e-3 after
    three). NCHW here, whose sums agree best; the weights after three steps are not compared.
    """
    opts = {
        "MODEL.CHANNELS_LAST": False,
        "MODEL.TEACHER.NAME": "resnet8",
        "MODEL.TEACHER.WEIGHTS": random_teacher,
        "MODEL.SYNC_BN": True,
        "SOLVER.MAX_ITER": 3,
        "SOLVER.CHECKPOINT_PERIOD": 1,
        "LOG_PERIOD": 1,
        **EQUIVALENCE_CASES[case],
    }
    first_step, final, losses = one_and_two_processes(cifar100_slice, tmp_path, opts)
    assert_first_step_and_losses_agree(first_step, final, losses, steps=3)
    memories = [k for k in final[1] if k.startswith(("memory.", "dictionary."))]
    assert memories
    for key in memories:  # CRD's banks, CoCoRD's queue: unit vectors, written from the global batch
        # After one step they differ only by the rounding of BatchNorm's sums (seen: 9e-8, about
        # one float32 ulp of 1); after three, by that of the weights they were computed with.
        torch.testing.assert_close(first_step[2][key], first_step[1][key], rtol=0, atol=1e-6)
        torch.testing.assert_close(final[2][key], final[1][key], rtol=1e-4, atol=1e-5, msg=key)


@pytest.mark.reliability
@pytest.mark.parametrize("method", ["sp", "pkt", "rkd", "cc", "reviewkd"])
def test_losses_over_the_batch_use_the_global_batch(
    cifar100_slice, random_teacher, tmp_path, method
):
    """Losses that depend on the rest of the batch, under DDP, 2 Gloo processes with
    MODEL.SYNC_BN vs 1 process, two steps. SP, PKT, RKD and CC compare pairs of samples: each
    rank gathers the global batch (on half batches SP's B x B matrices and PKT's and RKD's means
    would differ). ReviewKD's ABF modules normalise with BatchNorm: SYNC_BN converts them with
    the student (without it the first step's weights differ). RKD's third step on these random
    networks amplifies the float noise of the first two to 1.5e-4 of its loss (seen; its first
    step agrees bit for bit, its second to 2e-7), so two steps are compared."""
    opts = {
        "DISTILLER.NAME": method,
        "MODEL.CHANNELS_LAST": False,
        "MODEL.TEACHER.NAME": "resnet8",
        "MODEL.TEACHER.WEIGHTS": random_teacher,
        "MODEL.SYNC_BN": True,
        "SOLVER.MAX_ITER": 2,
        "SOLVER.CHECKPOINT_PERIOD": 1,
        "LOG_PERIOD": 1,
    }
    runs = one_and_two_processes(cifar100_slice, tmp_path, opts)
    assert_first_step_and_losses_agree(*runs, steps=2)


@pytest.mark.reliability
@pytest.mark.parametrize(
    ("method", "pretraining_loss", "main_losses"),
    [("fsp", "loss_fsp", ["loss_cls"]), ("ft", "loss_paraphraser", ["loss_cls", "loss_ft"])],
    ids=["fsp", "ft"],
)
def test_a_phased_method_on_two_processes_equals_one(
    cifar100_slice, random_teacher, tmp_path, method, pretraining_loss, main_losses
):
    """A pre-training phase, then the main phase (a new optimizer, a new DDP wrapper): 2 Gloo
    processes with MODEL.SYNC_BN compute what 1 process computes, across the switch. FSP
    pre-trains the student's feature layers, then trains every parameter; FT pre-trains the
    paraphraser, which its main phase leaves out (DDP must not wait for its gradients). Batches
    of 2,000 of the 4,000-image slice: 2 pre-training steps, then 2 main steps, the second's loss
    computed after the first main update."""
    opts = {
        "DISTILLER.NAME": method,
        f"DISTILLER.{method.upper()}.INIT_EPOCHS": 1,
        "MODEL.CHANNELS_LAST": False,
        "MODEL.TEACHER.NAME": "resnet8",
        "MODEL.TEACHER.WEIGHTS": random_teacher,
        "MODEL.SYNC_BN": True,
        "SOLVER.IMS_PER_BATCH": 2000,
        "SOLVER.MAX_ITER": 2,
        "SOLVER.CHECKPOINT_PERIOD": 1,
        "TEST.MAX_IMAGES": 100,
        "LOG_PERIOD": 1,
    }
    runs = one_and_two_processes(cifar100_slice, tmp_path, opts)
    assert_first_step_and_losses_agree(*runs, steps=4)
    _, _, losses = runs
    pretraining = sorted([pretraining_loss, "total_loss"])
    main = sorted([*main_losses, "total_loss"])
    assert [sorted(line) for line in losses[2]] == [pretraining] * 2 + [main] * 2


def one_and_two_processes(data: Path, tmp_path: Path, opts: dict) -> tuple[dict, dict, dict]:
    """Train ``opts`` on 1 and on 2 Gloo processes; by process count, the state after the first
    step, the final state (ranks checked equal) and every step's losses."""
    first_step, final, losses = {}, {}, {}
    for processes in (1, 2):
        run_dir = tmp_path / str(processes)
        run_dir.mkdir()
        argv = tiny_run_opts(data, run_dir / "out", **opts)
        launch(ddp_worker.train_and_dump, processes, backend="gloo", args=(argv, str(run_dir)))
        ranks = [torch.load(run_dir / f"rank{r}.pth", weights_only=True) for r in range(processes)]
        for key in ranks[0]:
            if not key.endswith("_extra_state"):  # samplers' generators
                assert all(torch.equal(rank[key], ranks[0][key]) for rank in ranks), key
        final[processes] = ranks[0]
        first_step[processes] = load_file(str(run_dir / "out" / "model_0000000.pth"))["model"]
        losses[processes] = [
            {k: v for k, v in line.items() if k.startswith("loss_") or k == "total_loss"}
            for line in metrics(run_dir / "out")
            if "total_loss" in line
        ]
    return first_step, final, losses


def assert_first_step_and_losses_agree(
    first_step: dict, final: dict, losses: dict, steps: int
) -> None:
    """The whole state after the first step to float noise, and each of ``steps`` steps' losses
    tightly."""
    assert first_step[1].keys() == first_step[2].keys() == final[1].keys()
    for key, value in first_step[2].items():
        if not key.endswith("_extra_state"):  # samplers' generators
            torch.testing.assert_close(value, first_step[1][key], rtol=1e-3, atol=1e-4, msg=key)
    assert len(losses[1]) == len(losses[2]) == steps
    for one, two in zip(losses[1], losses[2], strict=True):
        assert one.keys() == two.keys()
        for name in one:
            assert two[name] == pytest.approx(one[name], rel=1e-4), name


def test_torchrun_runs_the_job_num_gpus_runs(cifar100_slice, random_teacher, tmp_path, monkeypatch):
    """``torchrun`` (each process started by it, the group set up from its environment) and
    ``--num-gpus 2`` (kdzoo spawning the processes) train the same 2-process KD run, bit for bit."""
    monkeypatch.setenv("OMP_NUM_THREADS", "1")  # both launchers' workers: one thread each
    opts = {
        "DISTILLER.NAME": "kd",
        "MODEL.TEACHER.NAME": "resnet8",
        "MODEL.TEACHER.WEIGHTS": random_teacher,
        "SOLVER.MAX_ITER": 4,
    }
    spawned, torchrun = tmp_path / "spawned", tmp_path / "torchrun"
    main(["--num-gpus", "2", *tiny_run_opts(cifar100_slice, spawned, **opts)])
    done = subprocess.run(
        [
            *(sys.executable, "-m", "torch.distributed.run"),
            *("--standalone", "--nproc-per-node", "2"),
            str(REPO_ROOT / "tools" / "train_net.py"),
            *tiny_run_opts(cifar100_slice, torchrun, **opts),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert "Rank 1 of 2" in (torchrun / "log.txt.rank1").read_text()
    a = load_file(str(spawned / "model_final.pth"))
    b = load_file(str(torchrun / "model_final.pth"))
    assert len(a["rng"]) == len(b["rng"]) == 2
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
