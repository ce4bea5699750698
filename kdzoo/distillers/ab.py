"""AB: Heo, Lee, Yun & Choi, "Knowledge Transfer via Distillation of Activation Boundaries Formed
by Hidden Neurons", AAAI 2019.

RepDistiller (``--distill abound``, commit b84f547) runs it in two phases:

1. ``init`` (``--init_epochs 30``, helper/pretrain.py): the connectors
   (:class:`~kdzoo.modeling.ABConnector`, one per pair of stage maps ``feat[1:-1]``, sized from a
   dummy forward, train_student.py:227-230) and the student's feature layers
   (``get_feat_modules()``, train_student.py:232-234) are trained on the sum of
   :class:`~kdzoo.losses.ABLoss` between the connectors' outputs from the student's pre-ReLU stage
   outputs and the teacher's (``preact=True``, helper/pretrain.py:56-65), alone, by an SGD of
   their own at the constant ``--learning_rate`` (``SOLVER.BASE_LR`` here). The reference puts
   the student in eval mode, then the connectors and the feature layers in train mode
   (helper/pretrain.py:12-14); kdzoo puts the student's BatchNorms outside the trained layers in
   eval mode while it computes that loss. It matters for a WRN student: its last pre-ReLU map is
   its final BN's output (``bn1``), which is not a feature layer, so it normalises with its
   running statistics and is not trained.
2. ``main``: the whole student on ``-r 1`` CE (+ ``-a`` KD) by a new SGD with the usual
   schedule. The connectors are not in ``trainable_list`` (train_student.py:238 adds them to
   ``module_list`` only), so kdzoo's main phase does not train them (:meth:`AB.main_phase`);
   they are not used either: the main-phase AB term is 0 (helper/loops.py:171-173), so ``-b 1``
   multiplies nothing, kdzoo has no weight for it, and their mode (eval there,
   helper/loops.py:76-77) does not matter. The reference's main-phase forward returns the
   preact list (helper/loops.py:111-114) and uses only the logits; kdzoo runs the plain forward
   (same logits; for a WRN student the reference's preact list calls three BNs a second time,
   which updates their running statistics twice per step, kdzoo's once).

"The student's feature layers" are found by a gradient probe: the parameters the post-ReLU
``features[:-1]`` depend on (``get_feat_modules()``'s, for all 22 CIFAR models) that the AB loss
reaches; for every CIFAR model that is the set the reference's init SGD updates.

The two stage lists must have one length (the reference's ``Connector`` asserts it,
models/util.py:76) and each pair of maps a connector (``ConvReg`` halves, doubles or shrinks a
map). All 13 CIFAR-100 pairs qualify; other pairs are refused when the distiller is built.
"""

import dataclasses

import torch
from torch import nn

from kdzoo.losses import ABLoss
from kdzoo.modeling import ABConnector, dummy_forward, eval_mode, probe_features
from kdzoo.solver import MAIN_PHASE, Phase
from kdzoo.utils.errors import ConfigError

from .base import Distiller, LabelLosses, pretraining_epochs
from .build import DISTILLER_REGISTRY
from .fsp import parameters_reaching


def _check_pairs(cfg, s_shapes: list[tuple], t_shapes: list[tuple]) -> None:
    """Refuse, in one line, a pair the reference cannot distil."""
    student, teacher = cfg.MODEL.STUDENT.NAME, cfg.MODEL.TEACHER.NAME
    if len(s_shapes) != len(t_shapes):
        raise ConfigError(
            f"DISTILLER.NAME ab: the student {student} has {len(s_shapes)} stage maps and the "
            f"teacher {teacher} {len(t_shapes)}; AB pairs them one to one (RepDistiller's "
            "Connector asserts lists of one length): distil a pair with as many stages "
            "(configs/cifar100/ab/ lists 13)"
        )
    for i, ((s_c, s_h, s_w), (t_c, t_h, t_w)) in enumerate(zip(s_shapes, t_shapes, strict=True)):
        identity = (s_c, s_h) == (t_c, t_h)  # models/util.py:79-80
        conv = s_h == 2 * t_h or 2 * s_h == t_h or (s_h >= t_h and s_w >= t_w)  # :137-142
        if not (identity or conv):
            raise ConfigError(
                f"DISTILLER.NAME ab: stage {i + 1}: no connector maps the student {student}'s "
                f"{s_h}x{s_w} map to the teacher {teacher}'s {t_h}x{t_w} (RepDistiller's ConvReg "
                "halves, doubles or shrinks a map): distil a pair whose maps fit "
                "(configs/cifar100/ab/ lists 13)"
            )


