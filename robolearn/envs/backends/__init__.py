"""Simulation backends behind one interface (SimBackend), chosen by the env kwarg `backend`.

- `mujoco`: one MjData per env, mj_step in a Python loop (the reference; single envs use it).
- `batch`: mujoco.batch.Batch on a thread pool, bit-identical to `mujoco`.
- `warp`: MuJoCo Warp on a GPU (or Warp's CPU device), float32; needs the `gpu` extra.

make_batched_env / make_batched_vector_env wrap a task on any backend as an SB3 VecEnv or a
gymnasium VectorEnv. The Warp module is imported only when asked for.
"""

from __future__ import annotations

from collections.abc import Sequence

import mujoco

from robolearn.envs.backends.base import (
    DynamicsParams,
    ModelLayout,
    RootJointState,
    SimBackend,
    SimFrame,
)
from robolearn.errors import UserError, close_matches, require
from robolearn.robots.spec import RobotSpec

BACKENDS = ("mujoco", "batch", "warp")


def make_backend(
    name: str,
    model: mujoco.MjModel,
    spec: RobotSpec,
    num_envs: int,
    bodies: Sequence[str] = (),
    threads: int = 1,
    device: str | None = None,
    randomize_dynamics: bool = False,
) -> SimBackend:
    """A backend by name; threads applies to `batch`, device and randomize_dynamics to `warp`."""
    if num_envs < 1:
        raise UserError(f"num_envs must be at least 1, got {num_envs}")
    if name == "mujoco":
        from robolearn.envs.backends.mujoco_backend import MujocoBackend

        return MujocoBackend(model, spec, num_envs, bodies)
    if name == "batch":
        from robolearn.envs.backends.batch_backend import BatchBackend

        return BatchBackend(model, spec, num_envs, bodies, threads=threads)
    if name == "warp":
        require("warp", "backend=warp", "gpu", "warp-lang")
        require("mujoco_warp", "backend=warp", "gpu", "mujoco-warp")
        from robolearn.envs.backends.warp_backend import WarpBackend

        return WarpBackend(
            model, spec, num_envs, bodies, device=device, randomize_dynamics=randomize_dynamics
        )
    raise UserError(
        f"unknown backend '{name}'{close_matches(name, BACKENDS)}; choices: {', '.join(BACKENDS)}"
    )


# After make_backend: the adapters import the task registry, whose tasks import make_backend.
from robolearn.envs.backends.vector import (  # noqa: E402
    BatchedVecEnv,
    BatchedVectorEnv,
    make_batched_env,
    make_batched_vector_env,
)

__all__ = [
    "BACKENDS",
    "BatchedVecEnv",
    "BatchedVectorEnv",
    "DynamicsParams",
    "ModelLayout",
    "RootJointState",
    "SimBackend",
    "SimFrame",
    "make_backend",
    "make_batched_env",
    "make_batched_vector_env",
]
