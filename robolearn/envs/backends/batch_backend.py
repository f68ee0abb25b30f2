"""Many envs of one model in a mujoco.batch.Batch: state rows stepped on a C thread pool.

Batch is bit-identical to a loop of mj_step over one MjData per simulation, at any thread count,
so this backend and MujocoBackend give the same numbers; it only removes the Python loop. The PD
law runs inside MuJoCo (robolearn.robots.model.pd_actuator_model): each env's gains and torque
limits are per-simulation actuator parameters (Batch.expand), the targets its controls, so one
Batch.step(nstep=decimation) advances a control step with the torque following the joint state at
the physics rate, as on the robot, and no Python between substeps.
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
from robolearn.robots.actuators import MAX_FINITE_TARGET, PdActuatorParams, pd_actuator_params
from robolearn.robots.model import pd_actuator_model, write_pd_params
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
        self.num_envs = num_envs
        self.decimation = spec.decimation
        self.layout = ModelLayout.build(model, spec, bodies)
        # The model as stepped: the MJCF's motors as PD actuators (same structure, names and numbers).
        self.model = pd_actuator_model(model, spec)
        self.batch = Batch(self.model, num_envs, nthread=max(1, int(threads)))
        # Live views of the state rows (writes are the next step's state) and of the outputs.
        self._qpos = self.batch.bind("qpos")
        self._qvel = self.batch.bind("qvel")
        self._ctrl = self.batch.bind("ctrl")
        self._xpos = self.batch.bind("xpos")
        self._xquat = self.batch.bind("xquat")
        self._cvel = self.batch.bind("cvel")
        self._subtree_com = self.batch.bind("subtree_com")
        self._force = self.batch.bind("actuator_force")
        self._dynamics: dict[str, np.ndarray] | None = None
        # Per-env PD gains and limits: expanded model fields, rewritten when the task's values change.
        self._gainprm = self.batch.expand("actuator_gainprm")
        self._biasprm = self.batch.expand("actuator_biasprm")
        self._forcerange = self.batch.expand("actuator_forcerange")
        self._written: PdActuatorParams | None = None
        # (kp, kd, limit) of the rows written, when they were written for all-regular commands.
        self._regular_gains: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None

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
        """Targets to the controls, changed gains to the model rows, then one Batch.step of `decimation` substeps."""
        acts = self.layout.index.actuator_ids
        if self._regular_gains is not None and self._fast_path_holds(targets, kp, kd, torque_limit):
            # The common step: gains unchanged and every target regular, so the written actuator
            # rows already are pd_actuator_params' and only the controls (the targets) change.
            self._ctrl[:, acts] = targets
        else:
            params = pd_actuator_params(targets, kp, kd, torque_limit)
            if not _same_gains(self._written, params):
                write_pd_params(self._gainprm, self._biasprm, self._forcerange, acts, params)
                self._written = params
            self._ctrl[:, acts] = params.ctrl
            regular = bool(np.array_equal(params.ctrl, np.broadcast_to(targets, params.ctrl.shape)))
            regular = regular and bool(np.array_equal(params.gain, np.broadcast_to(kp, params.gain.shape)))
            self._regular_gains = (np.array(kp), np.array(kd), np.array(torque_limit)) if regular else None
        self.batch.step(nstep=self.decimation)
        # The last substep's force (gear 1: the joint torque), as the numpy law returned the last one.
        return np.array(self._force[:, acts])

    def _fast_path_holds(
        self, targets: np.ndarray, kp: np.ndarray, kd: np.ndarray, torque_limit: np.ndarray
    ) -> bool:
        assert self._regular_gains is not None
        last_kp, last_kd, last_limit = self._regular_gains
        return (
            np.array_equal(kp, last_kp)
            and np.array_equal(kd, last_kd)
            and np.array_equal(torque_limit, last_limit)
            # NaN fails the comparison: such a target takes pd_actuator_params' guarded path.
            and bool(np.all(np.abs(targets) <= MAX_FINITE_TARGET))
        )

    def frame(self) -> SimFrame:
        """Copies of the bound rows and outputs."""
        return self.layout.frame(
            self._qpos, self._qvel, self._xpos, self._xquat, self._cvel, self._subtree_com
        )

    def add_root_velocity(self, ids: np.ndarray, lin_vel: np.ndarray) -> None:
        """Add to the roots' linear velocity in the state rows."""
        v = self.layout.index.root_qvel_adr
        self._qvel[np.asarray(ids, dtype=np.int64), v : v + 3] += lin_vel

    def add_velocity(self, lin_vel: np.ndarray, ang_vel: np.ndarray, joint_vel: np.ndarray) -> None:
        """Add to every env's root and joint velocities in the state rows."""
        v = self.layout.index.root_qvel_adr
        self._qvel[:, v : v + 3] += lin_vel
        self._qvel[:, v + 3 : v + 6] += ang_vel
        self._qvel[:, self.layout.index.qvel_adr] += joint_vel

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


def _same_gains(written: PdActuatorParams | None, params: PdActuatorParams) -> bool:
    """Whether the model rows already hold these gains, biases and limits."""
    return (
        written is not None
        and np.array_equal(written.gain, params.gain)
        and np.array_equal(written.bias, params.bias)
        and np.array_equal(written.limit, params.limit)
    )
