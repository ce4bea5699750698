"""kdzoo-export (tools/export_backbone.py) --format detectron2|torchvision on ResNet-50
students."""

import pickle
import subprocess
import sys

import numpy as np
import pytest
import torch
import torchvision
import yaml
from fvcore.common.config import CfgNode as FvcoreCfgNode

from kdzoo.checkpoint import to_detectron2_names
from kdzoo.checkpoint.export import export, main
from kdzoo.modeling import build_backbone
from kdzoo.utils.errors import KdzooError
from kdzoo_testing import REPO_ROOT

TOOL = REPO_ROOT / "tools" / "export_backbone.py"


@pytest.fixture(scope="module")
def resnet50_state() -> dict[str, torch.Tensor]:
    """A torchvision ResNet-50 state_dict with random weights and random BN statistics (a
    100-way classifier, as a distilled student may have)."""
    torch.manual_seed(0)
    model = build_backbone("resnet50", num_classes=100)
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.weight.data.uniform_(0.5, 1.5)
            module.bias.data.normal_()
            module.running_mean.normal_()
            module.running_var.uniform_(0.5, 2.0)
            module.num_batches_tracked.fill_(7)
    return model.state_dict()


def exported_name(reference_key: str) -> str | None:
    """The exported name of a key of Detectron2's R50-C4 model, None for detection heads.

    Detectron2 holds res5 in the ROI head; with ``matching_heuristics`` it finds ``res5.*`` there
    by suffix.
    """
    if reference_key.startswith("backbone."):
        return reference_key[len("backbone.") :]
    if reference_key.startswith("roi_heads.res5."):
        return reference_key[len("roi_heads.") :]
    return None


def kdzoo_checkpoint(state: dict[str, torch.Tensor], path) -> str:
    """Save ``state`` as the student of a kdzoo checkpoint."""
    torch.save({"model": {f"student.{k}": v for k, v in state.items()}, "iteration": 1}, path)
    return str(path)


def test_r50c4_export_matches_detectron2_and_round_trips(
    resnet50_state, detectron2_reference, tmp_path
):
    src = kdzoo_checkpoint(resnet50_state, tmp_path / "model_final.pth")
    out = tmp_path / "student_d2.pkl"
    count, paths = export(src, str(out), "detectron2")
    assert count == 265 and paths == [str(out), str(tmp_path / "student_d2.yaml")]

    raw = out.read_bytes()
    # Arrays are pickled without numpy 2's private module, so numpy 1.x reads the file too.
    assert b"numpy._core" not in raw and b"numpy.core" not in raw
    data = pickle.loads(raw)
    assert data["__author__"] == "kdzoo" and data["matching_heuristics"] is True
    model = data["model"]

    reference = {
        exported_name(key): tuple(shape)
        for key, shape in detectron2_reference["state_dict"]
        if exported_name(key)
    }
    assert len(detectron2_reference["state_dict"]) == 275 and len(reference) == 265
    assert {k: v.shape for k, v in model.items()} == reference

    renamed = to_detectron2_names(resnet50_state)
    for name, array in model.items():
        assert isinstance(array, np.ndarray) and array.dtype == np.float32
        assert array.flags.writeable
        np.testing.assert_array_equal(array, renamed[name].numpy())
    np.testing.assert_array_equal(
        model["res3.0.shortcut.norm.running_var"],
        resnet50_state["layer2.0.downsample.1.running_var"],
    )
    np.testing.assert_array_equal(model["stem.conv1.norm.bias"], resnet50_state["bn1.bias"])

    fragment = (tmp_path / "student_d2.yaml").read_text()
    for line in (
        f'WEIGHTS: "{out}"',
        "PIXEL_MEAN: [123.675, 116.280, 103.530]",
        "PIXEL_STD: [58.395, 57.120, 57.375]",
        "STRIDE_IN_1X1: False",
        'FORMAT: "RGB"',
    ):
        assert line in fragment
    assert "FREEZE_AT 0" in fragment and "SyncBN" in fragment
    # Loaded alone, Detectron2 would warn "has no VERSION"; a relative _BASE_ is read from the
    # fragment's folder, which the comments say (and --detectron2-base avoids).
    assert yaml.safe_load(fragment)["VERSION"] == 2
    assert "_BASE_:" not in yaml.safe_load(fragment) and "from this file's folder" in fragment


