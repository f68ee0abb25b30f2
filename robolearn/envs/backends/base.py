"""The simulator interface every backend implements: arrays in, arrays out, a leading env axis.

A task never touches an MjData: it resets envs to a root-and-joint state, sends PD targets and
gains, and reads a `SimFrame`. That keeps the interface narrow enough for a simulator in another
process (an Isaac adapter would implement the same eight methods over shared memory or a socket).

Conventions (the same in every backend):
- joints in the RobotSpec's motor order; quaternions w x y z; SI units;
- root linear velocity in the world frame, root angular velocity in the body frame (a gyro);
- body velocities in the world frame, the linear one at the body's origin;
- the root and joint arrays describe the state after the last physics step, while body poses and
  velocities come from the forward pass of that step, one physics step (5 ms) earlier, as MjData's
  derived fields do after mj_step. Tasks use them for rewards only, never for observations.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass
from typing import NamedTuple

import mujoco
import numpy as np

from robolearn.errors import UserError
from robolearn.robots.model import JointIndexMap, joint_index_map
from robolearn.robots.spec import RobotSpec


class RootJointState(NamedTuple):
    """The state a reset writes, for k envs: root pose and velocity, joint positions and velocities."""

    root_pos: np.ndarray  # (k, 3) world
    root_quat: np.ndarray  # (k, 4) w x y z
    root_lin_vel: np.ndarray  # (k, 3) world frame
    root_ang_vel: np.ndarray  # (k, 3) body frame
    joint_pos: np.ndarray  # (k, nj) motor order
    joint_vel: np.ndarray  # (k, nj)


class SimFrame(NamedTuple):
    """What a task reads after a step, for all envs (see the module docstring for timing)."""

    root_pos: np.ndarray  # (N, 3)
    root_quat: np.ndarray  # (N, 4)
    root_lin_vel: np.ndarray  # (N, 3) world frame
    root_ang_vel: np.ndarray  # (N, 3) body frame
    joint_pos: np.ndarray  # (N, nj)
    joint_vel: np.ndarray  # (N, nj)
    body_pos: np.ndarray  # (N, nb, 3) bodies named at construction, world frame
    body_quat: np.ndarray  # (N, nb, 4)
    body_lin_vel: np.ndarray  # (N, nb, 3) world frame, at the body origin
    body_ang_vel: np.ndarray  # (N, nb, 3) world frame


class DynamicsParams(NamedTuple):
    """Per-env physical parameters for k envs, relative to the nominal model (domain randomisation)."""

    friction_scale: np.ndarray  # (k,) multiplies every geom's sliding friction
    mass_scale: np.ndarray  # (k, nbody) multiplies each body's mass and inertia (world row ignored)
    base_com_offset: np.ndarray  # (k, 3) added to the base body's centre of mass, body frame (m)
    joint_friction_scale: np.ndarray | None = None  # (k, nv) multiplies each dof's frictionloss; None: 1
    joint_damping_scale: np.ndarray | None = None  # (k, nv) multiplies each dof's damping; None: 1
    added_base_mass: np.ndarray | None = None  # (k,) kg added to the base body's mass; None: 0


@dataclass(frozen=True)
class ModelLayout:
    """Where the spec's joints, the root and the named bodies live in a MuJoCo model."""

    index: JointIndexMap
    body_ids: np.ndarray  # (nb,) MuJoCo body ids of the bodies a task reads
    body_root_ids: np.ndarray  # (nb,) the tree root of each (cvel is expressed at its subtree com)
    base_body_id: int

    @classmethod
    def build(cls, model: mujoco.MjModel, spec: RobotSpec, bodies: Sequence[str]) -> ModelLayout:
        """Index maps for a checked model; UserError naming a missing body."""
        index = joint_index_map(model, spec)
        ids = []
        for name in bodies:
            body = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, name)
            if body < 0:
                raise UserError(f"the {spec.name} model has no body named '{name}'")
            ids.append(body)
        body_ids = np.asarray(ids, dtype=np.int64)
        base = mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, spec.base_body)
        if base < 0:
            raise UserError(f"the {spec.name} model has no base body '{spec.base_body}'")
        return cls(
            index=index,
            body_ids=body_ids,
            body_root_ids=model.body_rootid[body_ids].astype(np.int64),
            base_body_id=int(base),
        )

    def write_state(self, qpos: np.ndarray, qvel: np.ndarray, state: RootJointState) -> None:
        """Write a RootJointState into (k, nq) qpos and (k, nv) qvel rows in place."""
        r, v = self.index.root_qpos_adr, self.index.root_qvel_adr
        qpos[:, r : r + 3] = state.root_pos
        qpos[:, r + 3 : r + 7] = state.root_quat
        qvel[:, v : v + 3] = state.root_lin_vel
        qvel[:, v + 3 : v + 6] = state.root_ang_vel
        qpos[:, self.index.qpos_adr] = state.joint_pos
        qvel[:, self.index.qvel_adr] = state.joint_vel

    def frame(
        self,
        qpos: np.ndarray,
        qvel: np.ndarray,
        xpos: np.ndarray,
        xquat: np.ndarray,
        cvel: np.ndarray,
        subtree_com: np.ndarray,
    ) -> SimFrame:
        """A SimFrame from batched MjData-layout arrays (N, ...), as float64 copies."""
        r, v = self.index.root_qpos_adr, self.index.root_qvel_adr
        pos = np.asarray(xpos[:, self.body_ids], dtype=np.float64)
        vel = np.asarray(cvel[:, self.body_ids], dtype=np.float64)
        # cvel is [angular; linear] with the linear part taken at the subtree com of the body's tree
        # root; move it to the body origin: v_body = v_com + w x (x_body - x_com).
        com = np.asarray(subtree_com[:, self.body_root_ids], dtype=np.float64)
        ang = vel[..., :3]
        d = pos - com
        lin = vel[..., 3:] + np.stack(
            (
                ang[..., 1] * d[..., 2] - ang[..., 2] * d[..., 1],
                ang[..., 2] * d[..., 0] - ang[..., 0] * d[..., 2],
                ang[..., 0] * d[..., 1] - ang[..., 1] * d[..., 0],
            ),
            axis=-1,
        )
        return SimFrame(
            root_pos=np.array(qpos[:, r : r + 3], dtype=np.float64),
            root_quat=np.array(qpos[:, r + 3 : r + 7], dtype=np.float64),
            root_lin_vel=np.array(qvel[:, v : v + 3], dtype=np.float64),
            root_ang_vel=np.array(qvel[:, v + 3 : v + 6], dtype=np.float64),
            joint_pos=np.asarray(qpos[:, self.index.qpos_adr], dtype=np.float64),
            joint_vel=np.asarray(qvel[:, self.index.qvel_adr], dtype=np.float64),
            body_pos=pos,
            body_quat=np.asarray(xquat[:, self.body_ids], dtype=np.float64),
            body_lin_vel=lin,
            body_ang_vel=ang.copy(),
        )


