"""Sweep files: expansion into runs, the shipped CoCoRD ablation grids, and tools/sweep.py."""

import subprocess
import sys
from pathlib import Path

import pytest
import torch

from kdzoo.config import get_cfg
from kdzoo.config.sweep import load_sweep
from kdzoo.modeling import build_backbone
from kdzoo.utils.errors import ConfigError
from kdzoo_testing import REPO_ROOT

SWEEPS = sorted((REPO_ROOT / "sweeps").rglob("*.yaml"))


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.fixture
def base_config(tmp_path):
    return write(
        tmp_path / "base.yaml",
        "DISTILLER:\n  NAME: cocord\nMODEL:\n  STUDENT:\n    NAME: resnet8\n"
        f"  TEACHER:\n    NAME: resnet14\nOUTPUT_DIR: {tmp_path / 'out' / 'base'}\n",
    )


def test_runs_times_grid_times_seeds(tmp_path, base_config):
    path = write(
        tmp_path / "ablation.yaml",
        "config: base.yaml\n"
        "runs:\n  a: {DISTILLER.COCORD.PRED_WEIGHT: 0.0}\n  b: {}\n"
        "grid:\n  DISTILLER.COCORD.TEMPERATURE: [0.07, 0.1]\n",
    )
    sweep = load_sweep(path, seeds=[3, 4])
    assert sweep.name == "ablation" and sweep.config_file == str(base_config)
    assert [run.name for run in sweep.runs] == [
        f"{name},TEMPERATURE={t},SEED={s}" for name in "ab" for t in (0.07, 0.1) for s in (3, 4)
    ]
    first = sweep.runs[0]
    assert first.overrides == (
        ("DISTILLER.COCORD.PRED_WEIGHT", 0.0),
        ("DISTILLER.COCORD.TEMPERATURE", 0.07),
        ("SEED", 3),
    )
    cfg = sweep.run_config(first, ["SOLVER.MAX_ITER", "5"])
    assert cfg.DISTILLER.COCORD.PRED_WEIGHT == 0.0 and cfg.DISTILLER.COCORD.TEMPERATURE == 0.07
    assert cfg.SEED == 3 and cfg.SOLVER.MAX_ITER == 5
    run_dir = tmp_path / "out" / "base" / "ablation" / first.name
    assert Path(cfg.OUTPUT_DIR) == run_dir


def test_command_line_strings_give_the_same_config(tmp_path, base_config):
    """What tools/sweep.py hands train_net.py (strings) must mean what the file says (values)."""
    path = write(
        tmp_path / "s.yaml",
        "config: base.yaml\ngrid:\n  DISTILLER.COCORD.DICTIONARY_ENCODER: [slow_student]\n"
        "  DISTILLER.COCORD.SYMMETRIC_PRED: [false]\n  DISTILLER.COCORD.QUEUE_SIZE: [256]\n"
        "  SOLVER.STEPS: [[3, 4]]\n",
    )
    (run,) = load_sweep(path).runs
    from_values = load_sweep(path).run_config(run)
    from_strings = get_cfg()
    from_strings.merge_from_file(str(base_config))
    from_strings.merge_from_list(run.opts())
    assert all(isinstance(x, str) for x in run.opts())
    for key, _ in run.overrides:
        section, *rest = key.split(".")
        a, b = from_values[section], from_strings[section]
        for part in rest:
            a, b = a[part], b[part]
        assert a == b, key
    assert from_strings.SOLVER.STEPS == (3, 4)


@pytest.mark.parametrize(
    "text, message",
    [
        ("grid:\n  SEED: [1]\n", "a sweep file needs a 'config' key"),
        ("- a list\n", "a sweep file must be a mapping"),
        ("config: base.yaml\nseeds: [1]\n", r"unknown sweep keys \['seeds'\]"),
        ("config: base.yaml\ngrid:\n  SEED: []\n", "non-empty lists"),
        ("config: base.yaml\nruns:\n  a: 1\n", "run names to"),
    ],
)
def test_malformed_sweep_files(tmp_path, base_config, text, message):
    with pytest.raises(ConfigError, match=message):
        load_sweep(write(tmp_path / "bad.yaml", text))


def test_unknown_key_names_the_run(tmp_path, base_config):
    sweep = load_sweep(
        write(tmp_path / "s.yaml", "config: base.yaml\nruns:\n  typo: {SOLVER.BASE_RL: 0.1}\n")
    )
    with pytest.raises(ConfigError, match="sweep s, run typo: .*unknown config key SOLVER.BASE_RL"):
        sweep.run_config(sweep.runs[0])


