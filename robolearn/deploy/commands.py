"""Motor commands and the limit checks every command passes before it leaves the runtime.

A command is (q*, kp, kd) per joint in the RobotSpec's motor order; robolearn never sends a velocity
target or a feedforward torque (both are zero on the wire). The motor then applies
tau = kp (q* - q) - kd dq, the law of robolearn.robots.actuators.pd_torque.

CommandLimiter enforces, with the newest measured state:
- joint targets inside the joint range;
- kp and kd at most the spec's (never negative, never NaN);
- implied torque |kp (q* - q) - kd dq| within the spec's torque limit: q* is moved toward q, and
  where that cannot help (the joint is already outside its range) kp is lowered; kd is lowered when
  kd |dq| alone would exceed the limit.
A joint whose measured position or velocity is not finite cannot have its torque bounded, so its kp
is set to zero (kd, which only ever resists motion, is kept). check_command() re-verifies all of it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import IntEnum

import numpy as np

from robolearn.robots.spec import RobotSpec


class CommandKind(IntEnum):
    """What a command does: passive (zero torque), PD toward targets, or damping only."""

    PASSIVE = 0
    PD = 1
    DAMP = 2


@dataclass(frozen=True)
class MotorCommand:
    """Per-joint targets and gains in motor order, ready for the wire."""

    kind: CommandKind
    q: np.ndarray
    kp: np.ndarray
    kd: np.ndarray
    limited: int = 0  # joints whose request the limiter changed


# Relative slack for float32 rounding on the wire when re-checking the torque bound.
_TORQUE_RTOL = 1e-4


class CommandLimiter:
    """Builds passive, damping and PD commands that satisfy the spec's limits for the current state."""

    def __init__(self, spec: RobotSpec, damp_kd_fraction: float = 1.0) -> None:
        self.spec = spec
        self.lower = np.asarray(spec.joint_pos_lower, dtype=np.float64)
        self.upper = np.asarray(spec.joint_pos_upper, dtype=np.float64)
        self.kp_max = spec.kp_array
        self.kd_max = spec.kd_array
        self.tau_max = spec.torque_limit_array
        # Damping gain for DAMP: a fraction of the spec's kd, never above it.
        self.damp_kd = self.kd_max * float(np.clip(damp_kd_fraction, 0.0, 1.0))
        self._zeros = np.zeros(spec.num_joints)

    def _hold_position(self, joint_pos: np.ndarray) -> np.ndarray:
        # The q* of a zero-kp command does not move the motor, but must still lie in range: use the
        # measured position (or the default pose where it is unknown), clipped into the range.
        q = np.where(np.isfinite(joint_pos), joint_pos, self.spec.default_pos_array)
        return np.clip(q, self.lower, self.upper)

    def passive(self, joint_pos: np.ndarray) -> MotorCommand:
        """Zero torque: kp = kd = 0."""
        return MotorCommand(
            CommandKind.PASSIVE, self._hold_position(joint_pos), self._zeros.copy(), self._zeros.copy()
        )

    def damp(self, joint_pos: np.ndarray, joint_vel: np.ndarray) -> MotorCommand:
        """Damping only: kp = 0, kd = damp_kd, lowered where kd |dq| would pass the torque limit."""
        kd = self._bounded_kd(self.damp_kd, joint_vel)
        return MotorCommand(CommandKind.DAMP, self._hold_position(joint_pos), self._zeros.copy(), kd)

    def _bounded_kd(self, kd: np.ndarray, joint_vel: np.ndarray) -> np.ndarray:
        speed = np.abs(np.where(np.isfinite(joint_vel), joint_vel, 0.0))
        with np.errstate(divide="ignore", over="ignore"):  # at rest (or nearly): no cap, an infinite one
            cap = self.tau_max / speed
        return np.minimum(kd, cap)

    def pd(
        self,
        target: np.ndarray,
        joint_pos: np.ndarray,
        joint_vel: np.ndarray,
        kp: np.ndarray | None = None,
        kd: np.ndarray | None = None,
    ) -> MotorCommand:
        """A PD command toward target (spec gains by default), limited as the module docstring says."""
        want_q = np.asarray(target, dtype=np.float64)
        want_kp = self.kp_max if kp is None else np.asarray(kp, dtype=np.float64)
        want_kd = self.kd_max if kd is None else np.asarray(kd, dtype=np.float64)
        q_meas = np.asarray(joint_pos, dtype=np.float64)
        dq_meas = np.asarray(joint_vel, dtype=np.float64)
        known = np.isfinite(q_meas) & np.isfinite(dq_meas)

        kp_out = np.clip(np.nan_to_num(want_kp, nan=0.0, posinf=0.0), 0.0, self.kp_max)
        kd_out = np.clip(np.nan_to_num(want_kd, nan=0.0, posinf=0.0), 0.0, self.kd_max)
        kd_out = self._bounded_kd(kd_out, dq_meas)
        q_safe = np.where(known, q_meas, self.spec.default_pos_array)
        q_out = np.where(np.isfinite(want_q), want_q, q_safe)
        q_out = np.clip(q_out, self.lower, self.upper)

        # Torque window for q*: kp (q* - q) - kd dq in [-tau, tau]. It contains q itself (since
        # |kd dq| <= tau after _bounded_kd), so clipping into it only ever moves q* toward q.
        damping = kd_out * np.where(known, dq_meas, 0.0)
        # A tiny kp makes the window infinite (overflow), a zero kp undefined (masked by `stiff`).
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            lo = q_safe + (damping - self.tau_max) / kp_out
            hi = q_safe + (damping + self.tau_max) / kp_out
        stiff = kp_out > 0
        q_out = np.where(
            stiff, np.clip(q_out, np.where(stiff, lo, -np.inf), np.where(stiff, hi, np.inf)), q_out
        )
        q_out = np.clip(q_out, self.lower, self.upper)
        # Outside its range a joint may still be beyond the window after the range clip: lower kp there.
        err = q_out - q_safe
        with np.errstate(over="ignore"):  # a joint measured absurdly far away: inf torque, lowered below
            torque = kp_out * err - damping
        over = np.abs(torque) > self.tau_max
        if np.any(over):
            room = np.where(err > 0, self.tau_max + damping, self.tau_max - damping)
            with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
                kp_cap = np.where(np.abs(err) > 0, np.maximum(room, 0.0) / np.abs(err), kp_out)
            kp_out = np.where(over, np.minimum(kp_out, kp_cap), kp_out)
        kp_out = np.where(known, kp_out, 0.0)

        changed = (
            ~np.isclose(q_out, want_q, rtol=0, atol=1e-12)
            | ~np.isclose(kp_out, want_kp, rtol=0, atol=1e-12)
            | ~np.isclose(kd_out, want_kd, rtol=0, atol=1e-12)
        )
        return MotorCommand(CommandKind.PD, q_out, kp_out, kd_out, limited=int(np.count_nonzero(changed)))


