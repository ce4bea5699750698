"""VID: Ahn, Hu, Damianou, Lawrence & Dai, "Variational Information Distillation for Knowledge
Transfer", CVPR 2019.

RepDistiller (``--distill vid``): the post-ReLU stage outputs ``feat[1:-1]`` of student and
teacher, one :class:`~kdzoo.losses.VIDLoss` per pair (a regressor of three 1x1 convolutions
and a per-channel variance), summed; CE 1, KD 0, VID 1 (``DISTILLER.VID``). The regressors and
variances are trained with the student by one optimizer (``trainable_list``,
train_student.py:219-225). Where the lists differ in length the extra maps are dropped, as the
reference's ``zip`` does; where maps differ in size the larger is average-pooled (in the loss).

mdistiller's VID differs in one respect kdzoo does not follow: it keeps the variances in a plain
list, so its optimizer never updates them and they stay at ``INIT_PRED_VAR``
(docs/decisions.md, Baselines).
"""

import torch
from torch import nn

from kdzoo.losses import VIDLoss
from kdzoo.modeling import probe_features

from .build import DISTILLER_REGISTRY
from .feature_distiller import FeatureDistiller, layer_pairs


@DISTILLER_REGISTRY.register("vid")
class VID(FeatureDistiller):
    """``CE_WEIGHT * CE + WEIGHT * sum_j VID_j(f_s^j, f_t^j)`` (+ ``KD_WEIGHT * KD``)."""

    loss_name = "vid"

    def __init__(self, cfg, student: nn.Module, teacher: nn.Module) -> None:
        opts = cfg.DISTILLER.VID
        # One VIDLoss per pair of stages, sized from a dummy forward of both models
        # (train_student.py:170-174, 220-223); each holds that pair's trained modules.
        s_maps, t_maps = layer_pairs(probe_features(student)[1:-1], probe_features(teacher)[1:-1])
        per_pair = nn.ModuleList(
            VIDLoss(s[0], t[0], opts.INIT_PRED_VAR, opts.EPS)
            for s, t in zip(s_maps, t_maps, strict=True)
        )
        super().__init__(cfg, student, teacher, opts, per_pair)

    def feature_loss(self, feat_s: list[torch.Tensor], feat_t: list[torch.Tensor]) -> torch.Tensor:
        # L_VID = sum_j mean 0.5 ((f_t^j - mu_j(f_s^j))^2 / sigma_j^2 + log sigma_j^2)
        g_s, g_t = layer_pairs(feat_s[1:-1], feat_t[1:-1])
        return sum(vid(f_s, f_t) for vid, f_s, f_t in zip(self.criterion, g_s, g_t, strict=True))
