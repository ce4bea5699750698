"""tools/benchmark.py runs on tiny settings and writes the keys BENCHMARKS.md is built from."""

import json
import subprocess
import sys

import torch
from torch.utils.flop_counter import FlopCounterMode

from kdzoo.benchmarks.roofline import step_flops
from kdzoo.benchmarks.training import build_trainer
from kdzoo_testing import REPO_ROOT


def test_quick_benchmark_writes_json(tmp_path):
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "tools" / "benchmark.py"),
            *("--quick", "--json", str(out), "--pair", "resnet56", "resnet20"),
            *("--opts", "CPU_KEEP_FREED_MEMORY", "False"),
        ],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(out.read_text())
    assert results["data_path"]["ratio"] > 0
    assert results["data_path"]["kdzoo_img_s"] > 0 and results["data_path"]["torchvision_img_s"] > 0
    crd = results["crd"]["cifar100"]  # the run itself checks both implementations agree
    assert crd["N"] == 50_000 and crd["kdzoo_s"] > 0 and crd["reference_peak_mib"] > 0
    assert results["training"]["throughput"]["kd/fp32"] > 0
    assert results["step_overhead"]["ratio"] > 0
    assert results["convolutions"]["ceiling_img_s"] > 0
    assert "KD's convolutions alone" in done.stdout
    assert "CIFAR augmentation" in done.stdout and "CRD criterion" in done.stdout
    training = results["training"]
    assert training["pair"] == ["resnet56", "resnet20"] and "resnet56 -> resnet20" in done.stdout
    assert training["opts"] == ["CPU_KEEP_FREED_MEMORY", "False"]
    assert "with CPU_KEEP_FREED_MEMORY False" in done.stdout
    assert training["peak_gflops"]["fp32"] > 0 and training["peak_gflops"]["bf16"] > 0
    assert training["gflop_per_image"]["kd"] > 0


def test_step_flops_count_every_pass(tmp_path):
    """A KD step computes the teacher's forward and the student's forward and backward."""
    trainer = build_trainer("kd", ("resnet32x4", "resnet8x4"), str(tmp_path))
    x = torch.randn(64, 3, 32, 32)
    forward = {}
    for name in ("teacher", "student"):
        with torch.no_grad(), FlopCounterMode(display=False) as counter:
            getattr(trainer.distiller, name)(x)
        forward[name] = counter.get_total_flops()
    # Backward costs two forwards, less the input gradient of the first convolution.
    upper = forward["teacher"] + 3 * forward["student"]
    assert 0.97 * upper < step_flops(trainer) <= upper
