"""The continual model-based RL loop: HyperCRL's per-task procedure, for any continual learner.

Per task, as in the paper (Huang et al., IROS 2021, Alg. 1) and the official code
(rvl-lab-utoronto/HyperCRL, hypercrl/hnet_exp.py `run`):

1. `learner.begin_task(t)`; `random_steps` env steps with uniform random actions;
2. `mpc_steps` env steps acting with MPC (CEM or MPPI on `learner.model(t)` and the env's torch
   reward), training the dynamics with `learner.fit` on the task's whole buffer every
   `update_every` MPC steps (the first right after the random steps);
3. `learner.end_task(t, ...)`, then every task seen so far is evaluated: the MPC return on task j's
   env with `learner.model(j)` -> returns[t, j], and the one-step prediction error on task j's
   held-out transitions -> pred_error[t, j]. Each transition is held out with probability
   `heldout_fraction` (0.25, as the official DataCollector's 75/25 split) and never trained on.

Only the current task's training buffer is kept (the learner may keep its own memory: multitask
all data, coreset a sample). Checkpoints fall on episode boundaries, where the env is reset with a
seed derived from (seed, task, episode) and the planner is reset, so a checkpoint needs no env or
planner state; a resumed run repeats the uninterrupted run's numbers exactly.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import gymnasium as gym
import numpy as np
import torch

from robolearn.errors import UserError
from robolearn.runs.loop import LoopRun
from robolearn.utils.io import json_safe

# Env seeds: training episodes and evaluation episodes draw from disjoint ranges.
_TRAIN_SEED_BASE = 1_000_003
_EVAL_SEED_BASE = 7_000_001


class Planner(Protocol):
    """What the loop needs from a planner (robolearn.mbrl.planners.CEMPlanner / MPPIPlanner)."""

    def plan(self, model: Any, reward_fn: Any, obs: torch.Tensor, done_fn: Any = None) -> torch.Tensor: ...

    def reset(self) -> None: ...


@dataclass(frozen=True)
class LoopSettings:
    """The loop's per-sequence settings (configs/loop/<sequence>.yaml, overridable by loop.<key>)."""

    random_steps: int
    mpc_steps: int
    update_every: int
    episode_steps: int
    planner: str
    horizon: int
    samples: int
    elites: int
    iterations: int
    eval_episodes: int
    eval_episode_steps: int
    heldout_fraction: float
    checkpoint_every: int

    @property
    def steps_per_task(self) -> int:
        """Env steps of one task (random + MPC)."""
        return self.random_steps + self.mpc_steps

    @staticmethod
    def from_mapping(values: dict[str, Any]) -> LoopSettings:
        """Build from a mapping (the resolved `loop` config node), checking each value's range."""
        checks: dict[str, tuple[Callable[[Any], bool], str]] = {
            "random_steps": (lambda v: v >= 1, "an integer >= 1"),
            "mpc_steps": (lambda v: v >= 1, "an integer >= 1"),
            "update_every": (lambda v: v >= 1, "an integer >= 1"),
            "episode_steps": (lambda v: v >= 1, "an integer >= 1"),
            "planner": (lambda v: v in ("cem", "mppi"), "cem or mppi"),
            "horizon": (lambda v: v >= 1, "an integer >= 1"),
            "samples": (lambda v: v >= 2, "an integer >= 2"),
            "elites": (lambda v: v >= 1, "an integer >= 1, at most loop.samples"),
            "iterations": (lambda v: v >= 1, "an integer >= 1"),
            "eval_episodes": (lambda v: v >= 1, "an integer >= 1"),
            "eval_episode_steps": (lambda v: v >= 1, "an integer >= 1"),
            "heldout_fraction": (lambda v: 0 < v < 1, "a fraction in (0, 1)"),
            "checkpoint_every": (lambda v: v >= 1, "env steps >= 1"),
        }
        for key, (ok, allowed) in checks.items():
            value = values.get(key)
            if value is None:
                raise UserError(f"loop.{key} is not set; give loop.{key}=<{allowed}>")
            if not ok(value):
                raise UserError(f"loop.{key}={value} is out of range; use {allowed}")
        if values["elites"] > values["samples"]:
            raise UserError(
                f"loop.elites={values['elites']} exceeds loop.samples={values['samples']}; "
                "use at most as many elites as samples"
            )
        return LoopSettings(**{k: values[k] for k in checks})


