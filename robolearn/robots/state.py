"""RobotState: what a policy may know about the robot, the same in simulation and on hardware.

Every array has the quantity on its last axis and an optional leading batch axis: (n,) for one
robot, (B, n) for B robots. The fields are what Unitree's LowState gives (joint q/dq, IMU
quaternion and gyro) plus the operator command and the policy's previous action, and, for policies
trained with a gait clock, the clock's phase (kept by the env or by the deploy runtime). The base
linear velocity is optional: no real robot's LowState reports it, a simulator can. A motion-tracking
policy also reads the reference it follows at this step (MotionFrame: the tracking env's clip, or the
deploy runtime's copy of it from the policy artifact).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from robolearn.errors import UserError
from robolearn.robots.spec import RobotSpec


@dataclass(frozen=True)
class MotionFrame:
    """The reference motion at one step (batched like the RobotState that carries it)."""

    joint_pos: np.ndarray  # (..., n) reference joint positions, motor order, rad
    joint_vel: np.ndarray  # (..., n) reference joint velocities, rad/s
    anchor_quat: np.ndarray  # (..., 4) the reference anchor body's (torso) orientation, world frame


@dataclass(frozen=True)
class RobotState:
    """One or a batch of robot states; joint arrays are in the spec's motor order."""

    joint_pos: np.ndarray  # (..., n) rad
    joint_vel: np.ndarray  # (..., n) rad/s
    base_quat: np.ndarray  # (..., 4) IMU orientation, w x y z, body to world
    gyro: np.ndarray  # (..., 3) IMU angular velocity in the IMU (body) frame, rad/s
    command: np.ndarray  # (..., 3) vx, vy (m/s, body frame) and yaw rate (rad/s)
    last_action: np.ndarray  # (..., n) the previous policy output, before scaling
    gait_phase: np.ndarray | None = None  # (..., 1) position in the gait cycle, [0, 1); None: no clock
    base_lin_vel: np.ndarray | None = None  # (..., 3) base linear velocity, body frame, m/s; None: unknown
    motion: MotionFrame | None = None  # the reference a tracking policy follows; None: no reference

    @property
    def batch_shape(self) -> tuple[int, ...]:
        """Leading shape: () for one robot, (B,) for a batch."""
        return tuple(self.joint_pos.shape[:-1])

    @property
    def is_batched(self) -> bool:
        """True when the arrays carry a leading batch axis."""
        return self.joint_pos.ndim > 1

    def validate(self, spec: RobotSpec) -> None:
        """Raise UserError if any array has the wrong trailing size or the batch shapes disagree."""
        n = spec.num_joints
        sizes = {
            "joint_pos": n,
            "joint_vel": n,
            "base_quat": 4,
            "gyro": 3,
            "command": 3,
            "last_action": n,
            "gait_phase": 1,
            "base_lin_vel": 3,
        }
        batch = self.batch_shape
        for name, size in sizes.items():
            value = getattr(self, name)
            if value is None:
                continue
            arr = np.asarray(value)
            if arr.ndim == 0 or arr.shape[-1] != size:
                raise UserError(
                    f"RobotState.{name} must end in size {size} for {spec.name}, got shape {arr.shape}"
                )
            if arr.shape[:-1] != batch:
                raise UserError(
                    f"RobotState.{name} has batch shape {arr.shape[:-1]} but joint_pos has {batch}"
                )
        if self.motion is not None:
            for name, size in (("joint_pos", n), ("joint_vel", n), ("anchor_quat", 4)):
                arr = np.asarray(getattr(self.motion, name))
                if arr.shape != (*batch, size):
                    raise UserError(
                        f"RobotState.motion.{name} must have shape {(*batch, size)} for {spec.name}, got {arr.shape}"
                    )

    @classmethod
    def default(cls, spec: RobotSpec, batch_size: int | None = None) -> RobotState:
        """The robot standing still, level, at its default pose, with zero command and action."""
        lead = () if batch_size is None else (batch_size,)
        quat = np.zeros((*lead, 4))
        quat[..., 0] = 1.0
        return cls(
            joint_pos=np.broadcast_to(spec.default_pos_array, (*lead, spec.num_joints)).copy(),
            joint_vel=np.zeros((*lead, spec.num_joints)),
            base_quat=quat,
            gyro=np.zeros((*lead, 3)),
            command=np.zeros((*lead, 3)),
            last_action=np.zeros((*lead, spec.num_joints)),
        )

    def index(self, i: int) -> RobotState:
        """The i-th robot of a batch, as an unbatched state."""
        if not self.is_batched:
            raise UserError("RobotState.index needs a batched state")
        return RobotState(
            joint_pos=self.joint_pos[i],
            joint_vel=self.joint_vel[i],
            base_quat=self.base_quat[i],
            gyro=self.gyro[i],
            command=self.command[i],
            last_action=self.last_action[i],
            gait_phase=None if self.gait_phase is None else self.gait_phase[i],
            base_lin_vel=None if self.base_lin_vel is None else self.base_lin_vel[i],
        )

    @classmethod
    def stack(cls, states: list[RobotState]) -> RobotState:
        """A batched state from unbatched ones."""
        if not states:
            raise UserError("RobotState.stack needs at least one state")
        return cls(
            joint_pos=np.stack([s.joint_pos for s in states]),
            joint_vel=np.stack([s.joint_vel for s in states]),
            base_quat=np.stack([s.base_quat for s in states]),
            gyro=np.stack([s.gyro for s in states]),
            command=np.stack([s.command for s in states]),
            last_action=np.stack([s.last_action for s in states]),
            gait_phase=None
            if any(s.gait_phase is None for s in states)
            else np.stack([np.asarray(s.gait_phase) for s in states]),
            base_lin_vel=None
            if any(s.base_lin_vel is None for s in states)
            else np.stack([np.asarray(s.base_lin_vel) for s in states]),
        )
