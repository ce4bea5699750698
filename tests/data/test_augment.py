"""The batched on-device augmentation against torchvision's per-image pipeline."""

import torch
import torchvision.transforms.functional as TF

from kdzoo.data import BatchAugmentation

MEAN, STD = [0.5071, 0.4867, 0.4408], [0.2675, 0.2565, 0.2761]


def make_aug(**kw) -> BatchAugmentation:
    args = {
        "size": 32,
        "padding": 4,
        "hflip": True,
        "mean": MEAN,
        "std": STD,
        "device": "cpu",
        "seed": 0,
    }
    args.update(kw)
    return BatchAugmentation(**args)


def reference(
    image: torch.Tensor, top: int, left: int, flip: bool, padding: int = 4
) -> torch.Tensor:
    """torchvision, one image: RandomCrop(32, padding) at (top, left), flip, ToTensor, Normalize."""
    out = TF.crop(TF.pad(image, [padding]), top, left, 32, 32)
    if flip:
        out = TF.hflip(out)
    return TF.normalize(out.float() / 255.0, MEAN, STD)


def test_batched_crop_flip_normalise_equals_per_image_reference():
    images = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8)
    aug = make_aug()
    params = aug.sample(16, 32, 32)
    params.flip[:2] = torch.tensor([True, False])  # both branches are covered
    out = aug.apply(images, params)
    assert out.shape == (16, 3, 32, 32) and out.dtype == torch.float32
    for i in range(16):
        expected = reference(
            images[i], int(params.top[i]), int(params.left[i]), bool(params.flip[i])
        )
        torch.testing.assert_close(out[i], expected, atol=1e-5, rtol=1e-5)


def test_offsets_cover_the_padded_range_and_flips_are_fair():
    params = make_aug().sample(20000, 32, 32)
    assert set(params.top.unique().tolist()) == set(range(9))  # like RandomCrop: 0..2*padding
    assert set(params.left.unique().tolist()) == set(range(9))
    assert 0.47 < params.flip.float().mean().item() < 0.53


def test_views_are_independent_and_reproducible():
    images = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)
    a, b = make_aug(seed=3), make_aug(seed=3)
    views_a = a(images, num_views=3)
    views_b = b(images, num_views=3)
    assert len(views_a) == 3
    assert not torch.equal(views_a[0], views_a[1])  # each view draws its own crops
    for x, y in zip(views_a, views_b, strict=True):
        assert torch.equal(x, y)  # same seed, same views


def test_generator_state_round_trips():
    images = torch.randint(0, 256, (8, 3, 32, 32), dtype=torch.uint8)
    aug = make_aug(seed=1)
    aug(images)
    state = aug.state_dict()
    first = aug(images)[0]
    aug.load_state_dict(state)
    assert torch.equal(aug(images)[0], first)


def test_no_padding_no_flip_is_plain_normalisation():
    images = torch.randint(0, 256, (4, 3, 32, 32), dtype=torch.uint8)
    aug = make_aug(padding=0, hflip=False)
    out = aug(images)[0]
    torch.testing.assert_close(out, aug.normalize(images))
    expected = TF.normalize(images.float() / 255.0, MEAN, STD)
    torch.testing.assert_close(out, expected, atol=1e-5, rtol=1e-5)
