"""Load a robot's MuJoCo model, check it against the RobotSpec, and map spec order to MuJoCo indices.

The spec's joint order is the hardware's motor order; a MuJoCo model may list joints and
actuators in any order. JointIndexMap is the one place that translation happens.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass
from pathlib import Path

import mujoco
import numpy as np

from robolearn.errors import UserError
from robolearn.resources import envs_dir
from robolearn.robots.actuators import PdActuatorParams, pd_actuator_params, pd_torque
from robolearn.robots.spec import RobotSpec
from robolearn.robots.state import RobotState


def default_model_path(spec: RobotSpec) -> Path:
    """Our MJCF scene for this robot (envs/<robot>/scene.xml)."""
    return envs_dir() / spec.model_file


def load_model(spec: RobotSpec, path: str | Path | None = None) -> mujoco.MjModel:
    """Compile our model (path None) or a user MJCF such as Menagerie's unitree_go2/scene.xml, then check it."""
    model_path = default_model_path(spec) if path is None else Path(path).expanduser()
    if not model_path.is_file():
        raise UserError(f"robot model file not found: {model_path}")
    try:
        model = mujoco.MjModel.from_xml_path(str(model_path))
    except ValueError as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise UserError(f"MuJoCo could not load {model_path}: {first_line}") from None
    check_model(model, spec, source=str(model_path))
    return model


@dataclass(frozen=True)
class JointIndexMap:
    """Where each spec joint (in spec order) lives in a MuJoCo model.

    qpos[qpos_adr] and qvel[qvel_adr] read joints in spec order; ctrl[actuator_ids] = tau / gear
    writes spec-ordered torques (ctrl_from_torque does the division).
    """

    joint_ids: np.ndarray
    qpos_adr: np.ndarray
    qvel_adr: np.ndarray
    actuator_ids: np.ndarray
    actuator_gear: np.ndarray
    root_qpos_adr: int  # first of the 7 free-joint qpos (x y z qw qx qy qz)
    root_qvel_adr: int  # first of the 6 free-joint qvel (linear world, angular body frame)

    def ctrl_from_torque(self, torque: np.ndarray) -> np.ndarray:
        """Actuator controls (in spec order) that produce the given joint torques."""
        return np.asarray(torque, dtype=np.float64) / self.actuator_gear

    def spec_index_of_actuator(self, num_actuators: int) -> np.ndarray:
        """For each model actuator, the spec position of the joint it drives, or -1 (MuJoCo -> spec order)."""
        inverse = np.full(num_actuators, -1, dtype=np.int64)
        inverse[self.actuator_ids] = np.arange(len(self.actuator_ids))
        return inverse


def _name(model: mujoco.MjModel, obj: mujoco.mjtObj, index: int) -> str:
    return mujoco.mj_id2name(model, obj, index) or f"#{index}"


def check_model(model: mujoco.MjModel, spec: RobotSpec, source: str = "model") -> None:
    """Raise UserError unless the model has every spec joint, one torque motor each, and a free-floating base."""
    joint_index_map(model, spec, source)


