"""A compact soft actor-critic for offline model-based RL (MOPO, MOBILE), trained on mixed batches.

SAC as in Haarnoja et al. 2018 ("Soft Actor-Critic Algorithms and Applications", algorithm 1): a
tanh-squashed Gaussian actor, N critics with Polyak-averaged targets and the minimum over them in the
target, automatic entropy tuning towards target_entropy = -act_dim. The offline variants' settings
follow OfflineRL-Kit's and the MOBILE authors' defaults (yihaosun1124/mobile, configs/gym/default.py:
hidden 256x2, actor lr 1e-4, critic lr 3e-4, alpha lr 1e-4, gamma 0.99, tau 0.005); MOBILE adds
`deterministic_backup` (no entropy term in the target) and `target_q_min` (the target is clamped at 0,
as the authors' code does for the D4RL locomotion tasks, whose rewards are positive).

The critics are one batched ensemble ([N, out, in] weights, run by robolearn.mbrl.models.mlp_forward),
so N critics cost one matmul per layer.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from robolearn.errors import UserError
from robolearn.mbrl.models import mlp_forward

Tensor = torch.Tensor

__all__ = ["SAC", "Actor", "Batch", "CriticEnsemble", "SACConfig"]

LOG_STD_MIN, LOG_STD_MAX = -5.0, 2.0  # OfflineRL-Kit's and CORL's bounds on the actor's log-std


class Batch(NamedTuple):
    """A training batch: rewards already penalised; done = true terminal (no bootstrap)."""

    obs: Tensor
    act: Tensor
    rew: Tensor
    next_obs: Tensor
    done: Tensor


@dataclass
class SACConfig:
    """SAC's hyperparameters (defaults: the MOBILE authors' configs/gym/default.py)."""

    hidden: tuple[int, ...] = (256, 256)
    actor_lr: float = 1e-4
    critic_lr: float = 3e-4
    alpha_lr: float = 1e-4
    gamma: float = 0.99
    tau: float = 0.005
    num_critics: int = 2
    auto_alpha: bool = True
    alpha: float = 0.2  # the fixed (auto_alpha=False) or initial entropy weight
    target_entropy: float | None = None  # None: -act_dim
    deterministic_backup: bool = False
    target_q_min: float | None = None

    @classmethod
    def from_mapping(cls, values: dict[str, Any]) -> SACConfig:
        """Build from a config mapping; an unknown key is a one-line error naming it."""
        known = set(cls.__dataclass_fields__)
        for key in values:
            if key not in known:
                raise UserError(f"unknown sac setting {key!r}; settings: {', '.join(sorted(known))}")
        out = cls(**values)
        out.hidden = tuple(int(h) for h in out.hidden)
        if out.num_critics < 2 and not out.deterministic_backup:
            raise UserError(f"sac.num_critics={out.num_critics} must be >= 2")
        if out.num_critics < 1:
            raise UserError(f"sac.num_critics={out.num_critics} must be >= 1")
        return out


def _init_layers(sizes: Sequence[int], members: int, gen: torch.Generator | None) -> nn.ParameterList:
    params = nn.ParameterList()
    for fan_in, fan_out in itertools.pairwise(sizes):
        bound = 1.0 / math.sqrt(fan_in)  # nn.Linear's default init
        params.append(nn.Parameter((torch.rand(members, fan_out, fan_in, generator=gen) * 2 - 1) * bound))
        params.append(nn.Parameter((torch.rand(members, fan_out, generator=gen) * 2 - 1) * bound))
    return params


class CriticEnsemble(nn.Module):
    """N Q-networks Q_j(s, a) evaluated together: [..., o], [..., a] -> [N, ...]."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int], n: int) -> None:
        super().__init__()
        self.n = n
        self.params = _init_layers([obs_dim + act_dim, *hidden, 1], n, None)

    def forward(self, obs: Tensor, act: Tensor) -> Tensor:
        """Q values [N, B] for inputs [B, o], [B, a]."""
        x = torch.cat([obs, act], dim=-1)
        layers = [(self.params[i], self.params[i + 1]) for i in range(0, len(self.params), 2)]
        return mlp_forward(layers, x, "relu").squeeze(-1)


class Actor(nn.Module):
    """A tanh-squashed Gaussian policy over actions in [-1, 1]^a (scaled to the env's box outside)."""

    def __init__(self, obs_dim: int, act_dim: int, hidden: Sequence[int]) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        last = obs_dim
        for h in hidden:
            layers += [nn.Linear(last, h), nn.ReLU()]
            last = h
        self.body = nn.Sequential(*layers)
        self.mu = nn.Linear(last, act_dim)
        self.log_std = nn.Linear(last, act_dim)

    def forward(self, obs: Tensor, deterministic: bool = False) -> tuple[Tensor, Tensor]:
        """(action in [-1, 1], its log-probability [B]) for observations [B, o]."""
        h = self.body(obs)
        mu = self.mu(h)
        if deterministic:
            return torch.tanh(mu), torch.zeros(mu.shape[:-1], device=mu.device)
        log_std = self.log_std(h).clamp(LOG_STD_MIN, LOG_STD_MAX)
        std = log_std.exp()
        u = mu + std * torch.randn_like(mu)
        a = torch.tanh(u)
        # Gaussian log-density minus the tanh change of variables, in the stable form
        # log(1 - tanh(u)^2) = 2 (log 2 - u - softplus(-2u)).
        logp = (-0.5 * ((u - mu) / std) ** 2 - log_std - 0.5 * math.log(2 * math.pi)).sum(-1)
        logp = logp - (2 * (math.log(2) - u - F.softplus(-2 * u))).sum(-1)
        return a, logp


