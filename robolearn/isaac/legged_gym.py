"""Import an Isaac Gym policy in unitree_rl_gym's deploy format: a TorchScript actor and a deploy yaml.

    python -m robolearn.export from=legged_gym policy=motion.pt config=g1.yaml robot=g1_29dof out=policies/g1_walk

What is read, and where its layout comes from (unitree_rl_gym, BSD-3):

- The policy file is what legged_gym/utils/helpers.py export_policy_as_jit writes: either the
  scripted actor MLP (an nn.Sequential of Linear and activation layers), or PolicyExporterLSTM:
  `memory` (an nn.LSTM), `actor` (the MLP) and the buffers hidden_state / cell_state that forward()
  overwrites in place each call (the LSTM runs one step on x.unsqueeze(0)). An eager module is rebuilt
  from the scripted weights with that state as explicit inputs and outputs, so the ONNX graph carries
  it; the original scripted module, its buffers zeroed, is the reference the graph is checked against.
- The yaml is deploy/deploy_mujoco/configs/<robot>.yaml or deploy/deploy_real/configs/<robot>.yaml:
  kps, kds, default_angles (the policy joints' PD gains and default pose, in the network's order),
  ang_vel_scale, dof_pos_scale, dof_vel_scale, cmd_scale, action_scale (target = default +
  action_scale * action), num_actions, num_obs; deploy_real adds leg_joint2motor_idx (the DDS motor
  slot of each network joint), arm_waist_joint2motor_idx / arm_waist_kps / arm_waist_kds /
  arm_waist_target (the joints it holds with their own gains) and max_cmd (the remote's full-scale
  command, vx, vy, yaw rate); deploy_mujoco adds cmd_init.
- The observation is deploy_mujoco.py's / deploy_real.py's (and g1_env.py / legged_robot.py
  compute_observations'): ang_vel * ang_vel_scale, projected gravity, command * cmd_scale,
  (q - default) * dof_pos_scale, dq * dof_vel_scale, the last action, then for the G1 sin and cos of
  the gait phase (period 0.8 s): 9 + 3 * num_actions (+ 2) values. legged_gym's base observation
  (the Go2's) puts base_lin_vel * 2.0 (obs_scales.lin_vel) first: 3 + 9 + 3 * num_actions values.
- Network joint order: leg_joint2motor_idx when the yaml gives it; otherwise, for the G1, the first
  num_actions joints of the robot in motor order (the legs, slots 0-11, as deploy_mujoco's 12-joint G1
  model has them); for the Go2, Isaac Gym's DOF order for legged_gym's go2.urdf (FL, FR, RL, RR, each
  hip, thigh, calf), mapped by joint name to robolearn's Go2 (whose motor order is FR, FL, RR, RL).
- Clips: legged_gym's normalization.clip_observations and clip_actions (100 each) unless the yaml
  sets clip_observations / clip_actions; command ranges from max_cmd, else legged_gym's
  commands.ranges (legged_robot_config.py: +-1 m/s, +-1 m/s, +-1 rad/s).

Refused, each with one line: a robot other than go2, g1, g1_29dof; a num_obs that is none of those
layouts or differs from the network's input; a num_actions that differs from its output; a motor
slot the robot does not have; a control period other than the robot's; an IMU on the torso (H1-style
yamls; robolearn's G1 reads the pelvis IMU); a layer the rebuild does not know.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from robolearn.errors import UserError, require
from robolearn.isaac.artifact import ImportedPolicy
from robolearn.robots.observations import ObsTerm
from robolearn.robots.registry import get_robot_spec
from robolearn.robots.spec import RobotSpec

ROBOTS = ("go2", "g1", "g1_29dof")
# Isaac Gym orders a URDF's DOFs depth-first with children sorted by name: legged_gym's go2.urdf
# gives FL, FR, RL, RR, each hip, thigh, calf (unitree_rl_gym resources/robots/go2/urdf/go2.urdf).
GO2_ISAAC_GYM_ORDER = tuple(
    f"{leg}_{part}_joint" for leg in ("FL", "FR", "RL", "RR") for part in ("hip", "thigh", "calf")
)
# unitree_rl_gym legged_gym/envs/g1/g1_env.py and deploy_mujoco.py / deploy_real.py: period = 0.8.
GAIT_PERIOD_S = 0.8
# legged_gym/envs/base/legged_robot_config.py normalization.clip_observations / clip_actions.
CLIP_OBSERVATIONS = 100.0
CLIP_ACTIONS = 100.0
# legged_robot_config.py normalization.obs_scales.lin_vel (the Go2's first observation term).
LIN_VEL_SCALE = 2.0
# legged_robot_config.py commands.ranges: lin_vel_x, lin_vel_y, ang_vel_yaw.
COMMAND_RANGES = ((-1.0, 1.0), (-1.0, 1.0), (-1.0, 1.0))
REQUIRED_KEYS = (
    "kps",
    "kds",
    "default_angles",
    "ang_vel_scale",
    "dof_pos_scale",
    "dof_vel_scale",
    "action_scale",
    "cmd_scale",
    "num_actions",
    "num_obs",
)
ARM_WAIST_KEYS = ("arm_waist_joint2motor_idx", "arm_waist_kps", "arm_waist_kds", "arm_waist_target")
MESSAGE_TYPES = {"hg": "unitree_hg", "go": "unitree_go"}
_ACTIVATIONS = ("ELU", "ReLU", "Tanh", "Sigmoid", "LeakyReLU", "SELU", "CELU", "Identity")


def _torch() -> Any:
    return require("torch", "importing a legged_gym policy", "deploy")


# --- the deploy yaml ------------------------------------------------------------------------------
def read_deploy_yaml(path: Path) -> dict[str, Any]:
    """The yaml as a mapping, with every key import_legged_gym needs present; UserError otherwise."""
    import yaml

    if not path.is_file():
        raise UserError(
            f"config={path} does not exist; pass unitree_rl_gym's deploy yaml (deploy_mujoco/configs/g1.yaml)"
        )
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except yaml.YAMLError as exc:
        raise UserError(f"config={path} is not valid YAML ({str(exc).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise UserError(
            f"config={path} must be a YAML mapping like unitree_rl_gym's deploy_mujoco/configs/g1.yaml"
        )
    for key in REQUIRED_KEYS:
        if key not in data:
            raise UserError(
                f"config={path} has no '{key}'; a unitree_rl_gym deploy yaml lists {', '.join(REQUIRED_KEYS)}"
            )
    return data


def _number(path: Path, key: str, value: Any, positive: bool = False) -> float:
    ok = isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)
    if not ok or (positive and value <= 0):
        raise UserError(
            f"config={path}: {key} = {value!r}; expected a {'positive ' if positive else ''}finite number"
        )
    return float(value)


def _numbers(path: Path, data: Mapping[str, Any], key: str, size: int) -> list[float]:
    values = data[key]
    if not isinstance(values, list) or len(values) != size:
        count = len(values) if isinstance(values, list) else "not a list"
        raise UserError(f"config={path}: {key} has {count} values; expected {size} (one per entry)")
    return [_number(path, f"{key}[{i}]", v) for i, v in enumerate(values)]


def _integer(path: Path, key: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(f"config={path}: {key} = {value!r}; expected a positive integer")
    return value


def _joints_by_motor(path: Path, spec: RobotSpec, key: str, slots: Any, size: int) -> list[str]:
    """Robot joint names of a yaml list of DDS motor slots."""
    if not isinstance(slots, list) or len(slots) != size:
        raise UserError(f"config={path}: {key} must list {size} motor slots")
    by_slot = dict(zip(spec.motor_indices, spec.joint_names, strict=True))
    names = []
    for slot in slots:
        if slot not in by_slot:
            hint = " (the 29-DoF G1: pass robot=g1_29dof)" if spec.name == "g1" else ""
            raise UserError(
                f"config={path}: {key} names motor slot {slot!r}, which {spec.name} does not have{hint}"
            )
        names.append(by_slot[slot])
    return names


def policy_joint_order(path: Path, spec: RobotSpec, data: Mapping[str, Any], num_actions: int) -> list[str]:
    """The robot joints the network drives, in its order (module docstring: network joint order)."""
    if "leg_joint2motor_idx" in data:
        return _joints_by_motor(path, spec, "leg_joint2motor_idx", data["leg_joint2motor_idx"], num_actions)
    if spec.name == "go2":
        if num_actions != len(GO2_ISAAC_GYM_ORDER):
            raise UserError(
                f"config={path}: num_actions = {num_actions}, legged_gym's Go2 has 12; give leg_joint2motor_idx"
            )
        return list(GO2_ISAAC_GYM_ORDER)
    if num_actions != 12:
        raise UserError(
            f"config={path}: num_actions = {num_actions} without leg_joint2motor_idx; the default G1 order is"
            " the 12 leg joints: list the motor slots in leg_joint2motor_idx"
        )
    return list(spec.joint_names[:num_actions])


def observation_terms(
    path: Path, data: Mapping[str, Any], num_actions: int, num_obs: int
) -> tuple[tuple[ObsTerm, ...], float | None]:
    """(terms, gait period or None) for the yaml's scales, the layout picked by num_obs."""
    cmd_scale = _numbers(path, data, "cmd_scale", 3)
    terms = (
        ObsTerm("base_ang_vel", scale=_number(path, "ang_vel_scale", data["ang_vel_scale"])),
        ObsTerm("projected_gravity", scale=1.0),
        ObsTerm("commands", scale=(cmd_scale[0], cmd_scale[1], cmd_scale[2])),
        ObsTerm("joint_pos_rel", scale=_number(path, "dof_pos_scale", data["dof_pos_scale"])),
        ObsTerm("joint_vel", scale=_number(path, "dof_vel_scale", data["dof_vel_scale"])),
        ObsTerm("last_action", scale=1.0),
    )
    base = 9 + 3 * num_actions
    if num_obs == base:
        return terms, None
    if num_obs == base + 2:
        return (*terms, ObsTerm("gait_clock")), GAIT_PERIOD_S
    if num_obs == base + 3:
        lin = _number(path, "lin_vel_scale", data.get("lin_vel_scale", LIN_VEL_SCALE))
        return (ObsTerm("base_lin_vel", scale=lin), *terms), None
    raise UserError(
        f"config={path}: num_obs = {num_obs} fits no legged_gym observation for {num_actions} actions:"
        f" {base} (proprioception), {base + 2} (+ gait phase, the G1), {base + 3} (base_lin_vel first, the Go2);"
        " set num_obs to what the policy was trained with"
    )


