"""The policy artifact: a folder with the ONNX network, the framework checkpoint and contract.json.

contract.json (format version CONTRACT_VERSION) says everything deploy and sim2sim need to turn a
robot's state into the network's input and its output into joint targets, without the training code:

    format_version   1
    robot            the full RobotSpec (joint order, motor slots, default pose, gains, limits, timing)
    control_dt       policy period (s)
    message_family   unitree_go | unitree_hg
    observation      terms [{name, start, size, scale, noise}] built by robolearn.robots.build_observation,
                     clip (after scaling), frame_size, history {length, order: oldest_first} (the network
                     input is `length` frames concatenated, oldest first), normalization {mean, var,
                     epsilon, clip} applied after stacking as (x - mean) / sqrt(var + epsilon), clipped,
                     or null
    policy_joints    (optional) the joints the network observes and commands, in the network's order;
                     absent or null: every robot joint in robot order. joint_pos_rel, joint_vel and
                     last_action cover these joints in this order; the network's output (one value per
                     policy joint) is scattered into a robot-order action with 0 for every other joint,
                     so those are held at robot.default_joint_pos by the robot's PD through the same guards
    robot_overrides  (optional) RobotSpec fields the policy's source tuned away from robolearn's spec for
                     this robot, from TUNING_FIELDS (kp, kd, default_joint_pos, action_scale); the robot
                     spec carries the tuned values, and deploy compares every other safety field
    action           size (len(policy_joints)), scale and offset of the policy joints in policy order
                     (joint target = offset + scale * clip(action)), clip
    command          ranges [[min, max]] of vx, vy, yaw rate the policy was trained on
    gait             {period_s} when the observation has a gait_clock term: its phase is the policy steps
                     since the policy took over times control_dt over period_s, modulo 1; else null
    motion           (optional) {file, format_version, anchor_body, clips [{name, fps, frames, periodic}]}
                     when the observation has motion_* terms: the reference clips the policy tracks, in
                     the artifact's motion.npz (robolearn.deploy.motion documents its layout and how
                     the runtime plays a clip)
    network          file, input and output names, input_size, output_size, opset, the export check;
                     state (optional, recurrent networks): [{input, output, shape}], float32 tensors fed
                     zeros at the start of every POLICY segment and each step's outputs after that
    checkpoint       framework files copied beside the network, each {file, kind}
    source           where it came from (run directory, env id, algorithm, command, versions)
"""

from __future__ import annotations

import dataclasses
import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from robolearn.errors import UserError
from robolearn.robots.observations import (
    MOTION_TERMS,
    TERMS,
    ObsTerm,
    clock_phase,
    observation_layout,
    observation_size,
)
from robolearn.robots.spec import MESSAGE_FAMILIES, RobotSpec
from robolearn.robots.state import RobotState

if TYPE_CHECKING:
    from robolearn.deploy.motion import MotionLibrary

CONTRACT_VERSION = 1
CONTRACT_FILE = "contract.json"
NETWORK_FILE = "policy.onnx"
CHECKPOINT_DIR = "checkpoint"

# RobotSpec fields that decide what a command means on the motors: a policy exported with other
# values must not drive this robot.
SAFETY_FIELDS = (
    "joint_names",
    "motor_indices",
    "num_motor_slots",
    "message_family",
    "default_joint_pos",
    "kp",
    "kd",
    "torque_limits",
    "velocity_limits",
    "joint_pos_lower",
    "joint_pos_upper",
    "action_scale",
    "control_dt",
)

# The safety fields an importer may declare changed (robot_overrides): how the policy was tuned to
# drive the motors, not what the hardware is. Every other safety field must match robolearn's spec.
TUNING_FIELDS = ("kp", "kd", "default_joint_pos", "action_scale")


@dataclass(frozen=True)
class StateEntry:
    """One recurrent state tensor: the graph input it is fed through and the output it comes back on."""

    input: str
    output: str
    shape: tuple[int, ...]


