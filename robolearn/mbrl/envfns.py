"""Torch reward and termination functions of (obs, action, next_obs) for the envs model-based methods plan on.

Each function restates the env's own reward from Gymnasium 1.x's source (the file named beside it), batched
over any leading dims, so a planner can score imagined transitions. tests/mbrl/test_envfns.py checks every
one against the env's reward and `terminated` on recorded real transitions.

Where a reward needs state the default observation omits, `env_kwargs(env_id)` gives the gymnasium.make
keyword arguments that put it in the observation; make the env with them, or the functions see the
wrong layout:

- HalfCheetah-v5, Hopper-v5, Walker2d-v5 reward forward progress (x_after - x_before) / dt, and the default
  observation drops x; with ``exclude_current_positions_from_observation=False`` obs[0] is x (HalfCheetah's
  observation is then 18-d, as in HyperCRL's half-cheetah setting, hypercrl/tools/default_arg.py).

Known gap: Hopper-v5's health check also bounds the unclipped joint velocities at 100, but the observation
holds them clipped to +-10, so a transition with |qvel| > 100 is judged healthy here. Such speeds do not
occur in practice (the recorded-transition test never meets one).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch

from robolearn.errors import UserError, close_matches

__all__ = ["SUPPORTED_ENVS", "env_functions", "env_kwargs"]

Tensor = torch.Tensor
RewardFn = Callable[[Tensor, Tensor, Tensor], Tensor]
DoneFn = Callable[[Tensor, Tensor, Tensor], Tensor] | None

# Control periods dt = model timestep * frame_skip, from each env's XML and its frame_skip default.
_DT_HALF_CHEETAH = 0.01 * 5  # half_cheetah.xml timestep 0.01, half_cheetah_v5.py frame_skip 5
_DT_HOPPER = 0.002 * 4  # hopper.xml timestep 0.002, hopper_v5.py frame_skip 4
_DT_WALKER = 0.002 * 4  # walker2d_v5.xml timestep 0.002, walker2d_v5.py frame_skip 4


# ----- Pendulum-v1 (gymnasium/envs/classic_control/pendulum.py) -----
def pendulum_reward(obs: Tensor, act: Tensor, next_obs: Tensor) -> Tensor:
    """-(theta^2 + 0.1 thdot^2 + 0.001 u^2) on the state before the step; obs = (cos th, sin th, thdot), |u| <= 2."""
    theta = torch.atan2(obs[..., 1], obs[..., 0])  # in (-pi, pi], the square equals angle_normalize's
    u = act[..., 0].clamp(-2.0, 2.0)  # the env clips to max_torque=2 before costing
    return -(theta**2 + 0.1 * obs[..., 2] ** 2 + 0.001 * u**2)


# ----- InvertedPendulum-v5 (gymnasium/envs/mujoco/inverted_pendulum_v5.py) -----
def inverted_pendulum_done(obs: Tensor, act: Tensor, next_obs: Tensor) -> Tensor:
    """Terminated when the pole angle |next_obs[1]| > 0.2 rad or the observation is not finite."""
    return (~torch.isfinite(next_obs).all(dim=-1)) | (next_obs[..., 1].abs() > 0.2)


def inverted_pendulum_reward(obs: Tensor, act: Tensor, next_obs: Tensor) -> Tensor:
    """1 per step while the pole stays up, 0 on the step that terminates (v5's reward = int(not terminated))."""
    return (~inverted_pendulum_done(obs, act, next_obs)).to(next_obs.dtype)


# ----- HalfCheetah-v5 (gymnasium/envs/mujoco/half_cheetah_v5.py), obs[0] = x with env_kwargs -----
def half_cheetah_reward(obs: Tensor, act: Tensor, next_obs: Tensor) -> Tensor:
    """Forward velocity (x' - x) / dt minus 0.1 * |a|^2."""
    forward = (next_obs[..., 0] - obs[..., 0]) / _DT_HALF_CHEETAH
    return forward - 0.1 * (act**2).sum(-1)


# ----- Pusher-v5 (gymnasium/envs/mujoco/pusher_v5.py) -----
def pusher_reward(obs: Tensor, act: Tensor, next_obs: Tensor) -> Tensor:
    """-|object - goal| - 0.5 |object - fingertip| - 0.1 |a|^2, positions after the step (obs[14:17] tip, [17:20] object, [20:23] goal)."""
    tip, obj, goal = next_obs[..., 14:17], next_obs[..., 17:20], next_obs[..., 20:23]
    near = torch.linalg.vector_norm(obj - tip, dim=-1)
    dist = torch.linalg.vector_norm(obj - goal, dim=-1)
    return -dist - 0.5 * near - 0.1 * (act**2).sum(-1)


# ----- Hopper-v5 (gymnasium/envs/mujoco/hopper_v5.py), obs = (x, z, angle, qpos[3:], clip(qvel, +-10)) -----
def _hopper_healthy(next_obs: Tensor) -> Tensor:
    z, angle, state = next_obs[..., 1], next_obs[..., 2], next_obs[..., 2:]
    healthy_state = ((state > -100.0) & (state < 100.0)).all(dim=-1)
    return healthy_state & (z > 0.7) & (angle > -0.2) & (angle < 0.2)


def hopper_done(obs: Tensor, act: Tensor, next_obs: Tensor) -> Tensor:
    """Terminated when unhealthy: z <= 0.7, |angle| >= 0.2 or a state entry outside (-100, 100)."""
    return ~_hopper_healthy(next_obs)


def hopper_reward(obs: Tensor, act: Tensor, next_obs: Tensor) -> Tensor:
    """(x' - x) / dt + 1 while healthy - 1e-3 |a|^2."""
    forward = (next_obs[..., 0] - obs[..., 0]) / _DT_HOPPER
    return forward + _hopper_healthy(next_obs).to(next_obs.dtype) - 1e-3 * (act**2).sum(-1)


# ----- Walker2d-v5 (gymnasium/envs/mujoco/walker2d_v5.py), obs = (x, z, angle, ...) with env_kwargs -----
def _walker_healthy(next_obs: Tensor) -> Tensor:
    z, angle = next_obs[..., 1], next_obs[..., 2]
    return (z > 0.8) & (z < 2.0) & (angle > -1.0) & (angle < 1.0)


def walker_done(obs: Tensor, act: Tensor, next_obs: Tensor) -> Tensor:
    """Terminated when unhealthy: z outside (0.8, 2.0) or angle outside (-1, 1)."""
    return ~_walker_healthy(next_obs)


def walker_reward(obs: Tensor, act: Tensor, next_obs: Tensor) -> Tensor:
    """(x' - x) / dt + 1 while healthy - 1e-3 |a|^2."""
    forward = (next_obs[..., 0] - obs[..., 0]) / _DT_WALKER
    return forward + _walker_healthy(next_obs).to(next_obs.dtype) - 1e-3 * (act**2).sum(-1)


_KEEP_X = {"exclude_current_positions_from_observation": False}

# env id -> (reward, done, gymnasium.make kwargs the functions need)
_TABLE: dict[str, tuple[RewardFn, DoneFn, dict[str, Any]]] = {
    "Pendulum-v1": (pendulum_reward, None, {}),
    "InvertedPendulum-v5": (inverted_pendulum_reward, inverted_pendulum_done, {}),
    "HalfCheetah-v5": (half_cheetah_reward, None, _KEEP_X),
    "Pusher-v5": (pusher_reward, None, {}),
    "Hopper-v5": (hopper_reward, hopper_done, _KEEP_X),
    "Walker2d-v5": (walker_reward, walker_done, _KEEP_X),
}
SUPPORTED_ENVS: tuple[str, ...] = tuple(_TABLE)


def _entry(env_id: str) -> tuple[RewardFn, DoneFn, dict[str, Any]]:
    try:
        return _TABLE[env_id]
    except KeyError:
        raise UserError(
            f"no torch reward function for env {env_id!r}{close_matches(env_id, _TABLE)}; "
            f"supported: {', '.join(SUPPORTED_ENVS)} (add one in robolearn/mbrl/envfns.py)"
        ) from None


def env_functions(env_id: str) -> tuple[RewardFn, DoneFn]:
    """The (reward, terminated) torch functions of (obs, act, next_obs) for env_id; terminated is None if it never ends."""
    reward, done, _ = _entry(env_id)
    return reward, done


def env_kwargs(env_id: str) -> dict[str, Any]:
    """gymnasium.make kwargs the env's torch functions rely on (e.g. keep x in the observation)."""
    return dict(_entry(env_id)[2])


def control_dt(env_id: str) -> float:
    """The control period the forward-progress rewards assume (nan for envs whose reward has no dt)."""
    _entry(env_id)
    return {"HalfCheetah-v5": _DT_HALF_CHEETAH, "Hopper-v5": _DT_HOPPER, "Walker2d-v5": _DT_WALKER}.get(
        env_id, math.nan
    )
