"""Actuator physics: reflected inertia, derived gains, and the torque-limited PD law."""

from __future__ import annotations

import math

import numpy as np
import pytest

from robolearn.robots import G1_SPEC, GO2_SPEC, RobotSpec
from robolearn.robots.actuators import (
    ACTION_TORQUE_FRACTION,
    DAMPING_RATIO,
    G1_5020,
    G1_7520_22,
    GO2_CALF,
    GO2_CALF_GEAR_RATIO,
    GO2_CALF_LINKAGE_RATIO,
    GO2_HIP,
    NATURAL_FREQUENCY_HZ,
    go2_calf_motor,
    pd_gains,
    pd_torque,
    reflected_inertia,
)
from robolearn.robots.go2 import go2_spec


def test_single_stage_armature_is_rotor_inertia_times_ratio_squared() -> None:
    assert reflected_inertia((2e-5,), (9.0,)) == pytest.approx(2e-5 * 81)
    assert GO2_HIP.armature == pytest.approx(0.000111842 * 6.33**2)


def test_two_stage_armature() -> None:
    # Stage 1 spins at (r1 * r2) x the joint, stage 2 at r2 x, the output stage at 1 x.
    r1, r2 = 1 + 46 / 18, 1 + 56 / 16
    expected = 0.139e-4 * (r1 * r2) ** 2 + 0.017e-4 * r2**2 + 0.169e-4
    assert G1_5020.armature == pytest.approx(expected)
    with pytest.raises(ValueError):
        reflected_inertia((1.0,), (1.0, 2.0))


def test_gains_follow_natural_frequency_and_damping_ratio() -> None:
    kp, kd = pd_gains(0.01, natural_frequency_hz=10.0, damping_ratio=2.0)
    omega = 2 * math.pi * 10.0
    assert kp == pytest.approx(0.01 * omega**2)
    assert kd == pytest.approx(2 * 2.0 * 0.01 * omega)
    # The G1 knee: mjlab's published stiffness for the 7520-22 is 99.1 N·m/rad.
    assert G1_7520_22.gains()[0] == pytest.approx(99.098, rel=1e-3)


@pytest.mark.parametrize("spec", [GO2_SPEC, G1_SPEC], ids=lambda s: s.name)
def test_spec_gains_are_derived_from_armature(spec: RobotSpec) -> None:
    for a, kp, kd, scale, limit in zip(
        spec.armature, spec.kp, spec.kd, spec.action_scale, spec.torque_limits, strict=True
    ):
        assert (kp, kd) == pytest.approx(pd_gains(a, NATURAL_FREQUENCY_HZ, DAMPING_RATIO))
        assert scale == pytest.approx(ACTION_TORQUE_FRACTION * limit / kp)


def test_pd_torque_value_inside_limits() -> None:
    tau = pd_torque(target_pos=0.1, joint_pos=0.0, joint_vel=0.2, kp=20.0, kd=0.5, torque_limit=10.0)
    assert tau == pytest.approx(20.0 * 0.1 - 0.5 * 0.2)


@pytest.mark.parametrize("spec", [GO2_SPEC, G1_SPEC], ids=lambda s: s.name)
def test_torque_limits_hold_under_extreme_actions(spec: RobotSpec) -> None:
    rng = np.random.default_rng(0)
    n = spec.num_joints
    targets = np.concatenate(
        [
            rng.uniform(-1e6, 1e6, size=(64, n)),
            np.full((1, n), np.inf),
            np.full((1, n), -np.inf),
            np.full((1, n), np.nan),
            np.full((1, n), 1e308),
        ]
    )
    joint_pos = rng.uniform(-3, 3, size=targets.shape)
    joint_vel = rng.uniform(-1e4, 1e4, size=targets.shape)
    tau = pd_torque(targets, joint_pos, joint_vel, spec.kp_array, spec.kd_array, spec.torque_limit_array)
    assert tau.shape == targets.shape
    assert np.all(np.isfinite(tau))
    assert np.all(np.abs(tau) <= spec.torque_limit_array + 1e-12)
    assert np.all(tau[-2] == 0.0)  # NaN target: limp, not NaN
    assert np.allclose(np.abs(tau[-4]), spec.torque_limit_array)  # +inf target: saturated


def test_pd_torque_batched_equals_single() -> None:
    rng = np.random.default_rng(1)
    n = GO2_SPEC.num_joints
    q_t, q, dq = (rng.normal(size=(5, n)) for _ in range(3))
    batched = pd_torque(q_t, q, dq, GO2_SPEC.kp_array, GO2_SPEC.kd_array, GO2_SPEC.torque_limit_array)
    for i in range(5):
        single = pd_torque(
            q_t[i], q[i], dq[i], GO2_SPEC.kp_array, GO2_SPEC.kd_array, GO2_SPEC.torque_limit_array
        )
        np.testing.assert_array_equal(batched[i], single)


def test_go2_calf_ratio_is_the_urdf_limit_ratio_unless_overridden() -> None:
    # Unitree's URDF gives the calf 45.43 N·m / 15.70 rad/s against the hip's 23.7 / 30.1: the same
    # torque x speed, so one motor behind an extra 1.917:1 (docs/robots.md, "Go2 calf reduction").
    assert GO2_CALF_LINKAGE_RATIO == pytest.approx(45.43 / 23.7) == pytest.approx(30.1 / 15.70, rel=1e-3)
    assert (
        GO2_CALF.gear_ratios == (GO2_CALF_GEAR_RATIO,)
        and pytest.approx(12.134, abs=1e-3) == GO2_CALF_GEAR_RATIO
    )
    assert go2_calf_motor() == GO2_CALF
    nine = go2_calf_motor(9.0)  # mjlab's Go2
    assert nine.armature == pytest.approx(GO2_CALF.armature * (9.0 / GO2_CALF_GEAR_RATIO) ** 2)
    assert (nine.torque_limit, nine.velocity_limit) == (GO2_CALF.torque_limit, GO2_CALF.velocity_limit)
    assert go2_spec(9.0).kp[2] == pytest.approx(nine.gains()[0]) and go2_spec() == GO2_SPEC
    with pytest.raises(ValueError, match="positive"):
        go2_calf_motor(0.0)