@dataclass(frozen=True)
class Normalization:
    """Observation statistics (SB3 VecNormalize's obs_rms): (x - mean) / sqrt(var + epsilon), clipped."""

    mean: tuple[float, ...]
    var: tuple[float, ...]
    epsilon: float
    clip: float

    def apply(self, x: np.ndarray) -> np.ndarray:
        """Normalise like VecNormalize.normalize_obs (float64 arithmetic on the float32 input)."""
        mean = np.asarray(self.mean)
        std = np.sqrt(np.asarray(self.var) + self.epsilon)
        return np.clip((x - mean) / std, -self.clip, self.clip)


@dataclass(frozen=True)
class PolicyContract:
    """Parsed contract.json; see the module docstring for the meaning of each part."""

    robot: RobotSpec
    terms: tuple[ObsTerm, ...]
    obs_clip: float | None
    history_length: int
    normalization: Normalization | None
    action_clip: float | None
    command_ranges: tuple[tuple[float, float], ...]
    network: Mapping[str, Any]
    checkpoint: tuple[Mapping[str, str], ...]
    source: Mapping[str, Any]
    gait_period_s: float | None = None
    format_version: int = CONTRACT_VERSION
    policy_joints: tuple[str, ...] | None = None  # None: every robot joint, in robot order
    robot_overrides: tuple[str, ...] = ()
    motion: Mapping[str, Any] | None = None  # contract.json's motion entry (MotionLibrary.describe())

    @cached_property
    def policy_index(self) -> np.ndarray:
        """Robot (motor-order) index of each policy joint, in the network's order."""
        if self.policy_joints is None:
            return np.arange(self.robot.num_joints)
        return self.robot.joint_index(self.policy_joints)

    @property
    def action_size(self) -> int:
        """Values the network outputs: one per policy joint."""
        return self.robot.num_joints if self.policy_joints is None else len(self.policy_joints)

    @cached_property
    def policy_spec(self) -> RobotSpec:
        """The robot spec restricted to the policy joints, in the network's order (the observation's spec)."""
        if self.policy_joints is None:
            return self.robot
        return self.robot.select(self.policy_joints)

    def full_action(self, raw: np.ndarray) -> np.ndarray:
        """A network output (policy order) as a robot-order action, 0 for the joints the policy does not command."""
        if self.policy_joints is None:
            return raw
        full = np.zeros((*raw.shape[:-1], self.robot.num_joints), dtype=np.float64)
        full[..., self.policy_index] = raw
        return full

    def policy_state(self, state: RobotState) -> RobotState:
        """The robot-order state with its joint arrays (and last_action) restricted to the policy joints."""
        if self.policy_joints is None:
            return state
        idx = self.policy_index
        motion = state.motion
        if motion is not None:
            motion = dataclasses.replace(
                motion,
                joint_pos=np.asarray(motion.joint_pos)[..., idx],
                joint_vel=np.asarray(motion.joint_vel)[..., idx],
            )
        return dataclasses.replace(
            state,
            joint_pos=np.asarray(state.joint_pos)[..., idx],
            joint_vel=np.asarray(state.joint_vel)[..., idx],
            last_action=np.asarray(state.last_action)[..., idx],
            motion=motion,
        )

    @property
    def recurrent_state(self) -> tuple[StateEntry, ...]:
        """The network's recurrent state tensors (network.state); () for a feed-forward network."""
        entries = self.network.get("state") or ()
        return tuple(
            StateEntry(str(e["input"]), str(e["output"]), tuple(int(d) for d in e["shape"])) for e in entries
        )

    @property
    def frame_size(self) -> int:
        """Values in one observation frame."""
        return observation_size(self.policy_spec, self.terms)

    @property
    def input_size(self) -> int:
        """Values the network takes: history_length frames."""
        return self.frame_size * self.history_length

    @property
    def control_dt(self) -> float:
        """Policy period (s)."""
        return self.robot.control_dt

    def gait_phase(self, policy_steps: int) -> np.ndarray | None:
        """The gait_clock phase, shape (1,), after `policy_steps` steps of the policy; None without a clock."""
        if self.gait_period_s is None:
            return None
        return clock_phase(np.array([policy_steps]), self.control_dt, self.gait_period_s)

    def to_dict(self) -> dict[str, Any]:
        """The JSON form written to contract.json."""
        spec = self.robot
        policy = self.policy_spec
        out: dict[str, Any] = {
            "format_version": self.format_version,
            "robot": spec.to_dict(),
            "control_dt": spec.control_dt,
            "message_family": spec.message_family,
        }
        # Written only when set, so a contract without them is byte-identical to the ones before.
        if self.policy_joints is not None:
            out["policy_joints"] = list(self.policy_joints)
        if self.robot_overrides:
            out["robot_overrides"] = list(self.robot_overrides)
        if self.motion is not None:
            out["motion"] = dict(self.motion)
        return out | {
            "observation": {
                "terms": [entry.to_dict() for entry in observation_layout(policy, self.terms)],
                "frame_size": self.frame_size,
                "clip": self.obs_clip,
                "history": {"length": self.history_length, "order": "oldest_first"},
                "normalization": None
                if self.normalization is None
                else {
                    "mean": list(self.normalization.mean),
                    "var": list(self.normalization.var),
                    "epsilon": self.normalization.epsilon,
                    "clip": self.normalization.clip,
                },
            },
            "action": {
                "size": policy.num_joints,
                "scale": list(policy.action_scale),
                "offset": list(policy.default_joint_pos),
                "clip": self.action_clip,
                "target": "joint_position",
            },
            "command": {
                "names": ["lin_vel_x", "lin_vel_y", "ang_vel_z"],
                "ranges": [list(r) for r in self.command_ranges],
            },
            "gait": None if self.gait_period_s is None else {"period_s": self.gait_period_s},
            "network": dict(self.network),
            "checkpoint": [dict(c) for c in self.checkpoint],
            "source": dict(self.source),
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any], where: str = "contract.json") -> PolicyContract:
        """Validate (validate_contract) and parse a contract; UserError naming the first problem."""
        validate_contract(data, where)
        try:
            version = data["format_version"]
            if version != CONTRACT_VERSION:
                raise UserError(
                    f"{where}: format_version {version} is not supported (this robolearn reads {CONTRACT_VERSION});"
                    " re-export the policy with this version"
                )
            spec = RobotSpec.from_dict(data["robot"])
            obs, act = data["observation"], data["action"]
            terms = tuple(ObsTerm.from_dict(t) for t in obs["terms"])
            history = int(obs["history"]["length"])
            if obs["history"].get("order", "oldest_first") != "oldest_first":
                raise UserError(f"{where}: observation.history.order must be oldest_first")
            norm_data = obs.get("normalization")
            norm = None
            if norm_data is not None:
                norm = Normalization(
                    tuple(float(v) for v in norm_data["mean"]),
                    tuple(float(v) for v in norm_data["var"]),
                    float(norm_data["epsilon"]),
                    float(norm_data["clip"]),
                )
            gait = data.get("gait")
            joints = data.get("policy_joints")
            contract = cls(
                robot=spec,
                terms=terms,
                obs_clip=None if obs.get("clip") is None else float(obs["clip"]),
                history_length=history,
                normalization=norm,
                action_clip=None if act.get("clip") is None else float(act["clip"]),
                command_ranges=tuple((float(lo), float(hi)) for lo, hi in data["command"]["ranges"]),
                network=dict(data["network"]),
                checkpoint=tuple(dict(c) for c in data.get("checkpoint", [])),
                source=dict(data.get("source", {})),
                gait_period_s=None if gait is None else float(gait["period_s"]),
                policy_joints=None if joints is None else tuple(str(j) for j in joints),
                robot_overrides=tuple(str(f) for f in data.get("robot_overrides") or ()),
                motion=None if data.get("motion") is None else dict(data["motion"]),
            )
        except UserError as exc:
            raise UserError(f"{where}: {exc}" if not str(exc).startswith(where) else str(exc)) from None
        except (KeyError, TypeError, ValueError) as exc:
            raise UserError(
                f"{where} is malformed ({type(exc).__name__}: {exc}); re-export the policy"
            ) from None
        return contract


