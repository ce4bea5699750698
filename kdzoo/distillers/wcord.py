"""WCoRD (Chen et al., "Wasserstein Contrastive Representation Distillation", CVPR 2021).

Only the abstract was read. It fixes the structure: a global term (GCKT) from the dual form of the
Wasserstein distance, a contrastive objective with a 1-Lipschitz critic over a CRD-style memory of
negatives; a local term (LCKT) from its primal form, entropic optimal transport between the
mini-batch's teacher and student embeddings; ``CE + lambda1 GCKT + lambda2 LCKT`` (+ KD for
WCoRD+KD); CRD's protocol. Everything below that the abstract does not state is our reading, and
every such choice is an option under ``DISTILLER.WCORD`` (marked *unverified* in the config).

Embeddings, bank and negatives are CRD's, shared with it in
:mod:`kdzoo.distillers.contrastive_bank` (options under ``DISTILLER.MEMORY_BANK``):
``v_s = Embed_s(f_s)``, ``v_t = Embed_t(f_t)`` (Linear + L2 norm, 128-d), banks ``M_s``, ``M_t`` of
every training sample refreshed with momentum 0.5 after the step, contrast indices ``j_0`` (the
positive, the anchor's own row) and ``j_1..j_K`` (other classes), K = 16384.

- GCKT (:class:`~kdzoo.losses.WassersteinCriticLoss`), with ``g_k = g(M_t[j_k], v_s)``::

      OBJECTIVE infonce:      -log( exp(g_0 / T) / sum_{k=0..K} exp(g_k / T) ),  T = 0.07
      OBJECTIVE kantorovich:  mean_{k>=1} g_k - g_0

  mean over the batch; with ``SYMMETRIC`` plus the same for the teacher anchor,
  ``g_k = g(v_t, M_s[j_k])``. ``CRITIC inner`` is ``g(t, s) = <t, s>``: CRD's score, 1-Lipschitz
  in each argument on unit vectors. ``CRITIC mlp`` is a small MLP on ``t * s`` or ``[t; s]``,
  held 1-Lipschitz (``LIPSCHITZ``) by spectral normalisation (each weight divided by a certified
  upper bound of its largest singular value, or by torch's estimate after ``CRITIC_POWER_ITERS``
  power iterations) or by a two-sided gradient penalty at points between the positive and a
  negative.
- LCKT (:class:`~kdzoo.losses.SinkhornOTLoss`): ``C_ij = 1 - cos(v_t_i, v_s_j)`` (or
  ``||v_t_i - v_s_j||^2``) over the B x B pairs of the (global) batch; ``P`` = Sinkhorn plan
  between uniform marginals (epsilon, iterations), computed without gradient;
  ``LCKT = sum_ij P_ij C_ij``.
- Total: ``CE_WEIGHT CE + GCKT_WEIGHT GCKT + LCKT_WEIGHT LCKT (+ KD_WEIGHT KD)``.
"""

import torch
from torch import nn
from torch.nn.utils import parametrize

from kdzoo.config import require_choice
from kdzoo.losses import SinkhornOTLoss, WassersteinCriticLoss
from kdzoo.losses.optimal_transport import COSTS
from kdzoo.losses.wasserstein import CRITIC_INPUTS, CRITICS, LIPSCHITZ, OBJECTIVES
from kdzoo.memory.bank import STUDENT, TEACHER
from kdzoo.utils import comm

from .build import DISTILLER_REGISTRY
from .contrastive_bank import ContrastiveBankDistiller


@DISTILLER_REGISTRY.register("wcord")
class WCoRD(ContrastiveBankDistiller):
    """WCoRD and WCoRD+KD (``DISTILLER.WCORD.KD_WEIGHT > 0``). Options under ``DISTILLER.WCORD``;
    the bank's under ``DISTILLER.MEMORY_BANK``."""

    def __init__(self, cfg, student: nn.Module, teacher: nn.Module) -> None:
        opts = cfg.DISTILLER.WCORD
        for key, choices in (
            ("CRITIC", CRITICS),
            ("CRITIC_INPUT", CRITIC_INPUTS),
            ("LIPSCHITZ", LIPSCHITZ),
            ("OBJECTIVE", OBJECTIVES),
            ("OT_COST", COSTS),
        ):
            require_choice(f"DISTILLER.WCORD.{key}", opts[key], choices)
        super().__init__(cfg, student, teacher, opts)
        self.gckt = WassersteinCriticLoss(
            self.bank_opts.FEAT_DIM,
            critic=opts.CRITIC,
            critic_input=opts.CRITIC_INPUT,
            hidden=opts.CRITIC_HIDDEN,
            lipschitz=opts.LIPSCHITZ,
            objective=opts.OBJECTIVE,
            temperature=opts.TEMPERATURE,
            gp_weight=opts.GP_WEIGHT,
            power_iterations=opts.CRITIC_POWER_ITERS,
        )
        self.lckt = SinkhornOTLoss(opts.SINKHORN_EPSILON, opts.SINKHORN_ITERS, opts.OT_COST)

    def losses(self, batch: dict) -> dict[str, torch.Tensor]:
        opts = self.opts
        emb = self.embed(batch)
        v_s, v_t, contrast_idx = emb.v_s, emb.v_t, emb.contrast_idx
        # Scores are divided by T = 0.07 and Sinkhorn exponentiates costs / epsilon: float32.
        with torch.autocast(v_s.device.type, enabled=False):
            banks = self.memory.banks
            # Both directions share one normalisation of a spectrally normalised critic's weights.
            with parametrize.cached():
                loss_gckt = self.gckt(v_s, banks[TEACHER], contrast_idx, anchor_side="student")
                if opts.SYMMETRIC:
                    loss_gckt = loss_gckt + self.gckt(
                        v_t, banks[STUDENT], contrast_idx, anchor_side="teacher"
                    )
            # One transport problem over the global batch, so N processes solve the problem one
            # process would.
            global_v_t, global_v_s = comm.gather_global_batch(v_t), comm.gather_global_batch(v_s)
            loss_lckt = comm.sum_gradient_over_ranks(self.lckt(global_v_t, global_v_s))
        return {
            "loss_cls": self.label_losses.ce(emb.student_out["logits"], batch["label"]),
            "loss_gckt": opts.GCKT_WEIGHT * loss_gckt,
            "loss_lckt": opts.LCKT_WEIGHT * loss_lckt,
            **self.label_losses.kd(emb.student_out["logits"], emb.teacher_out["logits"]),
        }
