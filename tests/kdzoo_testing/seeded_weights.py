"""Deterministic float64 weights and images that the reference checks load into both kdzoo's and
the reference's models, so the two compute on identical inputs. Only torch is imported (the
reference scripts run these beside the reference's code)."""

import math

import torch
from torch import nn


def seeded_state_dict(model: nn.Module, seed: int) -> dict[str, torch.Tensor]:
    """A float64 state_dict for ``model`` (its keys and shapes), drawn key by key in sorted key
    order from one generator: BN running variances in [0.5, 1.5), ``num_batches_tracked`` 0,
    other 1-d tensors standard normal (BN weights of both signs), weights ``N(0, 1 / fan_in)``."""
    g = torch.Generator().manual_seed(seed)
    state = {}
    shapes = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    for key in sorted(shapes):
        shape = shapes[key]
        if key.endswith("num_batches_tracked"):
            state[key] = torch.tensor(0, dtype=torch.long)
        elif key.endswith("running_var"):
            state[key] = torch.rand(shape, generator=g, dtype=torch.float64) + 0.5
        elif len(shape) == 1:
            state[key] = torch.randn(shape, generator=g, dtype=torch.float64)
        else:
            fan_in = math.prod(shape[1:])
            state[key] = torch.randn(shape, generator=g, dtype=torch.float64) / math.sqrt(fan_in)
    return state


def four_images(seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Four float64 32x32 images (standard normal, from ``seed``) and their labels."""
    g = torch.Generator().manual_seed(seed)
    return torch.randn(4, 3, 32, 32, generator=g, dtype=torch.float64), torch.tensor([3, 0, 7, 1])
