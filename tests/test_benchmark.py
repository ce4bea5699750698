"""tools/benchmark.py runs on tiny settings and writes the keys BENCHMARKS.md is built from."""

import json
import subprocess
import sys

from conftest import REPO_ROOT


def test_quick_benchmark_writes_json(tmp_path):
    out = tmp_path / "bench.json"
    done = subprocess.run(
        [sys.executable, str(REPO_ROOT / "tools" / "benchmark.py"), "--quick", "--json", str(out)],
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
    assert "CIFAR augmentation" in done.stdout and "CRD criterion" in done.stdout
