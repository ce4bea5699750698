"""Linear probing: the classifier learns, the features are cached, the tool runs end to end."""

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torchvision
from PIL import Image

from kdzoo.config import get_cfg
from kdzoo.data import DATASET_REGISTRY
from kdzoo.evaluation import (
    PROBE_DATASETS,
    extract_features,
    probe_batches,
    run_linear_probe,
    train_linear_probe,
)
from kdzoo.modeling import build_backbone
from kdzoo.utils.errors import DataError
from kdzoo_testing import REPO_ROOT

TOOL = REPO_ROOT / "tools" / "linear_probe.py"


@pytest.fixture(scope="module")
def small_cifar100(cifar100_slice, tmp_path_factory) -> Path:
    """The first 1,000 training and 200 test images of the CIFAR-100 slice, so the backbone runs
    on few images (the slice is shuffled, so most classes appear)."""
    root = tmp_path_factory.mktemp("small_cifar100")
    sizes = {"x_train": 1000, "y_train": 1000, "x_test": 200, "y_test": 200}
    with np.load(cifar100_slice / "cifar100.npz") as data:
        arrays = {k: data[k][: sizes.get(k)] for k in data.files}
    np.savez(root / "cifar100.npz", **arrays)
    return root


def test_probe_learns_a_linearly_separable_problem():
    generator = torch.Generator().manual_seed(0)
    centres = 3.0 * torch.randn(5, 32, generator=generator)  # 5 classes, well apart

    def sample(n: int) -> tuple[torch.Tensor, torch.Tensor]:
        labels = torch.randint(0, 5, (n,), generator=generator)
        # A large offset and scale: standardisation must make them irrelevant.
        features = 100.0 + 50.0 * (centres[labels] + torch.randn(n, 32, generator=generator))
        return features, labels

    train, test = sample(600), sample(300)
    top1 = train_linear_probe(*train, *test, epochs=5, lr=0.1, batch_size=64)
    assert top1 > 95.0
    assert train_linear_probe(*train, *test, epochs=5, lr=0.1, batch_size=64) == top1


def test_probe_refuses_features_of_different_sizes():
    with pytest.raises(ValueError, match="train features have 8 dimensions, test features 4"):
        train_linear_probe(
            torch.zeros(4, 8), torch.zeros(4), torch.zeros(2, 4), torch.zeros(2), epochs=1
        )


def test_probe_on_a_cifar100_slice_reuses_its_feature_cache(small_cifar100, tmp_path):
    torch.manual_seed(0)
    model = build_backbone("resnet8")
    cfg = get_cfg()

    def probe() -> dict:
        return run_linear_probe(
            model,
            {"backbone": "resnet8", "weights": "random, seed 0"},
            "cifar100",
            str(small_cifar100),
            str(tmp_path),
            cfg.INPUT.PIXEL_MEAN,
            cfg.INPUT.PIXEL_STD,
            extract_batch_size=500,
            epochs=2,
        )

    first = probe()
    assert 0.0 <= first["top1"] <= 100.0
    assert (first["num_train"], first["num_test"], first["feature_dim"]) == (1000, 200, 64)
    assert not first["reused_cache"]
    caches = sorted(tmp_path.glob("features_cifar100_*.pth"))
    assert [p.name for p in caches] == ["features_cifar100_test.pth", "features_cifar100_train.pth"]
    written = [p.stat().st_mtime_ns for p in caches]

    second = probe()
    assert second["reused_cache"] and second["top1"] == first["top1"]
    assert [p.stat().st_mtime_ns for p in caches] == written


def test_tool_probes_a_checkpoint_and_refuses_missing_weights(small_cifar100, tmp_path, capsys):
    torch.manual_seed(0)
    weights = tmp_path / "student.pth"
    torch.save(build_backbone("resnet8").state_dict(), weights)
    out = tmp_path / "probe"
    args = ["--backbone", "resnet8", "--dataset", "cifar100", "--data-root", str(small_cifar100)]
    args += ["--output-dir", str(out), "--epochs", "1"]
    done = subprocess.run(
        [sys.executable, str(TOOL), "--weights", str(weights), *args],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stderr
    assert "resnet8 on cifar100: linear probe top-1" in done.stdout
    assert "Extracted the features of 1000 images" in done.stdout  # the feature pass reports
    result = json.loads((out / "linear_probe_cifar100.json").read_text())
    assert 0.0 <= result["top1"] <= 100.0 and result["num_train"] == 1000

    spec = importlib.util.spec_from_file_location("linear_probe_tool", TOOL)
    tool = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(tool)
    missing = tmp_path / "nowhere.pth"
    with pytest.raises(SystemExit) as exit_info:
        tool.main(["--weights", str(missing), *args])
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == f"kdzoo: error: checkpoint file not found: {missing}\n"


def test_stl10_and_tiny_imagenet_batches(tmp_path, monkeypatch):
    class FakeSTL10:  # torchvision's STL10 attributes: data uint8 [N, 3, 96, 96], labels uint8
        def __init__(self, root: str, split: str, download: bool) -> None:
            self.data = np.zeros((5, 3, 96, 96), dtype=np.uint8)
            self.labels = np.arange(5, dtype=np.uint8)

    monkeypatch.setattr(torchvision.datasets, "STL10", FakeSTL10)
    model = build_backbone("resnet8")
    batches = probe_batches("stl10", str(tmp_path), train=True, size=32, batch_size=4)
    features, labels = extract_features(model, batches, [0.5] * 3, [0.25] * 3)
    assert features.shape == (5, 64) and labels.tolist() == [0, 1, 2, 3, 4]

    for split, wnid in [("train", "n01"), ("train", "n02"), ("val", "n01"), ("val", "n02")]:
        (tmp_path / split / wnid).mkdir(parents=True, exist_ok=True)
        Image.new("RGB", (64, 48)).save(tmp_path / split / wnid / "a.JPEG")
    batches = probe_batches("tinyimagenet", str(tmp_path), False, size=32, num_workers=0)
    images, labels = next(iter(batches))
    assert images.dtype == torch.uint8 and images.shape == (2, 3, 32, 32)
    assert labels.tolist() == [0, 1]

    # Tiny-ImageNet as downloaded: val/ is one folder of images, not one folder per class.
    for wnid in ("n01", "n02"):
        (tmp_path / "val" / wnid / "a.JPEG").rename(tmp_path / "val" / f"{wnid}.JPEG")
        (tmp_path / "val" / wnid).rmdir()
    (tmp_path / "val" / "images").mkdir()
    with pytest.raises(DataError, match="val has 1 class folders, .*train has 2"):
        probe_batches("tinyimagenet", str(tmp_path), True, size=32)


def test_probe_datasets_are_registered_and_others_are_refused(tmp_path):
    assert all(name in DATASET_REGISTRY for name in PROBE_DATASETS)
    choices = "\\['cifar100', 'stl10', 'tinyimagenet'\\]"
    for name in ("imagenet", "digits"):  # not a probe dataset; registered or not
        with pytest.raises(
            DataError, match=f"^unknown probe dataset '{name}'; choose one of {choices}$"
        ):
            probe_batches(name, str(tmp_path), True, size=32)
