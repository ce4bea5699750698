"""ReviewKD: Chen, Liu, Zhao & Jia, "Distilling Knowledge via Knowledge Review", CVPR 2021.

mdistiller (``ReviewKD``, commit a08d46f, ``mdistiller/distillers/ReviewKD.py``): the student's
stage outputs and its pooled vector (as a ``1 x 1`` map), ``feats[1:] + [pooled]``, are reviewed
from the deepest up: one attention-based fusion (ABF) module per map fuses it with what the deeper
ones made of theirs and brings it to the teacher's channels and size
(:class:`~kdzoo.modeling.KnowledgeReview`). Each result is compared with the teacher's map of its
stage, taken **before** its last ReLU (``preact_feats[1:] + [pooled]``), by the hierarchical
context loss (:class:`~kdzoo.losses.HCLLoss`), summed over stages. The HCL term is ramped in
linearly over the first ``WARMUP`` epochs. CE 1, weight 1, warm-up 20 (``DISTILLER.REVIEWKD``);
mdistiller's one CIFAR-100 config (resnet32x4 -> resnet8x4) weighs HCL 5; the configs here take
the authors' weight per pair where their script has one (0.6 to 8), else 5.

The ABF modules are trained with the student by one optimizer (``get_learnable_parameters``) and
run in train mode (their BatchNorm uses batch statistics). Their channels and sizes, which
mdistiller reads from ``CFG.REVIEWKD.IN_CHANNELS``, ``OUT_CHANNELS``, ``SHAPES`` and
``OUT_SHAPES``, are read off a dummy forward of the two models; for the authors' CIFAR-100 pairs
they are the lists the authors' ``build_review_kd`` writes out (docs/decisions.md, Baselines).
"""

import torch
from torch import nn

from kdzoo.losses import HCLLoss
from kdzoo.modeling import KnowledgeReview, probe_features

from .base import Distiller, LabelLosses, mdistiller_warmup
from .build import DISTILLER_REGISTRY


def as_maps(features: list[torch.Tensor]) -> list[torch.Tensor]:
    """The stage outputs and the pooled vector of a feature list without its stem
    (``features[1:]``), the vector ``[B, C]`` as a map ``[B, C, 1, 1]``."""
    *stages, pooled = features[1:]
    return [*stages, pooled[:, :, None, None]]


def map_shapes(shapes: list[tuple[int, ...]]) -> list[tuple[int, ...]]:
    """:func:`as_maps` on the per-sample shapes of :func:`~kdzoo.modeling.probe_features`."""
    *stages, (channels,) = shapes[1:]
    return [*stages, (channels, 1, 1)]


@DISTILLER_REGISTRY.register("reviewkd")
class ReviewKD(Distiller):
    """``CE_WEIGHT * CE + min(epoch / WARMUP, 1) * WEIGHT * sum_i HCL(F'_s^i, F_t^i)``
    (+ ``KD_WEIGHT * KD``), ``epoch`` counted from 1 as mdistiller's trainer counts it."""

    def __init__(self, cfg, student: nn.Module, teacher: nn.Module) -> None:
        super().__init__(student, teacher)
        opts = cfg.DISTILLER.REVIEWKD
        self.label_losses = LabelLosses(cfg, opts)
        self.weight = opts.WEIGHT
        self.warmup_epochs = opts.WARMUP
        self.student_preact = opts.STUDENT_PREACT
        # IN_CHANNELS / SHAPES (the student's) and OUT_CHANNELS / OUT_SHAPES (the teacher's),
        # from a dummy forward of each model at the training images' size.
        s_shapes = map_shapes(probe_features(student, cfg.INPUT.SIZE))
        t_shapes = map_shapes(probe_features(teacher, cfg.INPUT.SIZE))
        if len(s_shapes) != len(t_shapes):
            raise ValueError(
                f"ReviewKD pairs the student's {len(s_shapes)} stage outputs and pooled vector "
                f"with the teacher's {len(t_shapes)}: choose models with as many stages"
            )
        self.review = KnowledgeReview(s_shapes, t_shapes, opts.MAX_MID_CHANNEL)
        self.hcl = HCLLoss()

    def losses(self, batch: dict) -> dict[str, torch.Tensor]:
        x = batch["views"][0]
        with torch.no_grad():
            teacher = self.teacher(x, preact=True)  # preact_feats (ReviewKD.py:89-91)
        student = self.student(
            x, **({"preact": True} if self.student_preact else {"features": True})
        )
        # F'_s = the review of the student's maps, from the deepest up (ReviewKD.py:71-88)
        reviewed = self.review(as_maps(student["features"]))
        ramp = mdistiller_warmup(batch["epoch"], self.warmup_epochs)
        return {
            "loss_cls": self.label_losses.ce(student["logits"], batch["label"]),
            # L_ReviewKD = sum_i HCL(F'_s^i, F_t^i), ramped in over the first WARMUP epochs
            "loss_reviewkd": ramp * self.weight * self.hcl(reviewed, as_maps(teacher["features"])),
            **self.label_losses.kd(student["logits"], teacher["logits"]),
        }
