"""Each env's torch reward/termination equals the env's own on real transitions (random actions)."""

from __future__ import annotations

import gymnasium as gym
import numpy as np
import pytest
import torch

from robolearn.errors import UserError
from robolearn.mbrl.envfns import SUPPORTED_ENVS, env_functions, env_kwargs

# Envs that terminate: random actions must reach a termination within the recorded steps.
TERMINATING = {"InvertedPendulum-v5", "Hopper-v5", "Walker2d-v5"}


def record(env_id: str, steps: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Random-action transitions with the env's rewards and terminated flags (resetting after an episode ends)."""
    env = gym.make(env_id, **env_kwargs(env_id))
    env.action_space.seed(seed)
    rows: dict[str, list[np.ndarray]] = {k: [] for k in ("obs", "act", "next_obs", "reward", "terminated")}
    obs, _ = env.reset(seed=seed)
    for _ in range(steps):
        # Scaled beyond the box on Pendulum so the torque clip inside the reward is exercised too.
        act = env.action_space.sample() * (1.5 if env_id == "Pendulum-v1" else 1.0)
        next_obs, reward, terminated, truncated, _ = env.step(act)
        for key, value in (("obs", obs), ("act", act), ("next_obs", next_obs)):
            rows[key].append(np.asarray(value, dtype=np.float64))
        rows["reward"].append(np.asarray(reward, dtype=np.float64))
        rows["terminated"].append(np.asarray(terminated, dtype=bool))
        obs = next_obs
        if terminated or truncated:
            obs, _ = env.reset()
    env.close()
    return {k: np.stack(v) for k, v in rows.items()}


@pytest.mark.parametrize("env_id", SUPPORTED_ENVS)
def test_torch_reward_matches_env(env_id: str) -> None:
    data = record(env_id, steps=300)
    reward_fn, done_fn = env_functions(env_id)
    o, a, n = (torch.as_tensor(data[k]) for k in ("obs", "act", "next_obs"))
    ours = reward_fn(o, a, n).numpy()
    np.testing.assert_allclose(ours, data["reward"], rtol=1e-6, atol=1e-6)
    if env_id in TERMINATING:
        assert done_fn is not None
        assert data["terminated"].any(), "random actions never terminated: the check saw no termination"
        np.testing.assert_array_equal(done_fn(o, a, n).numpy(), data["terminated"])
    else:
        assert done_fn is None and not data["terminated"].any()
    # Batched over extra leading dims and in float32 (what planners feed): same values.
    o32, a32, n32 = (t.float().reshape(3, 100, -1) for t in (o, a, n))
    np.testing.assert_allclose(
        reward_fn(o32, a32, n32).reshape(-1).numpy(), data["reward"], rtol=1e-3, atol=1e-3
    )


def test_env_kwargs_put_x_in_the_observation() -> None:
    env = gym.make("HalfCheetah-v5", **env_kwargs("HalfCheetah-v5"))
    assert env.observation_space.shape == (18,)  # HyperCRL's half-cheetah state_dim
    env.close()
    assert env_kwargs("Pendulum-v1") == {}


def test_unknown_env_is_one_line_user_error() -> None:
    with pytest.raises(UserError, match="HalfCheetah-v5") as err:
        env_functions("HalfCheetah-v4")
    assert "\n" not in str(err.value)
