"""A MuJoCo robot driven like the hardware: motor-side PD on (q*, dq*, kp, kd, tau) every physics step.

Used by the in-process sim2sim backend and by the DDS sim bridge. The PD law is
robolearn.robots.actuators.pd_torque with the command's own gains (what each Unitree motor driver
does with LowCmd), evaluated at every physics step (1 kHz by default) from the latest command. It
runs inside MuJoCo, on the actuators of robolearn.robots.model.pd_actuator_model, the physics the
training envs step too (so train, sim2sim and the sim bridge share one). The IMU values are read from the model's sensors on the spec's IMU site when it has them (our MJCF
does), else from the free joint.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from pathlib import Path

import mujoco
import numpy as np

from robolearn.deploy.mismatch import TargetPhysics, target_physics
from robolearn.errors import UserError
from robolearn.robots.actuators import pd_actuator_params
from robolearn.robots.model import (
    default_model_path,
    geom_lowest_point,
    joint_index_map,
    load_model,
    pd_actuator_model,
    set_default_pose,
    write_pd_params,
)
from robolearn.robots.spec import RobotSpec

# Robots folded on the ground, what they look like after lying down and before a deploy stands them
# up. Go2: hip 0, thigh 1.36, calf -2.65, the start pose of Unitree's go2_stand_example.py.
CROUCH_POSES: dict[str, dict[str, float]] = {"go2": {"hip": 0.0, "thigh": 1.36, "calf": -2.65}}


def crouch_pose(spec: RobotSpec) -> np.ndarray:
    """Joint positions (motor order) of the robot lying folded, for robots that have one."""
    parts = CROUCH_POSES.get(spec.name)
    if parts is None:
        raise UserError(
            f"no crouch pose for {spec.name} (robots with one: {', '.join(CROUCH_POSES)}); use default"
        )
    # Go2 joints are named <leg>_<part>_joint.
    pose = np.array([parts[name.split("_")[1]] for name in spec.joint_names])
    return np.clip(pose, spec.joint_pos_lower, spec.joint_pos_upper)


@dataclass(frozen=True)
class SimReading:
    """What the robot's sensors report after a step, joints in motor order."""

    time: float
    joint_pos: np.ndarray
    joint_vel: np.ndarray
    joint_torque: np.ndarray
    quat: np.ndarray  # w x y z
    gyro: np.ndarray  # body frame
    accel: np.ndarray  # body frame, specific force (m/s², +9.81 up when at rest)
    base_pos: np.ndarray  # world, for telemetry only (no real robot reports it)


