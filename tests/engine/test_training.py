"""End-to-end training through the engine on a slice of the real CIFAR-100."""

import errno
import json
import os
import shutil
from pathlib import Path

import pytest
import torch

from kdzoo.checkpoint import load_file
from kdzoo.engine import NonFiniteLossError
from kdzoo_testing import tiny_run_opts, toy_distillers
from kdzoo_testing.runs import (
    metrics,
    run_in_process,
    straight_and_resumed,
    train_net,
    train_net_in_process,
)

toy_distillers.register()


@pytest.fixture(scope="module")
def teacher_ckpt(cifar100_slice, tmp_path_factory) -> Path:
    """A resnet8 'teacher' trained for a few iterations with the vanilla distiller."""
    out = tmp_path_factory.mktemp("teacher")
    result = train_net(
        "--config",
        "configs/cifar100/vanilla/resnet8.yaml",
        *tiny_run_opts(cifar100_slice, out),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    return out


def test_vanilla_end_to_end(teacher_ckpt):
    out = teacher_ckpt
    for name in (
        "config.yaml",
        "log.txt",
        "metrics.json",
        "env.txt",
        "last_checkpoint",
        "model_0000002.pth",
        "model_final.pth",
    ):
        assert (out / name).is_file(), name
    assert (out / "last_checkpoint").read_text().strip() == "model_final.pth"
    lines = metrics(out)
    train_lines = [m for m in lines if "total_loss" in m]
    # every LOG_PERIOD (2) iterations, and when an evaluation (every 3) asks for a write
    assert [m["iteration"] for m in train_lines] == [1, 2, 3, 5]
    assert all({"loss_cls", "lr", "total_loss"} <= m.keys() for m in train_lines)
    evals = [m for m in lines if "test/top1" in m]
    assert [m["iteration"] for m in evals] == [2, 5]
    assert all(0 <= m["test/top1"] <= m["test/top5"] <= 100 for m in evals)
    ckpt = load_file(str(out / "model_final.pth"))
    assert ckpt["iteration"] == 5 and ckpt["data"] == {"epoch": 0, "batch": 6}
    assert all(k.startswith("student.") for k in ckpt["model"])


def test_kd_end_to_end(teacher_ckpt, cifar100_slice, tmp_path):
    out = tmp_path / "kd"
    result = train_net(
        "--config",
        "configs/cifar100/kd/resnet56_resnet20.yaml",
        "MODEL.TEACHER.NAME",
        "resnet8",
        *tiny_run_opts(
            cifar100_slice,
            out,
            **{
                "MODEL.TEACHER.WEIGHTS": teacher_ckpt / "model_final.pth",
                "SOLVER.MAX_ITER": 4,
            },
        ),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [m for m in metrics(out) if "loss_kd" in m]
    assert lines and all(m["loss_kd"] > 0 and m["loss_cls"] > 0 for m in lines)
    state = load_file(str(out / "model_final.pth"))["model"]
    teacher = load_file(str(teacher_ckpt / "model_final.pth"))["model"]
    # The teacher took the trained weights and was never updated (BN statistics included).
    for key, value in teacher.items():
        if key.startswith("student."):
            assert torch.equal(state["teacher." + key[len("student.") :]], value)


def test_eval_only_reports_the_checkpoint_accuracy(teacher_ckpt, cifar100_slice, tmp_path):
    final = [m for m in metrics(teacher_ckpt) if "test/top1" in m][-1]
    results = run_in_process(
        "--eval-only",
        *tiny_run_opts(
            cifar100_slice,
            tmp_path / "eval",
            **{"MODEL.STUDENT.WEIGHTS": teacher_ckpt / "model_final.pth"},
        ),
    )
    assert results["top1"] == pytest.approx(final["test/top1"], abs=1e-6)
    assert results["top5"] == pytest.approx(final["test/top5"], abs=1e-6)


def test_eval_only_of_a_run_writes_its_own_folder_and_leaves_the_run_alone(
    teacher_ckpt, cifar100_slice, tmp_path
):
    run = tmp_path / "run"
    shutil.copytree(teacher_ckpt, run)
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    opts = tiny_run_opts(cifar100_slice, run, **{"TEST.MAX_IMAGES": 300})
    resumed = run_in_process("--eval-only", "--resume", *opts)
    weights = str(run / "model_final.pth")
    named = run_in_process("--eval-only", *opts, "MODEL.STUDENT.WEIGHTS", weights)
    assert {p: p.read_bytes() for p in before} == before  # config.yaml, log, metrics untouched
    assert resumed == named
    record = json.loads((run / "eval" / "eval_model_final.json").read_text())
    assert record["test_images"] == 300 and record["weights"] == weights
    assert record["test/top1"] == resumed["top1"]
    eval_log = (run / "eval" / "log.txt").read_text()
    assert "Evaluations use 300 of the 1000 test images (TEST.MAX_IMAGES)" in eval_log
    assert "Running with full config:" in eval_log and "MAX_IMAGES: 300" in eval_log
    assert "Command line arguments: Namespace(" in eval_log
    assert "MAX_IMAGES: 300" in (run / "eval" / "config.yaml").read_text()


def test_save_best_keeps_the_best_evaluation_and_resume_the_newest(cifar100_slice, tmp_path):
    out = tmp_path / "run"
    opts = {"TEST.SAVE_BEST": True, "TEST.EVAL_PERIOD": 2, "TEST.MAX_IMAGES": 200}
    run_in_process(*tiny_run_opts(cifar100_slice, out, **opts))
    evals = [m for m in metrics(out) if "test/top1" in m]
    assert [m["iteration"] for m in evals] == [1, 3, 5]
    best = max(evals, key=lambda m: m["test/top1"])  # the first of equal bests
    saved = load_file(str(out / "model_best.pth"))
    assert saved["iteration"] == best["iteration"]
    assert saved["hooks"]["EvalHook"]["best_top1"] == best["test/top1"]
    assert (out / "last_checkpoint").read_text().strip() == "model_final.pth"
    # The console line shows the epoch: 4,000 images in batches of 32 are 125 steps an epoch.
    assert "epoch: 1/1  iter: 6/6" in (out / "log.txt").read_text()


@pytest.mark.reliability
def test_resume_is_bit_identical(cifar100_slice, tmp_path):
    """8 iterations straight vs stopped after 6 (last checkpoint after 4), --resume to 8: same
    weights, EMA copy, queue, optimizer, schedule and metrics."""
    opts = {
        "DISTILLER.NAME": "toy_ema_queue",
        "SOLVER.MAX_ITER": 8,
        "SOLVER.CHECKPOINT_PERIOD": 4,
        "TEST.EVAL_PERIOD": 4,
        "SOLVER.BASE_LR": 0.1,
    }
    a, b = straight_and_resumed(cifar100_slice, tmp_path, stop_after=6, **opts)
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    assert (resumed / "model_0000003.pth").is_file()
    assert a["model"].keys() == b["model"].keys()
    assert any(k.startswith("slow_student.") for k in a["model"])
    assert any(k.startswith("queue.") for k in a["model"])
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    for sa, sb in zip(
        a["optimizer"]["state"].values(), b["optimizer"]["state"].values(), strict=True
    ):
        assert torch.equal(sa["momentum_buffer"], sb["momentum_buffer"])
    assert a["scheduler"]["last_epoch"] == b["scheduler"]["last_epoch"] == 8

    # The stopped run had logged iteration 5; the resumed one dropped that line and redid it.
    def without_timing(lines: list[dict]) -> list[dict]:
        return [{k: v for k, v in m.items() if k not in ("time", "data_time")} for m in lines]

    assert without_timing(metrics(resumed)) == without_timing(metrics(straight))


@pytest.mark.reliability
def test_resume_without_checkpoint_starts_fresh_with_a_warning(cifar100_slice, tmp_path):
    out = tmp_path / "fresh"
    run_in_process("--resume", *tiny_run_opts(cifar100_slice, out, **{"SOLVER.MAX_ITER": 2}))
    assert "no checkpoint" in (out / "log.txt").read_text()
    assert load_file(str(out / "model_final.pth"))["iteration"] == 1


@pytest.mark.reliability
def test_non_finite_loss_stops_and_keeps_the_last_good_checkpoint(cifar100_slice, tmp_path):
    out = tmp_path / "nan"
    opts = {
        "DISTILLER.NAME": "toy_nan",
        "SOLVER.MAX_ITER": 8,
        "SOLVER.CHECKPOINT_PERIOD": 2,
        "LOG_PERIOD": 3,
    }
    with pytest.raises(NonFiniteLossError, match="NaN or Inf"):
        run_in_process(*tiny_run_opts(cifar100_slice, out, **opts))
    # NaN from the 5th step (iteration 4); checkpoints at iterations 1 and 3 are finite, the one
    # due after iteration 5 is never written.
    assert (out / "last_checkpoint").read_text().strip() == "model_0000003.pth"
    assert not (out / "model_0000005.pth").exists() and not (out / "model_final.pth").exists()
    state = load_file(str(out / "model_0000003.pth"))["model"]
    assert all(torch.isfinite(v).all() for v in state.values() if v.is_floating_point())


@pytest.mark.reliability
def test_a_full_disk_stops_the_run_in_one_line_and_keeps_the_last_checkpoint(
    cifar100_slice, tmp_path, monkeypatch
):
    out = tmp_path / "full"
    save = torch.save
    calls = []

    def save_until_the_disk_fills(obj, f):
        calls.append(1)
        if len(calls) > 1:  # the first checkpoint fits, the second does not
            f.write(b"the first bytes")
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        save(obj, f)

    monkeypatch.setattr(torch, "save", save_until_the_disk_fills)
    result = train_net_in_process(*tiny_run_opts(cifar100_slice, out))
    monkeypatch.undo()
    assert result.returncode == 2
    assert result.stderr.strip().splitlines()[-1] == (
        f"kdzoo: error: cannot write checkpoint {out / 'model_final.pth'}: No space left on "
        f"device; the last checkpoint, {out / 'model_0000002.pth'}, is intact"
    )
    assert (out / "last_checkpoint").read_text().strip() == "model_0000002.pth"
    assert load_file(str(out / "model_0000002.pth"))["iteration"] == 2
    assert not [p.name for p in out.iterdir() if p.name.startswith(".tmp_")]


@pytest.mark.reliability
def test_a_user_error_ends_the_real_process_with_status_2(cifar100_slice, tmp_path):
    """In a real interpreter, as a user runs it: an error raised deep in the training loop ends
    the process with status 2 and one line (the rest of the catalogue runs in-process)."""
    result = train_net(
        *tiny_run_opts(
            cifar100_slice,
            tmp_path / "lr",
            **{"SOLVER.BASE_LR": 1e30, "SOLVER.MAX_ITER": 4, "LOG_PERIOD": 4},
        )
    )
    assert result.returncode == 2, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("kdzoo: error: the loss became NaN or Inf")
