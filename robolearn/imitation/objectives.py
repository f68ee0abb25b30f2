"""Pretraining objectives for an observation encoder φ on multitask demonstrations.

Brandfonbrener, Nachum, Bruna, "Inverse Dynamics Pretraining Learns Good Representations for
Multitask Imitation" (NeurIPS 2023) compare, on the same multitask data (each demo's task hidden):

- `id`, inverse dynamics: predict a_t from [φ(o_t), φ(o_{t+k})] (their inverse_dynamics_learner.py;
  k = nstep = 1, the MLP head 256x2 with dropout 0.1, MSE);
- `bc`, multitask behaviour cloning: predict a_t from φ(o_t) alone (their bc_learner.py);
- `contrastive`, InfoNCE between a projection of [φ(o_t), e(a_t)] and one of φ(o_{t+k}), other
  batch elements as negatives (their contrastive_learner.py with include_action=True, shared
  encoder, temperature 1, projections to 64); `contrastive_noact` drops the action (their SimCLR
  variant: nstep 0 and two random shifts of the same image);
- `forward`, forward dynamics in latent space: predict φ̄(o_{t+k}) from [φ(o_t), a_t], φ̄ an EMA
  copy of φ and a cosine loss (BYOL/SPR-style, Schwarzer et al. 2021; the paper's forward model
  reconstructs pixels instead, which we do not build);
- `none`: no pretraining (φ stays at its random initialisation; finetuning then trains it).

Each objective is a module over (o_t, o_{t+k}, a_t) batches with `loss(batch) -> (loss, info)`;
actions arrive normalised (ActionScaler).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import torch
import torch.nn.functional as F
from gymnasium import spaces
from torch import nn

from robolearn.errors import UserError
from robolearn.imitation.encoders import ObservationEncoder, TensorObs, mlp

OBJECTIVES = ("id", "bc", "contrastive", "contrastive_noact", "forward", "none")


class PairBatch(NamedTuple):
    """(o_t, o_{t+k}, normalised a_t) as tensors."""

    obs: TensorObs
    next_obs: TensorObs
    action: torch.Tensor


class ActionScaler(nn.Module):
    """Actions to about [-1, 1]: by the action space's bounds when finite, else the data's mean/std."""

    center: torch.Tensor
    scale: torch.Tensor
    low: torch.Tensor
    high: torch.Tensor

    def __init__(self, action_space: spaces.Box, actions: np.ndarray | None = None) -> None:
        super().__init__()
        low, high = np.asarray(action_space.low, np.float64), np.asarray(action_space.high, np.float64)
        if np.all(np.isfinite(low)) and np.all(np.isfinite(high)) and np.all(high > low):
            center, scale = (high + low) / 2, (high - low) / 2
        elif actions is not None:
            center, scale = actions.mean(0), actions.std(0) + 1e-6
        else:
            center, scale = np.zeros_like(low), np.ones_like(low)
        self.register_buffer("center", torch.as_tensor(center, dtype=torch.float32))
        self.register_buffer("scale", torch.as_tensor(scale, dtype=torch.float32))
        self.register_buffer("low", torch.as_tensor(np.nan_to_num(low, neginf=-1e9), dtype=torch.float32))
        self.register_buffer("high", torch.as_tensor(np.nan_to_num(high, posinf=1e9), dtype=torch.float32))

    def normalize(self, action: torch.Tensor) -> torch.Tensor:
        """Environment units -> normalised."""
        return (action - self.center) / self.scale

    def unnormalize(self, action: torch.Tensor) -> torch.Tensor:
        """Normalised -> environment units, clipped to the action space."""
        return torch.clamp(action * self.scale + self.center, self.low, self.high)


@dataclass
class ObjectiveConfig:
    """One objective's settings (configs/imitation/objective/<name>.yaml)."""

    name: str = "id"
    nstep: int = 1  # k in (o_t, o_{t+k}); the paper's default is 1
    head_hidden: Sequence[int] = (256, 256)  # the paper's policy-mlp-256-0.1
    dropout: float = 0.1
    projection_dim: int = 64  # contrastive: encoder-projector-64 / encoder-action-64
    projection_hidden: Sequence[int] = (256, 256)
    temperature: float = 1.0
    include_action: bool = True
    augment: bool = False  # random shift of pixels (pad 4) on both views, for nstep 0
    ema: float = 0.99  # forward: the target encoder's EMA rate
    variance_weight: float = 0.0  # forward: weight of a VICReg variance term on φ's batch (0: off)

    @classmethod
    def from_mapping(cls, raw: dict[str, Any]) -> ObjectiveConfig:
        """Build from a config mapping (one-line errors for unknown keys and bad values)."""
        known = set(cls.__dataclass_fields__)
        unknown = sorted(set(raw) - known)
        if unknown:
            raise UserError(
                f"unknown config key objective.{unknown[0]}; keys here: {', '.join(sorted(known))}"
            )
        cfg = cls(**raw)
        if cfg.name not in OBJECTIVES:
            raise UserError(f"objective={cfg.name} is not known; choose one of {', '.join(OBJECTIVES)}")
        if cfg.nstep < 0:
            raise UserError(f"objective.nstep={cfg.nstep} is negative; use k >= 0 (1 pairs o_t with o_t+1)")
        if cfg.temperature <= 0 or not 0 <= cfg.dropout < 1 or not 0 <= cfg.ema < 1:
            raise UserError(
                f"objective temperature={cfg.temperature}, dropout={cfg.dropout}, ema={cfg.ema}: "
                "use temperature > 0, 0 <= dropout < 1, 0 <= ema < 1"
            )
        cfg.head_hidden = tuple(int(h) for h in cfg.head_hidden)
        cfg.projection_hidden = tuple(int(h) for h in cfg.projection_hidden)
        return cfg