def test_torchvision_format_loads_strictly_into_torchvision(resnet50_state, tmp_path):
    src = kdzoo_checkpoint(resnet50_state, tmp_path / "model_final.pth")
    out = tmp_path / "student.pth"
    export(src, str(out), "torchvision")
    model = torchvision.models.resnet50(num_classes=100)
    model.load_state_dict(torch.load(out, weights_only=True), strict=True)
    assert torch.equal(model.layer4[2].bn3.running_var, resnet50_state["layer4.2.bn3.running_var"])


def test_detectron2_base_is_written_in_absolute_and_resolves_from_anywhere(
    resnet50_state, tmp_path, monkeypatch
):
    # A Detectron2 checkout's R50-C4 config, itself built on a _BASE_ of its own.
    configs = tmp_path / "detectron2" / "configs"
    (configs / "PascalVOC-Detection").mkdir(parents=True)
    (configs / "Base-RCNN-C4.yaml").write_text(
        'MODEL:\n  META_ARCHITECTURE: "GeneralizedRCNN"\n  RESNETS:\n'
        "    DEPTH: 50\n    STRIDE_IN_1X1: True\nVERSION: 2\n"
    )
    base = configs / "PascalVOC-Detection" / "faster_rcnn_R_50_C4.yaml"
    base.write_text('_BASE_: "../Base-RCNN-C4.yaml"\nMODEL:\n  ROI_HEADS:\n    NUM_CLASSES: 20\n')
    src = kdzoo_checkpoint(resnet50_state, tmp_path / "model_final.pth")
    out = tmp_path / "exports" / "student_d2.pkl"
    out.parent.mkdir()

    monkeypatch.chdir(tmp_path / "detectron2")  # the base named relative to the shell's folder
    main(
        [
            "--input",
            src,
            "--output",
            str(out),
            "--format",
            "detectron2",
            "--detectron2-base",
            "configs/PascalVOC-Detection/faster_rcnn_R_50_C4.yaml",
        ]
    )
    fragment = out.with_suffix(".yaml")
    assert yaml.safe_load(fragment.read_text())["_BASE_"] == str(base)

    # Detectron2 (through fvcore, whose _BASE_ reading it uses) merges it from any folder.
    monkeypatch.chdir(tmp_path)
    merged = FvcoreCfgNode.load_yaml_with_base(str(fragment))
    assert merged["MODEL"]["META_ARCHITECTURE"] == "GeneralizedRCNN"  # the base's base
    assert merged["MODEL"]["ROI_HEADS"]["NUM_CLASSES"] == 20  # the base
    assert merged["MODEL"]["RESNETS"] == {"DEPTH": 50, "STRIDE_IN_1X1": False}  # the fragment wins
    assert merged["MODEL"]["WEIGHTS"] == str(out) and merged["VERSION"] == 2


@pytest.mark.reliability
@pytest.mark.parametrize(
    "fmt, needle",
    [
        ("detectron2", "--detectron2-base: Detectron2 config not found: nope.yaml"),
        ("torchvision", "--detectron2-base goes with --format detectron2"),
    ],
)
def test_a_bad_detectron2_base_is_refused_and_nothing_written(
    resnet50_state, tmp_path, monkeypatch, fmt, needle
):
    src = kdzoo_checkpoint(resnet50_state, tmp_path / "model_final.pth")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(KdzooError, match=needle):
        export(src, "student_d2.pkl", fmt, detectron2_base="nope.yaml")
    assert [p.name for p in tmp_path.iterdir()] == ["model_final.pth"]


