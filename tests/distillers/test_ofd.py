"""OFD as mdistiller (commit a08d46f, mdistiller/distillers/OFD.py) runs it: the teacher's
BatchNorms before each stage's last ReLU (module for module those of mdistiller's models), the
whole loss equal to mdistiller's on four pairs, gradients to the student and its connectors and
never to the teacher, the teacher normalising with batch statistics in training, and a real run
with an exact resume."""

import copy
import json
import math
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from kdzoo.config import get_cfg
from kdzoo.distillers import build_distiller
from kdzoo.distillers.ofd import OFD
from kdzoo.losses import OFDLoss, bn_margin
from kdzoo.modeling import OFDConnector, bn_before_relu, build_backbone, probe_features
from kdzoo.utils.errors import ConfigError
from kdzoo_testing import CIFAR_MODELS
from kdzoo_testing.ofd_reference import (
    ACCESSOR_SEED,
    CONNECTOR_SEED,
    STUDENT_SEED,
    TEACHER_SEED,
    pair_batch,
    seeded_state_dict,
)
from kdzoo_testing.runs import tiny_batch

REFERENCE = json.loads((Path(__file__).parents[1] / "losses" / "ofd_reference.json").read_text())
IMAGENET_MODELS = ("resnet18", "resnet50")


def ofd_config(teacher: str = "resnet8", student: str = "resnet8", **opts):
    cfg = get_cfg()
    cfg.merge_from_list(["DISTILLER.NAME", "ofd", "MODEL.STUDENT.NAME", student])
    cfg.merge_from_list(["MODEL.TEACHER.NAME", teacher])
    cfg.merge_from_list([str(x) for kv in opts.items() for x in kv])
    return cfg


def tiny_ofd(teacher: str = "resnet8", student: str = "resnet8", **opts) -> OFD:
    torch.manual_seed(0)
    cfg = ofd_config(teacher, student, **opts)
    return build_distiller(cfg, torch.arange(100) % 100, load_weights=False).train()


def module_names(model: nn.Module, modules: list[nn.Module]) -> list[str]:
    names = {id(m): n for n, m in model.named_modules()}
    return [names[id(m)] for m in modules]


# ---- the BatchNorms before the stages' last ReLU -------------------------------------------


@pytest.mark.parametrize("name", [*CIFAR_MODELS, *IMAGENET_MODELS])
def test_bn_before_relu_is_mdistillers_module_for_module(name):
    ref = REFERENCE["bn_before_relu"][name]
    classes = 1000 if name in IMAGENET_MODELS else 100
    model = build_backbone(name, num_classes=classes).double()
    model.load_state_dict(seeded_state_dict(model, ACCESSOR_SEED))  # mdistiller's same state
    if name == "ShuffleV2":
        assert ref == {"raises": "NotImplementedError"}
        with pytest.raises(ValueError, match="ShuffleV2 has no BatchNorm"):
            bn_before_relu(model)
        return
    bns = bn_before_relu(model)
    assert all(type(bn) is nn.BatchNorm2d for bn in bns)
    names = module_names(model, bns)
    if name == "ShuffleV1":  # mdistiller raises; kdzoo takes the BN a ResNet block would
        assert ref == {"raises": "NotImplementedError"}
        assert names == ["layer1.3.bn3", "layer2.7.bn3", "layer3.3.bn3"]
        return
    if name in IMAGENET_MODELS:  # mdistiller leaves out layer1 (its line is commented out)
        assert names[0] == ("layer1.1.bn2" if name == "resnet18" else "layer1.2.bn3")
        bns, names = bns[1:], names[1:]
    assert names == ref["names"]
    assert [bn.num_features for bn in bns] == ref["num_features"]
    for bn, weight, bias in zip(bns, ref["weight_sums"], ref["bias_sums"], strict=True):
        assert math.isclose(bn.weight.sum().item(), weight, rel_tol=1e-12)
        assert math.isclose(bn.bias.sum().item(), bias, rel_tol=1e-12)


