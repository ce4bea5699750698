"""Small projection heads that distillers put on top of pooled backbone features."""

import torch
import torch.nn.functional as F
from torch import nn


class MLPHead(nn.Sequential):
    """``Linear(d_in, hidden) -> BatchNorm1d -> ReLU -> Linear(hidden, d_out)``, biases on.

    CoCoRD's projection heads (``hidden = d_out = 2048``) and predictor (``hidden = 512``), as in
    SimSiam/BYOL. ``[B, d_in] -> [B, d_out]``.
    """

    def __init__(self, d_in: int, hidden: int, d_out: int) -> None:
        super().__init__(
            nn.Linear(d_in, hidden),
            nn.BatchNorm1d(hidden),
            nn.ReLU(inplace=True),
            nn.Linear(hidden, d_out),
        )


class LinearEmbed(nn.Module):
    """``Linear(d_in, d_out)`` then L2 normalisation over features: ``[B, d_in] -> [B, d_out]``,
    each row of unit norm.

    CRD's embedding heads (``d_out = 128``), also used by WCoRD. The layer is ``self.linear``, so
    the state_dict keys are ``linear.weight`` and ``linear.bias``.
    """

    def __init__(self, d_in: int, d_out: int) -> None:
        super().__init__()
        self.linear = nn.Linear(d_in, d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.linear(x), dim=1)
