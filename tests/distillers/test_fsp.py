"""FSP as RepDistiller (commit b84f547) runs it: a pre-training phase on the FSP matrices that
trains the student's feature layers alone, then CE (its main phase, shipped configs and resume:
test_pretraining_methods.py), on the pairs whose channels agree."""

import pytest
import torch

from kdzoo.losses import FSPLoss
from kdzoo.model_zoo import list_configs
from kdzoo.utils.errors import ConfigError
from kdzoo_testing.runs import tiny_batch, tiny_distiller


def test_init_phase_is_the_summed_fsp_loss():
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
