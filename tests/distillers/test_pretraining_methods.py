"""What the methods with a pre-training phase share (FSP, AB and FT, as RepDistiller runs them):
every shipped config keeps the reference's options and the KD config's pair and lr, and computes
finite losses in both phases; AB's and FSP's main phase is the label losses alone (KD only when
weighted); a run of FSP or AB stopped inside the pre-training phase resumes bit-identical."""

import pytest
import torch
import torch.nn.functional as F

from kdzoo.config import get_cfg
from kdzoo.distillers import build_distiller
from kdzoo.losses import KDLoss
from kdzoo.model_zoo import get_config, list_configs
from kdzoo_testing.runs import straight_and_resumed, tiny_batch, tiny_distiller

PHASED = ("fsp", "ab", "ft")
SHIPPED = [n for n in list_configs() if n.startswith(tuple(f"cifar100/{m}/" for m in PHASED))]


def _pair_and_lr(cfg) -> tuple:
    return cfg.MODEL.TEACHER.NAME, cfg.MODEL.STUDENT.NAME, cfg.SOLVER.BASE_LR


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_config_builds_and_gives_finite_losses_in_both_phases(name):
    method = name.split("/")[1]
    cfg = get_config(name)
    kd = get_config(name.replace(f"/{method}/", "/kd/"))
    assert _pair_and_lr(cfg) == _pair_and_lr(kd)
    # The reference's options (30 init epochs, FT's 200 and its init-lr rule, ...) untouched.
    assert cfg.DISTILLER[method.upper()] == get_cfg().DISTILLER[method.upper()]
    torch.manual_seed(0)
    distiller = build_distiller(cfg, torch.arange(100) % 100, load_weights=False).train()
    (init,) = distiller.pretraining_phases()
    for phase in (init, distiller.main_phase()):
        distiller.phase = phase.name
        losses = distiller(tiny_batch())
        assert losses and all(torch.isfinite(v) for v in losses.values())


@pytest.mark.parametrize("method", ["fsp", "ab"])
def test_the_main_phase_is_the_label_losses_alone(method):
    batch = tiny_batch()
    x = batch["views"][0]
    distiller = tiny_distiller(method)
    assert distiller.phase == "main"
    losses = distiller(batch)
    assert list(losses) == ["loss_cls"]  # RepDistiller's main-phase term is 0
    logits = distiller.student(x)["logits"]
    torch.testing.assert_close(losses["loss_cls"], F.cross_entropy(logits, batch["label"]))

    with_kd = tiny_distiller(method, **{f"DISTILLER.{method.upper()}.KD_WEIGHT": 0.9})
    losses = with_kd(batch)
    assert list(losses) == ["loss_cls", "loss_kd"]
    with torch.no_grad():
        logits_t = with_kd.teacher(x)["logits"]
    expected = 0.9 * KDLoss(4.0)(with_kd.student(x)["logits"], logits_t)
    torch.testing.assert_close(losses["loss_kd"], expected)
    losses["loss_kd"].backward()  # the student learns from the KD term
    assert all(p.grad is not None for p in with_kd.student.parameters())


@pytest.mark.reliability
@pytest.mark.parametrize("method", ["fsp", "ab"])
def test_resume_inside_the_pre_training_phase_is_bit_identical(
    cifar100_slice, random_teacher, tmp_path, method
):
    # Batches of 1,000 of the 4,000-image slice: 4 iterations of pre-training, then 1 of CE.
    opts = {
        "DISTILLER.NAME": method,
        f"DISTILLER.{method.upper()}.INIT_EPOCHS": 1,
        "MODEL.TEACHER.NAME": "resnet8",
        "MODEL.TEACHER.WEIGHTS": random_teacher,
        "SOLVER.IMS_PER_BATCH": 1000,
        "SOLVER.MAX_ITER": 1,
        "SOLVER.CHECKPOINT_PERIOD": 2,
        "TEST.EVAL_PERIOD": 10,
        "TEST.MAX_IMAGES": 100,
    }
    a, b = straight_and_resumed(cifar100_slice, tmp_path, stop_after=3, **opts)
    assert a["iteration"] == 4 and a["phase"] == {"index": 1}
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    # The main phase's optimizer (momentum after its first step) and schedule, too.
    state_a, state_b = a["optimizer"]["state"], b["optimizer"]["state"]
    assert state_a.keys() == state_b.keys() and state_a
    for s_a, s_b in zip(state_a.values(), state_b.values(), strict=True):
        assert torch.equal(s_a["momentum_buffer"], s_b["momentum_buffer"])
    assert a["scheduler"]["last_epoch"] == b["scheduler"]["last_epoch"] == 1
