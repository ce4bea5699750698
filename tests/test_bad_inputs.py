"""More of the bad-input catalogue: each mistake gives one line naming it, exit 2, nothing lost."""

import ast
import os
import stat
import sys

import pytest
from conftest import REPO_ROOT, tiny_run_opts

sys.path.insert(0, str(REPO_ROOT / "tests" / "engine"))
from test_training import train_net  # noqa: E402


def last_line(result) -> str:
    return result.stderr.strip().splitlines()[-1]


@pytest.mark.parametrize(
    ("opts", "message"),
    [
        ({"DISTILLER.NAME": "crdd"}, "Unknown distiller 'crdd'; registered names are: cocord, crd"),
        ({"DATASETS.NAME": "imagenett"}, "Unknown dataset 'imagenett'"),
        (
            {"DATASETS.NAME": "imagefolder", "DATASETS.ROOT": "/nonexistent/imagenet"},
            "image folder not found: /nonexistent/imagenet/train",
        ),
        ({"SOLVER.AMP.DTYPE": "float8"}, "SOLVER.AMP.DTYPE must be one of"),
        ({"MODEL.DEVICE": "tpu"}, "MODEL.DEVICE must be 'cpu' or 'cuda'"),
    ],
)
def test_more_bad_inputs(cifar100_slice, tmp_path, opts, message):
    result = train_net(*tiny_run_opts(cifar100_slice, tmp_path / "out", **opts))
    assert result.returncode == 2, result.stderr[-2000:]
    assert last_line(result).startswith("kdzoo: error:") and message in last_line(result)
    assert not (tmp_path / "out" / "last_checkpoint").exists()


@pytest.mark.parametrize(
    ("method", "key", "name"),
    [
        ("cocord", "DISTILLER.COCORD.DICTIONARY", "key_queu"),
        ("crd", "DISTILLER.CRD.MEMORY", "bank"),
    ],
)
def test_unknown_memory_name(cifar100_slice, random_teacher, tmp_path, method, key, name):
    opts = {
        "DISTILLER.NAME": method,
        "MODEL.TEACHER.NAME": "resnet8",
        "MODEL.TEACHER.WEIGHTS": random_teacher,
        key: name,
    }
    result = train_net(*tiny_run_opts(cifar100_slice, tmp_path / "out", **opts))
    assert result.returncode == 2, result.stderr[-2000:]
    assert last_line(result) == (
        f"kdzoo: error: Unknown memory '{name}'; registered names are: key_queue, momentum_bank"
    )
    assert not (tmp_path / "out" / "last_checkpoint").exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into read-only folders")
def test_unwritable_output_dir(cifar100_slice, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
    result = train_net(*tiny_run_opts(cifar100_slice, locked / "run"))
    assert result.returncode == 2 and "OUTPUT_DIR" in last_line(result)


def test_unwritable_output_dir_as_root_too(cifar100_slice, tmp_path):
    """A path below a regular file cannot be created, whoever runs kdzoo."""
    blocker = tmp_path / "a_file"
    blocker.write_text("not a folder")
    result = train_net(*tiny_run_opts(cifar100_slice, blocker / "run"))
    assert result.returncode == 2
    assert last_line(result).startswith("kdzoo: error: cannot create OUTPUT_DIR")
    assert blocker.read_text() == "not a folder"


def test_every_torch_load_is_weights_only():
    """Anything kdzoo loads goes through torch.load(..., weights_only=True)."""
    calls = []
    for folder in ("kdzoo", "tools"):
        for path in (REPO_ROOT / folder).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                func = getattr(node, "func", None)
                if (
                    isinstance(node, ast.Call)
                    and isinstance(func, ast.Attribute)
                    and func.attr == "load"
                    and isinstance(func.value, ast.Name)
                    and func.value.id == "torch"
                ):
                    keywords = {k.arg: k.value for k in node.keywords}
                    safe = getattr(keywords.get("weights_only"), "value", None) is True
                    calls.append((f"{path.relative_to(REPO_ROOT)}:{node.lineno}", safe))
    assert calls, "expected kdzoo.checkpoint.io to call torch.load"
    assert [where for where, safe in calls if not safe] == []