def feature_layer_names(student: nn.Module) -> set[str]:
    """The student's parameters that the AB pre-training phase trains: those the post-ReLU
    ``features[:-1]`` depend on (``get_feat_modules()``) that the pre-ReLU ``features[1:-1]``
    reach."""
    post = dummy_forward(student, batch_size=2, features=True)["features"][:-1]
    pre = dummy_forward(student, batch_size=2, preact=True)["features"][1:-1]
    post, pre = parameters_reaching(student, post), parameters_reaching(student, pre)
    trained = {id(p) for p in post} & {id(p) for p in pre}
    return {n for n, p in student.named_parameters() if id(p) in trained}


@DISTILLER_REGISTRY.register("ab")
class AB(Distiller):
    """``init``: ``sum_i AB_i(r_i(S_i), T_i)`` on the connectors and the student's feature layers;
    ``main``: ``CE_WEIGHT * CE`` (+ ``KD_WEIGHT * KD``)."""

    def __init__(self, cfg, student: nn.Module, teacher: nn.Module) -> None:
        super().__init__(student, teacher)
        opts = cfg.DISTILLER.AB
        self.criterion = ABLoss(opts.MARGIN)
        self.label_losses = LabelLosses(cfg, opts)
        self.init_epochs = pretraining_epochs(cfg, "AB")
        # Sized from a dummy forward of both models, as train_student.py:168-174,228-230.
        s_shapes, t_shapes = probe_features(student)[1:-1], probe_features(teacher)[1:-1]
        _check_pairs(cfg, s_shapes, t_shapes)
        self.connector = ABConnector(s_shapes, t_shapes)
        self.feature_layers = feature_layer_names(student)
        # BatchNorms outside the feature layers: in eval mode during the init phase, as the
        # reference's model_s.eval() leaves them (helper/pretrain.py:12-14). Names, not modules:
        # MODEL.SYNC_BN replaces the modules after this (keeping their parameters).
        self._untrained_norms = [
            name
            for name, m in student.named_modules()
            if isinstance(m, nn.modules.batchnorm._NormBase)
            and not any(f"{name}.{p}" in self.feature_layers for p, _ in m.named_parameters())
        ]

    def pretraining_phases(self) -> list[Phase]:
        layers = [p for n, p in self.student.named_parameters() if n in self.feature_layers]
        parameters = (*self.connector.parameters(), *layers)
        return [Phase("init", self.init_epochs, parameters, constant_lr=True)]

    def main_phase(self) -> Phase:
        # The student alone: the connectors are not in the main SGD's trainable_list
        # (train_student.py:238), and the main phase does not use them.
        return dataclasses.replace(MAIN_PHASE, parameters=tuple(self.student.parameters()))

    def losses(self, batch: dict) -> dict[str, torch.Tensor]:
        x = batch["views"][0]
        if self.phase == "init":
            with torch.no_grad():
                feat_t = self.teacher(x, preact=True)["features"]
            untrained = [self.student.get_submodule(n) for n in self._untrained_norms]
            with eval_mode(*untrained):
                feat_s = self.student(x, preact=True)["features"]
            # L_init = sum_i AB_i(r_i(S_i), T_i) over the pre-ReLU stage outputs
            # (helper/pretrain.py:62-65)
            g_s = self.connector(feat_s[1:-1])
            return {"loss_ab": sum(self.criterion(g_s, feat_t[1:-1]))}
        return self.label_losses.of_student(self.student, self.teacher, x, batch["label"])
