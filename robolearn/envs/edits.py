"""Physical edits to a MuJoCo model (ARCHITECTURE.md contract 7), applied with `mujoco.MjSpec`.

One format serves HyperCRL's task sequences, ASAP's sim-real mismatch, SysID's fitted parameters
and domain-randomisation ranges: a list of `Edit`s, each naming its target by name, validated
against the model before any work, and applied to a fresh copy of the spec (the original is never
touched).

Kinds and the field that names their target (a YAML item is `{kind: ..., <field>: name, ...}`):

| kind           | target field | parameters                                                         |
|----------------|--------------|--------------------------------------------------------------------|
| body_mass      | body         | scale, or value (kg); inertia scales with the mass                 |
| body_size      | body         | scale: every geom's size, fromto and pos, and the positions of the |
|                |              | body's sites, joints and child bodies, about the body frame        |
| geom_size      | geom         | scale (1 or 3 numbers) of the geom's `size` only (HyperCRL's       |
|                |              | "big/small body part" variants: perturbed_bodypart_env.py)         |
| body_com       | body         | offset (3) added to the CoM, or value (3) in the body frame        |
| joint_damping  | joint or *   | scale, or value                                                    |
| joint_friction | joint or *   | scale, or value (dry friction: MuJoCo's frictionloss)              |
| joint_armature | joint or *   | scale, or value                                                    |
| joint_torque_  | joint or *   | scale, or value (N m or N): the joint's actuator-force limit; a    |
| limit          |              | scale multiplies the tightest of its actuators' limits             |
| actuator_gear  | actuator or *| scale, or value (gear[0])                                          |
| actuator_gain  | actuator or *| scale of the actuator's strength: gainprm[0] and, for affine       |
|                |              | biases (position/velocity servos), biasprm[1:3] with it            |
| geom_friction  | geom, body   | scale or value: 1 number for the sliding coefficient only, or 3    |
|                | or *         | (sliding, torsional, rolling); a body name edits all its geoms     |
| gravity        | -            | scale, or value (3 numbers, m/s^2)                                 |
| payload        | body (parent)| mass (kg), pos (3, parent frame; default 0), size (sphere radius,  |
|                |              | default 0.05), name (default payload_<n>); a non-colliding sphere  |
| action_delay   | -            | steps (int >= 0): a wrapper, not a model edit                      |
| motor_kp       | joint or *   | scale of the proportional gain the joint's motor applies against   |
|                |              | the commanded kp (a weaker motor: 0.65); the deploy simulator's    |
|                |              | motor law, not a model edit (robolearn.deploy.mismatch)            |
| motor_kd       | joint or *   | scale of the applied damping gain against the commanded kd, as     |
|                |              | motor_kp                                                           |

Order: size edits (body_size, geom_size) apply first, with the model's own compiler settings (so a
bigger geom is heavier when the model takes its inertia from geoms, as the official HyperCRL
variants do); the rest apply in list order. Mass edits (body_mass, body_com, payload) first freeze
every body's compiled inertia as explicit and switch off inertia-from-geoms and settotalmass, so a
scale is exact with respect to the model that would otherwise be simulated.

robolearn task ids (robolearn/Go2Velocity-v1, ...) load an edited copy of their robot's MJCF via
their `model_path`; their PD law owns the actuators, so actuator_gain/actuator_gear are refused
there (joint_torque_limit weakens a joint).

Pendulum-v1 (classic control, no MuJoCo model) takes body_mass, body_size (body `pole`: its `m`
and `l`), gravity (its `g`: value must be (0, 0, -g)) and action_delay.
"""

from __future__ import annotations

import hashlib
import math
import tempfile
import warnings
from collections import deque
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, SupportsFloat, cast

import gymnasium as gym
import mujoco
import numpy as np

from robolearn.errors import UserError, close_matches
from robolearn.utils.io import atomic_write_text

# kind -> the YAML field that names its target (None: no target).
TARGET_FIELD: dict[str, str | None] = {
    "body_mass": "body",
    "body_size": "body",
    "geom_size": "geom",
    "body_com": "body",
    "joint_damping": "joint",
    "joint_friction": "joint",
    "joint_armature": "joint",
    "joint_torque_limit": "joint",
    "actuator_gear": "actuator",
    "actuator_gain": "actuator",
    "geom_friction": "geom",
    "gravity": None,
    "payload": "body",
    "action_delay": None,
    "motor_kp": "joint",
    "motor_kd": "joint",
}
KINDS = tuple(TARGET_FIELD)
# Kinds the deploy simulator's motor PD law applies (robolearn.deploy.mismatch), not the model.
MOTOR_KINDS = ("motor_kp", "motor_kd")

