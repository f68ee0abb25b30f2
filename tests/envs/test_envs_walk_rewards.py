"""Go2 walking reward (issue 16): the new terms against hand-computed values, the command curriculum."""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import pytest
from env_helpers import locomotion_context

from robolearn.envs.tasks.rewards import (
    LocomotionContext,
    feet_air_time,
    feet_air_window,
    foot_clearance,
    joint_vel_limits,
)
from robolearn.envs.tasks.velocity import VelocityTask, command_direction
from robolearn.errors import UserError

CURRICULUM = {
    "start": {"lin_vel_x": [0.3, 0.7], "lin_vel_y": [0.0, 0.0], "ang_vel_z": [0.0, 0.0]},
    "step": {"lin_vel_x": 0.25, "lin_vel_y": 0.1, "ang_vel_z": 0.2},
    "threshold": 0.8,
}


def _context(**fields: Any) -> LocomotionContext:
    """Two envs, four feet; every field the two new terms do not read is zeros."""
    return locomotion_context(2, 4, 12, **fields)


def test_feet_air_window_counts_airborne_feet_inside_the_window_while_moving() -> None:
    # Env 0 walks (vx 0.5): FR in the air 0.10 s (inside 0.05-0.15), FL 0.02 s (too short), RR 0.20 s
    # (too long), RL on the ground with a stale 0.10 s. Env 1 has the same feet but stands (command 0).
    contact = np.array([[False, False, False, True]] * 2)
    air = np.array([[0.10, 0.02, 0.20, 0.10]] * 2)
    command = np.array([[0.5, 0.0, 0.0], [0.05, 0.05, 0.9]])  # env 1: |v_xy| 0.07 < 0.1, yaw ignored
    ctx = _context(foot_contact=contact, foot_air_time=air, command=command, air_time_window=(0.05, 0.15))
    np.testing.assert_array_equal(feet_air_window(ctx), [1.0, 0.0])
    # Window edges: > min, <= max.
    edge = _context(
        foot_contact=np.zeros((2, 4), dtype=bool),
        foot_air_time=np.array([[0.05, 0.15, 0.1, 0.151]] * 2),
        command=np.array([[0.0, 0.3, 0.0]] * 2),
        air_time_window=(0.05, 0.15),
    )
    np.testing.assert_array_equal(feet_air_window(edge), [2.0, 2.0])


def test_feet_air_time_at_a_shorter_target_pays_slow_steps_and_charges_taps() -> None:
    # legged_gym's term at touch-down: env 0 lands FR after 0.30 s and FL after 0.10 s (a tap) at a
    # 0.25 s target: (0.30 - 0.25) + (0.10 - 0.25) = -0.10; env 1 is commanded to stand: nothing.
    first = np.array([[True, True, False, False]] * 2)
    air = np.array([[0.30, 0.10, 0.5, 0.5]] * 2)
    command = np.array([[0.5, 0.0, 0.0], [0.0, 0.0, 0.5]])
    ctx = _context(foot_first_contact=first, foot_air_time=air, command=command, air_time_target=0.25)
    np.testing.assert_allclose(feet_air_time(ctx), [-0.10, 0.0], atol=1e-12)
    task = VelocityTask(robot="go2", num_envs=2, backend="batch", air_time_target=0.25)
    assert task.air_time_target == 0.25
    assert VelocityTask(robot="go2", num_envs=2, backend="batch").air_time_target == 0.5  # legged_gym's


def test_foot_clearance_weights_the_height_error_by_foot_speed() -> None:
    # Env 0: FR moves at 0.5 m/s (3, 4 -> 5 x 0.1) 3 cm up: (0.03 - 0.08)^2 x tanh(2 x 0.5); the others
    # stand still on the ground (speed 0: no cost). Env 1: every foot at the target height: no cost.
    vel = np.zeros((2, 4, 3))
    vel[0, 0] = [0.3, 0.4, 0.7]  # vertical speed does not count
    vel[1] = [1.0, 0.0, 0.0]
    height = np.array([[0.03, 0.0, 0.0, 0.0], [0.08] * 4])
    ctx = _context(foot_lin_vel=vel, foot_height=height, swing_height=0.08, clearance_speed_gain=2.0)
    expected = (0.03 - 0.08) ** 2 * np.tanh(1.0)
    np.testing.assert_allclose(foot_clearance(ctx), [expected, 0.0], rtol=1e-12)


