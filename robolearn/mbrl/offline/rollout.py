"""Branched model rollouts (MBPO, Janner et al. NeurIPS 2019, algorithm 2; MOPO, Yu et al. 2020, algorithm 2).

From a batch of dataset states, the current policy acts and the ensemble steps for `horizon` steps:
each input's next state and reward come from one elite member drawn at random (a draw from its Gaussian),
or, with a step filter (MOREC, Luo et al. ICLR 2024), from the filter's choice among candidates drawn
from every elite. A rollout ends at a terminal state (the env's own termination function: MOPO's
static termination functions) or where the filter refuses the step. The transitions go to a FIFO
`ModelBuffer` holding the last `retain_epochs` rollouts' worth (MBPO's model_retain_epochs).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch

from robolearn.mbrl.models import EnsembleDynamics

Tensor = torch.Tensor

__all__ = ["ModelBuffer", "RolloutStats", "StepFilter", "rollout", "termination_fn"]

# The MOREC hook (contract in docs/offline.md): obs (B,o), env action (B,a), candidate next states (K,B,o) and
# their rewards (K,B) -> (chosen next (B,o), its reward (B,), keep (B,) bool, score (B,)). keep=False ends
# that rollout there and the step is not stored. K = elites x samples_per_member, candidate k coming
# from elite k // samples_per_member.
StepFilter = Callable[[Tensor, Tensor, Tensor, Tensor], tuple[Tensor, Tensor, Tensor, Tensor]]
DoneFn = Callable[[Tensor, Tensor, Tensor], Tensor]
# Reward penalty at generation time (MOPO): (members' std [M,B,out]) -> [B]; None for none.
PenaltyFn = Callable[[Tensor], Tensor]
# The policy: observations (B,o) -> actions in [-1,1] (B,a).
PolicyFn = Callable[[Tensor], Tensor]

# Envs whose termination functions read x at obs[0] (robolearn.mbrl.envfns keeps x in the observation);
# a dataset recorded with the default observation (x dropped) gets a zero column in front instead.
_X_FIRST = {"Hopper-v5", "Walker2d-v5"}


def termination_fn(env_id: str | None, env_kwargs: dict[str, Any], obs_dim: int) -> DoneFn | None:
    """The env's known termination function of (obs, act, next_obs) for this dataset's layout, or None."""
    from robolearn.mbrl.envfns import SUPPORTED_ENVS, env_functions

    if env_id is None or env_id not in SUPPORTED_ENVS:
        return None
    _, done = env_functions(env_id)
    if done is None:
        return None
    keeps_x = env_kwargs.get("exclude_current_positions_from_observation") is False
    if env_id in _X_FIRST and not keeps_x:
        inner = done

        def padded(obs: Tensor, act: Tensor, next_obs: Tensor) -> Tensor:
            pad = torch.nn.functional.pad
            return inner(pad(obs, (1, 0)), act, pad(next_obs, (1, 0)))

        return padded
    return done


@dataclass
class ModelBuffer:
    """A FIFO buffer of model transitions (torch tensors), sampled uniformly."""

    capacity: int
    obs_dim: int
    act_dim: int
    device: str | torch.device = "cpu"
    size: int = 0
    ptr: int = 0
    data: dict[str, Tensor] = field(default_factory=dict)

    def __post_init__(self) -> None:
        o, a, c = self.obs_dim, self.act_dim, self.capacity
        if not self.data:
            self.data = {
                "obs": torch.zeros(c, o, device=self.device),
                "act": torch.zeros(c, a, device=self.device),
                "rew": torch.zeros(c, device=self.device),
                "next_obs": torch.zeros(c, o, device=self.device),
                "done": torch.zeros(c, device=self.device),
            }

    def add(self, **items: Tensor) -> None:
        """Append a batch (obs, act, rew, next_obs, done), overwriting the oldest when full."""
        n = len(items["obs"])
        if n == 0:
            return
        if n > self.capacity:
            items = {k: v[-self.capacity :] for k, v in items.items()}
            n = self.capacity
        idx = (self.ptr + torch.arange(n, device=self.device)) % self.capacity
        for key, value in items.items():
            self.data[key][idx] = value.to(self.data[key].dtype)
        self.ptr = (self.ptr + n) % self.capacity
        self.size = min(self.size + n, self.capacity)

    def sample(self, n: int) -> dict[str, Tensor]:
        """n transitions drawn uniformly with replacement (global torch RNG)."""
        idx = torch.randint(self.size, (n,), device=self.device)
        return {k: v[idx] for k, v in self.data.items()}

    def state_dict(self) -> dict[str, Any]:
        """The filled part and the pointers (for exact resume)."""
        return {
            "size": self.size,
            "ptr": self.ptr,
            "data": {k: v[: self.size].clone() for k, v in self.data.items()},
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what state_dict() returned."""
        self.size, self.ptr = int(state["size"]), int(state["ptr"])
        for key, value in state["data"].items():
            self.data[key][: self.size] = value.to(self.device)