@pytest.mark.parametrize("layout", ["plain", "model"])
def test_a_dataparallel_state_dict_exports_to_detectron2(resnet50_state, tmp_path, layout):
    # nn.DataParallel and DDP save every key as "module.<key>".
    model = build_backbone("resnet50", num_classes=100)
    model.load_state_dict(resnet50_state)
    state = torch.nn.DataParallel(model).state_dict()
    assert all(k.startswith("module.") for k in state)
    src = tmp_path / "dp.pth"
    torch.save(state if layout == "plain" else {"model": state}, src)
    out = tmp_path / "student_d2.pkl"
    count, _ = export(str(src), str(out), "detectron2")
    assert count == 265
    arrays = pickle.loads(out.read_bytes())["model"]
    np.testing.assert_array_equal(
        arrays["res5.2.conv3.norm.running_var"], resnet50_state["layer4.2.bn3.running_var"]
    )


def _without(state: dict, key: str) -> dict:
    return {k: v for k, v in state.items() if k != key}


@pytest.mark.reliability
@pytest.mark.parametrize(
    "case, needle",
    [
        ("resnet18", "is not a torchvision ResNet-50"),
        ("resnet56", "is not a torchvision ResNet-50"),
        ("no_running_var", "lacks 1 batch-norm statistics (res4.3.conv2.norm.running_var)"),
        ("extra_tensor", "unexpected keys: stem.projector.weight"),
        ("missing_tensor", "missing keys: res5.2.conv3.norm.bias"),
        ("wrong_shape", "shape mismatch: res2.0.conv1.weight [64, 64, 3, 3] vs [64, 64, 1, 1]"),
        ("not_pkl", "needs an output ending in .pkl"),
        ("pkl_exists", "student_d2.pkl exists; pass --overwrite to replace it"),
        ("yaml_exists", "student_d2.yaml exists; pass --overwrite to replace it"),
    ],
)
def test_guards_refuse_with_one_line_and_write_nothing(resnet50_state, tmp_path, case, needle):
    state = resnet50_state
    if case in ("resnet18", "resnet56"):
        state = build_backbone(case).state_dict()
    elif case == "no_running_var":
        state = _without(state, "layer3.3.bn2.running_var")
    elif case == "extra_tensor":
        state = {**state, "projector.weight": torch.zeros(128, 2048)}
    elif case == "missing_tensor":
        state = _without(state, "layer4.2.bn3.bias")
    elif case == "wrong_shape":
        state = {**state, "layer1.0.conv1.weight": torch.zeros(64, 64, 3, 3)}
    src = kdzoo_checkpoint(state, tmp_path / "model_final.pth")
    out = tmp_path / ("student_d2.pth" if case == "not_pkl" else "student_d2.pkl")
    if case in ("pkl_exists", "yaml_exists"):
        (tmp_path / f"student_d2.{case.split('_')[0]}").write_text("mine\n")
    before = {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()}

    with pytest.raises(KdzooError) as error:
        export(src, str(out), "detectron2")
    message = str(error.value)
    assert needle in message and "\n" not in message
    # Nothing new (no output, no temp file) and nothing rewritten.
    assert {p.name: p.stat().st_mtime_ns for p in tmp_path.iterdir()} == before


@pytest.mark.reliability
def test_cli_refuses_a_cifar_student_and_keeps_the_old_export(tmp_path):
    out = tmp_path / "student_d2.pkl"
    out.write_bytes(b"an older export")
    src = kdzoo_checkpoint(build_backbone("resnet56").state_dict(), tmp_path / "cifar.pth")
    cmd = [
        sys.executable,
        str(TOOL),
        "--input",
        src,
        "--output",
        str(out),
        "--format",
        "detectron2",
    ]
    done = subprocess.run([*cmd, "--overwrite"], capture_output=True, text=True)
    assert done.returncode == 2
    last = done.stderr.strip().splitlines()[-1]
    assert last.startswith("kdzoo: error: ") and "is not a torchvision ResNet-50" in last
    assert out.read_bytes() == b"an older export"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["cifar.pth", "student_d2.pkl"]
