"""The README's promises: its extension example runs as written, and the quickstart works."""

import os
import re
import runpy
import subprocess
import sys

import numpy as np
import pytest
import yaml

from kdzoo.checkpoint import load_file
from kdzoo.data import DATASET_REGISTRY
from kdzoo.engine import default_argument_parser, run
from kdzoo_testing import REPO_ROOT, tiny_run_opts

README = (REPO_ROOT / "README.md").read_text()


def code_block(first_line: str) -> str:
    """The README code block whose first line is ``first_line``."""
    for block in re.findall(r"```(?:python|yaml)\n(.*?)```", README, flags=re.S):
        if block.splitlines()[0] == first_line:
            return block
    raise AssertionError(f"README has no code block starting with {first_line!r}")


def test_extension_example_trains_from_its_config(tmp_path):
    pytest.importorskip("sklearn")
    project = tmp_path / "repo"
    (project / "my_project").mkdir(parents=True)
    for name in ("configs", "model_zoo"):
        os.symlink(REPO_ROOT / name, project / name)
    (project / "my_project" / "train.py").write_text(code_block("# my_project/train.py"))
    (project / "my_project" / "feature_mse.yaml").write_text(
        code_block("# my_project/feature_mse.yaml")
    )
    result = subprocess.run(
        [
            sys.executable,
            "my_project/train.py",
            "--config",
            "my_project/feature_mse.yaml",
            "SOLVER.MAX_ITER",
            "3",
            "LOG_PERIOD",
            "1",
        ],
        cwd=project,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = (project / "output" / "feature_mse" / "metrics.json").read_text()
    assert '"loss_feat"' in metrics and '"test/top1"' in metrics
    config = (project / "output" / "feature_mse" / "config.yaml").read_text()
    assert "WEIGHT: 2.0" in config and "TinyConvNet" in config


def test_trainer_subclass_example_trains_with_adamw(tmp_path, cifar100_slice, random_teacher):
    script = tmp_path / "train_adamw.py"
    script.write_text(code_block("# my_project/train_adamw.py"))
    trainer_class = runpy.run_path(str(script))["AdamWTrainer"]
    out = tmp_path / "run"
    opts = tiny_run_opts(cifar100_slice, out, **{"SOLVER.MAX_ITER": 2})
    run(default_argument_parser().parse_args(opts), trainer_class)
    state = load_file(str(out / "model_final.pth"))["optimizer"]["state"]
    assert state and all("exp_avg" in s and "momentum_buffer" not in s for s in state.values())


def test_dataset_example_trains(tmp_path):
    script = tmp_path / "my_dataset.py"
    script.write_text(code_block("# my_project/my_dataset.py"))
    runpy.run_path(str(script))  # registers "my_npz"
    rng = np.random.default_rng(0)
    arrays = {
        f"{x}_{split}": rng.integers(0, 256, (n, 32, 32, 3), dtype=np.uint8)
        if x == "x"
        else rng.integers(0, 10, n)
        for split, n in (("train", 64), ("test", 20))
        for x in "xy"
    }
    np.savez(tmp_path / "my_data.npz", **arrays)
    try:
        opts = tiny_run_opts(
            tmp_path,
            tmp_path / "run",
            **{"DATASETS.NAME": "my_npz", "MODEL.NUM_CLASSES": 10, "SOLVER.MAX_ITER": 2},
        )
        results = run(default_argument_parser().parse_args(opts))
        assert results is None  # trained
        assert '"test/top1"' in (tmp_path / "run" / "metrics.json").read_text()
    finally:
        DATASET_REGISTRY._obj_map.pop("my_npz")


def test_quickstart_prints_the_three_accuracies():
    pytest.importorskip("sklearn")
    result = subprocess.run(
        [sys.executable, "tools/quickstart.py"],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    rows = re.findall(r"^\| (teacher|student)[^|]*\|\s+([0-9.]+) \|$", result.stdout, flags=re.M)
    assert len(rows) == 3, result.stdout[-2000:]
    teacher_top1 = float(rows[0][1])
    assert teacher_top1 > 99.0  # the model_zoo teacher, as recorded in its metrics.json
    assert all(50.0 < float(top1) <= 100.0 for _, top1 in rows)  # the students learned


def test_sweep_example_is_the_shipped_sweep_file():
    shipped = REPO_ROOT / "sweeps" / "cifar100" / "cocord" / "momenta.yaml"
    assert yaml.safe_load(code_block(f"# {shipped.relative_to(REPO_ROOT)}")) == yaml.safe_load(
        shipped.read_text()
    )
