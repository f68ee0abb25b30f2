"""G1 walking recipe (issue 16): unitree_rl_gym's G1 terms on hand-made states, and its env config."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from env_helpers import locomotion_context
from omegaconf import OmegaConf

from robolearn.envs.tasks.rewards import LocomotionContext, contact_no_vel, feet_swing_height, swing_height
from robolearn.envs.tasks.velocity import VelocityTask
from robolearn.envs.vector import make_batched_env
from robolearn.errors import UserError

WALK_CONFIG = Path(__file__).resolve().parents[2] / "configs" / "env" / "G1VelocityWalk-v1.yaml"


def _context(**fields: Any) -> LocomotionContext:
    """Two envs, two feet (left, right); every field the G1 terms do not read is zeros."""
    return locomotion_context(
        2,
        2,
        23,
        base_height=np.full(2, 0.78),
        base_height_target=0.78,
        air_time_target=0.4,
        swing_height=0.045,
        **fields,
    )


def test_contact_no_vel_charges_the_full_speed_of_feet_on_the_ground_only() -> None:
    # Env 0: the left foot stands but slides (0.3, -0.4, 0.0) and sinks at 0.1 m/s: 0.09 + 0.16 + 0.01;
    # the right foot swings at 2 m/s, which is free. Env 1: both feet airborne and moving: nothing.
    vel = np.array([[[0.3, -0.4, -0.1], [2.0, 0.0, 0.5]], [[1.0, 1.0, 1.0], [0.5, 0.0, 0.0]]])
    contact = np.array([[True, False], [False, False]])
    np.testing.assert_allclose(contact_no_vel(_context(foot_lin_vel=vel, foot_contact=contact)), [0.26, 0.0])
    # Both feet down, vertical speed alone counts too (feet_slip would see nothing here).
    down = np.array([[[0.0, 0.0, 0.2], [0.0, 0.0, -0.1]]] * 2)
    np.testing.assert_allclose(contact_no_vel(_context(foot_lin_vel=down)), [0.05, 0.05])


def test_feet_swing_height_reads_contact_where_swing_height_reads_the_clock() -> None:
    # Env 0: left foot airborne 0.02 m above standing, right foot on the ground while the clock says
    # swing. feet_swing_height charges the airborne foot, (0.02 - 0.045)^2; swing_height the clock's
    # swing foot, (0 - 0.045)^2. Env 1: right foot airborne at exactly the target: nothing.
    contact = np.array([[False, True], [True, False]])
    stance = np.array([[True, False], [True, False]])
    height = np.array([[0.02, 0.0], [0.0, 0.045]])
    ctx = _context(foot_contact=contact, foot_stance_target=stance, foot_height=height)
    np.testing.assert_allclose(feet_swing_height(ctx), [0.025**2, 0.0])
    np.testing.assert_allclose(swing_height(ctx), [0.045**2, 0.0])


def test_base_height_target_overrides_the_robot_default_and_rejects_bad_values() -> None:
    task = VelocityTask(robot="g1", num_envs=2, backend="batch", base_height_target=0.78)
    assert task.base_height_target == 0.78
    assert VelocityTask(robot="g1", num_envs=2, backend="batch").base_height_target == 0.75
    with pytest.raises(UserError, match=r"base_height_target=-0\.1 must be a positive height") as info:
        VelocityTask(robot="g1", num_envs=2, backend="batch", base_height_target=-0.1)
    assert "\n" not in str(info.value)


def test_the_walk_config_builds_the_clocked_g1_and_pays_its_terms() -> None:
    start = time.perf_counter()
    kwargs = OmegaConf.to_container(OmegaConf.load(WALK_CONFIG).kwargs, resolve=True)
    assert isinstance(kwargs, dict)
    venv = make_batched_env("robolearn/G1Velocity-v1", 4, seed=0, **{str(k): v for k, v in kwargs.items()})
    task = venv.task
    assert isinstance(task, VelocityTask)
    # 78 proprioceptive values (23 joints) + sin/cos of the 0.8 s clock; no base velocity.
    assert venv.observation_space.shape == (80,)
    for name in ("contact_no_vel", "feet_swing_height", "gait_contact", "alive", "torques"):
        assert name in task.reward_names
    assert "feet_air_time" not in task.reward_names
    # The left foot stands for the first 0.55 of the 0.8 s cycle, the right one half a cycle later.
    steps = np.array([0, 10, 21, 23, 39, 41])  # 0, 0.2, 0.42, 0.46, 0.78, 0.82 s
    np.testing.assert_array_equal(
        task.stance_target(steps),
        [[True, True], [True, False], [True, True], [False, True], [False, True], [True, True]],
    )
    venv.reset()
    rng = np.random.default_rng(0)
    for _ in range(20):
        out, reward, _, _ = venv.step(rng.uniform(-0.3, 0.3, size=(4, 23)).astype(np.float32))
        obs = np.asarray(out)
    assert obs.shape == (4, 80) and np.all(np.isfinite(obs)) and np.all(np.isfinite(reward))
    assert time.perf_counter() - start < 20
