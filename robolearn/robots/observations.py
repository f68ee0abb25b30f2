"""Pure observation and action functions over a RobotState, shared by training envs and deploy.

No MuJoCo here: the deploy runtime feeds these the robot's LowState, the envs feed them the
simulator's, and a policy sees the same numbers either way. Observations are named terms, each
scaled and optionally noised, concatenated on the last axis; observation_layout() lists them
(name, start, size, scale, noise) for the policy contract.

Scales and noise of LOCOMOTION_TERMS are those of legged_gym / unitree_rl_gym (obs_scales and
noise_scales in legged_robot_config.py, cmd_scale in deploy/deploy_mujoco/configs/g1.yaml).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike

from robolearn.errors import UserError, close_matches
from robolearn.robots.rotations import quat_conjugate, quat_multiply, quat_to_matrix
from robolearn.robots.spec import RobotSpec
from robolearn.robots.state import MotionFrame, RobotState

_GRAVITY_DIRECTION = np.array([0.0, 0.0, -1.0])


def quat_rotate_inverse(quat_wxyz: ArrayLike, vec: ArrayLike) -> np.ndarray:
    """Express a world-frame vector in the body frame of a (batch of) w-x-y-z quaternion(s)."""
    q = np.asarray(quat_wxyz, dtype=np.float64)
    # Normalise so a slightly drifted IMU quaternion still gives a unit gravity vector.
    q = q / np.maximum(np.linalg.norm(q, axis=-1, keepdims=True), 1e-12)
    w = q[..., :1]
    u = q[..., 1:]
    v = np.broadcast_to(np.asarray(vec, dtype=np.float64), u.shape)
    uv = _cross(u, v)
    return v - 2.0 * w * uv + 2.0 * _cross(u, uv)


def _cross(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    # Written out: np.cross's axis handling costs ten times the arithmetic on the small batches that
    # training envs and the deploy loop pass every step.
    ax, ay, az = a[..., 0], a[..., 1], a[..., 2]
    bx, by, bz = b[..., 0], b[..., 1], b[..., 2]
    return np.stack((ay * bz - az * by, az * bx - ax * bz, ax * by - ay * bx), axis=-1)


def base_ang_vel(state: RobotState, spec: RobotSpec) -> np.ndarray:
    """IMU angular velocity in the body frame (rad/s)."""
    return np.asarray(state.gyro, dtype=np.float64)


def projected_gravity(state: RobotState, spec: RobotSpec) -> np.ndarray:
    """Unit gravity direction in the body frame: (0, 0, -1) when level."""
    return quat_rotate_inverse(state.base_quat, _GRAVITY_DIRECTION)


def commands(state: RobotState, spec: RobotSpec) -> np.ndarray:
    """Velocity command: vx, vy (m/s), yaw rate (rad/s)."""
    return np.asarray(state.command, dtype=np.float64)


def joint_pos_rel(state: RobotState, spec: RobotSpec) -> np.ndarray:
    """Joint positions minus the default pose (rad), in motor order."""
    return np.asarray(state.joint_pos, dtype=np.float64) - spec.default_pos_array


def joint_vel(state: RobotState, spec: RobotSpec) -> np.ndarray:
    """Joint velocities (rad/s), in motor order."""
    return np.asarray(state.joint_vel, dtype=np.float64)


def last_action(state: RobotState, spec: RobotSpec) -> np.ndarray:
    """The previous policy output, unscaled."""
    return np.asarray(state.last_action, dtype=np.float64)


def clock_phase(steps: ArrayLike, control_dt: float, period_s: float) -> np.ndarray:
    """The gait clock's phase in [0, 1) after `steps` control steps: steps * control_dt / period_s,
    modulo 1. The training env counts steps since the episode began, the deploy runtime policy steps
    since POLICY began: one function, so the two clocks agree to the bit."""
    return np.mod(np.asarray(steps, dtype=np.float64) * control_dt / period_s, 1.0)


def base_lin_vel(state: RobotState, spec: RobotSpec) -> np.ndarray:
    """Base linear velocity in the body frame (m/s); only a simulator knows it (legged_gym's Go2 observes it)."""
    if state.base_lin_vel is None:
        raise UserError(
            "the base_lin_vel observation term needs RobotState.base_lin_vel; no real robot's LowState"
            " reports it, only a simulator (the in-process MuJoCo deploy backend, sim2sim, the training env)"
        )
    return np.asarray(state.base_lin_vel, dtype=np.float64)


def gait_clock(state: RobotState, spec: RobotSpec) -> np.ndarray:
    """sin and cos of 2*pi*gait_phase: where the gait cycle is (unitree_rl_gym's G1 phase observation)."""
    if state.gait_phase is None:
        raise UserError(
            "the gait_clock observation term needs RobotState.gait_phase; the env or the deploy runtime"
            " sets it when the policy contract has a gait period"
        )
    angle = 2.0 * np.pi * np.asarray(state.gait_phase, dtype=np.float64)
    return np.concatenate((np.sin(angle), np.cos(angle)), axis=-1)


def _motion(state: RobotState, term: str) -> MotionFrame:
    if state.motion is None:
        raise UserError(
            f"the {term} observation term needs RobotState.motion (the reference being tracked); the tracking"
            " env sets it, and the deploy runtime from the artifact's motion file"
        )
    return state.motion


def motion_joint_pos(state: RobotState, spec: RobotSpec) -> np.ndarray:
    """The reference's joint positions relative to the default pose (rad)."""
    return np.asarray(_motion(state, "motion_joint_pos").joint_pos, dtype=np.float64) - spec.default_pos_array


def motion_joint_vel(state: RobotState, spec: RobotSpec) -> np.ndarray:
    """The reference's joint velocities (rad/s)."""
    return np.asarray(_motion(state, "motion_joint_vel").joint_vel, dtype=np.float64)


def motion_anchor_ori(state: RobotState, spec: RobotSpec) -> np.ndarray:
    """The reference anchor's orientation in the robot's base frame: the first two columns of the
    rotation conj(base_quat) * anchor_quat, row by row (6 values; BeyondMimic's motion_anchor_ori_b)."""
    anchor = np.asarray(_motion(state, "motion_anchor_ori").anchor_quat, dtype=np.float64)
    relative = quat_multiply(quat_conjugate(np.asarray(state.base_quat, dtype=np.float64)), anchor)
    cols = quat_to_matrix(relative)[..., :, :2]
    return cols.reshape((*cols.shape[:-2], 6))


TermFunction = Callable[[RobotState, RobotSpec], np.ndarray]

# name -> (function, size for a spec)
TERMS: dict[str, tuple[TermFunction, Callable[[RobotSpec], int]]] = {
    "base_lin_vel": (base_lin_vel, lambda spec: 3),
    "base_ang_vel": (base_ang_vel, lambda spec: 3),
    "projected_gravity": (projected_gravity, lambda spec: 3),
    "commands": (commands, lambda spec: 3),
    "joint_pos_rel": (joint_pos_rel, lambda spec: spec.num_joints),
    "joint_vel": (joint_vel, lambda spec: spec.num_joints),
    "last_action": (last_action, lambda spec: spec.num_joints),
    "gait_clock": (gait_clock, lambda spec: 2),
    "motion_joint_pos": (motion_joint_pos, lambda spec: spec.num_joints),
    "motion_joint_vel": (motion_joint_vel, lambda spec: spec.num_joints),
    "motion_anchor_ori": (motion_anchor_ori, lambda spec: 6),
}
# The terms that read RobotState.motion: a contract with any of them needs the artifact's motion file.
MOTION_TERMS = ("motion_joint_pos", "motion_joint_vel", "motion_anchor_ori")


@dataclass(frozen=True)
class ObsTerm:
    """One observation term: which function, its scale, uniform noise half-width and optional clip.

    The observed value is scale * clip(raw + U(-noise, noise), lo, hi); scale is one number or one per
    element, clip a [lo, hi] pair in physical units or None (Isaac Lab's order: noise, clip, scale).
    """

    name: str
    scale: float | tuple[float, ...] = 1.0
    noise: float = 0.0
    clip: tuple[float, float] | None = None

    def __post_init__(self) -> None:
        if self.name not in TERMS:
            raise UserError(f"unknown observation term '{self.name}'{close_matches(self.name, TERMS)}")
        if self.noise < 0:
            raise UserError(f"observation term '{self.name}' has negative noise {self.noise}")
        if self.clip is not None:
            lo, hi = self.clip
            if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
                raise UserError(
                    f"observation term '{self.name}' has clip [{lo}, {hi}]; give finite [lo, hi] with lo < hi, or none"
                )

    def size(self, spec: RobotSpec) -> int:
        """Number of values this term contributes for the spec."""
        return TERMS[self.name][1](spec)

    def scale_array(self, spec: RobotSpec) -> np.ndarray:
        """Per-element scale, checked against the term's size."""
        size = self.size(spec)
        if not isinstance(self.scale, tuple):
            return np.full(size, float(self.scale))
        if len(self.scale) != size:
            raise UserError(
                f"observation term '{self.name}' has {len(self.scale)} scales but {size} values for {spec.name}"
            )
        return np.asarray(self.scale, dtype=np.float64)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (name, scale, noise, and clip when set)."""
        scale: Any = list(self.scale) if isinstance(self.scale, tuple) else self.scale
        out: dict[str, Any] = {"name": self.name, "scale": scale, "noise": self.noise}
        if self.clip is not None:
            out["clip"] = list(self.clip)
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ObsTerm:
        """Inverse of to_dict; also accepts an ObsLayoutEntry dict (its start and size are ignored)."""
        if "name" not in data:
            raise UserError("observation term entry has no 'name'")
        scale = data.get("scale", 1.0)
        clip = data.get("clip")
        if clip is not None and (not isinstance(clip, list | tuple) or len(clip) != 2):
            raise UserError(f"observation term '{data['name']}' has clip {clip!r}; give [lo, hi] or null")
        return cls(
            name=str(data["name"]),
            scale=tuple(float(s) for s in scale) if isinstance(scale, list | tuple) else float(scale),
            noise=float(data.get("noise", 0.0)),
            clip=None if clip is None else (float(clip[0]), float(clip[1])),
        )


# The 45-value proprioceptive locomotion observation of unitree_rl_gym (its G1 policy adds a
# 2-value gait phase; Go2's adds base linear velocity, which the real robot cannot measure: the
# base_lin_vel term, which only a simulator can fill).
LOCOMOTION_TERMS: tuple[ObsTerm, ...] = (
    ObsTerm("base_ang_vel", scale=0.25, noise=0.2),
    ObsTerm("projected_gravity", scale=1.0, noise=0.05),
    ObsTerm("commands", scale=(2.0, 2.0, 0.25)),
    ObsTerm("joint_pos_rel", scale=1.0, noise=0.01),
    ObsTerm("joint_vel", scale=0.05, noise=1.5),
    ObsTerm("last_action", scale=1.0),
)


@dataclass(frozen=True)
class ObsLayoutEntry:
    """Where a term sits in the observation vector, for contract.json."""

    name: str
    start: int
    size: int
    scale: tuple[float, ...]
    noise: float
    clip: tuple[float, float] | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (clip only when the term has one, so older contracts stay byte-identical)."""
        out: dict[str, Any] = {
            "name": self.name,
            "start": self.start,
            "size": self.size,
            "scale": list(self.scale),
            "noise": self.noise,
        }
        if self.clip is not None:
            out["clip"] = list(self.clip)
        return out


def observation_layout(
    spec: RobotSpec, terms: Sequence[ObsTerm] = LOCOMOTION_TERMS
) -> tuple[ObsLayoutEntry, ...]:
    """The terms' positions, sizes, per-element scales and noise, in observation order."""
    names = [t.name for t in terms]
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise UserError(f"observation term '{dup}' is listed twice")
    entries = []
    start = 0
    for term in terms:
        size = term.size(spec)
        entries.append(
            ObsLayoutEntry(
                term.name, start, size, tuple(term.scale_array(spec).tolist()), term.noise, term.clip
            )
        )
        start += size
    return tuple(entries)


def observation_size(spec: RobotSpec, terms: Sequence[ObsTerm] = LOCOMOTION_TERMS) -> int:
    """Length of the observation vector."""
    return sum(t.size(spec) for t in terms)


def build_observation(
    state: RobotState,
    spec: RobotSpec,
    terms: Sequence[ObsTerm] = LOCOMOTION_TERMS,
    rng: np.random.Generator | None = None,
    clip: float | None = None,
) -> np.ndarray:
    """Concatenate the scaled (and, with rng, noised) terms on the last axis; float32, batched like state.

    Per term: raw value, + noise, clipped to the term's clip, times its scale (Isaac Lab's
    ObservationManager order); then the whole vector clipped to `clip`. Noise is drawn only when rng
    is given, from that generator, so a seed reproduces it exactly.
    """
    parts = []
    for term in terms:
        raw = TERMS[term.name][0](state, spec)
        if rng is not None and term.noise > 0:
            raw = raw + rng.uniform(-term.noise, term.noise, size=raw.shape)
        if term.clip is not None:
            raw = np.clip(raw, term.clip[0], term.clip[1])
        parts.append(raw * term.scale_array(spec))
    obs = np.concatenate(parts, axis=-1)
    if clip is not None:
        obs = np.clip(obs, -clip, clip)
    return obs.astype(np.float32)


def action_to_joint_targets(action: ArrayLike, spec: RobotSpec, clip: float | None = None) -> np.ndarray:
    """PD position targets in motor order: default_joint_pos + action_scale * action (action clipped first)."""
    a = np.asarray(action, dtype=np.float64)
    if a.shape[-1:] != (spec.num_joints,):
        raise UserError(f"action must end in size {spec.num_joints} for {spec.name}, got shape {a.shape}")
    if clip is not None:
        a = np.clip(a, -clip, clip)
    return spec.default_pos_array + spec.action_scale_array * a


def joint_targets_to_action(target_pos: ArrayLike, spec: RobotSpec) -> np.ndarray:
    """The action that action_to_joint_targets maps to these targets (for labelling demonstrations)."""
    return (np.asarray(target_pos, dtype=np.float64) - spec.default_pos_array) / spec.action_scale_array