def test_joint_vel_limits_charges_speed_past_the_soft_limit_capped_per_joint() -> None:
    """legged_gym's dof_vel_limits: |qd| past the soft limit, each joint's excess capped at 1 rad/s."""
    limits = np.full(12, 10.0)
    vel = np.zeros((2, 12))
    vel[0, 0] = 10.5  # 0.5 past
    vel[0, 1] = -13.0  # 3 past, capped at 1
    vel[1, :] = 9.9  # under every limit
    ctx = _context(joint_vel=vel, soft_velocity_limits=limits)
    np.testing.assert_allclose(joint_vel_limits(ctx), [1.5, 0.0])
    assert np.all(joint_vel_limits(_context(joint_vel=vel)) == 0.0)  # no limits given: no term
    # The task hands the robot's limits times soft_velocity_limit to the term (the Go2 calf: 15.70 rad/s).
    task = VelocityTask(robot="go2", num_envs=2, backend="batch", reward_scales={"joint_vel_limits": -1.0})
    np.testing.assert_allclose(task.soft_velocity_limits, 0.9 * np.asarray(task.robot_spec.velocity_limits))
    assert "joint_vel_limits" in task.reward_names
    with pytest.raises(UserError, match=r"soft_velocity_limit=1\.5 must be in") as info:
        VelocityTask(robot="go2", num_envs=2, backend="batch", soft_velocity_limit=1.5)
    assert "\n" not in str(info.value)


def _curriculum_task(num_envs: int = 4, **kwargs: Any) -> VelocityTask:
    return VelocityTask(
        robot="go2",
        num_envs=num_envs,
        backend="batch",
        command_curriculum=CURRICULUM,
        standing_fraction=0.0,
        max_episode_steps=100,
        **kwargs,
    )


def _end_episodes(task: VelocityTask, share: float) -> None:
    """Pretend every env ran 10 steps and earned `share` of the tracking_lin_vel scale over a full episode."""
    col = task.reward_names.index("tracking_lin_vel")
    episode_s = 100 * task.control_dt
    task.episode_step[:] = 10
    task.term_sums[:, col] = share * task.reward_scales[col] * episode_s
    task.reset_envs(np.arange(task.num_envs))


def test_command_curriculum_starts_forward_and_widens_on_tracking_success() -> None:
    start = time.perf_counter()
    task = _curriculum_task()
    task.seed_rng(0)
    task.reset_envs(np.arange(4))
    assert np.all((task.command[:, 0] >= 0.3) & (task.command[:, 0] <= 0.7))
    assert np.all(task.command[:, 1:] == 0.0)
    _end_episodes(task, 0.7)  # under the 0.8 threshold: no change
    assert task.curriculum_level == 0
    np.testing.assert_allclose(task.curriculum_ranges, [[0.3, 0.7], [0.0, 0.0], [0.0, 0.0]])
    _end_episodes(task, 0.9)
    assert task.curriculum_level == 1
    np.testing.assert_allclose(task.curriculum_ranges, [[0.05, 0.95], [-0.1, 0.1], [-0.2, 0.2]])
    for _ in range(10):
        _end_episodes(task, 0.9)
    # Clipped at the full command ranges.
    np.testing.assert_allclose(task.curriculum_ranges, [[-1.0, 1.0], [-0.5, 0.5], [-1.0, 1.0]])
    assert time.perf_counter() - start < 10


