"""kdzoo.model_zoo: the manifest names real configs and checkpoints, with the right sha256;
configs are found by name, here and by ``--config`` (tests/test_wheel.py: from a wheel)."""

import hashlib
import json
from pathlib import Path

import pytest
import torch

from kdzoo import model_zoo
from kdzoo.checkpoint import load_backbone_weights
from kdzoo.engine import default_argument_parser, setup_cfg
from kdzoo.modeling import build_backbone
from kdzoo.reports import summarize_run
from kdzoo.utils.errors import ConfigError, KdzooError
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


KD = "cifar100/kd/resnet56_resnet20.yaml"


def test_configs_are_found_by_their_path_under_configs():
    expected = REPO_ROOT / "configs" / "cifar100" / "kd" / "resnet56_resnet20.yaml"
    assert Path(model_zoo.get_config_file(KD)) == expected
    assert Path(model_zoo.get_config_file("configs/" + KD)) == expected  # the README's paths
    configs = REPO_ROOT / "configs"
    assert model_zoo.list_configs() == sorted(
        p.relative_to(configs).as_posix() for p in configs.rglob("*.yaml")
    )
    assert "Base-CIFAR100.yaml" in model_zoo.list_configs()


def test_get_config_by_config_name_resolves_its_bases():
    cfg = model_zoo.get_config(KD)
    assert cfg.DISTILLER.NAME == "kd" and cfg.MODEL.TEACHER.NAME == "resnet56"  # the file
    assert cfg.DATASETS.NAME == "cifar100" and cfg.MODEL.NUM_CLASSES == 100  # its _BASE_
    cfg.SOLVER.MAX_ITER = 5  # not frozen
    # A list of _BASE_ files, relative to the file, one of them in another folder.
    short = model_zoo.get_config("cifar100/short_schedule/kd_resnet20.yaml")
    assert short.DISTILLER.NAME == "kd" and short.SOLVER.LR_SCHEDULER_NAME == "cosine"


