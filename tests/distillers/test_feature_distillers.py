"""RepDistiller's feature baselines (AT, SP, PKT, RKD, NST) and mdistiller's KDSVD: losses as the
references weight and sum them, gradients to the student only, every shipped config, and real
iterations."""

import math

import pytest
import torch
import torch.nn.functional as F

from kdzoo.distillers import build_distiller
from kdzoo.distillers.feature_distiller import layer_pairs
from kdzoo.losses import (
    AttentionTransferLoss,
    KDLoss,
    KDSVDLoss,
    NSTLoss,
    PKTLoss,
    RKDLoss,
    SimilarityPreservingLoss,
)
from kdzoo.model_zoo import get_config, list_configs
from kdzoo_testing import tiny_run_opts
from kdzoo_testing.runs import metrics, tiny_batch, tiny_distiller, train_net

METHODS = ("at", "sp", "pkt", "rkd", "nst", "kdsvd")
# The others are tested in their own files.
SHIPPED_METHODS = (*METHODS, "fitnet", "cc", "vid", "dkd", "reviewkd", "ofd")

#: The feature loss of each method as RepDistiller's helper/loops.py computes it from the two
#: ``is_feat=True`` lists, unweighted.
BY_HAND = {
    "at": lambda s, t: sum(AttentionTransferLoss(p=2)(s[1:-1], t[1:-1])),
    "sp": lambda s, t: sum(SimilarityPreservingLoss()([s[-2]], [t[-2]])),
    "pkt": lambda s, t: PKTLoss()(s[-1], t[-1]),
    "rkd": lambda s, t: RKDLoss(25.0, 50.0)(s[-1], t[-1]),
    "nst": lambda s, t: sum(NSTLoss()(s[1:-1], t[1:-1])),
    # mdistiller's KDSVD.py: kdsvd_loss(feats[1:], feats[1:], K = 1), its is_feat lists' stages
    "kdsvd": lambda s, t: KDSVDLoss(1)(s[1:-1], t[1:-1]),
}
WEIGHTS = {"at": 1000.0, "sp": 3000.0, "pkt": 30000.0, "rkd": 1.0, "nst": 50.0, "kdsvd": 1.0}


def features(distiller, x):
    with torch.no_grad():
        teacher = distiller.teacher(x, features=True)
    student = distiller.student(x, features=True)  # train mode: batch statistics, same output
    return student, teacher


@pytest.mark.parametrize("method", METHODS)
def test_losses_are_ce_plus_weight_times_the_reference_criterion(method):
    distiller = tiny_distiller(method)
    batch = tiny_batch()
    losses = distiller(batch)
    assert list(losses) == ["loss_cls", f"loss_{method}"]  # KD_WEIGHT 0: no KD term
    student, teacher = features(distiller, batch["views"][0])
    ce = F.cross_entropy(student["logits"], batch["label"])
    feature_loss = BY_HAND[method](student["features"], teacher["features"])
    torch.testing.assert_close(losses["loss_cls"], ce)
    torch.testing.assert_close(losses[f"loss_{method}"], WEIGHTS[method] * feature_loss)
    assert losses[f"loss_{method}"] > 0


@pytest.mark.parametrize("method", METHODS)
def test_gradients_reach_the_student_only(method):
    distiller = tiny_distiller(method)
    sum(distiller(tiny_batch()).values()).backward()
    assert all(p.grad is None for p in distiller.teacher.parameters())
    grads = [p.grad for p in distiller.student.parameters()]
    assert all(g is not None and torch.isfinite(g).all() for g in grads)
    assert any(g.abs().sum() > 0 for g in grads)


def test_kd_term_comes_last_when_its_weight_is_positive():
    distiller = tiny_distiller(
        "rkd", **{"DISTILLER.RKD.KD_WEIGHT": 0.9, "DISTILLER.RKD.CE_WEIGHT": 0.1}
    )
    batch = tiny_batch()
    losses = distiller(batch)
    assert list(losses) == ["loss_cls", "loss_rkd", "loss_kd"]
    student, teacher = features(distiller, batch["views"][0])
    kd = KDLoss(4.0)(student["logits"], teacher["logits"])  # DISTILLER.KD.TEMPERATURE
    torch.testing.assert_close(losses["loss_kd"], 0.9 * kd)
    ce = F.cross_entropy(student["logits"], batch["label"])
    torch.testing.assert_close(losses["loss_cls"], 0.1 * ce)