def random_shift(obs: TensorObs, pad: int = 4) -> TensorObs:
    """DrQ-style augmentation: pad images by `pad` (edge) and crop back at a random offset."""
    if not isinstance(obs, dict) or "pixels" not in obs:
        return obs
    pix = obs["pixels"]
    b, h, w, _ = pix.shape
    padded = F.pad(pix.permute(0, 3, 1, 2).float(), (pad, pad, pad, pad), mode="replicate")
    dx = torch.randint(0, 2 * pad + 1, (b,), device=pix.device)
    dy = torch.randint(0, 2 * pad + 1, (b,), device=pix.device)
    rows = (dy[:, None] + torch.arange(h, device=pix.device)[None, :])[:, None, :, None]
    cols = (dx[:, None] + torch.arange(w, device=pix.device)[None, :])[:, None, None, :]
    batch = torch.arange(b, device=pix.device)[:, None, None, None]
    chan = torch.arange(pix.shape[-1], device=pix.device)[None, :, None, None]
    shifted = padded[batch, chan, rows, cols].permute(0, 2, 3, 1).to(pix.dtype)
    return {**obs, "pixels": shifted}


class Objective(nn.Module):
    """Base: holds φ; subclasses add heads and define `loss`."""

    def __init__(self, encoder: ObservationEncoder, act_dim: int, cfg: ObjectiveConfig) -> None:
        super().__init__()
        self.encoder = encoder
        self.cfg = cfg
        self.act_dim = act_dim

    def loss(self, batch: PairBatch) -> tuple[torch.Tensor, dict[str, float]]:
        """The training loss on one batch and scalars to log."""
        raise NotImplementedError

    def after_step(self) -> None:
        """Hook after each optimiser step (EMA targets)."""


class InverseDynamics(Objective):
    """a_t from [φ(o_t), φ(o_{t+k})] by MSE."""

    def __init__(self, encoder: ObservationEncoder, act_dim: int, cfg: ObjectiveConfig) -> None:
        super().__init__(encoder, act_dim, cfg)
        self.head = mlp(2 * encoder.latent_dim, cfg.head_hidden, act_dim, cfg.dropout)

    def predict(self, obs: TensorObs, next_obs: TensorObs) -> torch.Tensor:
        """Predicted (normalised) action between two observations."""
        return self.head(torch.cat([self.encoder(obs), self.encoder(next_obs)], dim=-1))

    def loss(self, batch: PairBatch) -> tuple[torch.Tensor, dict[str, float]]:
        """MSE of the predicted action."""
        loss = F.mse_loss(self.predict(batch.obs, batch.next_obs), batch.action)
        return loss, {"action_mse": float(loss.detach())}


class MultitaskBC(Objective):
    """a_t from φ(o_t) alone (the task is hidden, so this averages over tasks)."""

    def __init__(self, encoder: ObservationEncoder, act_dim: int, cfg: ObjectiveConfig) -> None:
        super().__init__(encoder, act_dim, cfg)
        self.head = mlp(encoder.latent_dim, cfg.head_hidden, act_dim, cfg.dropout)

    def loss(self, batch: PairBatch) -> tuple[torch.Tensor, dict[str, float]]:
        """MSE of the cloned action."""
        loss = F.mse_loss(self.head(self.encoder(batch.obs)), batch.action)
        return loss, {"action_mse": float(loss.detach())}


