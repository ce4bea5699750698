"""CRD (Tian et al., "Contrastive Representation Distillation", ICLR 2020).

Student and teacher embeddings (pooled penultimate features through Linear(d, 128) + L2 norm) are
scored against a memory bank of the other side's embeddings of the whole training set: the positive
is the anchor's own entry, the K = 16384 negatives entries of other classes. Each side's scores
``exp(<v, m> / T) / Z`` enter an NCE loss; the bank rows of the batch are refreshed with momentum
after the step. CE 1 + CRD 0.8 on CIFAR; CRD+KD adds KD with weight 1.
"""

import torch
import torch.nn.functional as F
from torch import nn

from kdzoo.losses import KDLoss
from kdzoo.losses.crd import CRDNCELoss, PartitionEstimate
from kdzoo.memory import ClassAwareSampler, MomentumMemoryBank
from kdzoo.memory.bank import STUDENT, TEACHER
from kdzoo.modeling import probe_backbone

from .base import Distiller
from .build import DISTILLER_REGISTRY


class Embed(nn.Module):
    """``Linear(d_in, d_out)`` then L2 normalisation: ``[B, d_in] -> [B, d_out]``."""

    def __init__(self, d_in: int, d_out: int) -> None:
        super().__init__()
        self.linear = nn.Linear(d_in, d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.linear(x), dim=1)


@DISTILLER_REGISTRY.register("crd")
class CRD(Distiller):
    """CRD and CRD+KD (``DISTILLER.CRD.KD_WEIGHT > 0``). Options under ``DISTILLER.CRD``."""

    def __init__(self, cfg, student: nn.Module, teacher: nn.Module) -> None:
        super().__init__(student, teacher)
        opts = cfg.DISTILLER.CRD
        self.embed_student = Embed(probe_backbone(student).embedding, opts.FEAT_DIM)
        self.embed_teacher = Embed(probe_backbone(teacher).embedding, opts.FEAT_DIM)
        self.opts = opts
        self.seed = cfg.SEED
        self.kd_loss = KDLoss(cfg.DISTILLER.KD.TEMPERATURE)

    def bind_dataset(self, labels: torch.Tensor) -> None:
        """Size the banks and the sampler to the training set (``labels``: ``[N]``)."""
        n, opts = len(labels), self.opts
        self.memory = MomentumMemoryBank(n, opts.FEAT_DIM, opts.MEMORY_MOMENTUM)
        self.sampler = ClassAwareSampler(labels, opts.NUM_NEGATIVES, opts.MODE, seed=self.seed)
        # Z of each direction: student vs teacher bank, teacher vs student bank.
        self.z_student = PartitionEstimate(n, opts.Z_MOMENTUM)
        self.z_teacher = PartitionEstimate(n, opts.Z_MOMENTUM)
        self.nce = CRDNCELoss(n, opts.EPS)

    def losses(self, batch: dict) -> dict[str, torch.Tensor]:
        x, label, index = batch["views"][0], batch["label"], batch["index"]
        with torch.no_grad():
            t_out = self.teacher(x)
        s_out = self.student(x)
        # Scores are exponentials of inner products / 0.07: keep them out of bf16/fp16.
        with torch.autocast(x.device.type, enabled=False):
            v_s = self.embed_student(s_out["embedding"].float())
            v_t = self.embed_teacher(t_out["embedding"].float())
            contrast_idx = self.sampler(index, label)  # [B, K + 1], column 0 the positive
            temperature = self.opts.TEMPERATURE
            p_s = self.z_student(
                torch.exp(self.memory.scores(v_s, TEACHER, contrast_idx) / temperature)
            )
            p_t = self.z_teacher(
                torch.exp(self.memory.scores(v_t, STUDENT, contrast_idx) / temperature)
            )
            loss_crd = self.nce(p_s) + self.nce(p_t)
        self.memory.push(torch.stack([v_s, v_t], dim=1), index)
        losses = {
            "loss_cls": self.opts.CE_WEIGHT * F.cross_entropy(s_out["logits"], label),
            "loss_crd": self.opts.CRD_WEIGHT * loss_crd,
        }
        if self.opts.KD_WEIGHT > 0:
            losses["loss_kd"] = self.opts.KD_WEIGHT * self.kd_loss(s_out["logits"], t_out["logits"])
        return losses