def _check_robot_fit(path: Path, spec: RobotSpec, data: Mapping[str, Any]) -> None:
    if "control_dt" in data:
        dt = _number(path, "control_dt", data["control_dt"], positive=True)
    elif "simulation_dt" in data and "control_decimation" in data:
        dt = _number(path, "simulation_dt", data["simulation_dt"], positive=True) * _integer(
            path, "control_decimation", data["control_decimation"]
        )
    else:
        return
    if abs(dt - spec.control_dt) > 1e-9:
        raise UserError(
            f"config={path}: the policy runs every {dt:g} s, robolearn's {spec.name} every {spec.control_dt:g} s;"
            " only a policy trained at the robot's control period can be imported"
        )
    msg_type = data.get("msg_type")
    if msg_type is not None and MESSAGE_TYPES.get(str(msg_type)) != spec.message_family:
        raise UserError(
            f"config={path}: msg_type = {msg_type!r}, robolearn's {spec.name} speaks {spec.message_family}; wrong robot="
        )
    if data.get("imu_type", "pelvis") != "pelvis" and spec.name != "go2":
        raise UserError(
            f"config={path}: imu_type = {data['imu_type']!r}; robolearn's {spec.name} reads the pelvis IMU"
            " (torso-IMU yamls are for the H1 robots)"
        )


