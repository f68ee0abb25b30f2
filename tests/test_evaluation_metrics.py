"""evaluate_policy: termination share and per-episode means of the metrics envs report in info."""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np
import pytest

from robolearn.runs.evaluation import evaluate_policy


class _Counter(gym.Env[np.ndarray, np.ndarray]):
    """Reports metric = step index; even seeds end by termination after 4 steps, odd ones truncate at 2."""

    observation_space = gym.spaces.Box(-1.0, 1.0, (1,))
    action_space = gym.spaces.Box(-1.0, 1.0, (1,))

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> Any:
        self.t, self.odd = 0, bool((seed or 0) % 2)
        return np.zeros(1, dtype=np.float32), {}

    def step(self, action: np.ndarray) -> Any:
        self.t += 1
        info = {"metrics": {"index": float(self.t)}}
        terminated = not self.odd and self.t == 4
        truncated = self.odd and self.t == 2
        return np.zeros(1, dtype=np.float32), 1.0, terminated, truncated, info


class _Zero:
    def predict(self, obs: Any, deterministic: bool = True) -> tuple[np.ndarray, None]:
        return np.zeros(1, dtype=np.float32), None


def test_evaluation_averages_metrics_per_episode_and_counts_terminations() -> None:
    result = evaluate_policy(_Zero(), _Counter(), episodes=4, base_seed=10)  # type: ignore[arg-type]
    assert result.lengths == [4, 2, 4, 2]
    assert result.terminated == [True, False, True, False]
    # Per-episode means (2.5 over 4 steps, 1.5 over 2), each episode weighted equally.
    assert result.metrics == {"index": [2.5, 1.5, 2.5, 1.5]}
    assert result.figures() == {"terminated_fraction": 0.5, "index": pytest.approx(2.0)}
