"""InfoNCE against a dictionary of keys, and the normalised-MSE prediction loss."""

import torch
import torch.nn.functional as F
from torch import nn

from .build import LOSS_REGISTRY


@LOSS_REGISTRY.register("info_nce")
class InfoNCELoss(nn.Module):
    """``-log( exp(q.k+ / t) / (exp(q.k+ / t) + sum_i exp(q.k_i / t)) )``, mean over the batch.

    ``query``, ``positive``: ``[B, D]`` L2-normalised; ``negatives``: ``[N, D]`` L2-normalised keys
    shared by the batch. A softmax over N + 1 classes with the positive at index 0.
    """

    def __init__(self, temperature: float = 0.1) -> None:
        super().__init__()
        self.temperature = temperature

    def forward(
        self, query: torch.Tensor, positive: torch.Tensor, negatives: torch.Tensor
    ) -> torch.Tensor:
        logits = torch.cat([(query * positive).sum(1, keepdim=True), query @ negatives.t()], 1)
        target = torch.zeros(len(query), dtype=torch.long, device=query.device)
        return F.cross_entropy(logits / self.temperature, target)


@LOSS_REGISTRY.register("normalized_mse")
class NormalizedMSELoss(nn.Module):
    """``|| p/|p| - z/|z| ||^2 = 2 - 2 cos(p, z)``, mean over the batch; ``z`` is a target (no
    gradient flows into it). ``prediction``, ``target``: ``[B, D]``."""

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        cos = F.cosine_similarity(prediction, target.detach(), dim=1)
        return (2 - 2 * cos).mean()
