"""Many envs of one model in a mujoco.batch.Batch: state rows stepped on a C thread pool.

Batch is bit-identical to a loop of mj_step over one MjData per simulation, at any thread count,
so this backend and MujocoBackend give the same numbers; it only removes the Python loop. The PD
law runs in numpy on the bound state views between physics steps (one Batch.step per physics
step), because the torque must follow the joint state at the physics rate, as on the robot.
"""

from __future__ import annotations

from collections.abc import Sequence

import mujoco
import numpy as np
from mujoco.batch import Batch

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


class BatchBackend(SimBackend):
    """num_envs simulations in one mujoco.batch.Batch on `threads` threads (the caller's included)."""

    name = "batch"

    def __init__(
        self,
        model: mujoco.MjModel,
        spec: RobotSpec,
        num_envs: int,
        bodies: Sequence[str],
        threads: int = 1,
    ) -> None:
        self.model = model
        self.num_envs = num_envs
        self.decimation = spec.decimation
        self.layout = ModelLayout.build(model, spec, bodies)
        self.batch = Batch(model, num_envs, nthread=max(1, int(threads)))
        # Live views of the state rows (writes are the next step's state) and of the outputs.
        self._qpos = self.batch.bind("qpos")
        self._qvel = self.batch.bind("qvel")
        self._ctrl = self.batch.bind("ctrl")
        self._xpos = self.batch.bind("xpos")
        self._xquat = self.batch.bind("xquat")
        self._cvel = self.batch.bind("cvel")
        self._subtree_com = self.batch.bind("subtree_com")
        self._dynamics: dict[str, np.ndarray] | None = None

    def reset_envs(self, ids: np.ndarray, state: RootJointState) -> None:
        """Batch.reset without a forward pass (as mj_resetData), then write the state rows."""
        if len(ids) == 0:
            return
        ids = np.asarray(ids, dtype=np.int64)
        self.batch.reset(ids, stage=mujoco.mjtStage.mjSTAGE_NONE)
        qpos, qvel = self._qpos[ids], self._qvel[ids]
        self.layout.write_state(qpos, qvel, state)
        self._qpos[ids] = qpos
        self._qvel[ids] = qvel

    def step(
        self, targets: np.ndarray, kp: np.ndarray, kd: np.ndarray, torque_limit: np.ndarray
    ) -> np.ndarray:
        """PD (numpy, all envs) then one Batch.step, `decimation` times."""
        index = self.layout.index
        tau = np.zeros_like(targets)
        for _ in range(self.decimation):
            tau = pd_torque(
                targets, self._qpos[:, index.qpos_adr], self._qvel[:, index.qvel_adr], kp, kd, torque_limit
            )
            self._ctrl[:, index.actuator_ids] = index.ctrl_from_torque(tau)
            self.batch.step()
        return tau

    def frame(self) -> SimFrame:
        """Copies of the bound rows and outputs."""
        return self.layout.frame(
            self._qpos, self._qvel, self._xpos, self._xquat, self._cvel, self._subtree_com
        )

    def add_root_velocity(self, ids: np.ndarray, lin_vel: np.ndarray) -> None:
        """Add to the roots' linear velocity in the state rows."""
        v = self.layout.index.root_qvel_adr
        self._qvel[np.asarray(ids, dtype=np.int64), v : v + 3] += lin_vel

    def set_dynamics(self, ids: np.ndarray, params: DynamicsParams) -> None:
        """Expand the model fields per simulation (once) and write the envs' rows."""
        if self._dynamics is None:
            self._dynamics = {name: self.batch.expand(name) for name in DYNAMICS_FIELDS}
        fields = dynamics_fields(self.model, self.layout.base_body_id, params)
        ids = np.asarray(ids, dtype=np.int64)
        for name in DYNAMICS_FIELDS:
            self._dynamics[name][ids] = fields[name]

    def get_physics_state(self) -> np.ndarray:
        """A copy of the state rows (mjSTATE_INTEGRATION per simulation)."""
        return np.array(self.batch.state)

    def set_physics_state(self, state: np.ndarray) -> None:
        """Write the state rows back."""
        self.batch.state[...] = state