# --- Validation of contract.json as a whole ------------------------------------------------------
# Every field is checked here, before anything is parsed or any traffic starts; the first bad value
# is a one-line UserError naming the field, the value and what is allowed.

MAX_HISTORY = 1000  # frames; far beyond any policy robolearn or its importers produce


def _show(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, float) else repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


class _ContractChecker:
    """Typed reads of a contract.json mapping that fail with '<where>: <field> = <value> ...; allowed ...'."""

    def __init__(self, data: Mapping[str, Any], where: str) -> None:
        self.data = data
        self.where = where

    def fail(self, path: str, value: Any, allowed: str) -> UserError:
        return UserError(
            f"{self.where}: {path} = {_show(value)} is not allowed; {allowed} (re-export the policy)"
        )

    def get(self, path: str, optional: bool = False) -> Any:
        node: Any = self.data
        parts = path.split(".")
        for i, part in enumerate(parts):
            if not isinstance(node, Mapping):
                raise self.fail(".".join(parts[:i]), node, "expected a JSON object")
            if part not in node:
                if optional:
                    return None
                raise UserError(f"{self.where} is malformed: {path} is missing; re-export the policy")
            node = node[part]
        return node

    def mapping(self, path: str, optional: bool = False) -> Mapping[str, Any] | None:
        value = self.get(path, optional)
        if value is None and optional:
            return None
        if not isinstance(value, Mapping):
            raise self.fail(path, value, "expected a JSON object")
        return value

    def number(
        self,
        path: str,
        value: Any,
        low: float | None = None,
        high: float | None = None,
        low_open: bool = False,
        allowed: str | None = None,
    ) -> float:
        """A finite number inside [low, high] ((low, high] with low_open)."""
        ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
        if ok and low is not None:
            ok = value > low if low_open else value >= low
        if ok and high is not None:
            ok = value <= high
        if not ok:
            if allowed is None:
                lo = "-inf" if low is None else f"{low:g}"
                hi = "inf" if high is None else f"{high:g}"
                allowed = f"a finite number in {'(' if low_open or low is None else '['}{lo}, {hi}{']' if high is not None else ')'}"
            raise self.fail(path, value, allowed)
        return float(value)

    def integer(self, path: str, value: Any, low: int, high: int | None = None) -> int:
        """An integer in [low, high] (a float with no fraction counts, as JSON writers produce)."""
        as_int = (
            int(value)
            if isinstance(value, int | float) and not isinstance(value, bool) and float(value).is_integer()
            else None
        )
        if as_int is None or as_int < low or (high is not None and as_int > high):
            raise self.fail(path, value, f"an integer in [{low}, {'inf' if high is None else high}]")
        return as_int

    def numbers(
        self, path: str, value: Any, size: int | None, low: float | None = None, low_open: bool = False
    ) -> list[float]:
        """A list of finite numbers (of length size when given)."""
        if not isinstance(value, list) or (size is not None and len(value) != size):
            what = f"a list of {size} numbers" if size is not None else "a list of numbers"
            raise self.fail(path, value, f"expected {what}")
        return [self.number(f"{path}[{i}]", v, low=low, low_open=low_open) for i, v in enumerate(value)]

    def string(self, path: str, value: Any, choices: tuple[str, ...] | None = None) -> str:
        if not isinstance(value, str) or not value or (choices is not None and value not in choices):
            allowed = f"one of {', '.join(choices)}" if choices else "a non-empty string"
            raise self.fail(path, value, allowed)
        return value