# kind -> (required parameter groups: one of each tuple, allowed parameters)
_PARAMS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "body_mass": (("scale", "value"), ("scale", "value")),
    "body_size": (("scale",), ("scale",)),
    "geom_size": (("scale",), ("scale",)),
    "body_com": (("offset", "value"), ("offset", "value")),
    "joint_damping": (("scale", "value"), ("scale", "value")),
    "joint_friction": (("scale", "value"), ("scale", "value")),
    "joint_armature": (("scale", "value"), ("scale", "value")),
    "joint_torque_limit": (("scale", "value"), ("scale", "value")),
    "actuator_gear": (("scale", "value"), ("scale", "value")),
    "actuator_gain": (("scale",), ("scale",)),
    "geom_friction": (("scale", "value"), ("scale", "value")),
    "gravity": (("scale", "value"), ("scale", "value")),
    "payload": (("mass",), ("mass", "pos", "size", "name")),
    "action_delay": (("steps",), ("steps",)),
    "motor_kp": (("scale",), ("scale",)),
    "motor_kd": (("scale",), ("scale",)),
}
# Allowed lengths of vector parameters per kind (scalars are length 1).
_LENGTHS: dict[tuple[str, str], tuple[int, ...]] = {
    ("geom_size", "scale"): (1, 3),
    ("body_com", "offset"): (3,),
    ("body_com", "value"): (3,),
    ("geom_friction", "scale"): (1, 3),
    ("geom_friction", "value"): (1, 3),
    ("gravity", "value"): (3,),
    ("payload", "pos"): (3,),
}
# Targets that accept "*" (every joint / actuator / geom).
_WILDCARD_KINDS = {
    "joint_damping",
    "joint_friction",
    "joint_armature",
    "joint_torque_limit",
    "actuator_gear",
    "actuator_gain",
    "geom_friction",
    "motor_kp",
    "motor_kd",
}
_SIZE_KINDS = ("body_size", "geom_size")
_NONNEGATIVE_VALUE_KINDS = ("body_mass", "joint_damping", "joint_friction", "joint_armature", "geom_friction")
_POSITIVE_VALUE_KINDS = ("body_mass", "joint_torque_limit")
_INERTIA_KINDS = ("body_mass", "body_com", "payload")
PENDULUM_ID = "Pendulum-v1"
_PENDULUM_KINDS = ("body_mass", "body_size", "gravity", "action_delay")
_PENDULUM_BODIES = ("pole",)


@dataclass(frozen=True)
class Edit:
    """One physical edit: a kind, the name it targets, and its parameters (see the module table)."""

    kind: str
    target: str | None = None
    scale: tuple[float, ...] | None = None
    value: tuple[float, ...] | None = None
    offset: tuple[float, ...] | None = None
    mass: float | None = None
    pos: tuple[float, ...] | None = None
    size: float | None = None
    name: str | None = None
    steps: int | None = None

    @property
    def target_field(self) -> str | None:
        """The YAML field naming this edit's target (body, joint, geom, actuator), None if none."""
        return TARGET_FIELD[self.kind]

    def to_dict(self) -> dict[str, Any]:
        """The YAML/JSON form parse_edits reads back."""
        out: dict[str, Any] = {"kind": self.kind}
        if self.target_field is not None:
            out[self.target_field] = self.target
        for key in ("scale", "value", "offset", "pos"):
            vec = getattr(self, key)
            if vec is not None:
                out[key] = vec[0] if len(vec) == 1 else list(vec)
        for key in ("mass", "size", "name", "steps"):
            if getattr(self, key) is not None:
                out[key] = getattr(self, key)
        return out


# -- parsing ------------------------------------------------------------------------------------------
def _floats(raw: Any, where: str, lengths: tuple[int, ...]) -> tuple[float, ...]:
    items = list(raw) if isinstance(raw, list | tuple) else [raw]
    out = []
    for x in items:
        if isinstance(x, bool) or not isinstance(x, int | float) or not math.isfinite(float(x)):
            raise UserError(f"{where} = {raw!r} is not a finite number; give a number or a list of numbers")
        out.append(float(x))
    if len(out) not in lengths:
        want = " or ".join(str(n) for n in lengths)
        raise UserError(f"{where} = {raw!r} has {len(out)} numbers; give {want}")
    return tuple(out)


