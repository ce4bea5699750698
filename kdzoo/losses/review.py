"""The hierarchical context loss (HCL) of ReviewKD: Chen, Liu, Zhao & Jia, "Distilling Knowledge
via Knowledge Review", CVPR 2021.

Computes what mdistiller's ``hcl_loss`` (``mdistiller/distillers/ReviewKD.py``, commit a08d46f;
the same as the authors' ``hcl`` in ``CIFAR-100/model/reviewkd.py``) computes.
"""

import torch
import torch.nn.functional as F
from torch import nn

from ._feature_maps import check_same_length, full_precision
from .build import LOSS_REGISTRY


@LOSS_REGISTRY.register("hcl")
class HCLLoss(nn.Module):
    """The hierarchical context loss between pairs of maps, summed over the pairs.

    Paper: the distance between a fused student map and the teacher's map is taken at several
    levels of context, by spatial-pyramid pooling both maps and comparing each level with an L2
    distance, then aggregating the levels.

    What the reference computes (ReviewKD.py:11-28), and this module too, for each pair of maps
    ``f_s``, ``f_t`` ``[B, C, H, W]`` of one shape::

        levels  = the full map, then the adaptive average pools to l x l for l in (4, 2, 1)
                  with l < H (the student map's height; the 1 x 1 pooled vector has only the
                  full level, an 8 x 8 map all four)
        weights = 1 for the full map, then 1/2, 1/4, 1/8 for the pools kept, in that order
        HCL     = sum_k w_k * MSE(P_k(f_s), P_k(f_t)) / sum_k w_k

    MSE is the mean over all ``B C h w`` elements of a level, so each pair's term is a weighted
    average of per-element means, and pairs are summed, not averaged. The levels are set by
    ``levels`` (the reference's ``[4, 2, 1]``). Half-precision maps are computed in float32; the
    teacher's maps are detached (its forward runs under ``no_grad`` in the reference).

    ``forward(maps_s, maps_t)``: two lists of ``[B, C_i, H_i, W_i]`` maps, pairwise of one
    shape -> scalar.
    """

    def __init__(self, levels: tuple[int, ...] = (4, 2, 1)) -> None:
        super().__init__()
        self.levels = tuple(levels)

    def one_pair(self, f_s: torch.Tensor, f_t: torch.Tensor) -> torch.Tensor:
        """The HCL of one pair of maps ``[B, C, H, W]``: a scalar."""
        if f_s.shape != f_t.shape:
            raise ValueError(
                f"HCL compares maps of one shape: {tuple(f_s.shape)} and {tuple(f_t.shape)}"
            )
        height = f_s.shape[2]
        total, weight_sum, weight = F.mse_loss(f_s, f_t), 1.0, 1.0
        for size in self.levels:
            if size >= height:  # a pool as large as the map adds no context
                continue
            weight /= 2
            pooled_s = F.adaptive_avg_pool2d(f_s, (size, size))
            pooled_t = F.adaptive_avg_pool2d(f_t, (size, size))
            total = total + weight * F.mse_loss(pooled_s, pooled_t)
            weight_sum += weight
        # HCL(F_s, F_t) = sum_k w_k ||P_k(F_s) - P_k(F_t)||^2 / sum_k w_k, w_k = 1, 1/2, 1/4, 1/8
        return total / weight_sum

    @full_precision
    def forward(self, maps_s: list[torch.Tensor], maps_t: list[torch.Tensor]) -> torch.Tensor:
        check_same_length(maps_s, maps_t, "HCL")
        # L_HCL = sum_i HCL(F'_s^i, F_t^i) over the stages i
        return sum(
            self.one_pair(f_s, f_t.detach()) for f_s, f_t in zip(maps_s, maps_t, strict=True)
        )