def test_relative_tracking_score_is_zero_for_standing_still_and_counts_falls_as_not_moving() -> None:
    """score=relative_tracking: 1 - error / commanded speed, so a policy that stands (or trots on the
    spot) scores 0 on any command range, unlike the tracking reward, which pays standing more the
    smaller the commands are; a fall's missing steps count as standing still."""
    task = VelocityTask(
        robot="go2",
        num_envs=4,
        backend="batch",
        command_curriculum={**CURRICULUM, "score": "relative_tracking", "threshold": 0.5},
        standing_fraction=0.0,
        max_episode_steps=100,
        init_velocity_noise=0.0,
        init_joint_noise=0.0,
    )
    assert task.curriculum is not None and task.curriculum.score == "relative_tracking"
    task.seed_rng(0)
    task.reset_envs(np.arange(4))
    # The real env, zero action for 10 steps: the robot stands, so the error is the commanded speed.
    for _ in range(10):
        task.step_envs(np.zeros((4, 12)))
    speed = np.linalg.norm(task.command[:, :2], axis=1)
    np.testing.assert_allclose(task.curriculum_command_sum, 10 * speed, rtol=1e-9)
    np.testing.assert_allclose(task.curriculum_error_sum, task.curriculum_command_sum, rtol=0.1)
    task.episode_step[:] = 100  # pretend full episodes: no fall padding
    task.reset_envs(np.arange(4))
    assert task.curriculum_level == 0  # score about 0
    assert task.curriculum_score_sum == 0.0 and task.curriculum_episodes == 0  # the batch was scored
    assert np.all(task.curriculum_error_sum == 0.0)  # accumulators restart with the episode

    def end(error_share: float, steps: int) -> None:
        task.episode_step[:] = steps
        task.curriculum_command_sum[:] = 0.5 * steps
        task.curriculum_error_sum[:] = error_share * 0.5 * steps
        task.reset_envs(np.arange(4))

    end(0.6, 100)  # score 0.4 < 0.5
    assert task.curriculum_level == 0
    end(0.2, 50)  # 0.8 on the steps it ran, but it fell halfway: (0.2 * 50 + 50) / 100 -> score 0.4
    assert task.curriculum_level == 0
    end(0.2, 100)  # score 0.8
    assert task.curriculum_level == 1


def test_command_direction_sectors() -> None:
    planar = np.array(
        [[1.0, 0.0], [0.5, 0.49], [0.3, 0.6], [-1.0, 0.1], [-0.2, -0.9], [0.0, -0.4], [-0.5, 0.5]]
    )
    # forward, forward (under 45 degrees), left, backward, right, right, backward (135 degrees exactly)
    np.testing.assert_array_equal(command_direction(planar), [0, 0, 1, 2, 3, 3, 2])


