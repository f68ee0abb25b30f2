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
    action           size, scale and offset (joint target = offset + scale * clip(action)), clip
    command          ranges [[min, max]] of vx, vy, yaw rate the policy was trained on
    gait             {period_s} when the observation has a gait_clock term: its phase is the policy steps
                     since the policy took over times control_dt over period_s, modulo 1; else null
    network          file, input and output names, input_size, output_size, opset, the export check
    checkpoint       framework files copied beside the network, each {file, kind}
    source           where it came from (run directory, env id, algorithm, command, versions)
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from robolearn.errors import UserError
from robolearn.robots.observations import ObsTerm, clock_phase, observation_layout, observation_size
from robolearn.robots.spec import RobotSpec

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

    @property
    def frame_size(self) -> int:
        """Values in one observation frame."""
        return observation_size(self.robot, self.terms)

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
        return {
            "format_version": self.format_version,
            "robot": spec.to_dict(),
            "control_dt": spec.control_dt,
            "message_family": spec.message_family,
            "observation": {
                "terms": [entry.to_dict() for entry in observation_layout(spec, self.terms)],
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
                "size": spec.num_joints,
                "scale": list(spec.action_scale),
                "offset": list(spec.default_joint_pos),
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
        """Validate and parse a contract; UserError naming the first problem."""
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
            )
        except UserError as exc:
            raise UserError(f"{where}: {exc}" if not str(exc).startswith(where) else str(exc)) from None
        except (KeyError, TypeError, ValueError) as exc:
            raise UserError(
                f"{where} is malformed ({type(exc).__name__}: {exc}); re-export the policy"
            ) from None
        contract._check(data, where)
        return contract

    def _check(self, data: Mapping[str, Any], where: str) -> None:
        spec = self.robot
        if self.history_length < 1:
            raise UserError(f"{where}: observation.history.length must be >= 1, got {self.history_length}")
        layout = [e.to_dict() for e in observation_layout(spec, self.terms)]
        for given, expected in zip(data["observation"]["terms"], layout, strict=True):
            for key in ("start", "size"):
                if key in given and int(given[key]) != expected[key]:
                    raise UserError(
                        f"{where}: observation term {expected['name']} has {key} {given[key]}, but the terms put it at {expected[key]}"
                    )
        if self.normalization is not None:
            for name in ("mean", "var"):
                values = getattr(self.normalization, name)
                if len(values) != self.input_size:
                    raise UserError(
                        f"{where}: normalization.{name} has {len(values)} values for a {self.input_size}-value input"
                    )
            if not all(math.isfinite(v) for v in (*self.normalization.mean, *self.normalization.var)):
                raise UserError(f"{where}: normalization statistics contain NaN/Inf")
            if min(self.normalization.var) < 0:
                raise UserError(f"{where}: normalization.var has a negative value")
        act = data["action"]
        if int(act["size"]) != spec.num_joints:
            raise UserError(f"{where}: action.size {act['size']} but the robot has {spec.num_joints} joints")
        for key, expected_values in (("scale", spec.action_scale), ("offset", spec.default_joint_pos)):
            if not np.allclose(np.asarray(act[key], dtype=np.float64), expected_values, rtol=0, atol=1e-12):
                raise UserError(f"{where}: action.{key} disagrees with the robot spec it carries")
        if data.get("message_family", spec.message_family) != spec.message_family:
            raise UserError(f"{where}: message_family disagrees with robot.message_family")
        if abs(float(data.get("control_dt", spec.control_dt)) - spec.control_dt) > 1e-12:
            raise UserError(f"{where}: control_dt disagrees with robot.control_dt")
        has_clock = any(t.name == "gait_clock" for t in self.terms)
        if has_clock and self.gait_period_s is None:
            raise UserError(f"{where}: the observation has a gait_clock term but gait.period_s is missing")
        if self.gait_period_s is not None and not (
            math.isfinite(self.gait_period_s) and self.gait_period_s > 0
        ):
            raise UserError(
                f"{where}: gait.period_s must be a positive number of seconds, got {self.gait_period_s}"
            )
        if len(self.command_ranges) != 3:
            raise UserError(f"{where}: command.ranges needs 3 [min, max] pairs (vx, vy, yaw rate)")
        for key in ("file", "input", "output"):
            if key not in self.network:
                raise UserError(f"{where}: network.{key} is missing")


@dataclass(frozen=True)
class PolicyArtifact:
    """A loaded artifact folder: its contract and where its files are."""

    root: Path
    contract: PolicyContract

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
    artifact = PolicyArtifact(root, contract)
    if not artifact.network_path.is_file():
        raise UserError(f"{contract_path} names network {contract.network['file']}, which is not in {root}")
    return artifact


def check_spec_matches(artifact_spec: RobotSpec, robot_spec: RobotSpec) -> None:
    """UserError unless the artifact was exported for this robot with the same joints, gains and limits."""
    if artifact_spec.name != robot_spec.name:
        raise UserError(
            f"the policy was exported for robot '{artifact_spec.name}', not '{robot_spec.name}'; pass robot={artifact_spec.name}"
        )
    for name in SAFETY_FIELDS:
        mine, theirs = getattr(robot_spec, name), getattr(artifact_spec, name)
        if mine == theirs:
            continue
        detail = ""
        if isinstance(mine, tuple) and isinstance(theirs, tuple) and len(mine) == len(theirs):
            i = next(k for k, (a, b) in enumerate(zip(mine, theirs, strict=True)) if a != b)
            joint = robot_spec.joint_names[i] if i < robot_spec.num_joints else str(i)
            detail = f" ({joint}: policy {theirs[i]} vs robot {mine[i]})"
        raise UserError(
            f"the policy's {robot_spec.name} spec differs from this robolearn's in {name}{detail};"
            " re-export the policy, or deploy with the robolearn version that exported it"
        )