class TransitionBuffer:
    """(obs, act, next_obs) rows appended one at a time; stacked into arrays only when asked
    (appending to arrays would copy the whole buffer at every env step)."""

    KEYS = ("obs", "act", "next_obs")

    def __init__(self, obs_dim: int, act_dim: int) -> None:
        self.dims = {"obs": obs_dim, "act": act_dim, "next_obs": obs_dim}
        self.rows: dict[str, list[np.ndarray]] = {k: [] for k in self.KEYS}
        self._stacked: dict[str, np.ndarray] | None = None

    def __len__(self) -> int:
        return len(self.rows["obs"])

    def append(self, obs: np.ndarray, act: np.ndarray, next_obs: np.ndarray) -> None:
        """Add one transition (stored as float32)."""
        for key, value in zip(self.KEYS, (obs, act, next_obs), strict=True):
            self.rows[key].append(np.asarray(value, dtype=np.float32).reshape(self.dims[key]))
        self._stacked = None

    def arrays(self) -> dict[str, np.ndarray]:
        """The buffer as float32 arrays [n, dim] (cached until the next append)."""
        if self._stacked is None:
            self._stacked = {
                k: np.stack(v) if v else np.zeros((0, self.dims[k]), dtype=np.float32)
                for k, v in self.rows.items()
            }
        return self._stacked

    @staticmethod
    def from_arrays(arrays: dict[str, np.ndarray], obs_dim: int, act_dim: int) -> TransitionBuffer:
        """The inverse of arrays()."""
        buf = TransitionBuffer(obs_dim, act_dim)
        buf.rows = {k: list(np.asarray(arrays[k], dtype=np.float32)) for k in TransitionBuffer.KEYS}
        return buf


def _nan_matrix(n: int) -> np.ndarray:
    return np.full((n, n), np.nan, dtype=np.float64)


