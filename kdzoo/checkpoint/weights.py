"""Loading initial weights into a backbone (the teacher, or a student that starts pretrained).

A weight spec is a file or a torchvision weight name. Files may be:
- a RepDistiller checkpoint ``{"model": state_dict}``;
- a plain ``state_dict``;
- a kdzoo checkpoint, whose ``"model"`` is a distiller state: its ``student.*`` part is taken.
Any of them may come from a model wrapped in ``nn.DataParallel`` or DDP, every key prefixed
``module.``; the prefix is dropped.
Names such as ``"IMAGENET1K_V1"`` go to torchvision (and need internet the first time).
"""

import os
import re

import torch
from torch import nn

from kdzoo.utils.errors import CheckpointError

from .io import load_file

_TORCHVISION_WEIGHT_NAME = re.compile(r"^[A-Z][A-Z0-9_]*$")
_SHOWN = 3  # keys listed per kind of mismatch
_WRAPPER_PREFIX = "module."


def is_torchvision_weight_name(spec: str) -> bool:
    """True for specs like ``IMAGENET1K_V1`` or ``DEFAULT`` that are not files."""
    return bool(_TORCHVISION_WEIGHT_NAME.match(spec)) and not os.path.exists(spec)


def extract_backbone_state(obj, path: str) -> dict[str, torch.Tensor]:
    """The backbone state_dict inside any supported checkpoint layout."""
    state = obj.get("model", obj) if isinstance(obj, dict) else None
    if not isinstance(state, dict) or not all(torch.is_tensor(v) for v in state.values()):
        raise CheckpointError(f"{path}: expected a state_dict or {{'model': state_dict}}")
    state = _unwrapped(state)
    if any(k.startswith("student.") for k in state):  # a kdzoo checkpoint: the distiller's state
        state = _unwrapped(
            {k[len("student.") :]: v for k, v in state.items() if k.startswith("student.")}
        )
    return state


def _unwrapped(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """``state`` without the ``module.`` that ``nn.DataParallel`` and DDP put before every key
    (only when every key has it: a model may have a submodule of its own called ``module``)."""
    if state and all(k.startswith(_WRAPPER_PREFIX) for k in state):
        return {k[len(_WRAPPER_PREFIX) :]: v for k, v in state.items()}
    return state


def listed(keys: list[str]) -> str:
    """The first few ``keys``, comma-separated, with ``...`` if there are more."""
    return ", ".join(keys[:_SHOWN]) + (" ..." if len(keys) > _SHOWN else "")


def check_layout(
    state: dict[str, torch.Tensor], layout: dict[str, tuple[int, ...]], source: str, target: str
) -> None:
    """Raise a one-line :class:`CheckpointError` naming the first missing, unexpected and
    mis-shaped keys unless ``state`` has exactly the keys and shapes of ``layout``."""
    missing = [k for k in layout if k not in state]
    unexpected = [k for k in state if k not in layout]
    wrong = [
        f"{k} {list(state[k].shape)} vs {list(shape)}"
        for k, shape in layout.items()
        if k in state and tuple(state[k].shape) != tuple(shape)
    ]
    problems = [
        f"{label} {listed(keys)}"
        for label, keys in (
            ("missing keys:", missing),
            ("unexpected keys:", unexpected),
            ("shape mismatch:", wrong),
        )
        if keys
    ]
    if problems:
        raise CheckpointError(
            f"{source} does not fit {target} ({len(missing)} missing, {len(unexpected)} "
            f"unexpected, {len(wrong)} mismatched): " + "; ".join(problems)
        )


def check_state_matches(model: nn.Module, state: dict[str, torch.Tensor], source: str) -> None:
    """Raise a :class:`CheckpointError` naming the first bad keys if ``state`` does not fit."""
    layout = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    check_layout(state, layout, source, type(model).__name__)


def load_backbone_weights(model: nn.Module, path: str) -> None:
    """Load a weight file into ``model`` strictly (see the module docstring for the formats)."""
    state = extract_backbone_state(load_file(path), path)
    check_state_matches(model, state, path)
    model.load_state_dict(state)