# --- the TorchScript policy -----------------------------------------------------------------------
def _eager_mlp(scripted: Any, where: str) -> Any:
    """nn.Sequential with the scripted Sequential's layers and weights."""
    torch = _torch()
    layers = []
    for name, child in scripted.named_children():
        kind = getattr(child, "original_name", type(child).__name__)
        if kind == "Linear":
            weight = child.weight.detach()
            layer = torch.nn.Linear(weight.shape[1], weight.shape[0], bias=child.bias is not None)
            with torch.no_grad():
                layer.weight.copy_(weight)
                if child.bias is not None:
                    layer.bias.copy_(child.bias.detach())
            layers.append(layer)
        elif kind in ("ELU", "CELU"):
            layers.append(getattr(torch.nn, kind)(alpha=float(getattr(child, "alpha", 1.0))))
        elif kind == "LeakyReLU":
            layers.append(torch.nn.LeakyReLU(float(getattr(child, "negative_slope", 0.01))))
        elif kind in _ACTIVATIONS:
            layers.append(getattr(torch.nn, kind)())
        else:
            raise UserError(
                f"{where}: layer {name} is a {kind}; the import rebuilds Linear and {', '.join(_ACTIVATIONS)} layers"
            )
    if not layers or not isinstance(layers[0], torch.nn.Linear):
        raise UserError(f"{where}: the actor does not start with a Linear layer; not a legged_gym actor")
    return torch.nn.Sequential(*layers).eval()


