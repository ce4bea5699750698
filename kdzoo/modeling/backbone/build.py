"""The backbone registry and the one output contract every backbone follows.

Every backbone maps images ``[B, 3, H, W]`` to a dict::

    {"logits": [B, num_classes], "embedding": [B, D] (pooled penultimate features),
     "stages": [stage_1, ..., stage_n] (the outputs of its stages, [B, C_i, H_i, W_i])}

and carries a class attribute ``input_size`` (its native square input side, 32 for the CIFAR zoo,
224 for ImageNet models). Feature sizes are discovered with :func:`probe_backbone`, never typed.
"""

from dataclasses import dataclass

import torch
from torch import nn

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


class Classifier(nn.Module):
    """A backbone seen as a plain classifier, images ``[B, 3, H, W]`` -> logits ``[B, C]``: what
    evaluation takes (it needs none of the backbone's other outputs)."""

    def __init__(self, backbone: nn.Module) -> None:
        super().__init__()
        self.backbone = backbone

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
    size = input_size or model.input_size
    param = next(model.parameters())
    was_training = model.training
    model.eval()
    try:
        out = model(torch.zeros(1, 3, size, size, device=param.device, dtype=param.dtype))
    finally:
        model.train(was_training)
    return BackboneDims(
        embedding=out["embedding"].shape[1],
        stages=tuple(tuple(s.shape[1:]) for s in out["stages"]),
    )