def nominal_dynamics(model: mujoco.MjModel, num: int) -> DynamicsParams:
    """Parameters that leave the model as it is, for num envs."""
    return DynamicsParams(
        friction_scale=np.ones(num),
        mass_scale=np.ones((num, model.nbody)),
        base_com_offset=np.zeros((num, 3)),
        joint_friction_scale=np.ones((num, model.nv)),
        joint_damping_scale=np.ones((num, model.nv)),
        added_base_mass=np.zeros(num),
    )


def dynamics_fields(model: mujoco.MjModel, base_body: int, params: DynamicsParams) -> dict[str, np.ndarray]:
    """Per-env values (k, ...) of the model fields the parameters change, computed from the nominal model."""
    k = len(params.friction_scale)
    friction = np.repeat(model.geom_friction[None].copy(), k, axis=0)
    friction[..., 0] *= params.friction_scale[:, None]
    mass = model.body_mass[None] * params.mass_scale
    inertia = model.body_inertia[None] * params.mass_scale[..., None]
    if params.added_base_mass is not None:
        # legged_gym's added mass: the base gets heavier or lighter, its inertia tensor stays.
        mass[:, base_body] += params.added_base_mass
    ipos = np.repeat(model.body_ipos[None].copy(), k, axis=0)
    ipos[:, base_body] += params.base_com_offset
    frictionloss = np.repeat(model.dof_frictionloss[None].copy(), k, axis=0)
    if params.joint_friction_scale is not None:
        frictionloss *= params.joint_friction_scale
    damping = np.repeat(model.dof_damping[None].copy(), k, axis=0)
    if params.joint_damping_scale is not None:
        damping *= params.joint_damping_scale
    return {
        "geom_friction": friction,
        "body_mass": mass,
        "body_inertia": inertia,
        "body_ipos": ipos,
        "dof_frictionloss": frictionloss,
        "dof_damping": damping,
    }


DYNAMICS_FIELDS = (
    "geom_friction",
    "body_mass",
    "body_inertia",
    "body_ipos",
    "dof_frictionloss",
    "dof_damping",
)


class SimBackend(ABC):
    """Many simulations of one robot model, stepped together; the interface tasks program against."""

    name: str = "abstract"
    num_envs: int
    decimation: int
    layout: ModelLayout
    # The nominal host model as this backend steps it (batch, mujoco: the motors as PD actuators,
    # robolearn.robots.model.pd_actuator_model): structure and names, never stepped by a task.
    model: mujoco.MjModel

    @abstractmethod
    def reset_envs(self, ids: np.ndarray, state: RootJointState) -> None:
        """Clear envs ids (time, controls, forces, warm start) and put them in the given state."""

    @abstractmethod
    def step(
        self, targets: np.ndarray, kp: np.ndarray, kd: np.ndarray, torque_limit: np.ndarray
    ) -> np.ndarray:
        """Run `decimation` physics steps, the PD law before each; return the last step's torques (N, nj)."""

    @abstractmethod
    def frame(self) -> SimFrame:
        """Root, joint and body state of every env, as host float64 arrays."""

    @abstractmethod
    def add_root_velocity(self, ids: np.ndarray, lin_vel: np.ndarray) -> None:
        """Add (k, 3) world-frame linear velocity to the root of envs ids (a push)."""

    def add_velocity(self, lin_vel: np.ndarray, ang_vel: np.ndarray, joint_vel: np.ndarray) -> None:
        """Add to every env's root linear (world) and angular (body frame) velocity and its joint
        velocities, (N, 3), (N, 3), (N, nj): a residual-dynamics correction (robolearn.sim2real)."""
        from robolearn.errors import UserError

        raise UserError(
            f"the {type(self).__name__} cannot take residual_dynamics; use backend=batch or backend=mujoco"
        )

    @abstractmethod
    def set_dynamics(self, ids: np.ndarray, params: DynamicsParams) -> None:
        """Give envs ids these physical parameters (relative to the nominal model)."""

    @abstractmethod
    def get_physics_state(self) -> np.ndarray:
        """Every env's full integration state (N, nstate), for snapshots."""

    @abstractmethod
    def set_physics_state(self, state: np.ndarray) -> None:
        """Restore get_physics_state()'s array."""

    def close(self) -> None:  # noqa: B027 - most backends hold nothing that needs closing
        """Release threads or device memory."""
