"""What RepDistiller's feature-distillation baselines (AT, SP, PKT, RKD, NST) share.

One training step, as ``helper/loops.py`` (``train_distill``) runs it: teacher and student see the
same view; the teacher's feature list is computed under ``no_grad`` (it is always in eval mode); the
loss is ``gamma * CE + alpha * KD + beta * feature_loss`` (``-r``, ``-a``, ``-b``), here
``CE_WEIGHT``, ``KD_WEIGHT`` and ``WEIGHT`` of the method's node ``DISTILLER.<NAME>``.
"""

from collections.abc import Callable, Sequence

import torch
from torch import nn

from kdzoo.utils import comm

from .base import Distiller, LabelLosses


def layer_pairs(
    g_s: Sequence[torch.Tensor], g_t: Sequence[torch.Tensor]
) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
    """The student and teacher maps paired from the first one, the longer list cut to the
    shorter's length.

    RepDistiller's layer-wise criteria pair the lists with ``zip`` (``AT.py``, ``NST.py``), which
    silently drops the extra maps of the longer list, e.g. a vgg teacher's fifth stage against a
    ShuffleNet student's three. kdzoo's losses insist on pairs, so the cut is made here, in the
    open. (The 13 CIFAR-100 pairs shipped in ``configs/`` all have lists of one length.)
    """
    n = min(len(g_s), len(g_t))
    return list(g_s[:n]), list(g_t[:n])


def over_global_batch(
    criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
    f_s: torch.Tensor,
    f_t: torch.Tensor,
) -> torch.Tensor:
    """``criterion(f_s, f_t)`` over the global batch, for losses over relations between samples
    (SP, PKT, RKD): every rank's rows are gathered (its own keep their gradient) and the gradient
    is summed over ranks, so N processes compute what one process computes on the same batch."""
    global_s, global_t = comm.gather_global_batch(f_s), comm.gather_global_batch(f_t)
    return comm.sum_gradient_over_ranks(criterion(global_s, global_t))


class FeatureDistiller(Distiller):
    """CE, a weighted loss between student and teacher features, and KD when ``KD_WEIGHT > 0``.

    A subclass names its loss (``loss_name``: ``"at"`` gives the key ``loss_at``), says whether it
    distils the pre-activation lists (``preact``) and computes the unweighted
    :meth:`feature_loss` from the two feature lists: RepDistiller's ``is_feat=True`` lists,
    ``[stem, stage_1, ..., stage_n, pooled embedding]`` (``features=True`` of every kdzoo backbone).
    """

    #: The method's loss is returned as ``loss_<loss_name>``.
    loss_name: str
    #: Distil RepDistiller's ``preact=True`` lists (stages before their last ReLU) instead.
    preact: bool = False

    def __init__(
        self, cfg, student: nn.Module, teacher: nn.Module, opts, criterion: nn.Module
    ) -> None:
        """``opts``: the method's config node (``CE_WEIGHT``, ``KD_WEIGHT``, ``WEIGHT``);
        ``criterion``: the feature loss from :mod:`kdzoo.losses`."""
        super().__init__(student, teacher)
        self.criterion = criterion
        self.weight = opts.WEIGHT
        self.label_losses = LabelLosses(cfg, opts)

    def feature_loss(self, feat_s: list[torch.Tensor], feat_t: list[torch.Tensor]) -> torch.Tensor:
        """The unweighted feature loss of the student's and the teacher's feature lists."""
        raise NotImplementedError

    def losses(self, batch: dict) -> dict[str, torch.Tensor]:
        x = batch["views"][0]
        # preact implies features; a backbone is asked only for what it must return.
        wanted = {"preact": True} if self.preact else {"features": True}
        with torch.no_grad():
            teacher = self.teacher(x, **wanted)
        student = self.student(x, **wanted)
        # gamma * CE + beta * feature_loss (+ alpha * KD)   (helper/loops.py, train_distill)
        return {
            "loss_cls": self.label_losses.ce(student["logits"], batch["label"]),
            f"loss_{self.loss_name}": self.weight
            * self.feature_loss(student["features"], teacher["features"]),
            **self.label_losses.kd(student["logits"], teacher["logits"]),
        }
