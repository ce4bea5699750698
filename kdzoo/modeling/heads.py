"""Small MLP heads that distillers put on top of pooled backbone features."""

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
