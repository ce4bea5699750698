"""The distiller contract: a student, an optional frozen teacher, and the losses that tie them."""

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from kdzoo.losses import KDLoss
from kdzoo.memory import Memory
from kdzoo.solver import MAIN_PHASE, Phase
from kdzoo.utils.errors import ConfigError


@dataclass
class EMAPair:
    """A module the engine keeps as a moving average of another, after every optimizer step:
    ``target = momentum * target + (1 - momentum) * online``, parameter by parameter.

    ``buffers`` says what happens to buffers (BN statistics): ``"copy"`` takes the online module's,
    ``"own"`` leaves the target's, which it then computes itself by running in train mode.
    """

    target: nn.Module
    online: nn.Module
    momentum: float
    buffers: str = "own"


class Distiller(nn.Module):
    """Base class of every distiller.

    ``forward(batch)`` returns a dict of already-weighted losses, which the trainer sums. The
    batch holds ``"views"``: ``num_views`` augmented float images ``[B, 3, H, W]``, plus ``"label"``
    ``[B]``, ``"index"`` ``[B]`` (dataset indices, for memory banks) and ``"epoch"`` (the engine's
    0-based epoch, an int, for warm-ups). What is evaluated is the student alone
    (``distiller.student``), never the distiller.

    Subclasses declare what the engine must do for them: ``num_views``, :meth:`ema_pairs`
    (applied by the EMA hook), and their :class:`~kdzoo.memory.Memory` modules (committed by the
    memory-commit hook).
    """

    #: Augmented views of each image the distiller needs per step.
    num_views: int = 1
    #: Whether the method needs ``MODEL.TEACHER``.
    needs_teacher: bool = True
    #: The name of the phase training is in (set by the engine; see :meth:`pretraining_phases`).
    phase: str = MAIN_PHASE.name

    def __init__(self, student: nn.Module, teacher: nn.Module | None = None) -> None:
        super().__init__()
        self.student = student
        self.teacher = teacher
        if teacher is not None:
            teacher.requires_grad_(False)
            teacher.eval()

    def pretraining_phases(self) -> list[Phase]:
        """The phases the engine runs before the main one, in order (none by default). While
        one runs, :attr:`phase` is its name and only its parameters are trained, by a new
        optimizer; :meth:`losses` returns that phase's losses."""
        return []

    def main_phase(self) -> Phase:
        """The phase the run ends with, of ``SOLVER``'s length, rate and schedule. By default it
        trains every parameter that was trainable when the run was built; a method whose
        pre-training modules the main phase leaves alone (AB's connectors, FT's paraphraser)
        names the parameters it trains."""
        return MAIN_PHASE

    def train(self, mode: bool = True) -> "Distiller":
        super().train(mode)
        if self.teacher is not None:
            self.teacher.eval()  # the teacher's BN statistics are never updated
        return self

    def forward(self, batch: dict) -> dict[str, torch.Tensor]:
        # DDP wraps and calls forward; methods write ``losses``, the name of what they compute.
        return self.losses(batch)

    def losses(self, batch: dict) -> dict[str, torch.Tensor]:
        """The weighted training losses of one batch, by name (e.g. ``loss_cls``)."""
        raise NotImplementedError

    def bind_dataset(self, labels: torch.Tensor) -> None:
        """Called once by :func:`~kdzoo.distillers.build_distiller`, right after construction,
        with the labels ``[N]`` of the training set: the place to size state that depends on the
        dataset (memory banks, class-aware samplers)."""

    def ema_pairs(self) -> list[EMAPair]:
        """Modules to update as moving averages after each optimizer step."""
        return []

    def memories(self) -> list[Memory]:
        """Memory modules whose staged keys the engine commits after each optimizer step."""
        return [m for m in self.modules() if isinstance(m, Memory)]


def pretraining_epochs(cfg, name: str) -> int:
    """``DISTILLER.<name>.INIT_EPOCHS``, the length of a method's pre-training phase (0: none),
    refused in one line below 0."""
    epochs = cfg.DISTILLER[name].INIT_EPOCHS
    if epochs < 0:
        raise ConfigError(
            f"DISTILLER.{name}.INIT_EPOCHS must be 0 (no pre-training) or more; got {epochs}"
        )
    return epochs


def mdistiller_warmup(epoch: int, warmup_epochs: int) -> float:
    """mdistiller's linear warm-up of a loss term, ``min(e / warmup_epochs, 1)`` (DKD, ReviewKD),
    of the engine's 0-based ``epoch``, with ``e = epoch + 1``: mdistiller's trainer counts epochs
    from 1, so its first epoch already weighs ``1 / warmup_epochs``."""
    return min((epoch + 1) / warmup_epochs, 1.0)


class LabelLosses(nn.Module):
    """The label terms a method adds to its own: ``CE_WEIGHT * CE(z_s, y)`` and, for a +KD variant
    (``KD_WEIGHT > 0``), ``KD_WEIGHT * KD(z_s, z_t)`` at ``DISTILLER.KD.TEMPERATURE``.

    ``opts`` is the method's config node, with ``CE_WEIGHT`` and ``KD_WEIGHT``.
    """

    def __init__(self, cfg, opts) -> None:
        super().__init__()
        self.ce_weight = opts.CE_WEIGHT
        self.kd_weight = opts.KD_WEIGHT
        self.kd_loss = KDLoss(cfg.DISTILLER.KD.TEMPERATURE)

    def ce(self, logits_s: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """``CE_WEIGHT * CE(z_s, y)``; ``logits_s`` ``[B, C]``, ``labels`` ``[B]``."""
        return self.ce_weight * F.cross_entropy(logits_s, labels)

    def kd(self, logits_s: torch.Tensor, logits_t: torch.Tensor) -> dict[str, torch.Tensor]:
        """``{"loss_kd": KD_WEIGHT * KD(z_s, z_t)}`` when ``KD_WEIGHT > 0``, else nothing."""
        if self.kd_weight <= 0:
            return {}
        return {"loss_kd": self.kd_weight * self.kd_loss(logits_s, logits_t)}

    def of_student(
        self, student: nn.Module, teacher: nn.Module, x: torch.Tensor, labels: torch.Tensor
    ) -> dict[str, torch.Tensor]:
        """The label terms alone on a batch ``x`` ``[B, 3, H, W]``: the main phase of a method
        whose distillation is all in its pre-training (AB, FSP). The teacher runs only for KD."""
        logits_s = student(x)["logits"]
        losses = {"loss_cls": self.ce(logits_s, labels)}
        if self.kd_weight > 0:
            with torch.no_grad():
                logits_t = teacher(x)["logits"]
            losses.update(self.kd(logits_s, logits_t))
        return losses
