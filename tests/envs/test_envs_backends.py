"""Batched backends and the vectorised adapters: equality with the reference, auto-reset, snapshots, DR."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from env_helpers import FULL_DR
from gymnasium.vector import AutoresetMode
from stable_baselines3 import PPO

from robolearn.envs.backends.batch_backend import BatchBackend
from robolearn.envs.state import get_vec_env_state, set_vec_env_state
from robolearn.envs.tasks import BUILDABLE
from robolearn.envs.vector import make_batched_env, make_batched_vector_env
from robolearn.errors import UserError

N = 4


def _rollout(
    env_id: str, backend: str, threads: int, steps: int, **kwargs: object
) -> list[tuple[np.ndarray, ...]]:
    venv = make_batched_env(
        env_id, N, seed=7, threads=threads, backend=backend, randomization=FULL_DR, **kwargs
    )
    rng = np.random.default_rng(0)
    out = [(venv.reset(),)]
    for _ in range(steps):
        obs, reward, done, infos = venv.step(rng.uniform(-2, 2, (N, venv.action_space.shape[0])))
        finals = [i.get("terminal_observation", np.zeros(0)) for i in infos]
        out.append((obs, reward, done, np.concatenate(finals)))
    venv.close()
    return out


@pytest.mark.parametrize("env_id", BUILDABLE)
def test_batch_backend_equals_the_mujoco_backend(env_id: str) -> None:
    # Short episodes so the comparison covers auto-resets; every randomisation is on.
    reference = _rollout(env_id, "mujoco", 1, 40, max_episode_steps=15)
    batched = _rollout(env_id, "batch", 2, 40, max_episode_steps=15)
    assert any(step[2].any() for step in reference[1:])
    for ref, got in zip(reference, batched, strict=True):
        for a, b in zip(ref, got, strict=True):
            np.testing.assert_array_equal(a, b)


def test_sb3_vec_env_auto_resets_in_the_same_step() -> None:
    venv = make_batched_env("robolearn/Go2Velocity-v1", 3, seed=0, max_episode_steps=5)
    obs = venv.reset()
    assert obs.shape == (3, 45) and obs.dtype == np.float32
    for _ in range(5):
        obs, reward, done, infos = venv.step(np.zeros((3, 12)))
        assert reward.dtype == np.float32
    assert done.all()
    for info, first_obs in zip(infos, obs, strict=True):
        assert info["TimeLimit.truncated"] is True
        assert info["terminal_observation"].shape == (45,)
        assert info["episode"]["l"] == 5
        assert set(info["reward_terms"]) >= {"tracking_lin_vel", "termination"}
        assert not np.array_equal(info["terminal_observation"], first_obs)
    venv.close()


def test_gymnasium_vector_env_same_step_autoreset() -> None:
    env = make_batched_vector_env("robolearn/G1Velocity-v1", 3, max_episode_steps=4)
    assert env.metadata["autoreset_mode"] == AutoresetMode.SAME_STEP
    obs, _ = env.reset(seed=1)
    assert obs.shape == (3, 78)
    for _ in range(4):
        obs, _, terminated, truncated, infos = env.step(np.zeros((3, 23)))
    assert (terminated | truncated).all()
    assert infos["_final_obs"].all() and infos["final_obs"][0].shape == (78,)
    assert infos["final_info"]["episode"]["l"].tolist() == [4, 4, 4]
    assert env.single_observation_space.shape == (78,) and env.action_space.shape == (3, 23)
    env.close()


def test_vec_env_snapshot_round_trip_continues_identically() -> None:
    def build() -> object:
        return make_batched_env(
            "robolearn/G1Tracking-v1", N, seed=5, randomization=FULL_DR, max_episode_steps=12
        )

    rng = np.random.default_rng(2)
    actions = rng.uniform(-1, 1, (30, N, 23))
    venv = build()
    venv.reset()
    for a in actions[:10]:
        venv.step(a)
    state = get_vec_env_state(venv)
    expected = [venv.step(a)[:3] for a in actions[10:]]
    fresh = build()
    fresh.reset()
    fresh.step(actions[0])
    set_vec_env_state(fresh, state)
    got = [fresh.step(a)[:3] for a in actions[10:]]
    for exp, res in zip(expected, got, strict=True):
        for a, b in zip(exp, res, strict=True):
            np.testing.assert_array_equal(a, b)


def test_randomised_parameters_differ_across_envs_and_stay_in_range() -> None:
    n = 16
    venv = make_batched_env("robolearn/Go2Velocity-v1", n, seed=3, randomization=FULL_DR)
    venv.reset()
    task = venv.task
    backend = task.backend
    assert isinstance(backend, BatchBackend)
    model = backend.model
    friction = backend.batch.expanded("geom_friction")
    assert friction is not None
    ratio = friction[:, :, 0] / model.geom_friction[None, :, 0]
    assert np.all((ratio >= 0.5 - 1e-12) & (ratio <= 1.25 + 1e-12))
    assert len(np.unique(ratio[:, 0])) == n
    mass = backend.batch.expanded("body_mass")
    assert mass is not None
    base = backend.layout.base_body_id
    links = (model.body_mass > 0) & (np.arange(model.nbody) != base)
    mass_ratio = mass[:, links] / model.body_mass[links]
    assert np.all((mass_ratio >= 0.9 - 1e-12) & (mass_ratio <= 1.1 + 1e-12)) and mass_ratio.std() > 0
    # The base: scaled like every link, then unitree_rl_gym's added mass (-1 to +3 kg) on top.
    dyn = task.dynamics
    assert dyn is not None
    added = mass[:, base] - model.body_mass[base] * dyn["mass_scale"][:, base]
    np.testing.assert_allclose(added, dyn["added_base_mass"], atol=1e-12)
    assert np.all((added >= -1.0) & (added <= 3.0)) and len(np.unique(added.round(9))) == n
    # Joint losses: each joint's frictionloss (0.2 N·m) and damping scaled in its own range.
    index = backend.layout.index
    for field, nominal, (lo, hi) in (
        ("dof_frictionloss", 0.2, (0.5, 1.5)),
        ("dof_damping", 0.1, (0.5, 2.0)),
    ):
        values = backend.batch.expanded(field)
        assert values is not None
        joints = values[:, index.qvel_adr] / nominal
        assert np.all((joints >= lo - 1e-9) & (joints <= hi + 1e-9)) and joints.std() > 0.1, field
        assert len(np.unique(joints.round(9))) == joints.size, field  # per env and per joint
        assert not values[:, index.root_qvel_adr : index.root_qvel_adr + 6].any()  # the free joint has none
    ipos = backend.batch.expanded("body_ipos")
    assert ipos is not None
    offset = ipos[:, backend.layout.base_body_id] - model.body_ipos[backend.layout.base_body_id]
    assert np.all(np.abs(offset) <= 0.03) and len(np.unique(offset[:, 0])) == n
    spec = task.robot_spec
    kp_ratio = task.kp / spec.kp_array
    assert np.all((kp_ratio >= 0.8 * 0.9 - 1e-12) & (kp_ratio <= 1.2 * 1.1 + 1e-12)) and kp_ratio.std() > 0
    strength = task.torque_limit / spec.torque_limit_array
    assert np.all((strength >= 0.9 - 1e-12) & (strength <= 1.1 + 1e-12))
    assert set(np.unique(task.action_delay)) <= {0, 1, 2} and len(np.unique(task.action_delay)) > 1
    # Pushes land: after a few pushes some base moves faster than a standing robot does.
    speeds = []
    for _ in range(25):
        venv.step(np.zeros((n, 12)))
        speeds.append(np.abs(backend.frame().root_lin_vel[:, :2]).max())
    assert max(speeds) > 0.2
    venv.close()


def test_default_env_has_no_randomisation() -> None:
    venv = make_batched_env("robolearn/Go2Velocity-v1", 2, seed=0)
    venv.reset()
    task = venv.task
    assert task.dynamics is None and not task.randomization.randomizes_dynamics
    np.testing.assert_array_equal(task.kp, np.broadcast_to(task.robot_spec.kp_array, task.kp.shape))
    venv.close()


def test_sb3_ppo_trains_on_the_batched_env() -> None:
    venv = make_batched_env("robolearn/Go2Velocity-v1", 4, seed=0, threads=2)
    model = PPO(
        "MlpPolicy", venv, n_steps=16, batch_size=32, n_epochs=1, policy_kwargs={"net_arch": [16]}, seed=0
    )
    before = [p.detach().clone() for p in model.policy.parameters()]
    model.learn(128)
    assert model.num_timesteps == 128
    # Trained: two rollouts of 4 x 16 batched steps went through an update that moved the policy.
    after = list(model.policy.parameters())
    assert all(torch.isfinite(p).all() for p in after)
    assert any(not torch.equal(b, a) for b, a in zip(before, after, strict=True))
    venv.close()


def test_make_batched_env_refuses_foreign_ids_and_bad_kwargs() -> None:
    with pytest.raises(UserError, match="robolearn's own tasks"):
        make_batched_env("Hopper-v5", 2)
    with pytest.raises(UserError, match="rejected"):
        make_batched_env("robolearn/Go2Velocity-v1", 2, no_such_option=1)