def joint_index_map(model: mujoco.MjModel, spec: RobotSpec, source: str = "model") -> JointIndexMap:
    """Map spec joint order to MuJoCo joint, qpos, qvel and actuator indices, checking as it goes."""
    names = {_name(model, mujoco.mjtObj.mjOBJ_JOINT, j): j for j in range(model.njnt)}
    missing = [n for n in spec.joint_names if n not in names]
    if missing:
        raise UserError(
            f"{source} does not match the {spec.name} spec: missing joint(s) {', '.join(missing)}"
            f" ({len(missing)} of {spec.num_joints})"
        )
    joint_ids = np.array([names[n] for n in spec.joint_names], dtype=np.int64)
    for name, j in zip(spec.joint_names, joint_ids, strict=True):
        if model.jnt_type[j] != mujoco.mjtJoint.mjJNT_HINGE:
            raise UserError(f"{source}: joint {name} must be a hinge joint for the {spec.name} spec")

    # The actuator driving each joint; anything but a plain torque motor would fight our PD law.
    by_joint: dict[int, int] = {}
    for a in range(model.nu):
        if model.actuator_trntype[a] != mujoco.mjtTrn.mjTRN_JOINT:
            continue
        j = int(model.actuator_trnid[a, 0])
        if j in by_joint:
            raise UserError(
                f"{source}: joint {_name(model, mujoco.mjtObj.mjOBJ_JOINT, j)} has two actuators;"
                " give each spec joint exactly one"
            )
        by_joint[j] = a
    unactuated = [n for n, j in zip(spec.joint_names, joint_ids, strict=True) if int(j) not in by_joint]
    if unactuated:
        raise UserError(f"{source}: no actuator drives joint(s) {', '.join(unactuated)}")
    spec_ids = {int(j) for j in joint_ids}
    extra = [_name(model, mujoco.mjtObj.mjOBJ_JOINT, j) for j in by_joint if j not in spec_ids]
    if extra:
        raise UserError(
            f"{source} actuates joint(s) the {spec.name} spec does not know: {', '.join(sorted(extra))}"
            f" (a {spec.num_joints}-joint {spec.name} model is expected)"
        )
    actuator_ids = np.array([by_joint[int(j)] for j in joint_ids], dtype=np.int64)
    for name, a in zip(spec.joint_names, actuator_ids, strict=True):
        is_motor = (
            model.actuator_dyntype[a] == mujoco.mjtDyn.mjDYN_NONE
            and model.actuator_gaintype[a] == mujoco.mjtGain.mjGAIN_FIXED
            and model.actuator_biastype[a] == mujoco.mjtBias.mjBIAS_NONE
        )
        if not is_motor:
            raise UserError(
                f"{source}: actuator {_name(model, mujoco.mjtObj.mjOBJ_ACTUATOR, int(a))} on {name} is not a"
                " torque motor; robolearn runs the PD law itself, so use <motor> actuators"
            )
    gear = model.actuator_gear[actuator_ids, 0] * model.actuator_gainprm[actuator_ids, 0]
    if np.any(gear == 0):
        raise UserError(f"{source}: an actuator on the {spec.name} joints has zero gear or gain")

    root = _root_free_joint(model, spec, joint_ids, source)
    return JointIndexMap(
        joint_ids=joint_ids,
        qpos_adr=model.jnt_qposadr[joint_ids].astype(np.int64),
        qvel_adr=model.jnt_dofadr[joint_ids].astype(np.int64),
        actuator_ids=actuator_ids,
        actuator_gear=gear.astype(np.float64),
        root_qpos_adr=int(model.jnt_qposadr[root]),
        root_qvel_adr=int(model.jnt_dofadr[root]),
    )


def _root_free_joint(model: mujoco.MjModel, spec: RobotSpec, joint_ids: np.ndarray, source: str) -> int:
    # Found through the tree, not by name: user models call the base "base", "base_link", "trunk"...
    root_body = int(model.body_rootid[model.jnt_bodyid[joint_ids[0]]])
    for j in range(model.body_jntadr[root_body], model.body_jntadr[root_body] + model.body_jntnum[root_body]):
        if model.jnt_type[j] == mujoco.mjtJoint.mjJNT_FREE:
            return j
    body = _name(model, mujoco.mjtObj.mjOBJ_BODY, root_body)
    raise UserError(f"{source}: the {spec.name} joints hang from body '{body}', which has no free joint")


# Integrators under which moving the PD law into the actuators keeps pd_torque's explicit force.
_PD_INTEGRATORS = (mujoco.mjtIntegrator.mjINT_EULER, mujoco.mjtIntegrator.mjINT_IMPLICITFAST)


