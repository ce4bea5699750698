"""Config: defaults, _BASE_ inheritance, overrides, and one-line errors naming key and file."""

from pathlib import Path

import pytest

from kdzoo.config import get_cfg
from kdzoo.utils.errors import ConfigError

REPO_ROOT = Path(__file__).resolve().parents[2]


def write(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_defaults_follow_the_cifar_protocol():
    cfg = get_cfg()
    assert (cfg.SOLVER.BASE_LR, cfg.SOLVER.MOMENTUM, cfg.SOLVER.WEIGHT_DECAY) == (0.05, 0.9, 5e-4)
    assert cfg.SOLVER.IMS_PER_BATCH == 64 and cfg.SOLVER.MAX_EPOCHS == 240
    assert tuple(cfg.SOLVER.STEPS) == (150, 180, 210) and cfg.SOLVER.NESTEROV is False
    assert get_cfg() is not get_cfg()  # each call is a fresh copy


def test_base_files_merge_recursively(tmp_path):
    write(tmp_path / "root.yaml", "SOLVER:\n  BASE_LR: 0.1\n  MAX_EPOCHS: 10\nSEED: 3\n")
    (tmp_path / "sub").mkdir()
    write(tmp_path / "sub" / "mid.yaml", "_BASE_: ../root.yaml\nSOLVER:\n  BASE_LR: 0.2\n")
    leaf = write(
        tmp_path / "sub" / "leaf.yaml", "_BASE_: mid.yaml\nMODEL:\n  STUDENT:\n    NAME: vgg8\n"
    )
    cfg = get_cfg()
    cfg.merge_from_file(leaf)
    assert cfg.SOLVER.BASE_LR == 0.2  # the nearer file wins
    assert cfg.SOLVER.MAX_EPOCHS == 10 and cfg.SEED == 3  # inherited from the root
    assert cfg.MODEL.STUDENT.NAME == "vgg8"
    assert cfg.SOLVER.MOMENTUM == 0.9  # untouched defaults stay


def test_command_line_overrides_win(tmp_path):
    cfg = get_cfg()
    cfg.merge_from_file(write(tmp_path / "a.yaml", "SOLVER:\n  BASE_LR: 0.1\n"))
    cfg.merge_from_list(["SOLVER.BASE_LR", "0.3", "SOLVER.STEPS", "(1, 2)", "OUTPUT_DIR", "x"])
    assert cfg.SOLVER.BASE_LR == 0.3 and tuple(cfg.SOLVER.STEPS) == (1, 2) and cfg.OUTPUT_DIR == "x"


@pytest.mark.reliability
def test_unknown_key_in_file_names_key_and_file(tmp_path):
    path = write(tmp_path / "bad.yaml", "SOLVER:\n  BASE_LRR: 0.1\n")
    with pytest.raises(ConfigError) as info:
        get_cfg().merge_from_file(path)
    message = str(info.value)
    assert "SOLVER.BASE_LRR" in message and "bad.yaml" in message and "\n" not in message


@pytest.mark.reliability
def test_unknown_key_inherited_from_base_names_the_key(tmp_path):
    write(tmp_path / "base.yaml", "MODEL:\n  TEACHR:\n    NAME: x\n")
    path = write(tmp_path / "child.yaml", "_BASE_: base.yaml\n")
    with pytest.raises(ConfigError, match="MODEL.TEACHR"):
        get_cfg().merge_from_file(path)


@pytest.mark.reliability
def test_wrong_value_type_is_an_error(tmp_path):
    path = write(tmp_path / "bad.yaml", "SOLVER:\n  BASE_LR: fast\n")
    with pytest.raises(ConfigError, match=r"bad\.yaml.*SOLVER\.BASE_LR"):
        get_cfg().merge_from_file(path)
    with pytest.raises(ConfigError, match=r"command line.*SOLVER\.IMS_PER_BATCH"):
        get_cfg().merge_from_list(["SOLVER.IMS_PER_BATCH", "many"])


@pytest.mark.reliability
def test_renamed_key_is_a_one_line_error_naming_the_new_key(tmp_path):
    path = write(tmp_path / "old.yaml", "DISTILLER:\n  WCORD:\n    MEMORY_MOMENTUM: 0.9\n")
    with pytest.raises(ConfigError) as info:
        get_cfg().merge_from_file(path)
    assert str(info.value) == (
        f"{path}: config key DISTILLER.WCORD.MEMORY_MOMENTUM was renamed to "
        "DISTILLER.MEMORY_BANK.MOMENTUM; update the config"
    )
    with pytest.raises(ConfigError) as info:
        get_cfg().merge_from_list(["DISTILLER.CRD.FEAT_DIM", "64"])
    assert str(info.value) == (
        "command line: config key DISTILLER.CRD.FEAT_DIM was renamed to "
        "DISTILLER.MEMORY_BANK.FEAT_DIM; update the config"
    )
    # All ten old bank keys of CRD and WCoRD name their new key.
    renamed = {"MEMORY": "NAME", "MEMORY_MOMENTUM": "MOMENTUM"}
    for method in ("CRD", "WCORD"):
        for old in ("FEAT_DIM", "NUM_NEGATIVES", "MODE", "MEMORY", "MEMORY_MOMENTUM"):
            new = renamed.get(old, old)
            with pytest.raises(ConfigError, match=rf"renamed to DISTILLER\.MEMORY_BANK\.{new};"):
                get_cfg().merge_from_list([f"DISTILLER.{method}.{old}", "1"])


@pytest.mark.parametrize("method", ["crd", "wcord"])
def test_the_config_yaml_of_an_earlier_run_still_loads(tmp_path, method):
    # An earlier kdzoo dumped VERSION 1 with the bank keys under both methods' nodes.
    path = write(
        tmp_path / "config.yaml",
        "DISTILLER:\n"
        f"  NAME: {method}\n"
        "  CRD: {FEAT_DIM: 64, MEMORY: momentum_bank, MEMORY_MOMENTUM: 0.5, MODE: relax,"
        " NUM_NEGATIVES: 100, TEMPERATURE: 0.1}\n"
        "  WCORD: {FEAT_DIM: 32, MEMORY: momentum_bank, MEMORY_MOMENTUM: 0.7, MODE: exact,"
        " NUM_NEGATIVES: 200}\n"
        "VERSION: 1\n",
    )
    cfg = get_cfg()
    cfg.merge_from_file(path)
    bank = cfg.DISTILLER.MEMORY_BANK
    loaded = (bank.FEAT_DIM, bank.MODE, bank.NUM_NEGATIVES)
    # The trained method's values win.
    assert loaded == ((64, "relax", 100) if method == "crd" else (32, "exact", 200))
    assert cfg.DISTILLER.CRD.TEMPERATURE == 0.1 and cfg.VERSION == 2


@pytest.mark.reliability
def test_override_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown config key SOLVER.NOPE"):
        get_cfg().merge_from_list(["SOLVER.NOPE", "1"])
    with pytest.raises(ConfigError, match="KEY VALUE pairs"):
        get_cfg().merge_from_list(["SOLVER.BASE_LR"])


@pytest.mark.reliability
def test_unknown_keys_suggest_the_closest_existing_ones(tmp_path):
    with pytest.raises(ConfigError) as info:
        get_cfg().merge_from_list(["SOLVER.BASE_LRR", "1"])
    assert str(info.value) == (
        "command line: unknown config key SOLVER.BASE_LRR; did you mean SOLVER.BASE_LR?"
    )
    with pytest.raises(ConfigError) as info:
        get_cfg().merge_from_list(["MODEL.STUDNET.NAME", "resnet8"])  # a typo in the node
    assert str(info.value).endswith("MODEL.STUDNET.NAME; did you mean MODEL.STUDENT.NAME?")
    with pytest.raises(ConfigError) as info:
        get_cfg().merge_from_list(["SOLVER.NOPE", "1"])
    assert str(info.value) == "command line: unknown config key SOLVER.NOPE"  # nothing close
    path = write(tmp_path / "bad.yaml", "SOLVR:\n  BASE_LR: 0.1\n")
    with pytest.raises(ConfigError) as info:
        get_cfg().merge_from_file(path)
    assert str(info.value) == f"{path}: unknown config key SOLVR; did you mean SOLVER?"


@pytest.mark.reliability
def test_invalid_yaml_names_file_line_column_and_problem(tmp_path):
    path = write(tmp_path / "bad.yaml", "SOLVER:\n  BASE_LR: 0.1\nMODEL:\n  STUDENT: NAME: x\n")
    before = Path(path).read_bytes()
    with pytest.raises(ConfigError) as info:
        get_cfg().merge_from_file(path)
    # 1-based, as editors count: line 4, the second colon is the 16th character.
    assert str(info.value) == f"{path}:4:16: not valid YAML: mapping values are not allowed here"
    assert Path(path).read_bytes() == before
    # Where PyYAML names what it was reading, that construct's place comes too.
    quoted = write(tmp_path / "quote.yaml", 'MODEL:\n  STUDENT:\n    NAME: "resnet8\n')
    child = write(tmp_path / "child.yaml", "_BASE_: quote.yaml\n")
    with pytest.raises(ConfigError) as info:
        get_cfg().merge_from_file(child)  # the error names the base file that holds it
    assert str(info.value) == (
        f"{quoted}:4:1: not valid YAML: found unexpected end of stream "
        "(while scanning a quoted scalar at line 3, column 11)"
    )
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("OUTPUT_DIR: caf\u00e9\n".encode("latin-1"))
    with pytest.raises(ConfigError) as info:
        get_cfg().merge_from_file(str(latin1))
    assert str(info.value).startswith(f"{latin1}: not valid YAML: ")
    assert "\n" not in str(info.value)


@pytest.mark.reliability
def test_missing_files(tmp_path):
    with pytest.raises(ConfigError, match="config file not found"):
        get_cfg().merge_from_file(str(tmp_path / "nope.yaml"))
    path = write(tmp_path / "child.yaml", "_BASE_: missing-base.yaml\n")
    with pytest.raises(ConfigError, match=r"_BASE_ file not found: .*missing-base\.yaml"):
        get_cfg().merge_from_file(path)


def test_every_shipped_config_loads():
    configs = sorted((REPO_ROOT / "configs").rglob("*.yaml"))
    assert configs, "no configs found"
    for path in configs:
        cfg = get_cfg()
        cfg.merge_from_file(str(path))  # raises on any unknown key or bad type


def test_shipped_configs_name_registered_parts():
    from kdzoo.distillers import DISTILLER_REGISTRY
    from kdzoo.modeling import BACKBONE_REGISTRY, registered_input_size

    for path in sorted((REPO_ROOT / "configs").rglob("*.yaml")):
        if path.name.startswith("Base-"):
            continue
        cfg = get_cfg()
        cfg.merge_from_file(str(path))
        assert cfg.DISTILLER.NAME in DISTILLER_REGISTRY, path
        assert cfg.MODEL.STUDENT.NAME in BACKBONE_REGISTRY, path
        if cfg.DISTILLER.NAME != "vanilla":
            assert cfg.MODEL.TEACHER.NAME in BACKBONE_REGISTRY, path
        for name in filter(None, (cfg.MODEL.STUDENT.NAME, cfg.MODEL.TEACHER.NAME)):
            # No shipped config draws the warning for a backbone made for other images.
            assert registered_input_size(name) == cfg.INPUT.SIZE, (path, name)
