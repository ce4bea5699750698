"""CRD through the engine: real CIFAR-100 iterations, exact resume, two processes."""

from pathlib import Path

import pytest
import torch

from kdzoo.checkpoint import load_file
from kdzoo.config import get_cfg
from kdzoo.distillers import build_distiller
from kdzoo.engine import launch
from kdzoo_testing import ddp_worker, tiny_run_opts, toy_distillers
from kdzoo_testing.runs import assert_rows_written, metrics, straight_and_resumed, train_net

toy_distillers.register()


def crd_opts(teacher: Path, **extra) -> dict:
    opts = {
        "MODEL.TEACHER.NAME": "resnet8",
        "MODEL.TEACHER.WEIGHTS": teacher,
        "DISTILLER.MEMORY_BANK.NUM_NEGATIVES": 512,
    }
    opts.update(extra)
    return opts


def test_crd_and_crd_kd_train_on_real_cifar100(cifar100_slice, random_teacher, tmp_path):
    for config in ("crd", "crd_kd"):
        out = tmp_path / config
        result = train_net(
            "--config",
            f"configs/cifar100/{config}/resnet32x4_resnet8x4.yaml",
            *tiny_run_opts(cifar100_slice, out, **crd_opts(random_teacher)),
        )
        assert result.returncode == 0, result.stderr[-3000:]
        line = [m for m in metrics(out) if "loss_crd" in m][-1]
        assert line["loss_crd"] > 0 and (("loss_kd" in line) == (config == "crd_kd"))
        state = load_file(str(out / "model_final.pth"))["model"]
        assert state["memory.banks"].shape == (2, 4000, 128)
        assert_rows_written(state["memory.banks"], cifar100_slice, steps=6)
        assert state["z_student.z"] > 0 and state["z_teacher.z"] > 0


@pytest.mark.reliability
def test_crd_resume_restores_banks_z_and_sampler_exactly(cifar100_slice, random_teacher, tmp_path):
    opts = crd_opts(
        random_teacher,
        **{
            "DISTILLER.NAME": "crd",
            "SOLVER.MAX_ITER": 6,
            "SOLVER.CHECKPOINT_PERIOD": 3,
            "TEST.EVAL_PERIOD": 6,
        },
    )
    a, b = straight_and_resumed(cifar100_slice, tmp_path, stop_after=3, **opts)
    a, b = a["model"], b["model"]
    assert a.keys() == b.keys() and "sampler._extra_state" in a
    for key in a:
        if key == "sampler._extra_state":
            assert torch.equal(a[key]["generator"], b[key]["generator"])
        else:
            assert torch.equal(a[key], b[key]), key


@pytest.mark.reliability
def test_two_processes_hold_identical_banks_equal_to_one_process(cifar100_slice, tmp_path):
    teacher = tmp_path / "teacher.pth"
    torch.manual_seed(2)
    torch.save(toy_distillers.NoBatchNormNet().state_dict(), teacher)
    opts = {
        "DISTILLER.NAME": "crd",
        "MODEL.STUDENT.NAME": "toy_no_bn_net",
        "MODEL.TEACHER.NAME": "toy_no_bn_net",
        "MODEL.TEACHER.WEIGHTS": teacher,
        "DISTILLER.MEMORY_BANK.NUM_NEGATIVES": 256,
        "SOLVER.MAX_ITER": 3,
    }
    one, two = tmp_path / "one", tmp_path / "two"
    one.mkdir()
    two.mkdir()
    launch(
        ddp_worker.train_and_dump,
        1,
        args=(tiny_run_opts(cifar100_slice, one / "out", **opts), str(one)),
    )
    launch(
        ddp_worker.train_and_dump,
        2,
        backend="gloo",
        args=(tiny_run_opts(cifar100_slice, two / "out", **opts), str(two)),
    )
    single = torch.load(one / "rank0.pth", weights_only=True)
    rank0 = torch.load(two / "rank0.pth", weights_only=True)
    rank1 = torch.load(two / "rank1.pth", weights_only=True)
    for key in rank0:
        if key.endswith("_extra_state"):
            continue
        assert torch.equal(rank0[key], rank1[key]), key  # ranks agree exactly
        # One process over the same global batches: equal up to float summation order.
        torch.testing.assert_close(rank0[key], single[key], rtol=1e-4, atol=1e-5)
    assert torch.equal(
        rank0["sampler._extra_state"]["generator"], single["sampler._extra_state"]["generator"]
    )
    assert_rows_written(single["memory.banks"], cifar100_slice, steps=3)


@pytest.mark.parametrize("with_replacement", [False, True])
def test_the_bank_options_reach_the_sampler(with_replacement):
    cfg = get_cfg()
    cfg.merge_from_list(
        ["DISTILLER.NAME", "crd", "MODEL.STUDENT.NAME", "resnet8", "MODEL.TEACHER.NAME", "resnet8"]
        + ["DISTILLER.MEMORY_BANK.NUM_NEGATIVES", 20, "DISTILLER.MEMORY_BANK.MODE", "relax"]
        + ["DISTILLER.MEMORY_BANK.NEGATIVES_WITH_REPLACEMENT", with_replacement]
    )
    distiller = build_distiller(cfg, torch.arange(200) % 10, load_weights=False)
    sampler = distiller.sampler
    assert (sampler.num_negatives, sampler.mode) == (20, "relax")
    assert sampler.with_replacement is with_replacement
