"""The stand-in task server factory: one of robolearn's MuJoCo robot tasks behind the Isaac Lab server
protocol, in a separate process (`env=isaaclab:standin:<task> ...`; robolearn/isaac/server.py).

It lets the out-of-process transport, the client and training through it be tested on any machine:
the same code path as an Isaac Lab task, with the simulator swapped for our batched MuJoCo backend.
"""

from __future__ import annotations

from typing import Any

import gymnasium as gym
import numpy as np

from robolearn.envs.vector import BatchedVectorEnv, make_batched_vector_env
from robolearn.isaac.options import standin_env_id


def make_standin(
    task: str, num_envs: int, seed: int | None, threads: int = 1, **kwargs: Any
) -> BatchedVectorEnv:
    """The server factory (`robolearn.isaac.standin:make_standin`): task on the batch backend, num_envs envs.

    kwargs are the task's env kwargs (max_episode_steps included); the seed is applied at reset(seed=).
    """
    kwargs.setdefault("backend", "batch")
    return make_batched_vector_env(standin_env_id(task), num_envs, threads=threads, **kwargs)


class NullVectorEnv:
    """A vectorised env that does no simulation (obs echo the actions): the transport's own cost.

    benchmarks/isaac_transport.py steps it in process and through a task server side by side.
    """

    def __init__(self, num_envs: int, obs_dim: int = 48, act_dim: int = 12) -> None:
        self.num_envs = num_envs
        self.single_observation_space = gym.spaces.Box(-np.inf, np.inf, (obs_dim,), np.float32)
        self.single_action_space = gym.spaces.Box(-1.0, 1.0, (act_dim,), np.float32)
        self.obs = np.zeros((num_envs, obs_dim), np.float32)
        self.reward = np.zeros(num_envs, np.float32)
        self.flags = np.zeros(num_envs, bool)
        self.act_dim = act_dim

    def reset(self, seed: int | None = None) -> tuple[np.ndarray, dict[str, Any]]:
        """Zero observations."""
        self.obs[:] = 0.0
        return self.obs, {}

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Observations take the actions in their first columns; no reward, no episode ends."""
        self.obs[:, : self.act_dim] = actions
        return self.obs, self.reward, self.flags, self.flags, {}

    def close(self) -> None:
        """Nothing to release."""


def make_null(
    task: str, num_envs: int, seed: int | None, obs_dim: int = 48, act_dim: int = 12
) -> NullVectorEnv:
    """The server factory for NullVectorEnv (`robolearn.isaac.standin:make_null`; task is ignored)."""
    return NullVectorEnv(num_envs, obs_dim, act_dim)
