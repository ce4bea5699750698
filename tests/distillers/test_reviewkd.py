"""ReviewKD as mdistiller (commit a08d46f) runs it: the review path and its losses equal
mdistiller's own ``ReviewKD`` (numbers stored in ``tests/losses/reviewkd_reference.json``), the
ABF sizes read off the models equal the lists the authors' code writes out per pair, the losses
by hand from the models' feature lists, the warm-up read from the batch's epoch, gradients to the
student and the ABF modules only, and a real training run."""

import json
import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from kdzoo.config import get_cfg
from kdzoo.distillers.reviewkd import ReviewKD, as_maps, map_shapes
from kdzoo.losses import HCLLoss
from kdzoo.model_zoo import get_config
from kdzoo.modeling import build_backbone, probe_features
from kdzoo_testing import REPO_ROOT, reviewkd_reference
from kdzoo_testing.runs import tiny_batch, tiny_distiller

REFERENCE = REPO_ROOT / "tests" / "losses" / "reviewkd_reference.json"


# --------------------------------------------------------------------------- mdistiller's numbers


class StandIn(nn.Module):
    """A kdzoo backbone that returns fixed outputs: ``features`` (``features=True``) or
    ``preact`` (``preact=True``), each ending with the pooled vector."""

    input_size = 32

    def __init__(self, logits, features, preact) -> None:
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(1, dtype=torch.float64))  # probe_features' dtype
        self.logits, self.features, self.preact = logits, features, preact

    def forward(self, x, features: bool = False, preact: bool = False) -> dict:
        return {"logits": self.logits, "features": self.preact if preact else self.features}


@pytest.fixture(scope="module")
def reference():
    fixture = json.loads(REFERENCE.read_text())
    sums = fixture["input_sums"]
    for pair in reviewkd_reference.PAIRS:
        # A different random stream would make the stored numbers meaningless.
        x = reviewkd_reference.make_review_inputs(pair)
        assert math.isclose(x["logits"].sum().item(), sums[f"{pair}_logits"], rel_tol=1e-12)
        for side in ("student", "teacher"):
            total = sum(m.sum() for m in x[side]["preact"]) + x[side]["pooled"].sum()
            assert math.isclose(total.item(), sums[f"{pair}_{side}"], rel_tol=1e-12)
        drawn = reviewkd_reference.draw_fusion_parameters(pair)
        total = sum(v.sum() for level in drawn for v in level.values())
        assert math.isclose(total.item(), sums[f"{pair}_fusions"], rel_tol=1e-12)
    return fixture["review"]


def assert_entries(grad: torch.Tensor, entries: dict, what) -> None:
    flat = grad.reshape(-1)
    for i, expected in zip(entries["index"], entries["value"], strict=True):
        assert math.isclose(flat[i].item(), expected, rel_tol=1e-6, abs_tol=1e-12), (what, i)


@pytest.mark.parametrize("case", range(len(reviewkd_reference.REVIEW_CASES)))
def test_losses_and_gradients_equal_mdistiller(reference, case):
    expected = reference[case]
    pair, student_preact = reviewkd_reference.REVIEW_CASES[case]
    assert (expected["pair"], expected["student_preact"]) == (pair, student_preact)
    x = reviewkd_reference.make_review_inputs(pair)
    s, t = x["student"], x["teacher"]
    feats = [m.clone().requires_grad_(True) for m in s["feats"]]
    preact = [m.clone().requires_grad_(True) for m in s["preact"]]
    pooled = s["pooled"].clone().requires_grad_(True)
    logits = x["logits"].clone().requires_grad_(True)
    student = StandIn(logits, [*feats, pooled], [*preact, pooled])
    teacher = StandIn(x["logits"].flip(1), [*t["feats"], t["pooled"]], [*t["preact"], t["pooled"]])
    cfg = get_cfg()
    cfg.merge_from_list(["DISTILLER.REVIEWKD.WEIGHT", reviewkd_reference.WEIGHT])
    cfg.merge_from_list(["DISTILLER.REVIEWKD.WARMUP", reviewkd_reference.WARMUP])
    cfg.merge_from_list(["DISTILLER.REVIEWKD.STUDENT_PREACT", student_preact])
    distiller = ReviewKD(cfg, student, teacher).double().train()
    drawn = reviewkd_reference.draw_fusion_parameters(pair)
    assert len(distiller.review.fusions) == len(drawn)
    with torch.no_grad():
        for fusion, values in zip(distiller.review.fusions, drawn, strict=True):
            names = {name for name, _ in fusion.named_parameters()}
            assert names == set(values)  # the deepest has no attention, as mdistiller's
            for name, value in values.items():
                fusion.get_parameter(name).copy_(value)
    # The engine counts epochs from 0, mdistiller from 1.
    batch = {"views": [None], "label": x["labels"], "epoch": reviewkd_reference.EPOCH - 1}
    losses = distiller(batch)
    assert list(losses) == ["loss_cls", "loss_reviewkd"]
    assert math.isclose(losses["loss_cls"].item(), expected["loss_ce"], rel_tol=1e-6)
    assert math.isclose(losses["loss_reviewkd"].item(), expected["loss_kd"], rel_tol=1e-6)
    sum(losses.values()).backward()
    used = (preact if student_preact else feats)[1:]
    for i, (m, entries) in enumerate(zip(used, expected["student_map_gradients"], strict=True)):
        assert_entries(m.grad, entries, f"student map {i + 1}")
    assert_entries(pooled.grad, expected["pooled_gradient"], "pooled")
    assert_entries(logits.grad, expected["logits_gradient"], "logits")
    for i, (fusion, grads) in enumerate(
        zip(distiller.review.fusions, expected["fusion_gradients"], strict=True)
    ):
        for name, entries in grads.items():
            assert_entries(fusion.get_parameter(name).grad, entries, (i, name))
    assert expected["unused_have_no_gradient"]
    unused = [feats[0], preact[0], *(feats if student_preact else preact)]
    assert all(m.grad is None for m in unused)


