"""Deterministic evaluation: episode i is reset with seed `base_seed + i`, so every evaluation of a
run (periodic, final, or later from the command line) sees the same start states."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np


@dataclass
class EvalResult:
    """Returns and lengths of the evaluated episodes (and frames when rendering).

    `terminated` says which episodes ended by termination (a fall) rather than a time limit, and
    `metrics` holds, per named metric an env reports in `info["metrics"]` each step, the per-episode
    means (robot tasks report tracking errors there).
    """

    returns: list[float]
    lengths: list[int]
    frames: list[np.ndarray] = field(default_factory=list)
    terminated: list[bool] = field(default_factory=list)
    metrics: dict[str, list[float]] = field(default_factory=dict)

    @property
    def mean_return(self) -> float:
        """Mean episode return."""
        return float(np.mean(self.returns))

    @property
    def std_return(self) -> float:
        """Standard deviation of episode returns (population, as SB3 reports)."""
        return float(np.std(self.returns))

    @property
    def terminated_fraction(self) -> float:
        """Share of episodes that ended by termination."""
        return float(np.mean(self.terminated)) if self.terminated else 0.0

    def metric_means(self) -> dict[str, float]:
        """Each metric's mean over episodes (each episode weighted equally)."""
        return {name: float(np.mean(values)) for name, values in self.metrics.items()}

    def figures(self) -> dict[str, float]:
        """The scalar figures logged as eval/*: termination share and the metric means."""
        out = {"terminated_fraction": self.terminated_fraction}
        out.update(self.metric_means())
        return out

    def summary(self) -> dict[str, Any]:
        """The final evaluation's keys in a run's summary.json (what robolearn.report reads)."""
        return {
            "eval/mean_return": self.mean_return,
            "eval/std_return": self.std_return,
            "eval/episodes": len(self.returns),
            "eval/returns": self.returns,
            **{f"eval/{name}": value for name, value in self.figures().items()},
        }


ObsTransform = Callable[[Any], Any]


class Predictor(Protocol):
    """What evaluation needs of a policy: SB3's predict (SB3 models, RslPolicy, method actors)."""

    def predict(
        self, observation: Any, state: Any = ..., episode_start: Any = ..., deterministic: bool = ...
    ) -> tuple[Any, Any]: ...


def evaluate_policy(
    model: Predictor,
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
    ended: list[bool] = []
    metrics: dict[str, list[float]] = {}
    for episode in range(episodes):
        obs, _ = env.reset(seed=base_seed + episode)
        done, total, length, terminated = False, 0.0, 0, False
        sums: dict[str, float] = {}
        while not done:
            policy_obs = obs_transform(obs) if obs_transform is not None else obs
            action, _ = model.predict(policy_obs, deterministic=deterministic)
            obs, reward, terminated, truncated, info = env.step(action)
            total += float(reward)
            length += 1
            done = bool(terminated or truncated)
            for name, value in (info.get("metrics") or {}).items():
                sums[name] = sums.get(name, 0.0) + float(value)
            if render:
                frame = env.render()
                if frame is not None:
                    frames.append(np.asarray(frame))
        returns.append(total)
        lengths.append(length)
        ended.append(bool(terminated))
        for name, value in sums.items():
            metrics.setdefault(name, []).append(value / length)
    return EvalResult(returns, lengths, frames, ended, metrics)
