"""OFD: Heo, Kim, Yun, Park, Kwak & Choi, "A Comprehensive Overhaul of Feature Distillation",
ICCV 2019.

As mdistiller runs it (``OFD``, commit a08d46f, ``mdistiller/distillers/OFD.py``; defaults
``CFG.OFD`` in ``mdistiller/engine/cfg.py``), which follows the authors' code:

* **Position**: each stage *before* its last ReLU, student and teacher (mdistiller's
  ``preact_feats[1:]``, OFD.py:136-138): kdzoo's pre-activation lists without stem and pooled
  vector, ``features[1:-1]`` of ``preact=True``. Where the lists differ in length the *last*
  ``n`` stages of each are paired, as the reference's ``_align_list`` keeps the lists' ends
  (OFD.py:163-165).
* **Teacher transform**: the margin ReLU ``max(t, m)``, one margin per channel, the expected
  negative response read off the BatchNorm in front of the stage's last ReLU
  (:func:`~kdzoo.modeling.bn_before_relu`, :func:`~kdzoo.losses.bn_margin`), computed once from
  the loaded teacher (OFD.py:90-109) and kept as buffers of the loss.
* **Student transform**: a connector per stage, ``k x k`` conv + BN to the teacher's width
  (:class:`~kdzoo.modeling.OFDConnector`, ``CONNECTOR_KERNEL_SIZE`` 1), trained with the student
  (``get_learnable_parameters``, OFD.py:111-112). Sized from a dummy forward of both models, as
  mdistiller sizes them from ``get_stage_channels()``.
* **Distance**: the partial L2 (:class:`~kdzoo.losses.OFDLoss`), summed over channels and
  positions, divided by the batch size, the last stage weighted 1 and each earlier one half the
  next (OFD.py:11-19, 151-161).
* **Loss**: ``CE_WEIGHT * CE + WEIGHT * L_OFD``, CE 1 and 0.001 (OFD.py:135-137, ``CFG.OFD.LOSS``).
* **Teacher mode**: mdistiller's OFD overrides ``train()`` so that the teacher follows the
  distiller's mode (OFD.py:114-121; its base class, and every other method, puts the teacher in
  eval): during training the teacher's BatchNorms normalise each batch with the batch's own
  statistics, as the authors' training loop does (``d_net.t_net.train()``). kdzoo does the same;
  its teacher's running statistics are not updated (the reference updates them but never reads
  them), so the teacher stays what was loaded, on every rank and in every checkpoint
  (docs/decisions.md, Baselines). In eval mode the teacher is in eval mode.

Where maps differ in size the larger is average-pooled to the smaller, the teacher's on every
shipped pair, as the reference pools it (OFD.py:156-158). mdistiller cannot run 5 of the 13
shipped CIFAR-100 pairs (ShuffleV1 and MobileNetV2 students, ResNet50 teachers); kdzoo runs all
13 (docs/decisions.md, Baselines).
"""

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from kdzoo.losses import OFDLoss, bn_margin
from kdzoo.modeling import OFDConnector, bn_before_relu, probe_features
from kdzoo.utils.errors import ConfigError

from .build import DISTILLER_REGISTRY
from .feature_distiller import FeatureDistiller


@DISTILLER_REGISTRY.register("ofd")
class OFD(FeatureDistiller):
    """``CE_WEIGHT * CE + WEIGHT * sum_i d_p(max(t_i, m_i), r_i(s_i)) / 2^(n - 1 - i)``
    (+ ``KD_WEIGHT * KD``) over the last ``n`` pre-activation stages of student and teacher."""

    loss_name = "ofd"
    preact = True

    def __init__(self, cfg, student: nn.Module, teacher: nn.Module) -> None:
        opts = cfg.DISTILLER.OFD
        # (C, H, W) of each stage, read off a dummy forward (mdistiller: get_stage_channels()[1:])
        s_maps, t_maps = probe_features(student)[1:-1], probe_features(teacher)[1:-1]
        try:
            bns = bn_before_relu(teacher)
        except ValueError as err:
            raise ConfigError(
                f"DISTILLER.NAME ofd: the teacher {cfg.MODEL.TEACHER.NAME} has no margins: {err}; "
                "OFD needs a teacher of another family"
            ) from None
        if [bn.num_features for bn in bns] != [shape[0] for shape in t_maps]:
            raise ValueError(
                f"bn_before_relu({cfg.MODEL.TEACHER.NAME}) gives BatchNorms of "
                f"{[bn.num_features for bn in bns]} channels for stages of "
                f"{[shape[0] for shape in t_maps]}"
            )
        # The last n stages of each, as _align_list keeps them; the margins of the kept stages.
        n = min(len(s_maps), len(t_maps))
        s_maps, t_maps, bns = s_maps[-n:], t_maps[-n:], bns[-n:]
        margins = [bn_margin(bn.weight, bn.bias) for bn in bns]
        super().__init__(cfg, student, teacher, opts, OFDLoss(margins))
        self.num_stages = n
        self.connectors = nn.ModuleList(
            OFDConnector(s[0], t[0], opts.CONNECTOR_KERNEL_SIZE)
            for s, t in zip(s_maps, t_maps, strict=True)
        )
        # The teacher normalises training batches with their own statistics (train mode, below)
        # and leaves its running statistics as loaded.
        for module in teacher.modules():
            if isinstance(module, _BatchNorm):
                module.track_running_stats = False

    def train(self, mode: bool = True) -> "OFD":
        super().train(mode)  # puts the teacher in eval mode
        self.teacher.train(mode)  # OFD.py:114-121: the teacher follows the distiller's mode
        return self

    def feature_loss(self, feat_s: list[torch.Tensor], feat_t: list[torch.Tensor]) -> torch.Tensor:
        n = self.num_stages
        g_s, g_t = feat_s[1:-1][-n:], feat_t[1:-1][-n:]
        # r(F_s): each student stage through its connector
        g_s = [connector(f_s) for connector, f_s in zip(self.connectors, g_s, strict=True)]
        # L_OFD = sum_i d_p(sigma_m(F_t^i), r(F_s^i)) / 2^(n - 1 - i)
        return self.criterion(g_s, g_t)
