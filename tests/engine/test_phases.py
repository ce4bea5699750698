"""Training phases (``Distiller.pretraining_phases``): the engine runs each phase for its epochs
with its own parameters, optimizer and lr schedule, tells the distiller which phase it is in and
the epoch within it, and resumes inside any phase exactly."""

import pytest
import torch

from kdzoo.engine import Trainer, default_argument_parser, default_setup, setup_cfg
from kdzoo_testing import tiny_run_opts, toy_distillers
from kdzoo_testing.runs import Snapshots, metrics, straight_and_resumed

toy_distillers.register()

# 4,000 training images in batches of 500: 8 iterations per epoch. Phases "head" (1 epoch),
# "body" (1 epoch), then 6 main iterations.
OPTS = {
    "DISTILLER.NAME": "toy_phased",
    "MODEL.STUDENT.NAME": "toy_no_bn_net",  # a conv and a classifier: fast
    "SOLVER.IMS_PER_BATCH": 500,
    "SOLVER.MAX_ITER": 6,
    "SOLVER.BASE_LR": 0.05,
    "SOLVER.LR_SCHEDULER_NAME": "cosine",
    "SOLVER.CHECKPOINT_PERIOD": 3,
    "TEST.EVAL_PERIOD": 100,
    "LOG_PERIOD": 1,
}
HEAD, BODY, MAIN = range(8), range(8, 16), range(16, 22)


def build(data_root, out, **extra) -> Trainer:
    args = default_argument_parser().parse_args(tiny_run_opts(data_root, out, **OPTS, **extra))
    cfg = setup_cfg(args)
    default_setup(cfg, args)
    return Trainer(cfg)


def test_each_phase_trains_its_parameters_with_its_own_optimizer(cifar100_slice, tmp_path):
    trainer = build(cifar100_slice, tmp_path / "run")
    assert [p.name for p in trainer.phases] == ["head", "body", "main"]
    assert trainer.max_iter == 22
    snapshots = Snapshots({8, 16, 22})
    trainer.register_hooks([snapshots])
    start = {k: v.clone() for k, v in trainer.distiller.state_dict().items()}
    trainer.resume_or_load(resume=False)
    trainer.train()

    seen = trainer.distiller.seen
    assert [phase for phase, _ in seen] == ["head"] * 8 + ["body"] * 8 + ["main"] * 6
    assert {epoch for _, epoch in seen} == {0}  # each phase counts its own epochs from 0

    def changed(a: dict, b: dict) -> set[str]:
        return {k for k in a if k.endswith(("weight", "bias")) and not torch.equal(a[k], b[k])}

    states = snapshots.states
    params = {k for k in start if k.endswith(("weight", "bias"))}
    assert changed(start, states[8]) == {"student.fc.weight", "student.fc.bias"}  # head alone
    assert changed(states[8], states[16]) == {"student.conv.weight", "student.conv.bias"}
    assert changed(states[16], states[22]) == params  # main: everything

    lines = {m["iteration"]: m for m in metrics(tmp_path / "run") if "lr" in m}
    assert [lines[i]["lr"] for i in HEAD] == [0.5] * 8  # constant, the phase's own rate
    assert [lines[i]["lr"] for i in BODY] == [0.05] * 8  # constant, SOLVER.BASE_LR
    main_lrs = [lines[i]["lr"] for i in MAIN]
    assert main_lrs[0] == pytest.approx(0.05)  # the schedule starts again at the main phase
    assert all(a > b for a, b in zip(main_lrs, main_lrs[1:], strict=False))  # cosine decay
    # Every parameter requires gradients again after the run, as it was built.
    assert all(p.requires_grad for p in trainer.distiller.student.parameters())


@pytest.mark.reliability
@pytest.mark.parametrize("stop_after", [5, 12, 19], ids=["in-head", "in-body", "in-main"])
def test_resume_inside_any_phase_is_bit_identical(cifar100_slice, tmp_path, stop_after):
    a, b = straight_and_resumed(cifar100_slice, tmp_path, stop_after=stop_after, **OPTS)
    assert a["iteration"] == b["iteration"] == 21
    assert a["phase"] == b["phase"] == {"index": 2}
    for key in a["model"]:
        assert torch.equal(a["model"][key], b["model"][key]), key
    state_a, state_b = a["optimizer"]["state"], b["optimizer"]["state"]
    assert state_a.keys() == state_b.keys()
    for s_a, s_b in zip(state_a.values(), state_b.values(), strict=True):
        assert torch.equal(s_a["momentum_buffer"], s_b["momentum_buffer"])
    assert a["scheduler"]["last_epoch"] == b["scheduler"]["last_epoch"] == 6


@pytest.mark.parametrize("method", ["fsp", "ab", "ft"])
def test_a_pre_training_phase_of_no_epochs_is_skipped(
    cifar100_slice, random_teacher, tmp_path, method
):
    # DISTILLER.<NAME>.INIT_EPOCHS 0: no pre-training; the run is its main phase, from iteration
    # 0, with every parameter the main phase trains in its optimizer.
    opts = {
        "DISTILLER.NAME": method,
        f"DISTILLER.{method.upper()}.INIT_EPOCHS": 0,
        "MODEL.TEACHER.NAME": "resnet8",
        "MODEL.TEACHER.WEIGHTS": random_teacher,
        "SOLVER.MAX_ITER": 3,
    }
    args = default_argument_parser().parse_args(tiny_run_opts(cifar100_slice, tmp_path, **opts))
    cfg = setup_cfg(args)
    default_setup(cfg, args)
    trainer = Trainer(cfg)
    assert [p.name for p in trainer.phases] == ["main"] and trainer.max_iter == 3
    assert trainer.distiller.phase == "main"
    # FSP trains every trainable parameter (the student's), AB the student, FT the student and
    # its translator.
    main = trainer.distiller.main_phase().parameters or trainer.distiller.student.parameters()
    held = [p for group in trainer.optimizer.param_groups for p in group["params"]]
    assert {id(p) for p in held} == {id(p) for p in main}
    pretrained_only = {"ab": "connector", "ft": "paraphraser"}.get(method)
    if pretrained_only:  # AB's connectors, FT's paraphraser: not trained by the main phase
        module = getattr(trainer.distiller, pretrained_only)
        assert not {id(p) for p in module.parameters()} & {id(p) for p in held}
