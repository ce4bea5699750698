"""Optimizer and learning-rate schedule, built from ``SOLVER.*``."""

import math

import torch
from torch import nn

from kdzoo.config import require_choice


def build_optimizer(cfg, model: nn.Module) -> torch.optim.Optimizer:
    """SGD over the parameters that require gradients (the teacher and EMA copies do not)."""
    params = [p for p in model.parameters() if p.requires_grad]
    return torch.optim.SGD(
        params,
        lr=cfg.SOLVER.BASE_LR,
        momentum=cfg.SOLVER.MOMENTUM,
        nesterov=cfg.SOLVER.NESTEROV,
        weight_decay=cfg.SOLVER.WEIGHT_DECAY,
    )


class LRMultiplier:
    """The factor applied to ``SOLVER.BASE_LR`` at each iteration: warmup times decay.

    A pure function of the iteration, so resuming needs no schedule state beyond the iteration.
    """

    def __init__(self, cfg, iters_per_epoch: int, max_iter: int) -> None:
        self.name = cfg.SOLVER.LR_SCHEDULER_NAME
        require_choice("SOLVER.LR_SCHEDULER_NAME", self.name, ("multistep", "cosine"))
        self.iters_per_epoch = iters_per_epoch
        self.max_iter = max_iter
        self.steps = tuple(cfg.SOLVER.STEPS)
        self.gamma = cfg.SOLVER.GAMMA
        self.warmup_iters = cfg.SOLVER.WARMUP_ITERS
        self.warmup_factor = cfg.SOLVER.WARMUP_FACTOR

    def __call__(self, iteration: int) -> float:
        if self.name == "multistep":
            epoch = iteration // self.iters_per_epoch
            factor = self.gamma ** sum(epoch >= step for step in self.steps)
        else:
            factor = 0.5 * (1.0 + math.cos(math.pi * iteration / self.max_iter))
        if iteration < self.warmup_iters:
            alpha = iteration / self.warmup_iters
            factor *= self.warmup_factor * (1 - alpha) + alpha
        return factor


def build_lr_scheduler(
    cfg, optimizer: torch.optim.Optimizer, iters_per_epoch: int, max_iter: int
) -> torch.optim.lr_scheduler.LambdaLR:
    """A scheduler stepped once per iteration (by the LRScheduler hook)."""
    return torch.optim.lr_scheduler.LambdaLR(
        optimizer, LRMultiplier(cfg, iters_per_epoch, max_iter)
    )
