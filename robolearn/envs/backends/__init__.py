"""Simulation backends behind one interface (SimBackend), chosen by the env kwarg `backend`.

- `mujoco`: one MjData per env, mj_step in a Python loop (the reference; single envs use it).
- `batch`: mujoco.batch.Batch on a thread pool, bit-identical to `mujoco`.
- `warp`: MuJoCo Warp on a GPU (or Warp's CPU device), float32; needs the `gpu` extra.

The Warp module is imported only when asked for. Backends never import the tasks (the layers read
tasks -> backends); the vectorised adapters that wrap a task on a backend live in
robolearn.envs.vector, and their names here resolve there on first use, for older imports.
"""

from __future__ import annotations

import importlib
from collections.abc import Sequence
from typing import Any

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


# Moved to robolearn.envs.vector (they build tasks); resolved lazily so this package never imports them.
_ADAPTERS = ("BatchedVecEnv", "BatchedVectorEnv", "make_batched_env", "make_batched_vector_env")


def __getattr__(name: str) -> Any:
    """The vectorised adapters' names, from robolearn.envs.vector on first use."""
    if name not in _ADAPTERS:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module("robolearn.envs.vector"), name)


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