def test_layer_lists_of_different_lengths_are_cut_as_the_references_zip():
    a, b, c, d = (torch.zeros(1) for _ in range(4))
    assert layer_pairs([a, b, c], [d]) == ([a], [d])
    # vgg8: four stage outputs in feat[1:-1] (32 to 4 pixels); resnet8: three (32 to 8): the
    # first three pairs, the larger maps pooled.
    distiller = tiny_distiller("at", teacher="vgg8")
    batch = tiny_batch()
    losses = distiller(batch)
    student, teacher = features(distiller, batch["views"][0])
    g_s, g_t = student["features"][1:-1], teacher["features"][1:-1]
    assert (len(g_s), len(g_t)) == (3, 4)
    by_hand = sum(AttentionTransferLoss(p=2)(g_s, g_t[:3]))
    torch.testing.assert_close(losses["loss_at"], 1000.0 * by_hand)


SHIPPED = [
    name
    for name in list_configs()
    if name.count("/") == 2
    and name.split("/")[1] in SHIPPED_METHODS
    and name.startswith("cifar100/")
]


def test_every_method_ships_the_thirteen_kd_pairs():
    kd_pairs = {n.split("/")[2] for n in list_configs() if n.startswith("cifar100/kd/")}
    assert len(kd_pairs) == 13
    for method in SHIPPED_METHODS:
        assert {n.split("/")[2] for n in SHIPPED if n.split("/")[1] == method} == kd_pairs


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_config_builds_and_takes_a_step(name):
    cfg = get_config(name)
    method = cfg.DISTILLER.NAME
    assert name.split("/")[1] == method
    assert cfg.OUTPUT_DIR.removeprefix("output/") + ".yaml" == name
    kd = get_config(name.replace(f"/{method}/", "/kd/"))
    assert cfg.SOLVER.BASE_LR == kd.SOLVER.BASE_LR
    assert (cfg.MODEL.TEACHER.NAME, cfg.MODEL.TEACHER.WEIGHTS, cfg.MODEL.STUDENT.NAME) == (
        kd.MODEL.TEACHER.NAME,
        kd.MODEL.TEACHER.WEIGHTS,
        kd.MODEL.STUDENT.NAME,
    )
    torch.manual_seed(0)
    distiller = build_distiller(cfg, torch.arange(100) % 100, load_weights=False).train()
    losses = distiller(tiny_batch())
    assert list(losses) == ["loss_cls", f"loss_{method}"]
    assert all(torch.isfinite(v) for v in losses.values())
    sum(losses.values()).backward()
    assert all(p.grad is None for p in distiller.teacher.parameters())
    # Every trained module (student, FitNet's regressor, CC's embeds) gets its gradient.
    assert all(p.grad is not None for p in distiller.parameters() if p.requires_grad)


# AT and RKD, and the two methods whose term ramps in with the engine's epoch.
@pytest.mark.parametrize("method", ["at", "rkd", "dkd", "reviewkd"])
def test_trains_on_real_cifar100(method, cifar100_slice, random_teacher, tmp_path):
    out = tmp_path / method
    result = train_net(
        "--config",
        f"configs/cifar100/{method}/resnet32x4_resnet8x4.yaml",
        *tiny_run_opts(
            cifar100_slice,
            out,
            **{"MODEL.TEACHER.NAME": "resnet8", "MODEL.TEACHER.WEIGHTS": random_teacher},
        ),
    )
    assert result.returncode == 0, result.stderr[-3000:]
    lines = [m for m in metrics(out) if "total_loss" in m]
    assert lines
    for line in lines:
        assert "loss_cls" in line and f"loss_{method}" in line and "loss_kd" not in line
        assert all(math.isfinite(line[k]) for k in ("loss_cls", f"loss_{method}", "total_loss"))
    assert (out / "model_final.pth").exists()
