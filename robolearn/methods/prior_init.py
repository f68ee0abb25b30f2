"""Prior initialisation: behaviour-clone a prior policy into the PPO actor before RL starts.

A warm start from a controller, as locomotion work does when it pretrains a policy on a gait
generator's or expert's actions before reinforcement learning (a form of kickstarting):

1. roll the prior out in the training envs for `samples` env steps, executing its action plus
   Gaussian noise (std `noise` times each action dimension's half-range) so the data covers the
   states the noisy RL policy will visit;
2. label every visited observation with the prior's noise-free action;
3. fit the actor's mean action to the labels by mean squared error (`epochs` passes, Adam). The
   action noise (log std) and the critic keep their initial values;
4. optionally keep pulling the actor towards the prior while RL starts (`kickstart_steps`): after
   every PPO update, one pass of the same squared error over that update's rollout, labelled by the
   prior, with a learning rate that falls linearly from `learning_rate` to 0 over `kickstart_steps`
   env steps. This is Kickstarting (Schmitt et al., 2018) with the prior as the teacher, its
   distillation term applied as a separate step after the PPO update rather than added to PPO's loss
   (SB3's update has no hook for an extra loss term).

The rollouts also warm the observation normaliser (VecNormalize) on the prior's states, and they
count: the run's step counter starts at the samples used here and its wall clock at the time taken,
so a benchmark's steps and minutes include the warm start. The prior is any CAMEL prior reference
(a shipped or user prior program, a path, or expert:<run dir>; robolearn.methods.camel_prior).

The warm start reports its phases (rollouts collected, each fitting epoch's loss) as progress notes
(robolearn.runs.progress.note), so a run that spends its first minute here says so.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch
from gymnasium import spaces
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.distributions import (
    DiagGaussianDistribution,
    StateDependentNoiseDistribution,
)
from stable_baselines3.common.on_policy_algorithm import OnPolicyAlgorithm
from stable_baselines3.common.policies import ActorCriticPolicy
from stable_baselines3.common.vec_env import VecEnv, unwrap_vec_normalize

from robolearn.errors import UserError
from robolearn.runs.progress import format_duration, note

PriorFn = Callable[[np.ndarray], np.ndarray]


def rollout_steps(samples: int, num_envs: int) -> int:
    """Env steps the warm start takes for `samples`: whole vector steps of num_envs envs, at least one."""
    return max(1, math.ceil(samples / num_envs)) * num_envs


def collect_prior_rollouts(
    venv: VecEnv,
    prior: PriorFn,
    samples: int,
    noise: float,
    seed: int,
    on_progress: Callable[[int, int], None] | None = None,
) -> tuple[np.ndarray, np.ndarray, int]:
    """Run the noisy prior in venv; returns (observations, prior actions, env steps taken).

    Observations are the envs' own (before VecNormalize), so they can be normalised afterwards with
    the statistics the rollouts produced; actions are the prior's, without the exploration noise.
    `on_progress(steps done, steps in all)` is called after every fifth of the rollouts.
    """
    action_space = venv.action_space
    assert isinstance(action_space, spaces.Box)
    low, high = action_space.low.astype(np.float64), action_space.high.astype(np.float64)
    half = 0.5 * (high - low)
    vecnorm = unwrap_vec_normalize(venv)
    rng = np.random.default_rng(seed)
    n = venv.num_envs
    length = rollout_steps(samples, n) // n
    obs_list, act_list = [], []
    venv.seed(seed)
    obs = venv.reset()
    marks = {math.ceil(length * k / 5) for k in range(1, 6)}
    for t in range(length):
        raw = np.asarray(vecnorm.get_original_obs() if vecnorm is not None else obs, dtype=np.float64)
        action = np.clip(np.asarray(prior(raw), dtype=np.float64).reshape(n, -1), low, high)
        executed = np.clip(action + rng.standard_normal(action.shape) * noise * half, low, high)
        obs, _, _, _ = venv.step(executed.astype(np.float32))
        obs_list.append(raw)
        act_list.append(action)
        if on_progress is not None and t + 1 in marks:
            on_progress((t + 1) * n, length * n)
    return np.concatenate(obs_list), np.concatenate(act_list), length * n


def _mean_action(policy: ActorCriticPolicy, obs: torch.Tensor) -> torch.Tensor:
    """The Gaussian actor's mean action (what the deterministic policy outputs, before clipping)."""
    dist = policy.get_distribution(obs).distribution
    assert isinstance(dist, torch.distributions.Normal)
    return dist.mean


def actor_parameters(policy: ActorCriticPolicy) -> list[torch.nn.Parameter]:
    """Everything on the path to the mean action; the critic head and the log std stay as they are."""
    return [p for name, p in policy.named_parameters() if not name.startswith(("value_net", "log_std"))]


def _fit(
    optimizer: torch.optim.Optimizer,
    policy: ActorCriticPolicy,
    x: torch.Tensor,
    y: torch.Tensor,
    epochs: int,
    batch_size: int,
    generator: torch.Generator,
    on_epoch: Callable[[int, float], None] | None = None,
) -> tuple[float, float]:
    """Minibatch steps of the squared error between the actor's mean action at x and y; returns the
    mean loss of the first and the last epoch. `on_epoch(epoch, mean loss)` follows each epoch."""
    first = last = math.nan
    for epoch in range(epochs):
        perm = torch.randperm(len(x), generator=generator)
        total = 0.0
        for start in range(0, len(x), batch_size):
            idx = perm[start : start + batch_size]
            loss = torch.mean(torch.square(_mean_action(policy, x[idx]) - y[idx]))
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(idx)
        last = total / max(len(x), 1)
        if epoch == 0:
            first = last
        if on_epoch is not None:
            on_epoch(epoch + 1, last)
    return first, last