def _check_value_sign(kind: str, vec: tuple[float, ...], raw: Any, where: str) -> None:
    positive = kind in _POSITIVE_VALUE_KINDS
    if positive and any(v <= 0 for v in vec):
        raise UserError(f"{where}.value = {raw!r} must be > 0 for {kind}")
    if kind in _NONNEGATIVE_VALUE_KINDS and any(v < 0 for v in vec):
        raise UserError(f"{where}.value = {raw!r} must be >= 0 for {kind}")


def parse_edit(item: Mapping[str, Any], where: str = "edits[0]") -> Edit:
    """One edit from its mapping form; a bad field raises a one-line UserError naming `where`.<field>."""
    if not isinstance(item, Mapping):
        raise UserError(
            f"{where} = {item!r} is not a mapping; write {{kind: body_mass, body: torso, scale: 1.5}}"
        )
    kind = item.get("kind")
    if kind not in TARGET_FIELD:
        raise UserError(
            f"{where}.kind = {kind!r} is not an edit kind{close_matches(str(kind), KINDS)}; kinds: {', '.join(KINDS)}"
        )
    target_field = TARGET_FIELD[kind]
    required, allowed = _PARAMS[kind]
    known = {"kind", *allowed} | ({target_field} if target_field else set())
    for key in item:
        if key not in known:
            raise UserError(
                f"{where}.{key} is not a field of a {kind} edit{close_matches(str(key), known)}; "
                f"fields: {', '.join(sorted(known))}"
            )
    target = None
    if target_field is not None:
        target = item.get(target_field)
        if not isinstance(target, str) or not target:
            raise UserError(
                f"{where}.{target_field} = {target!r} is missing or not a name; give the {target_field}'s name"
            )
        if target == "*" and kind not in _WILDCARD_KINDS:
            raise UserError(
                f"{where}.{target_field} = '*' is not allowed for {kind}; name one {target_field}"
            )
    present = [p for p in required if p in item]
    if len(present) != 1:
        choice = " or ".join(required)
        raise UserError(
            f"{where} ({kind}) needs exactly one of: {choice}; it has {', '.join(present) or 'none'}"
        )
    fields: dict[str, Any] = {"kind": kind, "target": target}
    for key in ("scale", "value", "offset", "pos"):
        if key in item:
            vec = _floats(item[key], f"{where}.{key}", _LENGTHS.get((kind, key), (1,)))
            if key == "scale" and any(v <= 0 for v in vec):
                raise UserError(f"{where}.scale = {item[key]!r} must be > 0; give a positive factor")
            if key == "value":
                _check_value_sign(kind, vec, item[key], where)
            fields[key] = vec
    for key in ("mass", "size"):
        if key in item:
            (v,) = _floats(item[key], f"{where}.{key}", (1,))
            if v <= 0:
                raise UserError(f"{where}.{key} = {item[key]!r} must be > 0")
            fields[key] = v
    if "name" in item:
        if not isinstance(item["name"], str) or not item["name"]:
            raise UserError(f"{where}.name = {item['name']!r} is not a name")
        fields["name"] = item["name"]
    if "steps" in item:
        steps = item["steps"]
        if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
            raise UserError(f"{where}.steps = {steps!r} must be an integer >= 0 (env steps of delay)")
        fields["steps"] = steps
    return Edit(**fields)


def parse_edits(items: Iterable[Mapping[str, Any]] | None, where: str = "edits") -> list[Edit]:
    """Edits from their mapping forms (a YAML list); the first bad field raises a one-line UserError."""
    if items is None:
        return []
    if isinstance(items, Mapping | str) or not isinstance(items, Iterable):
        raise UserError(f"{where} = {items!r} is not a list; write a list of {{kind: ..., ...}} items")
    return [parse_edit(item, f"{where}[{i}]") for i, item in enumerate(items)]


# -- names in a model ---------------------------------------------------------------------------------
_OBJ = {
    "body": mujoco.mjtObj.mjOBJ_BODY,
    "joint": mujoco.mjtObj.mjOBJ_JOINT,
    "geom": mujoco.mjtObj.mjOBJ_GEOM,
    "actuator": mujoco.mjtObj.mjOBJ_ACTUATOR,
}
_COUNT = {"body": "nbody", "joint": "njnt", "geom": "ngeom", "actuator": "nu"}
_SPEC_LIST = {"body": "bodies", "joint": "joints", "geom": "geoms", "actuator": "actuators"}


def model_names(model: mujoco.MjModel | mujoco.MjSpec, what: str) -> list[str]:
    """The named bodies / joints / geoms / actuators of a compiled model or a spec (world excluded)."""
    if isinstance(model, mujoco.MjSpec):
        names = [e.name for e in getattr(model, _SPEC_LIST[what])]
    else:
        names = [mujoco.mj_id2name(model, _OBJ[what], i) or "" for i in range(getattr(model, _COUNT[what]))]
    return [n for n in names if n and n != "world"]


