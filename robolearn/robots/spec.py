"""RobotSpec: the one definition of a robot that training, export and deploy all read.

Every per-joint tuple is in the hardware's motor order (the order of ``joint_names``), never in a
simulator's order; robolearn.robots.model maps it to MuJoCo indices.
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, NamedTuple

import numpy as np

from robolearn.errors import UserError, close_matches
from robolearn.robots.actuators import MotorModel

# Unitree's two DDS message families: unitree_go (Go2; its LowCmd carries 20 motor slots) and
# unitree_hg (G1; its LowCmd carries 35 motor slots).
MESSAGE_FAMILIES = ("unitree_go", "unitree_hg")

# unitree_hg LowState.mode_machine values (the G1's hardware revision) that each robot's motor slots
# and drives describe; the deploy runtime refuses to leave damping on any other. Sources: unitree_ros
# robots/g1_description/README.md (g1_23dof_rev_1_0: 4, g1_29dof_rev_1_0: 5). Unitree's 2024 material
# for the first 23-DoF G1 (mode_machine 1) puts the arm motors at slots 13-22, not 15-19 and 22-26.
# For the 29-DoF G1, 6 is the same robot with the waist locked (slots 13, 14 unusable) and 11-16 are
# later revisions with other hip gears or 5010 wrists: none of them is robolearn's g1_29dof.
# unitree_go LowState (Go2) carries no such field: there is nothing to check.
SUPPORTED_MODE_MACHINES: dict[str, tuple[int, ...]] = {"g1": (4,), "g1_29dof": (5,)}

# Fields holding one value per joint, in motor order.
PER_JOINT_FIELDS = (
    "motor_indices",
    "default_joint_pos",
    "kp",
    "kd",
    "armature",
    "torque_limits",
    "velocity_limits",
    "joint_pos_lower",
    "joint_pos_upper",
    "action_scale",
)


@dataclass(frozen=True)
class RobotSpec:
    """Joint order, motor indices, default pose, gains, limits and timing of one robot.

    Units: radians, rad/s, N·m, N·m/rad, N·m·s/rad, kg·m², seconds, metres, kilograms.
    """

    name: str
    joint_names: tuple[str, ...]
    motor_indices: tuple[int, ...]  # slot in the DDS LowCmd/LowState motor array
    num_motor_slots: int  # length of that array in the message family
    default_joint_pos: tuple[float, ...]
    kp: tuple[float, ...]
    kd: tuple[float, ...]
    armature: tuple[float, ...]  # reflected rotor inertia, also written into the MJCF
    torque_limits: tuple[float, ...]
    velocity_limits: tuple[float, ...]
    joint_pos_lower: tuple[float, ...]
    joint_pos_upper: tuple[float, ...]
    action_scale: tuple[float, ...]  # PD target = default_joint_pos + action_scale * action
    control_dt: float  # policy period
    physics_dt: float  # simulation step; the PD law runs at this rate
    message_family: str
    imu_body: str
    imu_site: str
    base_body: str
    foot_bodies: tuple[str, ...]
    foot_geoms: tuple[str, ...]
    base_height: float  # base-body height at the default pose with the feet on flat ground
    total_mass: float  # the manufacturer's published mass, with battery
    model_file: str  # our MJCF scene, relative to envs/

    def __post_init__(self) -> None:
        _validate(self)

    @property
    def num_joints(self) -> int:
        """Number of actuated joints."""
        return len(self.joint_names)

    @property
    def decimation(self) -> int:
        """Physics steps per policy step."""
        return round(self.control_dt / self.physics_dt)

    # Read-only numpy views, computed once: observation and PD code runs every step.
    @cached_property
    def default_pos_array(self) -> np.ndarray:
        """Default joint positions as a read-only float64 array."""
        return _frozen_array(self.default_joint_pos)

    @cached_property
    def action_scale_array(self) -> np.ndarray:
        """Action scales as a read-only float64 array."""
        return _frozen_array(self.action_scale)

    @cached_property
    def kp_array(self) -> np.ndarray:
        """Proportional gains as a read-only float64 array."""
        return _frozen_array(self.kp)

    @cached_property
    def kd_array(self) -> np.ndarray:
        """Derivative gains as a read-only float64 array."""
        return _frozen_array(self.kd)

    @cached_property
    def torque_limit_array(self) -> np.ndarray:
        """Symmetric torque limits as a read-only float64 array."""
        return _frozen_array(self.torque_limits)

    def joint_index(self, names: Sequence[str]) -> np.ndarray:
        """Motor-order indices of the named joints, in the given order; UserError naming an unknown or repeated one."""
        where = {name: i for i, name in enumerate(self.joint_names)}
        seen: set[str] = set()
        out = []
        for name in names:
            if name not in where:
                raise UserError(
                    f"joint '{name}' is not a joint of {self.name}{close_matches(str(name), self.joint_names)}"
                )
            if name in seen:
                raise UserError(f"joint '{name}' is listed twice for {self.name}")
            seen.add(name)
            out.append(where[name])
        if not out:
            raise UserError(f"a joint selection of {self.name} needs at least one joint")
        return np.asarray(out, dtype=np.intp)

    def select(self, names: Sequence[str]) -> RobotSpec:
        """This spec restricted to the named joints, in that order (every per-joint field follows them).

        The result keeps the robot's name and bodies: it describes the joints an imported policy
        observes and commands, for the observation functions, never a robot to send commands to.
        """
        index = self.joint_index(names)
        if tuple(names) == self.joint_names:
            return self
        fields: dict[str, Any] = {"joint_names": tuple(self.joint_names[i] for i in index)}
        for field_name in PER_JOINT_FIELDS:
            values = getattr(self, field_name)
            fields[field_name] = tuple(values[i] for i in index)
        return dataclasses.replace(self, **fields)

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (tuples become lists)."""
        out: dict[str, Any] = {}
        for f in dataclasses.fields(self):
            value = getattr(self, f.name)
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> RobotSpec:
        """Build and validate a spec from a dict such as to_dict() or a contract.json gives."""
        if not isinstance(data, Mapping):
            raise UserError(f"robot spec must be a mapping, got {type(data).__name__}")
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = [k for k in data if k not in names]
        if unknown:
            key = str(unknown[0])
            raise UserError(f"robot spec has unknown field '{key}'{close_matches(key, names)}")
        missing = [n for n in names if n not in data]
        if missing:
            raise UserError(f"robot spec is missing field(s): {', '.join(missing)}")
        kwargs = {f.name: _coerce(f.name, str(f.type), data[f.name]) for f in dataclasses.fields(cls)}
        return cls(**kwargs)

    def to_json(self, indent: int | None = 2) -> str:
        """JSON text of to_dict()."""
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_json(cls, text: str) -> RobotSpec:
        """Parse JSON text written by to_json()."""
        try:
            data = json.loads(text)
        except json.JSONDecodeError as exc:
            raise UserError(f"robot spec is not valid JSON: {exc}") from None
        return cls.from_dict(data)