def check_command(
    spec: RobotSpec,
    q: np.ndarray,
    kp: np.ndarray,
    kd: np.ndarray,
    joint_pos: np.ndarray | None = None,
    joint_vel: np.ndarray | None = None,
    dq: np.ndarray | None = None,
    tau: np.ndarray | None = None,
    torque_slack: float = 0.0,
) -> list[str]:
    """Every limit a command breaks, as readable lines; [] when it passes (tests run it on the wire).

    With the measured state given, the implied torque is checked too (torque_slack in N·m allows for a
    state newer than the one the command was computed from).
    """
    problems: list[str] = []
    names = spec.joint_names
    lower = np.asarray(spec.joint_pos_lower)
    upper = np.asarray(spec.joint_pos_upper)
    q, kp, kd = (np.asarray(a, dtype=np.float64) for a in (q, kp, kd))
    # float32 on the wire: allow one float32 rounding step at the range edges and gain limits.
    eps32 = np.float64(np.finfo(np.float32).eps)
    for i, name in enumerate(names):
        if not np.isfinite(q[i]) or not (
            lower[i] - eps32 * abs(lower[i]) <= q[i] <= upper[i] + eps32 * abs(upper[i])
        ):
            problems.append(f"{name}: q*={q[i]:.6g} outside [{lower[i]}, {upper[i]}]")
        if not np.isfinite(kp[i]) or not 0.0 <= kp[i] <= spec.kp[i] * (1 + eps32):
            problems.append(f"{name}: kp={kp[i]:.6g} outside [0, {spec.kp[i]:.6g}]")
        if not np.isfinite(kd[i]) or not 0.0 <= kd[i] <= spec.kd[i] * (1 + eps32):
            problems.append(f"{name}: kd={kd[i]:.6g} outside [0, {spec.kd[i]:.6g}]")
    if dq is not None and np.any(np.asarray(dq) != 0):
        problems.append("velocity target dq is not zero")
    if tau is not None and np.any(np.asarray(tau) != 0):
        problems.append("feedforward torque tau is not zero")
    if joint_pos is not None and joint_vel is not None:
        qm = np.asarray(joint_pos, dtype=np.float64)
        dqm = np.asarray(joint_vel, dtype=np.float64)
        known = np.isfinite(qm) & np.isfinite(dqm)
        with np.errstate(invalid="ignore", over="ignore"):  # unknown joints masked; overflow: inf, flagged
            torque = np.where(known, kp * (q - qm) - kd * dqm, 0.0)
        limit = spec.torque_limit_array * (1 + _TORQUE_RTOL) + torque_slack
        for j in np.flatnonzero(np.abs(torque) > limit):
            problems.append(f"{names[j]}: implied torque {torque[j]:.4g} beyond ±{spec.torque_limits[j]}")
        for j in np.flatnonzero(~known & (kp > 0)):
            problems.append(f"{names[j]}: kp={kp[j]:.4g} with an unknown joint state")
    return problems
