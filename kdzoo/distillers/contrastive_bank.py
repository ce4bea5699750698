"""What CRD and WCoRD share: embedding heads on both models, a memory bank holding every training
sample's embeddings, class-aware contrast indices, and the label terms (CE, and KD for the +KD
variants). The bank's options are under ``DISTILLER.MEMORY_BANK``."""

from dataclasses import dataclass

import torch
from torch import nn

from kdzoo.config import require_choice
from kdzoo.memory import SAMPLING_MODES, ClassAwareSampler, build_memory
from kdzoo.modeling import LinearEmbed, probe_backbone

from .base import Distiller, LabelLosses


@dataclass
class BankEmbeddings:
    """One batch as a :class:`ContrastiveBankDistiller` sees it.

    ``student_out``, ``teacher_out``: the two backbones' outputs on ``views[0]``; ``v_s``,
    ``v_t``: their embeddings ``[B, FEAT_DIM]`` in float32, of unit norm; ``contrast_idx``: bank
    rows ``[B, K + 1]`` to score each anchor against, column 0 the positive.
    """

    student_out: dict
    teacher_out: dict
    v_s: torch.Tensor
    v_t: torch.Tensor
    contrast_idx: torch.Tensor


class ContrastiveBankDistiller(Distiller):
    """A distiller that contrasts ``v_s = Embed_s(student features)`` and ``v_t = Embed_t(teacher
    features)`` with rows of a memory bank of the whole training set.

    Options under ``DISTILLER.MEMORY_BANK``: ``FEAT_DIM``, ``NUM_NEGATIVES``, ``MODE``,
    ``NEGATIVES_WITH_REPLACEMENT``, ``NAME`` and ``MOMENTUM``; the method's own node ``opts``
    has ``CE_WEIGHT`` and ``KD_WEIGHT``. The bank (``[2, N, FEAT_DIM]``) and the sampler are
    sized by :meth:`bind_dataset`.
    """

    def __init__(self, cfg, student: nn.Module, teacher: nn.Module, opts) -> None:
        super().__init__(student, teacher)
        self.opts = opts
        bank = cfg.DISTILLER.MEMORY_BANK
        require_choice("DISTILLER.MEMORY_BANK.MODE", bank.MODE, SAMPLING_MODES)
        self.embed_student = LinearEmbed(probe_backbone(student).embedding, bank.FEAT_DIM)
        self.embed_teacher = LinearEmbed(probe_backbone(teacher).embedding, bank.FEAT_DIM)
        self.bank_opts = bank
        self.seed = cfg.SEED
        self.label_losses = LabelLosses(cfg, opts)

    def bind_dataset(self, labels: torch.Tensor) -> None:
        """Size the banks and the sampler to the training set (``labels``: ``[N]``)."""
        bank = self.bank_opts
        self.memory = build_memory(
            bank.NAME,
            num_samples=len(labels),
            dim=bank.FEAT_DIM,
            momentum=bank.MOMENTUM,
        )
        self.sampler = ClassAwareSampler(
            labels,
            bank.NUM_NEGATIVES,
            bank.MODE,
            seed=self.seed,
            with_replacement=bank.NEGATIVES_WITH_REPLACEMENT,
        )

    def embed(self, batch: dict) -> BankEmbeddings:
        """Both models on ``views[0]``, their embeddings and the contrast indices of the batch
        (drawn from the sampler's random stream). Stages ``[v_s, v_t]`` for the batch's bank rows:
        written after the optimizer step, so this step's scores still see the old rows."""
        x = batch["views"][0]
        with torch.no_grad():
            t_out = self.teacher(x)
        s_out = self.student(x)
        # Scores are exponentials of inner products / 0.07: keep them out of bf16/fp16.
        with torch.autocast(x.device.type, enabled=False):
            v_s = self.embed_student(s_out["embedding"].float())
            v_t = self.embed_teacher(t_out["embedding"].float())
        contrast_idx = self.sampler(batch["index"], batch["label"])
        self.memory.push(torch.stack([v_s, v_t], dim=1), batch["index"])
        return BankEmbeddings(s_out, t_out, v_s, v_t, contrast_idx)
