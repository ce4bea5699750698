"""tools/export_backbone.py: the student comes out as a plain state_dict; nothing is overwritten."""

import subprocess
import sys

import pytest
import torch

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