_PLURAL = {"body": "bodies", "geom or body": "geoms and bodies"}


def _name_error(where: str, name: str, what: str, model_name: str, names: Sequence[str]) -> UserError:
    listed = ", ".join(names) if len(names) <= 40 else ", ".join(names[:40]) + f", ... ({len(names)} in all)"
    return UserError(
        f"{where} = '{name}' is not a {what} of {model_name}{close_matches(name, names)}; "
        f"{_PLURAL.get(what, what + 's')}: {listed or '(none named)'}"
    )


def validate_edits(
    model: mujoco.MjModel | mujoco.MjSpec,
    edits: Sequence[Edit],
    *,
    where: str = "edits",
    model_name: str = "the model",
) -> None:
    """Check every edit's target against the model: one-line UserError naming `where`[i].<field>."""
    names = {what: model_names(model, what) for what in _OBJ}
    for i, edit in enumerate(edits):
        if edit.kind not in TARGET_FIELD:
            raise UserError(
                f"{where}[{i}].kind = {edit.kind!r} is not an edit kind; kinds: {', '.join(KINDS)}"
            )
        what = edit.target_field
        if what is None or edit.target is None or edit.target == "*":
            continue
        if edit.kind == "geom_friction":
            if edit.target not in names["geom"] and edit.target not in names["body"]:
                both = names["geom"] + names["body"]
                raise _name_error(f"{where}[{i}].geom", edit.target, "geom or body", model_name, both)
            continue
        if edit.target not in names[what]:
            raise _name_error(f"{where}[{i}].{what}", edit.target, what, model_name, names[what])
        if edit.kind == "payload":
            taken = names["body"]
            pname = edit.name or _payload_name(edits, i)
            if pname in taken:
                raise UserError(
                    f"{where}[{i}].name = '{pname}' is already a body of {model_name}; pick another name"
                )


def validate_pendulum_edits(edits: Sequence[Edit], *, where: str = "edits") -> None:
    """Check edits for Pendulum-v1 (its m, l, g): supported kinds, body `pole`, gravity along -z."""
    for i, edit in enumerate(edits):
        if edit.kind not in _PENDULUM_KINDS:
            raise UserError(
                f"{where}[{i}].kind = '{edit.kind}' is not supported on {PENDULUM_ID}; "
                f"it takes {', '.join(_PENDULUM_KINDS)}"
            )
        if edit.target_field == "body" and edit.target not in _PENDULUM_BODIES:
            raise _name_error(f"{where}[{i}].body", str(edit.target), "body", PENDULUM_ID, _PENDULUM_BODIES)
        if edit.kind == "gravity" and edit.value is not None:
            gx, gy, gz = edit.value
            if gx != 0 or gy != 0 or gz >= 0:
                raise UserError(
                    f"{where}[{i}].value = {list(edit.value)} must point down (0, 0, -g) on {PENDULUM_ID}"
                )


# -- applying -----------------------------------------------------------------------------------------
def _payload_name(edits: Sequence[Edit], index: int) -> str:
    return f"payload_{sum(1 for e in edits[:index] if e.kind == 'payload')}"


def _elements(spec: mujoco.MjSpec, what: str, target: str | None) -> list[Any]:
    items = list(getattr(spec, _SPEC_LIST[what]))
    if target == "*":
        return [e for e in items if e.name != "world"] if what == "body" else items
    return [e for e in items if e.name == target]


def _geoms_of(spec: mujoco.MjSpec, target: str | None) -> list[Any]:
    if target == "*":
        return list(spec.geoms)
    geoms = _elements(spec, "geom", target)
    if geoms:
        return geoms
    return [g for b in _elements(spec, "body", target) for g in b.geoms]


def _scaled(current: np.ndarray, edit: Edit) -> np.ndarray:
    """current * scale, or value (a scalar value sets the first entry, as MuJoCo's scalar attributes)."""
    out = np.array(current, dtype=np.float64)
    if edit.scale is not None:
        out *= np.asarray(edit.scale) if len(edit.scale) > 1 else edit.scale[0]
    elif edit.value is not None:
        if len(edit.value) == 1:
            out[0] = edit.value[0]
        else:
            out[: len(edit.value)] = edit.value
    return out


