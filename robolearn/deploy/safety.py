"""The safety state machine and the guards that trip it.

States:
    PASSIVE  zero torque (kp = kd = 0); where the runtime starts.
    RAMP     PD toward the default pose, interpolated from the pose at entry over ramp_s.
    HOLD     PD at the default pose.
    POLICY   PD toward the policy's targets.
    DAMP     damping only (kp = 0, kd > 0): the robot sinks slowly instead of falling limp.
    ESTOP    damping, latched: nothing leaves it but ending the process.

Every (state, event) pair is in TRANSITIONS or is refused; tests/deploy/test_safety.py walks all of
them. Guards are armed in RAMP, HOLD and POLICY (the states that drive the motors); a trip is a FAULT
event, which moves those states to DAMP. PASSIVE, DAMP and ESTOP already drive nothing, so a FAULT
there is recorded and the state kept.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from enum import Enum

import numpy as np

from robolearn.robots.spec import RobotSpec


class SafetyState(Enum):
    """Where the runtime is; the value is the code written to logs."""

    PASSIVE = 0
    RAMP = 1
    HOLD = 2
    POLICY = 3
    DAMP = 4
    ESTOP = 5


class Event(Enum):
    """What can move the state machine: operator requests, the ramp finishing, and guard trips."""

    START = "start"  # ramp to the default pose
    RAMP_DONE = "ramp_done"  # internal: the ramp reached the default pose
    POLICY = "policy"  # hand the motors to the policy
    STAND = "stand"  # leave the policy, ramp back to the default pose
    DAMP = "damp"  # damping
    PASSIVE = "passive"  # zero torque (from DAMP only)
    ESTOP = "estop"  # latched damping
    FAULT = "fault"  # a guard tripped


ARMED = frozenset({SafetyState.RAMP, SafetyState.HOLD, SafetyState.POLICY})
OPERATOR_EVENTS = frozenset({Event.START, Event.POLICY, Event.STAND, Event.DAMP, Event.PASSIVE, Event.ESTOP})

S, E = SafetyState, Event
TRANSITIONS: dict[tuple[SafetyState, Event], SafetyState] = {
    (S.PASSIVE, E.START): S.RAMP,
    (S.DAMP, E.START): S.RAMP,
    (S.RAMP, E.RAMP_DONE): S.HOLD,
    (S.HOLD, E.POLICY): S.POLICY,
    (S.POLICY, E.STAND): S.RAMP,
    (S.PASSIVE, E.DAMP): S.DAMP,
    (S.RAMP, E.DAMP): S.DAMP,
    (S.HOLD, E.DAMP): S.DAMP,
    (S.POLICY, E.DAMP): S.DAMP,
    (S.DAMP, E.PASSIVE): S.PASSIVE,
    (S.RAMP, E.FAULT): S.DAMP,
    (S.HOLD, E.FAULT): S.DAMP,
    (S.POLICY, E.FAULT): S.DAMP,
    **{(state, E.ESTOP): S.ESTOP for state in SafetyState},
}
# Events accepted without a state change (recorded, nothing to do).
NO_OPS: frozenset[tuple[SafetyState, Event]] = frozenset(
    {(S.DAMP, E.DAMP), (S.PASSIVE, E.FAULT), (S.DAMP, E.FAULT), (S.ESTOP, E.FAULT)}
)
del S, E


@dataclass(frozen=True)
class Transition:
    """One accepted event: when, from where to where, and why."""

    time: float
    event: Event
    source: SafetyState
    target: SafetyState
    reason: str


class SafetyMachine:
    """Holds the state and applies TRANSITIONS; knows nothing about motors or time sources."""

    def __init__(self, now: float = 0.0) -> None:
        self.state = SafetyState.PASSIVE
        self.entered_at = now
        self.history: list[Transition] = []

    def handle(self, event: Event, now: float, reason: str = "") -> bool:
        """Apply an event; True if it was accepted (a transition or a recorded no-op), False if refused."""
        target = TRANSITIONS.get((self.state, event))
        if target is None:
            return (self.state, event) in NO_OPS
        self.history.append(Transition(now, event, self.state, target, reason))
        self.state = target
        self.entered_at = now
        return True

    @property
    def armed(self) -> bool:
        """True in the states where guards are checked (RAMP, HOLD, POLICY)."""
        return self.state in ARMED


@dataclass
class GuardConfig:
    """Thresholds of the guards (configs/deploy/<robot>.yaml, safety:)."""

    stale_state_s: float = 0.05  # no fresh state for this long
    max_tilt_deg: float = 45.0  # base tilt from upright
    joint_pos_margin: float = 0.1  # rad beyond the joint range
    joint_vel_factor: float = 1.0  # times the spec's velocity limit
    action_limit_multiple: float = 2.0  # |action| beyond this multiple of its limit
    max_consecutive_overruns: int = 5  # late command (or policy) ticks in a row
    overrun_s: float | None = None  # a tick later than this is an overrun; None: one command period
    policy_timeout_periods: float = 3.0  # in POLICY, no new action for this many policy periods


@dataclass
class Guards:
    """Checks of the measured state and of the policy's actions against GuardConfig and the spec."""

    spec: RobotSpec
    config: GuardConfig
    action_limit: np.ndarray = field(init=False)

    def __post_init__(self) -> None:
        self._lower = np.asarray(self.spec.joint_pos_lower) - self.config.joint_pos_margin
        self._upper = np.asarray(self.spec.joint_pos_upper) + self.config.joint_pos_margin
        self._vel = np.asarray(self.spec.velocity_limits) * self.config.joint_vel_factor
        self._cos_tilt = math.cos(math.radians(self.config.max_tilt_deg))
        self.set_action_limit(None)

    def set_action_limit(self, clip: float | None) -> None:
        """Per-joint action limit: the contract's action clip, or the action that reaches the range edge."""
        if clip is not None:
            self.action_limit = np.full(self.spec.num_joints, float(clip))
        else:
            reach = np.maximum(
                np.abs(np.asarray(self.spec.joint_pos_lower) - self.spec.default_pos_array),
                np.abs(np.asarray(self.spec.joint_pos_upper) - self.spec.default_pos_array),
            )
            self.action_limit = reach / self.spec.action_scale_array

    def stale(self, now: float, last_state_time: float | None) -> str | None:
        """A reason if no fresh state arrived within stale_state_s."""
        if last_state_time is None:
            return "stale_state: no state received yet"
        age = now - last_state_time
        if age > self.config.stale_state_s:
            return f"stale_state: no fresh state for {age * 1e3:.1f} ms (limit {self.config.stale_state_s * 1e3:.0f} ms)"
        return None

    def state(
        self, joint_pos: np.ndarray, joint_vel: np.ndarray, quat: np.ndarray, gyro: np.ndarray
    ) -> str | None:
        """A reason if the state is non-finite, beyond joint position/velocity limits, or tilted too far."""
        for name, arr in (
            ("joint_pos", joint_pos),
            ("joint_vel", joint_vel),
            ("base_quat", quat),
            ("gyro", gyro),
        ):
            if not np.all(np.isfinite(arr)):
                return f"non_finite_state: {name} has NaN/Inf"
        below = np.flatnonzero(joint_pos < self._lower)
        above = np.flatnonzero(joint_pos > self._upper)
        if len(below) or len(above):
            i = int(below[0]) if len(below) else int(above[0])
            return (
                f"joint_position: {self.spec.joint_names[i]} at {joint_pos[i]:.3f} rad, outside"
                f" [{self.spec.joint_pos_lower[i]}, {self.spec.joint_pos_upper[i]}] ± {self.config.joint_pos_margin}"
            )
        fast = np.flatnonzero(np.abs(joint_vel) > self._vel)
        if len(fast):
            i = int(fast[0])
            return f"joint_velocity: {self.spec.joint_names[i]} at {joint_vel[i]:.2f} rad/s, limit {self._vel[i]:.2f}"
        w, x, y, z = (float(v) for v in quat)
        if math.hypot(w, x, y, z) <= 1e-6:
            return "non_finite_state: base_quat has zero norm"
        # Scaled by its largest component first: squares of a huge (finite) quaternion would overflow
        # to inf and make the tilt NaN.
        scale = max(abs(w), abs(x), abs(y), abs(z))
        w, x, y, z = w / scale, x / scale, y / scale, z / scale
        norm2 = w * w + x * x + y * y + z * z
        # cos(tilt) = z-component of the body's up axis in the world = 1 - 2 (x^2 + y^2) for a unit quaternion.
        cos_tilt = 1.0 - 2.0 * (x * x + y * y) / norm2
        if not cos_tilt >= self._cos_tilt:  # written so that a NaN trips the guard instead of passing it
            tilt = math.degrees(math.acos(max(-1.0, min(1.0, cos_tilt))))
            return f"base_tilt: {tilt:.1f} deg from upright (limit {self.config.max_tilt_deg:.0f})"
        return None

    def observation(self, obs: np.ndarray) -> str | None:
        """A reason if the observation is non-finite."""
        if not np.all(np.isfinite(obs)):
            return "non_finite_observation: NaN/Inf in the policy input"
        return None

    def action(self, action: np.ndarray) -> str | None:
        """A reason if the policy output is non-finite or beyond action_limit_multiple times its limit."""
        if not np.all(np.isfinite(action)):
            return "non_finite_action: NaN/Inf in the policy output"
        over = np.flatnonzero(np.abs(action) > self.config.action_limit_multiple * self.action_limit)
        if len(over):
            i = int(over[0])
            return (
                f"action_limit: {self.spec.joint_names[i]} action {action[i]:.3g} beyond"
                f" {self.config.action_limit_multiple:g} x {self.action_limit[i]:.3g}"
            )
        return None
