"""The engine's overhead: a full KD training step against the sum of its raw passes.

The full step is the Trainer's (loader, on-device augmentation, distiller, loss sum, backward,
optimizer, hooks). The raw passes are timed alone, on one fixed batch of augmented images:
teacher forward, student forward + KD loss + backward, optimizer step. The ratio is the price of
everything the engine adds.
"""

import tempfile
import time

import torch
import torch.nn.functional as F

from kdzoo.engine import Trainer

from .training import PAIR, build_trainer, time_steps


def raw_kd_step_seconds(trainer: Trainer, warmup: int, steps: int) -> float:
    """Seconds per step of KD's raw passes alone."""
    distiller, optimizer = trainer.distiller, trainer.optimizer
    batch = next(iter(trainer.data_loader))
    x = trainer.augmentation(batch["image"])[0]
    sync = torch.cuda.synchronize if trainer.device.type == "cuda" else (lambda: None)
    total = 0.0
    for i in range(warmup + steps):
        sync()
        start = time.perf_counter()
        with torch.no_grad():
            teacher_logits = distiller.teacher(x)["logits"]
        optimizer.zero_grad(set_to_none=True)
        student_logits = distiller.student(x)["logits"]
        loss = 0.1 * F.cross_entropy(student_logits, batch["label"])
        loss = loss + 0.9 * distiller.kd_loss(student_logits, teacher_logits)
        loss.backward()
        optimizer.step()
        sync()
        if i >= warmup:
            total += time.perf_counter() - start
    return total / steps


def run(device: torch.device, quick: bool) -> dict:
    warmup, steps = (1, 2) if quick else (3, 15)
    with tempfile.TemporaryDirectory() as workdir:
        trainer = build_trainer("kd", PAIR, workdir)
        # Interleave the two measurements so drifting machine load affects both alike.
        full, raw = [], []
        for _ in range(1 if quick else 3):
            full.append(time_steps(trainer, warmup, steps))
            raw.append(raw_kd_step_seconds(trainer, warmup, steps))
    full_s, raw_s = min(full), min(raw)
    return {
        "pair": list(PAIR),
        "full_step_s": full_s,
        "raw_passes_s": raw_s,
        "ratio": full_s / raw_s,
    }


def table(results: dict) -> tuple[str, list[str], list[list]]:
    rows = [
        ["full engine step", f"{results['full_step_s'] * 1e3:.1f}"],
        ["raw passes alone", f"{results['raw_passes_s'] * 1e3:.1f}"],
        ["ratio", f"{results['ratio']:.3f}"],
    ]
    teacher, student = results["pair"]
    return f"KD step overhead, {teacher} -> {student}, batch 64", ["", "ms / step"], rows
