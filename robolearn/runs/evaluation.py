"""Deterministic evaluation: episode i is reset with seed `base_seed + i`, so every evaluation of a
run (periodic, final, or later from the command line) sees the same start states."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from stable_baselines3.common.base_class import BaseAlgorithm


@dataclass
class EvalResult:
    """Returns and lengths of the evaluated episodes (and frames when rendering)."""

    returns: list[float]
    lengths: list[int]
    frames: list[np.ndarray] = field(default_factory=list)

    @property
    def mean_return(self) -> float:
        """Mean episode return."""
        return float(np.mean(self.returns))

    @property
    def std_return(self) -> float:
        """Standard deviation of episode returns (population, as SB3 reports)."""
        return float(np.std(self.returns))


ObsTransform = Callable[[Any], Any]


def evaluate_policy(
    model: BaseAlgorithm,
    env: Any,
    episodes: int,
    base_seed: int,
    deterministic: bool = True,
    obs_transform: ObsTransform | None = None,
    render: bool = False,
) -> EvalResult:
    """Run `episodes` episodes of model on a single gymnasium env."""
    returns: list[float] = []
    lengths: list[int] = []
    frames: list[np.ndarray] = []
    for episode in range(episodes):
        obs, _ = env.reset(seed=base_seed + episode)
        done, total, length = False, 0.0, 0
        while not done:
            policy_obs = obs_transform(obs) if obs_transform is not None else obs
            action, _ = model.predict(policy_obs, deterministic=deterministic)
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            length += 1
            done = bool(terminated or truncated)
            if render:
                frame = env.render()
                if frame is not None:
                    frames.append(np.asarray(frame))
        returns.append(total)
        lengths.append(length)
    return EvalResult(returns, lengths, frames)
