"""The stand-in task server factory: one of robolearn's MuJoCo robot tasks behind the Isaac Lab server
protocol, in a separate process (`env=isaaclab:standin:<task> ...`; robolearn/isaac/server.py).

It lets the out-of-process transport, the client and training through it be tested on any machine:
the same code path as an Isaac Lab task, with the simulator swapped for our batched MuJoCo backend.
"""

from __future__ import annotations

from typing import Any

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
