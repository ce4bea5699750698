"""kdzoo.reports.analysis and tools/analyze_model.py: parameter, FLOP and memory counts."""

import json
import subprocess
import sys

import pytest
import torch

from kdzoo.config import get_cfg
from kdzoo.distillers import build_distiller
from kdzoo.reports.analysis import (
    backbone_rows,
    count_flops,
    extra_module_rows,
    fake_train_labels,
    memory_rows,
)
from kdzoo.utils.errors import ConfigError
from kdzoo_testing import REPO_ROOT

# Small CoCoRD heads and queue, so that the test builds in a blink.
COCORD_DIMS = {"PROJ_DIM": 16, "PROJ_HIDDEN": 32, "PRED_HIDDEN": 8, "QUEUE_SIZE": 128}


def tiny_cfg(method: str, **options):
    """resnet8 -> resnet8 with ``method``; ``options`` go under ``DISTILLER.<METHOD>``."""
    cfg = get_cfg()
    opts = ["MODEL.STUDENT.NAME", "resnet8", "MODEL.TEACHER.NAME", "resnet8"]
    opts += ["DISTILLER.NAME", method, "SOLVER.IMS_PER_BATCH", 8]
    for key, value in options.items():
        opts += [f"DISTILLER.{method.upper()}.{key}", value]
    cfg.merge_from_list(opts)
    return cfg


def build_for_analysis(cfg, num_samples: int):
    """The distiller as ``analyze`` builds it: random weights, ``num_samples`` fake labels."""
    return build_distiller(cfg, fake_train_labels(cfg, num_samples), load_weights=False)


def numel(module: torch.nn.Module, trainable_only: bool = False) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


@pytest.mark.parametrize("method", ["kd", "cocord"])
def test_backbone_rows_count_parameters_and_flops(method):
    cfg = tiny_cfg(method, **(COCORD_DIMS if method == "cocord" else {}))
    distiller = build_for_analysis(cfg, num_samples=1000)
    rows = {row["model"]: row for row in backbone_rows(cfg, distiller)}
    assert rows["teacher"]["params"] == numel(distiller.teacher)
    assert rows["teacher"]["trainable"] == 0  # the teacher is frozen
    assert rows["student"]["params"] == rows["student"]["trainable"] == numel(distiller.student)
    assert rows["teacher"]["flops"] == rows["student"]["flops"] > 0  # the same architecture
    assert rows["student"]["name"] == "resnet8" and rows["student"]["input_size"] == 32


def test_flops_leave_the_training_mode_alone():
    distiller = build_for_analysis(tiny_cfg("kd"), num_samples=10)
    distiller.student.train()
    count_flops(distiller.student)
    assert distiller.student.training


def test_cocord_extra_modules_and_queue_size():
    cfg = tiny_cfg("cocord", **COCORD_DIMS)
    distiller = build_for_analysis(cfg, num_samples=1000)
    extra = {row["module"]: row for row in extra_module_rows(distiller)}
    assert "student" not in extra and "teacher" not in extra
    for name in ("student_head", "predictor", "teacher_head", "slow_student", "dictionary"):
        module = getattr(distiller, name)
        assert extra[name]["params"] == numel(module)
        assert extra[name]["trainable"] == numel(module, trainable_only=True)
    assert extra["student_head"]["trainable"] > 0
    assert extra["slow_student"]["trainable"] == 0  # a moving average, not trained
    assert extra["slow_student"]["params"] == numel(distiller.student)

    memories = {row["buffer"]: row for row in memory_rows(distiller)}
    keys = memories["keys"]
    assert keys["memory"] == "dictionary" and keys["shape"] == [128, 16]
    assert keys["bytes"] == 128 * 16 * 4 and keys["MiB"] == keys["bytes"] / 2**20
    assert keys["dtype"] == "float32"
    assert memories["ptr"]["bytes"] == 8  # one int64


def test_crd_bank_is_sized_by_num_samples():
    cfg = tiny_cfg("crd")
    cfg.merge_from_list(
        ["DISTILLER.MEMORY_BANK.FEAT_DIM", 32, "DISTILLER.MEMORY_BANK.NUM_NEGATIVES", 64]
    )
    distiller = build_for_analysis(cfg, num_samples=1000)
    (bank,) = memory_rows(distiller)
    assert bank["shape"] == [2, 1000, 32]
    assert bank["bytes"] == distiller.memory.banks.numel() * distiller.memory.banks.element_size()
    assert bank["bytes"] == 2 * 1000 * 32 * 4


def test_vanilla_has_no_teacher_row_and_kd_needs_a_teacher():
    cfg = tiny_cfg("vanilla")
    cfg.MODEL.TEACHER.NAME = ""
    distiller = build_for_analysis(cfg, num_samples=10)
    assert [row["model"] for row in backbone_rows(cfg, distiller)] == ["student"]
    assert memory_rows(distiller) == []
    cfg = tiny_cfg("kd")
    cfg.MODEL.TEACHER.NAME = ""
    with pytest.raises(ConfigError, match="needs a teacher"):
        build_for_analysis(cfg, num_samples=10)


def test_analyze_model_tool_needs_no_teacher_weights(tmp_path):
    out = tmp_path / "cost.json"
    config = REPO_ROOT / "configs" / "digits" / "kd" / "resnet32_resnet8.yaml"
    done = subprocess.run(
        [
            sys.executable,
            str(REPO_ROOT / "tools" / "analyze_model.py"),
            "--config",
            str(config),
            "--num-samples",
            "1442",
            "--json",
            str(out),
            "MODEL.TEACHER.WEIGHTS",
            str(tmp_path / "missing.pth"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    assert result["num_samples"] == 1442
    names = [row["name"] for row in result["backbones"]]
    assert names == ["resnet32", "resnet8"]
    assert all(row["flops"] > 0 for row in result["backbones"])
    assert "resnet32" in done.stdout and "kd_loss" in done.stdout
