"""Small helpers over ``torch.distributed`` that also work, as no-ops, in a single process."""

import os

import torch
import torch.distributed as dist


def is_distributed() -> bool:
    return dist.is_available() and dist.is_initialized()


def get_world_size() -> int:
    return dist.get_world_size() if is_distributed() else 1


def get_rank() -> int:
    return dist.get_rank() if is_distributed() else 0


def get_local_rank() -> int:
    """Rank of this process on its machine (set by :func:`kdzoo.engine.launch` and by torchrun)."""
    return int(os.environ.get("LOCAL_RANK", 0)) if is_distributed() else 0


def is_main_process() -> bool:
    return get_rank() == 0


def synchronize() -> None:
    """Barrier across all processes; nothing in a single process."""
    if get_world_size() > 1:
        dist.barrier()


def all_gather_tensor(tensor: torch.Tensor) -> torch.Tensor:
    """Concatenate along dim 0 the same-shaped ``tensor`` of every rank, in rank order.

    Shapes: ``[N, ...]`` on each rank -> ``[world_size * N, ...]``. Not differentiable.
    """
    world_size = get_world_size()
    if world_size == 1:
        return tensor
    gathered = torch.empty(
        (world_size * tensor.shape[0], *tensor.shape[1:]), dtype=tensor.dtype, device=tensor.device
    )
    _all_gather_single(gathered, tensor.contiguous())
    return gathered


def gather_global_batch(local: torch.Tensor) -> torch.Tensor:
    """This rank's rows ``[B, ...]`` among every rank's, ``[world_size * B, ...]`` in rank order,
    for a loss over the global batch. Only this rank's rows carry gradient: the others' are
    constants here and get theirs on their own rank (see :func:`sum_gradient_over_ranks`)."""
    world_size = get_world_size()
    if world_size == 1:
        return local
    parts = list(all_gather_tensor(local.detach()).split(len(local)))
    parts[get_rank()] = local
    return torch.cat(parts)


def sum_gradient_over_ranks(loss: torch.Tensor) -> torch.Tensor:
    """``loss``, a loss over the global batch (:func:`gather_global_batch`), with its gradient
    (not its value) multiplied by the world size. Each rank's gradient reaches only its own rows
    and DDP averages gradients over ranks; scaled, the average is the sum, which is the gradient
    one process computes over the same global batch."""
    world_size = get_world_size()
    if world_size == 1:
        return loss
    return world_size * loss - (world_size - 1) * loss.detach()


# torch >= 2.14 renamed all_gather_into_tensor; both take (output, input).
_all_gather_single = getattr(dist, "all_gather_single", None) or dist.all_gather_into_tensor


def broadcast_tensors(tensors: list[torch.Tensor], src: int = 0) -> None:
    """Overwrite ``tensors`` on every rank with rank ``src``'s, in one message per dtype."""
    if get_world_size() == 1 or not tensors:
        return
    groups: dict[tuple, list[torch.Tensor]] = {}
    for t in tensors:
        groups.setdefault((t.dtype, t.device), []).append(t)
    for group in groups.values():
        flat = torch.cat([t.reshape(-1) for t in group])
        dist.broadcast(flat, src)
        for t, chunk in zip(group, flat.split([t.numel() for t in group]), strict=True):
            t.copy_(chunk.view_as(t))


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over ranks, in place; returns it."""
    if get_world_size() > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor
