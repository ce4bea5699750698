"""DKD: Zhao, Cui, Song, Qiu & Liang, "Decoupled Knowledge Distillation", CVPR 2022.

mdistiller (``DKD``, commit a08d46f): CE on the labels plus the decoupled KD of the logits
(:class:`~kdzoo.losses.DKDLoss`, alpha TCKD + beta NCKD at T 4), the latter ramped in linearly
over the first ``WARMUP`` epochs; CE 1, alpha 1, beta 8 unless the pair's config says otherwise
(mdistiller's ``configs/cifar100/dkd/*.yaml``), warm-up 20 (``DISTILLER.DKD``). The teacher and
the student see the same view; the teacher's forward runs under ``no_grad``.
"""

import torch
from torch import nn

from kdzoo.losses import DKDLoss

from .base import Distiller, LabelLosses, mdistiller_warmup
from .build import DISTILLER_REGISTRY


@DISTILLER_REGISTRY.register("dkd")
class DKD(Distiller):
    """``CE_WEIGHT * CE + min(epoch / WARMUP, 1) * (ALPHA * TCKD + BETA * NCKD)``
    (+ ``KD_WEIGHT * KD``), ``epoch`` counted from 1 as mdistiller's trainer counts it."""

    def __init__(self, cfg, student: nn.Module, teacher: nn.Module) -> None:
        super().__init__(student, teacher)
        opts = cfg.DISTILLER.DKD
        self.label_losses = LabelLosses(cfg, opts)
        self.dkd_loss = DKDLoss(opts.ALPHA, opts.BETA, opts.TEMPERATURE)
        self.warmup_epochs = opts.WARMUP

    def losses(self, batch: dict) -> dict[str, torch.Tensor]:
        x = batch["views"][0]
        with torch.no_grad():
            logits_t = self.teacher(x)["logits"]
        logits_s = self.student(x)["logits"]
        ramp = mdistiller_warmup(batch["epoch"], self.warmup_epochs)
        return {
            "loss_cls": self.label_losses.ce(logits_s, batch["label"]),
            # L_DKD = alpha TCKD + beta NCKD, ramped in over the first WARMUP epochs
            "loss_dkd": ramp * self.dkd_loss(logits_s, logits_t, batch["label"]),
            **self.label_losses.kd(logits_s, logits_t),
        }