def test_directional_tracking_scores_the_worst_direction_so_forward_only_walking_does_not_widen() -> None:
    """score=directional_tracking: relative tracking per command direction, the worst decides; a
    policy that walks forwards but stands on backward commands scores 0 and keeps its ranges, while
    pooled relative tracking would have widened them. Slow commands and directions with hardly any
    commanded distance are left out; a fall pads its direction as not moving."""
    task = VelocityTask(
        robot="go2",
        num_envs=4,
        backend="batch",
        command_curriculum={
            "start": {"lin_vel_x": [-0.3, 0.7]},
            "step": {"lin_vel_x": 0.25},
            "score": "directional_tracking",
            "threshold": 0.3,
        },
        standing_fraction=0.0,
        max_episode_steps=100,
        init_velocity_noise=0.0,
        init_joint_noise=0.0,
    )
    task.seed_rng(0)
    task.reset_envs(np.arange(4))
    # The real env: commands 0.6, 0.1 (too slow to count), -0.3 and 0.5 m/s forward; zero action stands.
    task.command[:] = [[0.6, 0.0, 0.0], [0.1, 0.0, 0.0], [-0.3, 0.0, 0.0], [0.5, 0.0, 0.0]]
    for _ in range(10):
        task.step_envs(np.zeros((4, 12)))
    np.testing.assert_allclose(task.curriculum_sector_command[:, 0], [6.0, 0.0, 0.0, 5.0], atol=1e-9)
    np.testing.assert_allclose(task.curriculum_sector_command[:, 2], [0.0, 0.0, 3.0, 0.0], atol=1e-9)
    assert np.all(task.curriculum_sector_command[:, [1, 3]] == 0.0)
    np.testing.assert_allclose(
        task.curriculum_sector_error, task.curriculum_sector_command, rtol=0.1, atol=0.02
    )

    def end(forward_error: float, backward_error: float, backward_steps: int = 100) -> None:
        """Full episodes: env 0 forward 0.6 m/s, env 2 backward 0.3 m/s, with these error shares."""
        task.episode_step[:] = 100
        task.episode_step[2] = backward_steps
        task.curriculum_sector_command[:] = 0.0
        task.curriculum_sector_error[:] = 0.0
        task.curriculum_sector_command[0, 0] = 0.6 * 100
        task.curriculum_sector_error[0, 0] = forward_error * 0.6 * 100
        task.curriculum_sector_command[2, 2] = 0.3 * backward_steps
        task.curriculum_sector_error[2, 2] = backward_error * 0.3 * backward_steps
        task.reset_envs(np.arange(4))

    # Forward 0.8, backward 0 (stands): pooled relative tracking, 1 - 42 / 90 = 0.53, would widen at
    # 0.3; the worst direction scores 0.
    end(forward_error=0.2, backward_error=1.0)
    assert task.curriculum_level == 0
    # Both 0.8 on the steps run, but the backward episode fell halfway: padded, 1 - 18 / 30 = 0.4.
    end(forward_error=0.2, backward_error=0.2, backward_steps=50)
    assert task.curriculum_level == 1  # min(0.8, 0.4) > 0.3
    np.testing.assert_allclose(task.curriculum_ranges[0], [-0.55, 0.95])
    # A direction with under 5 % of the commanded distance is not scored: backward 1 of 61 m.
    task.episode_step[:] = 100
    task.curriculum_sector_command[:] = 0.0
    task.curriculum_sector_error[:] = 0.0
    task.curriculum_sector_command[0, 0], task.curriculum_sector_error[0, 0] = 60.0, 6.0
    task.curriculum_sector_command[2, 2], task.curriculum_sector_error[2, 2] = 1.0, 1.0
    task.reset_envs(np.arange(4))
    assert task.curriculum_level == 2


def test_curriculum_progress_survives_a_snapshot_and_a_single_env_samples_the_full_ranges() -> None:
    from robolearn.envs.state import layer_state, set_layer_state

    task = _curriculum_task()
    task.reset_envs(np.arange(4))
    _end_episodes(task, 0.9)
    saved = layer_state(task)
    fresh = _curriculum_task()
    set_layer_state(fresh, saved)
    assert fresh.curriculum_level == 1
    np.testing.assert_allclose(fresh.curriculum_ranges, task.curriculum_ranges)
    single = VelocityTask(robot="go2", num_envs=1, command_curriculum=CURRICULUM)
    assert single.curriculum is None
    np.testing.assert_allclose(single.curriculum_ranges, [[-1.0, 1.0], [-0.5, 0.5], [-1.0, 1.0]])


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"command_curriculum": {"start": {"lin_vel_x": [0.0, 2.0]}}}, "outside command_ranges.lin_vel_x"),
        ({"command_curriculum": {"begin": {}}}, "command_curriculum.begin is not an option"),
        ({"command_curriculum": {"step": {"vx": 0.1}}}, "unknown command_curriculum.step key 'vx'"),
        ({"command_curriculum": {"threshold": 1.5}}, "threshold=1.5 must be in"),
        ({"command_curriculum": {"score": "relative"}}, "score=relative is not a score \\(did you mean"),
        (
            {"command_curriculum": CURRICULUM, "reward_scales": {"tracking_lin_vel": 0.0}},
            "grows on tracking_lin_vel",
        ),
        ({"air_time_window": [0.2, 0.1]}, "air_time_window=\\[0.2, 0.1\\]"),
        ({"air_time_target": -0.1}, "air_time_target=-0.1 must be >= 0"),
    ],
)
def test_walking_options_fail_with_one_line_errors(kwargs: dict[str, Any], match: str) -> None:
    with pytest.raises(UserError, match=match) as info:
        VelocityTask(robot="go2", num_envs=2, backend="batch", **kwargs)
    assert "\n" not in str(info.value)
