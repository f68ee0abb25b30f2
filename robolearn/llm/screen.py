"""Screening candidate priors by rollouts: N seeded episodes each, in sandbox children, best mean wins.

The CAMEL paper screened LLM-written policies by hand; here every candidate that passed the checker and
the probe is rolled out for ``episodes`` episodes with seeds ``seed, seed + 1, ...`` (deterministic:
same program, same seeds, same returns) and ranked by mean return. Rollouts run in sandbox children
(robolearn.llm.sandbox_child) because a program that behaved on sampled observations can still loop
forever on a state the probe did not cover.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import gymnasium as gym
import numpy as np
from gymnasium.spaces import Box

from robolearn.errors import UserError
from robolearn.llm.sandbox import ChildFailure, SandboxLimits, run_child

DEFAULT_SCREEN_LIMITS = SandboxLimits(cpu_s=300.0, memory_mb=1024.0, wall_s=600.0)


@dataclass(frozen=True)
class ScreenResult:
    """Rollout returns of one candidate, or the reason it failed."""

    name: str
    returns: tuple[float, ...] = ()
    lengths: tuple[int, ...] = ()
    clipped_fraction: float = 0.0
    error: str | None = None
    walls: Mapping[str, str] = field(default_factory=dict)  # sandbox wall -> state, as the child stated it

    @property
    def ok(self) -> bool:
        """True when every episode ran to its end."""
        return self.error is None and bool(self.returns)

    @property
    def mean(self) -> float:
        """Mean episode return (-inf for a failed candidate, so it ranks last)."""
        return float(np.mean(self.returns)) if self.ok else float("-inf")

    @property
    def std(self) -> float:
        """Standard deviation of the episode returns."""
        return float(np.std(self.returns)) if self.ok else float("nan")

    @property
    def mean_length(self) -> float:
        """Mean episode length in steps (nan for a failed candidate)."""
        return float(np.mean(self.lengths)) if self.ok and self.lengths else float("nan")


def make_env(env_id: str, env_kwargs: Mapping[str, Any] | None = None) -> gym.Env[Any, Any]:
    """gymnasium.make (with the run's env kwargs, if any) and a one-line UserError for unknown ids
    (robolearn/ ids register on import)."""
    if env_id.startswith("robolearn/"):
        try:
            importlib.import_module("robolearn.envs").register_envs()
        except ImportError as exc:
            raise UserError(f"cannot import robolearn.envs to register {env_id!r}: {exc}") from None
    try:
        return gym.make(env_id, **dict(env_kwargs or {}))
    except gym.error.Error as exc:
        raise UserError(f"cannot make env {env_id!r}: {str(exc).splitlines()[0]}") from None


def action_bounds(env: gym.Env[Any, Any]) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) of a Box action space as float64; UserError for any other space."""
    space = env.action_space
    if not isinstance(space, Box):
        raise UserError(
            f"priors need a continuous (Box) action space, {env.spec.id if env.spec else env} has {space}"
        )
    return np.asarray(space.low, dtype=np.float64), np.asarray(space.high, dtype=np.float64)


def sample_observations(
    env_id: str,
    n: int = 64,
    seed: int = 0,
    episode_steps: int = 50,
    env_kwargs: Mapping[str, Any] | None = None,
) -> np.ndarray:
    """``n`` observations from uniform-random rollouts (resets included), for probing candidates."""
    env = make_env(env_id, env_kwargs)
    rng = np.random.default_rng(seed)
    env.action_space.seed(seed)
    samples: list[np.ndarray] = []
    episode = 0
    try:
        while len(samples) < n:
            obs, _ = env.reset(seed=seed + episode)
            samples.append(np.asarray(obs, dtype=np.float64))
            # Random-length episodes spread the samples over early and late states.
            for _ in range(int(rng.integers(1, episode_steps + 1))):
                obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
                samples.append(np.asarray(obs, dtype=np.float64))
                if terminated or truncated or len(samples) >= n:
                    break
            episode += 1
    finally:
        env.close()
    return np.stack(samples[:n])


def screen_sources(
    sources: Sequence[tuple[str, str]],
    env_id: str,
    episodes: int = 10,
    seed: int = 0,
    max_steps: int | None = None,
    limits: SandboxLimits = DEFAULT_SCREEN_LIMITS,
    workers: int | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
) -> list[ScreenResult]:
    """Roll out each (name, source) for ``episodes`` seeded episodes in parallel sandbox children
    (on the env made with ``env_kwargs``, a prior's own env options)."""
    if episodes < 1:
        raise UserError(f"screen.episodes must be at least 1, got {episodes}")
    make_env(env_id, env_kwargs).close()  # a bad id fails once here, not once per candidate

    def one(item: tuple[str, str]) -> ScreenResult:
        name, source = item
        request = {
            "mode": "rollout",
            "source": source,
            "env_id": env_id,
            "episodes": episodes,
            "seed": seed,
            "max_steps": max_steps,
            "env_kwargs": dict(env_kwargs or {}),
        }
        try:
            result = run_child(request, limits)
        except ChildFailure as failure:
            return ScreenResult(name=name, error=str(failure), walls=failure.walls)
        if "error" in result:
            return ScreenResult(name=name, error=str(result["error"]), walls=result["walls"])
        return ScreenResult(
            name=name,
            returns=tuple(float(r) for r in result["returns"]),
            lengths=tuple(int(n) for n in result["lengths"]),
            clipped_fraction=float(result["clipped_fraction"]),
            walls=result["walls"],
        )

    n_workers = workers or max(1, min(len(sources), os.cpu_count() or 1))
    with ThreadPoolExecutor(max_workers=n_workers) as pool:
        return list(pool.map(one, sources))


BASELINE_AGENTS = ("zero-action", "random")


def baseline_rollouts(
    env_id: str,
    agent: str,
    episodes: int = 10,
    seed: int = 0,
    max_steps: int | None = None,
    env_kwargs: Mapping[str, Any] | None = None,
) -> ScreenResult:
    """Returns and lengths of a baseline agent over the screen's seeded episodes (reset seeds ``seed + i``).

    ``zero-action`` sends the zero action (clipped into the action box, in the action space's dtype,
    float32 for MuJoCo, as the screen's rollouts send a prior's actions); ``random`` samples the action
    space, seeded once with ``seed``. Runs in-process: neither agent runs untrusted code.
    """
    if agent not in BASELINE_AGENTS:
        raise UserError(f"baseline agent {agent!r} is not one of {', '.join(BASELINE_AGENTS)}")
    if episodes < 1:
        raise UserError(f"screen.episodes must be at least 1, got {episodes}")
    env = make_env(env_id, env_kwargs)
    returns: list[float] = []
    lengths: list[int] = []
    try:
        low, high = action_bounds(env)
        zero = np.clip(np.zeros_like(low), low, high).astype(env.action_space.dtype)
        env.action_space.seed(seed)
        for episode in range(episodes):
            env.reset(seed=seed + episode)
            total, steps = 0.0, 0
            while True:
                action = zero if agent == "zero-action" else env.action_space.sample()
                _, reward, terminated, truncated, _ = env.step(action)
                total += float(reward)
                steps += 1
                if terminated or truncated or (max_steps is not None and steps >= max_steps):
                    break
            returns.append(total)
            lengths.append(steps)
    finally:
        env.close()
    return ScreenResult(name=agent, returns=tuple(returns), lengths=tuple(lengths))
