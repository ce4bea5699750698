"""CoCoRD: Contrastive Consistent Representation Distillation.

Read beside the paper (Sections 3.1-3.3). Three views of each image: ``x_s`` for the student,
``x'_s`` for its second view, ``x_t`` for the teacher.

- Teacher dictionary (3.1): a FIFO queue of N teacher keys ``k_t = f_t(g_t(x_t))`` (normalised),
  filled after each step. ``f_t``, the teacher projection head, is a copy of the student head moved
  by Eq. 3, ``w_t <- m_c w_t + (1 - m_c) w_s``, when teacher and student features have the same
  size; otherwise it is random and frozen (the paper's choice; the authors' code needs equal sizes).
- Eq. 2, L_ctr: InfoNCE of ``q_s = f_s(g_s(x_s))`` against ``k+_t`` and the dictionary, tau.
- Slow-moving student (3.2): ``g'_s, f'_s``, moving averages (Eq. 4, m_r) of the student backbone
  and head; their BatchNorm layers run on their own batches.
- Eq. 6-7, L_pred: the predictor ``h_s`` maps ``q_s`` to ``p_s``, pulled towards the slow student's
  ``q+ = f'_s(g'_s(x'_s))`` as ``2 - 2 cos(p_s, q+)``; symmetrised by swapping the views.
- Eq. 8 (3.3): ``L = w_ctr L_ctr + w_pred (L_pred + L~_pred) + w_cls L_cls``; 1, 4, 1 on CIFAR.

The engine applies the moving averages (EMAHook, from :meth:`ema_pairs`) and the enqueueing
(MemoryCommitHook) after the optimizer step; nothing here updates state by hand.

Ablation switches (``DISTILLER.COCORD``): ``DICTIONARY_ENCODER`` ("teacher" or "slow_student": the
encoder whose keys fill the dictionary, and whose key of ``x_t`` is the positive),
``PREDICTION_TARGET`` ("slow_student", "teacher" or "none": who encodes the views for L_pred),
``SYMMETRIC_PRED`` (False on ImageNet: L_pred one way only), the momenta, tau, N and the weights.
Modules an ablation leaves without a role (the predictor without L_pred, the slow student when
neither switch names it) are not built. ``DICTIONARY`` names the dictionary's memory module in
``MEMORY_REGISTRY`` (``key_queue``), so a user's variant can replace it from a config.
"""

import copy

import torch
import torch.nn.functional as F
from torch import nn

from kdzoo.config import require_choice
from kdzoo.losses import InfoNCELoss, KDLoss, NormalizedMSELoss
from kdzoo.memory import build_memory
from kdzoo.modeling import MLPHead, probe_backbone
from kdzoo.utils.errors import ConfigError

from .base import Distiller, EMAPair
from .build import DISTILLER_REGISTRY

_ENCODERS = ("teacher", "slow_student")
_TARGETS = ("slow_student", "teacher", "none")


def _frozen_copy(module: nn.Module) -> nn.Module:
    return copy.deepcopy(module).requires_grad_(False)


