"""The screen's baselines: the zero-action and random agents play the prior's seeds with the prior's
action dtype, and `action=screen` reports return and episode length for the prior and both baselines."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

from robolearn.errors import UserError
from robolearn.llm.priors import HAND_WRITTEN_LABEL, prior_path, read_prior, write_prior
from robolearn.llm.screen import baseline_rollouts

pytest_plugins = ["llm_fixtures"]

REPO = Path(__file__).resolve().parents[2]
IDP = "InvertedDoublePendulum-v5"

# A hand-made prior: push the cart toward the lean of the first pole (falls within tens of steps, so
# the episode lengths differ from the time limit and from the zero action's).
PRIOR_CODE = "import numpy as np\n\n\ndef policy(obs):\n    return np.array([4.0 * obs[1] - 0.5 * obs[0]])\n"


def prior_action(obs: np.ndarray) -> np.ndarray:
    return np.array([4.0 * obs[1] - 0.5 * obs[0]])


def by_hand(
    env_id: str, act: Callable[[gym.Env, np.ndarray], np.ndarray], seeds: range, max_steps: int | None = None
) -> tuple[list[float], list[int]]:
    """Each seeded episode played step by step with float32 actions clipped into the box."""
    env = gym.make(env_id)
    returns, lengths = [], []
    for seed in seeds:
        obs, _ = env.reset(seed=seed)
        total, steps = 0.0, 0
        while True:
            action = np.clip(act(env, obs), env.action_space.low, env.action_space.high).astype(np.float32)
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            steps += 1
            if terminated or truncated or (max_steps is not None and steps >= max_steps):
                break
        returns.append(total)
        lengths.append(steps)
    env.close()
    return returns, lengths


def zeros(env: gym.Env, obs: np.ndarray) -> np.ndarray:
    return np.zeros(env.action_space.shape, dtype=np.float32)


@pytest.mark.parametrize(
    ("env_id", "seed", "max_steps"), [("Pendulum-v1", 3, None), (IDP, 0, None), (IDP, 0, 5)]
)
def test_zero_action_baseline_equals_zeros_played_by_hand(
    env_id: str, seed: int, max_steps: int | None
) -> None:
    zero = baseline_rollouts(env_id, "zero-action", episodes=3, seed=seed, max_steps=max_steps)
    returns, lengths = by_hand(env_id, zeros, range(seed, seed + 3), max_steps)
    assert zero.name == "zero-action" and zero.ok
    assert zero.returns == tuple(returns) and zero.lengths == tuple(lengths)
    assert zero.mean_length == float(np.mean(lengths))
    if env_id == "Pendulum-v1":
        assert lengths == [200, 200, 200]  # the time limit
    elif max_steps is None:
        assert all(n < 1000 for n in lengths)  # the poles fall with no push


def test_random_baseline_seeds_the_action_space_once() -> None:
    env = gym.make(IDP)
    env.action_space.seed(7)
    returns, lengths = by_hand(IDP, lambda e, obs: env.action_space.sample(), range(7, 10))
    env.close()
    random = baseline_rollouts(IDP, "random", episodes=3, seed=7)
    assert random.returns == tuple(returns) and random.lengths == tuple(lengths)


def test_an_unknown_baseline_is_a_one_line_error() -> None:
    with pytest.raises(UserError, match=r"^baseline agent 'still' is not one of zero-action, random$"):
        baseline_rollouts("Pendulum-v1", "still")


def figures(
    label: str, returns: list[float] | tuple[float, ...], lengths: list[int] | tuple[int, ...]
) -> str:
    """The screen's row for one agent, as it prints it."""
    return f"{label}: return {np.mean(returns):.2f} +- {np.std(returns):.2f}, length {np.mean(lengths):.1f}"


def test_screen_reports_the_prior_and_both_baselines(isolated_llm_env: Path, tmp_path: Path) -> None:
    header = {
        "robolearn-prior": "1",
        "env": IDP,
        "name": "lean_push",
        "origin": "hand-written",
        "label": HAND_WRITTEN_LABEL,
        "model": "none",
        "prompt_sha256": "0" * 64,
        "created": "2026-12-06",
    }
    path = write_prior(prior_path(isolated_llm_env, IDP, "lean_push"), header, PRIOR_CODE)
    screened = subprocess.run(
        [
            sys.executable,
            "-m",
            "robolearn.prior",
            "action=screen",
            f"env={IDP}",
            "prior=lean_push",
            "screen.episodes=3",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        timeout=120,
    )
    assert screened.returncode == 0, screened.stderr
    out = screened.stdout
    assert f"{IDP} lean_push: return" in out and "over 3 episodes (seeds 0-2)" in out

    prior_returns, prior_lengths = by_hand(IDP, lambda env, obs: prior_action(obs), range(3))
    zero_returns, zero_lengths = by_hand(IDP, zeros, range(3))
    assert prior_lengths != zero_lengths  # the rows below tell the two agents apart
    random = baseline_rollouts(IDP, "random", episodes=3, seed=0)
    expected = {
        "lean_push": (prior_returns, prior_lengths),
        "zero-action policy": (zero_returns, zero_lengths),
        "random policy": (random.returns, random.lengths),
    }
    for label, (returns, lengths) in expected.items():
        assert figures(label, returns, lengths) in out, out

    # Recorded beside screened_return: the prior's mean length and each baseline's figures.
    recorded = read_prior(path).header
    assert recorded["screened_episodes"] == "3"
    assert recorded["screened_length"] == f"{np.mean(prior_lengths):.1f}"
    assert recorded["zero_action_return"] == f"{np.mean(zero_returns):.2f}"
    assert recorded["zero_action_return_std"] == f"{np.std(zero_returns):.2f}"
    assert recorded["zero_action_length"] == f"{np.mean(zero_lengths):.1f}"
    assert recorded["random_return"] == f"{random.mean:.2f}"
    assert recorded["random_length"] == f"{random.mean_length:.1f}"