def pd_actuator_model(model: mujoco.MjModel, spec: RobotSpec) -> mujoco.MjModel:
    """A copy of a checked motor model whose spec actuators run pd_torque inside MuJoCo (Euler integrator).

    Each spec motor becomes an affine (position-type) actuator with gear 1, so actuator_force is the
    joint torque: gain kp on ctrl = q*, bias [0, -kp, -kd], forcerange +-torque limit (the spec's
    until pd_actuator_params' values are written). The motor's own bounds (ctrlrange x gear,
    forcerange x gear) move to the joint's actuatorfrcrange, so the torque reaching the joint is
    bounded as it was. The copy integrates with Euler: implicitfast would treat the actuator's -kd*dq
    as an implicit damper, a different law from the explicit one a motor driver runs. For a model on
    implicitfast whose only velocity-dependent force is joint damping, Euler (with its implicit joint
    damping) is the same computation: tests/envs/test_envs_pd_actuators.py checks it is bit-identical.
    The MJCF stays as Unitree ships it; only this in-memory copy changes.
    """
    index = joint_index_map(model, spec)
    integrator = int(model.opt.integrator)
    if integrator not in _PD_INTEGRATORS:
        name = mujoco.mjtIntegrator(integrator).name.removeprefix("mjINT_")
        raise UserError(
            f"the {spec.name} model uses the {name} integrator; robolearn's MuJoCo PD law needs Euler or"
            ' implicitfast (set <option integrator="implicitfast"/>)'
        )
    pd = copy.copy(model)
    if integrator == mujoco.mjtIntegrator.mjINT_IMPLICITFAST:
        _check_only_joint_damping(model, index, spec)
        # implicitfast always treats joint damping implicitly; Euler does too unless this flag is set.
        pd.opt.disableflags &= ~int(mujoco.mjtDisableBit.mjDSBL_EULERDAMP)
    pd.opt.integrator = mujoco.mjtIntegrator.mjINT_EULER

    acts, joints = index.actuator_ids, index.joint_ids
    lower, upper = np.full(len(acts), -np.inf), np.full(len(acts), np.inf)
    gear = index.actuator_gear  # torque per unit ctrl: gear x gain
    bounds = [(model.actuator_ctrllimited[acts], model.actuator_ctrlrange[acts] * gear[:, None])]
    bounds.append(
        (model.actuator_forcelimited[acts], model.actuator_forcerange[acts] * model.actuator_gear[acts, :1])
    )
    bounds.append((model.jnt_actfrclimited[joints], model.jnt_actfrcrange[joints]))
    for limited, ranges in bounds:
        on = limited.astype(bool)
        lower = np.where(on, np.maximum(lower, ranges.min(axis=1)), lower)
        upper = np.where(on, np.minimum(upper, ranges.max(axis=1)), upper)
    limited = np.isfinite(lower) | np.isfinite(upper)
    pd.jnt_actfrclimited[joints] = limited
    pd.jnt_actfrcrange[joints] = np.where(limited[:, None], np.stack((lower, upper), axis=1), 0.0)

    pd.actuator_gear[acts] = (1.0, 0.0, 0.0, 0.0, 0.0, 0.0)
    pd.actuator_gaintype[acts] = mujoco.mjtGain.mjGAIN_FIXED
    pd.actuator_biastype[acts] = mujoco.mjtBias.mjBIAS_AFFINE
    pd.actuator_gainprm[acts] = 0.0
    pd.actuator_biasprm[acts] = 0.0
    pd.actuator_ctrllimited[acts] = 0  # the target is q*, unbounded as pd_torque's is
    pd.actuator_forcelimited[acts] = 1
    write_pd_params(
        pd.actuator_gainprm,
        pd.actuator_biasprm,
        pd.actuator_forcerange,
        acts,
        pd_actuator_params(spec.default_pos_array, spec.kp_array, spec.kd_array, spec.torque_limit_array),
    )
    return pd


def _check_only_joint_damping(model: mujoco.MjModel, index: JointIndexMap, spec: RobotSpec) -> None:
    # Any other velocity-dependent force would be implicit under implicitfast and explicit under Euler.
    others = np.setdiff1d(np.arange(model.nu), index.actuator_ids)
    velocity_actuators = [
        _name(model, mujoco.mjtObj.mjOBJ_ACTUATOR, int(a))
        for a in others
        if model.actuator_biastype[a] != mujoco.mjtBias.mjBIAS_NONE
        or model.actuator_gaintype[a] != mujoco.mjtGain.mjGAIN_FIXED
    ]
    reasons = []
    if velocity_actuators:
        reasons.append(f"actuator(s) {', '.join(velocity_actuators)}")
    if model.ntendon and np.any(model.tendon_damping):
        reasons.append("tendon damping")
    if model.opt.density > 0 or model.opt.viscosity > 0:
        reasons.append("fluid forces")
    if reasons:
        raise UserError(
            f"the {spec.name} model on implicitfast has velocity-dependent {' and '.join(reasons)};"
            ' robolearn runs its PD law on Euler, so set <option integrator="Euler"/> in that model'
        )


def write_pd_params(
    gainprm: np.ndarray,
    biasprm: np.ndarray,
    forcerange: np.ndarray,
    actuator_ids: np.ndarray,
    params: PdActuatorParams,
) -> None:
    """Write pd_actuator_params' gains, biases and limits into model arrays (..., nu, 10|10|2), in place."""
    gainprm[..., actuator_ids, 0] = params.gain
    biasprm[..., actuator_ids, 0:3] = params.bias
    forcerange[..., actuator_ids, 0] = -params.limit
    forcerange[..., actuator_ids, 1] = params.limit


