"""FSP: Yim, Joo, Bae & Kim, "A Gift from Knowledge Distillation: Fast Optimization, Network
Minimization and Transfer Learning", CVPR 2017.

RepDistiller (``--distill fsp``) runs it in two phases, as the paper does:

1. ``init`` (``--init_epochs 30``, helper/pretrain.py): the student's feature layers (its
   ``get_feat_modules()``: everything below the classifier that the FSP matrices depend on) are
   trained on the sum of :class:`~kdzoo.losses.FSPLoss` over the consecutive maps of ``feat[:-1]``
   (the stem and the post-ReLU stage outputs), alone, by an SGD of their own at the constant
   ``--learning_rate`` (``SOLVER.BASE_LR`` here);
2. ``main``: the whole student is trained on ``-r 1`` CE (+ ``-a`` KD) by a new SGD with the usual
   schedule. RepDistiller's ``-b 50`` multiplies a main-phase FSP term that it sets to 0
   (helper/loops.py:174-176), so kdzoo has no such weight.

Only pairs whose maps have the same channel counts can be distilled (FSP.py:13-17): six of the 13
CIFAR-100 pairs (resnet56/110 -> resnet20/32, resnet32x4 -> resnet8x4, vgg13 -> vgg8,
wrn_40_2 -> wrn_16_2); the others, wrn_40_2 -> wrn_40_1 included (16 vs 32 channels from the
first stage on), are refused when the distiller is built, as the reference refuses them.
"""

import torch
from torch import nn

from kdzoo.losses import FSPLoss
from kdzoo.modeling import dummy_forward, probe_features
from kdzoo.solver import Phase
from kdzoo.utils.errors import ConfigError

from .base import Distiller, LabelLosses, pretraining_epochs
from .build import DISTILLER_REGISTRY


def parameters_reaching(model: nn.Module, outputs: list[torch.Tensor]) -> tuple[nn.Parameter, ...]:
    """The parameters of ``model`` that ``outputs`` depend on (they receive a gradient), in
    ``model.parameters()`` order."""
    grads = torch.autograd.grad(
        sum(o.sum() for o in outputs), list(model.parameters()), allow_unused=True
    )
    return tuple(p for p, g in zip(model.parameters(), grads, strict=True) if g is not None)


@DISTILLER_REGISTRY.register("fsp")
class FSP(Distiller):
    """``init``: ``sum_i FSP_i(f_s, f_t)`` on the student's feature layers;
    ``main``: ``CE_WEIGHT * CE`` (+ ``KD_WEIGHT * KD``)."""

    def __init__(self, cfg, student: nn.Module, teacher: nn.Module) -> None:
        super().__init__(student, teacher)
        opts = cfg.DISTILLER.FSP
        self.criterion = FSPLoss()
        self.label_losses = LabelLosses(cfg, opts)
        self.init_epochs = pretraining_epochs(cfg, "FSP")
        s_channels = [shape[0] for shape in probe_features(student)[:-1]]
        t_channels = [shape[0] for shape in probe_features(teacher)[:-1]]
        if s_channels != t_channels:  # the reference's check (FSP.py:13-17)
            raise ConfigError(
                f"DISTILLER.NAME fsp: the student {cfg.MODEL.STUDENT.NAME}'s maps have "
                f"{s_channels} channels and the teacher {cfg.MODEL.TEACHER.NAME}'s {t_channels}; "
                "FSP compares maps of equal channels: distil a pair of one family and width "
                "(configs/cifar100/fsp/ lists them)"
            )

    def pretraining_phases(self) -> list[Phase]:
        # What the init loss reaches: the student's feature layers (get_feat_modules()).
        features = dummy_forward(self.student, batch_size=2, features=True)["features"]
        feature_layers = parameters_reaching(self.student, features[:-1])
        return [Phase("init", self.init_epochs, feature_layers, constant_lr=True)]

    def losses(self, batch: dict) -> dict[str, torch.Tensor]:
        x = batch["views"][0]
        if self.phase == "init":
            with torch.no_grad():
                feat_t = self.teacher(x, features=True)["features"]
            feat_s = self.student(x, features=True)["features"]
            # L_init = sum_i mean (G_i^S - G_i^T)^2 over consecutive maps (helper/pretrain.py)
            return {"loss_fsp": sum(self.criterion(feat_s[:-1], feat_t[:-1]))}
        return self.label_losses.of_student(self.student, self.teacher, x, batch["label"])
