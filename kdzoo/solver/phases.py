"""Training phases: stretches of one run, each with its own trained modules, optimizer and lr
schedule.

RepDistiller trains AB, FT and FSP in two phases (train_student.py:227-262, helper/pretrain.py):
an ``init`` phase of ``--init_epochs`` that trains some modules on the method's own loss with a
new SGD at a constant lr, then the main phase, whose SGD is built afresh over the student and the
method's modules and follows the usual schedule from its own first epoch. A distiller declares
the phases that come before the main one (``Distiller.pretraining_phases``) and what its main
phase trains (``Distiller.main_phase``); the engine runs them in order and names no method.
"""

from collections.abc import Sequence
from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class Phase:
    """One phase of training.

    Attributes:
        name: set on the distiller (``distiller.phase``) while the phase runs, so its losses
            can depend on it; the main phase is ``"main"``.
        epochs: its length in epochs of the training set; the engine skips a pre-training
            phase of 0 epochs (``INIT_EPOCHS 0``: no pre-training).
        parameters: the parameters it trains; empty for every parameter that was trainable when
            the run was built. Only these require gradients while it runs (:func:`train_only`).
        base_lr: its learning rate; None for ``SOLVER.BASE_LR``.
        constant_lr: keep the rate constant (RepDistiller's init phase) instead of following
            ``SOLVER``'s warm-up and decay, counted from the phase's first iteration.
    """

    name: str
    epochs: int
    parameters: tuple[nn.Parameter, ...] = ()
    base_lr: float | None = None
    constant_lr: bool = False


#: The default main phase (``Distiller.main_phase``): every parameter trainable when the run was
#: built, ``SOLVER``'s rate and schedule. A main phase's ``epochs`` is not read;
#: ``SOLVER.MAX_ITER`` / ``MAX_EPOCHS`` give its length.
MAIN_PHASE = Phase("main", epochs=0)


def train_only(phase: Phase, trainable: Sequence[nn.Parameter]) -> None:
    """Of ``trainable`` (the parameters that were trainable when the run was built), let exactly
    ``phase``'s require gradients (all of them where it names none). The others then get no
    gradient, so an optimizer that holds them leaves them as they are and DDP does not wait for
    them; parameters frozen before the run stay frozen."""
    trained = {id(p) for p in phase.parameters or trainable}
    for p in trainable:
        p.requires_grad_(id(p) in trained)


def phase_starts(lengths: list[int]) -> list[int]:
    """The first iteration of each phase of ``lengths`` iterations, then the end of the last."""
    starts = [0]
    for length in lengths:
        starts.append(starts[-1] + length)
    return starts
