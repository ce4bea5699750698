"""FSP as RepDistiller (commit b84f547) runs it: a pre-training phase on the FSP matrices that
trains the student's feature layers alone, then CE, with every shipped config and an exact
resume inside the pre-training phase."""

import pytest
import torch
import torch.nn.functional as F

from kdzoo.distillers import build_distiller
from kdzoo.losses import FSPLoss
from kdzoo.model_zoo import get_config, list_configs
from kdzoo.utils.errors import ConfigError
from kdzoo_testing.runs import straight_and_resumed, tiny_batch, tiny_distiller


def test_init_phase_is_the_summed_fsp_loss_and_main_phase_is_ce():
    distiller = tiny_distiller("fsp")
    batch = tiny_batch()
    x = batch["views"][0]
    distiller.phase = "init"
    losses = distiller(batch)
    assert list(losses) == ["loss_fsp"]
    with torch.no_grad():
        t = distiller.teacher(x, features=True)["features"]
    s = distiller.student(x, features=True)["features"]
    torch.testing.assert_close(losses["loss_fsp"], sum(FSPLoss()(s[:-1], t[:-1])))
    distiller.phase = "main"
    losses = distiller(batch)
    assert list(losses) == ["loss_cls"]  # RepDistiller's main-phase FSP term is 0
    logits = distiller.student(x)["logits"]
    torch.testing.assert_close(losses["loss_cls"], F.cross_entropy(logits, batch["label"]))
    with_kd = tiny_distiller("fsp", **{"DISTILLER.FSP.KD_WEIGHT": 0.9})
    assert list(with_kd(batch)) == ["loss_cls", "loss_kd"]


@pytest.mark.parametrize(
    ("student", "teacher", "untrained"),
    [
        ("resnet8", "resnet8", {"fc.weight", "fc.bias"}),
        # get_feat_modules() of a WRN stops at its last block: the final BN is not trained either.
        ("wrn_16_2", "wrn_40_2", {"fc.weight", "fc.bias", "bn1.weight", "bn1.bias"}),
    ],
)
def test_the_pre_training_phase_trains_the_feature_layers(student, teacher, untrained):
    distiller = tiny_distiller("fsp", student, teacher, **{"DISTILLER.FSP.INIT_EPOCHS": 7})
    (phase,) = distiller.pretraining_phases()
    assert (phase.name, phase.epochs, phase.constant_lr, phase.base_lr) == ("init", 7, True, None)
    names = {id(p): n for n, p in distiller.student.named_parameters()}
    trained = {names[id(p)] for p in phase.parameters}
    assert trained == set(names.values()) - untrained
    distiller.phase = "init"
    sum(distiller(tiny_batch()).values()).backward()
    with_grad = {n for n, p in distiller.student.named_parameters() if p.grad is not None}
    assert with_grad == trained
    assert all(p.grad is None for p in distiller.teacher.parameters())


def test_pairs_of_unequal_channels_are_refused():
    with pytest.raises(ConfigError, match=r"DISTILLER.NAME fsp: .* equal channels"):
        tiny_distiller("fsp", "resnet8", "wrn_16_2")


SHIPPED = [n for n in list_configs() if n.startswith("cifar100/fsp/")]


def test_ships_the_six_pairs_of_equal_channels():
    pairs = {n.split("/")[2].removesuffix(".yaml") for n in SHIPPED}
    assert pairs == {
        "resnet56_resnet20",
        "resnet110_resnet20",
        "resnet110_resnet32",
        "resnet32x4_resnet8x4",
        "vgg13_vgg8",
        "wrn_40_2_wrn_16_2",
    }


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_config_builds_and_steps_in_both_phases(name):
    cfg = get_config(name)
    kd = get_config(name.replace("/fsp/", "/kd/"))
    assert (cfg.MODEL.TEACHER.NAME, cfg.MODEL.STUDENT.NAME) == (
        kd.MODEL.TEACHER.NAME,
        kd.MODEL.STUDENT.NAME,
    )
    assert cfg.DISTILLER.FSP.INIT_EPOCHS == 30
    torch.manual_seed(0)
    distiller = build_distiller(cfg, torch.arange(100) % 100, load_weights=False).train()
    for phase in ("init", "main"):
        distiller.phase = phase
        losses = distiller(tiny_batch())
        assert all(torch.isfinite(v) for v in losses.values())


@pytest.mark.reliability
def test_resume_inside_the_pre_training_phase_is_bit_identical(
    cifar100_slice, random_teacher, tmp_path
):
    # Batches of 1,000 of the 4,000-image slice: 4 iterations of pre-training, then 1 of CE.
    opts = {
        "DISTILLER.NAME": "fsp",
        "DISTILLER.FSP.INIT_EPOCHS": 1,
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
