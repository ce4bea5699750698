"""The compute roof: how many images/s a step could reach if every FLOP ran at the machine's peak.

A step's FLOPs are counted while it runs (``torch.utils.flop_counter``: convolutions and matrix
products, forward and backward, every pass the distiller makes), so the count follows what a
distiller really computes, not a formula. The peak is a large square matrix product's rate. A
measured rate near ``peak / FLOPs per image`` leaves nothing to gain from kernels or the engine:
only less arithmetic (or cheaper arithmetic, bf16) can make the step faster.
"""

import time

import torch
from torch.utils.flop_counter import FlopCounterMode

from kdzoo.engine import Trainer
from kdzoo.utils.events import EventStorage

_GEMM_SIZE = 2048


def peak_gflops(device: torch.device, dtype: torch.dtype, repeats: int = 10) -> float:
    """GFLOP/s of a ``2048 x 2048`` matrix product in ``dtype``: the attainable compute peak."""
    a, b = (torch.randn(_GEMM_SIZE, _GEMM_SIZE, device=device, dtype=dtype) for _ in range(2))
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    a @ b  # warm-up
    sync()
    start = time.perf_counter()
    for _ in range(repeats):
        a @ b
    sync()
    return 2 * _GEMM_SIZE**3 * repeats / (time.perf_counter() - start) / 1e9


def step_flops(trainer: Trainer) -> int:
    """FLOPs of one full training step of ``trainer`` (all forwards and backwards)."""
    trainer.storage = EventStorage(0)
    with FlopCounterMode(display=False) as counter:
        trainer.before_train()
        trainer.run_step()
    return counter.get_total_flops()
