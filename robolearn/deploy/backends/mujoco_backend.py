"""In-process MuJoCo backend: sim2sim with the robot's model, stepped in lockstep with the runtime.

States pass through float32, as a LowState carries them, so a policy sees what it would see on
DDS. Unlike DDS, a sample also carries the simulator's true base linear velocity (body frame), for
policies that observe it (legged_gym's and Isaac Lab's Go2 flat tasks). Optional perturbations:
planar velocity kicks at random intervals (legged_gym's pushes).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from robolearn.deploy.backends.base import Backend, StateSample
from robolearn.deploy.commands import MotorCommand
from robolearn.deploy.mismatch import TargetPhysics
from robolearn.deploy.simulation import RobotSimulation
from robolearn.deploy.truth import TruthRecorder
from robolearn.robots.observations import quat_rotate_inverse
from robolearn.robots.spec import RobotSpec, supported_mode_machines


def _as_float32(x: np.ndarray) -> np.ndarray:
    return np.asarray(x, dtype=np.float32).astype(np.float64)


class MujocoBackend(Backend):
    """A RobotSimulation advanced by the runtime (advance()) instead of by the wall clock."""

    name = "mujoco"
    supplies_base_lin_vel = True

    def __init__(
        self,
        spec: RobotSpec,
        model_path: str | Path | None = None,
        physics_hz: float = 1000.0,
        initial_pose: str = "default",
        push_interval_s: tuple[float, float] | None = None,
        push_velocity: float = 0.0,
        seed: int = 0,
        mismatch: TargetPhysics | None = None,
        truth_dir: str | Path | None = None,
    ) -> None:
        super().__init__()
        self.sim = RobotSimulation(
            spec, model_path, physics_dt=1.0 / physics_hz, seed=seed, mismatch=mismatch
        )
        # The simulator's true state at every polled state (robolearn.deploy.truth), when recording.
        self.truth = None if truth_dir is None else TruthRecorder(truth_dir, self.sim, "mujoco")
        self.sim.reset(initial_pose)
        if initial_pose == "crouch":
            self.sim.settle(1.0)  # let the folded robot come to rest on the floor, unpowered
        self.rng = np.random.default_rng(seed)
        self.push_interval_s = push_interval_s
        self.push_velocity = float(push_velocity)
        self._next_push = self._draw_push_time(0.0)
        self._carry = 0.0
        self.stats.extra["pushes"] = 0.0
        # The simulation is the hardware the spec describes: report its revision as a LowState would.
        modes = supported_mode_machines(spec)
        self.mode_machine = modes[0] if modes else 0

    def _draw_push_time(self, now: float) -> float:
        if self.push_interval_s is None or self.push_velocity <= 0:
            return np.inf
        return now + float(self.rng.uniform(*self.push_interval_s))

    def poll_state(self, now: float) -> StateSample:
        """The simulated sensors now (always fresh)."""
        r = self.sim.read()
        self.stats.states += 1
        if self.truth is not None:
            self.truth.record()
        return StateSample(
            joint_pos=_as_float32(r.joint_pos),
            joint_vel=_as_float32(r.joint_vel),
            quat=_as_float32(r.quat),
            gyro=_as_float32(r.gyro),
            tick=round(r.time * 1000) & 0xFFFFFFFF,
            received=now,
            mode_machine=self.mode_machine,
            base_lin_vel=_as_float32(self.base_lin_vel()),
        )

    def base_lin_vel(self) -> np.ndarray:
        """The base's linear velocity in its own frame (m/s): the free joint's world-frame velocity
        rotated by the base orientation, as legged_gym computes base_lin_vel from its root state."""
        d, idx = self.sim.data, self.sim.index
        r, v = idx.root_qpos_adr, idx.root_qvel_adr
        return quat_rotate_inverse(d.qpos[r + 3 : r + 7], d.qvel[v : v + 3])

    def send(self, command: MotorCommand) -> None:
        """Apply the command (float32, as on the wire) from the next physics step."""
        self.stats.commands += 1
        self.sim.set_command(_as_float32(command.q), _as_float32(command.kp), _as_float32(command.kd))

    def advance(self, dt: float) -> None:
        """Simulate dt seconds (whole physics steps; the remainder carries over)."""
        self._carry += dt
        steps = int(self._carry / self.sim.physics_dt + 1e-9)
        self._carry -= steps * self.sim.physics_dt
        self.sim.step(steps)
        if self.sim.data.time >= self._next_push:
            kick = self.rng.uniform(-self.push_velocity, self.push_velocity, size=2)
            self.sim.push((float(kick[0]), float(kick[1])))
            self.stats.extra["pushes"] += 1
            self._next_push = self._draw_push_time(self.sim.data.time)

    def base_height(self) -> float:
        """Base height above the floor origin (telemetry)."""
        return float(self.sim.read().base_pos[2])

    def close(self) -> None:
        """Finish the truth log (when recording)."""
        if self.truth is not None:
            self.truth.close()
            self.truth = None
