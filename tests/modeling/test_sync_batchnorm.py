"""GlobalBatchNorm: two Gloo processes normalise as one process over their concatenated batches."""

import pytest
import torch
from torch import nn

from kdzoo.engine import launch
from kdzoo.modeling import GlobalBatchNorm, convert_sync_batchnorm
from kdzoo.utils import comm

GLOBAL_BATCH = 8


def batch_and_loss_weights(shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    x = torch.randn(GLOBAL_BATCH, *shape, generator=generator) * 3 + 1
    return x, torch.randn(x.shape, generator=generator)


def make_bn(num_features: int, dims: int) -> nn.Module:
    bn = (nn.BatchNorm1d if dims == 1 else nn.BatchNorm2d)(num_features)
    with torch.no_grad():
        bn.weight.copy_(torch.linspace(0.5, 1.5, num_features))
        bn.bias.copy_(torch.linspace(-1, 1, num_features))
    return bn


def two_rank_worker(shape: tuple[int, ...], out_dir: str) -> None:
    """One rank's share of the global batch through a converted layer; saves what it saw."""
    x, loss_weights = batch_and_loss_weights(shape)
    rank, world = comm.get_rank(), comm.get_world_size()
    bn = convert_sync_batchnorm(make_bn(shape[0], len(shape)))
    assert isinstance(bn, GlobalBatchNorm)
    local = x.chunk(world)[rank].clone().requires_grad_()
    out = bn(local)
    (out * loss_weights.chunk(world)[rank]).sum().backward()
    torch.save(
        {
            "out": out.detach(),
            "input_grad": local.grad,
            "weight_grad": bn.weight.grad,
            "bias_grad": bn.bias.grad,
            "running_mean": bn.running_mean,
            "running_var": bn.running_var,
        },
        f"{out_dir}/rank{rank}.pth",
    )


@pytest.mark.parametrize("shape", [(3, 4, 5), (6,)], ids=["2d", "1d"])
def test_two_processes_normalise_like_one_over_the_global_batch(tmp_path, shape):
    launch(two_rank_worker, 2, backend="gloo", args=(shape, str(tmp_path)))
    ranks = [torch.load(tmp_path / f"rank{r}.pth", weights_only=True) for r in range(2)]

    x, loss_weights = batch_and_loss_weights(shape)
    reference = make_bn(shape[0], len(shape))
    x.requires_grad_()
    out = reference(x)
    (out * loss_weights).sum().backward()

    close = {"rtol": 1e-5, "atol": 1e-5}
    torch.testing.assert_close(torch.cat([r["out"] for r in ranks]), out.detach(), **close)
    torch.testing.assert_close(torch.cat([r["input_grad"] for r in ranks]), x.grad, **close)
    # Each rank holds the gradient of its own loss term; DDP sums (averages) them.
    for name in ("weight", "bias"):
        total = ranks[0][f"{name}_grad"] + ranks[1][f"{name}_grad"]
        torch.testing.assert_close(total, getattr(reference, name).grad, **close)
    for rank in ranks:
        torch.testing.assert_close(rank["running_mean"], reference.running_mean, **close)
        torch.testing.assert_close(rank["running_var"], reference.running_var, **close)


def test_single_process_and_eval_mode_are_plain_batchnorm():
    x, _ = batch_and_loss_weights((3, 4, 4))
    plain = make_bn(3, 2)
    converted = convert_sync_batchnorm(make_bn(3, 2))
    torch.testing.assert_close(converted(x), plain(x), rtol=0, atol=0)
    converted.eval(), plain.eval()
    torch.testing.assert_close(converted(x), plain(x), rtol=0, atol=0)


def test_conversion_keeps_parameters_buffers_and_modes():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), make_bn(4, 2), nn.Sequential(make_bn(4, 2).eval()))
    params = list(model.parameters())
    state = {k: v.clone() for k, v in model.state_dict().items()}
    converted = convert_sync_batchnorm(model)
    assert converted is model
    assert isinstance(model[1], GlobalBatchNorm) and isinstance(model[2][0], GlobalBatchNorm)
    assert model[1].training and not model[2][0].training
    assert all(a is b for a, b in zip(params, model.parameters(), strict=True))  # optimizer-safe
    assert state.keys() == model.state_dict().keys()
    for key, value in model.state_dict().items():
        assert torch.equal(value, state[key]), key
