"""Distillers used by the engine tests: they exercise EMA pairs, memories, training phases and
failure paths."""

import copy

import torch
import torch.nn.functional as F
from torch import nn

from kdzoo.distillers import DISTILLER_REGISTRY, Distiller, EMAPair
from kdzoo.memory import Memory
from kdzoo.modeling import BACKBONE_REGISTRY
from kdzoo.solver import Phase


class ToyQueue(Memory):
    """A FIFO of keys ``[N, D]`` with a write pointer, written only through push/commit."""

    def __init__(self, size: int, dim: int) -> None:
        super().__init__()
        self.register_buffer("keys", F.normalize(torch.randn(size, dim), dim=1))
        self.register_buffer("ptr", torch.zeros((), dtype=torch.long))

    def write(self, keys: torch.Tensor, index: torch.Tensor | None) -> None:
        rows = (self.ptr + torch.arange(len(keys))) % len(self.keys)
        self.keys[rows] = keys
        self.ptr.copy_((self.ptr + len(keys)) % len(self.keys))


class EmaQueueDistiller(Distiller):
    """CE on the student, plus a contrastive term against a queue filled by an EMA copy."""

    num_views = 2
    needs_teacher = False

    def __init__(self, cfg, student: nn.Module, teacher=None) -> None:
        super().__init__(student, None)
        self.slow_student = copy.deepcopy(student).requires_grad_(False)
        dim = student.fc.in_features
        self.queue = ToyQueue(96, dim)

    def ema_pairs(self) -> list[EMAPair]:
        return [EMAPair(self.slow_student, self.student, momentum=0.9, buffers="own")]

    def losses(self, batch: dict) -> dict[str, torch.Tensor]:
        out = self.student(batch["views"][0])
        with torch.no_grad():
            key = F.normalize(self.slow_student(batch["views"][1])["embedding"], dim=1)
        query = F.normalize(out["embedding"], dim=1)
        logits = torch.cat([(query * key).sum(1, keepdim=True), query @ self.queue.keys.t()], 1)
        self.queue.push(key)
        target = torch.zeros(len(query), dtype=torch.long)
        return {
            "loss_cls": F.cross_entropy(out["logits"], batch["label"]),
            "loss_ctr": 0.1 * F.cross_entropy(logits / 0.1, target),
        }


class NaNAfterDistiller(Distiller):
    """Trains normally, then returns a NaN loss from iteration ``NAN_AT`` on."""

    needs_teacher = False
    NAN_AT = 4

    def __init__(self, cfg, student: nn.Module, teacher=None) -> None:
        super().__init__(student, None)
        self.register_buffer("calls", torch.zeros((), dtype=torch.long))

    def losses(self, batch: dict) -> dict[str, torch.Tensor]:
        loss = F.cross_entropy(self.student(batch["views"][0])["logits"], batch["label"])
        self.calls += 1
        if self.calls > self.NAN_AT:
            loss = loss * float("nan")
        return {"loss_cls": loss}


class PhasedDistiller(Distiller):
    """Two pre-training phases, then the main one: ``head`` trains the student's classifier alone
    at a constant lr of 0.5, ``body`` everything else at the constant ``SOLVER.BASE_LR``; each
    phase's CE is scaled differently so their losses tell them apart. Every call records the
    phase and the epoch the step saw (``seen``)."""

    needs_teacher = False
    SCALE = {"head": 1.0, "body": 2.0, "main": 3.0}

    def __init__(self, cfg, student: nn.Module, teacher=None) -> None:
        super().__init__(student, None)
        self.seen: list[tuple[str, int]] = []

    def pretraining_phases(self) -> list[Phase]:
        head = tuple(self.student.fc.parameters())
        body = tuple(p for n, p in self.student.named_parameters() if not n.startswith("fc."))
        return [
            Phase("head", 1, head, base_lr=0.5, constant_lr=True),
            Phase("body", 1, body, constant_lr=True),
        ]

    def losses(self, batch: dict) -> dict[str, torch.Tensor]:
        self.seen.append((self.phase, batch["epoch"]))
        logits = self.student(batch["views"][0])["logits"]
        return {"loss_cls": self.SCALE[self.phase] * F.cross_entropy(logits, batch["label"])}


class NoBatchNormNet(nn.Module):
    """A backbone whose outputs do not depend on the rest of the batch (no BatchNorm), so runs
    that split a batch over processes can be compared with one process."""

    input_size = 32

    def __init__(self, num_classes: int = 100) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 16, 3, stride=2, padding=1)
        self.fc = nn.Linear(16, num_classes)

    def forward(self, x: torch.Tensor) -> dict:
        stage = torch.relu(self.conv(x))
        embedding = stage.mean(dim=(2, 3))
        return {"logits": self.fc(embedding), "embedding": embedding, "stages": [stage]}


def register() -> None:
    toys = (
        ("toy_ema_queue", EmaQueueDistiller),
        ("toy_nan", NaNAfterDistiller),
        ("toy_phased", PhasedDistiller),
    )
    for name, cls in toys:
        if name not in DISTILLER_REGISTRY:
            DISTILLER_REGISTRY.register(name)(cls)
    if "toy_no_bn_net" not in BACKBONE_REGISTRY:
        BACKBONE_REGISTRY.register("toy_no_bn_net")(NoBatchNormNet)