def _flat(node, prefix=""):
    """A config as ``{"A.B.C": value}``."""
    out = {}
    for key, value in node.items():
        if isinstance(value, dict):
            out.update(_flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


SHORT_STUDENTS = [
    n
    for n in model_zoo.list_configs()
    if n.startswith("cifar100/short_schedule/") and n.endswith("_resnet20.yaml")
]


@pytest.mark.parametrize("name", SHORT_STUDENTS)
def test_short_schedule_students_share_one_budget(name):
    # Every method's short-schedule run is its shipped config with the same schedule changes and
    # the same teacher, so the rows of MODEL_ZOO.md's table compare methods and nothing else.
    method = name.removeprefix("cifar100/short_schedule/").removesuffix("_resnet20.yaml")
    shipped = (
        "cifar100/vanilla/resnet20.yaml"
        if method == "vanilla"
        else f"cifar100/{method}/resnet56_resnet20.yaml"
    )
    short, full = _flat(model_zoo.get_config(name)), _flat(model_zoo.get_config(shipped))
    changed = {k for k in short if short[k] != full[k]}
    schedule = {
        "SOLVER.LR_SCHEDULER_NAME",
        "SOLVER.CHECKPOINT_PERIOD",
        "SOLVER.AMP.ENABLED",
        "SOLVER.AMP.DTYPE",
        "SOLVER.MAX_EPOCHS",
        "LOG_PERIOD",
        "OUTPUT_DIR",
        "MODEL.TEACHER.WEIGHTS",
        # Epoch counts, scaled with the schedule: warm-ups, and pre-training phases, which count
        # in the five epochs.
        "DISTILLER.DKD.WARMUP",
        "DISTILLER.REVIEWKD.WARMUP",
        "DISTILLER.FSP.INIT_EPOCHS",
        "DISTILLER.AB.INIT_EPOCHS",
        "DISTILLER.FT.INIT_EPOCHS",
    }
    assert changed <= schedule, changed - schedule
    pretraining = short.get(f"DISTILLER.{method.upper()}.INIT_EPOCHS", 0)
    assert short["SOLVER.MAX_EPOCHS"] + pretraining == 5
    assert short["SOLVER.LR_SCHEDULER_NAME"] == "cosine"
    if method != "vanilla":
        assert (
            short["MODEL.TEACHER.WEIGHTS"]
            == "output/cifar100/short_schedule/resnet56/model_final.pth"
        )


def test_short_schedule_covers_every_cifar100_method():
    configs = model_zoo.list_configs()
    methods = {n.split("/")[1] for n in configs if n.startswith("cifar100/") and n.count("/") == 2}
    # Not on the short schedule (yet): the +KD variants and WCoRD.
    methods -= {"short_schedule", "vanilla", "crd_kd", "cocord_kd", "wcord_kd", "wcord"}
    covered = {n.split("/")[2].removesuffix("_resnet20.yaml") for n in SHORT_STUDENTS}
    assert methods <= covered, methods - covered
    # The script that reproduces the table runs every one of them.
    script = Path(__file__).parents[1] / "model_zoo" / "cifar100" / "short_schedule" / "run.sh"
    loop = next(line for line in script.read_text().splitlines() if "for method in" in line)
    assert set(loop.split(" in ")[1].split(";")[0].split()) == covered


@pytest.mark.parametrize(
    "name, needle",
    [
        (
            "cifar100/kd/resnet56_resnet2.yaml",
            "unknown model zoo config 'cifar100/kd/resnet56_resnet2.yaml' (close matches: "
            "cifar100/kd/resnet56_resnet20.yaml",
        ),
        (  # without .yaml it is read as a model, and the config is suggested
            "cifar100/kd/resnet56_resnet20",
            "unknown model zoo name 'cifar100/kd/resnet56_resnet20' (close matches: "
            "cifar100/kd/resnet56_resnet20.yaml",
        ),
        ("nothing/like/it.yaml", "kdzoo.model_zoo.list_configs() lists the"),
        ("../configs/Base-Digits.yaml", "unknown model zoo config '../configs/Base-Digits.yaml'"),
        (str(REPO_ROOT / "configs" / KD), "unknown model zoo config '/"),
    ],
)
def test_unknown_config_names_are_one_line_with_close_matches(name, needle):
    with pytest.raises(KdzooError) as error:
        model_zoo.get_config_file(name)
    assert needle in str(error.value) and "\n" not in str(error.value)


def _setup(*argv: str):
    return setup_cfg(default_argument_parser().parse_args(list(argv)))


def test_config_flag_takes_a_model_zoo_name_where_no_such_file_exists(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    cfg = _setup("--config", "digits/vanilla/resnet8.yaml", "SOLVER.MAX_ITER", "1")
    assert cfg.MODEL.STUDENT.NAME == "resnet8" and cfg.DATASETS.NAME == "digits"
    assert _setup("--config", "configs/" + KD).DISTILLER.NAME == "kd"
    assert _setup("--config", DIGITS).MODEL.STUDENT.NAME == "resnet32"  # a model's config
    # A file of that name wins.
    (tmp_path / "digits" / "vanilla").mkdir(parents=True)
    (tmp_path / "digits" / "vanilla" / "resnet8.yaml").write_text(
        "MODEL:\n  STUDENT:\n    NAME: resnet20\n"
    )
    assert _setup("--config", "digits/vanilla/resnet8.yaml").MODEL.STUDENT.NAME == "resnet20"


def test_config_flag_neither_file_nor_name_is_one_line(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError) as error:
        _setup("--config", "nope.yaml")
    message = str(error.value)
    assert message.startswith("config file not found: nope.yaml; nor is it a model zoo name: ")
    assert "unknown model zoo config 'nope.yaml'" in message and "\n" not in message


def test_weights_take_model_zoo_names():
    from kdzoo.distillers import build_network

    by_name = build_network("resnet32", "kdzoo://digits/resnet32_vanilla", 10)
    by_file = build_backbone("resnet32", 10)
    load_backbone_weights(by_file, model_zoo.get_checkpoint_url("digits/resnet32_vanilla"))
    for (key, a), b in zip(
        by_name.state_dict().items(), by_file.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), key
    with pytest.raises(KdzooError, match="unknown model zoo name 'digits/nope'"):
        build_network("resnet32", "kdzoo://digits/nope", 10)


def test_a_missing_teacher_names_how_to_get_one():
    from kdzoo.config import get_cfg
    from kdzoo.distillers import where_to_get_a_teacher

    cfg = model_zoo.get_config("cifar100/kd/resnet56_resnet20.yaml")
    assert where_to_get_a_teacher(cfg) == (
        "train it with --config configs/cifar100/vanilla/resnet56.yaml (its OUTPUT_DIR's "
        "model_final.pth), or take the model zoo's: MODEL.TEACHER.WEIGHTS "
        "kdzoo://cifar100/short_schedule/resnet56"
    )
    unknown = get_cfg()
    unknown.merge_from_list(["MODEL.TEACHER.NAME", "TinyNet", "DATASETS.NAME", "mine"])
    assert where_to_get_a_teacher(unknown) == "train one with configs/mine/vanilla/<arch>.yaml"