def warm_start(
    model: BaseAlgorithm,
    venv: VecEnv,
    prior: PriorFn,
    *,
    samples: int,
    noise: float,
    epochs: int,
    batch_size: int,
    learning_rate: float,
    seed: int,
) -> dict[str, Any]:
    """Clone `prior` into the actor of an on-policy model (PPO); returns facts for the run summary."""
    if not isinstance(model, OnPolicyAlgorithm):
        raise UserError(f"method=prior_init needs agent=ppo, not {type(model).__name__}")
    policy = model.policy
    dist = policy.action_dist
    gaussian = isinstance(dist, DiagGaussianDistribution) or (
        isinstance(dist, StateDependentNoiseDistribution) and dist.bijector is None
    )
    if not gaussian:
        raise UserError(
            f"method=prior_init clones into a Gaussian actor's mean; this policy's actions come from"
            f" {type(dist).__name__} (use a Box action space and agent.policy_kwargs without squash_output)"
        )
    t0 = time.perf_counter()

    def collected(done: int, total: int) -> None:
        note(
            f"warm start: collecting prior rollouts {done}/{total} steps"
            f" ({format_duration(time.perf_counter() - t0)})"
        )

    # At most ~10 fitting lines, the last epoch always.
    every = max(1, math.ceil(epochs / 10))

    def fitted(epoch: int, loss: float) -> None:
        if epoch % every == 0 or epoch == epochs:
            note(
                f"warm start: fitting the actor to the prior, epoch {epoch}/{epochs}, loss {loss:.4g}"
                f" ({format_duration(time.perf_counter() - t0)})"
            )

    note(
        f"warm start: cloning the prior into the actor from {rollout_steps(samples, venv.num_envs)} env"
        f" steps of its rollouts, fitted for {epochs} epochs"
    )
    raw, actions, steps = collect_prior_rollouts(venv, prior, samples, noise, seed, on_progress=collected)
    vecnorm = unwrap_vec_normalize(venv)
    obs = vecnorm.normalize_obs(raw) if vecnorm is not None else raw
    device = policy.device
    x = torch.as_tensor(np.asarray(obs, dtype=np.float32), device=device)
    y = torch.as_tensor(actions, dtype=torch.float32, device=device)
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.Adam(actor_parameters(policy), lr=learning_rate)
    policy.set_training_mode(True)
    first, last = _fit(optimizer, policy, x, y, epochs, batch_size, generator, on_epoch=fitted)
    policy.set_training_mode(False)
    # The rollouts are part of the run (see the module docstring); learn() resets the envs.
    model.num_timesteps = steps
    model._last_obs = None
    return {
        "prior_init/samples": steps,
        "prior_init/bc_loss_first": first,
        "prior_init/bc_loss_last": last,
        "prior_init/seconds": time.perf_counter() - t0,
    }


class Kickstart:
    """The after_train hook of step 4 (module docstring): distil the prior on each rollout, fading out."""

    def __init__(
        self,
        prior: PriorFn,
        venv: VecEnv,
        *,
        start: int,
        steps: int,
        batch_size: int,
        learning_rate: float,
        seed: int,
    ) -> None:
        self.prior = prior
        self.vecnorm = unwrap_vec_normalize(venv)
        self.start, self.steps = start, steps
        self.batch_size = batch_size
        self.learning_rate = learning_rate
        self.generator = torch.Generator().manual_seed(seed)
        self.optimizer: torch.optim.Optimizer | None = None

    def rate(self, num_timesteps: int) -> float:
        """The distillation learning rate after num_timesteps env steps (0 once faded out)."""
        left = 1.0 - (num_timesteps - self.start) / self.steps
        return self.learning_rate * min(1.0, max(0.0, left))

    def __call__(self, model: BaseAlgorithm) -> None:
        rate = self.rate(model.num_timesteps)
        if rate <= 0.0:
            return
        assert isinstance(model, OnPolicyAlgorithm)
        policy, buffer = model.policy, model.rollout_buffer
        obs = np.asarray(buffer.observations, dtype=np.float32).reshape(-1, *buffer.obs_shape)
        # The buffer holds what the policy saw (normalised); the prior reads the env's own values.
        raw = self.vecnorm.unnormalize_obs(obs) if self.vecnorm is not None else obs
        target = np.asarray(self.prior(np.asarray(raw, dtype=np.float64)), dtype=np.float32)
        x = torch.as_tensor(obs, device=policy.device)
        y = torch.as_tensor(target.reshape(len(obs), -1), device=policy.device)
        if self.optimizer is None:
            self.optimizer = torch.optim.Adam(actor_parameters(policy), lr=rate)
        for group in self.optimizer.param_groups:
            group["lr"] = rate
        _, loss = _fit(self.optimizer, policy, x, y, 1, self.batch_size, self.generator)
        model.logger.record("prior_init/kickstart_lr", rate)
        model.logger.record("prior_init/kickstart_loss", loss)
