"""Per-feature mean/std normalisation whose statistics live in buffers, so they are saved with the model."""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from robolearn.errors import UserError


class Normalizer(nn.Module):
    """Maps x to (x - mean) / std per feature; std is floored so constant features do not blow up."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, dim: int, std_floor: float = 1e-6) -> None:
        super().__init__()
        if dim <= 0:
            raise UserError(f"Normalizer dim={dim} must be positive")
        self.dim = dim
        self.std_floor = std_floor
        # Buffers, not parameters: the optimiser must not move them, but state_dict() must carry them.
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))

    def fit(self, x: np.ndarray | torch.Tensor) -> None:
        """Set mean/std from samples x [N, dim] (any leading dims are flattened)."""
        t = torch.as_tensor(np.asarray(x) if not isinstance(x, torch.Tensor) else x, dtype=torch.float32)
        t = t.reshape(-1, t.shape[-1])
        if t.shape[-1] != self.dim:
            raise UserError(f"Normalizer.fit got {t.shape[-1]} features, expected {self.dim}")
        if t.shape[0] == 0:
            raise UserError("Normalizer.fit got no samples; collect data before fitting")
        self.mean.copy_(t.mean(0).to(self.mean.device))
        # Population std (unbiased=False) so a single sample gives std 0 -> the floor, not NaN.
        self.std.copy_(t.std(0, unbiased=False).clamp_min(self.std_floor).to(self.std.device))

    def normalize(self, x: torch.Tensor) -> torch.Tensor:
        """(x - mean) / std."""
        return (x - self.mean) / self.std

    def denormalize(self, x: torch.Tensor) -> torch.Tensor:
        """x * std + mean."""
        return x * self.std + self.mean

    def denormalize_scale(self, x: torch.Tensor) -> torch.Tensor:
        """x * std: maps a normalised standard deviation back to raw units."""
        return x * self.std
