"""Observation encoders φ for imitation pretraining (Brandfonbrener, Nachum, Bruna, NeurIPS 2023).

The paper's encoder (imitation_pretraining/networks/encoder.py, simple_conv.py, spatial_layers.py;
registry name `encoder-conv-softmax-64-norm`): a conv stack (channels 32, 64, 128, 256, 3x3
kernels, strides 2, 2, 1, 1, no padding, GELU), a 1x1 conv to 256 keypoint maps, a spatial softmax
(each map's expected x, y), a linear layer to the latent size (64), then LayerNorm and tanh
("normalize_merge"): a bounded, low-dimensional representation. With a Dict observation the latent
is split evenly between a pixels branch and a state branch (each normalised the same way) and the
two are concatenated. State-only (Box) observations go through an MLP to the latent.

Everything here is torch; sizes come from `EncoderConfig` (configs/imitation/pretrain.yaml).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from torch import nn

from robolearn.errors import UserError

TensorObs = torch.Tensor | dict[str, torch.Tensor]


@dataclass
class EncoderConfig:
    """Encoder sizes; the defaults are the paper's (`encoder-conv-softmax-64-norm`)."""

    latent_dim: int = 64
    conv_channels: Sequence[int] = (32, 64, 128, 256)
    conv_strides: Sequence[int] = (2, 2, 1, 1)
    kernel_size: int = 3
    keypoints: int = 256
    state_hidden: Sequence[int] = field(default_factory=lambda: (256, 256))
    normalize: bool = True
    keys: Sequence[str] | None = (
        None  # Dict observations: the keys encoded (None: all; the paper's point mass: pixels)
    )

    @classmethod
    def from_mapping(cls, raw: dict[str, Any]) -> EncoderConfig:
        """Build from a config mapping, naming an unknown key in a one-line error."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(raw) - known)
        if unknown:
            raise UserError(f"unknown config key encoder.{unknown[0]}; keys here: {', '.join(sorted(known))}")
        cfg = cls(**raw)
        cfg.conv_channels = tuple(int(c) for c in cfg.conv_channels)
        cfg.conv_strides = tuple(int(s) for s in cfg.conv_strides)
        cfg.state_hidden = tuple(int(h) for h in cfg.state_hidden)
        if cfg.keys is not None:
            cfg.keys = tuple(str(k) for k in cfg.keys)
            bad = sorted(set(cfg.keys) - {"pixels", "state"})
            if bad or not cfg.keys:
                raise UserError(f"encoder.keys={list(cfg.keys)}: choose from pixels, state (or null for all)")
        if len(cfg.conv_channels) != len(cfg.conv_strides):
            raise UserError(
                f"encoder.conv_channels has {len(cfg.conv_channels)} layers but encoder.conv_strides "
                f"{len(cfg.conv_strides)}; give one stride per layer"
            )
        if cfg.latent_dim < 2 or cfg.keypoints < 1:
            raise UserError(
                f"encoder.latent_dim={cfg.latent_dim} / keypoints={cfg.keypoints}: use latent_dim >= 2, keypoints >= 1"
            )
        return cfg

    def to_dict(self) -> dict[str, Any]:
        """Plain-data form (saved with the encoder)."""
        out = asdict(self)
        for key in ("conv_channels", "conv_strides", "state_hidden"):
            out[key] = list(out[key])
        out["keys"] = None if self.keys is None else list(self.keys)
        return out


def mlp(inp: int, hidden: Sequence[int], out: int, dropout: float = 0.0) -> nn.Sequential:
    """Linear layers with GELU between them (and dropout after each hidden layer)."""
    layers: list[nn.Module] = []
    for width in hidden:
        layers += [nn.Linear(inp, width), nn.GELU()]
        if dropout > 0:
            layers.append(nn.Dropout(dropout))
        inp = width
    layers.append(nn.Linear(inp, out))
    return nn.Sequential(*layers)


class SpatialSoftmax(nn.Module):
    """Keypoints from feature maps: a 1x1 conv to K maps, then each map's softmax-weighted x, y
    in [-1, 1] (Levine et al. 2016; the paper's spatial_layers.SpatialSoftmax)."""

    def __init__(self, in_channels: int, keypoints: int, height: int, width: int) -> None:
        super().__init__()
        self.project = nn.Conv2d(in_channels, keypoints, kernel_size=1)
        ys, xs = torch.meshgrid(torch.linspace(-1, 1, height), torch.linspace(-1, 1, width), indexing="ij")
        self.register_buffer("grid", torch.stack([xs.reshape(-1), ys.reshape(-1)], dim=-1))  # (H*W, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) feature maps -> (B, 2K) expected keypoint coordinates."""
        maps = self.project(x).flatten(2)  # (B, K, H*W)
        attention = torch.softmax(maps, dim=-1)
        grid: torch.Tensor = self.grid  # type: ignore[assignment]
        return (attention @ grid).flatten(1)


class PixelEncoder(nn.Module):
    """Conv stack + spatial softmax + linear (+ LayerNorm, tanh): (B, H, W, 3) uint8 -> (B, out_dim)."""

    def __init__(self, image_shape: tuple[int, int, int], out_dim: int, cfg: EncoderConfig) -> None:
        super().__init__()
        height, width, channels = image_shape
        layers: list[nn.Module] = []
        for out_channels, stride in zip(cfg.conv_channels, cfg.conv_strides, strict=True):
            layers += [nn.Conv2d(channels, out_channels, cfg.kernel_size, stride=stride), nn.GELU()]
            channels = out_channels
            height = (height - cfg.kernel_size) // stride + 1
            width = (width - cfg.kernel_size) // stride + 1
        if height < 1 or width < 1:
            raise UserError(
                f"images of {image_shape[0]}x{image_shape[1]} are too small for encoder.conv_strides "
                f"{list(cfg.conv_strides)}; use larger images or fewer/smaller strides"
            )
        self.conv = nn.Sequential(*layers)
        self.softmax = SpatialSoftmax(channels, cfg.keypoints, height, width)
        self.head = nn.Linear(2 * cfg.keypoints, out_dim)
        self.norm = nn.LayerNorm(out_dim) if cfg.normalize else None

    def forward(self, pixels: torch.Tensor) -> torch.Tensor:
        """Encode channel-last images (uint8 0..255 or float 0..1)."""
        x = pixels.permute(0, 3, 1, 2).float()
        if pixels.dtype == torch.uint8:
            x = x / 255.0
        z = self.head(self.softmax(self.conv(x)))
        return torch.tanh(self.norm(z)) if self.norm is not None else z


class StateEncoder(nn.Module):
    """Standardised state -> MLP -> (LayerNorm, tanh)."""

    mean: torch.Tensor
    std: torch.Tensor

    def __init__(self, dim: int, out_dim: int, cfg: EncoderConfig) -> None:
        super().__init__()
        self.register_buffer("mean", torch.zeros(dim))
        self.register_buffer("std", torch.ones(dim))
        self.net = mlp(dim, cfg.state_hidden, out_dim)
        self.norm = nn.LayerNorm(out_dim) if cfg.normalize else None

    def forward(self, state: torch.Tensor) -> torch.Tensor:
        """Encode a (B, n) state batch."""
        z = self.net((state.float() - self.mean) / self.std)
        return torch.tanh(self.norm(z)) if self.norm is not None else z


class ObservationEncoder(nn.Module):
    """φ: a Box state, or a Dict of pixels and/or state (the latent split between them, as in the paper)."""

    def __init__(self, observation_space: spaces.Space, cfg: EncoderConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.latent_dim = cfg.latent_dim
        self.pixels: PixelEncoder | None = None
        self.state: StateEncoder | None = None
        if isinstance(observation_space, spaces.Dict):
            keys = [
                k
                for k in ("pixels", "state")
                if k in observation_space.spaces and (cfg.keys is None or k in cfg.keys)
            ]
            if not keys:
                raise UserError(
                    f"encoder.keys={list(cfg.keys or [])} names none of the observation's keys {sorted(observation_space.spaces)}"
                )
            part = cfg.latent_dim // len(keys)
            sizes = {k: part for k in keys}
            sizes[keys[-1]] = cfg.latent_dim - part * (len(keys) - 1)
            if "pixels" in sizes:
                shape = observation_space.spaces["pixels"].shape
                assert shape is not None and len(shape) == 3
                self.pixels = PixelEncoder((shape[0], shape[1], shape[2]), sizes["pixels"], cfg)
            if "state" in sizes:
                self.state = StateEncoder(
                    int(np.prod(observation_space.spaces["state"].shape or ())), sizes["state"], cfg
                )
        elif isinstance(observation_space, spaces.Box):
            self.state = StateEncoder(int(np.prod(observation_space.shape)), cfg.latent_dim, cfg)
        else:
            raise UserError(
                f"observation space {observation_space} has no encoder; use a Box or a Dict of pixels/state"
            )
        self.dict_obs = isinstance(observation_space, spaces.Dict)

    def set_state_stats(self, mean: np.ndarray, std: np.ndarray) -> None:
        """Standardise the state input with the pretraining data's statistics (saved with φ)."""
        if self.state is not None:
            self.state.mean.copy_(torch.as_tensor(mean, dtype=torch.float32))
            self.state.std.copy_(torch.as_tensor(np.maximum(std, 1e-6), dtype=torch.float32))

    def forward(self, obs: TensorObs) -> torch.Tensor:
        """(..., obs) -> (..., latent_dim); leading dims beyond the batch are flattened and restored."""
        parts: list[torch.Tensor] = []
        lead: tuple[int, ...] = ()
        if isinstance(obs, dict):
            if self.pixels is not None:
                pix = obs["pixels"]
                lead = tuple(pix.shape[:-3])
                parts.append(self.pixels(pix.reshape(-1, *pix.shape[-3:])))
            if self.state is not None:
                st = obs["state"]
                lead = tuple(st.shape[:-1])
                parts.append(self.state(st.reshape(-1, st.shape[-1])))
        else:
            assert self.state is not None
            lead = tuple(obs.shape[:-1])
            parts.append(self.state(obs.reshape(-1, obs.shape[-1])))
        z = torch.cat(parts, dim=-1) if len(parts) > 1 else parts[0]
        return z.reshape(*lead, self.latent_dim)


def obs_to_torch(obs: Any, device: torch.device | str = "cpu") -> TensorObs:
    """numpy observations (array, or dict of arrays) as tensors; pixels keep uint8 (scaled in φ)."""
    if isinstance(obs, dict):
        return {k: torch.as_tensor(np.asarray(v), device=device) for k, v in obs.items()}
    return torch.as_tensor(np.asarray(obs, dtype=np.float32), device=device)


def state_stats(observations: Any) -> tuple[np.ndarray, np.ndarray] | None:
    """Mean and std of the state part of flat observations (None when there is no state)."""
    state = observations.get("state") if isinstance(observations, dict) else observations
    if state is None:
        return None
    state = np.asarray(state, dtype=np.float64).reshape(len(state), -1)
    return state.mean(0), state.std(0) + 1e-6
