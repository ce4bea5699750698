"""BatchNorm over the global batch of all processes, on any device and backend.

torch's ``nn.SyncBatchNorm`` runs on GPUs only. :class:`GlobalBatchNorm` computes the same
statistics with two differentiable all-reduces (the per-channel sums, then the sums of squared
deviations: the two-pass form, which does not cancel catastrophically as ``E[x^2] - E[x]^2`` can),
so N Gloo processes on CPUs normalise exactly as one process over their concatenated batches.
:func:`convert_sync_batchnorm` uses torch's fused layer on CUDA and this one elsewhere.
"""

import torch
from torch import nn
from torch.nn.modules.batchnorm import _BatchNorm

from kdzoo.utils import comm


class _AllReduceSum(torch.autograd.Function):
    """Sum over ranks. The gradient of every rank's copy of the sum reaches each summand, so the
    backward sums the incoming gradients over ranks too."""

    @staticmethod
    def forward(ctx, tensor: torch.Tensor) -> torch.Tensor:
        return comm.all_reduce_sum(tensor.clone())

    @staticmethod
    def backward(ctx, grad: torch.Tensor) -> torch.Tensor:
        return comm.all_reduce_sum(grad.clone())


class GlobalBatchNorm(_BatchNorm):
    """BatchNorm1d/2d/3d whose training statistics span every process of the job.

    Input ``[N, C, *]`` on each rank; statistics over all ranks' ``N x *`` positions. In eval mode,
    or in a single process, it is exactly ``nn.BatchNorm``. Running variance is unbiased, as in
    torch's layers. Gradients flow through the all-reduces (their backward all-reduces the
    incoming gradients), so under DDP's gradient averaging the step equals one process's.
    """

    def _check_input_dim(self, input: torch.Tensor) -> None:
        if input.dim() < 2:
            raise ValueError(
                f"GlobalBatchNorm expects [N, C, *] input, got shape {tuple(input.shape)}"
            )

    def forward(self, input: torch.Tensor) -> torch.Tensor:
        use_batch_stats = self.training or not self.track_running_stats
        if not use_batch_stats or comm.get_world_size() == 1:
            return super().forward(input)
        self._check_input_dim(input)
        dims = [0, *range(2, input.dim())]
        shape = [1, -1] + [1] * (input.dim() - 2)
        x = input.float()  # statistics in fp32 under autocast as well
        local_count = x.new_full((1,), x.numel() // x.shape[1])
        sums = _AllReduceSum.apply(torch.cat([x.sum(dims), local_count]))
        count = sums[-1]
        mean = sums[:-1] / count
        centered = x - mean.view(shape)
        var = _AllReduceSum.apply(centered.square().sum(dims)) / count
        out = centered * torch.rsqrt(var + self.eps).view(shape)
        if self.affine:
            out = out * self.weight.view(shape) + self.bias.view(shape)
        if self.training and self.track_running_stats:
            self._update_running_stats(mean.detach(), var.detach() * count / (count - 1))
        return out.to(input.dtype)

    @torch.no_grad()
    def _update_running_stats(self, mean: torch.Tensor, unbiased_var: torch.Tensor) -> None:
        self.num_batches_tracked.add_(1)
        # momentum None: a cumulative average, as in torch's BatchNorm.
        factor = self.momentum if self.momentum is not None else 1 / int(self.num_batches_tracked)
        self.running_mean.lerp_(mean, factor)
        self.running_var.lerp_(unbiased_var, factor)


def convert_sync_batchnorm(module: nn.Module) -> nn.Module:
    """Replace, in place, every BatchNorm layer under ``module`` by one over the global batch:
    ``nn.SyncBatchNorm`` on CUDA, :class:`GlobalBatchNorm` elsewhere. Parameters are moved over
    (the same tensors), so optimizers and moving averages built on them stay valid. Returns
    ``module`` (or its replacement, when ``module`` itself is a BatchNorm layer)."""
    if isinstance(module, (nn.SyncBatchNorm, GlobalBatchNorm)) or not isinstance(
        module, _BatchNorm
    ):
        for name, child in module.named_children():
            setattr(module, name, convert_sync_batchnorm(child))
        return module
    on_cuda = module.running_mean is not None and module.running_mean.is_cuda
    layer_type = nn.SyncBatchNorm if on_cuda else GlobalBatchNorm
    layer = layer_type(
        module.num_features, module.eps, module.momentum, module.affine, module.track_running_stats
    )
    if module.affine:
        layer.weight, layer.bias = module.weight, module.bias
    if module.track_running_stats:
        layer.running_mean, layer.running_var = module.running_mean, module.running_var
        layer.num_batches_tracked = module.num_batches_tracked
    return layer.train(module.training)
