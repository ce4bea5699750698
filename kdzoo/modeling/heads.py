"""Small projection heads that distillers put on top of pooled backbone features."""

import math

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


class HintRegressor(nn.Module):
    """FitNet's hint regressor: the student's map ``[B, C_s, H_s, W_s]`` -> the teacher's
    ``[B, C_t, H_t, W_t]``, as RepDistiller's ``ConvReg`` (models/util.py:131-154, ``use_relu``
    on, as ``--distill hint`` builds it).

    The layer ``conv`` is chosen from the heights, in this order:

    * ``H_s == 2 H_t``: ``Conv2d(C_s, C_t, 3, stride=2, padding=1)`` (halves the map);
    * ``2 H_s == H_t``: ``ConvTranspose2d(C_s, C_t, 4, stride=2, padding=1)`` (doubles it);
    * ``H_s >= H_t``: ``Conv2d(C_s, C_t, kernel (1 + H_s - H_t, 1 + W_s - W_t))``, no padding
      (``1 x 1`` for maps of one size);
    * otherwise no regressor exists: ``ValueError`` (the reference raises ``NotImplemented(...)``,
      which is not callable, so it fails with a ``TypeError``).

    then ``BatchNorm2d(C_t)`` (``bn``) and ReLU. Biases on, PyTorch's default initialisation.
    ``student_shape``, ``teacher_shape``: ``(C, H, W)`` of one sample, read off a dummy forward.
    ``relu=False`` leaves the ReLU out (``ConvReg(use_relu=False)``, AB's connectors).
    """

    def __init__(
        self, student_shape: tuple[int, ...], teacher_shape: tuple[int, ...], relu: bool = True
    ) -> None:
        super().__init__()
        self.relu = relu
        (s_c, s_h, s_w), (t_c, t_h, t_w) = student_shape, teacher_shape
        if s_h == 2 * t_h:
            self.conv = nn.Conv2d(s_c, t_c, kernel_size=3, stride=2, padding=1)
        elif 2 * s_h == t_h:
            self.conv = nn.ConvTranspose2d(s_c, t_c, kernel_size=4, stride=2, padding=1)
        elif s_h >= t_h and s_w >= t_w:
            self.conv = nn.Conv2d(s_c, t_c, kernel_size=(1 + s_h - t_h, 1 + s_w - t_w))
        else:
            raise ValueError(
                f"no hint regressor maps a student map of {s_h}x{s_w} to a teacher map of "
                f"{t_h}x{t_w} (it halves, doubles or shrinks the map; choose another hint layer)"
            )
        self.bn = nn.BatchNorm2d(t_c)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.bn(self.conv(x))
        return F.relu(x) if self.relu else x


class ABConnector(nn.Module):
    """AB's connectors (RepDistiller's ``Connector``, models/util.py:65-90): one per pair of
    stage maps, the student's ``[B, C_s, H_s, W_s]`` -> the teacher's ``[B, C_t, H_t, W_t]``.

    Where the two maps have the same channels and height the connector is the identity (no
    parameters); otherwise a :class:`HintRegressor` without ReLU (``ConvReg(s, t,
    use_relu=False)``: conv then BatchNorm). The keys are ``connectors.<i>.conv.*`` and
    ``connectors.<i>.bn.*``, the reference's. ``student_shapes``, ``teacher_shapes``: ``(C, H, W)``
    of each map of one sample, lists of one length. ``forward`` takes and returns a list of maps.
    """

    def __init__(
        self,
        student_shapes: list[tuple[int, ...]],
        teacher_shapes: list[tuple[int, ...]],
    ) -> None:
        super().__init__()
        if len(student_shapes) != len(teacher_shapes):
            raise ValueError(
                f"AB connectors pair maps one to one; got {len(student_shapes)} student and "
                f"{len(teacher_shapes)} teacher maps"
            )
        self.connectors = nn.ModuleList(
            nn.Identity() if s[:2] == t[:2] else HintRegressor(s, t, relu=False)
            for s, t in zip(student_shapes, teacher_shapes, strict=True)
        )

    def forward(self, g_s: list[torch.Tensor]) -> list[torch.Tensor]:
        return [connector(f) for connector, f in zip(self.connectors, g_s, strict=True)]


class OFDConnector(nn.Sequential):
    """OFD's student transform (Heo et al., ICCV 2019): ``Conv2d(C_s, C_t, k, padding
    (k - 1) // 2, no bias)`` then ``BatchNorm2d(C_t)``, ``[B, C_s, H, W] -> [B, C_t, H, W]``.

    Initialised as the reference initialises it (mdistiller a08d46f, ``OFD.py``
    ``ConnectorConvBN._build_feature_connector``; the authors' ``build_feature_connector``): conv
    weights from ``N(0, 2 / (k * k * C_t))`` (He's fan-out rule), BN weight 1 and bias 0. The keys
    are ``0.weight`` (conv) and ``1.*`` (BN).
    """

    def __init__(self, student_channels: int, teacher_channels: int, kernel_size: int = 1) -> None:
        conv = nn.Conv2d(
            student_channels,
            teacher_channels,
            kernel_size,
            stride=1,
            padding=(kernel_size - 1) // 2,
            bias=False,
        )
        fan_out = kernel_size * kernel_size * teacher_channels
        nn.init.normal_(conv.weight, 0.0, math.sqrt(2.0 / fan_out))
        bn = nn.BatchNorm2d(teacher_channels)
        nn.init.ones_(bn.weight)
        nn.init.zeros_(bn.bias)
        super().__init__(conv, bn)
