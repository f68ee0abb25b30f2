"""The safety state machine, exhaustively, and each guard."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from robolearn.deploy.safety import Event, GuardConfig, Guards, SafetyMachine, SafetyState, Transition
from robolearn.robots import GO2_SPEC

S, E = SafetyState, Event
# Written out by hand (not imported): the behaviour the runtime promises, pair by pair. None means
# the event is refused and the state kept; a state means the machine moves there (or stays, accepted).
EXPECTED: dict[SafetyState, dict[Event, SafetyState | None]] = {
    S.PASSIVE: {E.START: S.RAMP, E.RAMP_DONE: None, E.POLICY: None, E.STAND: None, E.DAMP: S.DAMP, E.PASSIVE: None, E.ESTOP: S.ESTOP, E.FAULT: S.PASSIVE},
    S.RAMP: {E.START: None, E.RAMP_DONE: S.HOLD, E.POLICY: None, E.STAND: None, E.DAMP: S.DAMP, E.PASSIVE: None, E.ESTOP: S.ESTOP, E.FAULT: S.DAMP},
    S.HOLD: {E.START: None, E.RAMP_DONE: None, E.POLICY: S.POLICY, E.STAND: None, E.DAMP: S.DAMP, E.PASSIVE: None, E.ESTOP: S.ESTOP, E.FAULT: S.DAMP},
    S.POLICY: {E.START: None, E.RAMP_DONE: None, E.POLICY: None, E.STAND: S.RAMP, E.DAMP: S.DAMP, E.PASSIVE: None, E.ESTOP: S.ESTOP, E.FAULT: S.DAMP},
    S.DAMP: {E.START: S.RAMP, E.RAMP_DONE: None, E.POLICY: None, E.STAND: None, E.DAMP: S.DAMP, E.PASSIVE: S.PASSIVE, E.ESTOP: S.ESTOP, E.FAULT: S.DAMP},
    S.ESTOP: {E.START: None, E.RAMP_DONE: None, E.POLICY: None, E.STAND: None, E.DAMP: None, E.PASSIVE: None, E.ESTOP: S.ESTOP, E.FAULT: S.ESTOP},
}  # fmt: skip


# Accepted without a state change and without a record: nothing happened.
NO_OP = {(S.DAMP, E.DAMP), (S.PASSIVE, E.FAULT), (S.DAMP, E.FAULT), (S.ESTOP, E.FAULT)}


def _machine_in(state: SafetyState) -> SafetyMachine:
    m = SafetyMachine(now=0.5)
    m.state = state
    return m


@pytest.mark.parametrize("state,event", list(itertools.product(SafetyState, Event)), ids=lambda x: x.name)
def test_every_transition(state: SafetyState, event: Event) -> None:
    m = _machine_in(state)
    expected = EXPECTED[state][event]
    accepted = m.handle(event, 1.0, "test")
    if expected is None:
        assert not accepted and m.state is state and m.history == [] and m.entered_at == 0.5
    elif (state, event) in NO_OP:
        assert accepted and m.state is state and m.history == [] and m.entered_at == 0.5
    else:
        assert accepted and m.state is expected and m.entered_at == 1.0
        assert m.history == [Transition(1.0, event, state, expected, "test")]
    assert m.armed is (m.state in (S.RAMP, S.HOLD, S.POLICY))


def test_estop_is_latched_and_reachable_from_everywhere() -> None:
    for state in SafetyState:
        m = _machine_in(state)
        assert m.handle(Event.ESTOP, 0.0) and m.state is S.ESTOP
        for event in Event:
            m.handle(event, 0.0)
            assert m.state is S.ESTOP


def test_a_full_session_is_recorded() -> None:
    m = SafetyMachine()
    for event in (
        E.START,
        E.RAMP_DONE,
        E.POLICY,
        E.FAULT,
        E.START,
        E.RAMP_DONE,
        E.POLICY,
        E.STAND,
        E.RAMP_DONE,
        E.DAMP,
        E.PASSIVE,
    ):
        assert m.handle(event, 0.0)
    assert [t.target for t in m.history] == [
        S.RAMP,
        S.HOLD,
        S.POLICY,
        S.DAMP,
        S.RAMP,
        S.HOLD,
        S.POLICY,
        S.RAMP,
        S.HOLD,
        S.DAMP,
        S.PASSIVE,
    ]
    assert m.armed is False


@pytest.fixture
def guards() -> Guards:
    return Guards(
        GO2_SPEC,
        GuardConfig(stale_state_s=0.05, max_tilt_deg=45, joint_pos_margin=0.1, action_limit_multiple=2.0),
    )


def _ok(guards: Guards, **change: np.ndarray) -> str | None:
    state = {
        "joint_pos": GO2_SPEC.default_pos_array.copy(),
        "joint_vel": np.zeros(12),
        "quat": np.array([1.0, 0, 0, 0]),
        "gyro": np.zeros(3),
    }
    state.update(change)
    return guards.state(state["joint_pos"], state["joint_vel"], state["quat"], state["gyro"])


def test_state_guards(guards: Guards) -> None:
    assert _ok(guards) is None
    q = GO2_SPEC.default_pos_array.copy()
    q[5] = np.nan
    assert _ok(guards, joint_pos=q).startswith("non_finite_state")
    assert _ok(guards, gyro=np.array([0, np.inf, 0])).startswith("non_finite_state")
    q = GO2_SPEC.default_pos_array.copy()
    q[0] = GO2_SPEC.joint_pos_upper[0] + 0.11
    assert _ok(guards, joint_pos=q).startswith("joint_position: FR_hip_joint")
    q[0] = GO2_SPEC.joint_pos_upper[0] + 0.09
    assert _ok(guards, joint_pos=q) is None
    dq = np.zeros(12)
    dq[2] = -16.0  # calf limit 15.7
    assert _ok(guards, joint_vel=dq).startswith("joint_velocity: FR_calf_joint")
    tilt = np.deg2rad(50)
    assert _ok(guards, quat=np.array([np.cos(tilt / 2), np.sin(tilt / 2), 0, 0])).startswith(
        "base_tilt: 50.0"
    )
    tilt = np.deg2rad(40)
    assert _ok(guards, quat=np.array([np.cos(tilt / 2), 0, np.sin(tilt / 2), 0])) is None


def test_stale_and_action_guards(guards: Guards) -> None:
    assert guards.stale(1.0, None).startswith("stale_state")
    assert guards.stale(1.0, 0.96) is None
    assert guards.stale(1.0, 0.94).startswith("stale_state: no fresh state for 60.0 ms")
    guards.set_action_limit(5.0)
    assert guards.action(np.full(12, 9.9)) is None
    assert guards.action(np.full(12, 10.1)).startswith("action_limit")
    assert guards.action(np.array([np.nan] * 12)).startswith("non_finite_action")
    assert guards.observation(np.array([1.0, np.inf])).startswith("non_finite_observation")
    guards.set_action_limit(None)  # no clip in the contract: the action reaching the range edge
    reach = (GO2_SPEC.joint_pos_upper[0] - GO2_SPEC.default_joint_pos[0]) / GO2_SPEC.action_scale[0]
    hip = np.zeros(12)
    hip[0] = 2.0 * reach * 0.99
    assert guards.action(hip) is None
    hip[0] = 2.0 * reach * 1.01
    assert guards.action(hip).startswith("action_limit: FR_hip_joint")


def test_a_new_machine_is_passive_disarmed_and_empty() -> None:
    m = SafetyMachine(now=3.0)
    assert m.state is S.PASSIVE and m.entered_at == 3.0 and m.history == [] and not m.armed
    m = SafetyMachine()  # the clock starts at zero, and an event without a reason records ""
    assert m.entered_at == 0.0
    assert m.handle(E.START, 0.25) and m.history == [Transition(0.25, E.START, S.PASSIVE, S.RAMP, "")]


def test_state_guard_messages_name_the_joint_the_value_and_the_limit(guards: Guards) -> None:
    q = GO2_SPEC.default_pos_array.copy()
    q[3] = GO2_SPEC.joint_pos_lower[3] - 0.25  # below the range: the lower side is checked too
    q[7] = GO2_SPEC.joint_pos_upper[7] + 0.5  # a second joint beyond: the first one is reported
    assert _ok(guards, joint_pos=q) == (
        "joint_position: FL_hip_joint at -1.297 rad, outside [-1.0472, 1.0472] ± 0.1"
    )
    q = GO2_SPEC.default_pos_array.copy()
    q[7] = GO2_SPEC.joint_pos_upper[7] + 0.5
    assert (
        _ok(guards, joint_pos=q)
        == "joint_position: RR_thigh_joint at 5.038 rad, outside [-0.5236, 4.5379] ± 0.1"
    )
    dq = np.zeros(12)
    dq[4] = 30.1  # thigh limit 30.1 rad/s: at the limit is fine, beyond is not
    assert _ok(guards, joint_vel=dq) is None
    dq[4] = 30.2
    assert _ok(guards, joint_vel=dq) == "joint_velocity: FL_thigh_joint at 30.20 rad/s, limit 30.10"
    for name, change in (
        ("joint_pos", {"joint_pos": np.full(12, np.nan)}),
        ("joint_vel", {"joint_vel": np.full(12, -np.inf)}),
        ("base_quat", {"quat": np.array([np.nan, 0, 0, 1.0])}),
        ("gyro", {"gyro": np.array([0, 0, np.nan])}),
    ):
        assert _ok(guards, **change) == f"non_finite_state: {name} has NaN/Inf"


def test_joint_position_guard_allows_exactly_the_margin_on_both_sides(guards: Guards) -> None:
    lower, upper = np.asarray(GO2_SPEC.joint_pos_lower), np.asarray(GO2_SPEC.joint_pos_upper)
    for j in range(12):
        for edge, step in ((lower[j] - 0.1, -1e-9), (upper[j] + 0.1, 1e-9)):
            q = GO2_SPEC.default_pos_array.copy()
            q[j] = edge
            assert _ok(guards, joint_pos=q) is None
            q[j] = edge + step
            assert _ok(guards, joint_pos=q).startswith(f"joint_position: {GO2_SPEC.joint_names[j]}")


@pytest.mark.parametrize("deg", [0, 30, 44.9, 45.1, 60, 90, 135, 180])
@pytest.mark.parametrize("axis", [(1, 0, 0), (0, 1, 0), (0.6, 0.8, 0)])
def test_tilt_guard_measures_the_angle_of_the_up_axis(guards: Guards, deg: float, axis: tuple) -> None:
    """Any quaternion, any length (a huge or tiny but finite one included), with a yaw on top."""
    half = np.deg2rad(deg) / 2
    tilt = np.array([np.cos(half), *(np.sin(half) * np.asarray(axis, dtype=float))])
    yaw = np.array([np.cos(0.6), 0.0, 0.0, np.sin(0.6)])
    w1, x1, y1, z1 = yaw
    w2, x2, y2, z2 = tilt  # yaw * tilt: the tilt in the body frame, then a heading
    quat = np.array(
        [
            w1 * w2 - x1 * x2 - y1 * y2 - z1 * z2,
            w1 * x2 + x1 * w2 + y1 * z2 - z1 * y2,
            w1 * y2 - x1 * z2 + y1 * w2 + z1 * x2,
            w1 * z2 + x1 * y2 - y1 * x2 + z1 * w2,
        ]
    )
    for length in (1.0, 1e-3, 7.0, 1e200, 1.5e308 / 2):
        got = _ok(guards, quat=quat * length)
        if deg <= 45:
            assert got is None, (deg, length)
        else:
            assert got == f"base_tilt: {deg:.1f} deg from upright (limit 45)", (deg, length)
    # The sign of a quaternion does not change the rotation.
    assert _ok(guards, quat=-quat) == _ok(guards, quat=quat)


def test_tilt_guard_refuses_a_quaternion_of_zero_length(guards: Guards) -> None:
    for quat in ([0, 0, 0, 0], [1e-7, 0, 0, 0], [0, 0, 4e-7, 4e-7], [5e-324, 0, 0, 0], [1e-6, 0, 0, 0]):
        assert _ok(guards, quat=np.array(quat, dtype=float)) == "non_finite_state: base_quat has zero norm"
    # Just above the threshold, and along each axis alone, a quaternion is judged by its direction:
    # every component counts in its length and in its scale.
    for scale in (2e-6, 1.0):
        assert _ok(guards, quat=np.array([scale, 0, 0, 0])) is None  # upright
        assert _ok(guards, quat=np.array([0, scale, 0, 0])) == "base_tilt: 180.0 deg from upright (limit 45)"
        assert _ok(guards, quat=np.array([0, 0, scale, 0])) == "base_tilt: 180.0 deg from upright (limit 45)"
        assert _ok(guards, quat=np.array([0, 0, 0, scale])) is None  # a half turn of yaw: upright


def test_tilt_guard_allows_exactly_its_limit() -> None:
    upright, upside_down = np.array([1.0, 0, 0, 0]), np.array([0, 1.0, 0, 0])
    q, dq, gyro = GO2_SPEC.default_pos_array, np.zeros(12), np.zeros(3)
    # cos(0) = 1 and cos(180 deg) = -1 exactly: the tilt at the limit passes, as every guard's limit does.
    assert Guards(GO2_SPEC, GuardConfig(max_tilt_deg=0)).state(q, dq, upright, gyro) is None
    assert Guards(GO2_SPEC, GuardConfig(max_tilt_deg=180)).state(q, dq, upside_down, gyro) is None
    assert Guards(GO2_SPEC, GuardConfig(max_tilt_deg=179.9)).state(q, dq, upside_down, gyro) == (
        "base_tilt: 180.0 deg from upright (limit 180)"
    )


def test_stale_message_gives_the_limit_in_milliseconds() -> None:
    g = Guards(GO2_SPEC, GuardConfig(stale_state_s=1.5))
    assert g.stale(10.0, 8.0) == "stale_state: no fresh state for 2000.0 ms (limit 1500 ms)"


def test_stale_and_action_guards_at_their_exact_limits() -> None:
    g = Guards(GO2_SPEC, GuardConfig(stale_state_s=0.25, action_limit_multiple=3.0))
    assert g.stale(1.0, 0.75) is None  # exactly the limit: still fresh
    assert g.stale(1.0, 0.7) == "stale_state: no fresh state for 300.0 ms (limit 250 ms)"
    assert g.stale(1.0, None) == "stale_state: no state received yet"
    g.set_action_limit(0.5)
    np.testing.assert_array_equal(g.action_limit, np.full(12, 0.5))
    act = np.zeros(12)
    act[5] = -1.5  # exactly 3 x 0.5
    assert g.action(act) is None
    act[5] = -1.5001
    assert g.action(act) == "action_limit: FL_calf_joint action -1.5 beyond 3 x 0.5"
    act[5] = np.inf
    assert g.action(act) == "non_finite_action: NaN/Inf in the policy output"
    assert g.observation(np.zeros(48)) is None
    assert g.observation(np.array([0.0, np.nan])) == "non_finite_observation: NaN/Inf in the policy input"


def test_action_limit_without_a_clip_reaches_the_farther_range_edge() -> None:
    g = Guards(GO2_SPEC, GuardConfig(joint_vel_factor=0.5))
    default, scale = GO2_SPEC.default_pos_array, GO2_SPEC.action_scale_array
    lower, upper = np.asarray(GO2_SPEC.joint_pos_lower), np.asarray(GO2_SPEC.joint_pos_upper)
    expected = np.maximum(upper - default, default - lower) / scale
    np.testing.assert_allclose(g.action_limit, expected, rtol=1e-15)
    # calf: the default -1.5 sits nearer the upper edge -0.84, so the lower edge -2.72 sets the limit
    assert g.action_limit[2] == pytest.approx((-1.5 + 2.7227) / scale[2])
    # joint_vel_factor scales the velocity limit the guard allows.
    dq = np.zeros(12)
    dq[0] = 0.5 * GO2_SPEC.velocity_limits[0] * 1.01
    assert g.state(default, dq, np.array([1.0, 0, 0, 0]), np.zeros(3)).startswith("joint_velocity")
    dq[0] = 0.5 * GO2_SPEC.velocity_limits[0] * 0.99
    assert g.state(default, dq, np.array([1.0, 0, 0, 0]), np.zeros(3)) is None
