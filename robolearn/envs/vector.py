"""A batched task as an SB3 VecEnv and as a gymnasium VectorEnv, both with same-step auto-reset.

One RobotTask simulates all envs; there is no per-env Python object. When envs finish a step,
their final observation goes into the infos (SB3: `terminal_observation` and
`TimeLimit.truncated`; gymnasium: `final_obs` / `final_info` with `_`-masks), they are reset at
once, and the returned observation is their first of the next episode. Episode statistics are
reported as SB3's Monitor does (`info["episode"] = {"r", "l", "t"}`), so no Monitor wrapper is
needed, plus the episode's weighted reward-term sums under `reward_terms`.

Observations are fresh C-contiguous float32 (N, obs) arrays every step, so `torch.from_numpy` wraps
them without a copy (rsl_rl's adapter on the CPU); the SB3 VecEnv's rewards are float32 and its
dones bool, both (N,) and contiguous.

These adapters build tasks, so they live above robolearn.envs.tasks; the backends below never import
them (robolearn.envs.backends resolves the old names lazily).
"""

from __future__ import annotations

import importlib
import time
from collections.abc import Sequence
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.vector import AutoresetMode
from gymnasium.vector.utils import batch_space
from stable_baselines3.common.vec_env import VecEnv
from stable_baselines3.common.vec_env.base_vec_env import VecEnvIndices, VecEnvObs, VecEnvStepReturn

from robolearn.envs.state import layer_state, set_layer_state
from robolearn.envs.tasks import TASKS, register_envs
from robolearn.envs.tasks.base import RobotTask
from robolearn.errors import UserError, close_matches


def batch_state_method(
    env: Any, method_name: str, method_args: tuple[Any, ...], method_kwargs: dict[str, Any], idx: list[int]
) -> list[Any] | None:
    """env_method's get_state/set_state for a VecEnv whose whole batch is one state: index 0 carries it
    (SB3 calls env_method on every index). None for any other method, which the caller handles."""
    if method_name == "get_state":
        return [env.get_state() if i == 0 else None for i in idx]
    if method_name == "set_state":
        state = method_args[0] if method_args else method_kwargs["state"]
        if state is not None:
            env.set_state(state)
        return [None for _ in idx]
    return None