class RobotSimulation:
    """One robot in MuJoCo with hardware-like motor commands; joints in the spec's motor order."""

    def __init__(
        self,
        spec: RobotSpec,
        model_path: str | Path | None = None,
        physics_dt: float = 0.001,
        seed: int = 0,
        mismatch: TargetPhysics | None = None,
    ) -> None:
        if not 0 < physics_dt <= spec.physics_dt:
            raise UserError(f"physics_dt={physics_dt} must be in (0, {spec.physics_dt}] for {spec.name}")
        self.spec = spec
        # The target's physics (robolearn.deploy.mismatch): model edits, motor gains and limits, delay.
        self.mismatch = mismatch if mismatch is not None else target_physics(spec, (), model_path, "none")
        source = default_model_path(spec) if model_path is None else Path(model_path).expanduser()
        motor_model = load_model(spec, self.mismatch.model_file(source) if source.is_file() else source)
        self.index = joint_index_map(motor_model, spec)
        self.model = pd_actuator_model(motor_model, spec)
        self.model.opt.timestep = float(physics_dt)
        self.physics_dt = float(physics_dt)
        self.data = mujoco.MjData(self.model)
        self.rng = np.random.default_rng(seed)
        n = spec.num_joints
        self.cmd_q = spec.default_pos_array.copy()
        self.cmd_dq = np.zeros(n)
        self.cmd_kp = np.zeros(n)
        self.cmd_kd = np.zeros(n)
        self.cmd_tau = np.zeros(n)
        self.torque = np.zeros(n)
        self._imu = self._imu_sensors()
        # The command the motors apply now, and (with a delay) the ones on their way: (due time, command).
        self._applied: tuple[np.ndarray, ...] = self._command_now()
        self._pending: deque[tuple[float, tuple[np.ndarray, ...]]] = deque()

    def _imu_sensors(self) -> tuple[int, int, int] | None:
        site = mujoco.mj_name2id(self.model, mujoco.mjtObj.mjOBJ_SITE, self.spec.imu_site)
        if site < 0:
            return None
        found: dict[int, int] = {}
        for s in range(self.model.nsensor):
            if (
                self.model.sensor_objtype[s] == mujoco.mjtObj.mjOBJ_SITE
                and self.model.sensor_objid[s] == site
            ):
                found.setdefault(int(self.model.sensor_type[s]), int(self.model.sensor_adr[s]))
        kinds = (
            mujoco.mjtSensor.mjSENS_FRAMEQUAT,
            mujoco.mjtSensor.mjSENS_GYRO,
            mujoco.mjtSensor.mjSENS_ACCELEROMETER,
        )
        if not all(int(k) in found for k in kinds):
            return None
        q, g, a = (found[int(k)] for k in kinds)
        return q, g, a

    def reset(self, pose: str = "default") -> None:
        """Put the robot at rest: `default` stands at the default pose, `crouch` lies folded on the floor."""
        set_default_pose(self.model, self.data, self.spec, self.index)
        if pose == "crouch":
            self.data.qpos[self.index.qpos_adr] = crouch_pose(self.spec)
            mujoco.mj_forward(self.model, self.data)
            r = self.index.root_qpos_adr
            self.data.qpos[r + 2] += 0.005 - self._lowest_robot_point()
            mujoco.mj_forward(self.model, self.data)
        elif pose != "default":
            raise UserError(f"initial pose '{pose}' is unknown; use default or crouch")
        self.set_command(
            self.spec.default_pos_array, np.zeros(self.spec.num_joints), np.zeros(self.spec.num_joints)
        )
        self._pending.clear()  # a reset robot starts unpowered, with nothing on its way
        self._applied = self._command_now()

    def _lowest_robot_point(self) -> float:
        lowest = np.inf
        floor_body = 0
        for g in range(self.model.ngeom):
            if self.model.geom_bodyid[g] == floor_body:
                continue
            try:
                lowest = min(lowest, geom_lowest_point(self.model, self.data, g))
            except UserError:
                continue  # meshes and planes: skip, the settle phase finds the floor anyway
        return float(lowest) if np.isfinite(lowest) else 0.0

    def settle(self, seconds: float) -> None:
        """Simulate with the current command for a while (no wall-clock pacing)."""
        self.step(round(seconds / self.physics_dt))

    def set_command(
        self,
        q: np.ndarray,
        kp: np.ndarray,
        kd: np.ndarray,
        dq: np.ndarray | None = None,
        tau: np.ndarray | None = None,
    ) -> None:
        """The motor command received now (arrays in motor order), applied from the next step on, or
        the mismatch's delay later."""
        self.cmd_q = np.asarray(q, dtype=np.float64)
        self.cmd_kp = np.asarray(kp, dtype=np.float64)
        self.cmd_kd = np.asarray(kd, dtype=np.float64)
        self.cmd_dq = np.zeros_like(self.cmd_q) if dq is None else np.asarray(dq, dtype=np.float64)
        self.cmd_tau = np.zeros_like(self.cmd_q) if tau is None else np.asarray(tau, dtype=np.float64)
        if self.mismatch.delay_s > 0:
            self._pending.append((self.data.time + self.mismatch.delay_s, self._command_now()))
        else:
            self._applied = self._command_now()

    def _command_now(self) -> tuple[np.ndarray, ...]:
        return (self.cmd_q, self.cmd_kp, self.cmd_kd, self.cmd_dq, self.cmd_tau)

    @property
    def applied_command(self) -> tuple[np.ndarray, ...]:
        """(q, kp, kd, dq, tau) the motors act on now: the received command after the delay, before
        the mismatch's gain scales and torque limits."""
        return self._applied

    def step(self, n: int = 1) -> None:
        """Advance n physics steps; MuJoCo's actuators run the motor PD law of the command at each
        (a delayed command takes over at the first physics step at or after its due time)."""
        while n > 0:
            self._take_due_commands()
            chunk = n
            if self._pending:
                to_due = int(np.ceil((self._pending[0][0] - self.data.time) / self.physics_dt - 0.5))
                chunk = max(1, min(n, to_due))
            self._physics(chunk)
            n -= chunk
        self._take_due_commands()  # applied_command is the one that governs from now on

    def _take_due_commands(self) -> None:
        half_dt = 0.5 * self.physics_dt
        while self._pending and self._pending[0][0] <= self.data.time + half_dt:
            self._applied = self._pending.popleft()[1]

    def _physics(self, n: int) -> None:
        m, d, acts, target = self.model, self.data, self.index.actuator_ids, self.mismatch
        q, kp, kd, dq, tau = self._applied
        # Written every call (a reset clears ctrl): a few dozen numbers against n physics steps.
        params = pd_actuator_params(
            q, kp * target.kp_scale, kd * target.kd_scale, target.torque_limit, dq, tau
        )
        write_pd_params(m.actuator_gainprm, m.actuator_biasprm, m.actuator_forcerange, acts, params)
        d.ctrl[acts] = params.ctrl
        mujoco.mj_step(m, d, nstep=n)
        self.torque = d.actuator_force[acts].copy()  # the last step's torque (gear 1)

    def hold(self, qpos: np.ndarray) -> None:
        """Put the robot back at qpos, at rest (a gantry holding it); simulated time is kept."""
        self.data.qpos[:] = qpos
        self.data.qvel[:] = 0.0
        self.data.qacc_warmstart[:] = 0.0
        mujoco.mj_forward(self.model, self.data)

    def push(self, velocity_xy: tuple[float, float]) -> None:
        """Add a planar velocity to the base (legged_gym's push)."""
        v = self.index.root_qvel_adr
        self.data.qvel[v] += velocity_xy[0]
        self.data.qvel[v + 1] += velocity_xy[1]

    def read(self) -> SimReading:
        """The sensors now."""
        d, idx = self.data, self.index
        r, v = idx.root_qpos_adr, idx.root_qvel_adr
        if self._imu is not None:
            q, g, a = self._imu
            quat, gyro, accel = (
                d.sensordata[q : q + 4].copy(),
                d.sensordata[g : g + 3].copy(),
                d.sensordata[a : a + 3].copy(),
            )
        else:
            quat, gyro = d.qpos[r + 3 : r + 7].copy(), d.qvel[v + 3 : v + 6].copy()
            accel = np.array([0.0, 0.0, 9.81])
        return SimReading(
            time=float(d.time),
            joint_pos=d.qpos[idx.qpos_adr].copy(),
            joint_vel=d.qvel[idx.qvel_adr].copy(),
            joint_torque=self.torque.copy(),
            quat=quat,
            gyro=gyro,
            accel=accel,
            base_pos=d.qpos[r : r + 3].copy(),
        )

    def tilt_deg(self) -> float:
        """Angle between the base's up axis and the world's."""
        r = self.index.root_qpos_adr
        w, x, y, z = self.data.qpos[r + 3 : r + 7]
        cos_tilt = 1.0 - 2.0 * (x * x + y * y) / max(w * w + x * x + y * y + z * z, 1e-12)
        return float(np.degrees(np.arccos(np.clip(cos_tilt, -1.0, 1.0))))
