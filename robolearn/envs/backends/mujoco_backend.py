"""The reference backend: one MjModel and one MjData per env, stepped with mj_step in a loop."""

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
from robolearn.robots.actuators import pd_torque
from robolearn.robots.spec import RobotSpec

_INTEGRATION_STATE = mujoco.mjtState.mjSTATE_INTEGRATION


class MujocoBackend(SimBackend):
    """num_envs independent MjData (each with its own model copy, so dynamics can differ per env)."""

    name = "mujoco"

    def __init__(self, model: mujoco.MjModel, spec: RobotSpec, num_envs: int, bodies: Sequence[str]) -> None:
        self.model = model
        self.num_envs = num_envs
        self.decimation = spec.decimation
        self.layout = ModelLayout.build(model, spec, bodies)
        self.models = [copy.copy(model) for _ in range(num_envs)]
        self.datas = [mujoco.MjData(m) for m in self.models]
        self._nstate = mujoco.mj_stateSize(model, _INTEGRATION_STATE)

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
        """PD on all envs at once (the same arithmetic the batch backend does), then mj_step each."""
        index = self.layout.index
        tau = np.zeros_like(targets)
        for _ in range(self.decimation):
            q = np.stack([d.qpos[index.qpos_adr] for d in self.datas])
            dq = np.stack([d.qvel[index.qvel_adr] for d in self.datas])
            tau = pd_torque(targets, q, dq, kp, kd, torque_limit)
            ctrl = index.ctrl_from_torque(tau)
            for m, d, u in zip(self.models, self.datas, ctrl, strict=True):
                d.ctrl[index.actuator_ids] = u
                mujoco.mj_step(m, d)
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