def test_missing_sweep_file(tmp_path):
    with pytest.raises(ConfigError, match="sweep file not found"):
        load_sweep(tmp_path / "nope.yaml")


@pytest.mark.parametrize("path", SWEEPS, ids=lambda p: p.stem)
def test_shipped_sweeps_expand_to_loadable_configs(path):
    sweep = load_sweep(path)
    names = [run.name for run in sweep.runs]
    assert len(set(names)) == len(names) > 1
    for run in sweep.runs:
        cfg = sweep.run_config(run)
        assert cfg.DISTILLER.NAME == "cocord"
        for key, value in run.overrides:
            node = cfg
            for part in key.split("."):
                node = node[part]
            assert node == value


def test_paper_grid_sizes():
    sizes = {p.stem: len(load_sweep(p).runs) for p in SWEEPS}
    assert sizes["momenta"] == 25  # m_c x m_r in {0, 0.9, 0.99, 0.999, 1}
    assert sizes["encoders"] == 6  # {teacher, slow student} x {slow student, teacher, none}
    assert sizes["loss_weights"] == 7  # every on/off combination of 3 weights but all-off


def test_sweep_tool_runs_resumes_and_skips(tmp_path):
    """Two tiny synthetic runs through tools/sweep.py; a second call skips both."""
    config = write(
        tmp_path / "tiny.yaml",
        "MODEL:\n  STUDENT:\n    NAME: resnet8\n  NUM_CLASSES: 10\nDISTILLER:\n  NAME: vanilla\n"
        "DATASETS:\n  NAME: synthetic\n  SYNTHETIC_SIZES: (64, 32)\n"
        "SOLVER:\n  IMS_PER_BATCH: 16\n  MAX_ITER: 2\n  CHECKPOINT_PERIOD: 0\n"
        f"TEST:\n  EVAL_PERIOD: 2\nOUTPUT_DIR: {tmp_path / 'out'}\n",
    )
    sweep = write(
        tmp_path / "lr.yaml", f"config: {config.name}\ngrid:\n  SOLVER.BASE_LR: [0.1, 0.01]\n"
    )
    command = [sys.executable, str(REPO_ROOT / "tools" / "sweep.py"), str(sweep), "LOG_PERIOD", "1"]
    first = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert first.returncode == 0, first.stderr
    for lr in (0.1, 0.01):
        run_dir = tmp_path / "out" / "lr" / f"BASE_LR={lr}"
        assert (run_dir / "model_final.pth").is_file()
        assert f"BASE_LR: {lr}" in (run_dir / "config.yaml").read_text()
    second = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0 and second.stdout.count("finished before, skipped") == 2


def test_sweep_tool_checks_every_run_before_starting(tmp_path, base_config):
    sweep = write(
        tmp_path / "s.yaml",
        "config: base.yaml\nruns:\n  fine: {}\n  typo: {DISTILLER.COCORD.TAU: 0.1}\n",
    )
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "tools" / "sweep.py"), str(sweep)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "kdzoo: error: sweep s, run typo: command line: unknown config key DISTILLER.COCORD.TAU; "
        "did you mean DISTILLER.COCORD.TEMPERATURE, DISTILLER.COCORD.DICTIONARY?"
    ]
    assert not (tmp_path / "out").exists()


def test_dry_run_checks_the_weight_files_of_every_run(tmp_path, base_config):
    teacher = tmp_path / "teacher.pth"
    torch.save(build_backbone("resnet14").state_dict(), teacher)
    sweep = write(
        tmp_path / "s.yaml",
        f"config: base.yaml\nruns:\n  fine: {{MODEL.TEACHER.WEIGHTS: {teacher}}}\n"
        f"  gone: {{MODEL.TEACHER.WEIGHTS: {tmp_path / 'gone.pth'}}}\n",
    )
    result = subprocess.run(
        [sys.executable, str(REPO_ROOT / "tools" / "sweep.py"), str(sweep), "--dry-run"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        .splitlines()[-1]
        .startswith(
            f"kdzoo: error: sweep s, run gone: checkpoint file not found: {tmp_path / 'gone.pth'}; "
            "it is the teacher (MODEL.TEACHER.WEIGHTS)"
        )
    )
    assert "[sweep]" not in result.stdout  # nothing was started or printed as planned
