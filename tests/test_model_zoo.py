"""kdzoo.model_zoo: the manifest names real configs and checkpoints, with the right sha256."""

import hashlib
import json
from pathlib import Path

import pytest

from kdzoo import model_zoo
from kdzoo.checkpoint import load_backbone_weights
from kdzoo.modeling import build_backbone
from kdzoo.reports import summarize_run
from kdzoo.utils.errors import KdzooError
from kdzoo_testing import REPO_ROOT

DIGITS = "digits/resnet32_vanilla"


@pytest.fixture(scope="module")
def manifest() -> dict[str, dict]:
    entries = json.loads((REPO_ROOT / "model_zoo" / "manifest.json").read_text())["models"]
    return {entry["name"]: entry for entry in entries}


def test_lists_the_digits_teacher(manifest):
    assert DIGITS in model_zoo.list_models()
    assert model_zoo.list_models() == sorted(manifest)


def test_config_file_is_the_absolute_path_in_the_checkout():
    path = Path(model_zoo.get_config_file(DIGITS))
    assert path.is_absolute() and path.is_file()
    assert path == REPO_ROOT / "configs" / "digits" / "vanilla" / "resnet32.yaml"


def test_get_config_merges_the_file_and_its_base():
    cfg = model_zoo.get_config(DIGITS)
    assert cfg.MODEL.STUDENT.NAME == "resnet32"  # from the file
    assert cfg.SOLVER.MAX_EPOCHS == 60
    assert cfg.DATASETS.NAME == "digits" and cfg.MODEL.NUM_CLASSES == 10  # from its _BASE_
    cfg.SOLVER.MAX_ITER = 5  # not frozen: callers override keys


def test_checkpoints_match_their_sha256_and_load(manifest):
    for name, entry in manifest.items():
        path = Path(model_zoo.get_checkpoint_url(name))
        assert path.is_absolute()
        assert hashlib.sha256(path.read_bytes()).hexdigest() == entry["sha256"], name
        cfg = model_zoo.get_config(name)
        load_backbone_weights(build_backbone(cfg.MODEL.STUDENT.NAME, cfg.MODEL.NUM_CLASSES), path)


def test_measured_top1_is_the_runs_last_evaluation(manifest):
    for name, entry in manifest.items():
        run_dir = Path(model_zoo.get_checkpoint_url(name)).parent
        assert entry["top1"] == round(summarize_run(run_dir)["last_top1"], 2), name


def test_every_entry_is_complete(manifest):
    for name, entry in manifest.items():
        assert {"config", "checkpoint", "sha256", "top1", "paper_top1"} <= set(entry), name
        assert Path(model_zoo.get_config_file(name)).is_file()


@pytest.mark.parametrize(
    "function", [model_zoo.get_config_file, model_zoo.get_config, model_zoo.get_checkpoint_url]
)
def test_unknown_names_raise(function):
    with pytest.raises(KdzooError, match="unknown model zoo name 'cifar100/nope'.*digits"):
        function("cifar100/nope")
