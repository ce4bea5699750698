"""The bad-input catalogue, end to end: each mistake given to ``tools/train_net.py`` ends with one
line naming it (``kdzoo: error: ...``, no traceback), exit status 2, no checkpoint written and no
file that existed before changed.

The command line runs in this process (``train_net_in_process``: the same parsing, error handler
and exit status, without ~4 s of imports per case); ``test_training.py`` runs one case, a NaN loss,
in a real interpreter.
"""

import ast
import os
import pickle
import stat
import urllib.error
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
import torch

from kdzoo_testing import REPO_ROOT, tiny_run_opts
from kdzoo_testing.runs import train_net_in_process

pytestmark = pytest.mark.reliability


@dataclass
class Inputs:
    """What a case builds its command line from."""

    folder: Path  # this case's own files; the run's OUTPUT_DIR is ``folder / "out"``
    data: Path  # the real CIFAR-100 slice
    teacher: Path  # a resnet8 checkpoint (random weights)

    def argv(self, *flags: str, **opts) -> list[str]:
        return [*flags, *tiny_run_opts(self.data, self.folder / "out", **opts)]

    def write(self, name: str, text: str) -> Path:
        path = self.folder / name
        path.write_text(text)
        return path

    def teacher_opts(self, **opts) -> dict:
        return {"MODEL.TEACHER.NAME": "resnet8", "MODEL.TEACHER.WEIGHTS": self.teacher, **opts}


CATALOGUE: dict[str, Callable[[Inputs], tuple[list[str], str]]] = {}


def case(build: Callable[[Inputs], tuple[list[str], str]]):
    """Add a case: ``build(inputs)`` returns the command line and the expected error's text."""
    CATALOGUE[build.__name__] = build
    return build


@case
def unknown_config_key(i: Inputs):
    return i.argv(**{"SOLVER.BASE_LRR": 1}), (
        "unknown config key SOLVER.BASE_LRR; did you mean SOLVER.BASE_LR?"
    )


@case
def unknown_config_key_in_a_file(i: Inputs):
    config = i.write("bad.yaml", "SOLVER:\n  BASE_LRR: 0.1\n")
    return i.argv("--config", str(config)), (
        f"{config}: unknown config key SOLVER.BASE_LRR; did you mean SOLVER.BASE_LR?"
    )


@case
def invalid_yaml(i: Inputs):
    config = i.write("bad.yaml", "SOLVER:\n  BASE_LR: 0.1\nMODEL:\n  STUDENT: NAME: resnet8\n")
    return i.argv("--config", str(config)), (
        f"{config}:4:16: not valid YAML: mapping values are not allowed here"
    )


@case
def wrong_value_type(i: Inputs):
    return i.argv(**{"SOLVER.BASE_LR": "fast"}), "(0.05 vs. fast) for config key: SOLVER.BASE_LR"


@case
def missing_config_file(i: Inputs):
    return i.argv("--config", str(i.folder / "nope.yaml")), "config file not found"


@case
def missing_base_file(i: Inputs):
    config = i.write("child.yaml", "_BASE_: nope.yaml\n")
    return i.argv("--config", str(config)), "_BASE_ file not found"


@case
def unknown_backbone(i: Inputs):
    return i.argv(**{"MODEL.STUDENT.NAME": "resnet9"}), "Unknown backbone 'resnet9'"


@case
def misspelt_backbone(i: Inputs):
    return i.argv(**{"MODEL.STUDENT.NAME": "resnet5"}), (
        "; did you mean resnet56, ResNet50, resnet50?"
    )


@case
def unknown_distiller(i: Inputs):
    return i.argv(**{"DISTILLER.NAME": "crdd"}), "Unknown distiller 'crdd'; registered names are:"


@case
def unknown_dataset(i: Inputs):
    return i.argv(**{"DATASETS.NAME": "imagenett"}), "Unknown dataset 'imagenett'"


@case
def unknown_cocord_dictionary(i: Inputs):
    opts = i.teacher_opts(**{"DISTILLER.NAME": "cocord", "DISTILLER.COCORD.DICTIONARY": "queu"})
    return i.argv(**opts), "Unknown memory 'queu'; registered names are: key_queue, momentum_bank"


@case
def unknown_crd_memory(i: Inputs):
    opts = i.teacher_opts(**{"DISTILLER.NAME": "crd", "DISTILLER.MEMORY_BANK.NAME": "bank"})
    return i.argv(**opts), "Unknown memory 'bank'; registered names are: key_queue, momentum_bank"


