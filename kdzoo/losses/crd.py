"""CRD's noise-contrastive estimation (Tian et al., "Contrastive Representation Distillation",
ICLR 2020), with the partition function Z of its scores."""

import torch
from torch import nn

from kdzoo.utils import comm

from .build import LOSS_REGISTRY


@LOSS_REGISTRY.register("crd_nce")
class CRDNCELoss(nn.Module):
    """NCE with noise prior ``Pn = 1 / num_samples`` over normalised scores ``P`` ``[B, K + 1]``
    (column 0 the positive)::

        -[log(P_0 / (P_0 + K Pn + eps)) + sum_k log(K Pn / (P_k + K Pn + eps))], mean over B.
    """

    def __init__(self, num_samples: int, eps: float = 1e-7) -> None:
        super().__init__()
        self.num_samples = num_samples
        self.eps = eps

    def forward(self, scores: torch.Tensor) -> torch.Tensor:
        k = scores.shape[1] - 1
        noise = k / self.num_samples  # K * Pn
        positive, negatives = scores[:, 0], scores[:, 1:]
        log_d1 = torch.log(positive / (positive + noise + self.eps))
        log_d0 = torch.log(noise / (negatives + noise + self.eps))
        return -(log_d1.sum() + log_d0.sum()) / len(scores)


class PartitionEstimate(nn.Module):
    """Divides exponentiated scores by ``Z = mean(exp scores) * num_samples``.

    ``momentum == 0`` (CRD): Z is estimated on the first batch (over all ranks) and then frozen.
    ``momentum > 0``: Z follows ``Z = m Z + (1 - m) estimate`` every step (an option CRD lacks:
    a frozen Z goes stale as the embeddings train).
    """

    def __init__(self, num_samples: int, momentum: float = 0.0) -> None:
        super().__init__()
        self.num_samples = num_samples
        self.momentum = momentum
        self.register_buffer("z", torch.tensor(-1.0))  # < 0: not estimated yet
        self._known = False  # cached "z >= 0", so a frozen Z costs no host sync per step
        self.register_load_state_dict_post_hook(lambda module, _: setattr(module, "_known", False))

    @torch.no_grad()
    def _estimate(self, exp_scores: torch.Tensor) -> torch.Tensor:
        totals = torch.stack([exp_scores.sum(), exp_scores.new_tensor(exp_scores.numel())])
        totals = comm.all_reduce_sum(totals)
        return totals[0] / totals[1] * self.num_samples

    def forward(self, exp_scores: torch.Tensor) -> torch.Tensor:
        if self.momentum > 0:
            estimate = self._estimate(exp_scores)
            self.z.copy_(
                torch.where(
                    self.z < 0, estimate, self.momentum * self.z + (1 - self.momentum) * estimate
                )
            )
        elif not self._known:
            if self.z < 0:
                self.z.copy_(self._estimate(exp_scores))
            self._known = True
        return exp_scores / self.z
