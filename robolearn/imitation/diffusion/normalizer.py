"""Min-max normalisation to [-1, 1], saved with the policy (Diffusion Policy's "limits" mode, Sec. V-C:
actions in [-1, 1] match the DDPM's clipped sample range)."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

# A dimension whose range is below this is constant in the data: it is centred, not stretched,
# so that noise in a constant coordinate is not blown up by 1/range.
_MIN_RANGE = 1e-4


class RangeNormalizer(nn.Module):
    """Maps each coordinate's data range [lo, hi] to [-1, 1]; its buffers go into the state dict."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.center: torch.Tensor
        self.half_range: torch.Tensor
        self.register_buffer("center", torch.zeros(dim))
        self.register_buffer("half_range", torch.ones(dim))

    def fit(self, data: np.ndarray | torch.Tensor) -> RangeNormalizer:
        """Set the range from data (N, ..., dim), over every leading axis."""
        x = torch.as_tensor(np.asarray(data), dtype=torch.float32).reshape(-1, self.center.shape[0])
        lo, hi = x.min(dim=0).values, x.max(dim=0).values
        half = (hi - lo) / 2
        self.center.copy_((hi + lo) / 2)
        self.half_range.copy_(torch.where(half < _MIN_RANGE / 2, torch.ones_like(half), half))
        return self

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """Data units -> [-1, 1] (on the data seen by fit)."""
        return (x - self.center) / self.half_range

    def unnormalize(self, x: torch.Tensor) -> torch.Tensor:
        """[-1, 1] -> data units."""
        return x * self.half_range + self.center