@case
def flag_where_a_value_is_expected(i: Inputs):
    # "SOLVER.MAX_ITER --resume": the value was forgotten; the flag must not be taken as it.
    return [*i.argv(), "SOLVER.MAX_ITER", "--resume"], (
        "command line: SOLVER.MAX_ITER needs a value before --resume"
    )


@case
def renamed_config_key(i: Inputs):
    opts = i.teacher_opts(**{"DISTILLER.NAME": "crd", "DISTILLER.CRD.FEAT_DIM": 64})
    return i.argv(**opts), (
        "command line: config key DISTILLER.CRD.FEAT_DIM was renamed to "
        "DISTILLER.MEMORY_BANK.FEAT_DIM; update the config"
    )


@case
def unknown_choice(i: Inputs):
    opts = i.teacher_opts(**{"DISTILLER.NAME": "crd", "DISTILLER.MEMORY_BANK.MODE": "exactly"})
    return i.argv(**opts), "DISTILLER.MEMORY_BANK.MODE must be one of exact, relax; got 'exactly'"


@case
def unknown_lr_schedule(i: Inputs):
    return (
        i.argv(**{"SOLVER.LR_SCHEDULER_NAME": "linear"}),
        "SOLVER.LR_SCHEDULER_NAME must be one of multistep, cosine; got 'linear'",
    )


@case
def unknown_amp_dtype(i: Inputs):
    return i.argv(**{"SOLVER.AMP.DTYPE": "float8"}), "SOLVER.AMP.DTYPE must be one of"


@case
def unknown_device(i: Inputs):
    return i.argv(**{"MODEL.DEVICE": "tpu"}), "MODEL.DEVICE must be one of cpu, cuda; got 'tpu'"


@case
def teacher_not_given(i: Inputs):
    opts = {"DISTILLER.NAME": "kd", "MODEL.TEACHER.NAME": "resnet8"}
    return i.argv(**opts), "distiller 'kd' needs MODEL.TEACHER.WEIGHTS"


@case
def missing_teacher_file(i: Inputs):
    missing = i.folder / "teacher.pth"
    opts = i.teacher_opts(**{"DISTILLER.NAME": "kd", "MODEL.TEACHER.WEIGHTS": missing})
    # The run's config trains on cifar100, for which configs/cifar100/vanilla/resnet8.yaml exists.
    return i.argv(**opts), (
        f"checkpoint file not found: {missing}; it is the teacher (MODEL.TEACHER.WEIGHTS): "
        "train it with --config configs/cifar100/vanilla/resnet8.yaml"
    )


@case
def teacher_of_another_architecture(i: Inputs):
    opts = i.teacher_opts(**{"DISTILLER.NAME": "kd", "MODEL.TEACHER.NAME": "resnet14"})
    return i.argv(**opts), "does not fit CifarResNet"


@case
def fsp_pair_of_unequal_channels(i: Inputs):
    opts = i.teacher_opts(**{"DISTILLER.NAME": "fsp", "MODEL.STUDENT.NAME": "wrn_16_2"})
    return i.argv(**opts), (
        "DISTILLER.NAME fsp: the student wrn_16_2's maps have [16, 32, 64, 128] channels and the "
        "teacher resnet8's [16, 16, 32, 64]; FSP compares maps of equal channels"
    )


@case
def negative_pretraining_epochs(i: Inputs):
    opts = i.teacher_opts(**{"DISTILLER.NAME": "fsp", "DISTILLER.FSP.INIT_EPOCHS": -1})
    return i.argv(**opts), ("DISTILLER.FSP.INIT_EPOCHS must be 0 (no pre-training) or more; got -1")


@case
def ab_pair_of_unequal_stage_counts(i: Inputs):
    opts = i.teacher_opts(**{"DISTILLER.NAME": "ab", "MODEL.STUDENT.NAME": "vgg8"})
    return i.argv(**opts), (
        "DISTILLER.NAME ab: the student vgg8 has 4 stage maps and the teacher resnet8 3; AB pairs "
        "them one to one"
    )


@case
def ofd_teacher_without_margins(i: Inputs):
    from kdzoo.modeling import build_backbone

    teacher = i.folder / "shufflev2.pth"
    torch.save(build_backbone("ShuffleV2").state_dict(), teacher)
    opts = {"DISTILLER.NAME": "ofd", "MODEL.TEACHER.NAME": "ShuffleV2"}
    opts["MODEL.TEACHER.WEIGHTS"] = teacher
    return i.argv(**opts), (
        "DISTILLER.NAME ofd: the teacher ShuffleV2 has no margins: ShuffleV2 has no BatchNorm "
        "before its stages' last ReLU"
    )


