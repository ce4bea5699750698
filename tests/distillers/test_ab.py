"""AB as RepDistiller (commit b84f547) runs it: a pre-training phase that trains the connectors and
the student's feature layers on the AB loss of the pre-ReLU stage outputs, then CE; the whole
init loss equal to the reference's on three pairs (its main phase, shipped configs and resume:
test_pretraining_methods.py)."""

import json
import math
from pathlib import Path

import pytest
import torch

from kdzoo.config import get_cfg
from kdzoo.distillers.ab import _check_pairs, feature_layer_names
from kdzoo.losses import ABLoss
from kdzoo.model_zoo import list_configs
from kdzoo.modeling import build_backbone
from kdzoo.utils.errors import ConfigError
from kdzoo_testing import CIFAR_MODELS
from kdzoo_testing import ab_ft_reference as ref
from kdzoo_testing.runs import enter_phase, tiny_batch, tiny_distiller

REFERENCE = json.loads((Path(__file__).parents[1] / "losses" / "ab_ft_reference.json").read_text())


def names_with_grad(module) -> set[str]:
    return {n for n, p in module.named_parameters() if p.grad is not None}


def test_init_phase_is_the_summed_ab_loss():
    distiller = tiny_distiller("ab", "wrn_16_1", "wrn_16_2")  # channels differ: 1x1 conv connectors
    batch = tiny_batch()
    x = batch["views"][0]
    distiller.phase = "init"
    losses = distiller(batch)
    assert list(losses) == ["loss_ab"]
    with torch.no_grad():
        t = distiller.teacher(x, preact=True)["features"]
        distiller.student.bn1.eval()  # the final BN is outside the feature layers: eval mode
        s = distiller.student(x, preact=True)["features"]
        distiller.student.bn1.train()
        g_s = [c(f) for c, f in zip(distiller.connector.connectors, s[1:-1], strict=True)]
    torch.testing.assert_close(losses["loss_ab"], sum(ABLoss()(g_s, t[1:-1])))


@pytest.mark.parametrize("model", CIFAR_MODELS)
def test_the_feature_layers_are_those_the_reference_trains(model):
    # The parameters of get_feat_modules() that the preact feat[1:-1] reach, as RepDistiller's
    # init SGD updates them, stored per model.
    student = build_backbone(model)
    untrained = {n for n, _ in student.named_parameters()} - feature_layer_names(student)
    assert sorted(untrained) == REFERENCE["ab_init_untrained"][model]


@pytest.mark.parametrize(("student", "teacher"), [("resnet8", "resnet8"), ("wrn_16_1", "wrn_16_2")])
def test_gradients_reach_exactly_each_phases_parameters(student, teacher):
    distiller = tiny_distiller("ab", student, teacher, **{"DISTILLER.AB.INIT_EPOCHS": 7})
    trainable = [p for p in distiller.parameters() if p.requires_grad]
    (init,) = distiller.pretraining_phases()
    assert (init.name, init.epochs, init.constant_lr, init.base_lr) == ("init", 7, True, None)
    connector = {id(p) for p in distiller.connector.parameters()}
    assert connector <= {id(p) for p in init.parameters}
    assert bool(connector) == (student != teacher)  # identities where the maps agree
    untrained = set(REFERENCE["ab_init_untrained"][student])
    names = {id(p): n for n, p in distiller.student.named_parameters()}
    trained = {names[id(p)] for p in init.parameters if id(p) in names}
    assert trained == set(names.values()) - untrained

    enter_phase(distiller, trainable, init)
    sum(distiller(tiny_batch()).values()).backward()
    assert names_with_grad(distiller.student) == trained
    assert all(p.grad is not None for p in distiller.connector.parameters())
    assert all(p.grad is None for p in distiller.teacher.parameters())

    distiller.zero_grad(set_to_none=True)
    main = distiller.main_phase()  # the student alone: trainable_list (train_student.py:238)
    assert [id(p) for p in main.parameters] == [id(p) for p in distiller.student.parameters()]
    enter_phase(distiller, trainable, main)
    assert not any(p.requires_grad for p in distiller.connector.parameters())
    sum(distiller(tiny_batch()).values()).backward()
    assert names_with_grad(distiller.student) == set(names.values())
    assert all(p.grad is None for p in distiller.connector.parameters())
    assert all(p.grad is None for p in distiller.teacher.parameters())


def test_batchnorms_outside_the_feature_layers_keep_their_statistics_in_the_init_phase():
    distiller = tiny_distiller("ab", "wrn_16_1", "wrn_16_2")
    distiller.phase = "init"
    student = distiller.student
    final = student.bn1.running_mean.clone()
    inner = student.block2.layer[0].bn1.running_mean.clone()
    distiller(tiny_batch())
    torch.testing.assert_close(student.bn1.running_mean, final, rtol=0, atol=0)
    assert not torch.equal(student.block2.layer[0].bn1.running_mean, inner)
    assert student.bn1.training  # restored


@pytest.mark.parametrize("pair", list(REFERENCE["ab_pairs"]))
def test_the_init_loss_of_a_whole_pair_equals_repdistiller(pair):
    expected = REFERENCE["ab_pairs"][pair]
    teacher, student = next((t, s) for t, s in ref.AB_PAIRS if f"{t}_{s}" == pair)
    distiller = tiny_distiller("ab", student, teacher).double()
    distiller.teacher.load_state_dict(ref.seeded_state_dict(distiller.teacher, ref.TEACHER_SEED))
    distiller.student.load_state_dict(ref.seeded_state_dict(distiller.student, ref.STUDENT_SEED))
    distiller.connector.load_state_dict(ref.seeded_state_dict(distiller.connector, ref.HEAD_SEED))
    images, labels = ref.pair_batch()
    distiller.phase = "init"
    loss = distiller({"views": [images], "label": labels, "index": labels, "epoch": 0})["loss_ab"]
    assert math.isclose(loss.item(), expected["loss"], rel_tol=1e-6)
    loss.backward()
    grad = distiller.student.get_parameter(expected["student_parameter"]).grad
    for got, want in zip(ref.entries(grad), expected["student_gradient"], strict=True):
        assert math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-12)
    conv = next(c for c in distiller.connector.connectors if hasattr(c, "conv"))
    for got, want in zip(
        ref.entries(conv.conv.weight.grad), expected["connector_gradient"], strict=True
    ):
        assert math.isclose(got, want, rel_tol=1e-6, abs_tol=1e-12)


def test_pairs_the_reference_cannot_connect_are_refused():
    with pytest.raises(ConfigError, match=r"DISTILLER.NAME ab: the student vgg8 has 4 stage maps"):
        tiny_distiller("ab", "vgg8", "resnet8")
    cfg = get_cfg()
    with pytest.raises(ConfigError, match=r"stage 2: no connector maps .* 4x4 map .* 16x16"):
        _check_pairs(cfg, [(8, 32, 32), (8, 4, 4)], [(8, 32, 32), (8, 16, 16)])


SHIPPED = [n for n in list_configs() if n.startswith("cifar100/ab/")]


def test_ships_the_thirteen_pairs():
    kd = {n.replace("/kd/", "/ab/") for n in list_configs() if n.startswith("cifar100/kd/")}
    assert set(SHIPPED) == kd and len(SHIPPED) == 13
