"""A target robot's physics mismatch: the "real" robot of a sim-to-sim rehearsal (ASAP, docs/asap.md).

A mismatch is a list of physical edits in robolearn.envs.edits' one format (ARCHITECTURE.md contract
7), given as config (`mismatch=<name>` picks configs/mismatch/<name>.yaml; `mismatch.edits=[...]`
states one inline), and applied by whichever process simulates the robot: the in-process MuJoCo
backend (`robolearn.deploy backend=mujoco`) or the DDS sim bridge. The training side never reads it.

Where each kind acts:
- model edits (body_mass, body_com, payload, joint_damping, joint_friction, joint_armature,
  geom_friction (foot friction: `geom: "*"` or a foot's geoms), gravity, sizes): applied with
  `mujoco.MjSpec` to the robot's MJCF before the simulator compiles it;
- motor_kp / motor_kd: the motor applies kp x scale (kd x scale) of the gains each LowCmd commands,
  per joint (e.g. 0.65 x Kp, the paper's weaker-motor case);
- joint_torque_limit: the motor's torque limit, a scale of the spec's limit or a value in N m
  (motor strength);
- action_delay: each LowCmd reaches the motors `steps` control periods of the robot (20 ms on the
  Go2) after it arrived.
actuator_gain and actuator_gear are refused: the motor PD law owns the actuators; use motor_kp and
joint_torque_limit.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import mujoco
import numpy as np

from robolearn.envs.edits import MOTOR_KINDS, Edit, compile_spec, parse_edits, validate_edits
from robolearn.errors import UserError, close_matches
from robolearn.robots.model import default_model_path
from robolearn.robots.spec import RobotSpec

# Kinds applied by the simulated motors rather than to the model.
_MOTOR_SIDE = (*MOTOR_KINDS, "joint_torque_limit", "action_delay")
_REFUSED = ("actuator_gain", "actuator_gear")


@dataclass(frozen=True)
class TargetPhysics:
    """A mismatch resolved against one robot: the edited model's edits and the motor-side values."""

    name: str
    edits: tuple[Edit, ...]
    model_edits: tuple[Edit, ...]  # applied to the MJCF
    kp_scale: np.ndarray  # (joints,) spec motor order: applied kp = commanded kp x this
    kd_scale: np.ndarray
    torque_limit: np.ndarray  # N m, spec motor order
    delay_s: float  # command-to-motor delay
    nominal: bool = field(default=False)

    def describe(self) -> str:
        """One line for status output: the mismatch's name and its edits."""
        if self.nominal:
            return f"mismatch {self.name}: none (the nominal robot)"
        kinds = ", ".join(f"{e.kind}({e.target})" if e.target else e.kind for e in self.edits)
        return f"mismatch {self.name}: {kinds}"

    def model_file(self, source: Path) -> Path:
        """The MJCF to simulate: `source` itself when nothing edits the model, else an edited copy."""
        if not self.model_edits:
            return source
        from robolearn.envs.edits import write_edited_model

        return write_edited_model(source, self.model_edits)


def _joint_rows(spec: RobotSpec, edit: Edit, where: str) -> np.ndarray:
    if edit.target == "*":
        return np.arange(spec.num_joints)
    if edit.target not in spec.joint_names:
        raise UserError(
            f"{where}.joint = '{edit.target}' is not a motor joint of the {spec.name}"
            f"{close_matches(str(edit.target), spec.joint_names)}; joints: {', '.join(spec.joint_names)}"
        )
    return np.array([spec.joint_names.index(str(edit.target))])


