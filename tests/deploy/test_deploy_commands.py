"""CommandLimiter: every command it makes passes check_command, whatever the request and the state."""

from __future__ import annotations

import numpy as np
import pytest

from robolearn.deploy.commands import _TORQUE_RTOL, CommandKind, CommandLimiter, check_command
from robolearn.robots import G1_SPEC, GO2_SPEC, RobotSpec


@pytest.mark.parametrize("spec", [GO2_SPEC, G1_SPEC], ids=lambda s: s.name)
def test_random_requests_and_states_always_pass_the_checks(spec: RobotSpec) -> None:
    limiter = CommandLimiter(spec)
    rng = np.random.default_rng(0)
    n = spec.num_joints
    lower, upper = np.asarray(spec.joint_pos_lower), np.asarray(spec.joint_pos_upper)
    span = upper - lower
    for _ in range(500):  # broad random coverage; test_deploy_properties.py searches the corners
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


# -- check_command on commands that break a limit: each must be named -----------------------------------
SPECS = [GO2_SPEC, G1_SPEC]
EPS32 = float(np.finfo(np.float32).eps)


def _at_default(spec: RobotSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(q*, kp, kd, joint_pos, joint_vel): the default pose held with the spec's gains, at rest."""
    q = spec.default_pos_array.copy()
    return q.copy(), spec.kp_array.copy(), spec.kd_array.copy(), q, np.zeros(spec.num_joints)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_check_command_flags_an_implied_torque_over_the_limit(spec: RobotSpec) -> None:
    tau = spec.torque_limit_array
    for j in range(spec.num_joints):
        for sign in (1.0, -1.0):
            # Through the damping term: kd |dq| just above and just below the limit.
            q, kp, kd, qm, dqm = _at_default(spec)
            dqm[j] = sign * tau[j] * (1 + 1e-3) / kd[j]
            problems = check_command(spec, q, kp, kd, joint_pos=qm, joint_vel=dqm)
            assert problems == [
                f"{spec.joint_names[j]}: implied torque {-sign * tau[j] * 1.001:.4g} beyond ±{tau[j]}"
            ]
            dqm[j] = sign * tau[j] * (1 - 1e-6) / kd[j]
            assert check_command(spec, q, kp, kd, joint_pos=qm, joint_vel=dqm) == []
            # Through the stiffness term: kp (q* - q) over the limit with q* inside the range, kd = 0.
            q, kp, kd, qm, dqm = _at_default(spec)
            kd[:] = 0.0
            qm[j] = q[j] - sign * tau[j] * (1 + 1e-3) / kp[j]  # the measured joint is off the target
            problems = check_command(spec, q, kp, kd, joint_pos=qm, joint_vel=dqm)
            assert len(problems) == 1 and problems[0].startswith(f"{spec.joint_names[j]}: implied torque")
            qm[j] = q[j] - sign * tau[j] * (1 - 1e-6) / kp[j]
            assert check_command(spec, q, kp, kd, joint_pos=qm, joint_vel=dqm) == []
    # torque_slack widens the bound by that many N·m, no more.
    q, kp, kd, qm, dqm = _at_default(spec)
    dqm[0] = (tau[0] + 0.5) / kd[0]
    assert check_command(spec, q, kp, kd, joint_pos=qm, joint_vel=dqm, torque_slack=0.6) == []
    assert len(check_command(spec, q, kp, kd, joint_pos=qm, joint_vel=dqm, torque_slack=0.4)) == 1
    # Without the measured state the torque cannot be checked, and nothing is claimed about it.
    assert check_command(spec, q, kp, kd, joint_pos=qm) == []


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_check_command_flags_stiffness_on_a_joint_with_an_unknown_state(spec: RobotSpec) -> None:
    for bad in (np.nan, np.inf, -np.inf):
        for field in ("joint_pos", "joint_vel"):
            q, kp, kd, qm, dqm = _at_default(spec)
            (qm if field == "joint_pos" else dqm)[3] = bad
            problems = check_command(spec, q, kp, kd, joint_pos=qm, joint_vel=dqm)
            assert problems == [f"{spec.joint_names[3]}: kp={kp[3]:.4g} with an unknown joint state"]
            kp[3] = 0.5  # any stiffness at all
            assert check_command(spec, q, kp, kd, joint_pos=qm, joint_vel=dqm) == [
                f"{spec.joint_names[3]}: kp=0.5 with an unknown joint state"
            ]
            kp[3] = 0.0  # damping alone on that joint is allowed
            assert check_command(spec, q, kp, kd, joint_pos=qm, joint_vel=dqm) == []


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_check_command_flags_targets_outside_the_joint_range(spec: RobotSpec) -> None:
    lower, upper = np.asarray(spec.joint_pos_lower), np.asarray(spec.joint_pos_upper)
    names = spec.joint_names
    for j in range(spec.num_joints):
        q, kp, kd, _, _ = _at_default(spec)
        for edge in (lower[j], upper[j]):
            q[j] = edge  # the edges themselves are in range, and so is one float32 rounding step beyond
            assert check_command(spec, q, kp, kd) == []
        for inside in (
            upper[j] + 0.5 * EPS32 * abs(upper[j]),
            upper[j] + EPS32 * abs(upper[j]),  # the last value allowed
            lower[j] - 0.5 * EPS32 * abs(lower[j]),
            lower[j] - EPS32 * abs(lower[j]),
        ):
            q[j] = inside
            assert check_command(spec, q, kp, kd) == [], inside
        for bad in (
            upper[j] + 1e-3,
            lower[j] - 1e-3,
            upper[j] + 4 * EPS32 * abs(upper[j]),
            np.nan,
            np.inf,
            -np.inf,
        ):
            q[j] = bad
            assert check_command(spec, q, kp, kd) == [
                f"{names[j]}: q*={bad:.6g} outside [{lower[j]}, {upper[j]}]"
            ], bad


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_check_command_flags_gains_outside_zero_to_the_spec(spec: RobotSpec) -> None:
    names = spec.joint_names
    for gain in ("kp", "kd"):
        limit = np.asarray(getattr(spec, gain))
        for j in (0, spec.num_joints - 1):
            for ok in (0.0, limit[j], limit[j] * (1 + 0.5 * EPS32), limit[j] * (1 + EPS32)):
                q, kp, kd, _, _ = _at_default(spec)
                (kp if gain == "kp" else kd)[j] = ok
                assert check_command(spec, q, kp, kd) == [], (gain, ok)
            for bad in (-1e-6, limit[j] * (1 + 1e-4), np.nan, np.inf):
                q, kp, kd, _, _ = _at_default(spec)
                (kp if gain == "kp" else kd)[j] = bad
                assert check_command(spec, q, kp, kd) == [
                    f"{names[j]}: {gain}={bad:.6g} outside [0, {limit[j]:.6g}]"
                ], (gain, bad)


def test_check_command_flags_a_velocity_target_or_a_feedforward_torque() -> None:
    q, kp, kd, _, _ = _at_default(GO2_SPEC)
    zero = np.zeros(12)
    assert check_command(GO2_SPEC, q, kp, kd, dq=zero, tau=zero) == []
    one = zero.copy()
    one[7] = 1e-3
    assert check_command(GO2_SPEC, q, kp, kd, dq=one, tau=zero) == ["velocity target dq is not zero"]
    assert check_command(GO2_SPEC, q, kp, kd, dq=zero, tau=-one) == ["feedforward torque tau is not zero"]


# -- the limiter's own branches, checked against numbers worked out here -------------------------------
@pytest.mark.filterwarnings("error::RuntimeWarning")  # the joints at their target divide by a zero error
@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
@pytest.mark.parametrize("side", ["above", "below"])
@pytest.mark.parametrize("velocity", [0.0, 0.3, -0.3])
def test_kp_is_lowered_where_the_joint_is_outside_its_range(
    spec: RobotSpec, side: str, velocity: float
) -> None:
    """Beyond its range the target cannot move toward the joint (it is clipped into the range), so kp
    is lowered until the torque is exactly at the limit, whatever the damping adds or takes."""
    limiter = CommandLimiter(spec)
    lower, upper = np.asarray(spec.joint_pos_lower), np.asarray(spec.joint_pos_upper)
    tau, kp_max, kd_max = spec.torque_limit_array, spec.kp_array, spec.kd_array
    j = 1
    q = spec.default_pos_array.copy()
    dq = np.zeros(spec.num_joints)
    far = 3.0 * tau[j] / kp_max[j]  # full kp over this error would be three times the limit
    q[j] = upper[j] + far if side == "above" else lower[j] - far
    dq[j] = velocity * tau[j] / kd_max[j]  # damping torque of 30 % of the limit, either sign
    cmd = limiter.pd(spec.default_pos_array, q, dq)
    edge = upper[j] if side == "above" else lower[j]
    assert cmd.q[j] == edge and cmd.kd[j] == kd_max[j]
    torque = cmd.kp[j] * (cmd.q[j] - q[j]) - cmd.kd[j] * dq[j]
    assert abs(torque) == pytest.approx(tau[j], rel=1e-12)
    damping = kd_max[j] * dq[j]
    room = tau[j] + damping if side == "below" else tau[j] - damping
    assert cmd.kp[j] == pytest.approx(room / far, rel=1e-12) and cmd.kp[j] < kp_max[j]
    others = np.arange(spec.num_joints) != j
    np.testing.assert_array_equal(cmd.kp[others], kp_max[others])
    assert cmd.limited == 1
    assert check_command(spec, cmd.q, cmd.kp, cmd.kd, joint_pos=q, joint_vel=dq) == []


def test_kp_stays_where_a_joint_outside_its_range_is_within_the_torque_limit() -> None:
    spec = GO2_SPEC
    limiter = CommandLimiter(spec)
    q = spec.default_pos_array.copy()
    q[1] = spec.joint_pos_upper[1] + 0.5 * spec.torque_limits[1] / spec.kp[1]  # half the limit away
    target = spec.default_pos_array.copy()
    target[1] = spec.joint_pos_upper[1]
    cmd = limiter.pd(target, q, np.zeros(12))
    assert cmd.q[1] == spec.joint_pos_upper[1] and cmd.limited == 0
    np.testing.assert_array_equal(cmd.kp, spec.kp_array)


def test_requested_gains_are_clipped_to_zero_and_the_spec() -> None:
    spec = GO2_SPEC
    limiter = CommandLimiter(spec)
    q = spec.default_pos_array
    kp = spec.kp_array.copy()
    kd = spec.kd_array.copy()
    kp[:5] = [np.nan, np.inf, -np.inf, -1.0, 1e9]
    kd[:5] = [np.nan, np.inf, -np.inf, -1.0, 1e9]
    cmd = limiter.pd(q, q, np.zeros(12), kp, kd)
    np.testing.assert_array_equal(cmd.kp[:5], [0.0, 0.0, 0.0, 0.0, spec.kp[4]])
    np.testing.assert_array_equal(cmd.kd[:5], [0.0, 0.0, 0.0, 0.0, spec.kd[4]])
    np.testing.assert_array_equal(cmd.kp[5:], spec.kp_array[5:])
    assert cmd.limited == 5


def test_unknown_target_holds_the_measured_joint_or_the_default_pose() -> None:
    spec = GO2_SPEC
    limiter = CommandLimiter(spec)
    q = spec.default_pos_array + 0.05
    target = q.copy()
    target[2] = np.nan  # no target: hold where the joint is
    q_unknown = q.copy()
    q_unknown[5] = np.nan  # no measurement either: the default pose, with kp 0
    target[5] = np.inf
    cmd = limiter.pd(target, q_unknown, np.zeros(12))
    assert cmd.q[2] == q[2] and cmd.kp[2] == spec.kp[2]
    assert cmd.q[5] == spec.default_joint_pos[5] and cmd.kp[5] == 0.0


@pytest.mark.parametrize("fraction,expected", [(0.5, 0.5), (2.0, 1.0), (-1.0, 0.0)])
def test_damp_gain_is_a_fraction_of_the_spec_kd_clipped_to_zero_and_one(
    fraction: float, expected: float
) -> None:
    limiter = CommandLimiter(GO2_SPEC, damp_kd_fraction=fraction)
    q = GO2_SPEC.default_pos_array
    cmd = limiter.damp(q, np.zeros(12))
    np.testing.assert_allclose(cmd.kd, GO2_SPEC.kd_array * expected, rtol=1e-15)
    assert np.all(cmd.kp == 0)
    # A fast joint gets kd lowered to exactly what the torque limit allows.
    dq = np.zeros(12)
    dq[2] = -100.0
    fast = CommandLimiter(GO2_SPEC).damp(q, dq)
    assert fast.kd[2] == pytest.approx(GO2_SPEC.torque_limits[2] / 100.0, rel=1e-15)
    assert fast.kd[0] == GO2_SPEC.kd[0]


def test_passive_and_damp_hold_a_target_in_range_where_the_joint_is() -> None:
    spec = GO2_SPEC
    limiter = CommandLimiter(spec)
    q = spec.default_pos_array + 0.05
    q[0] = spec.joint_pos_upper[0] + 0.3  # outside: clipped to the range edge
    q[1] = np.nan  # unknown: the default pose
    for cmd in (limiter.passive(q), limiter.damp(q, np.zeros(12))):
        assert cmd.q[0] == spec.joint_pos_upper[0] and cmd.q[1] == spec.default_joint_pos[1]
        np.testing.assert_array_equal(cmd.q[2:], q[2:])
    passive = limiter.passive(q)
    assert passive.kind == CommandKind.PASSIVE and np.all(passive.kp == 0) and np.all(passive.kd == 0)


@pytest.mark.parametrize("spec", SPECS, ids=lambda s: s.name)
def test_check_command_allows_a_torque_exactly_at_the_bound(spec: RobotSpec) -> None:
    """The bound (limit, float rounding slack, torque_slack) itself passes; the next float above does not."""
    q, kp, kd, qm, dqm = _at_default(spec)
    slack = 0.25
    bound = spec.torque_limit_array[0] * (1 + _TORQUE_RTOL) + slack  # as check_command computes it
    dq0 = bound / kd[0]
    for _ in range(64):  # the damping speed whose torque kd * dq is the bound to the last bit
        torque = kd[0] * dq0
        if torque == bound:
            break
        dq0 = np.nextafter(dq0, np.inf if torque < bound else -np.inf)
    assert kd[0] * dq0 == bound
    dqm[0] = -dq0
    assert check_command(spec, q, kp, kd, joint_pos=qm, joint_vel=dqm, torque_slack=slack) == []
    dqm[0] = -np.nextafter(dq0, np.inf)
    assert len(check_command(spec, q, kp, kd, joint_pos=qm, joint_vel=dqm, torque_slack=slack)) == 1


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_check_command_flags_an_absurd_measured_position_without_a_warning() -> None:
    """A joint state of -1e308 rad overflows kp (q* - q) to inf: reported as such, quietly."""
    q, kp, kd, qm, dqm = _at_default(GO2_SPEC)
    qm[0] = -1e308
    assert check_command(GO2_SPEC, q, kp, kd, joint_pos=qm, joint_vel=dqm) == [
        f"FR_hip_joint: implied torque inf beyond ±{GO2_SPEC.torque_limits[0]}"
    ]


def test_an_unknown_joint_gets_no_stiffness_and_a_target_in_the_window_of_the_default_pose() -> None:
    """Where the state is unknown the torque window is built around the default pose, without damping."""
    spec = GO2_SPEC
    q = spec.default_pos_array.copy()
    q[1] = np.nan
    target = spec.default_pos_array.copy()
    target[1] = spec.joint_pos_upper[1]  # 2.7 rad from the default: far beyond the window
    cmd = CommandLimiter(spec).pd(target, q, np.zeros(12))
    assert cmd.kp[1] == 0.0 and cmd.kd[1] == spec.kd[1]
    assert cmd.q[1] == spec.default_joint_pos[1] + spec.torque_limits[1] / spec.kp[1]


def test_limited_counts_each_joint_whose_target_or_gain_changed_by_more_than_1e_12() -> None:
    spec = GO2_SPEC
    limiter = CommandLimiter(spec)
    q = spec.default_pos_array
    target, kp, kd = q.copy(), spec.kp_array.copy(), spec.kd_array.copy()
    target[0] = spec.joint_pos_upper[0] + 1e-10  # clipped to the range: a 1e-10 change
    kp[1] = spec.kp[1] + 1e-9  # clipped to the spec's kp
    kd[2] = spec.kd[2] + 1e-9  # clipped to the spec's kd
    for changed in ({0: target}, {1: kp}, {2: kd}):
        ((j, request),) = changed.items()
        t, p, d = (
            request if request is x else base
            for x, base in ((target, q), (kp, spec.kp_array), (kd, spec.kd_array))
        )
        assert limiter.pd(t, q, np.zeros(12), p, d).limited == 1, j
    assert limiter.pd(target, q, np.zeros(12), kp, kd).limited == 3
    assert limiter.pd(q, q, np.zeros(12), spec.kp_array + 1e-13, spec.kd_array).limited == 0


def test_a_small_kp_is_kept_and_the_target_moved_when_damping_and_stiffness_add_up() -> None:
    """kp = 1 alone could never reach the limit over the joint range; with damping it can: the target
    moves (the window applies to every kp > 0), kp is kept."""
    spec = GO2_SPEC
    j, tau = 1, spec.torque_limits[1]
    q = spec.default_pos_array.copy()
    q[j] = spec.joint_pos_upper[j]
    target = q.copy()
    target[j] = spec.joint_pos_lower[j]
    dq = np.zeros(12)
    dq[j] = 0.9 * tau / spec.kd[j]  # damping of 90 % of the limit, adding to the stiffness term
    kp = spec.kp_array.copy()
    kp[j] = 1.0
    cmd = CommandLimiter(spec).pd(target, q, dq, kp)
    assert cmd.kp[j] == 1.0 and cmd.kd[j] == spec.kd[j]
    assert cmd.kp[j] * (cmd.q[j] - q[j]) - cmd.kd[j] * dq[j] == pytest.approx(-tau, rel=1e-12)
