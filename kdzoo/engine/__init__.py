"""The engine: the training loop and its hooks, the Trainer, run setup, and multi-process
launch."""

from .defaults import default_argument_parser, default_setup, get_device, setup_cfg, setup_cpu
from .hooks import (
    BroadcastBuffers,
    EMAHook,
    EvalHook,
    IterationTimer,
    LRScheduler,
    MemoryCommitHook,
    PeriodicCheckpointer,
    PeriodicWriter,
)
from .launch import launch
from .main import main, run
from .train_loop import DistillStep, HookBase, NonFiniteLossError, TrainerBase
from .trainer import Trainer

__all__ = [
    "BroadcastBuffers",
    "DistillStep",
    "EMAHook",
    "EvalHook",
    "HookBase",
    "IterationTimer",
    "LRScheduler",
    "MemoryCommitHook",
    "NonFiniteLossError",
    "PeriodicCheckpointer",
    "PeriodicWriter",
    "Trainer",
    "TrainerBase",
    "default_argument_parser",
    "default_setup",
    "get_device",
    "launch",
    "main",
    "run",
    "setup_cfg",
    "setup_cpu",
]
