"""kdzoo built as a wheel and installed outside the checkout carries its configs, its model zoo and
its two commands: ``kdzoo-train --config <name>`` trains from any folder.

The wheel is built (offline, with the setuptools already installed) from a copy of the files
setup.py packages, so that the shared checkout gets no ``build/`` folder, and installed with
``pip install --target``; the commands then run with only that folder on ``PYTHONPATH`` (torch
and the other dependencies still come from this environment), from a folder that is not the
checkout.
"""

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

from kdzoo import model_zoo
from kdzoo_testing import REPO_ROOT

# What setup.py needs to build the wheel (MANIFEST.in lists the same for an sdist).
SOURCES = ("setup.py", "pyproject.toml", "MANIFEST.in", "kdzoo", "configs", "model_zoo")


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    """The folder the wheel was installed into (``pip install --target``)."""
    pytest.importorskip("setuptools")
    tmp = tmp_path_factory.mktemp("wheel")
    src = tmp / "src"
    src.mkdir()
    for name in SOURCES:
        if (REPO_ROOT / name).is_dir():
            ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
            shutil.copytree(REPO_ROOT / name, src / name, ignore=ignore)
        else:
            shutil.copy2(REPO_ROOT / name, src / name)
    dist, site = tmp / "dist", tmp / "site"
    pip("wheel", "--no-deps", "--no-build-isolation", "-w", dist, src)
    pip("install", "--no-deps", "--target", site, *dist.glob("kdzoo-*.whl"))
    return site


def pip(*args) -> None:
    """``pip ARGS``, offline."""
    command = [sys.executable, "-m", "pip", "--disable-pip-version-check", "--no-input", "-q"]
    done = subprocess.run(
        [*command, *map(str, args), "--no-index"], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-3000:]


def run_outside(site: Path, cwd: Path, argv: list[str]) -> subprocess.CompletedProcess:
    """``argv`` run in ``cwd`` with only the installed wheel (and this environment) importable."""
    env = {**os.environ, "PYTHONPATH": str(site), "OMP_NUM_THREADS": "1"}
    return subprocess.run(
        [str(a) for a in argv], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )


def test_the_wheel_carries_configs_model_zoo_and_commands(installed, tmp_path):
    manifest = json.loads((REPO_ROOT / "model_zoo" / "manifest.json").read_text())
    checks = f"""
        import hashlib, importlib.metadata, json, pathlib
        import kdzoo
        from kdzoo import model_zoo
        site = pathlib.Path({str(installed)!r}).resolve()
        assert pathlib.Path(kdzoo.__file__).resolve().is_relative_to(site), kdzoo.__file__
        scripts = [
            e
            for e in importlib.metadata.distribution("kdzoo").entry_points
            if e.group == "console_scripts"
        ]
        assert all(callable(e.load()) for e in scripts)
        commands = {{e.name: e.value for e in scripts}}
        cfg = model_zoo.get_config("cifar100/kd/resnet56_resnet20.yaml")
        print(json.dumps({{
            "commands": commands,
            "configs": model_zoo.list_configs(),
            "config_file": model_zoo.get_config_file("configs/digits/kd/resnet32_resnet8.yaml"),
            "kd": [cfg.DISTILLER.NAME, cfg.MODEL.NUM_CLASSES, cfg.MODEL.TEACHER.NAME],
            "models": model_zoo.list_models(),
            "teacher_config": model_zoo.get_config_file("digits/resnet32_vanilla"),
            "checkpoints": {{
                name: hashlib.sha256(
                    pathlib.Path(model_zoo.get_checkpoint_url(name)).read_bytes()
                ).hexdigest()
                for name in model_zoo.list_models()
            }},
        }}))
    """
    done = run_outside(installed, tmp_path, [sys.executable, "-c", textwrap.dedent(checks)])
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout)
    package = installed / "kdzoo" / "model_zoo"
    assert found["commands"] == {
        "kdzoo-train": "kdzoo.engine:main",
        "kdzoo-export": "kdzoo.checkpoint.export:main",
    }
    assert found["configs"] == model_zoo.list_configs()  # every config of the checkout
    assert Path(found["config_file"]) == package / "configs/digits/kd/resnet32_resnet8.yaml"
    assert found["kd"] == ["kd", 100, "resnet56"]  # _BASE_ resolved inside the package
    assert Path(found["teacher_config"]) == package / "configs/digits/vanilla/resnet32.yaml"
    assert found["models"] == model_zoo.list_models()
    assert found["checkpoints"] == {e["name"]: e["sha256"] for e in manifest["models"]}
    assert (package / "manifest.json").read_bytes() == (
        REPO_ROOT / "model_zoo" / "manifest.json"
    ).read_bytes()


def test_kdzoo_train_trains_from_a_config_name_outside_the_checkout(installed, tmp_path):
    pytest.importorskip("sklearn")  # the digits ship with scikit-learn
    done = run_outside(
        installed,
        tmp_path,
        [
            installed / "bin" / "kdzoo-train",
            "--config",
            "digits/vanilla/resnet8.yaml",
            "SOLVER.MAX_ITER",
            "1",
            "DATALOADER.NUM_WORKERS",
            "0",
            "OUTPUT_DIR",
            "run",
        ],
    )
    assert done.returncode == 0, done.stderr[-3000:]
    run = tmp_path / "run"
    assert (run / "model_final.pth").is_file()
    assert '"test/top1"' in (run / "metrics.json").read_text()
    assert (
        yaml.safe_load((run / "config.yaml").read_text())["MODEL"]["STUDENT"]["NAME"] == "resnet8"
    )