class Contrastive(Objective):
    """InfoNCE: g([φ(o_t), e(a_t)]) should pick h(φ(o_{t+k})) out of the batch."""

    def __init__(self, encoder: ObservationEncoder, act_dim: int, cfg: ObjectiveConfig) -> None:
        super().__init__(encoder, act_dim, cfg)
        extra = 0
        self.action_encoder: nn.Module | None = None
        if cfg.include_action:
            self.action_encoder = mlp(act_dim, cfg.head_hidden, cfg.projection_dim)
            extra = cfg.projection_dim
        self.query = mlp(encoder.latent_dim + extra, cfg.projection_hidden, cfg.projection_dim)
        self.key = mlp(encoder.latent_dim, cfg.projection_hidden, cfg.projection_dim)

    def loss(self, batch: PairBatch) -> tuple[torch.Tensor, dict[str, float]]:
        """Cross-entropy of each query against all keys; the matching key is the label."""
        obs, nxt = batch.obs, batch.next_obs
        if self.cfg.augment:
            obs, nxt = random_shift(obs), random_shift(nxt)
        z = self.encoder(obs)
        if self.action_encoder is not None:
            z = torch.cat([z, self.action_encoder(batch.action)], dim=-1)
        q = F.normalize(self.query(z), dim=-1)
        k = F.normalize(self.key(self.encoder(nxt)), dim=-1)
        logits = q @ k.T / self.cfg.temperature
        labels = torch.arange(len(logits), device=logits.device)
        loss = F.cross_entropy(logits, labels)
        accuracy = (logits.argmax(-1) == labels).float().mean()
        return loss, {"nce": float(loss.detach()), "accuracy": float(accuracy)}


class LatentForward(Objective):
    """[φ(o_t), a_t] -> φ̄(o_{t+k}) with φ̄ an EMA copy of φ and a cosine loss (BYOL/SPR). The
    predictor and the slow target alone did not stop φ collapsing to a constant here (held-out loss
    0.0000 in the first benchmark run), so a VICReg variance term (Bardes et al., ICLR 2022) keeps each
    latent dimension's batch std near 1 when `variance_weight` > 0."""

    def __init__(self, encoder: ObservationEncoder, act_dim: int, cfg: ObjectiveConfig) -> None:
        super().__init__(encoder, act_dim, cfg)
        self.predictor = mlp(encoder.latent_dim + act_dim, cfg.head_hidden, encoder.latent_dim)
        self.target = copy.deepcopy(encoder)
        for p in self.target.parameters():
            p.requires_grad_(False)

    def loss(self, batch: PairBatch) -> tuple[torch.Tensor, dict[str, float]]:
        """2 - 2 cos(prediction, target latent)."""
        z = self.encoder(batch.obs)
        pred = self.predictor(torch.cat([z, batch.action], dim=-1))
        with torch.no_grad():
            target = self.target(batch.next_obs)
        cosine = (2 - 2 * F.cosine_similarity(pred, target, dim=-1)).mean()
        variance = F.relu(1 - torch.sqrt(z.var(dim=0) + 1e-4)).mean()
        loss = cosine + self.cfg.variance_weight * variance
        return loss, {"cosine_loss": float(cosine.detach()), "variance_loss": float(variance.detach())}

    @torch.no_grad()
    def after_step(self) -> None:
        """Move φ̄ toward φ."""
        for t, s in zip(self.target.parameters(), self.encoder.parameters(), strict=True):
            t.mul_(self.cfg.ema).add_(s.detach(), alpha=1 - self.cfg.ema)
        for tb, sb in zip(self.target.buffers(), self.encoder.buffers(), strict=True):
            tb.copy_(sb)


class NoPretraining(Objective):
    """No objective: φ keeps its random initialisation."""

    def loss(self, batch: PairBatch) -> tuple[torch.Tensor, dict[str, float]]:
        """Zero (never optimised; pretrain skips training for `none`)."""
        return torch.zeros(()), {}


def make_objective(encoder: ObservationEncoder, act_dim: int, cfg: ObjectiveConfig) -> Objective:
    """The objective module named by cfg.name around `encoder`."""
    kinds: dict[str, type[Objective]] = {
        "id": InverseDynamics,
        "bc": MultitaskBC,
        "contrastive": Contrastive,
        "contrastive_noact": Contrastive,
        "forward": LatentForward,
        "none": NoPretraining,
    }
    return kinds[cfg.name](encoder, act_dim, cfg)
