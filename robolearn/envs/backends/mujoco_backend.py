"""The reference backend: one MjModel and one MjData per env, stepped with mj_step in a loop.

The PD law runs inside MuJoCo, as in the batch backend: each env's model copy carries its gains and
torque limits as actuator parameters (robolearn.robots.model.pd_actuator_model).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence

import mujoco
import numpy as np

from robolearn.envs.backends.base import (
    DYNAMICS_FIELDS,
    DynamicsParams,
    ModelLayout,
    RootJointState,
    SimBackend,
    SimFrame,
    dynamics_fields,
)
from robolearn.robots.actuators import PdActuatorParams, pd_actuator_params
from robolearn.robots.model import pd_actuator_model, write_pd_params
from robolearn.robots.spec import RobotSpec

_INTEGRATION_STATE = mujoco.mjtState.mjSTATE_INTEGRATION


class MujocoBackend(SimBackend):
    """num_envs independent MjData (each with its own model copy, so dynamics can differ per env)."""

    name = "mujoco"

    def __init__(self, model: mujoco.MjModel, spec: RobotSpec, num_envs: int, bodies: Sequence[str]) -> None:
        self.num_envs = num_envs
        self.decimation = spec.decimation
        self.layout = ModelLayout.build(model, spec, bodies)
        # The model as stepped: the MJCF's motors as PD actuators (same structure, names and numbers).
        self.model = pd_actuator_model(model, spec)
        self.models = [copy.copy(self.model) for _ in range(num_envs)]
        self.datas = [mujoco.MjData(m) for m in self.models]
        self._nstate = mujoco.mj_stateSize(model, _INTEGRATION_STATE)
        nj = spec.num_joints
        # What each model copy's PD rows hold: (gain, bias, limit), rewritten when the task's change.
        self._written = (
            np.full((num_envs, nj), np.nan),
            np.zeros((num_envs, nj, 3)),
            np.zeros((num_envs, nj)),
        )

    def _stack(self, field: str) -> np.ndarray:
        return np.stack([getattr(d, field) for d in self.datas])

    def reset_envs(self, ids: np.ndarray, state: RootJointState) -> None:
        """mj_resetData, then write the state; derived fields follow at the next step."""
        for row, i in enumerate(ids):
            m, d = self.models[i], self.datas[i]
            mujoco.mj_resetData(m, d)
            qpos, qvel = d.qpos[None].copy(), d.qvel[None].copy()
            self.layout.write_state(qpos, qvel, RootJointState(*(a[row : row + 1] for a in state)))
            d.qpos[:] = qpos[0]
            d.qvel[:] = qvel[0]

    def step(
        self, targets: np.ndarray, kp: np.ndarray, kd: np.ndarray, torque_limit: np.ndarray
    ) -> np.ndarray:
        """Targets and changed gains into each env's data and model, then `decimation` mj_steps each."""
        acts = self.layout.index.actuator_ids
        params = pd_actuator_params(targets, kp, kd, torque_limit)
        gain, bias, limit = self._written
        changed = (
            np.any(gain != params.gain, axis=1)
            | np.any(bias != params.bias, axis=(1, 2))
            | np.any(limit != params.limit, axis=1)
        )
        for row in np.flatnonzero(changed):
            i = int(row)
            m = self.models[i]
            write_pd_params(
                m.actuator_gainprm,
                m.actuator_biasprm,
                m.actuator_forcerange,
                acts,
                PdActuatorParams(*(a[i] for a in params)),
            )
            gain[i], bias[i], limit[i] = params.gain[i], params.bias[i], params.limit[i]
        tau = np.empty_like(params.gain)
        for i, (m, d) in enumerate(zip(self.models, self.datas, strict=True)):
            d.ctrl[acts] = params.ctrl[i]
            mujoco.mj_step(m, d, nstep=self.decimation)
            tau[i] = d.actuator_force[acts]  # the last substep's force (gear 1: the joint torque)
        return tau

    def frame(self) -> SimFrame:
        """Stacked copies of every MjData's fields."""
        return self.layout.frame(
            self._stack("qpos"),
            self._stack("qvel"),
            self._stack("xpos"),
            self._stack("xquat"),
            self._stack("cvel"),
            self._stack("subtree_com"),
        )

    def add_root_velocity(self, ids: np.ndarray, lin_vel: np.ndarray) -> None:
        """Add to each root's free-joint linear velocity."""
        v = self.layout.index.root_qvel_adr
        for row, i in enumerate(ids):
            self.datas[i].qvel[v : v + 3] += lin_vel[row]

    def add_velocity(self, lin_vel: np.ndarray, ang_vel: np.ndarray, joint_vel: np.ndarray) -> None:
        """Add to each env's free-joint and joint velocities."""
        v = self.layout.index.root_qvel_adr
        for i, data in enumerate(self.datas):
            data.qvel[v : v + 3] += lin_vel[i]
            data.qvel[v + 3 : v + 6] += ang_vel[i]
            data.qvel[self.layout.index.qvel_adr] += joint_vel[i]

    def set_dynamics(self, ids: np.ndarray, params: DynamicsParams) -> None:
        """Write friction, masses, inertias and the base centre of mass into each env's model copy."""
        fields = dynamics_fields(self.model, self.layout.base_body_id, params)
        for row, i in enumerate(ids):
            for name in DYNAMICS_FIELDS:
                getattr(self.models[i], name)[:] = fields[name][row]

    def get_physics_state(self) -> np.ndarray:
        """mj_getState(mjSTATE_INTEGRATION) of each env, the row layout mujoco.batch uses too."""
        out = np.empty((self.num_envs, self._nstate))
        for i, (m, d) in enumerate(zip(self.models, self.datas, strict=True)):
            mujoco.mj_getState(m, d, out[i], _INTEGRATION_STATE)
        return out

    def set_physics_state(self, state: np.ndarray) -> None:
        """mj_setState for each env."""
        for i, (m, d) in enumerate(zip(self.models, self.datas, strict=True)):
            mujoco.mj_setState(m, d, np.ascontiguousarray(state[i], dtype=np.float64), _INTEGRATION_STATE)