@pytest.mark.parametrize("name", [n for n in [*CIFAR_MODELS, "resnet18"] if n != "ShuffleV2"])
@torch.no_grad()
def test_each_stage_before_its_relu_has_its_batchnorm(name):
    model = build_backbone(name, num_classes=10).eval()
    bns = bn_before_relu(model)
    outputs = []
    hooks = [bn.register_forward_hook(lambda m, i, o: outputs.append((m, o))) for bn in bns]
    size = model.input_size if name == "resnet18" else 32
    x = torch.randn(2, 3, size, size, generator=torch.Generator().manual_seed(0))
    maps = model(x, preact=True)["features"][1:-1]
    for hook in hooks:
        hook.remove()
    assert len(bns) == len(maps)
    for bn, f in zip(bns, maps, strict=True):
        out = next(o for m, o in outputs if m is bn)
        assert out.shape == f.shape  # one channel per channel of the stage's map
        if name.startswith(("vgg", "wrn")):  # there the map *is* the BN's output
            torch.testing.assert_close(out, f)


# ---- mdistiller's whole loss ----------------------------------------------------------------


@pytest.mark.parametrize("pair", list(REFERENCE["pairs"]))
def test_losses_equal_mdistillers_ofd(pair):
    ref = REFERENCE["pairs"][pair]
    teacher_name, student_name = next(
        (t, s) for t in CIFAR_MODELS for s in CIFAR_MODELS if f"{t}_{s}" == pair
    )
    teacher = build_backbone(teacher_name).double()
    teacher.load_state_dict(seeded_state_dict(teacher, TEACHER_SEED))
    student = build_backbone(student_name).double()
    student.load_state_dict(seeded_state_dict(student, STUDENT_SEED))
    distiller = OFD(ofd_config(teacher_name, student_name), student, teacher)
    for i, connector in enumerate(distiller.connectors):
        connector.double()
        connector.load_state_dict(seeded_state_dict(connector, CONNECTOR_SEED + i))
    distiller.train()
    assert teacher.training == ref["teacher_training"] is True
    images, labels = pair_batch()
    losses = distiller({"views": [images], "label": labels, "index": labels, "epoch": 0})
    assert list(losses) == ["loss_cls", "loss_ofd"]
    assert math.isclose(losses["loss_cls"].item(), ref["loss_ce"], rel_tol=1e-9)
    assert math.isclose(losses["loss_ofd"].item(), ref["loss_ofd"], rel_tol=1e-6)
    sum(losses.values()).backward()
    index = ref["gradient_index"]
    param = dict(student.named_parameters())[ref["student_param"]]
    conv = distiller.connectors[0][0].weight
    for got, want in (
        (param.grad, ref["student_gradient"]),
        (conv.grad, ref["connector0_gradient"]),
    ):
        want = torch.tensor(want, dtype=torch.float64)
        torch.testing.assert_close(got.reshape(-1)[index], want, rtol=1e-6, atol=1e-9)


# ---- the distiller --------------------------------------------------------------------------


def test_gradients_reach_the_student_and_its_connectors_never_the_teacher():
    distiller = tiny_ofd(teacher="vgg8")
    sum(distiller(tiny_batch()).values()).backward()
    assert all(p.grad is None for p in distiller.teacher.parameters())
    for module in (distiller.student, distiller.connectors):
        grads = [p.grad for p in module.parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads)
        assert any(g.abs().sum() > 0 for g in grads)
    trained = {id(p) for m in (distiller.student, distiller.connectors) for p in m.parameters()}
    assert {id(p) for p in distiller.parameters() if p.requires_grad} == trained


