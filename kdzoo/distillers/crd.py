"""CRD (Tian et al., "Contrastive Representation Distillation", ICLR 2020).

Student and teacher embeddings (pooled penultimate features through Linear(d, 128) + L2 norm) are
scored against a memory bank of the other side's embeddings of the whole training set: the positive
is the anchor's own entry, the K = 16384 negatives entries of other classes. Each side's scores
``exp(<v, m> / T) / Z`` enter an NCE loss; the bank rows of the batch are refreshed with momentum
after the step. CE 1 + CRD 0.8 on CIFAR; CRD+KD adds KD with weight 1.

The embedding heads, the bank and the negatives are shared with WCoRD
(:mod:`kdzoo.distillers.contrastive_bank`, options under ``DISTILLER.MEMORY_BANK``).
"""

import torch
from torch import nn

from kdzoo.losses.crd import CRDNCELoss, PartitionEstimate
from kdzoo.memory.bank import STUDENT, TEACHER

from .build import DISTILLER_REGISTRY
from .contrastive_bank import ContrastiveBankDistiller


@DISTILLER_REGISTRY.register("crd")
class CRD(ContrastiveBankDistiller):
    """CRD and CRD+KD (``DISTILLER.CRD.KD_WEIGHT > 0``). Options under ``DISTILLER.CRD``; the
    bank's under ``DISTILLER.MEMORY_BANK``."""

    def __init__(self, cfg, student: nn.Module, teacher: nn.Module) -> None:
        super().__init__(cfg, student, teacher, cfg.DISTILLER.CRD)

    def bind_dataset(self, labels: torch.Tensor) -> None:
        super().bind_dataset(labels)
        n = len(labels)
        # Z of each direction: student vs teacher bank, teacher vs student bank.
        self.z_student = PartitionEstimate(n, self.opts.Z_MOMENTUM)
        self.z_teacher = PartitionEstimate(n, self.opts.Z_MOMENTUM)
        self.nce = CRDNCELoss(n, self.opts.EPS)

    def losses(self, batch: dict) -> dict[str, torch.Tensor]:
        emb = self.embed(batch)
        v_s, v_t, contrast_idx = emb.v_s, emb.v_t, emb.contrast_idx
        temperature = self.opts.TEMPERATURE
        with torch.autocast(v_s.device.type, enabled=False):
            p_s = self.z_student(
                torch.exp(self.memory.scores(v_s, TEACHER, contrast_idx) / temperature)
            )
            p_t = self.z_teacher(
                torch.exp(self.memory.scores(v_t, STUDENT, contrast_idx) / temperature)
            )
            loss_crd = self.nce(p_s) + self.nce(p_t)
        return {
            "loss_cls": self.label_losses.ce(emb.student_out["logits"], batch["label"]),
            "loss_crd": self.opts.CRD_WEIGHT * loss_crd,
            **self.label_losses.kd(emb.student_out["logits"], emb.teacher_out["logits"]),
        }