def target_physics(
    spec: RobotSpec,
    edits: Sequence[Edit | Mapping[str, Any]] | None,
    model_path: str | Path | None = None,
    name: str = "custom",
    where: str = "mismatch.edits",
) -> TargetPhysics:
    """Resolve a mismatch for `spec` (checked against its model before any work); one-line errors."""
    given = list(edits or ())
    items: list[Edit] = (
        [e for e in given if isinstance(e, Edit)]
        if all(isinstance(e, Edit) for e in given)
        else parse_edits(given, where)  # type: ignore[arg-type]
    )
    n = spec.num_joints
    if not items:
        return TargetPhysics(
            name, (), (), np.ones(n), np.ones(n), spec.torque_limit_array.astype(np.float64), 0.0, True
        )
    source = default_model_path(spec) if model_path is None else Path(model_path).expanduser()
    if not source.is_file():
        raise UserError(f"robot model file not found: {source}")
    model = compile_spec(mujoco.MjSpec.from_file(str(source)))
    validate_edits(model, items, where=where, model_name=f"the {spec.name} model ({source.name})")
    kp, kd = np.ones(n), np.ones(n)
    limit = spec.torque_limit_array.astype(np.float64).copy()
    delay_steps = 0
    for i, edit in enumerate(items):
        at = f"{where}[{i}]"
        if edit.kind in _REFUSED:
            raise UserError(
                f"{at}.kind = '{edit.kind}' has no effect on a deploy target: the motor PD law sets the"
                " actuators; weaken the motors with motor_kp / motor_kd or joint_torque_limit"
            )
        if edit.kind in ("motor_kp", "motor_kd", "joint_torque_limit"):
            rows = _joint_rows(spec, edit, at)
            if edit.kind == "motor_kp":
                kp[rows] *= edit.scale[0]  # type: ignore[index]
            elif edit.kind == "motor_kd":
                kd[rows] *= edit.scale[0]  # type: ignore[index]
            elif edit.scale is not None:
                limit[rows] *= edit.scale[0]
            else:
                limit[rows] = edit.value[0]  # type: ignore[index]
        elif edit.kind == "action_delay":
            delay_steps += int(edit.steps or 0)
    return TargetPhysics(
        name=name,
        edits=tuple(items),
        model_edits=tuple(e for e in items if e.kind not in _MOTOR_SIDE),
        kp_scale=kp,
        kd_scale=kd,
        torque_limit=limit,
        delay_s=delay_steps * spec.control_dt,
    )


def mismatch_label(name: str, edits: Sequence[Mapping[str, Any]]) -> str:
    """`name` when the edits are configs/mismatch/<name>.yaml's, else custom-<digest of the edits>:
    an inline `mismatch.edits=[...]` must not pass for the named mismatch it overrode."""
    import hashlib
    import json

    from omegaconf import OmegaConf

    from robolearn.resources import configs_dir

    path = configs_dir() / "mismatch" / f"{name}.yaml"
    given = [dict(e) for e in edits]
    if path.is_file():
        stored = OmegaConf.to_container(OmegaConf.load(path), resolve=True)
        if isinstance(stored, dict) and [dict(e) for e in stored.get("edits") or []] == given:
            return name
    if not given:
        return "none"
    digest = hashlib.sha256(json.dumps(given, sort_keys=True).encode()).hexdigest()[:8]
    return f"custom-{digest}"


def target_from_config(cfg: Any, spec: RobotSpec) -> TargetPhysics:
    """The deploy config's `mismatch` node ({name, edits}) resolved for `spec`."""
    node = cfg.get("mismatch") if hasattr(cfg, "get") else None
    if node is None:
        return target_physics(spec, (), cfg.robot.model, name="none")
    from omegaconf import OmegaConf

    raw = OmegaConf.to_container(node, resolve=True) if OmegaConf.is_config(node) else node
    if not isinstance(raw, Mapping):
        raise UserError(
            f"mismatch = {raw!r} is not a mapping; pick one with mismatch=<name> (configs/mismatch/)"
        )
    edits = list(raw.get("edits") or ())
    return target_physics(
        spec, edits, cfg.robot.model, name=mismatch_label(str(raw.get("name") or "none"), edits)
    )
