"""The lifecycle order, the EMA hook's update, and the learning-rate schedule."""

import copy

import pytest
import torch
from torch import nn

from kdzoo.config import get_cfg
from kdzoo.distillers import Distiller, EMAPair
from kdzoo.engine import EMAHook, HookBase, TrainerBase
from kdzoo.solver import LRMultiplier


class Recorder(HookBase):
    def __init__(self, name: str, log: list) -> None:
        self.name, self.log = name, log

    def before_train(self):
        self.log.append((self.name, "before_train", self.trainer.iter))

    def before_step(self):
        self.log.append((self.name, "before_step", self.trainer.iter))

    def after_backward(self):
        self.log.append((self.name, "after_backward", self.trainer.iter))

    def after_step(self):
        self.log.append((self.name, "after_step", self.trainer.iter))

    def after_train(self):
        self.log.append((self.name, "after_train", self.trainer.iter))


class StepTrainer(TrainerBase):
    def __init__(self, log: list) -> None:
        super().__init__()
        self.log = log

    def run_step(self):
        self.log.append(("trainer", "forward", self.iter))
        self.after_backward()
        self.log.append(("trainer", "optimizer.step", self.iter))


def test_hooks_run_in_lifecycle_and_registration_order():
    log = []
    trainer = StepTrainer(log)
    trainer.register_hooks([Recorder("a", log), None, Recorder("b", log)])
    trainer.train(start_iter=3, max_iter=5)
    expected = [("a", "before_train", 3), ("b", "before_train", 3)]
    for i in (3, 4):
        expected += [
            ("a", "before_step", i),
            ("b", "before_step", i),
            ("trainer", "forward", i),
            ("a", "after_backward", i),
            ("b", "after_backward", i),
            ("trainer", "optimizer.step", i),
            ("a", "after_step", i),
            ("b", "after_step", i),
        ]
    expected += [("a", "after_train", 5), ("b", "after_train", 5)]
    assert log == expected


def test_after_train_runs_even_when_a_step_fails():
    log = []
    trainer = StepTrainer(log)
    trainer.register_hooks([Recorder("a", log)])
    trainer.run_step = lambda: 1 / 0
    with pytest.raises(ZeroDivisionError):
        trainer.train(0, 3)
    assert log[-1] == ("a", "after_train", 0)


def test_hooks_hold_the_trainer_weakly():
    hook = Recorder("a", [])
    trainer = StepTrainer([])
    trainer.register_hooks([hook])
    del trainer
    with pytest.raises(ReferenceError):
        hook.trainer.iter  # noqa: B018


class TwoNets(Distiller):
    needs_teacher = False

    def __init__(self, buffers: str) -> None:
        super().__init__(nn.Sequential(nn.Linear(4, 4), nn.BatchNorm1d(4)))
        self.target = copy.deepcopy(self.student).requires_grad_(False)
        self.untouched = nn.Linear(4, 4)
        self.buffers_policy = buffers

    def ema_pairs(self):
        return [EMAPair(self.target, self.student, momentum=0.75, buffers=self.buffers_policy)]


@pytest.mark.parametrize("buffers", ["copy", "own"])
def test_ema_hook_applies_the_formula_to_declared_modules_only(buffers):
    distiller = TwoNets(buffers)
    hook = EMAHook(distiller)
    hook.before_train()
    with torch.no_grad():
        for p in distiller.student.parameters():
            p.add_(torch.randn_like(p))
        distiller.student[1].running_mean.add_(1.0)
    target_before = copy.deepcopy(distiller.target.state_dict())
    untouched_before = copy.deepcopy(distiller.untouched.state_dict())
    hook.after_step()
    for (name, p_t), p_s in zip(
        distiller.target.named_parameters(), distiller.student.parameters(), strict=True
    ):
        torch.testing.assert_close(p_t, 0.75 * target_before[name] + 0.25 * p_s)
    running_mean = distiller.target[1].running_mean
    if buffers == "copy":
        assert torch.equal(running_mean, distiller.student[1].running_mean)
    else:
        assert torch.equal(running_mean, target_before["1.running_mean"])
    for key, value in distiller.untouched.state_dict().items():
        assert torch.equal(value, untouched_before[key])


def test_multistep_schedule_divides_at_the_start_of_epochs_151_181_211():
    multiplier = LRMultiplier(get_cfg(), iters_per_epoch=10, max_iter=2400)
    assert multiplier(0) == 1.0 and multiplier(1499) == 1.0  # epoch 150 (1-based) is the last
    assert multiplier(1500) == pytest.approx(0.1)  # first iteration of epoch 151
    assert multiplier(1799) == pytest.approx(0.1) and multiplier(1800) == pytest.approx(0.01)
    assert multiplier(2100) == pytest.approx(0.001) and multiplier(2399) == pytest.approx(0.001)


def test_cosine_and_warmup():
    cfg = get_cfg()
    cfg.merge_from_list(
        [
            "SOLVER.LR_SCHEDULER_NAME",
            "cosine",
            "SOLVER.WARMUP_ITERS",
            10,
            "SOLVER.WARMUP_FACTOR",
            0.1,
        ]
    )
    multiplier = LRMultiplier(cfg, iters_per_epoch=10, max_iter=100)
    assert multiplier(0) == pytest.approx(0.1)
    assert multiplier(5) == pytest.approx(
        (0.1 * 0.5 + 0.5) * 0.5 * (1 + torch.cos(torch.tensor(torch.pi * 5 / 100)).item())
    )
    assert multiplier(50) == pytest.approx(0.5) and multiplier(100) == pytest.approx(0.0, abs=1e-12)