def set_joint_armature(model: mujoco.MjModel, spec: RobotSpec) -> None:
    """Write the spec's armature into the model's joints, for a spec rebuilt with other gear ratios."""
    index = joint_index_map(model, spec)
    model.dof_armature[index.qvel_adr] = np.asarray(spec.armature, dtype=np.float64)


def set_default_pose(
    model: mujoco.MjModel,
    data: mujoco.MjData,
    spec: RobotSpec,
    index: JointIndexMap,
    height: float | None = None,
) -> None:
    """Put the base level at (0, 0, height or spec.base_height), joints at the default pose, at rest."""
    mujoco.mj_resetData(model, data)
    r = index.root_qpos_adr
    data.qpos[r : r + 7] = (0.0, 0.0, spec.base_height if height is None else height, 1.0, 0.0, 0.0, 0.0)
    data.qpos[index.qpos_adr] = spec.default_joint_pos
    mujoco.mj_forward(model, data)


def read_state(
    data: mujoco.MjData,
    index: JointIndexMap,
    command: np.ndarray | None = None,
    last_action: np.ndarray | None = None,
) -> RobotState:
    """A RobotState from simulation: joints in spec order, base quaternion and body-frame gyro."""
    r, v = index.root_qpos_adr, index.root_qvel_adr
    n = len(index.qpos_adr)
    return RobotState(
        joint_pos=data.qpos[index.qpos_adr].copy(),
        joint_vel=data.qvel[index.qvel_adr].copy(),
        base_quat=data.qpos[r + 3 : r + 7].copy(),
        # MuJoCo's free-joint angular velocity is already in the body frame, as a gyro reads it.
        gyro=data.qvel[v + 3 : v + 6].copy(),
        command=np.zeros(3) if command is None else np.asarray(command, dtype=np.float64),
        last_action=np.zeros(n) if last_action is None else np.asarray(last_action, dtype=np.float64),
    )


def apply_pd(
    data: mujoco.MjData, spec: RobotSpec, index: JointIndexMap, target_pos: np.ndarray
) -> np.ndarray:
    """Compute the spec's PD torques toward target_pos (spec order), write them to ctrl, return them."""
    tau = pd_torque(
        target_pos,
        data.qpos[index.qpos_adr],
        data.qvel[index.qvel_adr],
        spec.kp_array,
        spec.kd_array,
        spec.torque_limit_array,
    )
    data.ctrl[index.actuator_ids] = index.ctrl_from_torque(tau)
    return tau


def kinematic_base_height(model: mujoco.MjModel, spec: RobotSpec) -> float:
    """Base height at the default pose with the base level, averaged over the feet's lowest points.

    Averaging matters for the Go2, whose default pose puts the front feet 1 cm lower than the rear:
    standing, the base pitches slightly and its origin, midway between the hips, sits at the mean.
    """
    index = joint_index_map(model, spec)
    data = mujoco.MjData(model)
    set_default_pose(model, data, spec, index, height=0.0)
    depths = []
    for name in spec.foot_geoms:
        g = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_GEOM, name)
        if g < 0:
            raise UserError(f"model has no foot geom named '{name}' (the {spec.name} spec's foot_geoms)")
        depths.append(-geom_lowest_point(model, data, g))
    return float(np.mean(depths))


def geom_lowest_point(model: mujoco.MjModel, data: mujoco.MjData, geom: int) -> float:
    """World z of the lowest point of a sphere, capsule or box geom."""
    z = float(data.geom_xpos[geom][2])
    size = model.geom_size[geom]
    down = np.abs(data.geom_xmat[geom].reshape(3, 3)[2])  # |z component| of each local axis
    kind = model.geom_type[geom]
    if kind == mujoco.mjtGeom.mjGEOM_SPHERE:
        return z - float(size[0])
    if kind == mujoco.mjtGeom.mjGEOM_CAPSULE:
        return z - float(size[0]) - float(size[1] * down[2])
    if kind == mujoco.mjtGeom.mjGEOM_BOX:
        return z - float(down @ size)
    raise UserError(
        f"foot geom '{_name(model, mujoco.mjtObj.mjOBJ_GEOM, geom)}' must be a sphere, capsule or box"
    )
