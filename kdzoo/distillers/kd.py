"""KD (Hinton et al., 2015): match the teacher's softened class distribution."""

import torch
import torch.nn.functional as F
from torch import nn

from kdzoo.losses import KDLoss

from .base import Distiller
from .build import DISTILLER_REGISTRY


@DISTILLER_REGISTRY.register("kd")
class KD(Distiller):
    """``CE_WEIGHT * CE(z_s, y) + KD_WEIGHT * T^2 KL(softmax(z_t/T) || softmax(z_s/T))``.

    CIFAR-100 (CRD protocol): T = 4, CE_WEIGHT 0.1, KD_WEIGHT 0.9 (``DISTILLER.KD``).
    """

    def __init__(self, cfg, student: nn.Module, teacher: nn.Module) -> None:
        super().__init__(student, teacher)
        self.kd_loss = KDLoss(cfg.DISTILLER.KD.TEMPERATURE)
        self.ce_weight = cfg.DISTILLER.KD.CE_WEIGHT
        self.kd_weight = cfg.DISTILLER.KD.KD_WEIGHT

    def losses(self, batch: dict) -> dict[str, torch.Tensor]:
        x = batch["views"][0]
        with torch.no_grad():
            teacher_logits = self.teacher(x)["logits"]
        student_logits = self.student(x)["logits"]
        return {
            "loss_cls": self.ce_weight * F.cross_entropy(student_logits, batch["label"]),
            "loss_kd": self.kd_weight * self.kd_loss(student_logits, teacher_logits),
        }