def _scale_body(body: Any, s: float) -> None:
    # Uniform scaling of everything defined in the body frame, so attached parts stay attached.
    for g in body.geoms:
        if g.type == mujoco.mjtGeom.mjGEOM_MESH:
            raise UserError(
                f"body_size cannot scale mesh geom '{g.name}' of body '{body.name}'; edit the mesh's scale"
            )
        g.size = np.asarray(g.size) * s
        if not math.isnan(g.fromto[0]):
            g.fromto = np.asarray(g.fromto) * s
        g.pos = np.asarray(g.pos) * s
    for child in [*body.sites, *body.joints, *body.bodies]:
        child.pos = np.asarray(child.pos) * s


def compile_spec(spec: mujoco.MjSpec) -> mujoco.MjModel:
    """spec.compile(), quiet about the model's own deprecated settotalmass (gymnasium's HalfCheetah has it)."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="compiler attribute 'settotalmass' is deprecated")
        return spec.compile()


def _joint_force_bound(model: mujoco.MjModel, joint: int) -> float:
    """The tightest symmetric limit on a joint's actuator force: its actfrcrange and its actuators' ranges."""
    bound = math.inf
    if model.jnt_actfrclimited[joint]:
        bound = min(bound, float(np.abs(model.jnt_actfrcrange[joint]).max()))
    for a in range(model.nu):
        if model.actuator_trntype[a] != mujoco.mjtTrn.mjTRN_JOINT or model.actuator_trnid[a, 0] != joint:
            continue
        gear = abs(float(model.actuator_gear[a, 0]))
        # A motor (fixed gain, no bias): its force is gain * ctrl, bounded by the control range.
        motor = (
            model.actuator_gaintype[a] == mujoco.mjtGain.mjGAIN_FIXED
            and model.actuator_biastype[a] == mujoco.mjtBias.mjBIAS_NONE
        )
        if motor and model.actuator_ctrllimited[a]:
            ctrl = float(np.abs(model.actuator_ctrlrange[a]).max())
            bound = min(bound, ctrl * abs(float(model.actuator_gainprm[a, 0])) * gear)
        if model.actuator_forcelimited[a]:
            bound = min(bound, float(np.abs(model.actuator_forcerange[a]).max()) * gear)
    return bound


def _freeze_inertia(spec: mujoco.MjSpec) -> None:
    """Make every body's compiled inertia explicit, with inertia-from-geoms and settotalmass off."""
    model = compile_spec(spec)
    for body in spec.bodies:
        if body.name == "world" or body.id <= 0:
            continue
        i = body.id
        if model.body_mass[i] <= 0:
            continue
        body.explicitinertial = True
        body.mass = float(model.body_mass[i])
        body.ipos = model.body_ipos[i].copy()
        body.iquat = model.body_iquat[i].copy()
        body.inertia = model.body_inertia[i].copy()
        body.fullinertia = np.array([math.nan, 0, 0, 0, 0, 0])
    spec.compiler.inertiafromgeom = mujoco.mjtInertiaFromGeom.mjINERTIAFROMGEOM_FALSE
    # settotalmass would rescale the frozen masses (and any payload) back to the model's total.
    spec.compiler.settotalmass = -1.0


