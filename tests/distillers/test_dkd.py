"""DKD as mdistiller (commit a08d46f) runs it: CE plus the decoupled KD of the logits, ramped in
over the first WARMUP epochs of the engine's epoch count, and a real training run."""

import pytest
import torch
import torch.nn.functional as F

from kdzoo.losses import DKDLoss
from kdzoo_testing.runs import tiny_batch, tiny_distiller


# The engine's epochs count from 0, mdistiller's from 1: its first epoch weighs 1 / WARMUP.
@pytest.mark.parametrize(("epoch", "ramp"), [(0, 1 / 20), (9, 10 / 20), (19, 1.0), (150, 1.0)])
def test_losses_are_ce_plus_the_ramped_decoupled_kd(epoch, ramp):
    distiller = tiny_distiller("dkd", **{"DISTILLER.DKD.BETA": 2.0})
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
    distiller = tiny_distiller("dkd")
    sum(distiller({**tiny_batch(), "epoch": 3}).values()).backward()
    assert all(p.grad is None for p in distiller.teacher.parameters())
    assert all(p.grad is not None for p in distiller.student.parameters())
    assert {id(p) for p in distiller.parameters() if p.requires_grad} == {
        id(p) for p in distiller.student.parameters()
    }
