"""CoCoRD against the paper's equations, its state handling, and through the engine."""

import copy
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from kdzoo.checkpoint import load_file
from kdzoo.config import get_cfg
from kdzoo.distillers import build_distiller
from kdzoo.engine import EMAHook, MemoryCommitHook, launch
from kdzoo.memory import KeyQueue
from kdzoo.utils.errors import ConfigError
from kdzoo_testing import REPO_ROOT, ddp_worker, tiny_run_opts
from kdzoo_testing.runs import metrics, straight_and_resumed, train_net

SMALL = [
    "DISTILLER.COCORD.PROJ_DIM",
    32,
    "DISTILLER.COCORD.PROJ_HIDDEN",
    48,
    "DISTILLER.COCORD.PRED_HIDDEN",
    16,
    "DISTILLER.COCORD.QUEUE_SIZE",
    40,
    "SOLVER.IMS_PER_BATCH",
    8,
]


def build_random(cfg):
    """``cfg``'s distiller around randomly initialised backbones (seeded), in train mode."""
    torch.manual_seed(0)
    return build_distiller(cfg, torch.arange(100), load_weights=False).train()


def make_cocord(teacher: str = "resnet8", student: str = "resnet8", *opts):
    cfg = get_cfg()
    models = ["MODEL.STUDENT.NAME", student, "MODEL.TEACHER.NAME", teacher]
    cfg.merge_from_list(["DISTILLER.NAME", "cocord", *models, *SMALL, *opts])
    return build_random(cfg)


def views(batch: int = 8) -> dict:
    generator = torch.Generator().manual_seed(1)
    return {
        "views": [torch.randn(batch, 3, 32, 32, generator=generator) for _ in range(3)],
        "label": torch.randint(0, 100, (batch,), generator=generator),
        "index": torch.arange(batch),
    }


def test_queue_keeps_fifo_order_and_wraps_around():
    queue = KeyQueue(size=5, dim=2)
    first = torch.tensor([[1.0, 0], [0, 1], [1, 1]])
    queue.write(first)
    assert torch.equal(queue.keys[:3], first) and int(queue.ptr) == 3
    second = torch.tensor([[2.0, 0], [0, 2], [2, 2]])
    queue.write(second)  # fills rows 3, 4, then wraps to row 0
    assert torch.equal(queue.keys[[3, 4, 0]], second) and int(queue.ptr) == 1
    assert torch.equal(queue.keys[1:3], first[1:])  # the oldest (row 0) was dropped first
    with pytest.raises(ValueError, match="cannot enqueue 6 keys"):
        queue.write(torch.zeros(6, 2))


def test_keys_of_a_step_are_not_its_negatives():
    distiller = make_cocord()
    before = distiller.dictionary.keys.clone()
    batch = views()
    distiller.losses(batch)
    assert torch.equal(distiller.dictionary.keys, before)  # staged, not written
    distiller.dictionary.commit()
    with torch.no_grad():
        teacher_key = distiller.teacher_head(distiller.teacher(batch["views"][2])["embedding"])
    torch.testing.assert_close(distiller.dictionary.keys[:8], F.normalize(teacher_key, dim=1))
    assert torch.equal(distiller.dictionary.keys[8:], before[8:])