class ContinualLoop:
    """One continual MBRL run over a task sequence: acting, training, evaluating, checkpointing.

    `make_env(task, seed)` builds task `task`'s env; `env_functions(task)` gives its torch
    (reward, done) functions; `make_planner(action_space)` builds a fresh planner.
    """

    def __init__(
        self,
        settings: LoopSettings,
        num_tasks: int,
        learner: Any,
        make_env: Callable[[int], gym.Env],
        env_functions: Callable[[int], tuple[Any, Any]],
        make_planner: Callable[[gym.spaces.Box], Planner],
        seed: int,
    ) -> None:
        self.s = settings
        self.num_tasks = num_tasks
        self.learner = learner
        self.make_env = make_env
        self.env_functions = env_functions
        self.make_planner = make_planner
        self.seed = int(seed)
        self._envs: dict[int, gym.Env] = {}
        env = self._env(0)
        assert isinstance(env.observation_space, gym.spaces.Box)
        assert isinstance(env.action_space, gym.spaces.Box)
        self.obs_dim = int(np.prod(env.observation_space.shape))
        self.act_dim = int(np.prod(env.action_space.shape))
        self.rng = np.random.default_rng(np.random.SeedSequence([self.seed, 17]))
        # Progress through the sequence (all of it is checkpointed).
        self.task = 0
        self.task_step = 0  # env steps taken in the current task
        self.mpc_updates = 0  # dynamics updates in the current task
        self.episode = 0  # episodes started in the current task
        self.train = self._empty_buffer()
        self.heldout: list[TransitionBuffer] = []
        self.returns = _nan_matrix(num_tasks)
        self.pred_error = _nan_matrix(num_tasks)
        # Random-policy return per task: the reference b_j of the retention and transfer figures.
        self.reference = np.full(num_tasks, np.nan, dtype=np.float64)
        self.last_fit: dict[str, float] = {}

    # -- state -----------------------------------------------------------------------------------
    def _empty_buffer(self) -> TransitionBuffer:
        return TransitionBuffer(self.obs_dim, self.act_dim)

    @property
    def global_step(self) -> int:
        """Env steps taken over the whole sequence (evaluation steps not counted)."""
        return self.task * self.s.steps_per_task + self.task_step

    @property
    def total_steps(self) -> int:
        """Env steps of the whole sequence."""
        return self.num_tasks * self.s.steps_per_task

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs besides the global RNGs (LoopRun stores those)."""
        return {
            "task": self.task,
            "task_step": self.task_step,
            "mpc_updates": self.mpc_updates,
            "episode": self.episode,
            "rng": self.rng.bit_generator.state,
            "train": self.train.arrays(),
            "heldout": [h.arrays() for h in self.heldout],
            "returns": self.returns.copy(),
            "pred_error": self.pred_error.copy(),
            "reference": self.reference.copy(),
            "last_fit": dict(self.last_fit),
            "learner": self.learner.state_dict(),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore what state_dict() saved."""
        self.task = int(state["task"])
        self.task_step = int(state["task_step"])
        self.mpc_updates = int(state["mpc_updates"])
        self.episode = int(state["episode"])
        self.rng.bit_generator.state = state["rng"]
        self.train = TransitionBuffer.from_arrays(state["train"], self.obs_dim, self.act_dim)
        self.heldout = [TransitionBuffer.from_arrays(h, self.obs_dim, self.act_dim) for h in state["heldout"]]
        self.returns = np.asarray(state["returns"], dtype=np.float64)
        self.pred_error = np.asarray(state["pred_error"], dtype=np.float64)
        self.reference = np.asarray(state["reference"], dtype=np.float64)
        self.last_fit = dict(state["last_fit"])
        self.learner.load_state_dict(state["learner"])

    # -- pieces ----------------------------------------------------------------------------------
    def _env(self, task: int) -> gym.Env:
        if task not in self._envs:
            self._envs[task] = self.make_env(task)
        return self._envs[task]

    def close(self) -> None:
        """Close every env the loop made."""
        for env in self._envs.values():
            env.close()
        self._envs.clear()

    def _add(self, obs: np.ndarray, act: np.ndarray, next_obs: np.ndarray) -> None:
        # The held-out draw comes from the loop's own generator, so the split is part of the seed.
        if self.rng.random() < self.s.heldout_fraction:
            buf = self.heldout[self.task]
        else:
            buf = self.train
        buf.append(obs, act, next_obs)

    def _fit(self) -> dict[str, float]:
        b = self.train.arrays()
        info = self.learner.fit(self.task, b["obs"], b["act"], b["next_obs"])
        self.mpc_updates += 1
        self.last_fit = {k: float(v) for k, v in (info or {}).items() if isinstance(v, int | float)}
        return self.last_fit

    def _act(self, planner: Planner, model: Any, fns: tuple[Any, Any], obs: np.ndarray) -> np.ndarray:
        space = self._env(0).action_space
        assert isinstance(space, gym.spaces.Box)
        with torch.no_grad():
            action = planner.plan(model, fns[0], torch.as_tensor(obs, dtype=torch.float32), done_fn=fns[1])
        return np.clip(action.detach().cpu().numpy().astype(np.float32), space.low, space.high).reshape(
            space.shape
        )

    def run_episode(self, run: LoopRun) -> None:
        """One training episode of the current task (random or MPC), cut at the task's budget."""
        s = self.s
        env = self._env(self.task)
        obs, _ = env.reset(seed=_TRAIN_SEED_BASE * (self.task + 1) + self.seed * 9_973 + self.episode)
        self.episode += 1
        random_phase = self.task_step < s.random_steps
        budget_end = s.random_steps if random_phase else s.steps_per_task
        planner = None if random_phase else self.make_planner(env.action_space)  # type: ignore[arg-type]
        fns = self.env_functions(self.task)
        # Before the task's first update the learner's model for it may not exist yet.
        fitted = self.task_step > s.random_steps
        model = self.learner.model(self.task) if fitted else None
        total, length = 0.0, 0
        space = env.action_space
        assert isinstance(space, gym.spaces.Box)
        while self.task_step < budget_end and length < s.episode_steps:
            if random_phase:
                act = self.rng.uniform(space.low, space.high).astype(np.float32).reshape(space.shape)
            else:
                mpc_step = self.task_step - s.random_steps
                if mpc_step % s.update_every == 0 or model is None:
                    info = self._fit()
                    model = self.learner.model(self.task)
                    run.log(
                        self.global_step,
                        {
                            "task": self.task,
                            "model/updates": self.mpc_updates,
                            **{f"model/{k}": v for k, v in info.items()},
                        },
                    )
                assert planner is not None
                act = self._act(planner, model, fns, obs)
            next_obs, reward, terminated, truncated, _ = env.step(act)
            self._add(np.asarray(obs), act, np.asarray(next_obs))
            total += float(reward)
            length += 1
            self.task_step += 1
            obs = next_obs
            if terminated or truncated:
                break
        run.log(
            self.global_step,
            {
                "task": self.task,
                "train/episode_return": total,
                "train/episode_length": length,
                "train/random": int(random_phase),
            },
        )
        run.progress(self.global_step, episode_return=None if random_phase else total)

    def evaluate_return(self, task: int, model: Any | None) -> float:
        """Mean MPC return over `eval_episodes` episodes on task `task`'s env with `model`; with
        None, uniform random actions (the reference return), from the same start states."""
        env = self._env(task)
        fns = self.env_functions(task)
        planner = self.make_planner(env.action_space)  # type: ignore[arg-type]
        space = env.action_space
        assert isinstance(space, gym.spaces.Box)
        # Its own generator, so the reference does not shift the run's random stream.
        rng = np.random.default_rng(np.random.SeedSequence([self.seed, 29, task]))
        totals = []
        for k in range(self.s.eval_episodes):
            obs, _ = env.reset(seed=_EVAL_SEED_BASE + 10_007 * task + 101 * self.seed + k)
            planner.reset()
            total = 0.0
            for _ in range(self.s.eval_episode_steps):
                if model is None:
                    act = rng.uniform(space.low, space.high).astype(np.float32).reshape(space.shape)
                else:
                    act = self._act(planner, model, fns, obs)
                obs, reward, terminated, truncated, _ = env.step(act)
                total += float(reward)
                if terminated or truncated:
                    break
            totals.append(total)
        return float(np.mean(totals))

    def prediction_error(self, task: int, model: Any) -> float:
        """Mean squared one-step error (raw units, over dims and transitions) on task `task`'s held-out data."""
        if len(self.heldout[task]) == 0:
            return math.nan
        h = self.heldout[task].arrays()
        with torch.no_grad():
            mean, _ = model.predict(torch.as_tensor(h["obs"]), torch.as_tensor(h["act"]))
        return float(torch.mean((mean - torch.as_tensor(h["next_obs"])) ** 2))

    def end_task(self, run: LoopRun) -> None:
        """Close the current task: the learner's end_task, then evaluate every task seen so far."""
        t = self.task
        b = self.train.arrays()
        self.learner.end_task(t, b["obs"], b["act"], b["next_obs"])
        self.reference[t] = self.evaluate_return(t, None)
        for j in range(t + 1):
            model = self.learner.model(j)
            self.pred_error[t, j] = self.prediction_error(j, model)
            self.returns[t, j] = self.evaluate_return(j, model)
            run.log(
                self.global_step,
                {
                    "task": t,
                    "eval/task": j,
                    "eval/return": self.returns[t, j],
                    "eval/pred_error": self.pred_error[t, j],
                    "eval/random_return": self.reference[j],
                },
            )
        run.note(
            f"task {t} done: returns "
            + ", ".join(f"{r:.1f}" for r in self.returns[t, : t + 1])
            + "; held-out one-step MSE "
            + ", ".join(f"{e:.3g}" for e in self.pred_error[t, : t + 1])
        )
        run.progress(self.global_step, eval_return=float(np.mean(self.returns[t, : t + 1])))
        # Only the current task's buffer is kept: the next task starts empty.
        self.train = self._empty_buffer()
        self.task += 1
        self.task_step = 0
        self.mpc_updates = 0
        self.episode = 0

    def run(self, run: LoopRun) -> None:
        """Run the sequence from where the state stands to its end, checkpointing on the way."""
        last_ckpt = self.global_step
        while self.task < self.num_tasks:
            if self.task_step == 0 and self.episode == 0:
                while len(self.heldout) <= self.task:
                    self.heldout.append(self._empty_buffer())
                self.learner.begin_task(self.task)
            self.run_episode(run)
            if self.task_step >= self.s.steps_per_task:
                self.end_task(run)
                run.checkpoint(self.global_step, self.state_dict())
                last_ckpt = self.global_step
            elif self.global_step - last_ckpt >= self.s.checkpoint_every:
                run.checkpoint(self.global_step, self.state_dict())
                last_ckpt = self.global_step
            run.stop_point(self.global_step, self.state_dict)


# JSON-safe numbers: arrays and sequences as (nested) lists, NaN and inf as None (JSON has no NaN).
finite_or_none = json_safe


def matrix_to_json(matrix: np.ndarray) -> list[list[float | None]]:
    """A T x T matrix as nested lists, NaN as null."""
    rows: list[list[float | None]] = finite_or_none(np.asarray(matrix, dtype=np.float64))
    return rows


def matrix_from_json(rows: list[list[float | None]]) -> np.ndarray:
    """The inverse of matrix_to_json."""
    return np.array([[math.nan if v is None else float(v) for v in row] for row in rows], dtype=np.float64)
