"""CC: Peng, Jin, Liu, Li, Wu, Liu, Zhou & Zhang, "Correlation Congruence for Knowledge
Distillation", ICCV 2019.

RepDistiller (``--distill correlation``): ``feat[-1]``, the pooled penultimate vectors of student
and teacher, each through its own linear embedding to ``--feat_dim 128``, then ``Correlation``
(CC.py:14-17, kdzoo's :class:`~kdzoo.losses.CorrelationCongruenceLoss`); CE 1, KD 0, CC 0.02
(``DISTILLER.CC``). Both embeddings are trained with the student (``trainable_list``,
train_student.py:211-218); the teacher's features reach its embedding detached
(helper/loops.py:115-117, 162-165).

The embeddings are RepDistiller's ``LinearEmbed`` (models/util.py:185-194): a plain
``nn.Linear`` with bias and **no** normalisation, used here as ``nn.Linear`` itself. kdzoo's
:class:`~kdzoo.modeling.LinearEmbed` (CRD's ``Embed``) L2-normalises its output and is not the
module CC uses.
"""

import torch
from torch import nn

from kdzoo.losses import CorrelationCongruenceLoss
from kdzoo.modeling import probe_backbone

from .build import DISTILLER_REGISTRY
from .feature_distiller import FeatureDistiller, over_global_batch


@DISTILLER_REGISTRY.register("cc")
class CC(FeatureDistiller):
    """``CE_WEIGHT * CE + WEIGHT * CC(W_s feat_s[-1] + b_s, W_t feat_t[-1] + b_t)``
    (+ ``KD_WEIGHT * KD``)."""

    loss_name = "cc"

    def __init__(self, cfg, student: nn.Module, teacher: nn.Module) -> None:
        opts = cfg.DISTILLER.CC
        super().__init__(cfg, student, teacher, opts, CorrelationCongruenceLoss())
        # LinearEmbed(feat[-1].shape[1], 128), no normalisation (train_student.py:213-214)
        self.embed_student = nn.Linear(probe_backbone(student).embedding, opts.FEAT_DIM)
        self.embed_teacher = nn.Linear(probe_backbone(teacher).embedding, opts.FEAT_DIM)

    def feature_loss(self, feat_s: list[torch.Tensor], feat_t: list[torch.Tensor]) -> torch.Tensor:
        # L_CC = mean_i sum_d |s_i - t_i|_d |s_{i+1} - t_{i+1}|_d over the global batch's order
        f_s = self.embed_student(feat_s[-1].flatten(1))
        f_t = self.embed_teacher(feat_t[-1].flatten(1))
        return over_global_batch(self.criterion, f_s, f_t)