# ----------------------------------------------------------------------- sizes of the 13 pairs

#: The lists the authors' build_review_kd (dvlab-research/ReviewKD, CIFAR-100/model/reviewkd.py)
#: writes for each student (and teacher, where it matters), deepest map first for the sizes:
#: (IN_CHANNELS, OUT_CHANNELS, SHAPES, OUT_SHAPES). Its resnet SHAPES [1, 8, 16, 32, 32] have a
#: fifth entry its zip never reaches. ResNet50 -> vgg8 and vgg13 -> vgg8/MobileNetV2 use its vgg
#: and mobile branches (their models are commented out there); resnet110 -> resnet20 its resnet
#: branch, as for the pairs its script trains.
RESNET = ([16, 32, 64, 64], [16, 32, 64, 64], [1, 8, 16, 32], [1, 8, 16, 32])
VGG8 = [128, 256, 512, 512, 512]
MV2 = [12, 16, 48, 160, 1280]
RESNET50_OUT = ([256, 512, 1024, 2048, 2048], [1, 4, 8, 16, 32])
AUTHORS = {
    "resnet32x4_resnet8x4": ([64, 128, 256, 256], [64, 128, 256, 256], [1, 8, 16, 32], None),
    "resnet56_resnet20": RESNET,
    "resnet110_resnet20": RESNET,
    "resnet110_resnet32": RESNET,
    "vgg13_vgg8": (VGG8, VGG8, [1, 4, 4, 8, 16], None),
    "ResNet50_vgg8": (VGG8, RESNET50_OUT[0], [1, 4, 4, 8, 16], RESNET50_OUT[1]),
    "vgg13_MobileNetV2": (MV2, VGG8, [1, 2, 4, 8, 16], [1, 4, 4, 8, 16]),
    "ResNet50_MobileNetV2": (MV2, RESNET50_OUT[0], [1, 2, 4, 8, 16], RESNET50_OUT[1]),
    "resnet32x4_ShuffleV1": (
        [240, 480, 960, 960],
        [64, 128, 256, 256],
        [1, 4, 8, 16],
        [1, 8, 16, 32],
    ),
    "wrn_40_2_ShuffleV1": ([240, 480, 960, 960], [32, 64, 128, 128], [1, 4, 8, 16], [1, 8, 16, 32]),
    "resnet32x4_ShuffleV2": (
        [116, 232, 464, 1024],
        [64, 128, 256, 256],
        [1, 4, 8, 16],
        [1, 8, 16, 32],
    ),
    "wrn_40_2_wrn_16_2": ([32, 64, 128, 128], [32, 64, 128, 128], [1, 8, 16, 32], None),
    "wrn_40_2_wrn_40_1": ([16, 32, 64, 64], [32, 64, 128, 128], [1, 8, 16, 32], None),
}


@pytest.mark.parametrize("pair", sorted(AUTHORS))
def test_sizes_read_off_the_models_are_the_authors_lists(pair):
    cfg = get_config(f"cifar100/reviewkd/{pair}.yaml")
    student = build_backbone(cfg.MODEL.STUDENT.NAME, 100)
    teacher = build_backbone(cfg.MODEL.TEACHER.NAME, 100)
    in_channels, out_channels, shapes, out_shapes = AUTHORS[pair]
    out_shapes = out_shapes or shapes  # the authors' ReviewKD: shapes if out_shapes is None
    s, t = map_shapes(probe_features(student)), map_shapes(probe_features(teacher))
    assert [c for c, _, _ in s] == in_channels
    assert [c for c, _, _ in t] == out_channels
    assert [h for _, h, _ in reversed(s)] == shapes[: len(s)]
    assert [h for _, h, _ in reversed(t)] == out_shapes[: len(t)]
    # What the distiller builds from them.
    fusions = ReviewKD(cfg, student, teacher).review.fusions
    mid = min(512, in_channels[-1])
    assert [f.reduce.in_channels for f in fusions] == in_channels
    assert {f.reduce.out_channels for f in fusions} == {mid}
    assert [f.out.out_channels for f in fusions] == out_channels
    assert [f.attention is not None for f in fusions] == [True] * (len(fusions) - 1) + [False]


