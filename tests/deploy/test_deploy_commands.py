"""CommandLimiter: every command it makes passes check_command, whatever the request and the state."""

from __future__ import annotations

import numpy as np
import pytest

from robolearn.deploy.commands import CommandKind, CommandLimiter, check_command
from robolearn.robots import G1_SPEC, GO2_SPEC, RobotSpec


@pytest.mark.parametrize("spec", [GO2_SPEC, G1_SPEC], ids=lambda s: s.name)
def test_random_requests_and_states_always_pass_the_checks(spec: RobotSpec) -> None:
    limiter = CommandLimiter(spec)
    rng = np.random.default_rng(0)
    n = spec.num_joints
    lower, upper = np.asarray(spec.joint_pos_lower), np.asarray(spec.joint_pos_upper)
    span = upper - lower
    for _ in range(2000):
        q = lower + rng.uniform(-0.3, 1.3, n) * span  # sometimes outside the range
        dq = rng.normal(0, 10, n) * rng.choice([0.0, 1.0, 5.0])
        target = lower + rng.uniform(-2, 3, n) * span
        kp = np.asarray(spec.kp) * rng.uniform(0, 3, n)
        kd = np.asarray(spec.kd) * rng.uniform(0, 3, n)
        for cmd in (
            limiter.pd(target, q, dq, kp, kd),
            limiter.pd(target, q, dq),
            limiter.damp(q, dq),
            limiter.passive(q),
        ):
            assert check_command(spec, cmd.q, cmd.kp, cmd.kd, joint_pos=q, joint_vel=dq) == []


def test_unchanged_when_nothing_is_beyond_a_limit() -> None:
    limiter = CommandLimiter(GO2_SPEC)
    q = GO2_SPEC.default_pos_array
    cmd = limiter.pd(q + 0.01, q, np.zeros(12))
    assert cmd.kind == CommandKind.PD and cmd.limited == 0
    np.testing.assert_array_equal(cmd.q, q + 0.01)
    np.testing.assert_array_equal(cmd.kp, GO2_SPEC.kp_array)


def test_torque_window_moves_the_target_toward_the_joint() -> None:
    spec = GO2_SPEC
    limiter = CommandLimiter(spec)
    q = spec.default_pos_array.copy()
    target = q.copy()
    target[0] = spec.joint_pos_upper[0]  # 1.15 rad away: 17.7 * 1.15 = 20 N·m < 23.7, fine
    target[2] = spec.joint_pos_upper[2]  # calf: 65 * 0.66 = 43 N·m < 45.4, fine
    target[1] = q[1] + 2.0  # thigh: 17.7 * 2 = 35 N·m > 23.7: moved to 23.7 / 17.7 from q
    cmd = limiter.pd(target, q, np.zeros(12))
    assert cmd.q[1] == pytest.approx(q[1] + spec.torque_limits[1] / spec.kp[1])
    assert cmd.q[0] == target[0] and cmd.limited == 1


def test_nan_state_never_gives_stiffness_and_damp_keeps_damping() -> None:
    limiter = CommandLimiter(GO2_SPEC)
    q = GO2_SPEC.default_pos_array.copy()
    q[3] = np.nan
    cmd = limiter.pd(q, q, np.zeros(12))
    assert cmd.kp[3] == 0 and np.all(cmd.kp[np.arange(12) != 3] > 0)
    assert check_command(GO2_SPEC, cmd.q, cmd.kp, cmd.kd, joint_pos=q, joint_vel=np.zeros(12)) == []
    damp = limiter.damp(q, np.full(12, np.nan))
    assert damp.kind == CommandKind.DAMP and np.all(damp.kp == 0) and np.all(damp.kd == GO2_SPEC.kd_array)
    assert np.all(np.isfinite(damp.q))


def test_damping_is_lowered_when_it_alone_would_pass_the_torque_limit() -> None:
    limiter = CommandLimiter(GO2_SPEC, damp_kd_fraction=1.0)
    dq = np.full(12, 100.0)  # 4.1 N·m·s/rad * 100 rad/s on the calf would be 414 N·m
    cmd = limiter.damp(GO2_SPEC.default_pos_array, dq)
    assert np.all(np.abs(cmd.kd * dq) <= GO2_SPEC.torque_limit_array + 1e-9)


def test_check_command_names_every_violation() -> None:
    spec = GO2_SPEC
    q = spec.default_pos_array.copy()
    q[0] = 5.0
    kp = spec.kp_array * 2
    problems = check_command(spec, q, kp, spec.kd_array, dq=np.ones(12), tau=np.zeros(12))
    assert any("FR_hip_joint: q*=5" in p for p in problems)
    assert sum("kp=" in p for p in problems) == 12
    assert "velocity target dq is not zero" in problems
