"""Datasets from npz files, and the resumable, rank-sliced training order."""

import numpy as np
import pytest
import torch

from kdzoo.config import get_cfg
from kdzoo.data import InMemoryDataset, TrainLoader, build_dataset, load_cifar100_npz
from kdzoo.utils import comm
from kdzoo.utils.errors import ConfigError, DataError


def toy_dataset(n: int = 50) -> InMemoryDataset:
    images = torch.arange(n, dtype=torch.uint8).view(n, 1, 1, 1).expand(n, 3, 4, 4).clone()
    return InMemoryDataset(images, torch.arange(n) % 5)


def take(loader: TrainLoader, steps: int) -> list[torch.Tensor]:
    stream = iter(loader)
    return [next(stream)["index"] for _ in range(steps)]


def test_batches_carry_images_labels_and_indices():
    data = toy_dataset()
    batch = next(iter(TrainLoader(data, 8, seed=0, device="cpu")))
    assert batch["image"].dtype == torch.uint8 and batch["image"].shape == (8, 3, 4, 4)
    assert torch.equal(batch["image"][:, 0, 0, 0].long(), batch["index"])
    assert torch.equal(batch["label"], batch["index"] % 5)


def test_each_epoch_is_a_permutation_without_the_incomplete_batch():
    loader = TrainLoader(toy_dataset(50), 8, seed=0, device="cpu")
    assert loader.iters_per_epoch == 6
    epoch0 = torch.cat(take(loader, 6))
    assert len(epoch0.unique()) == 48  # drop_last: 2 images sit out this epoch
    epoch1 = torch.cat(take(loader, 6))
    assert not torch.equal(epoch0, epoch1)  # a new permutation each epoch


def test_position_restores_the_stream_exactly():
    loader = TrainLoader(toy_dataset(), 8, seed=1, device="cpu")
    stream = iter(loader)
    for _ in range(8):  # across an epoch boundary (6 batches per epoch)
        next(stream)
    state = loader.state_dict()
    expected = [next(stream)["index"] for _ in range(7)]
    resumed = TrainLoader(toy_dataset(), 8, seed=1, device="cpu")
    resumed.load_state_dict(state)
    assert all(torch.equal(a, b) for a, b in zip(take(resumed, 7), expected, strict=True))


def test_training_batches_carry_their_epoch_across_a_resume():
    loader = TrainLoader(toy_dataset(50), 8, seed=0, device="cpu")  # 6 batches per epoch
    stream = iter(loader)
    assert [next(stream)["epoch"] for _ in range(8)] == [0] * 6 + [1] * 2
    resumed = TrainLoader(toy_dataset(50), 8, seed=0, device="cpu")
    resumed.load_state_dict(loader.state_dict())
    assert [batch["epoch"] for _, batch in zip(range(5), resumed, strict=False)] == [1] * 4 + [2]


def test_ranks_take_slices_of_the_same_global_batches(monkeypatch):
    single = take(TrainLoader(toy_dataset(), 8, seed=2, device="cpu"), 5)
    monkeypatch.setattr(comm, "get_world_size", lambda: 2)
    per_rank = []
    for rank in (0, 1):
        monkeypatch.setattr(comm, "get_rank", lambda rank=rank: rank)
        per_rank.append(take(TrainLoader(toy_dataset(), 8, seed=2, device="cpu"), 5))
    for step in range(5):
        assert torch.equal(torch.cat([per_rank[0][step], per_rank[1][step]]), single[step])


@pytest.mark.reliability
def test_bad_batch_sizes(monkeypatch):
    with pytest.raises(ConfigError, match="IMS_PER_BATCH=8 is more than the dataset's 4 training"):
        TrainLoader(toy_dataset(4), 8, seed=0, device="cpu")
    monkeypatch.setattr(comm, "get_world_size", lambda: 3)
    with pytest.raises(ConfigError, match="IMS_PER_BATCH=8 does not divide into 3 processes"):
        TrainLoader(toy_dataset(), 8, seed=0, device="cpu")


@pytest.mark.reliability
def test_npz_with_wrong_shapes_is_a_clear_error(tmp_path):
    path = tmp_path / "cifar100.npz"
    np.savez(path, x_train=np.zeros((4, 32, 32), np.uint8), y_train=np.zeros(4, np.int64))
    with pytest.raises(DataError, match=r"x_train must be uint8 \[N, H, W, 3\]"):
        load_cifar100_npz(str(path), train=True)
    np.savez(path, x_train=np.zeros((4, 32, 32, 3), np.uint8), y_train=np.zeros(5, np.int64))
    with pytest.raises(DataError, match="y_train has shape"):
        load_cifar100_npz(str(path), train=True)
    with pytest.raises(DataError, match="missing arrays"):
        load_cifar100_npz(str(path), train=False)


