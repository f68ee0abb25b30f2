"""Every env the config registry exposes passes gymnasium's and SB3's checkers through our factory,
and an env's snapshot restores it exactly (the basis of exact resumption)."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from omegaconf import OmegaConf
from stable_baselines3.common.env_checker import check_env as sb3_check_env
from stable_baselines3.common.monitor import Monitor
from stable_baselines3.common.vec_env import VecNormalize

from robolearn.config.validate import compose_config, group_options
from robolearn.envs import EnvSnapshotWrapper, make_env, make_vec_env
from robolearn.envs.state import get_vec_env_state, set_vec_env_state


def _needs_data(name: str) -> bool:
    """An env config whose task cannot be built without the data a user gives (TaskEntry.required);
    tests/deploy/test_asap_delta.py checks the delta-action task on a recording."""
    from robolearn.envs.tasks import TASKS

    cfg = compose_config("train", [f"env={name}"]).env
    entry = TASKS.get(str(cfg.id))
    return entry is not None and any(cfg.kwargs.get(key) is None for key in entry.required)


ENVS = [e for e in group_options("env") if not e.endswith("_schema") and not _needs_data(e)]


def _env_cfg(name: str) -> object:
    return compose_config("train", [f"env={name}"]).env


@pytest.mark.parametrize("name", ENVS)
def test_registered_env_passes_checkers(name: str) -> None:
    env = make_env(_env_cfg(name))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gym_check_env(env.unwrapped, skip_render_check=True)
        sb3_check_env(make_env(_env_cfg(name)), warn=False)
    obs, _ = env.reset(seed=0)
    for _ in range(5):
        obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        assert np.all(np.isfinite(obs)) and np.isfinite(reward)
        if terminated or truncated:
            obs, _ = env.reset()


@pytest.mark.parametrize("name", ["Ant-v5", "Hopper-v5", "Pendulum-v1"])
def test_snapshot_restores_env_exactly(name: str) -> None:
    cfg = _env_cfg(name)
    env = EnvSnapshotWrapper(Monitor(make_env(cfg)))
    env.reset(seed=3)
    env.action_space.seed(3)
    # Small actions keep Hopper from falling inside the window (Monitor refuses steps after a fall).
    for _ in range(7):
        env.step(0.1 * env.action_space.sample())
    snap = env.get_state()
    actions = [0.1 * env.action_space.sample() for _ in range(20)]
    first = [env.step(a) for a in actions]

    fresh = EnvSnapshotWrapper(Monitor(make_env(cfg)))
    fresh.reset(seed=99)  # a different history, overwritten by the snapshot
    fresh.set_state(snap)
    second = [fresh.step(a) for a in actions]
    for (o1, r1, t1, u1, _), (o2, r2, t2, u2, _) in zip(first, second, strict=True):
        assert np.array_equal(o1, o2) and r1 == r2 and t1 == t2 and u1 == u2
    # The episode RNG continues too: the next reset draws the same start state.
    assert np.array_equal(env.reset()[0], fresh.reset()[0])


def test_vec_env_state_includes_time_limit_and_normalisation() -> None:
    cfg = OmegaConf.create({"id": "Pendulum-v1", "kwargs": {}, "max_episode_steps": None, "vec_env": "dummy"})
    venv = make_vec_env(cfg, n_envs=2, seed=0, normalize_obs=True, normalize_reward=True)
    venv.reset()
    for _ in range(150):
        venv.step(np.ones((2, 1), dtype=np.float32))
    state = get_vec_env_state(venv)
    other = make_vec_env(cfg, n_envs=2, seed=5, normalize_obs=True, normalize_reward=True)
    other.reset()
    set_vec_env_state(other, state)
    # The normalisation statistics came back with the state (other's own 0 steps would differ).
    assert isinstance(venv, VecNormalize) and isinstance(other, VecNormalize)
    assert other.obs_rms.count == venv.obs_rms.count and np.array_equal(other.obs_rms.mean, venv.obs_rms.mean)
    assert np.array_equal(other.ret_rms.var, venv.ret_rms.var)
    dones = []
    for _ in range(60):  # crosses the 200-step time limit: the counters were restored
        a = venv.step(np.ones((2, 1), dtype=np.float32))
        b = other.step(np.ones((2, 1), dtype=np.float32))
        assert np.array_equal(a[0], b[0]) and np.array_equal(a[1], b[1]) and np.array_equal(a[2], b[2])
        dones.append(b[2].copy())
    # Both envs of the restored copy were truncated at step 200 (150 before the snapshot + 50), not 200 after it.
    assert [np.flatnonzero(d).tolist() for d in dones if d.any()] == [[0, 1]]
    assert np.flatnonzero([d.any() for d in dones]).tolist() == [49]
