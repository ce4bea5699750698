"""What CRD and WCoRD share: embedding heads on both models, a memory bank holding every training
sample's embeddings, and class-aware contrast indices."""

import torch
import torch.nn.functional as F
from torch import nn

from kdzoo.config import require_choice
from kdzoo.memory import SAMPLING_MODES, ClassAwareSampler, build_memory
from kdzoo.modeling import probe_backbone

from .base import Distiller


class Embed(nn.Module):
    """``Linear(d_in, d_out)`` then L2 normalisation: ``[B, d_in] -> [B, d_out]``."""

    def __init__(self, d_in: int, d_out: int) -> None:
        super().__init__()
        self.linear = nn.Linear(d_in, d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.linear(x), dim=1)


class MemoryBankDistiller(Distiller):
    """A distiller that contrasts ``v_s = Embed_s(student features)`` and ``v_t = Embed_t(teacher
    features)`` with bank rows of other samples.

    ``opts_name`` names the method's config node, ``DISTILLER.<opts_name>``, with ``FEAT_DIM``,
    ``NUM_NEGATIVES``, ``MODE``, ``MEMORY`` and ``MEMORY_MOMENTUM``. The bank
    (``[2, N, FEAT_DIM]``) and the sampler are sized by :meth:`bind_dataset`; subclasses push
    ``[v_s, v_t]`` to ``self.memory`` in their losses.
    """

    def __init__(self, cfg, student: nn.Module, teacher: nn.Module, opts_name: str) -> None:
        super().__init__(student, teacher)
        opts = cfg.DISTILLER[opts_name]
        require_choice(f"DISTILLER.{opts_name}.MODE", opts.MODE, SAMPLING_MODES)
        self.embed_student = Embed(probe_backbone(student).embedding, opts.FEAT_DIM)
        self.embed_teacher = Embed(probe_backbone(teacher).embedding, opts.FEAT_DIM)
        self.opts = opts
        self.seed = cfg.SEED

    def bind_dataset(self, labels: torch.Tensor) -> None:
        """Size the banks and the sampler to the training set (``labels``: ``[N]``)."""
        opts = self.opts
        self.memory = build_memory(
            opts.MEMORY,
            num_samples=len(labels),
            dim=opts.FEAT_DIM,
            momentum=opts.MEMORY_MOMENTUM,
        )
        self.sampler = ClassAwareSampler(labels, opts.NUM_NEGATIVES, opts.MODE, seed=self.seed)

    def embed(self, batch: dict) -> tuple[dict, dict, torch.Tensor, torch.Tensor, torch.Tensor]:
        """Student and teacher outputs on ``views[0]``, their embeddings ``v_s``, ``v_t``
        ``[B, FEAT_DIM]`` in float32, and the contrast indices ``[B, K + 1]`` (column 0 the
        positive)."""
        x = batch["views"][0]
        with torch.no_grad():
            t_out = self.teacher(x)
        s_out = self.student(x)
        # Scores are exponentials of inner products / 0.07: keep them out of bf16/fp16.
        with torch.autocast(x.device.type, enabled=False):
            v_s = self.embed_student(s_out["embedding"].float())
            v_t = self.embed_teacher(t_out["embedding"].float())
        return s_out, t_out, v_s, v_t, self.sampler(batch["index"], batch["label"])
