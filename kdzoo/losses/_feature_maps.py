"""Helpers shared by the losses of the baseline zoo: float32 under autocast, map pooling, pairs."""

import functools
from collections.abc import Callable

import torch
import torch.nn.functional as F

_HALF = (torch.float16, torch.bfloat16)


def _upcast(x):
    if isinstance(x, torch.Tensor):
        return x.float() if x.dtype in _HALF else x
    if isinstance(x, list | tuple):
        return type(x)(_upcast(v) for v in x)
    return x


def _first_tensor(x):
    if isinstance(x, torch.Tensor):
        return x
    if isinstance(x, list | tuple):
        for v in x:
            t = _first_tensor(v)
            if t is not None:
                return t
    return None


def full_precision(forward: Callable) -> Callable:
    """Run ``forward`` outside autocast, on float16/bfloat16 inputs cast up to float32.

    Gram matrices, squared norms and the ``1e-12``/``1e-7`` epsilons of these losses are float32
    numbers: under mixed precision they overflow or vanish. float32 and float64 inputs pass
    through untouched, so the values match the reference to round-off.
    """

    @functools.wraps(forward)
    def wrapper(self, *args):
        device = _first_tensor(args)
        device_type = device.device.type if device is not None else "cpu"
        with torch.autocast(device_type, enabled=False):
            return forward(self, *(_upcast(a) for a in args))

    return wrapper


def pool_to_smaller_map(f_s: torch.Tensor, f_t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Average-pool the larger of two ``[B, C, H, W]`` maps to the other's height.

    As RepDistiller's AT.py:19-25 and NST.py:17-23: only the heights are compared, and the pooled
    map is ``H x H`` (square maps assumed, which CIFAR and ImageNet feature maps are).
    """
    s_h, t_h = f_s.shape[2], f_t.shape[2]
    if s_h > t_h:
        f_s = F.adaptive_avg_pool2d(f_s, (t_h, t_h))
    elif s_h < t_h:
        f_t = F.adaptive_avg_pool2d(f_t, (s_h, s_h))
    return f_s, f_t


def check_same_length(g_s, g_t, name: str) -> None:
    if len(g_s) != len(g_t):
        raise ValueError(
            f"{name}: {len(g_s)} student and {len(g_t)} teacher feature maps; pairs are needed"
        )