def apply_edits(spec: mujoco.MjSpec, edits: Sequence[Edit]) -> mujoco.MjSpec:
    """A copy of `spec` with the edits applied (size edits first, then the rest in order)."""
    spec = spec.copy()
    for edit in edits:
        if edit.kind == "body_size":
            assert edit.scale is not None
            for body in _elements(spec, "body", edit.target):
                _scale_body(body, edit.scale[0])
        elif edit.kind == "geom_size":
            assert edit.scale is not None
            for g in _elements(spec, "geom", edit.target):
                g.size = np.asarray(g.size) * (
                    np.asarray(edit.scale) if len(edit.scale) == 3 else edit.scale[0]
                )
    if any(e.kind in _INERTIA_KINDS for e in edits):
        _freeze_inertia(spec)
    for index, edit in enumerate(edits):
        kind = edit.kind
        if kind in _SIZE_KINDS or kind == "action_delay" or kind in MOTOR_KINDS:
            continue
        if kind == "body_mass":
            for body in _elements(spec, "body", edit.target):
                if body.mass <= 0:
                    raise UserError(
                        f"body_mass on body '{body.name}', which has no mass; add mass with a payload edit instead"
                    )
                factor = edit.scale[0] if edit.scale is not None else edit.value[0] / body.mass  # type: ignore[index]
                body.mass = body.mass * factor
                body.inertia = np.asarray(body.inertia) * factor
        elif kind == "body_com":
            for body in _elements(spec, "body", edit.target):
                if edit.offset is not None:
                    body.ipos = np.asarray(body.ipos) + np.asarray(edit.offset)
                else:
                    body.ipos = np.asarray(edit.value)
        elif kind in ("joint_damping", "joint_friction", "joint_armature"):
            attr = {
                "joint_damping": "damping",
                "joint_friction": "frictionloss",
                "joint_armature": "armature",
            }[kind]
            for joint in _elements(spec, "joint", edit.target):
                current = np.atleast_1d(np.asarray(getattr(joint, attr), dtype=np.float64))
                new = _scaled(current, edit)
                setattr(joint, attr, new if np.ndim(getattr(joint, attr)) else float(new[0]))
        elif kind == "joint_torque_limit":
            compiled = compile_spec(spec)
            for joint in _elements(spec, "joint", edit.target):
                if edit.value is not None:
                    limit = edit.value[0]
                else:
                    assert edit.scale is not None
                    limit = _joint_force_bound(compiled, joint.id) * edit.scale[0]
                    if not math.isfinite(limit):
                        raise UserError(
                            f"joint_torque_limit scale on joint '{joint.name}', which has no force limit to scale; "
                            "give value (N m) instead"
                        )
                joint.actfrclimited = mujoco.mjtLimited.mjLIMITED_TRUE
                joint.actfrcrange = [-limit, limit]
        elif kind == "actuator_gear":
            for act in _elements(spec, "actuator", edit.target):
                act.gear = (
                    _scaled(np.asarray(act.gear), edit)
                    if edit.scale is None
                    else np.asarray(act.gear) * edit.scale[0]
                )
        elif kind == "actuator_gain":
            assert edit.scale is not None
            for act in _elements(spec, "actuator", edit.target):
                gain = np.asarray(act.gainprm, dtype=np.float64)
                gain[0] *= edit.scale[0]
                act.gainprm = gain
                if act.biastype == mujoco.mjtBias.mjBIAS_AFFINE:
                    # A servo's force is kp*ctrl - kp*q - kv*qdot: scale its bias terms with the gain.
                    bias = np.asarray(act.biasprm, dtype=np.float64)
                    bias[1:3] *= edit.scale[0]
                    act.biasprm = bias
        elif kind == "geom_friction":
            for g in _geoms_of(spec, edit.target):
                friction = np.asarray(g.friction, dtype=np.float64)
                if edit.scale is not None and len(edit.scale) == 1:
                    # One number is the sliding coefficient, as domain randomisation scales it
                    # (robolearn/envs/backends/base.py dynamics_fields).
                    friction[0] *= edit.scale[0]
                    g.friction = friction
                else:
                    g.friction = _scaled(friction, edit)
        elif kind == "gravity":
            if edit.scale is not None:
                spec.option.gravity = np.asarray(spec.option.gravity) * edit.scale[0]
            else:
                spec.option.gravity = np.asarray(edit.value)
        elif kind == "payload":
            assert edit.mass is not None
            (parent,) = _elements(spec, "body", edit.target)
            radius = edit.size if edit.size is not None else 0.05
            body = parent.add_body(
                name=edit.name or _payload_name(edits, index), pos=list(edit.pos or (0.0, 0.0, 0.0))
            )
            body.explicitinertial = True
            body.mass = edit.mass
            body.ipos = [0.0, 0.0, 0.0]
            body.inertia = [0.4 * edit.mass * radius**2] * 3  # solid sphere
            # Non-colliding: a payload adds mass, not contacts.
            body.add_geom(
                type=mujoco.mjtGeom.mjGEOM_SPHERE,
                size=[radius, 0, 0],
                contype=0,
                conaffinity=0,
                rgba=[0.9, 0.4, 0.1, 1.0],
            )
    return spec


# -- envs ---------------------------------------------------------------------------------------------
class ActionDelay(gym.Wrapper[Any, Any, Any, Any]):
    """Applies each action `steps` env steps late; the first `steps` steps apply zero action (clipped)."""

    def __init__(self, env: gym.Env[Any, Any], steps: int) -> None:
        super().__init__(env)
        self.steps = int(steps)
        space = env.action_space
        assert isinstance(space, gym.spaces.Box)
        self._idle = np.clip(np.zeros(space.shape, dtype=space.dtype), space.low, space.high)
        self._queue: deque[np.ndarray] = deque()

    def reset(self, **kwargs: Any) -> tuple[Any, dict[str, Any]]:
        """Reset the env and empty the queue of pending actions."""
        self._queue = deque([self._idle.copy() for _ in range(self.steps)])
        return self.env.reset(**kwargs)

    def step(self, action: Any) -> tuple[Any, SupportsFloat, bool, bool, dict[str, Any]]:
        """Queue `action` and step with the one queued `steps` steps ago."""
        self._queue.append(np.asarray(action, dtype=self._idle.dtype).copy())
        return self.env.step(self._queue.popleft())