class SAC(nn.Module):
    """Actor, critics, target critics and the entropy weight, with one `update(batch)` per gradient step."""

    def __init__(
        self, obs_dim: int, act_dim: int, cfg: SACConfig, device: str | torch.device = "cpu"
    ) -> None:
        super().__init__()
        self.cfg = cfg
        self.actor = Actor(obs_dim, act_dim, cfg.hidden)
        self.critics = CriticEnsemble(obs_dim, act_dim, cfg.hidden, cfg.num_critics)
        self.target_critics = CriticEnsemble(obs_dim, act_dim, cfg.hidden, cfg.num_critics)
        self.target_critics.load_state_dict(self.critics.state_dict())
        self.target_critics.requires_grad_(False)
        self.log_alpha = nn.Parameter(torch.tensor(math.log(cfg.alpha)))
        self.target_entropy = float(cfg.target_entropy if cfg.target_entropy is not None else -act_dim)
        self.to(device)
        self.actor_opt = torch.optim.Adam(self.actor.parameters(), lr=cfg.actor_lr)
        self.critic_opt = torch.optim.Adam(self.critics.parameters(), lr=cfg.critic_lr)
        self.alpha_opt = torch.optim.Adam([self.log_alpha], lr=cfg.alpha_lr)

    @property
    def alpha(self) -> Tensor:
        """The entropy weight (detached)."""
        return self.log_alpha.detach().exp()

    @torch.no_grad()
    def target_value(self, obs: Tensor) -> Tensor:
        """min_j Q_target_j(s, a ~ pi(s)) [N] (MOBILE's Bellman target without the reward)."""
        a, _ = self.actor(obs)
        return self.target_critics(obs, a).amin(dim=0)

    @torch.no_grad()
    def act(self, obs: Tensor, deterministic: bool = False) -> Tensor:
        """Actions in [-1, 1] for observations [B, o]."""
        return self.actor(obs, deterministic)[0]

    def update(self, batch: Batch) -> dict[str, float]:
        """One gradient step of the critics, the actor and the entropy weight; returns the losses."""
        cfg = self.cfg
        alpha = self.alpha
        with torch.no_grad():
            next_a, next_logp = self.actor(batch.next_obs)
            next_q = self.target_critics(batch.next_obs, next_a).amin(dim=0)
            if not cfg.deterministic_backup:
                next_q = next_q - alpha * next_logp
            target = batch.rew + cfg.gamma * (1.0 - batch.done) * next_q
            if cfg.target_q_min is not None:
                target = target.clamp_min(cfg.target_q_min)
        q = self.critics(batch.obs, batch.act)
        critic_loss = ((q - target.unsqueeze(0)) ** 2).mean(dim=1).sum()
        self.critic_opt.zero_grad(set_to_none=True)
        critic_loss.backward()
        self.critic_opt.step()

        a, logp = self.actor(batch.obs)
        q_pi = self.critics(batch.obs, a).amin(dim=0)
        actor_loss = (alpha * logp - q_pi).mean()
        self.actor_opt.zero_grad(set_to_none=True)
        actor_loss.backward()
        self.actor_opt.step()

        alpha_loss = torch.zeros(())
        if cfg.auto_alpha:
            alpha_loss = -(self.log_alpha * (logp.detach() + self.target_entropy)).mean()
            self.alpha_opt.zero_grad(set_to_none=True)
            alpha_loss.backward()
            self.alpha_opt.step()

        with torch.no_grad():
            for p, tp in zip(self.critics.parameters(), self.target_critics.parameters(), strict=True):
                tp.lerp_(p, cfg.tau)
        return {
            "train/critic_loss": critic_loss.item() / cfg.num_critics,
            "train/actor_loss": actor_loss.item(),
            "train/alpha": float(alpha),
            "train/alpha_loss": alpha_loss.item(),
            "train/q_mean": q.mean().item(),
            "train/entropy": -logp.mean().item(),
        }

    def full_state(self) -> dict[str, Any]:
        """Networks and optimisers, for exact resume."""
        return {
            "model": self.state_dict(),
            "actor_opt": self.actor_opt.state_dict(),
            "critic_opt": self.critic_opt.state_dict(),
            "alpha_opt": self.alpha_opt.state_dict(),
        }

    def load_full_state(self, state: dict[str, Any]) -> None:
        """Restore what full_state() returned."""
        self.load_state_dict(state["model"])
        self.actor_opt.load_state_dict(state["actor_opt"])
        self.critic_opt.load_state_dict(state["critic_opt"])
        self.alpha_opt.load_state_dict(state["alpha_opt"])