def _linears(mlp: Any) -> list[Any]:
    torch = _torch()
    return [m for m in mlp if isinstance(m, torch.nn.Linear)]


def _rebuild_rnn(memory: Any, where: str) -> tuple[Any, int]:
    """(eager nn.LSTM / nn.GRU with the scripted weights, number of state tensors)."""
    torch = _torch()
    kind = getattr(memory, "original_name", type(memory).__name__)
    if kind not in ("LSTM", "GRU"):
        raise UserError(f"{where}: memory is a {kind}; the import rebuilds nn.LSTM and nn.GRU")
    weights = dict(memory.state_dict())
    layers = sum(1 for k in weights if k.startswith("weight_ih_l") and not k.endswith("_reverse"))
    if any(k.endswith("_reverse") for k in weights):
        raise UserError(f"{where}: the {kind} is bidirectional; a step-by-step policy cannot be")
    gates = 4 if kind == "LSTM" else 3
    hidden = weights["weight_hh_l0"].shape[1]
    if weights["weight_hh_l0"].shape[0] != gates * hidden:
        raise UserError(f"{where}: the {kind}'s weights have unexpected shapes (projection?); not importable")
    rnn = getattr(torch.nn, kind)(
        input_size=weights["weight_ih_l0"].shape[1],
        hidden_size=hidden,
        num_layers=layers,
        bias="bias_ih_l0" in weights,
    )
    rnn.load_state_dict(weights)
    return rnn.eval(), 2 if kind == "LSTM" else 1


def _recurrent_module(rnn: Any, actor: Any, states: int) -> Any:
    """forward(obs, h[, c]) -> (action, h[, c]): PolicyExporterLSTM.forward with the state explicit."""
    torch = _torch()

    class LeggedGymLSTM(torch.nn.Module):  # type: ignore[name-defined,misc,unused-ignore]
        def __init__(self) -> None:
            super().__init__()
            self.memory = rnn
            self.actor = actor

        def forward(self, obs: Any, h: Any, c: Any) -> Any:
            out, (h_out, c_out) = self.memory(obs.unsqueeze(0), (h, c))
            return self.actor(out.squeeze(0)), h_out, c_out

    class LeggedGymGRU(torch.nn.Module):  # type: ignore[name-defined,misc,unused-ignore]
        def __init__(self) -> None:
            super().__init__()
            self.memory = rnn
            self.actor = actor

        def forward(self, obs: Any, h: Any) -> Any:
            out, h_out = self.memory(obs.unsqueeze(0), h)
            return self.actor(out.squeeze(0)), h_out

    return (LeggedGymLSTM() if states == 2 else LeggedGymGRU()).eval()