_EDITED_CLASSES: dict[type, type] = {}


def _edited_class(base: type) -> type:
    """A subclass of a gymnasium MujocoEnv class that compiles its model through apply_edits."""
    if base not in _EDITED_CLASSES:

        def __init__(self: Any, *args: Any, robolearn_edits: Sequence[Edit] = (), **kwargs: Any) -> None:
            self._robolearn_edits = tuple(robolearn_edits)
            base.__init__(self, *args, **kwargs)  # type: ignore[misc]  # base is a class, not an instance

        def _initialize_simulation(self: Any) -> tuple[mujoco.MjModel, mujoco.MjData]:
            # MujocoEnv.__init__ calls this before it copies init_qpos, sets up the renderer and
            # derives dt, so all of those see the edited model.
            spec = apply_edits(mujoco.MjSpec.from_file(self.fullpath), self._robolearn_edits)
            model = compile_spec(spec)
            model.vis.global_.offwidth = max(model.vis.global_.offwidth, self.width)
            model.vis.global_.offheight = max(model.vis.global_.offheight, self.height)
            return model, mujoco.MjData(model)

        edited = type(
            f"Edited{base.__name__}",
            (base,),
            {"__init__": __init__, "_initialize_simulation": _initialize_simulation, "__module__": __name__},
        )
        _EDITED_CLASSES[base] = edited
    return _EDITED_CLASSES[base]


def _env_spec(env_id: str) -> gym.envs.registration.EnvSpec:
    try:
        return gym.spec(env_id)
    except gym.error.Error:
        ids = [k for k in gym.registry if "/" not in k or k.startswith("robolearn/")]
        raise UserError(
            f"env '{env_id}' is not a registered Gymnasium id{close_matches(env_id, ids)}"
        ) from None


def env_class(env_id: str) -> type:
    """The env class behind a registered id (its entry point, loaded)."""
    spec = _env_spec(env_id)
    entry = spec.entry_point
    if callable(entry):
        return entry if isinstance(entry, type) else type(None)
    module, _, attr = str(entry).partition(":")
    import importlib

    cls = getattr(importlib.import_module(module), attr)
    return cls if isinstance(cls, type) else type(None)


def is_mujoco_env(env_id: str) -> bool:
    """True when the id's class is a gymnasium MujocoEnv (the kind make_edited_env can edit)."""
    from gymnasium.envs.mujoco.mujoco_env import MujocoEnv

    cls = env_class(env_id)
    return isinstance(cls, type) and issubclass(cls, MujocoEnv)


def robolearn_model_file(env_id: str, gym_kwargs: Mapping[str, Any] | None = None) -> Path | None:
    """The MJCF a robolearn task id compiles (its model_path kwarg, else its robot's scene); None for other ids."""
    from robolearn.envs.tasks import TASKS, register_envs

    if env_id not in TASKS:
        return None
    register_envs()
    given = (gym_kwargs or {}).get("model_path")
    if given:
        return Path(str(given)).expanduser()
    from robolearn.robots.model import default_model_path
    from robolearn.robots.registry import get_robot_spec

    return default_model_path(get_robot_spec(str(TASKS[env_id].kwargs["robot"])))


def write_edited_model(source: Path, edits: Sequence[Edit], out_dir: Path | None = None) -> Path:
    """The edited model as a standalone MJCF file (asset folders made absolute), named by its content.

    For envs that load a model from a path (robolearn's tasks take `model_path`, and so do the
    batched backends): the file is written once per (source, edits) and kept, so an env rebuilt from
    its spec later still finds it.
    """
    spec = mujoco.MjSpec.from_file(str(source))
    edited = apply_edits(spec, edits)
    for attr in ("meshdir", "texturedir"):
        folder = getattr(edited, attr, "")
        if folder and not Path(folder).is_absolute():
            setattr(edited, attr, str((Path(source).parent / folder).resolve()))
    xml = edited.to_xml()
    digest = hashlib.sha256(xml.encode()).hexdigest()[:16]
    out = Path(out_dir) if out_dir is not None else Path(tempfile.gettempdir()) / "robolearn-edited-models"
    path = out / f"{Path(source).stem}_{digest}.xml"
    if not path.exists():
        atomic_write_text(path, xml)
    return path