class _Runner:
    """Auto-reset and episode bookkeeping shared by both adapters."""

    def __init__(self, task: RobotTask) -> None:
        self.task = task
        n = task.num_envs
        self.episode_return = np.zeros(n)
        self.episode_length = np.zeros(n, dtype=np.int64)
        self.t_start = time.time()
        # The task's critic-only values, in step with the observations (None without any).
        self.privileged: np.ndarray | None = None

    def reset(self, seed: int | None) -> np.ndarray:
        if seed is not None:
            self.task.seed_rng(seed)
        ids = np.arange(self.task.num_envs)
        self.task.reset_envs(ids)
        self.episode_return[:] = 0.0
        self.episode_length[:] = 0
        frame = self.task.backend.frame()
        self.privileged = self._privileged(frame, ids)
        return self.task.observe(frame)

    def _privileged(self, frame: Any, ids: np.ndarray) -> np.ndarray | None:
        values = self.task.privileged_observation(frame, ids)
        return None if values is None else np.asarray(values, dtype=np.float32)

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray, list[dict[str, Any]]]:
        """obs (reset ones replaced), reward, terminated, truncated, done ids, their final obs, their episode infos."""
        task = self.task
        obs, reward, terminated, truncated, _ = task.step_envs(actions)
        if task.last_privileged is not None:
            self.privileged = np.asarray(task.last_privileged, dtype=np.float32)
        self.episode_return += reward
        self.episode_length += 1
        done = np.flatnonzero(terminated | truncated)
        final_obs = obs[done]  # fancy indexing copies: the rows survive the reset below
        episodes: list[dict[str, Any]] = []
        if len(done):
            now = round(time.time() - self.t_start, 6)
            for i in done:
                episodes.append(
                    {
                        "episode": {
                            "r": float(self.episode_return[i]),
                            "l": int(self.episode_length[i]),
                            "t": now,
                        },
                        "reward_terms": task.episode_terms(int(i)),
                    }
                )
            task.reset_envs(done)
            frame = task.backend.frame()
            obs[done] = task.observe(frame, done)
            if self.privileged is not None:
                self.privileged[done] = self._privileged(frame, done)
            self.episode_return[done] = 0.0
            self.episode_length[done] = 0
        return obs, reward, terminated, truncated, done, final_obs, episodes

    def get_state(self) -> dict[str, Any]:
        return {
            "task": layer_state(self.task),
            "physics": self.task.backend.get_physics_state(),
            "episode_return": self.episode_return.copy(),
            "episode_length": self.episode_length.copy(),
            "privileged": None if self.privileged is None else self.privileged.copy(),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        set_layer_state(self.task, state["task"])
        self.task.backend.set_physics_state(state["physics"])
        self.episode_return = state["episode_return"].copy()
        self.episode_length = state["episode_length"].copy()
        privileged = state.get("privileged")  # .get: snapshots from before privileged observations
        self.privileged = None if privileged is None else privileged.copy()


class BatchedVecEnv(VecEnv):
    """SB3 VecEnv over one batched task.

    Snapshots for exact resume go through env_method("get_state") / ("set_state", s) as for
    robolearn's other VecEnvs: index 0 carries the whole batch's state and the others None, since
    the envs share one generator and one simulator.
    """

    def __init__(self, task: RobotTask) -> None:
        self.task = task
        self.runner = _Runner(task)
        self._actions: np.ndarray | None = None
        super().__init__(task.num_envs, task.observation_space, task.action_space)

    def reset(self) -> VecEnvObs:
        """Reset every env; a seed from seed() reseeds the task (the first env's seed)."""
        obs = self.runner.reset(self._seeds[0])
        self._reset_seeds()
        self.reset_infos = [{} for _ in range(self.num_envs)]
        return obs

    @property
    def privileged_observations(self) -> np.ndarray | None:
        """(N, k) critic-only values of the current step (the task's privileged_observation: after a
        reset, the new episode's), or None when the task has none; rsl_ppo's "critic" group."""
        return self.runner.privileged

    def step_async(self, actions: np.ndarray) -> None:
        """Store the actions for step_wait."""
        self._actions = np.asarray(actions)

    def step_wait(self) -> VecEnvStepReturn:
        """Step all envs, auto-resetting the finished ones in the same step."""
        if self._actions is None:
            raise RuntimeError("step_async must be called before step_wait")
        obs, reward, terminated, truncated, done, final_obs, episodes = self.runner.step(self._actions)
        infos: list[dict[str, Any]] = [{} for _ in range(self.num_envs)]
        for row, i in enumerate(done):
            infos[i] = {
                "terminal_observation": final_obs[row],
                "TimeLimit.truncated": bool(truncated[i] and not terminated[i]),
                **episodes[row],
            }
        return obs, reward.astype(np.float32), terminated | truncated, infos

    def close(self) -> None:
        """Close the task and its backend."""
        self.task.close()

    def get_state(self) -> dict[str, Any]:
        """The whole batch's state (task buffers, generator, physics, episode counters)."""
        return self.runner.get_state()

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore get_state()'s snapshot into an identically built env."""
        self.runner.set_state(state)

    def get_attr(self, attr_name: str, indices: VecEnvIndices = None) -> list[Any]:
        """The task's attribute, once per index (the envs share one task)."""
        value = getattr(self.task, attr_name)
        return [value for _ in self._get_indices(indices)]

    def set_attr(self, attr_name: str, value: Any, indices: VecEnvIndices = None) -> None:
        """Set an attribute on the shared task."""
        setattr(self.task, attr_name, value)

    def env_method(
        self, method_name: str, *method_args: Any, indices: VecEnvIndices = None, **method_kwargs: Any
    ) -> list[Any]:
        """get_state/set_state snapshot the batch (see the class docstring); others call the task once."""
        idx = list(self._get_indices(indices))
        handled = batch_state_method(self, method_name, method_args, method_kwargs, idx)
        if handled is not None:
            return handled
        result = getattr(self.task, method_name)(*method_args, **method_kwargs)
        return [result for _ in idx]

    def env_is_wrapped(self, wrapper_class: type[gym.Wrapper], indices: VecEnvIndices = None) -> list[bool]:
        """No env is a wrapped gymnasium.Env here."""
        return [False for _ in self._get_indices(indices)]


class BatchedVectorEnv(gym.vector.VectorEnv):
    """gymnasium VectorEnv over one batched task, same-step autoreset (final obs in infos)."""

    metadata: dict[str, Any] = {"autoreset_mode": AutoresetMode.SAME_STEP, "render_modes": []}  # noqa: RUF012

    def __init__(self, task: RobotTask) -> None:
        self.task = task
        self.runner = _Runner(task)
        self.num_envs = task.num_envs
        self.single_observation_space = task.observation_space
        self.single_action_space = task.action_space
        self.observation_space = batch_space(task.observation_space, self.num_envs)
        self.action_space = batch_space(task.action_space, self.num_envs)
        self.render_mode = None

    def reset(
        self, *, seed: int | Sequence[int] | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Reset every env; a seed (or the first of a list) reseeds the task."""
        first = seed[0] if isinstance(seed, Sequence) else seed
        return self.runner.reset(first), {}

    def step(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, Any]]:
        """Step all envs; finished ones report final_obs/final_info and restart in the same step."""
        obs, reward, terminated, truncated, done, final_obs, episodes = self.runner.step(np.asarray(actions))
        infos: dict[str, Any] = {}
        if len(done):
            n = self.num_envs
            mask = np.zeros(n, dtype=bool)
            mask[done] = True
            finals = np.full(n, None, dtype=object)
            for row, i in enumerate(done):
                finals[i] = final_obs[row]
            r = np.zeros(n)
            length = np.zeros(n, dtype=np.int64)
            t = np.zeros(n)
            for row, i in enumerate(done):
                ep = episodes[row]["episode"]
                r[i], length[i], t[i] = ep["r"], ep["l"], ep["t"]
            episode = {"r": r, "l": length, "t": t, "_r": mask, "_l": mask, "_t": mask}
            infos = {
                "final_obs": finals,
                "_final_obs": mask,
                "final_info": {"episode": episode, "_episode": mask},
                "_final_info": mask,
            }
        return obs, reward, terminated, truncated, infos

    def close_extras(self, **kwargs: Any) -> None:
        """Close the task and its backend."""
        self.task.close()


def _build_task(env_id: str, num_envs: int, threads: int, kwargs: dict[str, Any]) -> RobotTask:
    register_envs()
    if env_id not in TASKS:
        raise UserError(
            f"make_batched_env serves robolearn's own tasks; {env_id} is not one{close_matches(env_id, TASKS)}"
            f" (choices: {', '.join(TASKS)})"
        )
    entry = TASKS[env_id]
    module_name, class_name = entry.entry_point.split(":")
    task_class: type[RobotTask] = getattr(importlib.import_module(module_name), class_name)
    options = {**entry.kwargs, **kwargs}
    options.setdefault("backend", "batch")
    options.setdefault("max_episode_steps", entry.max_episode_steps)
    try:
        task = task_class(num_envs=num_envs, threads=threads, **options)
    except TypeError as exc:
        raise UserError(f"env.kwargs={kwargs} rejected by {env_id}: {exc}") from exc
    return task


def make_batched_env(
    env_id: str, num_envs: int, seed: int | None = 0, threads: int = 1, **kwargs: Any
) -> BatchedVecEnv:
    """An SB3 VecEnv of num_envs envs of a robolearn task on one batched backend (kwarg backend, default batch).

    kwargs are the env's kwargs (env.kwargs in a config) plus max_episode_steps; seed seeds the
    batch's one generator at the first reset.
    """
    venv = BatchedVecEnv(_build_task(env_id, num_envs, threads, dict(kwargs)))
    venv.seed(seed)
    return venv


def make_batched_vector_env(env_id: str, num_envs: int, threads: int = 1, **kwargs: Any) -> BatchedVectorEnv:
    """The same batched task as a gymnasium VectorEnv (seed it through reset(seed=...))."""
    return BatchedVectorEnv(_build_task(env_id, num_envs, threads, dict(kwargs)))
