"""The same tasks on MuJoCo Warp: every env a world of one device-resident mjw.Data.

Physics, the PD law and the decimation loop stay on the device (on CUDA the loop is captured once
as a CUDA graph and replayed). Per control step the host sends PD targets and gains and copies back
the rows the task reads (root, joints, a few bodies): the task logic is numpy, shared with the
CPU backends, so what reaches the device is arrays, not Python. docs/envs.md has the cost.

The device task (robolearn/envs/tasks/velocity_device.py) skips those copies: it writes targets and
gains through torch_views() (wp.to_torch, zero-copy), runs step_on_device() and resets worlds with
reset_on_device(mask). docs/warp.md describes both paths.

Warp computes in float32, so results agree with the mujoco and batch backends to float32
accuracy, not bit for bit.

The PD kernel is a device transcription of robolearn.robots.actuators.pd_torque (the one actuator
model); tests/envs/test_envs_warp.py checks that the two agree.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, NamedTuple

import mujoco

# Imported only through make_backend("warp"), which checks for the gpu extra first.
import mujoco_warp as mjw
import numpy as np
import warp as wp

from robolearn.envs.backends.base import (
    DYNAMICS_FIELDS,
    DynamicsParams,
    ModelLayout,
    RootJointState,
    SimBackend,
    SimFrame,
    dynamics_fields,
    nominal_dynamics,
)
from robolearn.envs.backends.warp_kernels import add_rows, pd_kernel, scatter_rows
from robolearn.robots.spec import RobotSpec


class WarpTorchViews(NamedTuple):
    """torch aliases of a WarpBackend's device arrays, for task logic that stays on the device."""

    qpos: Any  # (N, nq)
    qvel: Any  # (N, nv)
    xpos: Any  # (N, nbody, 3)
    xquat: Any  # (N, nbody, 4)
    cvel: Any  # (N, nbody, 6) [angular; linear at the tree root's subtree com]
    subtree_com: Any  # (N, nbody, 3)
    targets: Any  # (N, nj) PD targets the graph reads
    kp: Any
    kd: Any
    torque_limit: Any
    torque: Any  # (N, nj) the last physics step's PD torques
    model: dict[str, Any]  # per-world model fields (DYNAMICS_FIELDS) when built with randomize_dynamics


