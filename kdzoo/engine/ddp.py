"""Wrapping a distiller for data-parallel training."""

import inspect

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from kdzoo.utils import comm


def create_ddp_model(
    distiller: nn.Module, device: torch.device
) -> tuple[nn.Module, list[torch.Tensor]]:
    """``(model, buffers to broadcast)``: the distiller itself on one process; under several, the
    distiller in DistributedDataParallel and the buffers the BroadcastBuffers hook must copy from
    rank 0 after every step."""
    if comm.get_world_size() == 1:
        return distiller, []
    # DDP would broadcast every buffer before every forward. Only the running statistics of the
    # trained normalisation layers differ between ranks; the BroadcastBuffers hook copies rank 0's
    # after every step, so all ranks agree whenever the model is evaluated or saved. Memories stay
    # equal through their own all-gather; the teacher never changes.
    frozen = set(distiller.teacher.modules()) if distiller.teacher is not None else set()
    synced_buffers = [
        b
        for m in distiller.modules()
        if isinstance(m, nn.modules.batchnorm._NormBase) and m not in frozen
        for b in m.buffers()
    ]
    device_ids = [device.index] if device.type == "cuda" else None
    # torch >= 2.14 renamed the switch; both leave the buffers to the hook above.
    if "forward_sync_buffers" in inspect.signature(DistributedDataParallel).parameters:
        no_sync = {"forward_sync_buffers": False}
    else:
        no_sync = {"broadcast_buffers": False}
    return DistributedDataParallel(distiller, device_ids=device_ids, **no_sync), synced_buffers