class ScriptedReference:
    """The original TorchScript module, called one observation at a time with its own (in-place) state."""

    def __init__(self, scripted: Any) -> None:
        self.scripted = scripted
        self.reset()

    def reset(self) -> None:
        """Zero the recurrent buffers (what PolicyExporterLSTM.reset_memory does)."""
        torch = _torch()
        with torch.no_grad():
            for name in ("hidden_state", "cell_state"):
                buffer = getattr(self.scripted, name, None)
                if buffer is not None:
                    buffer.zero_()

    def __call__(self, obs: np.ndarray) -> np.ndarray:
        torch = _torch()
        with torch.no_grad():
            return np.asarray(self.scripted(torch.as_tensor(obs, dtype=torch.float32)).numpy())


def load_policy(path: Path) -> tuple[Any, tuple[tuple[int, ...], ...], ScriptedReference, str, int, int]:
    """(eager module, state shapes, reference, kind, input size, output size) of a legged_gym TorchScript file."""
    torch = _torch()
    if not path.is_file():
        raise UserError(
            f"policy={path} does not exist; pass legged_gym's exported TorchScript (policy_1.pt, motion.pt)"
        )
    try:
        scripted = torch.jit.load(str(path), map_location="cpu")
    except Exception as exc:  # torch raises RuntimeError and friends for files that are not TorchScript
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(
            f"policy={path} is not a TorchScript file ({first}); export it with legged_gym's export_policy_as_jit"
        ) from None
    scripted.eval()
    where = f"policy={path}"
    kind = getattr(scripted, "original_name", type(scripted).__name__)
    if hasattr(scripted, "memory") and hasattr(scripted, "actor"):
        rnn, states = _rebuild_rnn(scripted.memory, where)
        actor = _eager_mlp(scripted.actor, where)
        hidden = getattr(scripted, "hidden_state", None)
        if hidden is None or (states == 2 and getattr(scripted, "cell_state", None) is None):
            raise UserError(
                f"{where}: a recurrent export without hidden_state/cell_state buffers; not legged_gym's"
            )
        shape = (rnn.num_layers, 1, rnn.hidden_size)
        if tuple(hidden.shape) != shape:
            raise UserError(
                f"{where}: hidden_state has shape {tuple(hidden.shape)}, the {kind} needs {shape}"
            )
        if _linears(actor)[0].in_features != rnn.hidden_size:
            raise UserError(
                f"{where}: the actor takes {_linears(actor)[0].in_features} values, the memory gives {rnn.hidden_size}"
            )
        module = _recurrent_module(rnn, actor, states)
        return (
            module,
            (shape,) * states,
            ScriptedReference(scripted),
            kind,
            rnn.input_size,
            _linears(actor)[-1].out_features,
        )
    if kind == "Sequential":
        mlp = _eager_mlp(scripted, where)
        linears = _linears(mlp)
        return mlp, (), ScriptedReference(scripted), kind, linears[0].in_features, linears[-1].out_features
    raise UserError(
        f"{where} is a {kind}; the import reads legged_gym's exports: a scripted actor Sequential or PolicyExporterLSTM"
    )


