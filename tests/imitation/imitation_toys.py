"""Toy demonstration datasets for the pretraining and labelling tests: a linear system s' = A s + B u."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from gymnasium import spaces

from robolearn.datasets import Episode, write_dataset

# A damped 2-D point: state (x, y, vx, vy), action (fx, fy); invertible from (s_t, s_t+1) through B.
DT = 0.1
A = np.array([[1, 0, DT, 0], [0, 1, 0, DT], [0, 0, 0.9, 0], [0, 0, 0, 0.9]], dtype=np.float64)
B = np.array([[0, 0], [0, 0], [DT, 0], [0, DT]], dtype=np.float64)


def linear_episodes(episodes: int, steps: int, seed: int, feedback: bool = False) -> list[Episode]:
    """Episodes of s' = A s + B u with uniform random actions in [-1, 1], or (feedback) a noisy
    PD law toward the origin, so that actions are predictable from the state as well."""
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(episodes):
        s = rng.uniform(-1, 1, 4)
        obs, acts = [s], []
        for _ in range(steps):
            u = rng.uniform(-1, 1, 2)
            if feedback:
                u = np.clip(-1.5 * s[:2] - 0.5 * s[2:] + 0.1 * u, -1, 1)
            s = A @ s + B @ u
            obs.append(s)
            acts.append(u)
        done = np.zeros(steps, dtype=bool)
        done[-1] = True
        out.append(
            Episode(
                observations=np.asarray(obs, dtype=np.float32),
                actions=np.asarray(acts, dtype=np.float32),
                rewards=np.zeros(steps, dtype=np.float32),
                terminations=np.zeros(steps, dtype=bool),
                truncations=done,
                infos={"context": np.zeros((steps + 1, 2), dtype=np.float32)},
            )
        )
    return out


def write_linear(
    path: Path,
    episodes: int = 12,
    steps: int = 20,
    seed: int = 0,
    task: str = "linear",
    feedback: bool = False,
) -> Path:
    """A linear-system demo dataset at `path` (Box(4) observations, Box(2) actions in [-1, 1])."""
    write_dataset(
        path,
        linear_episodes(episodes, steps, seed, feedback),
        dataset_id="test/linear-v0",
        observation_space=spaces.Box(-np.inf, np.inf, (4,), np.float32),
        action_space=spaces.Box(-1, 1, (2,), np.float32),
        provenance={"task": task, "context_dim": 2, "pixels": False},
    )
    return path