def supported_mode_machines(spec: RobotSpec) -> tuple[int, ...] | None:
    """The mode_machine values spec is valid for; None where its message family reports none (unitree_go)."""
    if spec.message_family != "unitree_hg":
        return None
    return SUPPORTED_MODE_MACHINES.get(spec.name, ())


class JointRow(NamedTuple):
    """One joint as a robot module lists it: name, DDS motor slot, drive, range and default angle."""

    name: str
    motor_index: int
    motor: MotorModel
    lower: float
    upper: float
    default: float


def spec_from_joint_table(rows: tuple[JointRow, ...], **fields: Any) -> RobotSpec:
    """A RobotSpec whose per-joint gains, armature, limits and action scales come from each row's motor."""
    gains = [row.motor.gains() for row in rows]
    return RobotSpec(
        joint_names=tuple(row.name for row in rows),
        motor_indices=tuple(row.motor_index for row in rows),
        default_joint_pos=tuple(row.default for row in rows),
        kp=tuple(kp for kp, _ in gains),
        kd=tuple(kd for _, kd in gains),
        armature=tuple(row.motor.armature for row in rows),
        torque_limits=tuple(row.motor.torque_limit for row in rows),
        velocity_limits=tuple(row.motor.velocity_limit for row in rows),
        joint_pos_lower=tuple(row.lower for row in rows),
        joint_pos_upper=tuple(row.upper for row in rows),
        action_scale=tuple(row.motor.action_scale() for row in rows),
        **fields,
    )


def _frozen_array(values: tuple[float, ...]) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64)
    arr.setflags(write=False)
    return arr


_SCALAR_TYPES: dict[str, type] = {"str": str, "int": int, "float": float}


def _coerce(name: str, annotation: str, value: Any) -> Any:
    """Convert one JSON value to the field's type ("float", "tuple[float, ...]", ...) or raise UserError."""
    if annotation.startswith("tuple["):
        element = _SCALAR_TYPES[annotation.removeprefix("tuple[").removesuffix(", ...]")]
        if not isinstance(value, list | tuple):
            raise UserError(f"robot spec field '{name}' must be a list, got {type(value).__name__}")
        return tuple(_scalar(f"{name}[{i}]", element, v) for i, v in enumerate(value))
    return _scalar(name, _SCALAR_TYPES[annotation], value)


