"""The baselines with modules trained beside the student (FitNet, CC, VID, and OFD's resume) as
the references run them: the losses as they weigh them, gradients to the student and the modules
trained with it (FitNet's regressor, CC's two embeddings, VID's regressors and variances) and
never to the teacher, and an exact resume that leaves the teacher as loaded."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from kdzoo.losses import CorrelationCongruenceLoss, VIDLoss
from kdzoo.modeling import HintRegressor, probe_features
from kdzoo_testing.runs import straight_and_resumed, tiny_batch, tiny_distiller

METHODS = ("fitnet", "cc", "vid")
WEIGHTS = {"fitnet": 100.0, "cc": 0.02, "vid": 1.0}  # -b of scripts/run_cifar_distill.sh:7, 13, 15


def by_hand(method: str, distiller, s: list, t: list) -> torch.Tensor:
    """The unweighted feature loss from the two ``is_feat=True`` lists and the distiller's own
    modules, as helper/loops.py:126-129 (hint), :162-165 (correlation) and :166-170 (vid)
    compute it."""
    if method == "fitnet":
        return F.mse_loss(distiller.regressor(s[2]), t[2])  # HintLoss = nn.MSELoss()
    if method == "vid":  # zip(feat_s[1:-1], feat_t[1:-1], criterion_kd): the shorter list's pairs
        return sum(
            vid(f_s, f_t)
            for vid, f_s, f_t in zip(distiller.criterion, s[1:-1], t[1:-1], strict=False)
        )
    f_s, f_t = distiller.embed_student(s[-1]), distiller.embed_teacher(t[-1])
    return CorrelationCongruenceLoss()(f_s, f_t)


def trained_modules(method: str, distiller) -> list[nn.Module]:
    """What RepDistiller's ``trainable_list`` adds to the student (train_student.py:189,
    217-218, 225)."""
    if method == "fitnet":
        return [distiller.regressor]
    if method == "vid":
        return [distiller.criterion]
    return [distiller.embed_student, distiller.embed_teacher]


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("teacher", ["resnet8", "vgg8"])
def test_losses_are_ce_plus_weight_times_the_reference_criterion(method, teacher):
    distiller = tiny_distiller(method, teacher=teacher)
    batch = tiny_batch()
    losses = distiller(batch)
    assert list(losses) == ["loss_cls", f"loss_{method}"]  # KD_WEIGHT 0: no KD term
    x = batch["views"][0]
    with torch.no_grad():
        t = distiller.teacher(x, features=True)
    s = distiller.student(x, features=True)  # train mode: batch statistics, same output
    ce = F.cross_entropy(s["logits"], batch["label"])
    feature_loss = by_hand(method, distiller, s["features"], t["features"])
    torch.testing.assert_close(losses["loss_cls"], ce)
    torch.testing.assert_close(losses[f"loss_{method}"], WEIGHTS[method] * feature_loss)
    assert losses[f"loss_{method}"] > 0


@pytest.mark.parametrize("method", METHODS)
def test_gradients_reach_the_student_and_its_modules_never_the_teacher(method):
    distiller = tiny_distiller(method, teacher="vgg8")
    sum(distiller(tiny_batch()).values()).backward()
    assert all(p.grad is None for p in distiller.teacher.parameters())
    for module in [distiller.student, *trained_modules(method, distiller)]:
        grads = [p.grad for p in module.parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads)
        assert any(g.abs().sum() > 0 for g in grads)
    # Everything the optimizer is given (every parameter that requires grad) is one of them.
    trained = {
        id(p)
        for m in [distiller.student, *trained_modules(method, distiller)]
        for p in m.parameters()
    }
    assert {id(p) for p in distiller.parameters() if p.requires_grad} == trained


def test_cc_embeddings_are_plain_linear_maps_without_normalisation():
    distiller = tiny_distiller("cc", teacher="vgg8")
    pairs = (
        (distiller.embed_student, distiller.student),
        (distiller.embed_teacher, distiller.teacher),
    )
    for embed, model in pairs:
        assert type(embed) is nn.Linear and embed.bias is not None
        assert embed.out_features == 128  # --feat_dim 128
        assert embed.in_features == probe_features(model)[-1][0]  # feat[-1].shape[1]
    v = distiller.embed_teacher(torch.randn(4, distiller.embed_teacher.in_features))
    assert not torch.allclose(v.norm(dim=1), torch.ones(4))  # kdzoo's LinearEmbed would be 1


def test_fitnet_reads_the_hint_layer_option():
    distiller = tiny_distiller("fitnet", teacher="vgg8", **{"DISTILLER.FITNET.HINT_LAYER": 3})
    # resnet8's feat[3] is 64 x 8 x 8, vgg8's 512 x 4 x 4: the stride-2 convolution.
    assert distiller.regressor.conv.stride == (2, 2)
    assert distiller.regressor.conv.in_channels == probe_features(distiller.student)[3][0]
    assert distiller.regressor.conv.out_channels == probe_features(distiller.teacher)[3][0]
    batch = tiny_batch()
    losses = distiller(batch)
    x = batch["views"][0]
    with torch.no_grad():
        t = distiller.teacher(x, features=True)["features"]
    s = distiller.student(x, features=True)["features"]
    by_hand_3 = F.mse_loss(distiller.regressor(s[3]), t[3])
    torch.testing.assert_close(losses["loss_fitnet"], 100.0 * by_hand_3)
    with pytest.raises(ValueError, match="HINT_LAYER 4"):
        tiny_distiller("fitnet", **{"DISTILLER.FITNET.HINT_LAYER": 4})  # feat[4]: pooled


@pytest.mark.parametrize(
    ("s_shape", "t_shape", "conv"),
    [
        ((16, 32, 32), (8, 16, 16), nn.Conv2d),  # halves: 3x3, stride 2, padding 1
        ((16, 8, 8), (24, 16, 16), nn.ConvTranspose2d),  # doubles: 4x4, stride 2, padding 1
        ((16, 8, 8), (24, 8, 8), nn.Conv2d),  # one size: 1x1
        ((16, 7, 7), (24, 4, 4), nn.Conv2d),  # shrinks: (1 + 7 - 4) x (1 + 7 - 4), valid
    ],
)
def test_hint_regressor_maps_the_student_map_to_the_teachers_shape(s_shape, t_shape, conv):
    regressor = HintRegressor(s_shape, t_shape)
    assert type(regressor.conv) is conv
    out = regressor(torch.randn(3, *s_shape))
    assert out.shape == (3, *t_shape)
    assert (out >= 0).all()  # conv -> BN -> ReLU
    assert isinstance(regressor.bn, nn.BatchNorm2d) and regressor.bn.num_features == t_shape[0]


def test_hint_regressor_refuses_a_map_it_cannot_reach():
    with pytest.raises(ValueError, match="4x4 to a teacher map of 16x16"):
        HintRegressor((16, 4, 4), (8, 16, 16))  # 4x larger: the reference fails too


def test_vid_has_one_regressor_and_variance_per_pair_of_stages():
    # resnet8 has three stage outputs in feat[1:-1], vgg8 four: the reference's zip keeps three.
    distiller = tiny_distiller("vid", teacher="vgg8")
    s_maps = probe_features(distiller.student)[1:-1]
    t_maps = probe_features(distiller.teacher)[1:-1]
    assert len(distiller.criterion) == min(len(s_maps), len(t_maps)) < len(t_maps)
    for vid, s, t in zip(distiller.criterion, s_maps, t_maps, strict=False):
        first, middle, last = (m for m in vid.regressor if isinstance(m, nn.Conv2d))
        # VIDLoss(s, t, t): C_s -> C_t -> C_t -> C_t, 1x1, no bias
        assert (first.in_channels, first.out_channels, middle.out_channels) == (s[0], t[0], t[0])
        assert last.out_channels == t[0] and all(c.bias is None for c in (first, middle, last))
        assert isinstance(vid, VIDLoss) and vid.log_scale.shape == (t[0],)


@pytest.mark.reliability
@pytest.mark.parametrize(
    ("method", "trained_keys"),
    [
        ("fitnet", {"regressor.conv.weight", "regressor.bn.running_mean"}),
        ("vid", {"criterion.0.regressor.0.weight", "criterion.2.log_scale"}),
        ("ofd", {"criterion.margin0", "connectors.2.0.weight", "connectors.2.1.running_var"}),
    ],
)
def test_resume_is_bit_identical(method, trained_keys, cifar100_slice, random_teacher, tmp_path):
    opts = {
        "DISTILLER.NAME": method,
        "MODEL.TEACHER.NAME": "resnet8",
        "MODEL.TEACHER.WEIGHTS": random_teacher,
        "SOLVER.MAX_ITER": 6,
        "SOLVER.CHECKPOINT_PERIOD": 3,
        "TEST.EVAL_PERIOD": 6,
    }
    a, b = straight_and_resumed(cifar100_slice, tmp_path, stop_after=3, **opts)
    a, b = a["model"], b["model"]
    assert a.keys() == b.keys()
    assert trained_keys <= a.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    if method == "vid":
        # The variances are trained (RepDistiller); mdistiller's stay at INIT_PRED_VAR.
        untrained = tiny_distiller("vid").criterion[2].log_scale
        assert not torch.equal(a["criterion.2.log_scale"], untrained.detach())
    # The teacher is what was loaded, running statistics included (OFD's teacher normalises
    # training batches with their own statistics without keeping them).
    loaded = torch.load(random_teacher, weights_only=True)["model"]
    for key, value in loaded.items():
        assert torch.equal(a[f"teacher.{key}"], value), key
