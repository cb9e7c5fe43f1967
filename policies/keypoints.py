"""Spatial-softmax keypoints, shared by BESO's image encoder and GRIF's policy head."""
from __future__ import annotations

import torch
from torch import nn


class SpatialSoftmax(nn.Module):
    """Feature map -> expected (x, y) of `k` learned keypoints: keeps where things are, which pooling would lose."""

    def __init__(self, channels: int, k: int):
        super().__init__()
        self.proj = nn.Conv2d(channels, k, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.proj(x)
        n, k, h, w = x.shape
        attn = x.flatten(2).softmax(-1)                                           # (N, K, H*W)
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, h, device=x.device),
                                torch.linspace(-1, 1, w, device=x.device), indexing="ij")
        grid = torch.stack((xs.flatten(), ys.flatten()), -1)                      # (H*W, 2)
        return (attn @ grid).flatten(1)                                           # (N, 2K)