def test_teacher_normalises_with_batch_statistics_and_keeps_its_own():
    distiller = tiny_ofd()
    teacher = distiller.teacher
    assert teacher.training and all(m.training for m in teacher.modules())
    before = copy.deepcopy(teacher.state_dict())
    batch = tiny_batch()
    losses = distiller(batch)
    # Its features are those of an ordinary BatchNorm network in train mode...
    reference = copy.deepcopy(teacher)
    for m in reference.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.track_running_stats = True
    with torch.no_grad():
        t = reference.train()(batch["views"][0], preact=True)["features"]
    s = distiller.student(batch["views"][0], preact=True)["features"]
    g_s = [c(f) for c, f in zip(distiller.connectors, s[1:-1], strict=True)]
    torch.testing.assert_close(losses["loss_ofd"], 0.001 * distiller.criterion(g_s, t[1:-1]))
    # ... and that network's running statistics would have moved; the teacher's do not.
    assert not torch.equal(reference.state_dict()["bn1.running_mean"], before["bn1.running_mean"])
    for key, value in teacher.state_dict().items():
        assert torch.equal(value, before[key]), key
    # In eval mode the teacher is in eval mode, as the distiller.
    distiller.eval()
    assert not teacher.training and not distiller.training
    distiller.train()
    assert teacher.training


def test_losses_are_ce_plus_the_weighted_ofd_of_the_last_stages():
    # vgg8 has four stages before their ReLU, resnet8 three: the last three of the teacher are
    # paired with the student's three (the reference keeps the lists' ends), with their margins.
    distiller = tiny_ofd(teacher="vgg8", **{"DISTILLER.OFD.WEIGHT": 0.5})
    teacher_bns = bn_before_relu(distiller.teacher)
    assert distiller.num_stages == len(distiller.connectors) == 3 < len(teacher_bns)
    for margin, bn in zip(distiller.criterion.margins(), teacher_bns[1:], strict=True):
        torch.testing.assert_close(margin.view(-1), bn_margin(bn.weight, bn.bias))
    t_maps = probe_features(distiller.teacher)[2:-1]
    for connector, s, t in zip(
        distiller.connectors, probe_features(distiller.student)[1:-1], t_maps, strict=True
    ):
        assert isinstance(connector, OFDConnector)
        assert (connector[0].in_channels, connector[0].out_channels) == (s[0], t[0])
    batch = tiny_batch()
    losses = distiller(batch)
    x = batch["views"][0]
    with torch.no_grad():
        t = distiller.teacher(x, preact=True)["features"]
    out = distiller.student(x, preact=True)
    g_s = [c(f) for c, f in zip(distiller.connectors, out["features"][1:-1], strict=True)]
    margins = [bn_margin(bn.weight, bn.bias) for bn in teacher_bns[1:]]
    by_hand = OFDLoss(margins)(g_s, t[2:-1])
    torch.testing.assert_close(losses["loss_cls"], F.cross_entropy(out["logits"], batch["label"]))
    torch.testing.assert_close(losses["loss_ofd"], 0.5 * by_hand)
    assert losses["loss_ofd"] > 0


def test_connectors_are_initialised_as_the_reference():
    torch.manual_seed(0)
    connector = OFDConnector(64, 256, kernel_size=3)
    conv, bn = connector
    assert conv.bias is None and conv.padding == (1, 1) and conv.kernel_size == (3, 3)
    std = math.sqrt(2 / (3 * 3 * 256))  # N(0, 2 / (k k C_t))
    assert abs(conv.weight.std().item() - std) < 0.02 * std
    assert torch.equal(bn.weight, torch.ones(256)) and torch.equal(bn.bias, torch.zeros(256))
    distiller = tiny_ofd(**{"DISTILLER.OFD.CONNECTOR_KERNEL_SIZE": 3})
    assert all(c[0].kernel_size == (3, 3) for c in distiller.connectors)
    assert distiller(tiny_batch())["loss_ofd"] > 0


def test_a_teacher_without_margins_is_a_config_error():
    with pytest.raises(ConfigError, match="teacher ShuffleV2 has no margins"):
        tiny_ofd(teacher="ShuffleV2")