@dataclass
class RolloutStats:
    """What one round of rollouts did (logged as rollout/*)."""

    transitions: int = 0
    mean_length: float = 0.0
    terminated: int = 0
    filtered: int = 0  # rollouts the filter ended
    raw_reward: float = 0.0  # mean model reward before the penalty
    penalty: float = 0.0  # mean penalty (before its weight)
    filter_score: float = float("nan")


@torch.no_grad()
def rollout(
    model: EnsembleDynamics,
    policy: PolicyFn,
    start_obs: Tensor,
    horizon: int,
    buffer: ModelBuffer,
    *,
    act_scale: tuple[Tensor, Tensor],
    done_fn: DoneFn | None = None,
    penalty_fn: PenaltyFn | None = None,
    penalty_coef: float = 0.0,
    step_filter: StepFilter | None = None,
    samples_per_member: int = 1,
    reject_as_terminal: bool = False,
) -> RolloutStats:
    """Roll the policy in the model from start_obs [B, o] for up to `horizon` steps, storing into buffer.

    The buffer holds policy-space actions ([-1, 1]); the model sees env actions low + (a + 1) (high - low) / 2
    with (low, high) = act_scale; the step filter sees env actions too. Stored reward = model reward -
    penalty_coef * penalty_fn(members' std). A step the filter refuses ends its rollout; it is dropped, or
    stored as terminal with `reject_as_terminal` (MOREC's released code).
    """
    low, high = act_scale
    obs = start_obs
    stats = RolloutStats()
    lengths = torch.zeros(len(obs), device=obs.device)
    alive_idx = torch.arange(len(obs), device=obs.device)
    rewards, penalties, scores = [], [], []
    for _ in range(horizon):
        if len(obs) == 0:
            break
        a = policy(obs)
        env_a = low + (a + 1.0) * 0.5 * (high - low)
        mean, std = model.predict_members(obs, env_a)  # [M, B, o + 1]
        if step_filter is None:
            member = model.random_elites(len(obs))
            rows = torch.arange(len(obs), device=obs.device)
            draw = mean[member, rows] + std[member, rows] * torch.randn_like(mean[0])
            next_obs, rew = draw[:, : model.obs_dim], draw[:, model.obs_dim]
            keep = torch.ones(len(obs), dtype=torch.bool, device=obs.device)
        else:
            elites = model.elites
            m, s = mean[elites], std[elites]  # [E, B, out]
            noise = torch.randn((len(elites), samples_per_member, *m.shape[1:]), device=obs.device)
            cand = (m.unsqueeze(1) + s.unsqueeze(1) * noise).flatten(0, 1)  # [E*S, B, out], k = e*S + s
            next_obs, rew, keep, score = step_filter(
                obs, env_a, cand[..., : model.obs_dim], cand[..., model.obs_dim]
            )
            scores.append(score[keep])
            stats.filtered += int((~keep).sum())
        pen = penalty_fn(std) if penalty_fn is not None else torch.zeros_like(rew)
        done = done_fn(obs, env_a, next_obs) if done_fn is not None else torch.zeros_like(keep)
        if reject_as_terminal:
            # MOREC's released code (polixir/morec, ensemble_dynamics.py) ORs the rejection into `terminal`:
            # the refused step is stored as a terminal one and the rollout ends there.
            done = done | ~keep
            keep = torch.ones_like(keep)
        done = done & keep
        buffer.add(
            obs=obs[keep],
            act=a[keep],
            rew=(rew - penalty_coef * pen)[keep],
            next_obs=next_obs[keep],
            done=done[keep].float(),
        )
        rewards.append(rew[keep])
        penalties.append(pen[keep])
        stats.transitions += int(keep.sum())
        stats.terminated += int(done.sum())
        lengths[alive_idx[keep]] += 1
        cont = keep & ~done
        obs, alive_idx = next_obs[cont], alive_idx[cont]
    stats.mean_length = float(lengths.mean()) if len(lengths) else 0.0
    if rewards:
        stats.raw_reward = float(torch.cat(rewards).mean()) if stats.transitions else 0.0
        stats.penalty = float(torch.cat(penalties).mean()) if stats.transitions else 0.0
    if scores and stats.transitions:
        stats.filter_score = float(torch.cat(scores).mean())
    return stats
