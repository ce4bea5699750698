"""No distillation: cross-entropy on the labels. Trains teachers and student baselines."""

import torch
import torch.nn.functional as F
from torch import nn

from .base import Distiller
from .build import DISTILLER_REGISTRY


@DISTILLER_REGISTRY.register("vanilla")
class Vanilla(Distiller):
    """``loss_cls = CE(student(x), y)``; any configured teacher is ignored."""

    needs_teacher = False

    def __init__(self, cfg, student: nn.Module, teacher: nn.Module | None = None) -> None:
        super().__init__(student, teacher=None)

    def losses(self, batch: dict) -> dict[str, torch.Tensor]:
        logits = self.student(batch["views"][0])["logits"]
        return {"loss_cls": F.cross_entropy(logits, batch["label"])}