class WarpBackend(SimBackend):
    """num_envs worlds of one mujoco_warp model on a Warp device ("cuda:0", "cpu", or Warp's default)."""

    name = "warp"

    def __init__(
        self,
        model: mujoco.MjModel,
        spec: RobotSpec,
        num_envs: int,
        bodies: Sequence[str],
        device: str | None = None,
        randomize_dynamics: bool = False,
        nconmax: int = 48,
        njmax: int = 256,
    ) -> None:
        wp.init()
        self.model = model
        self.num_envs = num_envs
        self.decimation = spec.decimation
        self.layout = ModelLayout.build(model, spec, bodies)
        self.device = wp.get_device(device)
        index = self.layout.index
        with wp.ScopedDevice(self.device):
            # Per-world copies only of the fields domain randomisation writes; the rest are shared.
            batch_sizes = dict.fromkeys(DYNAMICS_FIELDS, num_envs) if randomize_dynamics else None
            self.m = mjw.put_model(model, batch_sizes=batch_sizes)
            self.d = mjw.make_data(model, nworld=num_envs, nconmax=nconmax, njmax=njmax)
            nj = spec.num_joints
            self._targets = wp.zeros((num_envs, nj), dtype=wp.float32)
            self._kp = wp.zeros((num_envs, nj), dtype=wp.float32)
            self._kd = wp.zeros((num_envs, nj), dtype=wp.float32)
            self._limit = wp.zeros((num_envs, nj), dtype=wp.float32)
            self._torque = wp.zeros((num_envs, nj), dtype=wp.float32)
            self._qpos_adr: Any = wp.array(index.qpos_adr.astype(np.int32), dtype=wp.int32)
            self._qvel_adr: Any = wp.array(index.qvel_adr.astype(np.int32), dtype=wp.int32)
            self._act: Any = wp.array(index.actuator_ids.astype(np.int32), dtype=wp.int32)
            self._gear: Any = wp.array(index.actuator_gear.astype(np.float32), dtype=wp.float32)
        self._dynamics: dict[str, np.ndarray] | None = None
        self._randomizes = bool(randomize_dynamics)
        self._graph: Any = None

    def _physics_steps(self) -> None:
        nj = self._targets.shape[1]
        for _ in range(self.decimation):
            wp.launch(
                pd_kernel,
                dim=(self.num_envs, nj),
                inputs=[
                    self.d.qpos,
                    self.d.qvel,
                    self._targets,
                    self._kp,
                    self._kd,
                    self._limit,
                    self._qpos_adr,
                    self._qvel_adr,
                    self._act,
                    self._gear,
                ],
                outputs=[self.d.ctrl, self._torque],
            )
            mjw.step(self.m, self.d)

    def reset_envs(self, ids: np.ndarray, state: RootJointState) -> None:
        """mjw.reset_data on the worlds ids, then scatter their qpos and qvel rows on the device."""
        if len(ids) == 0:
            return
        with wp.ScopedDevice(self.device):
            mask = np.zeros(self.num_envs, dtype=bool)
            mask[ids] = True
            mjw.reset_data(self.m, self.d, wp.array(mask, dtype=bool))
            qpos = np.repeat(self.model.qpos0[None], len(ids), axis=0)
            qvel = np.zeros((len(ids), self.model.nv))
            self.layout.write_state(qpos, qvel, state)
            wp_ids: Any = wp.array(np.asarray(ids, dtype=np.int32), dtype=wp.int32)
            for rows, out in ((qpos, self.d.qpos), (qvel, self.d.qvel)):
                wp.launch(
                    scatter_rows,
                    dim=rows.shape,
                    inputs=[wp_ids, wp.array(rows.astype(np.float32), dtype=wp.float32), 0],
                    outputs=[out],
                )

    def step(
        self, targets: np.ndarray, kp: np.ndarray, kd: np.ndarray, torque_limit: np.ndarray
    ) -> np.ndarray:
        """Upload targets and gains, run the decimation loop on the device, return the last torques."""
        for dst, src in (
            (self._targets, targets),
            (self._kp, kp),
            (self._kd, kd),
            (self._limit, torque_limit),
        ):
            dst.assign(np.ascontiguousarray(np.broadcast_to(src, dst.shape), dtype=np.float32))
        self.step_on_device()
        return self._torque.numpy().astype(np.float64)

    def step_on_device(self) -> None:
        """The decimation loop on the targets and gains already in the device buffers (no host copy).

        On CUDA the loop is captured once as a graph on Warp's stream and replayed; the device task
        (robolearn.envs.tasks.velocity_device) writes the buffers through torch_views() first.
        """
        with wp.ScopedDevice(self.device):
            if self.device.is_cuda:
                if self._graph is None:
                    with wp.ScopedCapture() as capture:
                        self._physics_steps()
                    self._graph = capture.graph
                wp.capture_launch(self._graph)
            else:
                self._physics_steps()

    def torch_views(self) -> WarpTorchViews:
        """torch tensors aliasing the device arrays (wp.to_torch: zero-copy, on Warp's device)."""
        d, m = self.d, self.m
        return WarpTorchViews(
            qpos=wp.to_torch(d.qpos),
            qvel=wp.to_torch(d.qvel),
            xpos=wp.to_torch(d.xpos),
            xquat=wp.to_torch(d.xquat),
            cvel=wp.to_torch(d.cvel),
            subtree_com=wp.to_torch(d.subtree_com),
            targets=wp.to_torch(self._targets),
            kp=wp.to_torch(self._kp),
            kd=wp.to_torch(self._kd),
            torque_limit=wp.to_torch(self._limit),
            torque=wp.to_torch(self._torque),
            model={name: wp.to_torch(getattr(m, name)) for name in DYNAMICS_FIELDS}
            if self._randomizes
            else {},
        )

    def reset_on_device(self, mask: Any) -> None:
        """mjw.reset_data on the worlds where the (N,) bool torch tensor `mask` is true (no host copy)."""
        with wp.ScopedDevice(self.device):
            mjw.reset_data(self.m, self.d, wp.from_torch(mask, dtype=wp.bool))

    def frame(self) -> SimFrame:
        """Host copies of the device rows (views on Warp's CPU device)."""
        d = self.d
        return self.layout.frame(
            d.qpos.numpy(),
            d.qvel.numpy(),
            d.xpos.numpy(),
            d.xquat.numpy(),
            d.cvel.numpy(),
            d.subtree_com.numpy(),
        )

    def add_root_velocity(self, ids: np.ndarray, lin_vel: np.ndarray) -> None:
        """Add to the roots' linear velocity on the device."""
        if len(ids) == 0:
            return
        with wp.ScopedDevice(self.device):
            wp.launch(
                add_rows,
                dim=(len(ids), 3),
                inputs=[
                    wp.array(np.asarray(ids, dtype=np.int32), dtype=wp.int32),
                    wp.array(np.asarray(lin_vel, dtype=np.float32), dtype=wp.float32),
                    self.layout.index.root_qvel_adr,
                ],
                outputs=[self.d.qvel],
            )

    def set_dynamics(self, ids: np.ndarray, params: DynamicsParams) -> None:
        """Write the per-world model fields (the backend must be built with randomize_dynamics=True)."""
        if self.m.body_mass.shape[0] != self.num_envs:
            raise ValueError("WarpBackend was built without randomize_dynamics; dynamics are shared")
        if self._dynamics is None:
            self._dynamics = dynamics_fields(
                self.model, self.layout.base_body_id, _nominal_params(self.model, self.num_envs)
            )
        fields = dynamics_fields(self.model, self.layout.base_body_id, params)
        for name in DYNAMICS_FIELDS:
            self._dynamics[name][ids] = fields[name]
            getattr(self.m, name).assign(self._dynamics[name].astype(np.float32))

    def _state_fields(self) -> tuple[Any, ...]:
        d = self.d
        return (d.qpos, d.qvel, d.act, d.ctrl, d.qacc_warmstart)

    def get_physics_state(self) -> np.ndarray:
        """time, qpos, qvel, act, ctrl and warm start of each world, concatenated (float64)."""
        parts = [self.d.time.numpy()[:, None]] + [
            f.numpy().reshape(self.num_envs, -1) for f in self._state_fields()
        ]
        return np.concatenate(parts, axis=1).astype(np.float64)

    def set_physics_state(self, state: np.ndarray) -> None:
        """Write get_physics_state()'s columns back."""
        self.d.time.assign(state[:, 0].astype(np.float32))
        col = 1
        for f in self._state_fields():
            width = int(np.prod(f.shape[1:]))
            f.assign(state[:, col : col + width].reshape(f.shape).astype(np.float32))
            col += width


def _nominal_params(model: mujoco.MjModel, num: int) -> DynamicsParams:
    return nominal_dynamics(model, num)
