"""kdzoo-export (tools/export_backbone.py): the student comes out as a plain state_dict; nothing
is overwritten; weights saved from nn.DataParallel or DDP load and export too."""

import subprocess
import sys

import pytest
import torch

from kdzoo.checkpoint import load_backbone_weights
from kdzoo.checkpoint.export import main
from kdzoo.modeling import build_backbone
from kdzoo_testing import REPO_ROOT

TOOL = str(REPO_ROOT / "tools" / "export_backbone.py")


@pytest.mark.reliability
def test_export_round_trips_and_refuses_to_overwrite(tmp_path):
    student = build_backbone("resnet8")
    ckpt = tmp_path / "model_final.pth"
    torch.save(
        {"model": {f"student.{k}": v for k, v in student.state_dict().items()}, "iteration": 5},
        ckpt,
    )
    out = tmp_path / "student.pth"
    done = subprocess.run(
        [sys.executable, TOOL, "--input", str(ckpt), "--output", str(out)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    exported = torch.load(out, weights_only=True)
    fresh = build_backbone("resnet8")
    fresh.load_state_dict(exported)  # strict
    for key, value in student.state_dict().items():
        assert torch.equal(exported[key], value)

    before = out.read_bytes()
    again = subprocess.run(
        [sys.executable, TOOL, "--input", str(ckpt), "--output", str(out)],
        capture_output=True,
        text=True,
    )
    assert again.returncode == 2
    assert again.stderr.strip() == f"kdzoo: error: {out} exists; pass --overwrite to replace it"
    assert out.read_bytes() == before


def _dataparallel_file(model: torch.nn.Module, path, layout: str) -> str:
    """``model`` saved as from ``nn.DataParallel`` (DDP names keys alike: ``module.<key>``), as a
    plain state_dict or as ``{"model": state_dict}``."""
    state = torch.nn.DataParallel(model).state_dict()
    assert state and all(k.startswith("module.") for k in state)
    torch.save(state if layout == "plain" else {"model": state}, path)
    return str(path)


@pytest.mark.parametrize("layout", ["plain", "model"])
def test_dataparallel_weights_load_into_a_backbone(tmp_path, layout):
    torch.manual_seed(0)
    source = build_backbone("resnet8")
    path = _dataparallel_file(source, tmp_path / "dp.pth", layout)
    target = build_backbone("resnet8")
    load_backbone_weights(target, path)  # strict
    for key, value in source.state_dict().items():
        assert torch.equal(target.state_dict()[key], value), key


def test_dataparallel_weights_export_without_the_prefix(tmp_path, capsys):
    source = build_backbone("resnet8")
    path = _dataparallel_file(source, tmp_path / "dp.pth", "model")
    out = tmp_path / "student.pth"
    main(["--input", path, "--output", str(out)])  # kdzoo-export's entry point
    assert capsys.readouterr().out.startswith(f"Wrote {len(source.state_dict())} tensors to ")
    build_backbone("resnet8").load_state_dict(torch.load(out, weights_only=True))  # strict


def test_a_submodule_called_module_keeps_its_name(tmp_path):
    # Only a prefix on every key is a wrapper's; a model's own "module" submodule stays.
    model = torch.nn.Sequential()
    model.add_module("module", torch.nn.Linear(2, 2))
    model.add_module("head", torch.nn.Linear(2, 2))
    path = tmp_path / "w.pth"
    torch.save(model.state_dict(), path)
    load_backbone_weights(model, str(path))
