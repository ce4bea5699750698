"""FT's paraphraser and translator (Kim, Park & Kwak, "Paraphrasing Complex Network: Network
Compression via Factor Transfer", NeurIPS 2018), as RepDistiller builds them (models/util.py:7-62,
commit b84f547).

Both are stacks of three 3x3 convolutions (stride 1, padding 1, biases on, PyTorch's default
initialisation), each followed by an optional ``BatchNorm2d`` and ``LeakyReLU(0.1)``. The layout
of the reference's ``nn.Sequential`` is kept (an ``nn.Identity`` where it has an empty
``nn.Sequential`` in place of a BatchNorm), so the state_dict keys (``encoder.0.weight``,
``encoder.3.weight``, ...) and the order of the parameters are the reference's.
"""

import torch
from torch import nn


def _stack(conv: type[nn.Module], widths: list[tuple[int, int]], batch_norm: bool) -> nn.Sequential:
    layers: list[nn.Module] = []
    for c_in, c_out in widths:
        layers += [
            conv(c_in, c_out, 3, 1, 1),
            nn.BatchNorm2d(c_out) if batch_norm else nn.Identity(),
            nn.LeakyReLU(0.1, inplace=True),
        ]
    return nn.Sequential(*layers)


def factor_channels(channels: int, rate: float) -> int:
    """The factor's channels, ``int(channels * rate)`` (models/util.py:12, 48); ``ValueError``
    where that is 0."""
    m = int(channels * rate)
    if m < 1:
        raise ValueError(f"a factor rate of {rate} leaves a map of {channels} channels no factor")
    return m


class Paraphraser(nn.Module):
    """The teacher's paraphraser: an encoder from the teacher's map ``[B, C, H, W]`` to its factor
    ``[B, int(C * rate), H, W]`` (convolutions ``C -> C -> m -> m``) and a decoder back to
    ``[B, C, H, W]`` (transposed convolutions ``m -> m -> C -> C``), trained alone on the
    reconstruction error. BatchNorm off by default, as RepDistiller builds it
    (``Paraphraser(t_shape)``, ``use_bn=False``); its ``rate`` default is the reference's ``k``.
    """

    def __init__(self, channels: int, rate: float = 0.5, batch_norm: bool = False) -> None:
        super().__init__()
        m = factor_channels(channels, rate)
        self.encoder = _stack(nn.Conv2d, [(channels, channels), (channels, m), (m, m)], batch_norm)
        self.decoder = _stack(
            nn.ConvTranspose2d, [(m, m), (m, channels), (channels, channels)], batch_norm
        )

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``(factor, reconstruction)``; the factor alone is ``self.encoder(x)`` (the
        reference's ``is_factor=True``)."""
        factor = self.encoder(x)
        return factor, self.decoder(factor)


class Translator(nn.Module):
    """The student's translator: its map ``[B, C_s, H, W]`` -> a factor
    ``[B, int(C_t * rate), H, W]`` (convolutions ``C_s -> C_s -> m -> m``), trained with the
    student. BatchNorm on by default, as RepDistiller builds it (``use_bn=True``).
    """

    def __init__(
        self,
        student_channels: int,
        teacher_channels: int,
        rate: float = 0.5,
        batch_norm: bool = True,
    ) -> None:
        super().__init__()
        c, m = student_channels, factor_channels(teacher_channels, rate)
        self.encoder = _stack(nn.Conv2d, [(c, c), (c, m), (m, m)], batch_norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.encoder(x)