def max_action_clip(spec: RobotSpec) -> float:
    """The largest action.clip a contract may carry for this robot.

    Per joint, the action that puts the target (default + scale * action) on the farther edge of the
    joint's range is reach / scale, with reach = max(upper - default, default - lower). Beyond the
    largest of these, no joint can use a bigger action: the command limiter pins every target at its
    range edge, and a bigger clip would only widen the window in which the action guard (which trips
    at action_limit_multiple x clip) stays silent while the targets sit at the joint limits.
    """
    default = spec.default_pos_array
    reach = np.maximum(np.asarray(spec.joint_pos_upper) - default, default - np.asarray(spec.joint_pos_lower))
    return float(np.max(reach / spec.action_scale_array))


def validate_contract(data: Mapping[str, Any], where: str = CONTRACT_FILE) -> None:
    """Check every field of a contract.json mapping (types, finiteness, ranges, agreement); UserError on the first bad one."""
    c = _ContractChecker(data, where)
    version = c.get("format_version")
    if version != CONTRACT_VERSION:
        raise UserError(
            f"{where}: format_version {_show(version)} is not supported (this robolearn reads {CONTRACT_VERSION});"
            " re-export the policy with this version"
        )
    try:
        spec = RobotSpec.from_dict(c.mapping("robot") or {})
    except UserError as exc:
        raise UserError(f"{where}: robot: {exc}") from None
    n = spec.num_joints
    given_dt = c.get("control_dt", optional=True)
    control_dt = c.number(
        "control_dt", spec.control_dt if given_dt is None else given_dt, low=0.0, low_open=True
    )
    if abs(control_dt - spec.control_dt) > 1e-12:
        raise c.fail(
            "control_dt",
            control_dt,
            f"must equal robot.control_dt ({spec.control_dt:g}); control_dt disagrees with robot.control_dt",
        )
    given_family = c.get("message_family", optional=True)
    family = c.string(
        "message_family", spec.message_family if given_family is None else given_family, MESSAGE_FAMILIES
    )
    if family != spec.message_family:
        raise c.fail(
            "message_family",
            family,
            f"must equal robot.message_family ({spec.message_family}); message_family disagrees with robot.message_family",
        )

    # policy joints and tuned fields
    policy = spec
    joints = c.get("policy_joints", optional=True)
    if joints is not None:
        if not isinstance(joints, list) or not joints or not all(isinstance(j, str) for j in joints):
            raise c.fail("policy_joints", joints, f"a non-empty list of {spec.name} joint names, or null")
        try:
            policy = spec.select(joints)
        except UserError as exc:
            raise UserError(f"{where}: policy_joints: {exc}") from None
    overrides = c.get("robot_overrides", optional=True)
    if overrides is not None:
        if not isinstance(overrides, list) or not all(isinstance(f, str) for f in overrides):
            raise c.fail(
                "robot_overrides", overrides, f"a list of field names from {', '.join(TUNING_FIELDS)}"
            )
        for i, name in enumerate(overrides):
            if name not in TUNING_FIELDS:
                raise c.fail(
                    f"robot_overrides[{i}]",
                    name,
                    f"an importer may only tune {', '.join(TUNING_FIELDS)}; {name} describes the hardware and"
                    f" must match robolearn's {spec.name} spec",
                )
        if len(set(overrides)) != len(overrides):
            raise c.fail("robot_overrides", overrides, "each field at most once")

    # observation
    c.mapping("observation")
    terms_data = c.get("observation.terms")
    if not isinstance(terms_data, list) or not terms_data:
        raise c.fail("observation.terms", terms_data, "expected a non-empty list of terms")
    terms = []
    for i, entry in enumerate(terms_data):
        path = f"observation.terms[{i}]"
        if not isinstance(entry, Mapping):
            raise c.fail(path, entry, "expected a JSON object {name, start, size, scale, noise}")
        c.string(f"{path}.name", entry.get("name"), tuple(TERMS))
        scale = entry.get("scale", 1.0)
        if isinstance(scale, list):
            c.numbers(f"{path}.scale", scale, None)
        else:
            c.number(f"{path}.scale", scale)
        c.number(f"{path}.noise", entry.get("noise", 0.0), low=0.0)
        term_clip = entry.get("clip")
        if term_clip is not None:
            lo, hi = c.numbers(f"{path}.clip", term_clip, 2)
            if not lo < hi:
                raise c.fail(f"{path}.clip", term_clip, "[lo, hi] with lo < hi, or null")
        try:
            terms.append(ObsTerm.from_dict(entry))
        except UserError as exc:
            raise UserError(f"{where}: {path}: {exc}") from None
    try:
        layout = [e.to_dict() for e in observation_layout(policy, terms)]
    except UserError as exc:
        raise UserError(f"{where}: observation.terms: {exc}") from None
    for i, (given, expected) in enumerate(zip(terms_data, layout, strict=True)):
        for key in ("start", "size"):
            if key in given:
                value = c.integer(f"observation.terms[{i}].{key}", given[key], 0)
                if value != expected[key]:
                    raise UserError(
                        f"{where}: observation term {expected['name']} has {key} {value}, but the terms put it at {expected[key]}"
                    )
    # gait
    gait = c.mapping("gait", optional=True)
    has_clock = any(t.name == "gait_clock" for t in terms)
    if gait is not None:
        c.number(
            "gait.period_s",
            c.get("gait.period_s"),
            low=0.0,
            low_open=True,
            allowed="gait.period_s must be a positive number of seconds",
        )
    elif has_clock:
        raise UserError(f"{where}: the observation has a gait_clock term but gait.period_s is missing")
    # motion
    motion = c.mapping("motion", optional=True)
    tracking = [t.name for t in terms if t.name in MOTION_TERMS]
    if motion is not None:
        c.string("motion.file", c.get("motion.file"))
        c.string("motion.anchor_body", c.get("motion.anchor_body"))
        clips = c.get("motion.clips")
        if not isinstance(clips, list) or not clips or not all(isinstance(e, Mapping) for e in clips):
            raise c.fail("motion.clips", clips, "a non-empty list of {name, fps, frames, periodic}")
    elif tracking:
        raise UserError(
            f"{where}: the observation has a {tracking[0]} term but no motion entry (the reference clips);"
            " re-export the policy"
        )

    frame_size = observation_size(policy, terms)
    if c.get("observation.frame_size", optional=True) is not None:
        given_frame = c.integer("observation.frame_size", c.get("observation.frame_size"), 1)
        if given_frame != frame_size:
            raise c.fail(
                "observation.frame_size", given_frame, f"the terms make frames of {frame_size} values"
            )
    obs_clip = c.get("observation.clip", optional=True)
    if obs_clip is not None:
        c.number("observation.clip", obs_clip, low=0.0, low_open=True)
    history = c.integer("observation.history.length", c.get("observation.history.length"), 1, MAX_HISTORY)
    order = c.get("observation.history.order", optional=True)
    if order is not None and order != "oldest_first":
        raise c.fail("observation.history.order", order, "observation.history.order must be oldest_first")
    input_size = frame_size * history
    norm = c.mapping("observation.normalization", optional=True)
    if norm is not None:
        for key in ("mean", "var"):
            values = c.get(f"observation.normalization.{key}")
            if isinstance(values, list) and len(values) != input_size:
                raise UserError(
                    f"{where}: normalization.{key} has {len(values)} values for a {input_size}-value input"
                )
            c.numbers(
                f"observation.normalization.{key}", values, input_size, low=0.0 if key == "var" else None
            )
        c.number("observation.normalization.epsilon", c.get("observation.normalization.epsilon"), low=0.0)
        c.number(
            "observation.normalization.clip", c.get("observation.normalization.clip"), low=0.0, low_open=True
        )

    # action
    c.mapping("action")
    size = c.integer("action.size", c.get("action.size"), 1)
    if size != policy.num_joints:
        what = f"the robot has {n} joints" if joints is None else f"policy_joints lists {policy.num_joints}"
        raise c.fail("action.size", size, what)
    for key, expected_values in (("scale", policy.action_scale), ("offset", policy.default_joint_pos)):
        values = c.numbers(
            f"action.{key}",
            c.get(f"action.{key}"),
            policy.num_joints,
            low=0.0 if key == "scale" else None,
            low_open=key == "scale",
        )
        if not np.allclose(values, expected_values, rtol=0, atol=1e-12):
            raise UserError(f"{where}: action.{key} disagrees with the robot spec it carries")
    clip = c.get("action.clip", optional=True)
    if clip is not None:
        bound = max_action_clip(policy)
        c.number(
            "action.clip",
            clip,
            low=0.0,
            high=bound,
            low_open=True,
            allowed=f"a number in (0, {bound:.4g}] for {spec.name} (beyond it every joint target is past its"
            " joint range; docs/deploy.md), or null",
        )
    target = c.get("action.target", optional=True)
    if target is not None:
        c.string("action.target", target, ("joint_position",))

    # command
    ranges = c.get("command.ranges")
    if not isinstance(ranges, list) or len(ranges) != 3:
        raise c.fail("command.ranges", ranges, "command.ranges needs 3 [min, max] pairs (vx, vy, yaw rate)")
    for i, pair in enumerate(ranges):
        lo, hi = c.numbers(f"command.ranges[{i}]", pair, 2)
        if lo > hi:
            raise c.fail(f"command.ranges[{i}]", pair, "expected [min, max] with min <= max")

    # network (the graph's own shapes are checked when onnxruntime loads it: robolearn.deploy.policy)
    c.mapping("network")
    file = c.string("network.file", c.get("network.file"))
    if Path(file).is_absolute() or ".." in Path(file).parts:
        raise c.fail("network.file", file, "a file name inside the artifact folder")
    for key in ("input", "output"):
        c.string(f"network.{key}", c.get(f"network.{key}"))
    # Sizes: integers here; their agreement with the graph and the terms is checked when the graph loads.
    for key in ("input_size", "output_size"):
        value = c.get(f"network.{key}", optional=True)
        if value is not None:
            c.integer(f"network.{key}", value, 1)
    state = c.get("network.state", optional=True)
    if state is not None:
        if not isinstance(state, list):
            raise c.fail("network.state", state, "a list of {input, output, shape}, or null")
        names = [c.get("network.input"), c.get("network.output")]
        for i, entry in enumerate(state):
            path = f"network.state[{i}]"
            if not isinstance(entry, Mapping):
                raise c.fail(path, entry, "a JSON object {input, output, shape}")
            for key in ("input", "output"):
                name = c.string(f"{path}.{key}", entry.get(key))
                if name in names:
                    raise c.fail(f"{path}.{key}", name, "a tensor name used nowhere else in network")
                names.append(name)
            shape = entry.get("shape")
            if not isinstance(shape, list) or not shape:
                raise c.fail(f"{path}.shape", shape, "a non-empty list of positive integers")
            for k, dim in enumerate(shape):
                c.integer(f"{path}.shape[{k}]", dim, 1)
    checkpoint = c.get("checkpoint", optional=True)
    if checkpoint is not None and (
        not isinstance(checkpoint, list) or not all(isinstance(e, Mapping) for e in checkpoint)
    ):
        raise c.fail("checkpoint", checkpoint, "expected a list of {file, kind}")
    c.mapping("source", optional=True)


