"""Rollout evaluation of an imitation policy on a task's contexts (success rate, returns, tracking error)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from robolearn.errors import UserError
from robolearn.imitation.tasks import ImitationTask, Obs

PolicyFactory = Callable[[], Callable[[Obs], np.ndarray]]


def episode_seed(seed: int, context_index: int, episode: int) -> int:
    """The reset seed of one evaluation episode: fixed by (seed, context, episode), distinct across them."""
    return int(np.random.SeedSequence([seed, context_index, episode]).generate_state(1)[0])


def rollout(
    task: ImitationTask, policy: Callable[[Obs], np.ndarray], context: np.ndarray, reset_seed: int
) -> dict[str, Any]:
    """One episode of `policy` in task.make_env(context): return, success, steps (+ mean tracking error)."""
    env = task.make_env(context)
    try:
        obs, info = env.reset(seed=reset_seed)
        total, steps, done = 0.0, 0, False
        tracking: list[float] = []
        while not done:
            action = np.asarray(policy(obs), dtype=np.float32)
            obs, reward, terminated, truncated, info = env.step(action)
            total += float(reward)
            steps += 1
            if "tracking_error" in info:
                tracking.append(float(info["tracking_error"]))
            done = bool(terminated or truncated)
            if steps > 100 * task.max_steps:  # an env without a time limit would hang the evaluation
                raise UserError(f"task {task.name}: an episode ran past {steps} steps without ending")
    finally:
        env.close()
    out: dict[str, Any] = {"return": total, "success": bool(info.get("success", False)), "steps": steps}
    if tracking:
        out["tracking_error"] = float(np.mean(tracking))
    return out


def evaluate_policy(
    task: ImitationTask,
    policy_factory: PolicyFactory,
    contexts: np.ndarray,
    episodes_per_context: int,
    seed: int,
) -> dict[str, Any]:
    """Roll out a fresh policy per episode in make_env(ctx) for every context; seeds fixed by `seed`.

    Returns {"success_rate", "mean_return", "std_return", "returns", "successes", "episodes",
    "mean_steps"} and, when the task reports one, "tracking_error" (mean over episodes of the per-step
    mean) with "tracking_errors".
    """
    contexts = np.asarray(contexts, dtype=np.float32)
    if contexts.ndim == 1:
        contexts = contexts[None]
    if contexts.ndim != 2 or contexts.shape[1] != task.context_dim or len(contexts) == 0:
        raise UserError(
            f"contexts of shape {contexts.shape} do not fit task {task.name}; "
            f"give (n, {task.context_dim}) with n >= 1"
        )
    if not isinstance(episodes_per_context, int) or episodes_per_context < 1:
        raise UserError(f"episodes_per_context={episodes_per_context} is out of range; use an integer >= 1")
    returns: list[float] = []
    successes: list[bool] = []
    steps: list[int] = []
    tracking: list[float] = []
    for i, context in enumerate(contexts):
        for k in range(episodes_per_context):
            result = rollout(task, policy_factory(), context, episode_seed(seed, i, k))
            returns.append(result["return"])
            successes.append(result["success"])
            steps.append(result["steps"])
            if "tracking_error" in result:
                tracking.append(result["tracking_error"])
    out: dict[str, Any] = {
        "success_rate": float(np.mean(successes)),
        "mean_return": float(np.mean(returns)),
        "std_return": float(np.std(returns)),
        "returns": returns,
        "successes": successes,
        "episodes": len(returns),
        "mean_steps": float(np.mean(steps)),
    }
    if tracking:
        out["tracking_error"] = float(np.mean(tracking))
        out["tracking_errors"] = tracking
    return out
