"""Training throughput of each distiller, and the engine's overhead over the raw passes.

Every run is a real :class:`~kdzoo.engine.Trainer` built from the method's CIFAR-100 config for the
pair (random weights, the ``synthetic`` dataset of 50,000 random 32x32 images, batch 64), stepping
through the whole engine: loader, on-device augmentation, distiller, backward, optimizer, and the
hooks (EMA, queue, lr, writers). Images/s is measured after warm-up steps.

The overhead section times KD's raw passes alone on the same tensors (teacher forward, student
forward + loss + backward, optimizer step) and compares their sum with the engine's full step.
"""

import os
import tempfile
import time

import torch
import torch.nn.functional as F

from kdzoo.config import get_cfg
from kdzoo.distillers import DISTILLER_REGISTRY
from kdzoo.engine import Trainer
from kdzoo.modeling import build_backbone
from kdzoo.utils.events import EventStorage

REPO_ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PAIR = ("resnet32x4", "resnet8x4")
METHODS = ("vanilla", "kd", "crd", "cocord", "wcord")
_NEVER = 10**9  # periods that must not fire during a measurement


def build_trainer(
    method: str, pair: tuple[str, str], workdir: str, amp: bool = False, channels_last: bool = False
) -> Trainer:
    """A Trainer for ``method`` on ``pair`` with random weights and synthetic data."""
    teacher, student = pair
    cfg = get_cfg()
    name = f"{student}.yaml" if method == "vanilla" else f"{teacher}_{student}.yaml"
    cfg.merge_from_file(os.path.join(REPO_ROOT, "configs", "cifar100", method, name))
    teacher_file = os.path.join(workdir, f"{teacher}.pth")
    if not os.path.exists(teacher_file):
        torch.save(build_backbone(teacher).state_dict(), teacher_file)
    overrides = {
        "DATASETS.NAME": "synthetic",
        "MODEL.TEACHER.NAME": teacher,
        "MODEL.TEACHER.WEIGHTS": teacher_file,
        "SOLVER.MAX_ITER": _NEVER,
        "SOLVER.CHECKPOINT_PERIOD": 0,
        "TEST.EVAL_PERIOD": _NEVER,
        "LOG_PERIOD": _NEVER,
        "SOLVER.AMP.ENABLED": amp,
        "MODEL.CHANNELS_LAST": channels_last,
        "OUTPUT_DIR": os.path.join(workdir, f"{method}-{amp}-{channels_last}"),
    }
    cfg.merge_from_list([item for kv in overrides.items() for item in kv])
    os.makedirs(cfg.OUTPUT_DIR)
    return Trainer(cfg)


def time_steps(trainer: Trainer, warmup: int, steps: int) -> float:
    """Seconds per full engine step (hooks included), after ``warmup`` steps."""
    with EventStorage(0) as trainer.storage:
        trainer.before_train()
        for i in range(warmup + steps):
            if i == warmup:
                start = time.perf_counter()
            trainer.iter = trainer.storage.iter = i
            trainer.before_step()
            trainer.run_step()
            trainer.after_step()
        if trainer.device.type == "cuda":
            torch.cuda.synchronize()
        return (time.perf_counter() - start) / steps


def raw_kd_step_seconds(trainer: Trainer, warmup: int, steps: int) -> float:
    """Sum of KD's raw passes timed alone on one fixed batch of views: teacher forward, student
    forward + loss + backward, optimizer step."""
    distiller, optimizer = trainer.distiller, trainer.optimizer
    batch = next(iter(trainer.data_loader))
    x = trainer.augmentation(batch["image"])[0]
    sync = torch.cuda.synchronize if trainer.device.type == "cuda" else (lambda: None)
    totals = {"teacher": 0.0, "student": 0.0, "optimizer": 0.0}
    for i in range(warmup + steps):
        marks = [time.perf_counter()]
        with torch.no_grad():
            logits_t = distiller.teacher(x)["logits"]
        sync()
        marks.append(time.perf_counter())
        optimizer.zero_grad(set_to_none=True)
        logits_s = distiller.student(x)["logits"]
        loss = 0.1 * F.cross_entropy(logits_s, batch["label"]) + 0.9 * distiller.kd_loss(
            logits_s, logits_t
        )
        loss.backward()
        sync()
        marks.append(time.perf_counter())
        optimizer.step()
        sync()
        marks.append(time.perf_counter())
        if i >= warmup:
            for key, a, b in zip(totals, marks, marks[1:], strict=False):
                totals[key] += b - a
    return sum(totals.values()) / steps


def run(device: torch.device, quick: bool) -> dict:
    warmup, steps = (1, 2) if quick else (3, 10)
    methods = [m for m in METHODS if m in DISTILLER_REGISTRY]
    variants = (
        [(False, False)] if quick else [(False, False), (True, False), (False, True), (True, True)]
    )
    if quick:
        methods = ["kd"]
    results = {"pair": list(PAIR), "throughput": {}}
    with tempfile.TemporaryDirectory() as workdir:
        for method in methods:
            for amp, channels_last in variants:
                trainer = build_trainer(method, PAIR, workdir, amp, channels_last)
                seconds = time_steps(trainer, warmup, steps)
                key = f"{method}/{'bf16' if amp else 'fp32'}" + ("/channels_last" * channels_last)
                results["throughput"][key] = 64 / seconds
                if method == "kd" and not amp and not channels_last:
                    raw = raw_kd_step_seconds(trainer, warmup, steps)
                    results["step_overhead"] = {
                        "full_step_s": seconds,
                        "raw_passes_s": raw,
                        "ratio": seconds / raw,
                    }
                del trainer
    return results


def table(results: dict) -> tuple[str, list[str], list[list]]:
    rows = [[key, f"{rate:.1f}"] for key, rate in results["throughput"].items()]
    overhead = results.get("step_overhead")
    if overhead:
        rows.append(["kd full step / raw passes", f"{overhead['ratio']:.3f}"])
    teacher, student = results["pair"]
    return (
        f"Training throughput, {teacher} -> {student}, batch 64, full engine step",
        ["method/precision", "images/s"],
        rows,
    )
