"""The batched env computes what it computed before the host-side speed-ups (issue 15).

Observations, rewards, dones, terminal observations and episode statistics of short seeded
rollouts are compared with values captured from the code before the changes
(tests/envs/fixtures/batched_rollouts.npz). Regenerate only when a task's numbers are meant to
change (which needs a new env id version):

    python tests/envs/test_envs_throughput_regression.py --write
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from env_helpers import FULL_DR

from robolearn.envs.vector import make_batched_env, make_batched_vector_env

FIXTURE = Path(__file__).parent / "fixtures" / "batched_rollouts.npz"
N = 4
STEPS = 20
# name -> (env id, kwargs): the registered defaults (what the benchmark runs) and every option on.
CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "go2_default": ("robolearn/Go2Velocity-v1", {}),
    "go2_dr_gait": ("robolearn/Go2Velocity-v1", {"randomization": FULL_DR, "gait_period_s": 0.5}),
    "g1_dr_linvel": ("robolearn/G1Velocity-v1", {"randomization": FULL_DR, "observe_base_lin_vel": True}),
    "g1_tracking_dr": ("robolearn/G1Tracking-v1", {"randomization": FULL_DR}),
}


def rollout(name: str) -> dict[str, np.ndarray]:
    """A seeded SB3-VecEnv rollout with short episodes (so auto-resets happen), as flat arrays."""
    env_id, kwargs = CASES[name]
    venv = make_batched_env(env_id, N, seed=11, threads=2, max_episode_steps=9, **kwargs)
    rng = np.random.default_rng(5)
    nj = venv.task.robot_spec.num_joints
    obs: list[Any] = [venv.reset()]
    rewards, dones, finals, episodes = [], [], [], []
    for _ in range(STEPS):
        o, r, d, infos = venv.step(rng.uniform(-1.5, 1.5, (N, nj)))
        obs.append(o)
        rewards.append(r)
        dones.append(d)
        for i, info in enumerate(infos):
            if "terminal_observation" in info:
                finals.append(info["terminal_observation"])
                ep = info["episode"]
                terms = list(info["reward_terms"].values())
                episodes.append([i, ep["r"], ep["l"], float(info["TimeLimit.truncated"]), *terms])
    venv.close()
    return {
        f"{name}/obs": np.stack(obs),
        f"{name}/reward": np.stack(rewards),
        f"{name}/done": np.stack(dones),
        f"{name}/final_obs": np.stack(finals),
        f"{name}/episodes": np.array(episodes),
    }


@pytest.fixture(scope="module")
def expected() -> dict[str, np.ndarray]:
    with np.load(FIXTURE) as data:
        return dict(data)


@pytest.mark.parametrize("name", sorted(CASES))
def test_batched_rollout_matches_the_captured_one(name: str, expected: dict[str, np.ndarray]) -> None:
    got = rollout(name)
    assert len(got[f"{name}/final_obs"]) > 0  # the rollout covers auto-resets
    for key, value in got.items():
        ref = expected[key]
        assert value.shape == ref.shape, key
        assert value.dtype == ref.dtype, key
        # Float rounding only: vectorised sums may associate differently than the captured code.
        np.testing.assert_allclose(value, ref, rtol=1e-6, atol=1e-6, err_msg=key)


def test_vector_env_returns_contiguous_float32_that_torch_wraps_without_copying() -> None:
    torch = pytest.importorskip("torch")
    venv = make_batched_env("robolearn/Go2Velocity-v1", N, seed=0, threads=1, max_episode_steps=3)
    venv.reset()
    for _ in range(4):  # past an auto-reset
        step_obs, reward, done, _ = venv.step(np.zeros((N, 12), dtype=np.float32))
        assert isinstance(step_obs, np.ndarray)
        obs = step_obs
        for array, dtype in ((obs, np.float32), (reward, np.float32), (done, np.bool_)):
            assert array.dtype == dtype and array.flags.c_contiguous
        tensor = torch.from_numpy(obs)
        assert tensor.data_ptr() == obs.ctypes.data  # shared memory, no copy
    venv.close()
    gym_env = make_batched_vector_env("robolearn/G1Velocity-v1", N, threads=1, max_episode_steps=3)
    obs, _ = gym_env.reset(seed=0)
    assert obs.dtype == np.float32 and obs.flags.c_contiguous
    obs, reward, terminated, truncated, _ = gym_env.step(np.zeros((N, 23), dtype=np.float32))
    assert obs.dtype == np.float32 and obs.flags.c_contiguous
    for array in (reward, terminated, truncated):
        assert array.shape == (N,) and array.flags.c_contiguous
    gym_env.close()


def test_step_metrics_are_computed_only_once_read() -> None:
    venv = make_batched_env("robolearn/Go2Velocity-v1", N, seed=0, threads=1)
    task = venv.task
    venv.reset()
    venv.step(np.zeros((N, 12)))
    assert task._metrics.values is None  # the batched path skips them
    first = task.last_metrics
    assert set(first) == {"lin_vel_error", "ang_vel_error"} and first["lin_vel_error"].shape == (N,)
    venv.step(np.full((N, 12), 0.5))
    second = task.last_metrics  # computed in the step now, before commands move on
    assert second is task._metrics.values and not np.array_equal(
        first["lin_vel_error"], second["lin_vel_error"]
    )
    venv.close()


def _write() -> None:
    import io

    from robolearn.utils.io import atomic_write_bytes

    arrays: dict[str, np.ndarray] = {}
    for name in CASES:
        arrays.update(rollout(name))
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)  # type: ignore[arg-type]
    atomic_write_bytes(FIXTURE, buffer.getvalue())
    print(f"wrote {FIXTURE} ({FIXTURE.stat().st_size} bytes)")


if __name__ == "__main__" and "--write" in sys.argv:
    _write()