def test_losses_equal_the_papers_equations():
    distiller = make_cocord()
    batch = views()
    x_s, x_s2, x_t = batch["views"]
    queue = distiller.dictionary.keys.clone()
    reference = copy.deepcopy(distiller)  # the same modules, evaluated by hand below
    losses = distiller.losses(batch)

    with torch.no_grad():
        s, slow = reference.student, reference.slow_student
        q1 = reference.student_head(s(x_s)["embedding"])
        q2 = reference.student_head(s(x_s2)["embedding"])
        k_pos = reference.teacher_head(reference.teacher(x_t)["embedding"])
        target1 = reference.slow_head(slow(x_s2)["embedding"])
        target2 = reference.slow_head(slow(x_s)["embedding"])
        p1, p2 = reference.predictor(q1), reference.predictor(q2)
        tau = 0.1
        l_ctr = 0.0
        for i in range(8):  # Eq. 2, sample by sample
            q = q1[i] / q1[i].norm()
            k = k_pos[i] / k_pos[i].norm()
            pos = torch.exp(q @ k / tau)
            neg = torch.exp(queue @ q / tau).sum()
            l_ctr += -torch.log(pos / (pos + neg))
        l_ctr /= 8

        def eq6(p, z):  # || p/|p| - z/|z| ||^2, batch mean
            return (
                ((p / p.norm(dim=1, keepdim=True) - z / z.norm(dim=1, keepdim=True)) ** 2)
                .sum(1)
                .mean()
            )

        l_pred = eq6(p1, target1) + eq6(p2, target2)
    torch.testing.assert_close(losses["loss_ctr"], l_ctr, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(losses["loss_pred"], 4.0 * l_pred, rtol=1e-4, atol=1e-5)
    logits = reference.student(x_s)["logits"]
    torch.testing.assert_close(losses["loss_cls"], F.cross_entropy(logits, batch["label"]))


def test_gradients_reach_only_the_student_its_head_and_the_predictor():
    distiller = make_cocord()
    sum(distiller.losses(views()).values()).backward()
    trained = ("student.", "student_head.", "predictor.")
    for name, p in distiller.named_parameters():
        if name.startswith(trained):
            assert p.requires_grad and p.grad is not None and p.grad.abs().sum() > 0, name
        else:
            assert not p.requires_grad and p.grad is None, name


def one_engine_step(distiller):
    """losses -> backward -> SGD step -> the EMA and memory-commit hooks, as the trainer does."""
    opt = torch.optim.SGD([p for p in distiller.parameters() if p.requires_grad], lr=0.5)
    hooks = [EMAHook(distiller), MemoryCommitHook(distiller)]
    for hook in hooks:
        hook.before_train()
    opt.zero_grad()
    sum(distiller.losses(views()).values()).backward()
    opt.step()
    for hook in hooks:
        hook.after_step()


def test_moving_averages_follow_eq3_and_eq4():
    distiller = make_cocord("resnet14", "resnet8")  # same 64-d features: f_t follows f_s
    assert distiller.teacher_head_follows
    before = copy.deepcopy(distiller.state_dict())
    one_engine_step(distiller)
    after = distiller.state_dict()
    for prefix, online, m in (
        ("slow_student.", "student.", 0.9),
        ("slow_head.", "student_head.", 0.9),
        ("teacher_head.", "student_head.", 0.999),
    ):
        for name, _ in getattr(distiller, prefix[:-1]).named_parameters():
            expected = m * before[prefix + name] + (1 - m) * after[online + name]
            torch.testing.assert_close(after[prefix + name], expected, rtol=1e-6, atol=1e-7)
    for name, value in before.items():  # the teacher itself never moves
        if name.startswith("teacher."):
            assert torch.equal(after[name], value), name


def test_a_frozen_teacher_head_stays_bit_identical():
    distiller = make_cocord("resnet32x4", "resnet8")  # 256-d teacher vs 64-d student
    assert not distiller.teacher_head_follows
    assert all(not p.requires_grad for p in distiller.teacher_head.parameters())
    before = copy.deepcopy(distiller.teacher_head.state_dict())
    for _ in range(2):
        one_engine_step(distiller)
    for name, value in distiller.teacher_head.state_dict().items():
        assert torch.equal(value, before[name]), name  # BN statistics included
    assert len(distiller.ema_pairs()) == 2  # only the slow student and its head


@pytest.mark.parametrize(("encoder", "target"), [("slow_student", "teacher"), ("teacher", "none")])
def test_ablation_switches(encoder, target):
    distiller = make_cocord(
        "resnet8",
        "resnet8",
        "DISTILLER.COCORD.DICTIONARY_ENCODER",
        encoder,
        "DISTILLER.COCORD.PREDICTION_TARGET",
        target,
    )
    # Modules an ablation leaves without a role are not built (no idle parameters under DDP).
    assert hasattr(distiller, "predictor") == (target != "none")
    assert hasattr(distiller, "slow_student") == ("slow_student" in (encoder, target))
    assert len(distiller.ema_pairs()) == 2 * hasattr(distiller, "slow_student") + 1
    batch = views()
    losses = distiller.losses(batch)
    assert ("loss_pred" in losses) == (target != "none")
    distiller.dictionary.commit()
    with torch.no_grad():
        encode = distiller._slow_key if encoder == "slow_student" else distiller._teacher_key
        expected = F.normalize(encode(batch["views"][2]), dim=1)
    torch.testing.assert_close(distiller.dictionary.keys[:8], expected)


@pytest.mark.reliability
def test_queue_smaller_than_the_batch_is_refused():
    with pytest.raises(ConfigError, match=r"QUEUE_SIZE \(40\) is smaller than the global batch"):
        make_cocord("resnet8", "resnet8", "SOLVER.IMS_PER_BATCH", 64)


def engine_opts(teacher: Path, **extra) -> dict:
    opts = {
        "DISTILLER.NAME": "cocord",
        "MODEL.TEACHER.NAME": "resnet8",
        "MODEL.TEACHER.WEIGHTS": teacher,
        "DISTILLER.COCORD.PROJ_DIM": 128,
        "DISTILLER.COCORD.PROJ_HIDDEN": 128,
        "DISTILLER.COCORD.PRED_HIDDEN": 32,
        "DISTILLER.COCORD.QUEUE_SIZE": 100,
    }
    opts.update(extra)
    return opts


def test_cocord_and_cocord_kd_train_on_real_cifar100(cifar100_slice, random_teacher, tmp_path):
    for config in ("cocord", "cocord_kd"):
        out = tmp_path / config
        result = train_net(
            "--config",
            f"configs/cifar100/{config}/resnet56_resnet20.yaml",
            *tiny_run_opts(
                cifar100_slice, out, **engine_opts(random_teacher, **{"SOLVER.MAX_ITER": 4})
            ),
        )
        assert result.returncode == 0, result.stderr[-3000:]
        line = [m for m in metrics(out) if "loss_ctr" in m][-1]
        assert {"loss_cls", "loss_ctr", "loss_pred"} <= line.keys()
        assert ("loss_kd" in line) == (config == "cocord_kd")
        state = load_file(str(out / "model_final.pth"))["model"]
        assert int(state["dictionary.ptr"]) == 4 * 32 % 100


@pytest.mark.reliability
def test_cocord_resume_restores_queue_and_moving_averages_exactly(
    cifar100_slice, random_teacher, tmp_path
):
    opts = engine_opts(
        random_teacher,
        **{"SOLVER.MAX_ITER": 6, "SOLVER.CHECKPOINT_PERIOD": 3, "TEST.EVAL_PERIOD": 6},
    )
    a, b = straight_and_resumed(cifar100_slice, tmp_path, stop_after=3, **opts)
    a, b = a["model"], b["model"]
    assert a.keys() == b.keys()
    for key in a:  # student, heads, predictor, slow student, queue
        assert torch.equal(a[key], b[key]), key


def test_two_processes_hold_identical_queues(cifar100_slice, random_teacher, tmp_path):
    argv = tiny_run_opts(
        cifar100_slice, tmp_path / "out", **engine_opts(random_teacher, **{"SOLVER.MAX_ITER": 3})
    )
    launch(ddp_worker.train_and_dump, 2, backend="gloo", args=(argv, str(tmp_path)))
    rank0 = torch.load(tmp_path / "rank0.pth", weights_only=True)
    rank1 = torch.load(tmp_path / "rank1.pth", weights_only=True)
    for key in rank0:
        assert torch.equal(rank0[key], rank1[key]), key
    assert int(rank0["dictionary.ptr"]) == 3 * 32 % 100  # each step enqueued the global batch


PAIR_CONFIGS = sorted((REPO_ROOT / "configs" / "cifar100" / "cocord").glob("*.yaml"))


def test_all_thirteen_pairs_are_configured():
    assert len(PAIR_CONFIGS) == 13
    assert {p.name for p in PAIR_CONFIGS} == {
        p.name for p in (REPO_ROOT / "configs" / "cifar100" / "cocord_kd").glob("*.yaml")
    }


@pytest.mark.parametrize("config", PAIR_CONFIGS, ids=[p.stem for p in PAIR_CONFIGS])
def test_every_pair_builds_and_takes_two_steps(config):
    """The configured models and heads (random weights), two steps of 8 images each."""
    cfg = get_cfg()
    cfg.merge_from_file(str(config))
    cfg.merge_from_list(["SOLVER.IMS_PER_BATCH", 8])
    distiller = build_random(cfg)
    # Equal feature sizes: the teacher head follows the student's; otherwise it is frozen.
    follows = {
        "wrn_40_2_wrn_16_2",
        "resnet56_resnet20",
        "resnet110_resnet20",
        "resnet110_resnet32",
        "resnet32x4_resnet8x4",
        "vgg13_vgg8",
    }
    assert distiller.teacher_head_follows == (config.stem in follows)
    for _ in range(2):
        one_engine_step(distiller)
    assert int(distiller.dictionary.ptr) == 16
    assert all(torch.isfinite(p).all() for p in distiller.parameters())