def _scalar(name: str, kind: type, value: Any) -> Any:
    # bool is an int subclass in Python; a JSON true in a number field is a mistake, not 1.
    if isinstance(value, bool):
        raise UserError(f"robot spec field '{name}' must be {kind.__name__}, got bool")
    if kind is str:
        if not isinstance(value, str):
            raise UserError(f"robot spec field '{name}' must be a string, got {type(value).__name__}")
        return value
    if kind is int:
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if not isinstance(value, int):
            raise UserError(f"robot spec field '{name}' must be an integer, got {value!r}")
        return value
    if not isinstance(value, int | float):
        raise UserError(f"robot spec field '{name}' must be a number, got {value!r}")
    return float(value)


def _validate(spec: RobotSpec) -> None:
    """Raise UserError with a one-line message on the first inconsistency."""
    where = f"robot spec '{spec.name}'"
    n = len(spec.joint_names)
    if n == 0:
        raise UserError(f"{where}: joint_names is empty")
    if len(set(spec.joint_names)) != n:
        dup = next(j for j in spec.joint_names if spec.joint_names.count(j) > 1)
        raise UserError(f"{where}: joint '{dup}' appears twice in joint_names")
    for field_name in PER_JOINT_FIELDS:
        size = len(getattr(spec, field_name))
        if size != n:
            raise UserError(f"{where}: {field_name} has {size} values but there are {n} joints")
    for field_name in PER_JOINT_FIELDS[1:]:
        for joint, v in zip(spec.joint_names, getattr(spec, field_name), strict=True):
            if not math.isfinite(v):
                raise UserError(f"{where}: {field_name} of {joint} is not finite ({v})")
    if spec.message_family not in MESSAGE_FAMILIES:
        raise UserError(
            f"{where}: message_family '{spec.message_family}' is not one of {', '.join(MESSAGE_FAMILIES)}"
            f"{close_matches(spec.message_family, MESSAGE_FAMILIES)}"
        )
    if spec.num_motor_slots <= 0:
        raise UserError(f"{where}: num_motor_slots must be positive, got {spec.num_motor_slots}")
    if len(set(spec.motor_indices)) != n:
        dup_index = next(i for i in spec.motor_indices if spec.motor_indices.count(i) > 1)
        raise UserError(f"{where}: motor index {dup_index} is used by two joints")
    for joint, idx in zip(spec.joint_names, spec.motor_indices, strict=True):
        if not 0 <= idx < spec.num_motor_slots:
            raise UserError(f"{where}: motor index {idx} of {joint} is outside 0..{spec.num_motor_slots - 1}")
    for joint, lo, hi, q0 in zip(
        spec.joint_names, spec.joint_pos_lower, spec.joint_pos_upper, spec.default_joint_pos, strict=True
    ):
        if not lo < hi:
            raise UserError(f"{where}: joint {joint} has lower limit {lo} >= upper limit {hi}")
        if not lo <= q0 <= hi:
            raise UserError(f"{where}: default position {q0} of {joint} is outside its range [{lo}, {hi}]")
    positive = ("torque_limits", "velocity_limits", "action_scale", "armature")
    for field_name in (*positive, "kp", "kd"):
        for joint, v in zip(spec.joint_names, getattr(spec, field_name), strict=True):
            if v < 0 or (v == 0 and field_name in positive):
                raise UserError(f"{where}: {field_name} of {joint} must be positive, got {v}")
    for field_name in ("control_dt", "physics_dt", "base_height", "total_mass"):
        v = getattr(spec, field_name)
        if not (math.isfinite(v) and v > 0):
            raise UserError(f"{where}: {field_name} must be positive, got {v}")
    ratio = spec.control_dt / spec.physics_dt
    if ratio < 1 or abs(ratio - round(ratio)) > 1e-6:
        raise UserError(
            f"{where}: control_dt {spec.control_dt} must be a whole multiple of physics_dt {spec.physics_dt}"
        )
    if len(spec.foot_bodies) != len(spec.foot_geoms):
        raise UserError(
            f"{where}: {len(spec.foot_bodies)} foot_bodies but {len(spec.foot_geoms)} foot_geoms; give one of each per foot"
        )
    for field_name in ("name", "imu_body", "imu_site", "base_body", "model_file"):
        if not getattr(spec, field_name):
            raise UserError(f"{where}: {field_name} is empty")
