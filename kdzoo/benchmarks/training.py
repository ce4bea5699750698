"""Training throughput of each distiller through the whole engine.

Every run is a real :class:`~kdzoo.engine.Trainer` built from the method's CIFAR-100 config for the
pair (random weights, the ``synthetic`` dataset of 50,000 random 32x32 images, batch 64), stepping
through the whole engine: loader, on-device augmentation, distiller, backward, optimizer, and the
hooks (EMA, memory commits, lr, writers). Images/s is measured after warm-up steps, and set
against the compute roof of each method's step (:mod:`.roofline`): the FLOPs it makes per image
and the machine's peak rate in fp32 and bf16.
"""

import os
import statistics
import tempfile
import time

import torch

from kdzoo.config import get_cfg
from kdzoo.engine import Trainer
from kdzoo.model_zoo import get_config_file
from kdzoo.modeling import build_backbone
from kdzoo.utils.events import EventStorage

from .roofline import peak_gflops, step_flops

PAIR = ("resnet32x4", "resnet8x4")
METHODS = ("vanilla", "kd", "crd", "cocord", "wcord")
#: The baseline zoo (RepDistiller's and mdistiller's methods): ``--methods`` takes them; the
#: default run keeps to the methods above, which it has timed since the first benchmark. A
#: method with a pre-training phase is timed in its main phase.
BASELINES = (
    *("at", "sp", "pkt", "rkd", "nst", "fitnet", "cc", "vid", "kdsvd"),
    *("dkd", "reviewkd", "fsp", "ofd", "ab", "ft"),
)
LAYOUTS = ("nchw", "channels_last")
_NEVER = 10**9  # periods that must not fire during a measurement


def build_trainer(
    method: str,
    pair: tuple[str, str],
    workdir: str,
    amp: bool = False,
    channels_last: bool = False,
    opts: tuple[str, ...] = (),
) -> Trainer:
    """A Trainer for ``method`` on ``pair`` with random weights and synthetic data; ``opts``:
    further ``KEY VALUE`` config overrides."""
    teacher, student = pair
    cfg = get_cfg()
    name = f"{student}.yaml" if method == "vanilla" else f"{teacher}_{student}.yaml"
    cfg.merge_from_file(get_config_file(f"cifar100/{method}/{name}"))
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
        "OUTPUT_DIR": tempfile.mkdtemp(prefix=f"{method}-", dir=workdir),
    }
    # Time the main phase, most of a run (RepDistiller: 240 of 270 epochs): no pre-training.
    if "INIT_EPOCHS" in cfg.DISTILLER.get(method.upper(), {}):
        overrides[f"DISTILLER.{method.upper()}.INIT_EPOCHS"] = 0
    cfg.merge_from_list([*(item for kv in overrides.items() for item in kv), *opts])
    return Trainer(cfg)


def time_steps(trainer: Trainer, warmup: int, steps: int) -> float:
    """Seconds per full engine step (hooks included), after ``warmup`` steps."""
    trainer.storage = EventStorage(0)
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


def run(
    device: torch.device,
    quick: bool,
    pair: tuple[str, str] = PAIR,
    methods: tuple[str, ...] = METHODS,
    repeat: int = 1,
    layouts: tuple[str, ...] = LAYOUTS,
    opts: tuple[str, ...] = (),
) -> dict:
    """Images/s of each of ``methods`` on ``pair`` (teacher, student) in fp32 and bf16, in each
    memory layout of ``layouts`` (``quick``: KD in fp32, NCHW only, few steps). With ``repeat``
    > 1 each rate is the median of that many timings of the same trainer, all kept in
    ``throughput_runs``: a shared machine's rate can drift by 10-25% from one minute to the
    next. ``opts``: ``KEY VALUE`` config overrides for every trainer (the process-wide CPU
    settings among them are applied once, by ``tools/benchmark.py``)."""
    warmup, steps = (1, 2) if quick else (3, 10)
    variants = [(amp, layout == "channels_last") for layout in layouts for amp in (False, True)]
    if quick:
        methods, variants = ["kd"], [(False, False)]
    results = {
        "pair": list(pair),
        "opts": list(opts),
        "throughput": {},
        "throughput_runs": {},
        "peak_gflops": {
            "fp32": peak_gflops(device, torch.float32),
            "bf16": peak_gflops(device, torch.bfloat16),
        },
        "gflop_per_image": {},
    }
    with tempfile.TemporaryDirectory() as workdir:
        for method in methods:
            counted = build_trainer(method, pair, workdir, opts=opts)
            results["gflop_per_image"][method] = step_flops(counted) / 64 / 1e9
            del counted
            for amp, channels_last in variants:
                trainer = build_trainer(method, pair, workdir, amp, channels_last, opts)
                rates = [64 / time_steps(trainer, warmup, steps) for _ in range(repeat)]
                key = f"{method}/{'bf16' if amp else 'fp32'}" + ("/channels_last" * channels_last)
                results["throughput"][key] = statistics.median(rates)
                results["throughput_runs"][key] = rates
                del trainer
    return results


def compute_bound(results: dict, key: str) -> float:
    """The images/s of ``key`` ("method/precision[/channels_last]") at the machine's peak."""
    method, precision = key.split("/")[:2]
    return results["peak_gflops"][precision] / results["gflop_per_image"][method]


def table(results: dict) -> tuple[str, list[str], list[list]]:
    rows = []
    for key, rate in results["throughput"].items():
        bound = compute_bound(results, key)
        gflop = results["gflop_per_image"][key.split("/")[0]]
        runs = results.get("throughput_runs", {}).get(key, [rate])  # older files: one timing
        spread = f"{min(runs):.1f}-{max(runs):.1f}"
        rows.append(
            [key, f"{rate:.1f}", spread, f"{gflop:.2f}", f"{bound:.1f}", f"{rate / bound:.0%}"]
        )
    teacher, student = results["pair"]
    peaks = ", ".join(f"{k} {v:.0f}" for k, v in results["peak_gflops"].items())
    opts = " ".join(results.get("opts", []))  # older files: none
    return (
        f"Training throughput, {teacher} -> {student}, batch 64, full engine step "
        f"(peak GFLOP/s: {peaks})" + (f", with {opts}" if opts else ""),
        ["method/precision", "images/s", "range", "GFLOP/image", "compute bound", "of bound"],
        rows,
    )