def _json_safe(value: Any) -> Any:
    """A yaml value as JSON can hold it."""
    if isinstance(value, dict):
        return {str(k): _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    if isinstance(value, int | float | str | bool) or value is None:
        return value
    return str(value)


def import_legged_gym(policy: Path, config: Path, robot: str) -> ImportedPolicy:
    """Translate a unitree_rl_gym deploy pair (TorchScript policy, deploy yaml) for a robolearn robot."""
    if robot not in ROBOTS:
        raise UserError(f"robot={robot}: the legged_gym import knows {', '.join(ROBOTS)}")
    policy, config = Path(policy), Path(config)
    spec = get_robot_spec(robot)
    data = read_deploy_yaml(config)
    num_actions = _integer(config, "num_actions", data["num_actions"])
    num_obs = _integer(config, "num_obs", data["num_obs"])
    _check_robot_fit(config, spec, data)
    joints = policy_joint_order(config, spec, data, num_actions)
    overrides: dict[str, dict[str, float]] = {
        "kp": dict(zip(joints, _numbers(config, data, "kps", num_actions), strict=True)),
        "kd": dict(zip(joints, _numbers(config, data, "kds", num_actions), strict=True)),
        "default_joint_pos": dict(
            zip(joints, _numbers(config, data, "default_angles", num_actions), strict=True)
        ),
    }
    scale = data["action_scale"]
    scales = (
        _numbers(config, data, "action_scale", num_actions)
        if isinstance(scale, list)
        else [_number(config, "action_scale", scale, positive=True)] * num_actions
    )
    overrides["action_scale"] = dict(zip(joints, scales, strict=True))
    present = [k for k in ARM_WAIST_KEYS if k in data]
    if present:
        if len(present) != len(ARM_WAIST_KEYS):
            missing = next(k for k in ARM_WAIST_KEYS if k not in data)
            raise UserError(
                f"config={config} has {present[0]} but no '{missing}'; give all of {', '.join(ARM_WAIST_KEYS)}"
            )
        slots = data["arm_waist_joint2motor_idx"]
        count = len(slots) if isinstance(slots, list) else 0
        held = _joints_by_motor(config, spec, "arm_waist_joint2motor_idx", slots, count)
        both = set(held) & set(joints)
        if both:
            raise UserError(
                f"config={config}: {sorted(both)[0]} is both a policy joint and an arm/waist joint"
            )
        for field, key in (
            ("kp", "arm_waist_kps"),
            ("kd", "arm_waist_kds"),
            ("default_joint_pos", "arm_waist_target"),
        ):
            overrides[field].update(zip(held, _numbers(config, data, key, len(held)), strict=True))

    terms, gait = observation_terms(config, data, num_actions, num_obs)
    module, state_shapes, reference, kind, in_size, out_size = load_policy(policy)
    if in_size != num_obs:
        raise UserError(
            f"config={config}: num_obs = {num_obs}, but {policy.name} takes {in_size} observations; use the yaml the policy was trained with"
        )
    if out_size != num_actions:
        raise UserError(
            f"config={config}: num_actions = {num_actions}, but {policy.name} outputs {out_size} actions; use the yaml the policy was trained with"
        )
    if "max_cmd" in data:
        vx, vy, wz = (abs(v) for v in _numbers(config, data, "max_cmd", 3))
        ranges: tuple[tuple[float, float], ...] = ((-vx, vx), (-vy, vy), (-wz, wz))
    else:
        ranges = COMMAND_RANGES
    obs_clip = _number(
        config, "clip_observations", data.get("clip_observations", CLIP_OBSERVATIONS), positive=True
    )
    action_clip = _number(config, "clip_actions", data.get("clip_actions", CLIP_ACTIONS), positive=True)
    style = "deploy_real" if "leg_joint2motor_idx" in data else "deploy_mujoco"
    return ImportedPolicy(
        robot=robot,
        policy_joints=tuple(joints),
        overrides=overrides,
        terms=terms,
        obs_clip=obs_clip,
        action_clip=action_clip,
        command_ranges=ranges,
        gait_period_s=gait,
        history_length=1,
        module=module,
        state_shapes=state_shapes,
        reference=reference,
        source={
            "kind": "import",
            "importer": "legged_gym",
            "format": f"unitree_rl_gym {style} yaml + legged_gym TorchScript ({kind})",
            "yaml": _json_safe(data),
            "files": {
                policy.name: {"path": str(policy), "kind": f"legged_gym TorchScript ({kind})"},
                config.name: {"path": str(config), "kind": f"unitree_rl_gym {style} yaml"},
            },
        },
    )