def base_model(env_id: str, **gym_kwargs: Any) -> mujoco.MjModel:
    """The unedited compiled model of a Gymnasium MuJoCo env id or a robolearn task id."""
    robolearn_file = robolearn_model_file(env_id, gym_kwargs)
    if robolearn_file is not None:
        return compile_spec(mujoco.MjSpec.from_file(str(robolearn_file)))
    if not is_mujoco_env(env_id):
        raise UserError(
            f"env '{env_id}' is not a Gymnasium MuJoCo env; physical edits take MuJoCo envs "
            f"(HalfCheetah-v5, Pusher-v5, InvertedPendulum-v5, ...), robolearn task ids and {PENDULUM_ID}"
        )
    env = gym.make(env_id, disable_env_checker=True, **gym_kwargs)
    try:
        return env.unwrapped.model  # type: ignore[attr-defined]
    finally:
        env.close()


def validate_env_edits(
    env_id: str, edits: Sequence[Edit], *, where: str = "edits", gym_kwargs: Mapping[str, Any] | None = None
) -> None:
    """Validate edits against an env id's model (or Pendulum-v1's parameters) before any work."""
    if env_id == PENDULUM_ID:
        validate_pendulum_edits(edits, where=where)
        return
    validate_edits(base_model(env_id, **dict(gym_kwargs or {})), edits, where=where, model_name=env_id)
    for i, edit in enumerate(edits):
        if edit.kind in MOTOR_KINDS:
            raise UserError(
                f"{where}[{i}].kind = '{edit.kind}' acts in the deploy simulator's motors (a target's "
                f"mismatch: robolearn.deploy.mismatch), not in {env_id}; a training task randomises its "
                "gains with randomization.kp_scale / kd_scale"
            )
    if robolearn_model_file(env_id, gym_kwargs) is not None:
        for i, edit in enumerate(edits):
            if edit.kind in ("actuator_gain", "actuator_gear"):
                # The task's PD law rewrites its actuators' gains and folds gear into its limits.
                raise UserError(
                    f"{where}[{i}].kind = '{edit.kind}' has no effect on {env_id}: its PD law sets the actuators; "
                    "weaken a joint with joint_torque_limit instead"
                )


def _edit_pendulum(env: gym.Env[Any, Any], edits: Sequence[Edit]) -> None:
    pend = env.unwrapped
    for edit in edits:
        if edit.kind == "body_mass":
            pend.m = pend.m * edit.scale[0] if edit.scale is not None else edit.value[0]  # type: ignore[attr-defined, index]
        elif edit.kind == "body_size":
            pend.l = pend.l * edit.scale[0]  # type: ignore[attr-defined, index]
        elif edit.kind == "gravity":
            pend.g = pend.g * edit.scale[0] if edit.scale is not None else -edit.value[2]  # type: ignore[attr-defined, index]


def make_edited_env(env_id: str, edits: Sequence[Edit], **gym_kwargs: Any) -> gym.Env[Any, Any]:
    """A Gymnasium env of `env_id` whose simulated model carries the edits (action_delay as a wrapper)."""
    edits = tuple(edits)
    if env_id == PENDULUM_ID:
        validate_pendulum_edits(edits)
        env = gym.make(env_id, **gym_kwargs)
        _edit_pendulum(env, edits)
    elif (robolearn_file := robolearn_model_file(env_id, gym_kwargs)) is not None:
        # robolearn tasks compile their model from model_path: hand them the edited file.
        validate_env_edits(env_id, edits, gym_kwargs=gym_kwargs)
        model_edits = tuple(e for e in edits if e.kind != "action_delay")
        kwargs = dict(gym_kwargs)
        if model_edits:
            kwargs["model_path"] = str(write_edited_model(robolearn_file, model_edits))
        env = gym.make(env_id, **kwargs)
    else:
        validate_env_edits(env_id, edits, gym_kwargs=gym_kwargs)
        spec = _env_spec(env_id)
        edited = _edited_class(env_class(env_id))
        model_edits = tuple(e for e in edits if e.kind != "action_delay")
        env = (
            gym.make(spec, **gym_kwargs)
            if not model_edits
            else _make_with_class(spec, edited, model_edits, gym_kwargs)
        )
    for edit in edits:
        if edit.kind == "action_delay" and edit.steps:
            env = ActionDelay(env, edit.steps)
    return env


def _make_with_class(
    spec: gym.envs.registration.EnvSpec, cls: type, edits: tuple[Edit, ...], gym_kwargs: Mapping[str, Any]
) -> gym.Env[Any, Any]:
    import dataclasses

    # gym.make with the spec's own wrappers (time limit, order enforcing, checker), our class inside.
    edited_spec = dataclasses.replace(
        spec, entry_point=cast(Any, cls), kwargs={**spec.kwargs, "robolearn_edits": edits}
    )
    return gym.make(edited_spec, **gym_kwargs)