@DISTILLER_REGISTRY.register("cocord")
class CoCoRD(Distiller):
    """CoCoRD and CoCoRD+KD (``DISTILLER.COCORD.KD_WEIGHT > 0``)."""

    num_views = 3  # x_s, x'_s, x_t

    def __init__(self, cfg, student: nn.Module, teacher: nn.Module) -> None:
        super().__init__(student, teacher)
        opts = cfg.DISTILLER.COCORD
        require_choice("DISTILLER.COCORD.DICTIONARY_ENCODER", opts.DICTIONARY_ENCODER, _ENCODERS)
        require_choice("DISTILLER.COCORD.PREDICTION_TARGET", opts.PREDICTION_TARGET, _TARGETS)
        if opts.QUEUE_SIZE < cfg.SOLVER.IMS_PER_BATCH:
            raise ConfigError(
                f"DISTILLER.COCORD.QUEUE_SIZE ({opts.QUEUE_SIZE}) is smaller than the global batch "
                f"SOLVER.IMS_PER_BATCH ({cfg.SOLVER.IMS_PER_BATCH}): a step would overwrite its "
                "own keys"
            )
        self.opts = opts
        d_student = probe_backbone(student).embedding
        d_teacher = probe_backbone(teacher).embedding

        self.student_head = MLPHead(d_student, opts.PROJ_HIDDEN, opts.PROJ_DIM)  # f_s
        # h_s, only when L_pred is computed: parameters without gradients would stall DDP.
        if opts.PREDICTION_TARGET != "none":
            self.predictor = MLPHead(opts.PROJ_DIM, opts.PRED_HIDDEN, opts.PROJ_DIM)
        # f_t: follows the student head by Eq. 3 when the features match, else random and frozen.
        self.teacher_head_follows = d_teacher == d_student
        if self.teacher_head_follows:
            self.teacher_head = _frozen_copy(self.student_head)
        else:
            self.teacher_head = MLPHead(d_teacher, opts.PROJ_HIDDEN, opts.PROJ_DIM)
            self.teacher_head.requires_grad_(False)
        # g'_s, f'_s: the slow-moving student (Eq. 4), unless the ablation leaves it no role.
        self.uses_slow_student = "slow_student" in (opts.DICTIONARY_ENCODER, opts.PREDICTION_TARGET)
        if self.uses_slow_student:
            self.slow_student = _frozen_copy(student)
            self.slow_head = _frozen_copy(self.student_head)
        self.dictionary = build_memory(opts.DICTIONARY, size=opts.QUEUE_SIZE, dim=opts.PROJ_DIM)

        self.info_nce = InfoNCELoss(opts.TEMPERATURE)
        self.prediction_loss = NormalizedMSELoss()
        self.kd_loss = KDLoss(cfg.DISTILLER.KD.TEMPERATURE)

    def train(self, mode: bool = True) -> "CoCoRD":
        super().train(mode)
        if not self.teacher_head_follows:
            self.teacher_head.eval()  # frozen: not even its BN statistics move
        return self

    def ema_pairs(self) -> list[EMAPair]:
        pairs = []
        if self.uses_slow_student:
            pairs += [
                EMAPair(self.slow_student, self.student, self.opts.SLOW_MOMENTUM),
                EMAPair(self.slow_head, self.student_head, self.opts.SLOW_MOMENTUM),
            ]
        if self.teacher_head_follows:
            pairs.append(
                EMAPair(self.teacher_head, self.student_head, self.opts.TEACHER_HEAD_MOMENTUM)
            )
        return pairs

    @torch.no_grad()
    def _teacher_key(self, x: torch.Tensor) -> torch.Tensor:
        """``f_t(g_t(x))`` ``[B, PROJ_DIM]`` (not normalised)."""
        return self.teacher_head(self.teacher(x)["embedding"])

    @torch.no_grad()
    def _slow_key(self, x: torch.Tensor) -> torch.Tensor:
        """``f'_s(g'_s(x))`` ``[B, PROJ_DIM]`` (not normalised)."""
        return self.slow_head(self.slow_student(x)["embedding"])

    def _encode_key(self, encoder: str, x: torch.Tensor) -> torch.Tensor:
        return self._teacher_key(x) if encoder == "teacher" else self._slow_key(x)

    def losses(self, batch: dict) -> dict[str, torch.Tensor]:
        x_s, x_s2, x_t = batch["views"]
        opts = self.opts
        out = self.student(x_s)
        q_s = self.student_head(out["embedding"])  # q_s = f_s(g_s(x_s))

        # Eq. 2: the positive key of x_t against the teacher dictionary.
        k_pos = F.normalize(self._encode_key(opts.DICTIONARY_ENCODER, x_t), dim=1)
        loss_ctr = self.info_nce(F.normalize(q_s, dim=1), k_pos, self.dictionary.keys)
        self.dictionary.push(k_pos)

        losses = {
            "loss_cls": opts.CLS_WEIGHT * F.cross_entropy(out["logits"], batch["label"]),
            "loss_ctr": opts.CTR_WEIGHT * loss_ctr,
        }
        if opts.PREDICTION_TARGET != "none":
            # Eq. 6: predict the slow student's (or teacher's) key of the other view ...
            loss_pred = self.prediction_loss(
                self.predictor(q_s), self._encode_key(opts.PREDICTION_TARGET, x_s2)
            )
            if opts.SYMMETRIC_PRED:  # ... Eq. 7: and the same with the views swapped.
                q_s2 = self.student_head(self.student(x_s2)["embedding"])
                loss_pred = loss_pred + self.prediction_loss(
                    self.predictor(q_s2), self._encode_key(opts.PREDICTION_TARGET, x_s)
                )
            losses["loss_pred"] = opts.PRED_WEIGHT * loss_pred
        if opts.KD_WEIGHT > 0:
            teacher_logits = self.teacher(x_s)["logits"]  # same input as the student's logits
            losses["loss_kd"] = opts.KD_WEIGHT * self.kd_loss(out["logits"], teacher_logits)
        return losses