@pytest.mark.reliability
def test_missing_cifar_without_download_is_a_clear_error(tmp_path):
    cfg = get_cfg()
    cfg.merge_from_list(["DATASETS.ROOT", str(tmp_path / "nowhere"), "DATASETS.DOWNLOAD", "False"])
    with pytest.raises(DataError, match="CIFAR-100 not found"):
        build_dataset(cfg, train=True)


def test_real_cifar100_slice(cifar100_slice):
    cfg = get_cfg()
    cfg.merge_from_list(["DATASETS.ROOT", str(cifar100_slice)])
    train, test = build_dataset(cfg, True), build_dataset(cfg, False)
    assert (len(train), len(test)) == (4000, 1000)
    assert train.images.shape[1:] == (3, 32, 32) and train.images.dtype == torch.uint8
    assert torch.bincount(train.labels).tolist() == [40] * 100
    assert len(train.class_names) == 100


def test_digits_ship_with_scikit_learn():
    pytest.importorskip("sklearn")
    cfg = get_cfg()
    cfg.merge_from_list(["DATASETS.NAME", "digits"])
    train, test = build_dataset(cfg, True), build_dataset(cfg, False)
    assert len(train) + len(test) == 1797 and train.images.shape[1:] == (3, 32, 32)
    per_class = torch.bincount(torch.cat([train.labels, test.labels]))
    assert torch.equal(torch.bincount(test.labels), per_class // 5)  # 20% of each digit held out


def fake_image_folder(root, splits=("train", "val"), classes=("n01", "n02"), per_class=2):
    """A tiny ImageFolder: ``per_class`` 8x8 PNGs per class and split, each of one flat colour."""
    from PIL import Image

    for split in splits:
        for label, wnid in enumerate(classes):
            (root / split / wnid).mkdir(parents=True)
            for i in range(per_class):
                colour = (40 * label + 10 * i, 0, 255)
                Image.new("RGB", (8, 8), colour).save(root / split / wnid / f"{i}.png")


def test_tinyimagenet_images_are_resized_whole_to_input_size(tmp_path):
    fake_image_folder(tmp_path)
    cfg = get_cfg()
    cfg.merge_from_list(["DATASETS.NAME", "tinyimagenet", "DATASETS.ROOT", str(tmp_path)])
    cfg.merge_from_list(["INPUT.SIZE", 16])
    for train in (True, False):
        data = build_dataset(cfg, train)
        assert len(data) == 4 and data.labels.tolist() == [0, 0, 1, 1]
        image, label, index = data[3]
        assert image.dtype == torch.uint8 and image.shape == (3, 16, 16)
        assert (label, index) == (1, 3)
        # Resized whole, not cropped: a flat 8x8 image stays flat, with its own colour.
        assert image[:, 0, 0].tolist() == [50, 0, 255] and bool((image == image[:, :1, :1]).all())


def test_tinyimagenet_val_without_class_folders_is_a_clear_error(tmp_path):
    # Tiny-ImageNet as downloaded: val/ holds images/ and val_annotations.txt, not one folder
    # per class.
    fake_image_folder(tmp_path, splits=("train",))
    (tmp_path / "val" / "images").mkdir(parents=True)
    (tmp_path / "val" / "val_annotations.txt").write_text("0.png\tn01\n")
    cfg = get_cfg()
    cfg.merge_from_list(["DATASETS.NAME", "tinyimagenet", "DATASETS.ROOT", str(tmp_path)])
    for train in (True, False):
        with pytest.raises(DataError) as error:
            build_dataset(cfg, train)
        message = str(error.value)
        assert "\n" not in message
        assert message == (
            f"{tmp_path / 'val'} has 1 class folders, {tmp_path / 'train'} has 2: sort val/ into "
            "one folder per class (val_annotations.txt)"
        )


def test_missing_stl10_without_download_is_a_clear_error(tmp_path):
    cfg = get_cfg()
    cfg.merge_from_list(["DATASETS.NAME", "stl10", "DATASETS.ROOT", str(tmp_path)])
    cfg.merge_from_list(["DATASETS.DOWNLOAD", "False"])
    with pytest.raises(DataError, match="STL-10 not found in DATASETS.ROOT .*DATASETS.DOWNLOAD"):
        build_dataset(cfg, train=True)