def test_middle_width_is_capped_by_max_mid_channel():
    distiller = tiny_distiller("reviewkd", **{"DISTILLER.REVIEWKD.MAX_MID_CHANNEL": 16})
    assert {f.reduce.out_channels for f in distiller.review.fusions} == {16}  # resnet8: 64 wide


def test_models_with_different_stage_counts_are_refused():
    with pytest.raises(ValueError, match="4 stage outputs and pooled vector with the teacher's 5"):
        tiny_distiller("reviewkd", teacher="vgg8")


# ------------------------------------------------------------------------ losses by hand


def test_losses_are_ce_plus_the_ramped_hcl_of_the_review_against_the_teachers_preact_maps():
    distiller = tiny_distiller("reviewkd", **{"DISTILLER.REVIEWKD.WEIGHT": 5.0})
    batch = {**tiny_batch(), "epoch": 3}
    losses = distiller(batch)
    assert list(losses) == ["loss_cls", "loss_reviewkd"]  # KD_WEIGHT 0: no KD term
    x = batch["views"][0]
    with torch.no_grad():
        teacher = distiller.teacher(x, preact=True)
        post_relu = distiller.teacher(x, features=True)
    student = distiller.student(x, features=True)  # train mode: batch statistics, same output
    reviewed = distiller.review(as_maps(student["features"]))
    assert [tuple(m.shape) for m in reviewed] == [
        (4, 16, 32, 32),
        (4, 32, 16, 16),
        (4, 64, 8, 8),
        (4, 64, 1, 1),
    ]
    hcl = HCLLoss()(reviewed, as_maps(teacher["features"]))
    torch.testing.assert_close(
        losses["loss_cls"], F.cross_entropy(student["logits"], batch["label"])
    )
    torch.testing.assert_close(losses["loss_reviewkd"], 4 / 20 * 5.0 * hcl)
    # The teacher's maps before their ReLU, not after (they differ: the loss would too).
    other = HCLLoss()(reviewed, as_maps(post_relu["features"]))
    assert not torch.allclose(hcl, other)


def test_student_preact_reviews_the_students_maps_before_their_relu():
    distiller = tiny_distiller("reviewkd", **{"DISTILLER.REVIEWKD.STUDENT_PREACT": True})
    batch = tiny_batch()
    losses = distiller(batch)
    x = batch["views"][0]
    with torch.no_grad():
        teacher = distiller.teacher(x, preact=True)
    student = distiller.student(x, preact=True)
    hcl = HCLLoss()(distiller.review(as_maps(student["features"])), as_maps(teacher["features"]))
    torch.testing.assert_close(losses["loss_reviewkd"], 1 / 20 * hcl)


# The engine's epochs count from 0, mdistiller's from 1: its first epoch weighs 1 / WARMUP.
@pytest.mark.parametrize(("epoch", "ramp"), [(0, 1 / 20), (9, 10 / 20), (19, 1.0), (150, 1.0)])
def test_the_warmup_reads_the_batchs_epoch(epoch, ramp):
    distiller = tiny_distiller("reviewkd")
    batch = tiny_batch()
    # In train mode the output does not depend on BatchNorm's running statistics.
    full = distiller({**batch, "epoch": 19})["loss_reviewkd"]
    got = distiller({**batch, "epoch": epoch})["loss_reviewkd"]
    torch.testing.assert_close(got, ramp * full)
    assert full > 0


def test_kd_term_comes_last_when_its_weight_is_positive():
    distiller = tiny_distiller("reviewkd", **{"DISTILLER.REVIEWKD.KD_WEIGHT": 0.5})
    assert list(distiller(tiny_batch())) == ["loss_cls", "loss_reviewkd", "loss_kd"]


def test_gradients_reach_the_student_and_the_abf_modules_never_the_teacher():
    distiller = tiny_distiller("reviewkd", teacher="resnet14")
    sum(distiller(tiny_batch()).values()).backward()
    assert all(p.grad is None for p in distiller.teacher.parameters())
    for module in (distiller.student, distiller.review):
        grads = [p.grad for p in module.parameters()]
        assert all(g is not None and torch.isfinite(g).all() for g in grads)
        assert all(g.abs().sum() > 0 for g in grads)
    # What the optimizer trains (every parameter that requires a gradient): student and ABFs,
    # as mdistiller's get_learnable_parameters.
    trained = {id(p) for p in distiller.parameters() if p.requires_grad}
    assert trained == {id(p) for m in (distiller.student, distiller.review) for p in m.parameters()}
