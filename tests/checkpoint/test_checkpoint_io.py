"""Atomic writes, safe loading, the run folder, and initial weights in every supported layout."""

import json
import os
import pickle

import pytest
import torch

from kdzoo.checkpoint import (
    Checkpointer,
    RunFolder,
    atomic_save,
    load_backbone_weights,
    load_file,
)
from kdzoo.modeling import build_backbone
from kdzoo.utils.env import GlobalRNG
from kdzoo.utils.errors import CheckpointError


@pytest.mark.reliability
def test_crash_mid_write_leaves_the_previous_checkpoint_loadable(tmp_path, monkeypatch):
    path = tmp_path / "model_final.pth"
    atomic_save({"w": torch.ones(3)}, str(path))

    def torch_save_that_dies(obj, f):
        f.write(b"PK\x03\x04 half a zip file")  # some bytes reach the disk, then the process dies
        raise KeyboardInterrupt

    monkeypatch.setattr(torch, "save", torch_save_that_dies)
    with pytest.raises(KeyboardInterrupt):
        atomic_save({"w": torch.zeros(3)}, str(path))
    monkeypatch.undo()
    assert torch.equal(load_file(str(path))["w"], torch.ones(3))
    assert os.listdir(tmp_path) == ["model_final.pth"]  # no temp file left behind


@pytest.mark.reliability
def test_truncated_file_is_a_clear_error(tmp_path):
    path = tmp_path / "ckpt.pth"
    torch.save({"w": torch.ones(1000)}, path)
    path.write_bytes(path.read_bytes()[:300])
    with pytest.raises(CheckpointError, match="truncated or corrupt"):
        load_file(str(path))


class RunsCode:
    def __reduce__(self):
        return (os.system, ("echo pwned",))


@pytest.mark.reliability
def test_a_pickle_that_would_run_code_is_refused(tmp_path):
    path = tmp_path / "evil.pth"
    with open(path, "wb") as f:
        pickle.dump({"model": RunsCode()}, f)
    with pytest.raises(CheckpointError, match="refused to load"):
        load_file(str(path))


def test_checkpointer_round_trip_and_last_checkpoint(tmp_path):
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
    model(torch.randn(4, 3)).sum().backward()
    opt.step()
    folder = RunFolder(str(tmp_path))
    rng = {"global": GlobalRNG(torch.device("cpu"))}
    ckpt = Checkpointer(model, folder, {"optimizer": opt}, rng)
    assert folder.last_checkpoint() is None and ckpt.resume() is None
    ckpt.save(9, hooks={"EvalHook": {"best_top1": 1.0}})
    assert folder.last_checkpoint() == str(tmp_path / "model_0000009.pth")
    expected_draw = torch.rand(3)

    other = torch.nn.Linear(3, 2)
    other_opt = torch.optim.SGD(other.parameters(), lr=0.1, momentum=0.9)
    extra = Checkpointer(other, folder, {"optimizer": other_opt}, rng).resume()
    assert extra == {"iteration": 9, "hooks": {"EvalHook": {"best_top1": 1.0}}}
    assert torch.equal(torch.rand(3), expected_draw)  # the random streams continue exactly
    assert torch.equal(other.weight, model.weight)
    assert other_opt.state_dict()["state"][0]["momentum_buffer"].equal(
        opt.state_dict()["state"][0]["momentum_buffer"]
    )


def test_run_folder_keeps_the_newest_periodic_checkpoints_and_the_final_one(tmp_path):
    model = torch.nn.Linear(3, 2)
    folder = RunFolder(str(tmp_path))
    ckpt = Checkpointer(model, folder, {}, {}, keep=2)
    for iteration in (1, 3, 5):
        ckpt.save(iteration)
    ckpt.save(6, "final")
    names = sorted(p.name for p in tmp_path.iterdir())
    assert names == ["last_checkpoint", "model_0000003.pth", "model_0000005.pth", "model_final.pth"]
    assert folder.holds_run() and folder.is_finished()
    assert folder.last_checkpoint() == str(tmp_path / "model_final.pth")


def test_run_folder_trims_metrics_after_an_iteration(tmp_path):
    folder = RunFolder(str(tmp_path))
    folder.trim_metrics(3)  # no file yet: nothing to do
    lines = [json.dumps({"iteration": i, "total_loss": 1.0}) for i in (1, 3, 5)]
    (tmp_path / "metrics.json").write_text("\n".join(lines) + "\n")
    folder.trim_metrics(3)
    lines = (tmp_path / "metrics.json").read_text().splitlines()
    kept = [json.loads(line)["iteration"] for line in lines]
    assert kept == [1, 3]


@pytest.mark.parametrize("layout", ["repdistiller", "plain", "kdzoo"])
def test_backbone_weights_in_every_layout(tmp_path, layout):
    source = build_backbone("resnet8")
    state = source.state_dict()
    obj = {
        "repdistiller": {"model": state},
        "plain": state,
        "kdzoo": {
            "model": {
                **{f"student.{k}": v for k, v in state.items()},
                "teacher.fc.weight": torch.zeros(1),
            },
            "iteration": 3,
        },
    }[layout]
    path = tmp_path / "w.pth"
    torch.save(obj, path)
    target = build_backbone("resnet8")
    load_backbone_weights(target, str(path))
    for key, value in target.state_dict().items():
        assert torch.equal(value, state[key]), key


@pytest.mark.reliability
def test_weights_of_another_architecture_name_the_bad_keys(tmp_path):
    path = tmp_path / "w.pth"
    torch.save({"model": build_backbone("resnet8x4").state_dict()}, path)
    with pytest.raises(CheckpointError) as info:
        load_backbone_weights(build_backbone("resnet8"), str(path))
    message = str(info.value)
    assert (
        "does not fit" in message
        and "shape mismatch: conv1.weight [32, 3, 3, 3] vs [16, 3, 3, 3]" in message
    )
    assert "\n" not in message
