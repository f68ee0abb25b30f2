"""Denoisers for action-chunk diffusion: a conditional 1-D U-Net and a small transformer.

Both map (noisy action chunk (B, Tp, A), diffusion step (B,), condition (B, C)) to a chunk of the
same shape (the predicted noise, Diffusion Policy's epsilon prediction). The condition is the
encoded observation history. Architecture after Chi et al., "Diffusion Policy" (RSS 2023) Sec. III-B
and IV-A, and their code (real-stanford/diffusion_policy, diffusion_policy/model/diffusion/
conditional_unet1d.py and transformer_for_diffusion.py); written here from the paper's description.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import nn


class SinusoidalStepEmbedding(nn.Module):
    """Sinusoidal features of the diffusion step (Vaswani et al.'s position code, as DDPM uses)."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        if dim % 2:
            raise ValueError(f"step embedding size {dim} must be even")
        half = dim // 2
        freqs: torch.Tensor = torch.exp(
            -math.log(10000.0) * torch.arange(half, dtype=torch.float32) / max(half - 1, 1)
        )
        self.freqs: torch.Tensor
        self.register_buffer("freqs", freqs, persistent=False)

    def forward(self, step: torch.Tensor) -> torch.Tensor:
        """(B,) steps -> (B, dim) features."""
        angles = step.float()[:, None] * self.freqs[None, :]
        return torch.cat([angles.sin(), angles.cos()], dim=-1)


class ConvNormMish(nn.Module):
    """Conv1d -> GroupNorm -> Mish, length preserving (the U-Net's basic block)."""

    def __init__(self, cin: int, cout: int, kernel: int, groups: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv1d(cin, cout, kernel, padding=kernel // 2),
            nn.GroupNorm(min(groups, cout), cout),
            nn.Mish(),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, cin, T) -> (B, cout, T)."""
        return self.net(x)


class FiLMResidualBlock(nn.Module):
    """Two conv blocks with FiLM between them: the condition sets a per-channel scale and bias
    (Perez et al. 2018), which is how Diffusion Policy feeds the observation and the step in."""

    def __init__(self, cin: int, cout: int, cond_dim: int, kernel: int, groups: int) -> None:
        super().__init__()
        self.first = ConvNormMish(cin, cout, kernel, groups)
        self.second = ConvNormMish(cout, cout, kernel, groups)
        self.film = nn.Sequential(nn.Mish(), nn.Linear(cond_dim, 2 * cout))
        self.skip = nn.Conv1d(cin, cout, 1) if cin != cout else nn.Identity()
        self.cout = cout

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """(B, cin, T), (B, cond_dim) -> (B, cout, T)."""
        h = self.first(x)
        scale, bias = self.film(cond).unsqueeze(-1).chunk(2, dim=1)
        h = self.second(h * scale + bias)
        return h + self.skip(x)


class UnetLevel(nn.Module):
    """Two FiLM residual blocks and a resampling layer (down, up or none): one U-Net level."""

    def __init__(self, first: FiLMResidualBlock, second: FiLMResidualBlock, resample: nn.Module) -> None:
        super().__init__()
        self.first = first
        self.second = second
        self.resample = resample

    def blocks(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """The two residual blocks (before resampling)."""
        return self.second(self.first(x, cond), cond)


class ConditionalUnet1D(nn.Module):
    """A 1-D U-Net over the chunk's time axis with FiLM conditioning in every residual block.

    `down_dims` are the channel widths per level (the paper's (256, 512, 1024); smaller ones for CPU);
    each level but the last halves the time axis, so the chunk length must divide by
    2 ** (len(down_dims) - 1).
    """

    def __init__(
        self,
        action_dim: int,
        cond_dim: int,
        down_dims: Sequence[int] = (256, 512, 1024),
        step_embed_dim: int = 128,
        kernel_size: int = 5,
        groups: int = 8,
    ) -> None:
        super().__init__()
        dims = [int(d) for d in down_dims]
        self.levels = len(dims)
        self.step_embed = nn.Sequential(
            SinusoidalStepEmbedding(step_embed_dim),
            nn.Linear(step_embed_dim, 4 * step_embed_dim),
            nn.Mish(),
            nn.Linear(4 * step_embed_dim, step_embed_dim),
        )
        cdim = step_embed_dim + cond_dim

        def block(cin: int, cout: int) -> FiLMResidualBlock:
            return FiLMResidualBlock(cin, cout, cdim, kernel_size, groups)

        self.down = nn.ModuleList()  # of UnetLevel
        cin = action_dim
        for i, cout in enumerate(dims):
            last = i == len(dims) - 1
            resample: nn.Module = nn.Identity() if last else nn.Conv1d(cout, cout, 3, stride=2, padding=1)
            self.down.append(UnetLevel(block(cin, cout), block(cout, cout), resample))
            cin = cout
        self.mid = nn.ModuleList([block(dims[-1], dims[-1]), block(dims[-1], dims[-1])])
        self.up = nn.ModuleList()  # of UnetLevel
        for cout, skip in zip(reversed(dims[:-1]), reversed(dims[1:]), strict=True):
            # Input: the level below's output (width `skip`) concatenated with the skip connection.
            self.up.append(
                UnetLevel(block(2 * skip, cout), block(cout, cout), nn.ConvTranspose1d(cout, cout, 4, 2, 1))
            )
        self.head = nn.Sequential(
            ConvNormMish(dims[0], dims[0], kernel_size, groups), nn.Conv1d(dims[0], action_dim, 1)
        )

    def forward(self, sample: torch.Tensor, step: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """(B, Tp, A) noisy chunk, (B,) steps, (B, C) condition -> (B, Tp, A)."""
        length = sample.shape[1]
        if length % (2 ** (self.levels - 1)):
            raise ValueError(
                f"chunk length {length} must divide by {2 ** (self.levels - 1)} for {self.levels} U-Net levels"
            )
        c = torch.cat([self.step_embed(step), cond], dim=-1)
        x = sample.transpose(1, 2)
        skips = []
        level: UnetLevel
        for level in self.down:  # type: ignore[assignment]
            x = level.blocks(x, c)
            skips.append(x)
            x = level.resample(x)
        for blk in self.mid:
            x = blk(x, c)
        for level in self.up:  # type: ignore[assignment]
            # The finest level's skip stays unused: the head reads the upsampled path (as the paper's code).
            x = level.blocks(torch.cat([x, skips.pop()], dim=1), c)
            x = level.resample(x)
        return self.head(x).transpose(1, 2)


class TransformerDenoiser(nn.Module):
    """A small transformer denoiser: one token per chunk step, decoding with cross-attention to a
    memory of [step token, observation token] (Diffusion Policy's time-series diffusion transformer,
    Sec. III-B, with the observation history encoded into one condition vector)."""

    def __init__(
        self,
        action_dim: int,
        cond_dim: int,
        horizon: int,
        embed_dim: int = 128,
        layers: int = 4,
        heads: int = 4,
        dropout: float = 0.1,
        causal: bool = True,
    ) -> None:
        super().__init__()
        self.horizon = int(horizon)
        self.causal = bool(causal)
        self.action_in = nn.Linear(action_dim, embed_dim)
        self.position = nn.Parameter(torch.zeros(1, self.horizon, embed_dim))
        self.step_embed = SinusoidalStepEmbedding(embed_dim)
        self.cond_in = nn.Linear(cond_dim, embed_dim)
        self.memory_position = nn.Parameter(torch.zeros(1, 2, embed_dim))
        layer = nn.TransformerDecoderLayer(
            embed_dim, heads, 4 * embed_dim, dropout, activation="gelu", batch_first=True, norm_first=True
        )
        self.decoder = nn.TransformerDecoder(layer, layers)
        self.norm = nn.LayerNorm(embed_dim)
        self.head = nn.Linear(embed_dim, action_dim)
        mask = torch.triu(torch.full((self.horizon, self.horizon), float("-inf")), diagonal=1)
        self.mask: torch.Tensor
        self.register_buffer("mask", mask, persistent=False)
        nn.init.normal_(self.position, std=0.02)
        nn.init.normal_(self.memory_position, std=0.02)

    def forward(self, sample: torch.Tensor, step: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        """(B, Tp, A) noisy chunk, (B,) steps, (B, C) condition -> (B, Tp, A)."""
        if sample.shape[1] != self.horizon:
            raise ValueError(f"chunk length {sample.shape[1]} differs from the transformer's {self.horizon}")
        tokens = self.action_in(sample) + self.position
        memory = torch.stack([self.step_embed(step), self.cond_in(cond)], dim=1) + self.memory_position
        out = self.decoder(tokens, memory, tgt_mask=self.mask if self.causal else None)
        return self.head(self.norm(out))