@case
def truncated_teacher(i: Inputs):
    truncated = i.folder / "teacher.pth"
    truncated.write_bytes(i.teacher.read_bytes()[:5000])
    opts = i.teacher_opts(**{"DISTILLER.NAME": "kd", "MODEL.TEACHER.WEIGHTS": truncated})
    return i.argv(**opts), f"{truncated}: not a readable checkpoint (truncated or corrupt?)"


class RunsCode:
    """Unpickling this would run a shell command that leaves a file behind."""

    def __init__(self, witness: Path) -> None:
        self.witness = witness

    def __reduce__(self):
        return (os.system, (f"touch {self.witness}",))


@case
def teacher_pickle_that_would_run_code(i: Inputs):
    evil = i.folder / "teacher.pth"
    with open(evil, "wb") as f:
        pickle.dump({"model": RunsCode(i.folder / "code_ran")}, f)
    opts = i.teacher_opts(**{"DISTILLER.NAME": "kd", "MODEL.TEACHER.WEIGHTS": evil})
    return i.argv(**opts), f"{evil}: refused to load"


@case
def cifar_missing(i: Inputs):
    opts = {"DATASETS.ROOT": i.folder / "nowhere", "DATASETS.DOWNLOAD": False}
    return i.argv(**opts), f"CIFAR-100 not found in '{i.folder / 'nowhere'}'"


@case
def npz_with_wrong_shapes(i: Inputs):
    (i.folder / "data").mkdir()
    np.savez(
        i.folder / "data" / "cifar100.npz",
        x_train=np.zeros((64, 32, 32), np.uint8),  # no channel axis
        y_train=np.zeros(64, np.int64),
        x_test=np.zeros((8, 32, 32, 3), np.uint8),
        y_test=np.zeros(8, np.int64),
    )
    opts = {"DATASETS.ROOT": i.folder / "data"}
    return i.argv(**opts), "x_train must be uint8 [N, H, W, 3]"


@case
def image_folder_missing(i: Inputs):
    opts = {"DATASETS.NAME": "imagefolder", "DATASETS.ROOT": i.folder / "imagenet"}
    return i.argv(**opts), f"image folder not found: {i.folder / 'imagenet' / 'train'}"


@case
def batch_larger_than_the_dataset(i: Inputs):
    return (
        i.argv(**{"SOLVER.IMS_PER_BATCH": 8000}),
        "SOLVER.IMS_PER_BATCH=8000 is more than the dataset's 4000 training images",
    )


@case
def queue_smaller_than_the_global_batch(i: Inputs):
    opts = i.teacher_opts(**{"DISTILLER.NAME": "cocord", "DISTILLER.COCORD.QUEUE_SIZE": 16})
    return i.argv(**opts), "DISTILLER.COCORD.QUEUE_SIZE (16) is smaller than the global batch"


@case
def output_dir_holding_a_run(i: Inputs):
    out = i.folder / "out"
    out.mkdir()
    (out / "model_final.pth").write_bytes(b"weights of a finished run")
    (out / "last_checkpoint").write_text("model_final.pth")
    return i.argv(), f"OUTPUT_DIR '{out}' already holds a run; pass --resume"


@case
def resume_from_a_corrupt_checkpoint(i: Inputs):
    out = i.folder / "out"
    out.mkdir()
    (out / "model_0000001.pth").write_bytes(b"an earlier checkpoint")
    (out / "model_0000002.pth").write_bytes(i.teacher.read_bytes()[:5000])
    (out / "last_checkpoint").write_text("model_0000002.pth")
    return (
        i.argv("--resume"),
        f"{out / 'model_0000002.pth'}: not a readable checkpoint (truncated or corrupt?): ",
    )


@case
def resume_from_a_missing_checkpoint(i: Inputs):
    out = i.folder / "out"
    out.mkdir()
    (out / "last_checkpoint").write_text("model_0000002.pth")
    return (
        i.argv("--resume"),
        f"{out / 'last_checkpoint'} names {out / 'model_0000002.pth'}, which does not exist",
    )


@case
def no_config(i: Inputs):
    # A bare tools/train_net.py would start a 240-epoch run of the defaults.
    return [], "no --config given: name a config file or a model-zoo config"


@case
def eval_only_without_weights(i: Inputs):
    # It would score a randomly initialised network (top-1 ~1%) and exit 0.
    return i.argv("--eval-only"), "--eval-only needs trained weights: set MODEL.STUDENT.WEIGHTS"


