"""Build single, vectorised and evaluation envs from an `env` config node."""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any

import gymnasium as gym
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv, VecNormalize

from robolearn.envs.state import EnvSnapshotWrapper
from robolearn.envs.tasks import register_envs  # re-exported: the ids' one registration
from robolearn.errors import UserError, close_matches


def _cfg_get(cfg: Any, key: str, default: Any = None) -> Any:
    return cfg.get(key, default) if hasattr(cfg, "get") else getattr(cfg, key, default)


def make_env(env_cfg: Any, render_mode: str | None = None) -> gym.Env:
    """gymnasium.make(env.id, **env.kwargs), with a one-line error for an unknown id.

    The passive env checker is off here: every registered id passes the checkers in the test suite,
    and the extra wrapper layer costs steps/s in every training run.
    """
    kwargs = dict(_cfg_get(env_cfg, "kwargs") or {})
    if kwargs.get("backend") == "isaaclab":
        from robolearn.isaac.client import make_isaac_env

        return make_isaac_env(env_cfg)  # its own task server with one env
    register_envs()
    env_id = str(_cfg_get(env_cfg, "id"))
    max_steps = _cfg_get(env_cfg, "max_episode_steps")
    if max_steps is not None:
        kwargs["max_episode_steps"] = int(max_steps)
    if env_id not in gym.registry:
        raise UserError(
            f"env.id={env_id} is not a registered gymnasium id{close_matches(env_id, gym.registry.keys())}"
        )
    try:
        return gym.make(env_id, render_mode=render_mode, disable_env_checker=True, **kwargs)
    except TypeError as exc:
        raise UserError(f"env.kwargs={kwargs} rejected by {env_id}: {exc}") from exc


def _train_env_fn(env_cfg: Any) -> Callable[[], gym.Env]:
    def thunk() -> gym.Env:
        return EnvSnapshotWrapper(Monitor(make_env(env_cfg)))

    return thunk


def make_vec_env(
    env_cfg: Any,
    n_envs: int,
    seed: int,
    normalize_obs: bool = False,
    normalize_reward: bool = False,
    gamma: float = 0.99,
) -> VecEnv:
    """The training VecEnv: n copies with episode monitors and state snapshots, seeded seed+i.

    A robolearn task with env.kwargs.backend=batch|warp is stepped as one batch instead (threads:
    the cores this process may use); its episode statistics and snapshots come from the batch itself.
    env.kwargs.backend=isaaclab steps the task in another interpreter (robolearn/isaac/client.py).
    """
    kwargs = dict(_cfg_get(env_cfg, "kwargs") or {})
    venv: VecEnv
    if kwargs.get("backend") == "isaaclab":
        from robolearn.isaac.client import make_isaac_vec_env

        venv = make_isaac_vec_env(env_cfg, n_envs, seed)
    elif kwargs.get("backend", "mujoco") in ("batch", "warp"):
        from robolearn.envs.vector import make_batched_env

        register_envs()
        max_steps = _cfg_get(env_cfg, "max_episode_steps")
        if max_steps is not None:
            kwargs["max_episode_steps"] = int(max_steps)
        threads = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
        venv = make_batched_env(str(_cfg_get(env_cfg, "id")), n_envs, seed, threads=threads, **kwargs)
    else:
        venv = _vec_of_single_envs(env_cfg, n_envs, seed)
    if normalize_obs or normalize_reward:
        venv = VecNormalize(venv, norm_obs=normalize_obs, norm_reward=normalize_reward, gamma=gamma)
    return venv


def _vec_of_single_envs(env_cfg: Any, n_envs: int, seed: int) -> VecEnv:
    fns = [_train_env_fn(env_cfg) for _ in range(n_envs)]
    vec_kind = str(_cfg_get(env_cfg, "vec_env", "dummy"))
    venv: VecEnv
    if vec_kind == "subproc" and n_envs > 1:
        venv = SubprocVecEnv(fns, start_method="forkserver")
    else:
        venv = DummyVecEnv(fns)
    venv.seed(seed)
    return venv


def make_eval_env(env_cfg: Any, render_mode: str | None = None) -> gym.Env:
    """A single env for deterministic evaluation (episodes are reset with explicit seeds)."""
    return make_env(env_cfg, render_mode=render_mode)
