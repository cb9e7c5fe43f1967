"""RT-1's action tokens: each action dimension in [-1, 1] (min-max normalised) as one of `bins` uniform bins."""
from __future__ import annotations

import torch


def to_bins(x: torch.Tensor, bins: int) -> torch.Tensor:
    """[-1, 1] -> bin index 0..bins-1 (values outside are clipped to the end bins)."""
    return ((x.clamp(-1.0, 1.0) + 1.0) * (bins / 2.0)).floor().clamp(0, bins - 1).long()


def from_bins(index: torch.Tensor, bins: int) -> torch.Tensor:
    """Bin index -> the bin's centre in [-1, 1]: within half a bin (1 / bins) of every value that maps to it."""
    return (index.float() + 0.5) * (2.0 / bins) - 1.0
