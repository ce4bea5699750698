"""FitNet: Romero, Ballas, Kahou, Chassang, Gatta & Bengio, "FitNets: Hints for Thin Deep Nets",
ICLR 2015.

RepDistiller (``--distill hint``): the student's ``feat[hint_layer]`` (``--hint_layer 2``, the
second stage output of the post-ReLU ``is_feat=True`` list) through a regressor ``ConvReg``
(kdzoo's :class:`~kdzoo.modeling.HintRegressor`), against the teacher's ``feat[hint_layer]``,
mean squared error (``HintLoss``, FitNet.py:6-14); CE 1, KD 0, hint 100 (``DISTILLER.FITNET``).

As in the reference's main phase, the regressor is trained with the student by one optimizer
(``trainable_list``, train_student.py:185-189) and is in train mode (its BatchNorm uses batch
statistics). The paper's first stage, which trains the student up to the guided layer on the hint
alone before the whole student is trained with KD, is not run: RepDistiller's ``--distill hint``
has no pre-training stage (its ``init`` runs only for ``abound``, ``factor`` and ``fsp``,
train_student.py:227-262) and trains hint and CE together from the start.
"""

import torch
from torch import nn

from kdzoo.modeling import HintRegressor, probe_features

from .build import DISTILLER_REGISTRY
from .feature_distiller import FeatureDistiller


@DISTILLER_REGISTRY.register("fitnet")
class FitNet(FeatureDistiller):
    """``CE_WEIGHT * CE + WEIGHT * MSE(regressor(feat_s[HINT_LAYER]), feat_t[HINT_LAYER])``
    (+ ``KD_WEIGHT * KD``)."""

    loss_name = "fitnet"

    def __init__(self, cfg, student: nn.Module, teacher: nn.Module) -> None:
        opts = cfg.DISTILLER.FITNET
        super().__init__(cfg, student, teacher, opts, nn.MSELoss())
        self.hint_layer = opts.HINT_LAYER
        # Sized from a dummy forward of both models, as train_student.py:170-174,187.
        s_shapes, t_shapes = probe_features(student), probe_features(teacher)
        for name, shapes in (("student", s_shapes), ("teacher", t_shapes)):
            if not 0 <= self.hint_layer < len(shapes) - 1:
                raise ValueError(
                    f"DISTILLER.FITNET.HINT_LAYER {self.hint_layer}: the {name}'s feature list "
                    f"has maps 0..{len(shapes) - 2} (the last entry is the pooled vector)"
                )
        self.regressor = HintRegressor(s_shapes[self.hint_layer], t_shapes[self.hint_layer])

    def feature_loss(self, feat_s: list[torch.Tensor], feat_t: list[torch.Tensor]) -> torch.Tensor:
        # L_hint = mean (r(f_s^l) - f_t^l)^2   (helper/loops.py:126-129)
        guess = self.regressor(feat_s[self.hint_layer])
        return self.criterion(guess, feat_t[self.hint_layer])
