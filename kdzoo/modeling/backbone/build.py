"""The backbone registry and the one output contract every backbone follows.

Every backbone maps images ``[B, 3, H, W]`` to a dict::

    {"logits": [B, num_classes], "embedding": [B, D] (pooled penultimate features),
     "stages": [stage_1, ..., stage_n] (the outputs of its stages, [B, C_i, H_i, W_i])}

and carries a class attribute ``input_size`` (its native square input side, 32 for the CIFAR zoo,
224 for ImageNet models). Feature sizes are discovered with :func:`probe_backbone`, never typed.

Backbones used by feature distillers also take ``forward(x, features=False, preact=False)`` and
then add RepDistiller's feature lists (``"features"``, ``"preact_stages"``); see
:mod:`kdzoo.modeling.backbone.features`. The default call returns the three keys above only.
"""

import contextlib
import inspect
from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from kdzoo.utils.errors import close_names
from kdzoo.utils.registry import Registry, lookup

BACKBONE_REGISTRY = Registry("BACKBONE")
BACKBONE_REGISTRY.__doc__ = """
Registry of classifier backbones. A registered object is called as
``obj(num_classes=..., **kwargs)`` and returns an ``nn.Module`` that follows the output contract
of :mod:`kdzoo.modeling.backbone.build`.
"""


def build_backbone(name: str, num_classes: int = 100, **kwargs) -> nn.Module:
    """Build the backbone registered as ``name`` with a ``num_classes``-way classifier."""
    return lookup(BACKBONE_REGISTRY, name)(num_classes=num_classes, **kwargs)


def registered_input_size(name: str) -> int | None:
    """The ``input_size`` of the backbone registered as ``name``, read without building it: from
    the registered class, or from the class its constructor is annotated to return (``def
    resnet8(...) -> CifarResNet``); ``None`` when neither says."""
    registered = lookup(BACKBONE_REGISTRY, name)
    size = getattr(registered, "input_size", None)
    if size is None and callable(registered):
        returned = inspect.signature(registered).return_annotation
        size = getattr(returned, "input_size", None) if isinstance(returned, type) else None
    return size


def input_size_mismatch(name: str, model: nn.Module, size: int) -> str | None:
    """``None`` if backbone ``name`` (built as ``model``) takes ``size`` x ``size`` images;
    otherwise one line saying what it expects and naming the registered backbones whose names
    are close and whose ``input_size`` is ``size`` (those differing only in case, if any:
    ``resnet50`` -> ``ResNet50``)."""
    expected = getattr(model, "input_size", None)
    if expected is None or expected == size:
        return None
    fitting = [n for n, _ in BACKBONE_REGISTRY if registered_input_size(n) == size]
    close = [n for n in fitting if n.lower() == name.lower()] or close_names(name, fitting)
    text = f"{name} expects {expected}x{expected} images but INPUT.SIZE is {size}"
    return text + (f"; for {size}x{size} images see {', '.join(close)}" if close else "")


class Classifier(nn.Module):
    """A backbone seen as a plain classifier, images ``[B, 3, H, W]`` -> logits ``[B, C]``: what
    evaluation takes (it needs none of the backbone's other outputs)."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone
        self.train(backbone.training)  # a new module is in train mode; take the backbone's

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.backbone(x)["logits"]


@dataclass(frozen=True)
class BackboneDims:
    """Sizes read off one forward pass: ``embedding`` is D, ``stages`` each stage's [C, H, W]."""

    embedding: int
    stages: tuple[tuple[int, ...], ...]


@torch.no_grad()
def probe_backbone(model: nn.Module, input_size: int | None = None) -> BackboneDims:
    """Run one dummy image through ``model`` (in eval mode, restored after) and read its sizes."""
    out = dummy_forward(model, input_size=input_size)
    return BackboneDims(
        embedding=out["embedding"].shape[1],
        stages=tuple(tuple(s.shape[1:]) for s in out["stages"]),
    )


@contextlib.contextmanager
def eval_mode(*modules: nn.Module) -> Iterator[None]:
    """Run the block with ``modules`` in eval mode, then restore each one's mode."""
    modes = [m.training for m in modules]
    for m in modules:
        m.eval()
    try:
        yield
    finally:
        for m, mode in zip(modules, modes, strict=True):
            m.train(mode)


def dummy_forward(
    model: nn.Module, batch_size: int = 1, input_size: int | None = None, **outputs: bool
) -> dict:
    """``model``'s output on ``batch_size`` zero images in eval mode (restored after), under the
    caller's grad mode (the probes run it under ``no_grad``; FSP and AB trace what its features
    reach); ``outputs`` are the forward's keywords (``features=True``, ``preact=True``)."""
    size = input_size or model.input_size
    param = next(model.parameters())
    x = torch.zeros(batch_size, 3, size, size, device=param.device, dtype=param.dtype)
    with eval_mode(model):
        return model(x, **outputs)


@torch.no_grad()
def probe_features(model: nn.Module, input_size: int | None = None) -> list[tuple[int, ...]]:
    """The shape of one sample (``(C, H, W)``, or ``(D,)`` for the pooled vector) of each entry
    of ``model(x, features=True)["features"]``, RepDistiller's ``is_feat=True`` list, read off one
    dummy image in eval mode (restored after), as train_student.py sizes its extra modules."""
    out = dummy_forward(model, input_size=input_size, features=True)
    return [tuple(f.shape[1:]) for f in out["features"]]
