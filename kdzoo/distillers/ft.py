"""FT: Kim, Park & Kwak, "Paraphrasing Complex Network: Network Compression via Factor Transfer",
NeurIPS 2018.

RepDistiller (``--distill factor``, commit b84f547) runs it in two phases:

1. ``init`` (``--init_epochs 30``, helper/pretrain.py): the paraphraser
   (:class:`~kdzoo.modeling.Paraphraser`, sized from the teacher's last stage output ``feat[-2]``,
   train_student.py:239-243) alone is trained to reconstruct that map (post-ReLU), mean squared
   error (``nn.MSELoss``, helper/pretrain.py:66-69), by an SGD of its own at a constant rate:
   0.01 for the resnet and wrn students the reference lists, ``--learning_rate``
   (``SOLVER.BASE_LR``) for the others (helper/pretrain.py:21-26; ``DISTILLER.FT.INIT_LR`` > 0
   overrides both). The paraphraser is in train mode there (no BatchNorm: the mode changes
   nothing).
2. ``main``: ``-r 1`` CE (+ ``-a`` KD) + ``-b 200`` x :class:`~kdzoo.losses.FactorTransferLoss`
   between the student's translator (:class:`~kdzoo.modeling.Translator`) output from its last
   stage output ``feat_s[-2]`` and the paraphraser's encoder output from the teacher's
   ``feat_t[-2]`` (helper/loops.py:177-180), by a new SGD with the usual schedule over the
   student and the translator (``trainable_list``, train_student.py:251-253;
   :meth:`FT.main_phase`). The paraphraser is frozen: it is in ``module_list`` but not in
   ``trainable_list``. The reference puts it in eval mode (helper/loops.py:78-79); kdzoo leaves
   its mode, which changes nothing: it has no BatchNorm or dropout. The reference runs it outside
   ``no_grad``, so its parameters get gradients that no optimizer reads; kdzoo runs it under
   ``no_grad`` (same values and student gradients). The translator, with BatchNorm, is in train
   mode.

The factor loss pools the larger of the two maps to the smaller, and the translator and the
paraphraser work on any map: every pair runs, all 13 CIFAR-100 pairs included.
"""

import dataclasses

import torch
import torch.nn.functional as F
from torch import nn

from kdzoo.losses import FactorTransferLoss
from kdzoo.modeling import Paraphraser, Translator, probe_features
from kdzoo.solver import MAIN_PHASE, Phase
from kdzoo.utils.errors import ConfigError

from .base import Distiller, LabelLosses, pretraining_epochs
from .build import DISTILLER_REGISTRY

#: The students whose paraphraser RepDistiller pre-trains at 0.01 (helper/pretrain.py:21-24).
INIT_LR_001_STUDENTS = (
    *("resnet8", "resnet14", "resnet20", "resnet32", "resnet44", "resnet56", "resnet110"),
    *("resnet8x4", "resnet32x4", "wrn_16_1", "wrn_16_2", "wrn_40_1", "wrn_40_2"),
)


@DISTILLER_REGISTRY.register("ft")
class FT(Distiller):
    """``init``: ``MSE(P(f_t), f_t)`` on the paraphraser; ``main``: ``CE_WEIGHT * CE + WEIGHT *
    FT(translator(f_s), encoder_P(f_t))`` (+ ``KD_WEIGHT * KD``) on the student and translator."""

    def __init__(self, cfg, student: nn.Module, teacher: nn.Module) -> None:
        super().__init__(student, teacher)
        opts = cfg.DISTILLER.FT
        # Sized from a dummy forward of both models, as train_student.py:168-174,240-243.
        s_channels, t_channels = probe_features(student)[-2][0], probe_features(teacher)[-2][0]
        if int(t_channels * opts.RATE) < 1:
            raise ConfigError(
                f"DISTILLER.FT.RATE {opts.RATE}: the factor of the teacher "
                f"{cfg.MODEL.TEACHER.NAME}'s {t_channels} channels would have "
                f"int({t_channels} x {opts.RATE}) = {int(t_channels * opts.RATE)} channels; take "
                "a rate in (0, 1] (RepDistiller's k is 0.5)"
            )
        self.paraphraser = Paraphraser(t_channels, opts.RATE)
        self.translator = Translator(s_channels, t_channels, opts.RATE)
        self.criterion = FactorTransferLoss(opts.P1, opts.P2)
        self.weight = opts.WEIGHT
        self.label_losses = LabelLosses(cfg, opts)
        self.init_epochs = pretraining_epochs(cfg, "FT")
        if opts.INIT_LR > 0:
            self.init_lr = opts.INIT_LR
        elif cfg.MODEL.STUDENT.NAME in INIT_LR_001_STUDENTS:
            self.init_lr = 0.01
        else:
            self.init_lr = None  # SOLVER.BASE_LR

    def pretraining_phases(self) -> list[Phase]:
        parameters = tuple(self.paraphraser.parameters())
        return [Phase("init", self.init_epochs, parameters, base_lr=self.init_lr, constant_lr=True)]

    def main_phase(self) -> Phase:
        # The student and the translator, trainable_list (train_student.py:251-253); the
        # paraphraser stays as pre-trained.
        trained = (*self.student.parameters(), *self.translator.parameters())
        return dataclasses.replace(MAIN_PHASE, parameters=trained)

    def losses(self, batch: dict) -> dict[str, torch.Tensor]:
        x = batch["views"][0]
        with torch.no_grad():
            teacher = self.teacher(x, features=True)
        f_t = teacher["features"][-2]
        if self.phase == "init":
            _, reconstruction = self.paraphraser(f_t)
            # L_rec = ||x - P(x)||^2, a mean over elements (nn.MSELoss, helper/pretrain.py:66-69)
            return {"loss_paraphraser": F.mse_loss(reconstruction, f_t)}
        with torch.no_grad():  # frozen: not in trainable_list (train_student.py:251-253)
            factor_t = self.paraphraser.encoder(f_t)
        student = self.student(x, features=True)
        factor_s = self.translator(student["features"][-2])
        # gamma * CE + beta * FT(T(f_s), P_enc(f_t)) (+ alpha * KD)   (helper/loops.py:177-182)
        return {
            "loss_cls": self.label_losses.ce(student["logits"], batch["label"]),
            "loss_ft": self.weight * self.criterion(factor_s, factor_t),
            **self.label_losses.kd(student["logits"], teacher["logits"]),
        }