@case
def eval_only_resume_of_a_folder_without_checkpoint(i: Inputs):
    out = i.folder / "out"  # e.g. a mistyped OUTPUT_DIR
    return (
        i.argv("--eval-only", "--resume"),
        f"--eval-only --resume: OUTPUT_DIR '{out}' holds no checkpoint to evaluate",
    )


def test_an_unreadable_last_checkpoint_names_the_others(cifar100_slice, random_teacher, tmp_path):
    argv, _ = resume_from_a_corrupt_checkpoint(Inputs(tmp_path, cifar100_slice, random_teacher))
    last = train_net_in_process(*argv).stderr.strip().splitlines()[-1]
    assert last.endswith(
        "; to resume from another (model_0000001.pth), write its name into "
        f"{tmp_path / 'out' / 'last_checkpoint'}"
    )


@case
def output_dir_below_a_file(i: Inputs):
    blocker = i.write("a_file", "not a folder")
    return i.argv(**{"OUTPUT_DIR": blocker / "run"}), f"cannot create OUTPUT_DIR '{blocker}/run'"


@case
def non_finite_loss(i: Inputs):
    opts = {"SOLVER.BASE_LR": 1e30, "SOLVER.MAX_ITER": 4, "LOG_PERIOD": 4}
    return i.argv(**opts), "the loss became NaN or Inf"


def files_under(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in folder.rglob("*") if p.is_file()}


def assert_refused(result, message: str) -> None:
    """Exit status 2 and one line, ``kdzoo: error: ...`` naming the problem, without a traceback."""
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("kdzoo: error: ") and message in last, last


@pytest.mark.parametrize("name", CATALOGUE)
def test_bad_input_is_refused_in_one_line(name, cifar100_slice, random_teacher, tmp_path):
    inputs = Inputs(tmp_path, cifar100_slice, random_teacher)
    argv, message = CATALOGUE[name](inputs)
    before = files_under(tmp_path)
    assert_refused(train_net_in_process(*argv), message)
    after = files_under(tmp_path)
    assert {k: after.get(k) for k in before} == before, "a file that existed was changed"
    assert not [k for k in set(after) - set(before) if k.endswith(("checkpoint", ".pth"))]
    assert not (tmp_path / "code_ran").exists()


def test_the_catalogue_covers_the_issue(tmp_path):
    """At least 15 cases, among them every one #10 names (export and --resume are tested with
    their tools: ``tests/checkpoint/``, ``tests/engine/test_training.py``)."""
    required = {
        "unknown_config_key",
        "wrong_value_type",
        "missing_base_file",
        "unknown_backbone",
        "unknown_distiller",
        "unknown_crd_memory",
        "missing_teacher_file",
        "teacher_of_another_architecture",
        "truncated_teacher",
        "teacher_pickle_that_would_run_code",
        "cifar_missing",
        "npz_with_wrong_shapes",
        "queue_smaller_than_the_global_batch",
        "non_finite_loss",
        "output_dir_below_a_file",
    }
    assert required <= set(CATALOGUE) and len(CATALOGUE) >= 15


def test_a_failed_download_names_the_root_and_leaves_no_folder(
    cifar100_slice, tmp_path, monkeypatch
):
    import torchvision.datasets.cifar

    def offline(*args, **kwargs):
        raise urllib.error.URLError("[Errno -3] Temporary failure in name resolution")

    monkeypatch.setattr(torchvision.datasets.cifar, "download_and_extract_archive", offline)
    typo = tmp_path / "datsets"  # a mistyped DATASETS.ROOT, with DATASETS.DOWNLOAD on (default)
    result = train_net_in_process(*tiny_run_opts(typo, tmp_path / "out"))
    assert_refused(
        result,
        f"CIFAR-100 not found in '{typo}' (neither cifar100.npz nor cifar-100-python/), and "
        "downloading it failed ([Errno -3] Temporary failure in name resolution); check "
        "DATASETS.ROOT, or put the files there and set DATASETS.DOWNLOAD False",
    )
    assert not typo.exists()


@pytest.mark.skipif(os.geteuid() == 0, reason="root can write into read-only folders")
def test_unwritable_output_dir(cifar100_slice, tmp_path):
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(stat.S_IRUSR | stat.S_IXUSR)
    result = train_net_in_process(*tiny_run_opts(cifar100_slice, locked / "run"))
    assert_refused(result, f"cannot create OUTPUT_DIR '{locked / 'run'}'")


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