@dataclass(frozen=True)
class PolicyArtifact:
    """A loaded artifact folder: its contract and where its files are."""

    root: Path
    contract: PolicyContract
    motion: MotionLibrary | None = None  # the reference clips of a tracking policy (motion.npz)

    @property
    def network_path(self) -> Path:
        """The ONNX file."""
        return self.root / str(self.contract.network["file"])


def write_contract(path: Path, contract: PolicyContract) -> None:
    """Write contract.json (atomically)."""
    from robolearn.utils.io import atomic_write_json

    atomic_write_json(path, contract.to_dict())


def load_artifact(path: str | Path) -> PolicyArtifact:
    """Read an artifact folder (or its contract.json); UserError on anything missing or malformed."""
    root = Path(path).expanduser()
    if root.is_file() and root.name == CONTRACT_FILE:
        root = root.parent
    contract_path = root / CONTRACT_FILE
    if not root.is_dir():
        raise UserError(
            f"policy={path} is not a folder; pass a policy artifact made by python -m robolearn.export"
        )
    if not contract_path.is_file():
        metadata = root / "metadata.json"
        if metadata.is_file():
            try:
                env_id = json.loads(metadata.read_text(encoding="utf-8")).get("env_id", "?")
            except (json.JSONDecodeError, AttributeError):
                env_id = "?"
            raise UserError(
                f"policy={path} has no {CONTRACT_FILE}: it was exported from a run on {env_id}, not a robot"
                " task; deploy needs the export of a robot task's run (e.g. Go2Velocity-v1)"
            )
        raise UserError(
            f"policy={path} has no {CONTRACT_FILE}; export a run with python -m robolearn.export run=<run dir>"
        )
    try:
        data = json.loads(contract_path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise UserError(f"{contract_path} is not valid JSON ({exc})") from None
    if not isinstance(data, dict):
        raise UserError(f"{contract_path} must hold a JSON object")
    contract = PolicyContract.from_dict(data, str(contract_path))
    motion = None
    if contract.motion is not None:
        from robolearn.deploy.motion import load_motion

        motion = load_motion(root / str(contract.motion["file"]), contract.robot, contract.motion)
    artifact = PolicyArtifact(root, contract, motion)
    if not artifact.network_path.is_file():
        raise UserError(f"{contract_path} names network {contract.network['file']}, which is not in {root}")
    return artifact


def check_spec_matches(
    artifact_spec: RobotSpec, robot_spec: RobotSpec, overrides: tuple[str, ...] = ()
) -> None:
    """UserError unless the artifact was exported for this robot with the same joints, gains and limits.

    overrides: the contract's robot_overrides, TUNING_FIELDS the policy's source changed on purpose;
    those are not compared (the artifact's values drive the motors), every other safety field is.
    """
    if artifact_spec.name != robot_spec.name:
        raise UserError(
            f"the policy was exported for robot '{artifact_spec.name}', not '{robot_spec.name}'; pass robot={artifact_spec.name}"
        )
    for name in overrides:
        if name not in TUNING_FIELDS:
            raise UserError(
                f"robot_overrides names {name}, which describes the hardware; only {', '.join(TUNING_FIELDS)}"
                " may differ from robolearn's spec (re-import the policy)"
            )
    for name in SAFETY_FIELDS:
        if name in overrides:
            continue
        mine, theirs = getattr(robot_spec, name), getattr(artifact_spec, name)
        if mine == theirs:
            continue
        detail = ""
        if isinstance(mine, tuple) and isinstance(theirs, tuple) and len(mine) == len(theirs):
            i = next(k for k, (a, b) in enumerate(zip(mine, theirs, strict=True)) if a != b)
            joint = robot_spec.joint_names[i] if i < robot_spec.num_joints else str(i)
            detail = f" ({joint}: policy {theirs[i]} vs robot {mine[i]})"
        hint = (
            " (an importer that tuned it on purpose declares it in robot_overrides)"
            if name in TUNING_FIELDS
            else ""
        )
        raise UserError(
            f"the policy's {robot_spec.name} spec differs from this robolearn's in {name}{detail}{hint};"
            " re-export the policy, or deploy with the robolearn version that exported it"
        )
