"""DKD as mdistiller (commit a08d46f) runs it: CE plus the decoupled KD of the logits, ramped in
over the first WARMUP epochs of the engine's epoch count, and a real training run."""

import math

import pytest
import torch
import torch.nn.functional as F

from kdzoo.config import get_cfg
from kdzoo.distillers import build_distiller
from kdzoo.losses import DKDLoss
from kdzoo_testing import tiny_run_opts
from kdzoo_testing.runs import metrics, tiny_batch, train_net


def tiny_dkd(**opts):
    cfg = get_cfg()
    cfg.merge_from_list(["DISTILLER.NAME", "dkd", "MODEL.STUDENT.NAME", "resnet8"])
    cfg.merge_from_list(["MODEL.TEACHER.NAME", "resnet8"])
    cfg.merge_from_list([str(x) for kv in opts.items() for x in kv])
    torch.manual_seed(0)
    return build_distiller(cfg, torch.arange(100) % 100, load_weights=False).train()


# The engine's epochs count from 0, mdistiller's from 1: its first epoch weighs 1 / WARMUP.
@pytest.mark.parametrize(("epoch", "ramp"), [(0, 1 / 20), (9, 10 / 20), (19, 1.0), (150, 1.0)])
def test_losses_are_ce_plus_the_ramped_decoupled_kd(epoch, ramp):
    distiller = tiny_dkd(**{"DISTILLER.DKD.BETA": 2.0})
    batch = {**tiny_batch(), "epoch": epoch}
    losses = distiller(batch)
    assert list(losses) == ["loss_cls", "loss_dkd"]
    x = batch["views"][0]
    with torch.no_grad():
        logits_t = distiller.teacher(x)["logits"]
    logits_s = distiller.student(x)["logits"]
    torch.testing.assert_close(losses["loss_cls"], F.cross_entropy(logits_s, batch["label"]))
    dkd = DKDLoss(alpha=1.0, beta=2.0, temperature=4.0)(logits_s, logits_t, batch["label"])
    torch.testing.assert_close(losses["loss_dkd"], ramp * dkd)
    assert dkd > 0


def test_gradients_reach_the_student_only():
    distiller = tiny_dkd()
    sum(distiller({**tiny_batch(), "epoch": 3}).values()).backward()
    assert all(p.grad is None for p in distiller.teacher.parameters())
    assert all(p.grad is not None for p in distiller.student.parameters())
    assert {id(p) for p in distiller.parameters() if p.requires_grad} == {
        id(p) for p in distiller.student.parameters()
    }


def test_trains_on_real_cifar100_across_an_epoch(cifar100_slice, random_teacher, tmp_path):
    # 4,000 training images in batches of 500: 8 iterations per epoch, so 10 cross into epoch 1.
    out = tmp_path / "dkd"
    opts = {
        "MODEL.TEACHER.NAME": "resnet8",
        "MODEL.TEACHER.WEIGHTS": random_teacher,
        "SOLVER.IMS_PER_BATCH": 500,
        "SOLVER.MAX_ITER": 10,
        "SOLVER.CHECKPOINT_PERIOD": 0,
        "TEST.EVAL_PERIOD": 10,
        "LOG_PERIOD": 1,
        "DISTILLER.DKD.WARMUP": 2,
    }
    result = train_net(
        "--config",
        "configs/cifar100/dkd/resnet32x4_resnet8x4.yaml",
        *tiny_run_opts(cifar100_slice, out, **opts),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [m for m in metrics(out) if "total_loss" in m]
    assert len(lines) == 10
    for line in lines:
        assert math.isfinite(line["loss_dkd"]) and line["loss_dkd"] > 0
