"""Import an Isaac Lab rsl_rl run (params/env.yaml + the trained policy) as an ImportedPolicy.

What is read, and from where (Isaac Lab 2.x; isaac-sim/IsaacLab):
- params/env.yaml: Isaac Lab's dump of the env cfg (isaaclab/utils/io/yaml.py dump_yaml: class_to_dict
  then yaml.dump with the default Dumper, so tuples carry `!!python/tuple` tags and functions are
  written as "module:function" strings). From it: sim.dt * decimation (the policy period),
  scene.robot.init_state.joint_pos (regex -> default angle), scene.robot.actuators (stiffness and
  damping per regex), the one JointPositionAction term (joint_names regexes, scale, offset,
  use_default_offset, clip, preserve_order), observations.policy (terms in order with scale, clip,
  history_length; noise is training-only) and commands.<name>.ranges.
- params/agent.yaml: the rsl_rl runner cfg: clip_actions, obs_groups, and the network (rsl-rl-lib >= 4:
  `actor` {class_name MLPModel|RNNModel, hidden_dims, activation, obs_normalization, rnn_*}; older:
  `policy` {class_name ActorCritic|ActorCriticRecurrent, actor_hidden_dims, activation,
  actor_obs_normalization} and `empirical_normalization`).
- the policy, first found of: the `checkpoint` argument, exported/policy.onnx (Isaac Lab's exporter:
  input "obs", output "actions", normaliser inside; recurrent graphs add h_in/c_in -> h_out/c_out),
  exported/policy.pt (TorchScript, stateful when recurrent), the newest model_<iter>.pt (a raw
  rsl_rl checkpoint, rebuilt through rsl-rl-lib's MLPModel/RNNModel).

Joint order. Isaac Lab's articulation lists joints in PhysX's order: breadth-first through the
kinematic tree, siblings in the order of the source URDF (Go2: FL_hip, FR_hip, RL_hip, RR_hip,
FL_thigh, ...; unitree_rl_lab's Go2 deploy.yaml joint_ids_map [3, 0, 9, 6, 4, 1, 10, 7, 5, 2, 11, 8]),
unlike MuJoCo's depth-first order and the Unitree SDK's motor order. Everything is mapped BY NAME. The
order comes from, first found: the `joint_names` argument (a list, or a file with one name per line or
a YAML list), params/deploy.yaml's joint_ids_map over scene.robot.joint_sdk_names (unitree_rl_lab's
exporter), else breadth-first over robolearn's MJCF of the robot with the siblings put in the URDF's
order (URDF_SIBLING_ORDER; robolearn's Go2 MJCF lists legs in motor order FR, FL, RR, RL, the URDF
FL, FR, RL, RR). Isaac Lab's Newton backend orders depth-first instead: pass `joint_names` then.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from robolearn.errors import UserError, require
from robolearn.isaac.artifact import ImportedPolicy
from robolearn.robots.observations import ObsTerm
from robolearn.robots.registry import get_robot_spec
from robolearn.robots.spec import RobotSpec

# Isaac Lab's observation functions and the robolearn term each one is. Only Isaac Lab's own module
# (and Isaac Lab 1.x's omni.isaac.lab name for it) is trusted: a task's function of the same name may
# compute something else.
OBS_MODULES = ("isaaclab.envs.mdp.observations", "omni.isaac.lab.envs.mdp.observations")
OBS_FUNCTIONS = {
    "base_lin_vel": "base_lin_vel",
    "base_ang_vel": "base_ang_vel",
    "projected_gravity": "projected_gravity",
    "generated_commands": "commands",
    "joint_pos_rel": "joint_pos_rel",
    "joint_vel_rel": "joint_vel",
    "last_action": "last_action",
}
JOINT_TERMS = ("joint_pos_rel", "joint_vel", "last_action")
# Keys of an ObservationGroupCfg that are settings, not terms (isaaclab/managers/manager_term_cfg.py).
GROUP_SETTINGS = (
    "concatenate_terms",
    "concatenate_dim",
    "enable_corruption",
    "history_length",
    "flatten_history_dim",
)
# Actuator models whose stiffness/damping are the PD gains of the joint (isaaclab/actuators/actuator_cfg.py);
# actuator networks learn the motor and have no gains to carry over.
PD_ACTUATORS = ("ImplicitActuator", "IdealPDActuator", "DCMotor", "DelayedPDActuator", "RemotizedPDActuator")

# The URDF's sibling order where robolearn's MJCF lists a body's children differently (a child body
# whose name starts with an earlier prefix comes first). Go2: unitree_ros
# robots/go2_description/urdf/go2_description.urdf lists FL, FR, RL, RR; envs/go2/go2.xml FR, FL, RR, RL.
# robolearn's G1 models keep the URDF's order (left leg, right leg, waist/torso).
URDF_SIBLING_ORDER: dict[str, tuple[str, ...]] = {"go2": ("FL_", "FR_", "RL_", "RR_")}


# --- YAML -----------------------------------------------------------------------------------------


class _DumpLoader(yaml.SafeLoader):
    """SafeLoader that reads Isaac Lab's python/* tags as plain data (tuples become lists); nothing is
    imported or constructed."""


def _python_tag(loader: yaml.SafeLoader, suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node, deep=True)
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node, deep=True)
    return loader.construct_scalar(node)  # type: ignore[arg-type]


_DumpLoader.add_multi_constructor("tag:yaml.org,2002:python/", _python_tag)


def load_dump(path: Path) -> dict[str, Any]:
    """An Isaac Lab params/*.yaml as plain dicts and lists; UserError when missing or unreadable."""
    if not path.is_file():
        raise UserError(
            f"{path} not found; an Isaac Lab run directory has params/env.yaml and params/agent.yaml"
        )
    try:
        data = yaml.load(path.read_text(), Loader=_DumpLoader)
    except yaml.YAMLError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"{path} is not valid YAML: {first}") from None
    if not isinstance(data, dict):
        raise UserError(f"{path} must hold a mapping, got {type(data).__name__}")
    return data


def _get(data: Mapping[str, Any], path: str, where: str) -> Any:
    node: Any = data
    for part in path.split("."):
        if not isinstance(node, Mapping) or part not in node:
            raise UserError(f"{where} has no '{path}'; is it an Isaac Lab manager-based env cfg dump?")
        node = node[part]
    return node


# --- Regexes over joint names, as Isaac Lab resolves them (isaaclab/utils/string.py) --------------


def resolve_names(
    patterns: str | Sequence[str], names: Sequence[str], what: str, preserve_order: bool = False
) -> list[str]:
    """The names that fully match any pattern (Isaac Lab's resolve_matching_names): in `names` order, or
    pattern by pattern with preserve_order; UserError for a pattern matching nothing or a name matched twice."""
    keys = [patterns] if isinstance(patterns, str) else [str(p) for p in patterns]
    matched: dict[str, int] = {}
    for name in names:
        hits = [i for i, key in enumerate(keys) if re.fullmatch(key, name)]
        if len(hits) > 1:
            raise UserError(f"{what}: joint '{name}' matches both '{keys[hits[0]]}' and '{keys[hits[1]]}'")
        if hits:
            matched[name] = hits[0]
    unused = [key for i, key in enumerate(keys) if i not in matched.values()]
    if unused:
        raise UserError(f"{what}: '{unused[0]}' matches no joint of the articulation ({', '.join(names)})")
    if preserve_order:
        return sorted(matched, key=lambda n: (matched[n], list(names).index(n)))
    return [n for n in names if n in matched]


def resolve_values(values: Any, names: Sequence[str], default: float | None, what: str) -> dict[str, float]:
    """A float, or a {regex: float} dict, over names (Isaac Lab's resolve_matching_names_values):
    joint -> value; joints no regex matches get `default` (left out when None)."""
    if values is None:
        return {} if default is None else dict.fromkeys(names, default)
    if isinstance(values, bool) or not isinstance(values, int | float | Mapping):
        raise UserError(f"{what} = {values!r} is not a number or a {{joint regex: number}} mapping")
    if not isinstance(values, Mapping):
        return dict.fromkeys(names, float(values))
    out = {} if default is None else dict.fromkeys(names, default)
    keys = list(values)
    seen: set[str] = set()
    for name in names:
        hits = [k for k in keys if re.fullmatch(str(k), name)]
        if len(hits) > 1:
            raise UserError(f"{what}: joint '{name}' matches both '{hits[0]}' and '{hits[1]}'")
        if hits:
            value = values[hits[0]]
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise UserError(f"{what}['{hits[0]}'] = {value!r} is not a number")
            out[name] = float(value)
            seen.add(hits[0])
    unused = [k for k in keys if k not in seen]
    if unused:
        raise UserError(f"{what}: '{unused[0]}' matches no joint of the articulation")
    return out


# --- Joint order -----------------------------------------------------------------------------------


def breadth_first_joints(spec: RobotSpec) -> list[str]:
    """The spec's joints breadth-first through robolearn's MJCF tree (PhysX's articulation order),
    siblings in the URDF's order (URDF_SIBLING_ORDER), bodies without a joint merged into their parent."""
    import mujoco

    from robolearn.robots.model import load_model

    model = load_model(spec)
    children: dict[int, list[int]] = {}
    for body in range(1, model.nbody):
        children.setdefault(int(model.body_parentid[body]), []).append(body)
    prefixes = URDF_SIBLING_ORDER.get(spec.name, ())

    def rank(body: int) -> int:
        name = mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_BODY, body) or ""
        return next((i for i, p in enumerate(prefixes) if name.startswith(p)), len(prefixes))

    def hinge(body: int) -> str | None:
        for j in range(int(model.body_jntadr[body]), int(model.body_jntadr[body] + model.body_jntnum[body])):
            if model.jnt_type[j] == mujoco.mjtJoint.mjJNT_HINGE:
                return mujoco.mj_id2name(model, mujoco.mjtObj.mjOBJ_JOINT, j)
        return None

    def expand(bodies: list[int]) -> list[int]:
        # A body without a hinge is welded to its parent (PhysX merges it): its children sit at its level.
        out: list[int] = []
        for body in sorted(bodies, key=rank):  # stable: equal ranks keep the MJCF order
            out.extend([body] if hinge(body) is not None else expand(children.get(body, [])))
        return out

    floating = [b for b in children.get(0, []) if model.body_jntnum[b] > 0]
    level = expand([c for root in floating for c in children.get(root, [])])
    order: list[str] = []
    while level:
        order.extend(name for name in (hinge(b) for b in level) if name is not None)
        level = expand([c for b in level for c in children.get(b, [])])
    return [n for n in order if n in spec.joint_names]


def _read_joint_names(value: Sequence[str] | str | Path) -> list[str]:
    if isinstance(value, str | Path):
        path = Path(value).expanduser()
        if not path.is_file():
            raise UserError(f"joint_names file {path} not found; give one joint name per line or a YAML list")
        text = path.read_text()
        loaded = yaml.safe_load(text) if path.suffix in (".yaml", ".yml", ".json") else None
        names = loaded if isinstance(loaded, list) else [ln.strip() for ln in text.splitlines() if ln.strip()]
    else:
        names = list(value)
    if not names or not all(isinstance(n, str) and n for n in names):
        raise UserError(f"joint_names must be a non-empty list of joint names, got {names!r}")
    return [str(n) for n in names]


def articulation_joints(
    spec: RobotSpec, env: Mapping[str, Any], run_dir: Path, joint_names: Sequence[str] | str | Path | None
) -> tuple[list[str], str]:
    """The Isaac Lab articulation's joint names in its order, and where that order came from."""
    if joint_names is not None:
        names, origin = _read_joint_names(joint_names), "joint_names argument"
    else:
        deploy = run_dir / "params" / "deploy.yaml"
        robot = env.get("scene", {}).get("robot", {}) if isinstance(env.get("scene"), Mapping) else {}
        sdk = robot.get("joint_sdk_names") if isinstance(robot, Mapping) else None
        if deploy.is_file() and isinstance(sdk, list):
            ids = load_dump(deploy).get("joint_ids_map")
            if not isinstance(ids, list) or not all(isinstance(i, int) and 0 <= i < len(sdk) for i in ids):
                raise UserError(f"{deploy}: joint_ids_map {ids!r} does not index scene.robot.joint_sdk_names")
            names, origin = [str(sdk[i]) for i in ids], "params/deploy.yaml joint_ids_map"
        else:
            names, origin = breadth_first_joints(spec), f"breadth-first over robolearn's {spec.name} model"
    unknown = [n for n in names if n not in spec.joint_names]
    if unknown:
        raise UserError(
            f"Isaac Lab joint '{unknown[0]}' ({origin}) is not a joint of robolearn's {spec.name}"
            f" ({', '.join(spec.joint_names)}); pass joint_names with robolearn's names"
        )
    if len(set(names)) != len(names):
        dup = next(n for n in names if names.count(n) > 1)
        raise UserError(f"joint '{dup}' appears twice in the joint order ({origin})")
    return names, origin


# --- env.yaml: actions, defaults, gains, observations, commands ------------------------------------


def _func_name(term: Mapping[str, Any], key: str, where: str) -> tuple[str, str]:
    func = term.get(key)
    if not isinstance(func, str) or ":" not in func:
        raise UserError(f"{where}.{key} = {func!r} is not an Isaac Lab 'module:function' reference")
    module, _, name = func.partition(":")
    return module, name


def default_joint_pos(env: Mapping[str, Any], names: Sequence[str]) -> dict[str, float]:
    """scene.robot.init_state.joint_pos resolved over the articulation: joint -> angle (0 where no regex matches)."""
    values = _get(env, "scene.robot.init_state.joint_pos", "env.yaml")
    return resolve_values(values, names, 0.0, "scene.robot.init_state.joint_pos")


def actuator_gains(env: Mapping[str, Any], names: Sequence[str]) -> tuple[dict[str, float], dict[str, float]]:
    """(kp, kd) by joint from scene.robot.actuators; joints whose group leaves a gain null keep robolearn's."""
    groups = _get(env, "scene.robot.actuators", "env.yaml")
    if not isinstance(groups, Mapping):
        raise UserError(f"env.yaml scene.robot.actuators = {groups!r} is not a mapping of actuator groups")
    kp: dict[str, float] = {}
    kd: dict[str, float] = {}
    for group, cfg in groups.items():
        where = f"scene.robot.actuators.{group}"
        if not isinstance(cfg, Mapping):
            raise UserError(f"env.yaml {where} is not a mapping")
        kind = str(cfg.get("class_type", "")).rpartition(":")[2]
        if kind not in PD_ACTUATORS:
            raise UserError(
                f"env.yaml {where} is a {kind or 'class_type-less'} actuator; only PD actuators"
                f" ({', '.join(PD_ACTUATORS)}) carry gains robolearn's PD law can reproduce"
            )
        joints = resolve_names(cfg.get("joint_names_expr", []), names, f"{where}.joint_names_expr")
        for gains, key in ((kp, "stiffness"), (kd, "damping")):
            for joint, value in resolve_values(cfg.get(key), joints, None, f"{where}.{key}").items():
                if joint in gains:
                    raise UserError(
                        f"env.yaml: joint '{joint}' is in two actuator groups ({where} and another)"
                    )
                gains[joint] = value
    return kp, kd


def action_term(
    env: Mapping[str, Any], names: Sequence[str], defaults: Mapping[str, float]
) -> dict[str, Any]:
    """The one JointPositionAction: its joints in network order, scale and offset by joint, and the raw-action
    clip its per-joint target clip amounts to (None when unclipped)."""
    actions = _get(env, "actions", "env.yaml")
    terms = {k: v for k, v in actions.items() if v is not None} if isinstance(actions, Mapping) else {}
    if len(terms) != 1:
        raise UserError(
            f"env.yaml actions has {len(terms)} terms ({', '.join(terms) or 'none'}); the importer reads one"
            " JointPositionAction"
        )
    ((name, cfg),) = terms.items()
    where = f"actions.{name}"
    kind = str(cfg.get("class_type", "")).rpartition(":")[2]
    if kind != "JointPositionAction":
        raise UserError(
            f"env.yaml {where} is a {kind or 'class_type-less'} term; only JointPositionAction (target ="
            " offset + scale * action) maps to robolearn's contract"
        )
    joints = resolve_names(
        cfg.get("joint_names", []), names, f"{where}.joint_names", bool(cfg.get("preserve_order", False))
    )
    scale = resolve_values(cfg.get("scale", 1.0), joints, 1.0, f"{where}.scale")
    if cfg.get("use_default_offset", True):
        offset = {j: defaults[j] for j in joints}
    else:
        offset = resolve_values(cfg.get("offset", 0.0), joints, 0.0, f"{where}.offset")
        # robolearn has one default pose: the action's offset and joint_pos_rel's reference must agree.
        off = next((j for j in joints if abs(offset[j] - defaults[j]) > 1e-9), None)
        if off is not None:
            raise UserError(
                f"env.yaml {where}: offset {offset[off]} of {off} differs from its default joint position"
                f" {defaults[off]}; robolearn's contract needs offset == default (use_default_offset: true)"
            )
    for joint in joints:
        if not scale[joint] > 0:
            raise UserError(
                f"env.yaml {where}.scale of {joint} is {scale[joint]}; robolearn needs a scale > 0"
            )
    return {
        "name": name,
        "joints": joints,
        "scale": scale,
        "offset": offset,
        "clip": _target_clip(cfg, joints, scale, offset, where),
    }


def _target_clip(
    cfg: Mapping[str, Any],
    joints: Sequence[str],
    scale: Mapping[str, float],
    offset: Mapping[str, float],
    where: str,
) -> float | None:
    # JointAction.clip bounds the processed target per joint; robolearn clips the raw action symmetrically.
    # The two agree when every joint's bounds are offset -+ scale * c with one c.
    clip = cfg.get("clip")
    if clip is None:
        return None
    if not isinstance(clip, Mapping):
        raise UserError(f"env.yaml {where}.clip = {clip!r} is not a {{joint regex: [min, max]}} mapping")
    bounds: dict[str, Any] = {}
    for key, value in clip.items():
        for joint in resolve_names([str(key)], joints, f"{where}.clip"):
            bounds[joint] = value
    raw: set[float] = set()
    for joint in joints:
        if joint not in bounds:
            raise UserError(
                f"env.yaml {where}.clip leaves {joint} unclipped; robolearn clips every policy joint alike"
            )
        lo, hi = (float(v) for v in bounds[joint])
        c_lo, c_hi = (offset[joint] - lo) / scale[joint], (hi - offset[joint]) / scale[joint]
        raw.update((round(c_lo, 6), round(c_hi, 6)))
    if len(raw) != 1:
        raise UserError(
            f"env.yaml {where}.clip is not one symmetric bound on the raw action for every joint (raw bounds"
            f" {sorted(raw)}); robolearn's contract has one action clip"
        )
    return raw.pop()


def observation_terms(
    env: Mapping[str, Any], policy_joints: Sequence[str], names: Sequence[str], action_name: str
) -> dict[str, Any]:
    """observations.policy as robolearn ObsTerms in order, with the history length and the command term's name."""
    group = _get(env, "observations.policy", "env.yaml")
    if not isinstance(group, Mapping):
        raise UserError("env.yaml observations.policy is not a mapping of observation terms")
    if group.get("concatenate_terms", True) is not True:
        raise UserError(
            "env.yaml observations.policy.concatenate_terms is false; the policy must see one flat vector"
        )
    terms: list[ObsTerm] = []
    histories: dict[str, int] = {}
    command_name: str | None = None
    for key, cfg in group.items():
        if key in GROUP_SETTINGS or cfg is None:  # a None term is one the task switched off
            continue
        where = f"observations.policy.{key}"
        if not isinstance(cfg, Mapping) or "func" not in cfg:
            raise UserError(f"env.yaml {where} is not an observation term (no func)")
        module, func = _func_name(cfg, "func", where)
        if module not in OBS_MODULES or func not in OBS_FUNCTIONS:
            raise UserError(
                f"observation term '{key}' uses {module}:{func}, which robolearn cannot compute on the robot;"
                f" supported: {', '.join(f'isaaclab.envs.mdp.observations:{f}' for f in OBS_FUNCTIONS)}"
            )
        params = cfg.get("params") or {}
        if cfg.get("modifiers"):
            raise UserError(f"observation term '{key}' has modifiers, which robolearn does not reproduce")
        if func == "generated_commands":
            command_name = str(params.get("command_name"))
        if func == "last_action" and params.get("action_name") not in (None, action_name):
            raise UserError(
                f"observation term '{key}' observes action '{params.get('action_name')}', not '{action_name}'"
            )
        name = OBS_FUNCTIONS[func]
        if name in JOINT_TERMS:
            _check_observed_joints(key, params, policy_joints, names, name == "last_action")
        histories[key] = int(cfg.get("history_length") or 0)
        terms.append(_obs_term(name, cfg, key, len(policy_joints)))
    if not terms:
        raise UserError("env.yaml observations.policy has no terms")
    history = group.get("history_length")
    if history is None:
        lengths = set(histories.values())
        if len(lengths) != 1:
            raise UserError(
                "env.yaml observations.policy: terms keep different history lengths"
                f" ({', '.join(f'{k}={v}' for k, v in histories.items())}); robolearn stacks whole frames"
            )
        history = lengths.pop()
    if int(history) > 1 and group.get("flatten_history_dim", True) is not True:
        raise UserError(
            "env.yaml observations.policy.flatten_history_dim is false; the policy must see one flat vector"
        )
    return {"terms": tuple(terms), "history_length": max(1, int(history)), "command_name": command_name}


def _check_observed_joints(
    key: str, params: Mapping[str, Any], policy_joints: Sequence[str], names: Sequence[str], is_action: bool
) -> None:
    # robolearn computes the joint terms over the policy joints, in the network's order; Isaac Lab over
    # asset_cfg's joints in articulation order (all of them by default). They must be the same list.
    if is_action:
        return
    asset = params.get("asset_cfg") or {}
    patterns = asset.get("joint_names") if isinstance(asset, Mapping) else None
    observed = (
        names if patterns is None else resolve_names(patterns, names, f"observations.policy.{key}.asset_cfg")
    )
    if list(observed) != list(policy_joints):
        raise UserError(
            f"observation term '{key}' covers joints {', '.join(observed)} but the action drives"
            f" {', '.join(policy_joints)} (in that order); robolearn observes exactly the policy joints"
        )


def _obs_term(name: str, cfg: Mapping[str, Any], key: str, joints: int) -> ObsTerm:
    size = joints if name in JOINT_TERMS else 3
    scale_value = cfg.get("scale")
    scale: float | tuple[float, ...]
    if scale_value is None:
        scale = 1.0
    elif isinstance(scale_value, list):
        if len(scale_value) != size:
            raise UserError(f"observation term '{key}' has {len(scale_value)} scales for {size} values")
        scale = tuple(float(s) for s in scale_value)
    else:
        scale = float(scale_value)
    kwargs: dict[str, Any] = {"scale": scale}
    clip = cfg.get("clip")
    if clip is not None:
        if not (isinstance(clip, list) and len(clip) == 2):
            raise UserError(f"observation term '{key}' clip = {clip!r} is not [min, max]")
        kwargs["clip"] = (float(clip[0]), float(clip[1]))
    return ObsTerm(name, **kwargs)


def command_ranges(env: Mapping[str, Any], command_name: str | None) -> tuple[tuple[float, float], ...]:
    """(vx, vy, yaw rate) ranges of the velocity command the policy observes; zeros when it observes none."""
    if command_name is None:
        return ((0.0, 0.0),) * 3
    cfg = _get(env, f"commands.{command_name}", "env.yaml")
    ranges = cfg.get("ranges") if isinstance(cfg, Mapping) else None
    if not isinstance(ranges, Mapping):
        raise UserError(f"env.yaml commands.{command_name} has no ranges; is it a UniformVelocityCommand?")
    out = []
    for key in ("lin_vel_x", "lin_vel_y", "ang_vel_z"):
        value = ranges.get(key)
        if not (isinstance(value, list) and len(value) == 2):
            raise UserError(f"env.yaml commands.{command_name}.ranges.{key} = {value!r} is not [min, max]")
        out.append((float(value[0]), float(value[1])))
    return tuple(out)


def history_index(terms: Sequence[ObsTerm], spec: RobotSpec, history: int) -> np.ndarray:
    """For each position of Isaac Lab's observation, where it sits in robolearn's input.

    robolearn stacks whole frames (oldest first); Isaac Lab keeps each term's history together
    (ObservationManager with flatten_history_dim: term 1 oldest..newest, term 2 oldest..newest, ...).
    """
    sizes = [t.size(spec) for t in terms]
    frame = sum(sizes)
    index: list[int] = []
    start = 0
    for size in sizes:
        for h in range(history):
            index.extend(range(h * frame + start, h * frame + start + size))
        start += size
    return np.asarray(index, dtype=np.int64)


# --- The policy: eager torch modules with explicit recurrent state ---------------------------------


def _torch() -> Any:
    return require("torch", "importing an Isaac Lab policy", "deploy")


class LoadedPolicy:
    """An eager module (forward(obs) or forward(obs, *state) -> (action, *state)) over Isaac Lab's
    observation layout, the original policy as a stateful one-step callable, and the state shapes."""

    def __init__(
        self,
        module: Any,
        reference: Callable[[np.ndarray], np.ndarray],
        state_shapes: tuple[tuple[int, ...], ...],
        kind: str,
    ) -> None:
        self.module = module
        self.reference = reference
        self.state_shapes = state_shapes
        self.kind = kind


def _modules() -> dict[str, Any]:
    """The torch module classes, defined on first use so importing this file does not import torch."""
    cached = _MODULES.get("classes")
    if cached is not None:
        return cached
    torch = _torch()
    nn = torch.nn

    class EmpiricalNorm(nn.Module):  # type: ignore[name-defined]
        """rsl_rl's EmpiricalNormalization at inference: (x - mean) / (std + eps)."""

        def __init__(self, mean: Any, std: Any, eps: float) -> None:
            super().__init__()
            self.register_buffer("mean", mean.detach().clone().float())
            self.register_buffer("std", std.detach().clone().float())
            self.eps = float(eps)

        def forward(self, x: Any) -> Any:
            return (x - self.mean) / (self.std + self.eps)

    class Actor(nn.Module):  # type: ignore[name-defined]
        """normaliser -> [LSTM/GRU with explicit state] -> MLP -> deterministic output, as rsl_rl's exporters run it."""

        def __init__(self, normalizer: Any, mlp: Any, rnn: Any = None, output: Any = None) -> None:
            super().__init__()
            self.normalizer = normalizer
            self.rnn = rnn
            self.mlp = mlp
            self.output = output if output is not None else nn.Identity()
            self.is_lstm = isinstance(rnn, nn.LSTM)

        def forward(self, obs: Any, *state: Any) -> Any:
            x = self.normalizer(obs)
            if self.rnn is None:
                return self.output(self.mlp(x))
            if self.is_lstm:
                y, (h, c) = self.rnn(x.unsqueeze(0), (state[0], state[1]))
                return self.output(self.mlp(y.squeeze(0))), h, c
            y, h = self.rnn(x.unsqueeze(0), state[0])
            return self.output(self.mlp(y.squeeze(0))), h

    class Reordered(nn.Module):  # type: ignore[name-defined]
        """Feeds the inner network robolearn's frame-stacked input in Isaac Lab's term-major order."""

        def __init__(self, inner: Any, index: np.ndarray | None) -> None:
            super().__init__()
            self.inner = inner
            self.has_index = index is not None
            if index is not None:
                self.register_buffer("index", torch.as_tensor(index, dtype=torch.long))

        def forward(self, obs: Any, *state: Any) -> Any:
            if self.has_index:
                obs = obs.index_select(1, self.index)
            return self.inner(obs, *state)

    classes = {"EmpiricalNorm": EmpiricalNorm, "Actor": Actor, "Reordered": Reordered}
    _MODULES["classes"] = classes
    return classes


_MODULES: dict[str, Any] = {}


def _recurrent_shapes(rnn: Any) -> tuple[tuple[int, ...], ...]:
    torch = _torch()
    if rnn is None:
        return ()
    shape = (int(rnn.num_layers), 1, int(rnn.hidden_size))
    return (shape, shape) if isinstance(rnn, torch.nn.LSTM) else (shape,)


def _torch_reference(module: Any, reset: Callable[[], None]) -> Callable[[np.ndarray], np.ndarray]:
    """The original (stateful) torch policy as a one-step numpy callable with .reset(), its state zeroed first."""
    torch = _torch()

    def step(obs: np.ndarray) -> np.ndarray:
        with torch.no_grad():
            out = module(torch.as_tensor(np.asarray(obs, dtype=np.float32)))
        return np.asarray(out.numpy(), dtype=np.float64)

    reset()
    step.reset = reset  # type: ignore[attr-defined]
    return step


# TorchScript -> eager, by each scripted module's original class name.
_ACTIVATIONS = (
    "ELU",
    "ReLU",
    "Tanh",
    "Sigmoid",
    "LeakyReLU",
    "SELU",
    "SiLU",
    "GELU",
    "Softplus",
    "Mish",
    "Identity",
)


def eager_from_script(scripted: Any, where: str) -> Any:
    """An eager copy of a scripted rsl_rl / Isaac Lab module (Sequential/MLP of Linear and activations,
    LSTM, GRU, EmpiricalNormalization, identity output); UserError naming any other class."""
    torch = _torch()
    nn = torch.nn
    kind = str(getattr(scripted, "original_name", type(scripted).__name__))
    if kind in ("Sequential", "MLP"):
        return nn.Sequential(*[eager_from_script(c, f"{where}.{n}") for n, c in scripted.named_children()])
    if kind == "Linear":
        weight = scripted.weight.detach()
        bias = getattr(scripted, "bias", None)
        layer = nn.Linear(weight.shape[1], weight.shape[0], bias=bias is not None)
        layer.load_state_dict(scripted.state_dict())
        return layer
    if kind in _ACTIVATIONS:
        args = {
            "ELU": ("alpha",),
            "LeakyReLU": ("negative_slope",),
            "GELU": ("approximate",),
            "Softplus": ("beta", "threshold"),
        }.get(kind, ())
        return getattr(nn, kind)(**{a: getattr(scripted, a) for a in args})
    if kind in ("LSTM", "GRU"):
        if getattr(scripted, "batch_first", False) or getattr(scripted, "bidirectional", False):
            raise UserError(f"{where}: a batch-first or bidirectional {kind} is not an rsl_rl memory")
        rnn = getattr(nn, kind)(int(scripted.input_size), int(scripted.hidden_size), int(scripted.num_layers))
        rnn.load_state_dict(scripted.state_dict())
        return rnn
    if kind == "EmpiricalNormalization":
        return _modules()["EmpiricalNorm"](scripted._mean, scripted._std, float(scripted.eps))
    if kind == "_IdentityDeterministicOutput":
        return nn.Identity()
    raise UserError(f"{where} is a {kind}, which the Isaac Lab importer cannot rebuild")


def load_torchscript(path: Path) -> LoadedPolicy:
    """exported/policy.pt: Isaac Lab's exporter (actor, normalizer, rnn + hidden_state/cell_state buffers)
    or rsl-rl-lib's as_jit (mlp, obs_normalizer, rnn, deterministic_output), rebuilt eagerly."""
    torch = _torch()
    try:
        scripted = torch.jit.load(str(path), map_location="cpu")
    except (RuntimeError, ValueError) as exc:
        raise UserError(f"{path} is not a TorchScript file: {str(exc).strip().splitlines()[0]}") from None
    scripted.eval()
    children = dict(scripted.named_children())
    roles = {
        "normalizer": ("normalizer", "obs_normalizer"),
        "mlp": ("actor", "mlp", "student"),
        "rnn": ("rnn",),
        "output": ("deterministic_output",),
    }
    parts: dict[str, Any] = {}
    for role, keys in roles.items():
        found = [k for k in keys if k in children]
        parts[role] = eager_from_script(children[found[0]], f"{path.name}:{found[0]}") if found else None
    known = {k for keys in roles.values() for k in keys}
    unknown = [k for k in children if k not in known]
    if unknown or parts["mlp"] is None:
        raise UserError(
            f"{path} has modules {', '.join(children)}; the importer reads Isaac Lab's / rsl_rl's exporter"
            " layout (actor or mlp, optional normalizer, rnn, deterministic_output)"
        )
    normalizer = parts["normalizer"] if parts["normalizer"] is not None else torch.nn.Identity()
    actor = _modules()["Actor"](normalizer, parts["mlp"], parts["rnn"], parts["output"]).eval()
    shapes = _recurrent_shapes(parts["rnn"])

    buffers = [n for n, _ in scripted.named_buffers(recurse=False) if n in ("hidden_state", "cell_state")]

    def reset() -> None:
        # Isaac Lab's exporter scripts a no-op reset(); its state lives in these buffers.
        for name in buffers:
            getattr(scripted, name).zero_()

    return LoadedPolicy(actor, _torch_reference(scripted, reset), shapes, "torchscript")


def _network_cfg(agent: Mapping[str, Any]) -> dict[str, Any]:
    """The actor's network from agent.yaml in rsl-rl-lib >= 4's terms (MLPModel/RNNModel arguments)."""
    actor = agent.get("actor")
    if isinstance(actor, Mapping) and actor.get("class_name"):
        kind = str(actor["class_name"]).rpartition(".")[2]
        cfg = {
            "hidden_dims": actor.get("hidden_dims"),
            "activation": actor.get("activation", "elu"),
            "obs_normalization": bool(actor.get("obs_normalization", False)),
        }
        rnn = {k: actor.get(k) for k in ("rnn_type", "rnn_hidden_dim", "rnn_num_layers")}
    else:
        policy = agent.get("policy")
        if not isinstance(policy, Mapping) or not policy.get("class_name"):
            raise UserError(
                "params/agent.yaml has neither 'actor' nor 'policy' with a class_name; is it an rsl_rl cfg?"
            )
        legacy = str(policy["class_name"]).rpartition(".")[2]
        kind = {"ActorCritic": "MLPModel", "ActorCriticRecurrent": "RNNModel"}.get(legacy, legacy)
        cfg = {
            "hidden_dims": policy.get("actor_hidden_dims"),
            "activation": policy.get("activation", "elu"),
            "obs_normalization": bool(
                policy.get("actor_obs_normalization", agent.get("empirical_normalization", False))
            ),
        }
        rnn = {k: policy.get(k) for k in ("rnn_type", "rnn_hidden_dim", "rnn_num_layers")}
    if kind not in ("MLPModel", "RNNModel"):
        raise UserError(
            f"params/agent.yaml's actor is a {kind}; the importer rebuilds rsl_rl's MLPModel and RNNModel"
            " (ActorCritic, ActorCriticRecurrent): export it with Isaac Lab's play.py and import exported/policy.onnx"
        )
    if not isinstance(cfg["hidden_dims"], list) or not cfg["hidden_dims"]:
        raise UserError(f"params/agent.yaml: actor hidden dims {cfg['hidden_dims']!r} is not a list of sizes")
    if kind == "RNNModel":
        cfg.update({k: v for k, v in rnn.items() if v is not None})
    cfg["kind"] = kind
    return cfg


def _legacy_actor_state(checkpoint: Mapping[str, Any], recurrent: bool) -> dict[str, Any]:
    """rsl-rl-lib <= 3's ActorCritic keys (actor.*, memory_a.rnn.*, actor_obs_normalizer.* or the separate
    obs_norm_state_dict) renamed to MLPModel/RNNModel's (mlp.*, rnn.rnn.*, obs_normalizer.*)."""
    model = checkpoint["model_state_dict"]
    state: dict[str, Any] = {}
    for key, value in model.items():
        if key.startswith("actor."):
            state["mlp." + key.removeprefix("actor.")] = value
        elif key.startswith("memory_a.rnn.") and recurrent:
            state["rnn.rnn." + key.removeprefix("memory_a.rnn.")] = value
        elif key.startswith("actor_obs_normalizer."):
            state["obs_normalizer." + key.removeprefix("actor_obs_normalizer.")] = value
    for key, value in (checkpoint.get("obs_norm_state_dict") or {}).items():
        state["obs_normalizer." + key] = value
    return state


def load_rsl_rl_checkpoint(
    path: Path, agent: Mapping[str, Any], obs_size: int, action_size: int
) -> LoadedPolicy:
    """A raw model_<iter>.pt rebuilt through rsl-rl-lib's MLPModel / RNNModel with agent.yaml's sizes."""
    torch = _torch()
    require("rsl_rl", "importing a raw rsl_rl checkpoint", "rsl", "rsl-rl-lib")
    from rsl_rl.models import MLPModel, RNNModel
    from tensordict import TensorDict

    try:
        checkpoint = torch.load(str(path), map_location="cpu", weights_only=True)
    except Exception as exc:  # torch raises several types for a file that is not a checkpoint
        raise UserError(f"{path} is not a torch checkpoint: {str(exc).strip().splitlines()[0]}") from None
    if not isinstance(checkpoint, Mapping):
        raise UserError(f"{path} holds a {type(checkpoint).__name__}, not an rsl_rl checkpoint dict")
    cfg = _network_cfg(agent)
    kind = cfg.pop("kind")
    groups = agent.get("obs_groups")
    actor_groups = groups.get("actor", groups.get("policy")) if isinstance(groups, Mapping) else None
    if actor_groups not in (None, ["policy"]):
        raise UserError(
            f"params/agent.yaml obs_groups gives the actor {actor_groups}; the importer reads policies that see"
            " only the 'policy' observation group"
        )
    if "actor_state_dict" in checkpoint:
        state = dict(checkpoint["actor_state_dict"])
    elif "model_state_dict" in checkpoint:
        state = _legacy_actor_state(checkpoint, kind == "RNNModel")
    else:
        raise UserError(
            f"{path} has neither actor_state_dict nor model_state_dict; is it an rsl_rl checkpoint?"
        )
    # The distribution's std is a training parameter: the deterministic action is the MLP's mean.
    state = {k: v for k, v in state.items() if not k.startswith("distribution.")}
    obs = TensorDict({"policy": torch.zeros(1, obs_size)}, batch_size=[1])
    model_class = RNNModel if kind == "RNNModel" else MLPModel
    try:
        model = model_class(obs, {"actor": ["policy"]}, "actor", action_size, **cfg)
        model.load_state_dict(state, strict=True)
    except (RuntimeError, TypeError, ValueError, KeyError) as exc:
        raise UserError(
            f"{path} does not fit agent.yaml's {kind} ({cfg}) with {obs_size} observations and {action_size}"
            f" actions: {str(exc).strip().splitlines()[0]}"
        ) from None
    model.eval()
    rnn = model.rnn.rnn if kind == "RNNModel" else None
    actor = _modules()["Actor"](model.obs_normalizer, model.mlp, rnn).eval()
    shapes = _recurrent_shapes(rnn)
    # The reference is rsl-rl-lib's own TorchScript-ready exporter module (stateful for an RNN).
    exported = model.as_jit().eval()

    def reset() -> None:
        reset_fn = getattr(exported, "reset", None)
        if callable(reset_fn):
            reset_fn()

    return LoadedPolicy(actor, _torch_reference(exported, reset), shapes, f"rsl_rl {kind} checkpoint")


# --- ONNX -> torch: re-running the exported graph op by op ---------------------------------------

# The ops torch's exporters emit for rsl_rl's networks (MLP, EmpiricalNormalization, LSTM/GRU memory).
# fmt: off
ONNX_OPS = (
    "Gemm", "MatMul", "Add", "Sub", "Mul", "Div", "Neg", "Sqrt", "Pow", "Max", "Min", "Clip", "Elu", "Relu",
    "LeakyRelu", "Selu", "Tanh", "Sigmoid", "Softplus", "Identity", "Constant", "Cast", "Unsqueeze", "Squeeze",
    "Reshape", "Flatten", "Transpose", "Concat", "Slice", "Gather", "Shape", "LSTM", "GRU",
)
# fmt: on


def _onnx_graph_module(model: Any, path: Path) -> Any:
    """An eager torch module that computes the ONNX graph with torch ops (so torch can re-export it)."""
    torch = _torch()
    nn = torch.nn
    from onnx import numpy_helper

    graph = model.graph
    bad = sorted(
        {n.op_type for n in graph.node if n.op_type not in ONNX_OPS or n.domain not in ("", "ai.onnx")}
    )
    if bad:
        raise UserError(
            f"{path} uses ONNX op(s) {', '.join(bad)}, which the Isaac Lab importer does not rebuild"
        )

    def attrs(node: Any) -> dict[str, Any]:
        from onnx import helper

        return {a.name: helper.get_attribute_value(a) for a in node.attribute}

    class OnnxGraph(nn.Module):  # type: ignore[name-defined]
        def __init__(self) -> None:
            super().__init__()
            self.names: dict[str, str] = {}
            for i, init in enumerate(graph.initializer):
                key = f"c{i}"
                self.register_buffer(key, torch.as_tensor(numpy_helper.to_array(init).copy()))
                self.names[init.name] = key
            self.rnns = nn.ModuleDict()
            for i, node in enumerate(graph.node):
                if node.op_type in ("LSTM", "GRU"):
                    self.rnns[str(i)] = self._rnn(node, attrs(node))
            initialized = {init.name for init in graph.initializer}
            self.inputs = [i.name for i in graph.input if i.name not in initialized]
            self.outputs = [o.name for o in graph.output]

        def _rnn(self, node: Any, a: dict[str, Any]) -> Any:
            if a.get("direction", b"forward") not in (b"forward", "forward") or a.get("layout", 0) != 0:
                raise UserError(f"{path}: {node.op_type} {node.name} is not a forward, sequence-first RNN")
            w = numpy_helper.to_array(self._init(node.input[1]))[0]
            r = numpy_helper.to_array(self._init(node.input[2]))[0]
            hidden = int(a["hidden_size"])
            gates = 4 if node.op_type == "LSTM" else 3
            b = (
                numpy_helper.to_array(self._init(node.input[3]))[0]
                if len(node.input) > 3 and node.input[3]
                else np.zeros(2 * gates * hidden, dtype=np.float32)
            )
            # ONNX orders an LSTM's gates i, o, f, c and a GRU's z, r, h; torch i, f, c, o and r, z, h.
            order = [0, 2, 3, 1] if node.op_type == "LSTM" else [1, 0, 2]
            if node.op_type == "GRU" and a.get("linear_before_reset", 0) != 1:
                raise UserError(
                    f"{path}: GRU {node.name} has linear_before_reset=0, which torch's GRU cannot compute"
                )

            def reorder(m: np.ndarray) -> Any:
                return torch.as_tensor(
                    np.concatenate([m[g * hidden : (g + 1) * hidden] for g in order]).copy()
                )

            rnn = (nn.LSTM if node.op_type == "LSTM" else nn.GRU)(w.shape[1], hidden, 1)
            rnn.weight_ih_l0.data = reorder(w)
            rnn.weight_hh_l0.data = reorder(r)
            rnn.bias_ih_l0.data = reorder(b[: gates * hidden])
            rnn.bias_hh_l0.data = reorder(b[gates * hidden :])
            return rnn

        def _init(self, name: str) -> Any:
            found = next((i for i in graph.initializer if i.name == name), None)
            if found is None:
                raise UserError(
                    f"{path}: RNN weight {name} is computed in the graph, not stored; cannot rebuild"
                )
            return found

        def forward(self, *args: Any) -> Any:
            env: dict[str, Any] = {k: getattr(self, v) for k, v in self.names.items()}
            env.update(zip(self.inputs, args, strict=True))
            for i, node in enumerate(graph.node):
                ins = [env[n] if n else None for n in node.input]
                outs = self._run(i, node, attrs(node), ins)
                env.update(zip(node.output, outs, strict=False))
            results = [env[o] for o in self.outputs]
            return results[0] if len(results) == 1 else tuple(results)

        def _run(self, i: int, node: Any, a: dict[str, Any], x: list[Any]) -> list[Any]:
            op = node.op_type
            if op == "Gemm":
                left = x[0].t() if a.get("transA", 0) else x[0]
                right = x[1].t() if a.get("transB", 0) else x[1]
                out = a.get("alpha", 1.0) * (left @ right)
                return [out + a.get("beta", 1.0) * x[2] if len(x) > 2 and x[2] is not None else out]
            simple: dict[str, Callable[..., Any]] = {
                "MatMul": torch.matmul, "Add": torch.add, "Sub": torch.sub, "Mul": torch.mul, "Div": torch.div,
                "Neg": torch.neg, "Sqrt": torch.sqrt, "Pow": torch.pow, "Tanh": torch.tanh,
                "Sigmoid": torch.sigmoid, "Relu": torch.relu, "Identity": lambda t: t,
            }  # fmt: skip
            if op in simple:
                return [simple[op](*x)]
            if op in ("Max", "Min"):
                out = x[0]
                for other in x[1:]:
                    out = torch.maximum(out, other) if op == "Max" else torch.minimum(out, other)
                return [out]
            if op == "Clip":
                lo = x[1] if len(x) > 1 and x[1] is not None else a.get("min")
                hi = x[2] if len(x) > 2 and x[2] is not None else a.get("max")
                return [torch.clamp(x[0], lo, hi)]
            if op == "Elu":
                return [nn.functional.elu(x[0], alpha=a.get("alpha", 1.0))]
            if op == "LeakyRelu":
                return [nn.functional.leaky_relu(x[0], a.get("alpha", 0.01))]
            if op == "Selu":
                return [nn.functional.selu(x[0])]
            if op == "Softplus":
                return [nn.functional.softplus(x[0])]
            if op == "Constant":
                from onnx import numpy_helper as nh

                return [torch.as_tensor(nh.to_array(a["value"]).copy())]
            if op == "Cast":
                return [x[0]]  # the graphs here are float32 throughout; integer casts feed shapes only
            if op == "Shape":
                return [torch.tensor(list(x[0].shape), dtype=torch.long)]
            if op in ("Unsqueeze", "Squeeze"):
                axes = [
                    int(v) for v in (x[1].tolist() if len(x) > 1 and x[1] is not None else a.get("axes", []))
                ]
                out = x[0]
                if op == "Unsqueeze":
                    for axis in sorted(axes):
                        out = out.unsqueeze(axis)
                    return [out]
                for axis in sorted((ax % out.dim() for ax in axes), reverse=True) if axes else []:
                    out = out.squeeze(axis)
                return [out if axes else out.squeeze()]
            if op == "Reshape":
                shape = [int(v) for v in x[1].tolist()]
                shape = [x[0].shape[k] if s == 0 else s for k, s in enumerate(shape)]
                return [x[0].reshape(shape)]
            if op == "Flatten":
                return [x[0].flatten(a.get("axis", 1)) if a.get("axis", 1) > 0 else x[0].reshape(1, -1)]
            if op == "Transpose":
                return [x[0].permute(*a["perm"])]
            if op == "Concat":
                return [torch.cat(x, dim=a["axis"])]
            if op == "Gather":
                index = x[1].long()
                out = x[0].index_select(a.get("axis", 0), index.reshape(-1))
                return [
                    out.reshape(
                        *x[0].shape[: a.get("axis", 0)], *index.shape, *x[0].shape[a.get("axis", 0) + 1 :]
                    )
                ]
            if op == "Slice":
                starts, ends = x[1].tolist(), x[2].tolist()
                axes = x[3].tolist() if len(x) > 3 and x[3] is not None else list(range(len(starts)))
                steps = x[4].tolist() if len(x) > 4 and x[4] is not None else [1] * len(starts)
                index = [slice(None)] * x[0].dim()
                for s, e, ax, st in zip(starts, ends, axes, steps, strict=True):
                    index[ax] = slice(int(s), min(int(e), x[0].shape[ax]), int(st))
                return [x[0][tuple(index)]]
            # LSTM / GRU: X (seq, batch, in), initial_h (1, batch, H) [, initial_c]; Y (seq, 1, batch, H).
            rnn = self.rnns[str(i)]
            if op == "LSTM":
                h0 = (
                    x[5]
                    if len(x) > 5 and x[5] is not None
                    else torch.zeros(1, x[0].shape[1], rnn.hidden_size)
                )
                c0 = x[6] if len(x) > 6 and x[6] is not None else torch.zeros_like(h0)
                y, (h, c) = rnn(x[0], (h0, c0))
                return [y.unsqueeze(1), h, c]
            h0 = x[5] if len(x) > 5 and x[5] is not None else torch.zeros(1, x[0].shape[1], rnn.hidden_size)
            y, h = rnn(x[0], h0)
            return [y.unsqueeze(1), h]

    return OnnxGraph()


def load_onnx(path: Path) -> LoadedPolicy:
    """exported/policy.onnx (input obs [+ h_in, c_in], output actions [+ h_out, c_out]) rebuilt in torch;
    the reference is onnxruntime running the file itself."""
    torch = _torch()
    onnx = require("onnx", "importing an Isaac Lab ONNX policy", "deploy")
    ort = require("onnxruntime", "importing an Isaac Lab ONNX policy", "deploy")
    try:
        model = onnx.load(str(path))  # type: ignore[attr-defined]
    except Exception as exc:  # onnx raises DecodeError and others for a file that is not ONNX
        raise UserError(f"{path} is not an ONNX model: {str(exc).strip().splitlines()[0]}") from None
    initialized = {i.name for i in model.graph.initializer}
    inputs = [i for i in model.graph.input if i.name not in initialized]
    outputs = list(model.graph.output)
    if len(inputs) != len(outputs) or not inputs:
        raise UserError(
            f"{path} has inputs {[i.name for i in inputs]} and outputs {[o.name for o in outputs]}; Isaac Lab's"
            " exporter pairs obs -> actions and each recurrent state input with its output"
        )
    shapes: list[tuple[int, ...]] = []
    for value in inputs[1:]:
        dims = [d.dim_value for d in value.type.tensor_type.shape.dim]
        if not dims or any(d <= 0 for d in dims):
            raise UserError(f"{path}: state input {value.name} has no fixed shape ({dims})")
        shapes.append(tuple(dims))
    module = _onnx_graph_module(model, path).eval()
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])  # type: ignore[attr-defined]
    names = [i.name for i in inputs]
    state: list[np.ndarray] = []

    def reset() -> None:
        state[:] = [np.zeros(s, dtype=np.float32) for s in shapes]

    def step(obs: np.ndarray) -> np.ndarray:
        feed = dict(zip(names, [np.asarray(obs, dtype=np.float32), *state], strict=True))
        out = session.run(None, feed)
        state[:] = [np.asarray(s, dtype=np.float32) for s in out[1:]]
        return np.asarray(out[0], dtype=np.float64)

    reset()
    step.reset = reset  # type: ignore[attr-defined]
    del torch
    return LoadedPolicy(module, step, tuple(shapes), "onnx")


# --- The importer ----------------------------------------------------------------------------------


def find_policy(run_dir: Path, checkpoint: str | None) -> Path:
    """The policy file: `checkpoint` (relative to run_dir or absolute), else exported/policy.onnx,
    exported/policy.pt, else the newest model_<iter>.pt."""
    if checkpoint is not None:
        path = Path(checkpoint).expanduser()
        path = path if path.is_absolute() else run_dir / path
        if not path.is_file():
            raise UserError(f"checkpoint {path} not found")
        return path
    for name in ("exported/policy.onnx", "exported/policy.pt"):
        if (run_dir / name).is_file():
            return run_dir / name
    models = sorted(
        (p for p in run_dir.glob("model_*.pt") if p.stem.removeprefix("model_").isdigit()),
        key=lambda p: int(p.stem.removeprefix("model_")),
    )
    if not models:
        raise UserError(
            f"{run_dir} has no exported/policy.onnx, exported/policy.pt or model_<iter>.pt; run Isaac Lab's"
            " play.py to export the policy or pass checkpoint=<file>"
        )
    return models[-1]


def _control_dt(env: Mapping[str, Any], spec: RobotSpec) -> float:
    dt = float(_get(env, "sim.dt", "env.yaml")) * int(_get(env, "decimation", "env.yaml"))
    if abs(dt - spec.control_dt) > 1e-9:
        raise UserError(
            f"the Isaac Lab task steps its policy every {dt:g} s (sim.dt * decimation) but robolearn's"
            f" {spec.name} runs it every {spec.control_dt:g} s; retrain with decimation ="
            f" {spec.control_dt / float(env['sim']['dt']):g}"
        )
    return dt


def import_isaaclab(
    run_dir: Path,
    robot: str,
    checkpoint: str | None = None,
    joint_names: Sequence[str] | str | Path | None = None,
) -> ImportedPolicy:
    """Translate an Isaac Lab rsl_rl run directory (params/env.yaml, params/agent.yaml and its exported or
    raw policy) into an ImportedPolicy for robolearn's `robot`; joint_names overrides the articulation's
    joint order (see the module docstring)."""
    run_dir = Path(run_dir).expanduser()
    if not run_dir.is_dir():
        raise UserError(f"Isaac Lab run directory {run_dir} not found")
    spec = get_robot_spec(robot)
    env = load_dump(run_dir / "params" / "env.yaml")
    agent_path = run_dir / "params" / "agent.yaml"
    agent = load_dump(agent_path) if agent_path.is_file() else {}
    _control_dt(env, spec)

    names, order_origin = articulation_joints(spec, env, run_dir, joint_names)
    defaults = default_joint_pos(env, names)
    kp, kd = actuator_gains(env, names)
    action = action_term(env, names, defaults)
    policy_joints: list[str] = action["joints"]
    observed = observation_terms(env, policy_joints, names, action["name"])
    terms: tuple[ObsTerm, ...] = observed["terms"]
    history: int = observed["history_length"]

    # Every articulation joint keeps Isaac Lab's default pose and gains (the held ones included); the
    # policy joints also their action scale.
    overrides: dict[str, dict[str, float]] = {
        "default_joint_pos": dict(defaults),
        "action_scale": {j: action["scale"][j] for j in policy_joints},
    }
    if kp:
        overrides["kp"] = kp
    if kd:
        overrides["kd"] = kd

    clip_actions = agent.get("clip_actions")
    clips = [
        c for c in (action["clip"], None if clip_actions is None else float(clip_actions)) if c is not None
    ]
    action_clip = min(clips) if clips else None

    policy_path = find_policy(run_dir, checkpoint)
    policy_spec = spec.select(tuple(policy_joints))
    frame_size = sum(t.size(policy_spec) for t in terms)
    if policy_path.suffix == ".onnx":
        loaded = load_onnx(policy_path)
    elif policy_path.parent.name == "exported" or _is_torchscript(policy_path):
        loaded = load_torchscript(policy_path)
    else:
        loaded = load_rsl_rl_checkpoint(policy_path, agent, frame_size * history, len(policy_joints))

    index = history_index(terms, policy_spec, history) if history > 1 else None
    module = _modules()["Reordered"](loaded.module, index).eval()
    reference = loaded.reference
    if index is not None:
        original = reference

        def reordered(obs: np.ndarray) -> np.ndarray:
            return original(np.asarray(obs)[..., index])

        reordered.reset = getattr(original, "reset", None)  # type: ignore[attr-defined]
        reference = reordered

    files = {"env.yaml": {"path": str(run_dir / "params" / "env.yaml"), "kind": "isaaclab_env_cfg"}}
    if agent_path.is_file():
        files["agent.yaml"] = {"path": str(agent_path), "kind": "isaaclab_agent_cfg"}
    files[policy_path.name] = {"path": str(policy_path), "kind": f"isaaclab_{loaded.kind.split()[0]}"}
    source = {
        "importer": "isaaclab",
        "run_dir": str(run_dir.resolve()),
        "policy": str(policy_path.resolve()),
        "policy_format": loaded.kind,
        "joint_order": {"names": names, "from": order_origin},
        "action_term": action["name"],
        "observation_history": {"length": history, "isaaclab_layout": "term_major"},
        "files": files,
    }
    return ImportedPolicy(
        robot=spec.name,
        policy_joints=tuple(policy_joints),
        overrides=overrides,
        terms=terms,
        obs_clip=None,
        action_clip=action_clip,
        command_ranges=command_ranges(env, observed["command_name"]),
        gait_period_s=None,
        history_length=history,
        module=module,
        state_shapes=loaded.state_shapes,
        reference=reference,
        source=source,
    )


def _is_torchscript(path: Path) -> bool:
    import zipfile

    # A TorchScript archive holds code/ besides data.pkl; a torch.save checkpoint does not.
    try:
        with zipfile.ZipFile(path) as archive:
            return any("/code/" in n for n in archive.namelist())
    except zipfile.BadZipFile:
        return False
