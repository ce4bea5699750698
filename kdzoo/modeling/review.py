"""ReviewKD's trained modules: Chen, Liu, Zhao & Jia, "Distilling Knowledge via Knowledge Review",
CVPR 2021.

The student's stage outputs are not compared with the teacher's one by one: each is fused with
what the deeper stages have already made of theirs (the "review"), by an attention-based fusion
(ABF) module per stage, and every fused map is compared with the teacher's map of its stage. The
modules here compute what mdistiller's ``mdistiller/distillers/ReviewKD.py`` (commit a08d46f;
the same as the authors' ``CIFAR-100/model/reviewkd.py``) computes.
"""

import torch
import torch.nn.functional as F
from torch import nn


class AttentionBasedFusion(nn.Module):
    """One ABF module: a student map, fused with the residual from the deeper stages, out in the
    teacher's channels and size.

    ``forward(x, residual, out_size)``, with ``x`` ``[B, C_in, H, W]`` (a stage output, or the
    pooled vector as ``[B, C_in, 1, 1]``) and ``residual`` ``[B, C_mid, H', W']`` (what the
    deeper ABF returned; ``None`` for the deepest, which has no fusion)::

        m     = BN(conv1x1(x))                                  [B, C_mid, H, W]
        r     = nearest-neighbour resize of residual to H x W   [B, C_mid, H, W]
        a, b  = sigmoid(conv1x1([m, r]))                        two maps [B, 1, H, W]
        m     = m * a + r * b                                   (fuse only)
        m     = nearest-neighbour resize of m to out_size       (when H differs from it)
        out   = BN(conv3x3(m))                                  [B, C_out, *out_size]

    returning ``(out, m)``: ``m`` is the next (shallower) module's residual, at this stage's
    teacher size. The 1x1 and 3x3 convolutions have no bias and are initialised with
    ``kaiming_uniform_(a=1)``; the attention convolution has a bias and PyTorch's default
    initialisation; BatchNorm starts at weight 1, bias 0 (ReviewKD.py:106-144).
    """

    def __init__(self, in_channels: int, mid_channels: int, out_channels: int, fuse: bool) -> None:
        super().__init__()
        self.reduce = nn.Conv2d(in_channels, mid_channels, kernel_size=1, bias=False)
        self.reduce_bn = nn.BatchNorm2d(mid_channels)
        # Two attention maps, one for this stage's map and one for the residual.
        self.attention = nn.Conv2d(2 * mid_channels, 2, kernel_size=1) if fuse else None
        self.out = nn.Conv2d(mid_channels, out_channels, kernel_size=3, padding=1, bias=False)
        self.out_bn = nn.BatchNorm2d(out_channels)
        nn.init.kaiming_uniform_(self.reduce.weight, a=1)
        nn.init.kaiming_uniform_(self.out.weight, a=1)

    def forward(
        self,
        x: torch.Tensor,
        residual: torch.Tensor | None = None,
        out_size: tuple[int, int] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        m = self.reduce_bn(self.reduce(x))
        if self.attention is not None:
            residual = F.interpolate(residual, size=m.shape[-2:], mode="nearest")
            a = torch.sigmoid(self.attention(torch.cat([m, residual], dim=1)))
            # F = A_s * F_s + A_r * F_res: the two maps weigh the stage and what was reviewed
            m = m * a[:, 0:1] + residual * a[:, 1:2]
        if out_size is not None and tuple(m.shape[-2:]) != tuple(out_size):
            m = F.interpolate(m, size=tuple(out_size), mode="nearest")
        return self.out_bn(self.out(m)), m


class KnowledgeReview(nn.Module):
    """The review path: one :class:`AttentionBasedFusion` per student map, run from the deepest
    map up, each fusing its map with the residual of the one below.

    ``student_shapes``, ``teacher_shapes``: ``(C, H, W)`` of one sample of each map, shallowest
    first, one list as long as the other (the stage outputs and the pooled vector as
    ``(C, 1, 1)``). The middle width is ``min(max_mid_channels, C)`` of the student's last map
    for every module (mdistiller: ``min(512, in_channels[-1])``); the deepest module has no
    fusion. ``forward(maps)``: the student's maps ``[B, C_i, H_i, W_i]``, shallowest first ->
    maps in the teacher's shapes ``[B, C'_i, H'_i, W'_i]``, shallowest first.

    ``fusions[i]`` is the module of map ``i`` (mdistiller keeps them deepest first: its
    ``abfs[j]`` is ``fusions[n - 1 - j]``).
    """

    def __init__(
        self,
        student_shapes: list[tuple[int, int, int]],
        teacher_shapes: list[tuple[int, int, int]],
        max_mid_channels: int = 512,
    ) -> None:
        super().__init__()
        if len(student_shapes) != len(teacher_shapes) or not student_shapes:
            raise ValueError(
                f"the review pairs maps one to one: {len(student_shapes)} student and "
                f"{len(teacher_shapes)} teacher maps"
            )
        mid = min(max_mid_channels, student_shapes[-1][0])
        last = len(student_shapes) - 1
        self.fusions = nn.ModuleList(
            AttentionBasedFusion(s[0], mid, t[0], fuse=i < last)
            for i, (s, t) in enumerate(zip(student_shapes, teacher_shapes, strict=True))
        )
        self.out_sizes = [tuple(t[1:]) for t in teacher_shapes]

    def forward(self, maps: list[torch.Tensor]) -> list[torch.Tensor]:
        outs: list[torch.Tensor | None] = [None] * len(self.fusions)
        residual = None
        # F'_n = ABF_n(F_n); F'_i = ABF_i(F_i, residual of F'_{i+1}), i = n-1 .. 1
        for i in reversed(range(len(self.fusions))):
            outs[i], residual = self.fusions[i](maps[i], residual, self.out_sizes[i])
        return outs
