"""Seeding, RNG state capture for exact resume, and a summary of the environment."""

import os
import platform
import random

import numpy as np
import torch

import kdzoo


def seed_all(seed: int) -> None:
    """Seed Python's, NumPy's and torch's (CPU and CUDA) global generators."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def get_rng_state(device: torch.device) -> dict:
    """Every global RNG state of this process, in types ``torch.load(weights_only=True)`` reads."""
    name, keys, pos, has_gauss, cached = np.random.get_state()
    state = {
        "python": random.getstate(),
        "numpy": {
            "name": name,
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": pos,
            "has_gauss": has_gauss,
            "cached_gaussian": cached,
        },
        "torch": torch.get_rng_state(),
    }
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return state


def set_rng_state(state: dict, device: torch.device) -> None:
    """Restore what :func:`get_rng_state` captured."""
    random.setstate(_as_tuples(state["python"]))
    n = state["numpy"]
    np.random.set_state(
        (
            n["name"],
            n["keys"].numpy().astype(np.uint32),
            n["pos"],
            n["has_gauss"],
            n["cached_gaussian"],
        )
    )
    torch.set_rng_state(state["torch"])
    if device.type == "cuda" and "cuda" in state:
        torch.cuda.set_rng_state(state["cuda"], device)


class GlobalRNG:
    """This process's global generators as a checkpointable stream (``state_dict`` /
    ``load_state_dict``), for the checkpointer to save and restore on each rank."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    def state_dict(self) -> dict:
        return get_rng_state(self.device)

    def load_state_dict(self, state: dict) -> None:
        set_rng_state(state, self.device)


def _as_tuples(obj):
    # random.setstate needs tuples; a checkpoint round trip may hand back lists.
    return tuple(_as_tuples(x) for x in obj) if isinstance(obj, list | tuple) else obj


def collect_env_info() -> str:
    """A few lines on the software and hardware of this run (written to the output dir)."""
    lines = [
        f"kdzoo {kdzoo.__version__}",
        f"python {platform.python_version()} on {platform.platform()}",
        f"torch {torch.__version__}, torchvision {_version('torchvision')}, numpy {np.__version__}",
        f"CPU threads: {torch.get_num_threads()} of {os.cpu_count()} cores",
        f"CUDA available: {torch.cuda.is_available()}",
    ]
    if torch.cuda.is_available():
        lines += [
            f"GPU {i}: {torch.cuda.get_device_name(i)}" for i in range(torch.cuda.device_count())
        ]
    return "\n".join(lines)


def _version(module: str) -> str:
    try:
        return __import__(module).__version__
    except ImportError:
        return "not installed"
