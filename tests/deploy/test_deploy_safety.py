"""The safety state machine, exhaustively, and each guard."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

from robolearn.deploy.safety import Event, GuardConfig, Guards, SafetyMachine, SafetyState
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


def _machine_in(state: SafetyState) -> SafetyMachine:
    m = SafetyMachine()
    m.state = state
    return m


@pytest.mark.parametrize("state,event", list(itertools.product(SafetyState, Event)), ids=lambda x: x.name)
def test_every_transition(state: SafetyState, event: Event) -> None:
    m = _machine_in(state)
    expected = EXPECTED[state][event]
    accepted = m.handle(event, 1.0, "test")
    if expected is None:
        assert not accepted and m.state is state and m.history == []
    else:
        assert accepted and m.state is expected


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
