"""The engine: the training loop and its hooks, run setup, and multi-process launch."""

from .defaults import (
    Trainer,
    build_models,
    build_network,
    default_argument_parser,
    default_setup,
    evaluate,
    get_device,
    setup_cfg,
)
from .hooks import (
    BroadcastBuffers,
    EMAHook,
    EvalHook,
    IterationTimer,
    LRScheduler,
    PeriodicCheckpointer,
    PeriodicWriter,
    QueueHook,
)
from .launch import launch
from .main import main, run
from .train_loop import DistillTrainer, HookBase, NonFiniteLossError, TrainerBase

__all__ = [
    "BroadcastBuffers",
    "DistillTrainer",
    "EMAHook",
    "EvalHook",
    "HookBase",
    "IterationTimer",
    "LRScheduler",
    "NonFiniteLossError",
    "PeriodicCheckpointer",
    "PeriodicWriter",
    "QueueHook",
    "Trainer",
    "TrainerBase",
    "build_models",
    "build_network",
    "default_argument_parser",
    "default_setup",
    "evaluate",
    "get_device",
    "launch",
    "main",
    "run",
    "setup_cfg",
]
