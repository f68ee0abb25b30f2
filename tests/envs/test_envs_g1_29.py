"""robolearn/G1_29Velocity-v0: the velocity task on the 29-DoF G1 (the generic per-id tests in
test_envs_tasks.py and test_envs_backends.py cover it too; these check what is particular to it)."""

from __future__ import annotations

import math
import warnings

import gymnasium as gym
import mujoco
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from robolearn.envs.factory import make_env, register_envs
from robolearn.envs.tasks import TASKS
from robolearn.envs.tasks.base import RobotTask
from robolearn.robots.g1_29 import G1_29_SPEC

ENV_ID = "robolearn/G1_29Velocity-v0"

register_envs()
pytestmark = pytest.mark.skipif(
    ENV_ID not in TASKS,
    reason=f"{ENV_ID} is not registered yet (needs its TaskEntry and velocity.ROBOT_DEFAULTS['g1_29dof'])",
)


def _task(env: gym.Env) -> RobotTask:
    task = env.unwrapped
    assert isinstance(task, RobotTask)
    return task


def test_env_is_the_29dof_robot_and_passes_the_checkers() -> None:
    env = gym.make(ENV_ID)
    task = _task(env)
    assert task.robot_spec is G1_29_SPEC
    assert env.action_space.shape == (29,) and env.observation_space.shape == (9 + 3 * 29,)
    assert task.mj_model.nu == 29 and mujoco.mj_getTotalmass(task.mj_model) > 33.0
    gym_check_env(env.unwrapped, skip_render_check=True)
    with warnings.catch_warnings():
        # SB3 recommends a [-1, 1] action box; ours is [-action_clip, action_clip] in action-scale units.
        warnings.simplefilter("ignore", UserWarning)
        sb3_check_env(env, warn=True)
    env.close()


def test_zero_actions_end_in_a_fall_and_wrist_torques_stay_within_5_nm() -> None:
    env = gym.make(ENV_ID, max_episode_steps=400)
    task = _task(env)
    env.reset(seed=0)
    # Like the 23-DoF G1, it cannot stand on PD alone: zero actions must end in a terminated fall.
    for _ in range(400):
        obs, reward, terminated, truncated, info = env.step(np.zeros(29, dtype=np.float32))
        assert np.isfinite(obs).all() and math.isfinite(float(reward))
        if terminated:
            assert not truncated and info["reward_terms"]["termination"] == 1.0
            break
    else:
        pytest.fail("the 29-DoF G1 did not fall on zero actions")
    env.reset(seed=1)
    index = task.backend.layout.index
    wrists = [
        G1_29_SPEC.joint_names.index(n)
        for n in G1_29_SPEC.joint_names
        if "wrist_pitch" in n or "wrist_yaw" in n
    ]
    for sign in (1.0, -1.0):
        env.step(np.full(29, sign * 1e6, dtype=np.float32))
        torque = task.data.actuator_force[index.actuator_ids]
        assert np.all(np.abs(torque) <= G1_29_SPEC.torque_limit_array + 1e-9)
        assert np.all(np.abs(torque[wrists]) <= 5.0 + 1e-9)  # the 4010's limit, not the arm's 25 N·m
    env.close()


def test_config_file_builds_the_env() -> None:
    from robolearn.config.validate import compose_config, validate_train_config

    cfg = compose_config("train", ["env=G1_29Velocity-v0", "agent=ppo"])
    validate_train_config(cfg)
    assert cfg.env.id == ENV_ID
    env = make_env(cfg.env)
    obs, _ = env.reset(seed=2)
    assert obs.shape == (96,)
    env.step(env.action_space.sample())
    env.close()
