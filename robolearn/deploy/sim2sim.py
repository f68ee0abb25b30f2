"""Sim2sim: a policy artifact through the real deploy runtime against our MuJoCo robot, measured from the sim.

`run_sim2sim(artifact, Sim2SimConfig(...))` runs each episode as a deploy session
(robolearn.deploy.app.build_session: contract checks, ObservationPipeline, OnnxPolicy, guards,
CommandLimiter, safety state machine) in lockstep with the in-process MuJoCo robot, in simulated time
(no wall clock), and measures what the policy did from the simulator's ground truth:

    lin_vel_rms      RMS over time of |v_xy - command_xy| (m/s), body-frame base velocity, after settle_s
    yaw_rate_rms     RMS of (yaw rate - commanded yaw rate) (rad/s), body-frame, after settle_s
    *_rms_window     the same with the velocities averaged over WINDOW_S windows first (gait swing removed)
    fell             the velocity task's termination rule (VelocityTask.fallen in
                     robolearn/envs/tasks/velocity.py: tilt past max_tilt_deg or base below the robot's
                     min_base_height), checked every command tick while the policy drives and, when a
                     guard trip took the motors from it, during the exit_damp_s of damping after
    time_to_fall_s   policy time at the fall (null without one)
    distance_m       planar base displacement while the policy drove (path_m: the path length)
    joint_limit_hits times a joint reached its range (within JOINT_LIMIT_MARGIN) while the policy drove
    torque_limit_hits times a motor's torque reached its limit in the simulation
    limited_commands command ticks whose request the runtime's CommandLimiter had to change
    safety_faults    the runtime's guard trips; `runtime` holds its own summary (outcome, faults, ...)
    command_changes  (policy time, command) each time command_schedule switched the operator's command

Errors are against the command in effect at each sample: `command`, or with command_schedule the
schedule's segment (set through the operator, as a remote's sticks would, so it reaches the policy's
observation at its next step). Domain randomisation, drawn per episode from the seed: friction_range
scales every geom's sliding friction, joint_friction_range each joint's frictionloss (per joint), as
the training task does (robolearn/envs/tasks/base.py); obs_noise adds the contract terms' training
noise (times obs_noise) to the joint positions and velocities, gyro and base velocity the runtime
reads (not to projected gravity: the runtime computes it from the quaternion).

An episode: the robot starts at the default pose with the velocity task's reset noise (joint offsets,
random heading, base velocity; VelocityTask.initial_state) drawn from the episode's seed, the runtime
ramps to the default pose for ramp_s (one control period by default, so the policy starts from the
noisy state as in training) and hands over to the policy, the command is held for duration_s of
policy time, then the session stops through DAMP. A fall, or the runtime leaving POLICY (a guard
trip), ends the episode early.
"""

from __future__ import annotations

import contextlib
import dataclasses
import inspect
import io
import itertools
import math
import platform
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import mujoco
import numpy as np
from omegaconf import DictConfig

from robolearn.deploy.artifact import PolicyArtifact, load_artifact
from robolearn.deploy.backends.base import StateSample
from robolearn.deploy.backends.mujoco_backend import MujocoBackend
from robolearn.deploy.commands import CommandKind, MotorCommand
from robolearn.deploy.mismatch import target_physics
from robolearn.deploy.runtime import Controller
from robolearn.deploy.safety import SafetyState
from robolearn.errors import UserError
from robolearn.robots.spec import RobotSpec

# A joint "hits" its limit within this much of its range (rad): MuJoCo's soft joint limits let a
# joint press a little into the stop, so an exact comparison would miss most contacts.
JOINT_LIMIT_MARGIN = 0.01
# A motor "hits" its torque limit at this fraction of it (the actuator's force range clips at 1.0).
TORQUE_LIMIT_FRACTION = 0.999
# legged_gym's pushes (legged_robot_config.py: push_interval_s = 15, max_push_vel_xy = 1.0).
LEGGED_GYM_PUSH_INTERVAL_S = (15.0, 15.0)
RESULT_FORMAT = 1
# Velocity averaged over windows this long for the *_window errors (about one gait cycle or more).
WINDOW_S = 1.0


@dataclass(frozen=True)
class Sim2SimConfig:
    """What to run: command, episode length and count, seeds, perturbations, and the runtime's rates."""

    command: tuple[float, float, float] = (0.5, 0.0, 0.0)  # vx (m/s), vy (m/s), yaw rate (rad/s)
    duration_s: float = 20.0  # policy time per episode
    episodes: int = 3
    seed: int = 0  # episode i uses seed + i
    settle_s: float = 2.0  # tracking errors are measured after this much policy time
    push_velocity: float = 0.0  # largest planar velocity kick (m/s); 0 = no pushes
    push_interval_s: tuple[float, float] = LEGGED_GYM_PUSH_INTERVAL_S
    ramp_s: float | None = None  # RAMP before POLICY; None = one control period
    init_joint_noise: float | None = None  # None: the velocity task's reset noise
    init_velocity_noise: float | None = None
    physics_hz: float = 1000.0
    command_hz: float = 500.0
    # DAMP after the stop (simulated). After a guard trip the fall rule keeps watching this long: a
    # robot the runtime had to damp usually goes down, and that is the policy's fall.
    exit_damp_s: float = 1.0
    # (start_s, vx, vy, yaw rate) segments in policy time, the first at 0: the operator's command
    # follows them (then `command` is unused); () holds `command` for the whole episode.
    command_schedule: tuple[tuple[float, float, float, float], ...] = ()
    friction_range: tuple[float, float] | None = None  # scale of every geom's sliding friction
    joint_friction_range: tuple[float, float] | None = None  # scale of each joint's frictionloss
    obs_noise: float = 0.0  # multiple of the contract terms' noise added to the state read
    # The simulated robot's physics mismatch: robolearn.envs.edits items ({kind: motor_kp, ...}),
    # resolved by robolearn.deploy.mismatch; () is the nominal robot.
    mismatch: tuple[Any, ...] = ()
    motion_clip: str | None = None  # a tracking policy's clip (deploy's motion_clip); None: its first


@dataclass(frozen=True)
class FallRule:
    """The velocity task's termination rule for one robot (VelocityTask.fallen)."""

    min_base_height: float
    max_tilt_deg: float
    source: str = (
        "robolearn/envs/tasks/velocity.py VelocityTask.fallen (ROBOT_DEFAULTS min_base_height, max_tilt_deg)"
    )


def task_defaults(robot: str) -> tuple[FallRule, float, float]:
    """(fall rule, init_joint_noise, init_velocity_noise) of the velocity task for `robot`.

    Read from the task itself so sim2sim's notion of a fall and of reset noise cannot drift from
    training's. (Only sim2sim imports the tasks; the deploy runtime never does.)
    """
    from robolearn.envs.tasks.velocity import ROBOT_DEFAULTS, VelocityTask

    if robot not in ROBOT_DEFAULTS:
        raise UserError(
            f"robot '{robot}' has no velocity task (its fall rule and reset noise); sim2sim robots:"
            f" {', '.join(sorted(ROBOT_DEFAULTS))}"
        )
    params = inspect.signature(VelocityTask.__init__).parameters
    rule = FallRule(
        min_base_height=float(ROBOT_DEFAULTS[robot]["min_base_height"]),
        max_tilt_deg=float(params["max_tilt_deg"].default),
    )
    return rule, float(params["init_joint_noise"].default), float(params["init_velocity_noise"].default)


def validate_sim2sim(artifact: PolicyArtifact, config: Sim2SimConfig) -> None:
    """One-line errors for a config this artifact cannot be evaluated with, before any simulation."""
    contract = artifact.contract
    robot = contract.robot.name
    from robolearn.resources import configs_dir
    from robolearn.robots.registry import get_robot_spec

    get_robot_spec(robot)  # unknown robot: one line listing the known ones
    if not (Path(configs_dir()) / "robot" / f"{robot}.yaml").is_file():
        raise UserError(
            f"{artifact.root}: robot '{robot}' has no configs/robot/{robot}.yaml to simulate it with"
        )
    task_defaults(robot)
    if len(config.command) != 3:
        raise UserError(f"command={list(config.command)} must have 3 values: [vx, vy, yaw rate]")
    names = ("vx", "vy", "yaw rate")
    commands = [("command", tuple(config.command))]
    commands += [(f"command_schedule[{k}]", tuple(seg[1:])) for k, seg in enumerate(config.command_schedule)]
    for where, command in commands:
        for i, (value, (lo, hi)) in enumerate(zip(command, contract.command_ranges, strict=False)):
            if not (math.isfinite(value) and lo <= value <= hi):
                raise UserError(
                    f"{where}[{i}]={value:g} ({names[i]}) is outside the policy's command range [{lo:g}, {hi:g}]"
                    f" (contract.json command.ranges); pick a value inside it"
                )
    starts = [seg[0] for seg in config.command_schedule]
    if any(len(seg) != 4 for seg in config.command_schedule) or (
        starts and (starts[0] != 0 or any(b <= a for a, b in itertools.pairwise(starts)))
    ):
        raise UserError(
            f"command_schedule={[list(seg) for seg in config.command_schedule]} must be [start_s, vx, vy, yaw rate]"
            " segments with increasing starts, the first at 0"
        )
    for name, scale in (
        ("friction_range", config.friction_range),
        ("joint_friction_range", config.joint_friction_range),
    ):
        if scale is not None and not 0 <= scale[0] <= scale[1]:
            raise UserError(f"{name}={list(scale)} must be [min, max] scales with 0 <= min <= max")
    if not (math.isfinite(config.obs_noise) and config.obs_noise >= 0):
        raise UserError(
            f"obs_noise={config.obs_noise:g} is out of range; use a multiple >= 0 (1 = training's)"
        )
    for name, value in (("duration", config.duration_s), ("physics_hz", config.physics_hz)):
        if not (math.isfinite(value) and value > 0):
            raise UserError(f"{name}={value:g} is out of range; use a positive number")
    if config.episodes < 1:
        raise UserError(f"episodes={config.episodes} is out of range; use an integer >= 1")
    if config.seed < 0:
        raise UserError(f"seed={config.seed} is out of range; use an integer >= 0")
    if not 0 <= config.settle_s < config.duration_s:
        raise UserError(
            f"settle={config.settle_s:g} must be in [0, duration={config.duration_s:g}): errors are measured after it"
        )
    if config.push_velocity < 0:
        raise UserError(f"pushes={config.push_velocity:g} is out of range; use a velocity >= 0 (m/s)")
    lo, hi = config.push_interval_s
    if not 0 < lo <= hi:
        raise UserError(f"push_interval={[lo, hi]} must be [min, max] seconds with 0 < min <= max")
    if config.ramp_s is not None and config.ramp_s <= 0:
        raise UserError(f"ramp_s={config.ramp_s:g} is out of range; use a positive number (or null)")


def _yaw_quat(yaw: float) -> np.ndarray:
    return np.array([math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2)])


def base_row(t: float, root_qpos: np.ndarray, root_qvel: np.ndarray) -> tuple[float, ...]:
    """(t, x, y, vx, vy, yaw rate, height, cos tilt) of a MuJoCo free joint: velocities in the base frame.

    MuJoCo's free joint holds the world-frame linear and the body-frame angular velocity; the task's
    tracking terms read both in the base frame (VelocityTask.reward_context).
    """
    quat = np.asarray(root_qpos[3:7], dtype=np.float64)
    quat = quat / np.linalg.norm(quat)
    inv = np.zeros(4)
    lin = np.zeros(3)
    mujoco.mju_negQuat(inv, quat)
    mujoco.mju_rotVecQuat(lin, np.asarray(root_qvel[0:3], dtype=np.float64), inv)
    cos_tilt = 1.0 - 2.0 * (quat[1] ** 2 + quat[2] ** 2)
    return (
        t,
        float(root_qpos[0]),
        float(root_qpos[1]),
        float(lin[0]),
        float(lin[1]),
        float(root_qvel[5]),
        float(root_qpos[2]),
        float(cos_tilt),
    )


def fall_check(rule: FallRule, t: float, height: float, cos_tilt: float) -> tuple[float, str] | None:
    """(t, why) when the task's termination rule holds for this base pose, else None."""
    if cos_tilt < math.cos(math.radians(rule.max_tilt_deg)):
        tilt = math.degrees(math.acos(max(-1.0, min(1.0, cos_tilt))))
        return t, f"tilt {tilt:.1f} deg > {rule.max_tilt_deg:g}"
    if height < rule.min_base_height:
        return t, f"base height {height:.3f} m < {rule.min_base_height:g}"
    return None


def tracking_figures(
    rows: list[tuple[float, ...]] | np.ndarray,
    command: tuple[float, float, float] | np.ndarray,
    settle_s: float,
    measured: np.ndarray | None = None,
) -> dict[str, Any]:
    """Tracking error, mean velocities, distance and path from base_row rows (see the module docstring).

    command is one (vx, vy, yaw rate) for every row or one per row (a command schedule); measured, a
    boolean per row, narrows the error samples further (the benchmark leaves out the second after each
    command change). The *_window figures average the velocity over WINDOW_S first: a walking gait
    swings the base (a G1's pelvis yaws back and forth every step), and the instantaneous RMS counts
    that swing as error even when the robot goes exactly where it is told.
    """
    a = np.asarray(rows, dtype=np.float64).reshape(-1, 8)
    cmds = np.broadcast_to(np.asarray(command, dtype=np.float64), (len(a), 3))
    keep = a[:, 0] >= settle_s
    if measured is not None:
        keep &= np.asarray(measured, dtype=bool)
    settled, cmd = a[keep], cmds[keep]
    lin_err = np.hypot(settled[:, 3] - cmd[:, 0], settled[:, 4] - cmd[:, 1])
    yaw_err = settled[:, 5] - cmd[:, 2]
    lin_w, yaw_w = np.zeros(0), np.zeros(0)
    if len(a) > 1 and len(settled):
        per = max(1, round(WINDOW_S / (a[1, 0] - a[0, 0])))  # samples per window
        k = len(settled) // per  # whole windows only
        if k:
            both = np.concatenate((settled, cmd), axis=1)[: k * per].reshape(k, per, 11).mean(axis=1)
            lin_w = np.hypot(both[:, 3] - both[:, 8], both[:, 4] - both[:, 9])
            yaw_w = both[:, 5] - both[:, 10]
    xy = a[:, 1:3]
    steps = np.diff(xy, axis=0)
    mean = (lambda col: float(settled[:, col].mean())) if len(settled) else (lambda col: None)
    return {
        "lin_vel_rms": _rms(lin_err),
        "yaw_rate_rms": _rms(yaw_err),
        "lin_vel_rms_window": _rms(lin_w),
        "yaw_rate_rms_window": _rms(yaw_w),
        "mean_vx": mean(3),
        "mean_vy": mean(4),
        "mean_yaw_rate": mean(5),
        "measured_s": float(settled[-1, 0] - settled[0, 0]) if len(settled) > 1 else 0.0,
        "distance_m": float(np.linalg.norm(xy[-1] - xy[0])) if len(xy) else 0.0,
        "path_m": float(np.linalg.norm(steps, axis=1).sum()) if len(steps) else 0.0,
        "base_height_end_m": float(a[-1, 6]) if len(a) else None,
    }


def randomize_dynamics(
    model: mujoco.MjModel, joint_dofs: np.ndarray, config: Sim2SimConfig, seed: int
) -> dict[str, Any]:
    """The task's friction and joint-friction randomisation on a MuJoCo model (RobotTask's reset: one
    scale for every geom's sliding friction, one frictionloss scale per dof), drawn from the episode
    seed; returns what was drawn (JSON-ready). The sim bridge's model takes the same draws."""
    rng = np.random.default_rng([seed, 2])
    drawn: dict[str, Any] = {}
    if config.friction_range is not None:
        scale = float(rng.uniform(*config.friction_range))
        model.geom_friction[:, 0] *= scale
        drawn["friction_scale"] = round(scale, 4)
    if config.joint_friction_range is not None:
        model.dof_frictionloss[:] *= rng.uniform(*config.joint_friction_range, size=model.nv)
        dofs = np.asarray(joint_dofs)
        drawn["joint_frictionloss_nm"] = [round(float(v), 4) for v in model.dof_frictionloss[dofs]]
    return drawn


class Sim2SimBackend(MujocoBackend):
    """The in-process MuJoCo backend, started in the task's reset state, recording ground truth per tick.

    A MujocoBackend subclass, so the runtime drives it in lockstep exactly as the deploy verb's
    backend=mujoco; measuring lives in advance(), after each simulated command period.
    """

    def __init__(
        self,
        spec: RobotSpec,
        model_path: str | Path | None,
        config: Sim2SimConfig,
        seed: int,
        rule: FallRule,
        joint_noise: float,
        velocity_noise: float,
        state_noise: dict[str, float] | None = None,
    ) -> None:
        push = config.push_interval_s if config.push_velocity > 0 else None
        super().__init__(
            spec,
            model_path,
            physics_hz=config.physics_hz,
            initial_pose="default",
            push_interval_s=push,
            push_velocity=config.push_velocity,
            seed=seed,
            mismatch=target_physics(spec, list(config.mismatch), model_path, "sim2sim"),
        )
        self.config = config
        self.rule = rule
        self.controller: Controller | None = None
        self._reset_noise(np.random.default_rng([seed, 1]), joint_noise, velocity_noise)
        self.dynamics = randomize_dynamics(self.sim.model, self.sim.index.qvel_adr, config, seed)
        # Half-widths (physical units) of the uniform noise on what the runtime reads, by state field.
        self.state_noise = {k: v for k, v in (state_noise or {}).items() if v > 0}
        self._noise_rng = np.random.default_rng([seed, 3])
        self.schedule = config.command_schedule
        self._segment = -1  # the schedule's segment in effect (-1: none applied yet)
        self.command_changes: list[tuple[float, tuple[float, ...]]] = []
        self.row_commands: list[tuple[float, ...]] = []  # the operator's command per row
        idx = self.sim.index
        self._r, self._v, self._q = idx.root_qpos_adr, idx.root_qvel_adr, idx.qpos_adr
        self._lower = np.asarray(spec.joint_pos_lower) + JOINT_LIMIT_MARGIN
        self._upper = np.asarray(spec.joint_pos_upper) - JOINT_LIMIT_MARGIN
        self._tau = spec.torque_limit_array * TORQUE_LIMIT_FRACTION
        n = spec.num_joints
        self._at_joint_limit = np.zeros(n, dtype=bool)
        self._at_torque_limit = np.zeros(n, dtype=bool)
        self.joint_limit_hits = np.zeros(n, dtype=np.int64)
        self.torque_limit_hits = np.zeros(n, dtype=np.int64)
        self.limited_commands = 0
        self.policy_t0: float | None = None  # sim time the policy took over
        self.policy_end: float | None = None  # policy time it stopped driving
        self.fall: tuple[float, str] | None = None  # (policy time, why)
        self.completed = False  # the policy drove for the whole duration
        self.rows: list[tuple[float, ...]] = []  # (policy time, x, y, vx, vy, wz, height, cos tilt)
        # A tracking policy: squared joint error against the reference it was shown, summed per tick.
        self.motion_sq_sum = 0.0
        self.motion_ticks = 0

    def _reset_noise(self, rng: np.random.Generator, joint_noise: float, velocity_noise: float) -> None:
        """VelocityTask.initial_state: default pose + uniform joint noise, random heading, base a
        centimetre up, uniform base velocity noise."""
        spec, d, idx = self.sim.spec, self.sim.data, self.sim.index
        n = spec.num_joints
        q = spec.default_pos_array + rng.uniform(-1.0, 1.0, size=n) * joint_noise
        d.qpos[idx.qpos_adr] = np.clip(q, spec.joint_pos_lower, spec.joint_pos_upper)
        r, v = idx.root_qpos_adr, idx.root_qvel_adr
        d.qpos[r + 2] = spec.base_height + 0.01
        d.qpos[r + 3 : r + 7] = _yaw_quat(float(rng.uniform(-np.pi, np.pi)))
        d.qvel[v : v + 6] = rng.uniform(-1.0, 1.0, size=6) * velocity_noise
        mujoco.mj_forward(self.sim.model, d)

    def poll_state(self, now: float) -> StateSample:
        """As the MuJoCo backend, plus the training's observation noise on the fields it covers."""
        sample = super().poll_state(now)
        if not self.state_noise:
            return sample
        rng, changed = self._noise_rng, {}
        for name, width in self.state_noise.items():
            value = getattr(sample, name)
            if value is not None:
                noisy = value + rng.uniform(-width, width, size=np.shape(value))
                changed[name] = noisy.astype(np.asarray(value).dtype)
        return dataclasses.replace(sample, **changed)

    def _follow_schedule(self, t: float) -> None:
        """Switch the operator's command when policy time t enters the schedule's next segment."""
        c = self.controller
        k = self._segment
        while k + 1 < len(self.schedule) and t >= self.schedule[k + 1][0]:
            k += 1
        if k != self._segment and c is not None:
            self._segment = k
            c.operator.set_command(self.schedule[k][1:])
            self.command_changes.append((round(t, 4), tuple(float(v) for v in c.operator.command)))

    def send(self, command: MotorCommand) -> None:
        """As the MuJoCo backend; counts the PD commands the limiter changed while the policy drives."""
        if self._driving() and command.kind == CommandKind.PD and command.limited:
            self.limited_commands += 1
        super().send(command)

    def _driving(self) -> bool:
        c = self.controller
        return c is not None and c.machine.state is SafetyState.POLICY and self.policy_end is None

    def advance(self, dt: float) -> None:
        """Simulate dt, then measure (while the policy drives) and check for a fall (after it began)."""
        super().advance(dt)
        c = self.controller
        if c is None:
            return
        d = self.sim.data
        now = float(d.time)
        driving = c.machine.state is SafetyState.POLICY and self.policy_end is None
        if driving and self.policy_t0 is None:
            self.policy_t0 = c.machine.entered_at
        if self.policy_t0 is None:
            return
        t = now - self.policy_t0
        row = base_row(t, d.qpos[self._r : self._r + 7], d.qvel[self._v : self._v + 6])
        height, cos_tilt = row[6], row[7]
        # After a stop we asked for (duration reached) the robot damps down by design: no fall then.
        if self.fall is None and (driving or not self.completed):
            self.fall = fall_check(self.rule, t, height, cos_tilt)
        if not driving:
            if self.policy_end is None:
                self.policy_end = t
                c.request_stop(f"sim2sim: the runtime left POLICY ({c.machine.state.name})")
            return
        self.rows.append(row)
        self.row_commands.append(tuple(float(v) for v in c.operator.command))
        if self.schedule:
            self._follow_schedule(t)  # reaches the policy at its next step
        q = d.qpos[self._q]
        if c.motion is not None and c.segment_steps > 0:
            # The reference joints of the policy's latest step (the frame it was asked to follow now).
            ref = c.motion.joint_pos(c.segment_steps - 1)
            self.motion_sq_sum += float(np.mean(np.square(q - ref)))
            self.motion_ticks += 1
        at = (q <= self._lower) | (q >= self._upper)
        self.joint_limit_hits += at & ~self._at_joint_limit  # count arrivals, not ticks spent there
        self._at_joint_limit = at
        sat = np.abs(self.sim.torque) >= self._tau
        self.torque_limit_hits += sat & ~self._at_torque_limit
        self._at_torque_limit = sat
        if self.fall is not None:
            self.policy_end = t
            c.request_stop(f"sim2sim: fell ({self.fall[1]})")
        elif t >= self.config.duration_s:
            self.policy_end = t
            self.completed = True
            c.request_stop(f"sim2sim: duration {self.config.duration_s:g} s reached")


def _deploy_config(overrides: list[str]) -> DictConfig:
    """configs/deploy.yaml composed with overrides, inside a running Hydra job (evaluate) or outside."""
    from hydra.core.global_hydra import GlobalHydra

    if GlobalHydra.instance().is_initialized():
        from hydra import compose

        return compose(config_name="deploy", overrides=overrides)
    from robolearn.config.validate import compose_config

    return compose_config("deploy", overrides)


def _rms(x: np.ndarray) -> float | None:
    return float(np.sqrt(np.mean(np.square(x)))) if len(x) else None


def _by_joint(names: tuple[str, ...], counts: np.ndarray) -> dict[str, int]:
    return {names[i]: int(counts[i]) for i in np.flatnonzero(counts)}


@dataclass
class Episode:
    """One episode's report (JSON-ready) and the backend it ran on (its simulation still readable)."""

    report: dict[str, Any]
    backend: Sim2SimBackend


# Observation terms whose noise sim2sim can put on the state the runtime reads: term -> StateSample field.
NOISY_STATE_FIELDS = {
    "joint_pos_rel": "joint_pos",
    "joint_vel": "joint_vel",
    "base_ang_vel": "gyro",
    "base_lin_vel": "base_lin_vel",
}


def state_noise(artifact: PolicyArtifact, obs_noise: float) -> dict[str, float]:
    """Noise half-width per StateSample field: the contract terms' (training) noise times obs_noise."""
    widths: dict[str, float] = {}
    for term in artifact.contract.terms:
        field = NOISY_STATE_FIELDS.get(term.name)
        if field is not None and term.noise > 0 and obs_noise > 0:
            widths[field] = float(term.noise) * obs_noise
    return widths


def run_episode(
    artifact: PolicyArtifact, config: Sim2SimConfig, seed: int, record_dir: Path | None = None
) -> Episode:
    """One deploy session in lockstep with the simulated robot; the report of module docstring's figures.

    record_dir: also write the runtime's deploy log there (record.dir; robolearn.deploy.recorder).
    """
    from robolearn.deploy.app import build_session

    contract = artifact.contract
    spec = contract.robot
    rule, joint_noise, velocity_noise = task_defaults(spec.name)
    ramp_s = config.ramp_s if config.ramp_s is not None else contract.control_dt
    cfg = _deploy_config(
        [
            f"robot={spec.name}",
            f"policy={artifact.root}",
            "backend=mujoco",
            "autostart=true",
            "autopolicy_s=0",
            f"settings.ramp_s={ramp_s}",
            "settings.sim_pose=default",
            # A cap only: the backend ends the session once the policy has driven duration_s.
            f"duration_s={ramp_s + config.duration_s + 2.0}",
            f"exit_damp_s={config.exit_damp_s}",
            f"loop.command_hz={config.command_hz}",
            f"mujoco.physics_hz={config.physics_hz}",
            f"mujoco.seed={seed}",
            "keyboard=false",
            "status_every_s=0",
            *([f"record.dir={record_dir}"] if record_dir is not None else []),
            *([f"motion_clip={config.motion_clip}"] if config.motion_clip is not None else []),
        ]
    )
    made: list[Sim2SimBackend] = []
    noise = state_noise(artifact, config.obs_noise)

    def measuring_backend(cfg: DictConfig, spec: RobotSpec) -> Sim2SimBackend:
        # The backend=mujoco backend's class, built for the session's spec (the contract's gains),
        # which also records the simulator's ground truth.
        made.append(
            Sim2SimBackend(
                spec,
                cfg.robot.model,
                config,
                seed,
                rule,
                joint_noise if config.init_joint_noise is None else config.init_joint_noise,
                velocity_noise if config.init_velocity_noise is None else config.init_velocity_noise,
                noise,
            )
        )
        return made[-1]

    runtime, _, _ = build_session(cfg, measuring_backend)
    backend = made[0]
    c = runtime.controller
    backend.controller = c
    c.operator.set_command(config.command_schedule[0][1:] if config.command_schedule else config.command)
    log = io.StringIO()
    wall = time.perf_counter()
    try:
        with contextlib.redirect_stdout(log):
            summary = runtime.run()
    finally:
        backend.close()
    wall = time.perf_counter() - wall
    report = _episode_report(backend, config, seed, summary, spec)
    report["wall_s"] = round(wall, 3)
    report["log"] = [line for line in log.getvalue().splitlines() if line.strip()]
    return Episode(report, backend)


def _episode_report(
    backend: Sim2SimBackend, config: Sim2SimConfig, seed: int, summary: dict[str, Any], spec: RobotSpec
) -> dict[str, Any]:
    fall = backend.fall
    return {
        "seed": seed,
        "policy_started": backend.policy_t0 is not None,
        "policy_s": float(backend.policy_end or 0.0) if backend.policy_t0 is not None else 0.0,
        "fell": fall is not None,
        "completed": backend.completed,
        "time_to_fall_s": None if fall is None else round(fall[0], 4),
        "fall_reason": None if fall is None else fall[1],
        **tracking_figures(backend.rows, np.asarray(backend.row_commands).reshape(-1, 3), config.settle_s),
        # A tracking policy's joint RMS error against its reference (rad), over the ticks it drove.
        "motion_joint_rms": float(np.sqrt(backend.motion_sq_sum / backend.motion_ticks))
        if backend.motion_ticks
        else None,
        "joint_limit_hits": int(backend.joint_limit_hits.sum()),
        "joint_limit_hits_by_joint": _by_joint(spec.joint_names, backend.joint_limit_hits),
        "torque_limit_hits": int(backend.torque_limit_hits.sum()),
        "torque_limit_hits_by_joint": _by_joint(spec.joint_names, backend.torque_limit_hits),
        "limited_commands": backend.limited_commands,
        "pushes": int(backend.stats.extra.get("pushes", 0)),
        "command_changes": [[t, list(cmd)] for t, cmd in backend.command_changes],
        "dynamics": backend.dynamics,
        "safety_faults": [str(f["reason"]) for f in summary.get("faults", [])],
        "runtime": {
            key: summary.get(key)
            for key in (
                "outcome",
                "exit_code",
                "stop_reason",
                "error",
                "final_state",
                "policy_steps",
                "faults",
            )
        },
    }


def _mean(values: list[float | None]) -> float | None:
    kept = [v for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


def summarize(episodes: list[dict[str, Any]]) -> dict[str, Any]:
    """Figures over episodes: falls, mean errors and distance, total limit hits and faults."""
    falls = [e for e in episodes if e["fell"]]
    return {
        "episodes": len(episodes),
        "falls": len(falls),
        "mean_time_to_fall_s": _mean([e["time_to_fall_s"] for e in falls]),
        "lin_vel_rms": _mean([e["lin_vel_rms"] for e in episodes]),
        "yaw_rate_rms": _mean([e["yaw_rate_rms"] for e in episodes]),
        "lin_vel_rms_window": _mean([e["lin_vel_rms_window"] for e in episodes]),
        "yaw_rate_rms_window": _mean([e["yaw_rate_rms_window"] for e in episodes]),
        "mean_vx": _mean([e["mean_vx"] for e in episodes]),
        "distance_m": _mean([e["distance_m"] for e in episodes]),
        "joint_limit_hits": sum(e["joint_limit_hits"] for e in episodes),
        "torque_limit_hits": sum(e["torque_limit_hits"] for e in episodes),
        "limited_commands": sum(e["limited_commands"] for e in episodes),
        "safety_faults": sum(len(e["safety_faults"]) for e in episodes),
        "outcomes": [e["runtime"]["outcome"] for e in episodes],
    }


def run_sim2sim(artifact: PolicyArtifact | str | Path, config: Sim2SimConfig | None = None) -> dict[str, Any]:
    """Evaluate an artifact over config.episodes seeded episodes; the JSON-ready result."""
    config = config or Sim2SimConfig()
    if not isinstance(artifact, PolicyArtifact):
        artifact = load_artifact(Path(artifact))
    validate_sim2sim(artifact, config)
    contract = artifact.contract
    rule, joint_noise, velocity_noise = task_defaults(contract.robot.name)
    episodes = [run_episode(artifact, config, config.seed + i).report for i in range(config.episodes)]
    source = dict(contract.source)
    return {
        "format": RESULT_FORMAT,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "artifact": str(artifact.root),
        "robot": contract.robot.name,
        "source": {k: source[k] for k in ("kind", "importer", "command", "reference") if k in source},
        "config": {
            **dataclasses.asdict(config),
            "ramp_s": config.ramp_s if config.ramp_s is not None else contract.control_dt,
            "init_joint_noise": joint_noise if config.init_joint_noise is None else config.init_joint_noise,
            "init_velocity_noise": velocity_noise
            if config.init_velocity_noise is None
            else config.init_velocity_noise,
            "joint_limit_margin": JOINT_LIMIT_MARGIN,
            "torque_limit_fraction": TORQUE_LIMIT_FRACTION,
        },
        "fall_rule": dataclasses.asdict(rule),
        "machine": {"node": platform.node(), "processor": platform.processor() or platform.machine()},
        "summary": summarize(episodes),
        "episodes": episodes,
    }


def _fmt(value: Any, spec: str) -> str:
    width = int(spec.split(".")[0]) if spec[0].isdigit() else 0
    return "-".rjust(width) if value is None else format(value, spec)


TABLE_COLUMNS = (
    # (header, width/format, key): errors in m/s and rad/s, instantaneous then over WINDOW_S windows
    ("vxy_rms", "8.3f", "lin_vel_rms"),
    ("vxy_1s", "7.3f", "lin_vel_rms_window"),
    ("yaw_rms", "8.3f", "yaw_rate_rms"),
    ("yaw_1s", "7.3f", "yaw_rate_rms_window"),
    ("mean_vx", "8.3f", "mean_vx"),
    ("dist_m", "7.2f", "distance_m"),
)


def result_table(result: dict[str, Any]) -> str:
    """A short text table: one row per episode and a mean row."""
    head = f"{'seed':>4} {'fell':>5} {'t_fall':>7} " + " ".join(
        h.rjust(int(f.split(".")[0])) for h, f, _ in TABLE_COLUMNS
    )
    lines = [head + f" {'jlim':>5} {'tlim':>5} {'faults':>6} outcome"]
    for e in result["episodes"]:
        lines.append(
            f"{e['seed']:>4} {('yes' if e['fell'] else 'no'):>5} {_fmt(e['time_to_fall_s'], '7.2f')} "
            + " ".join(_fmt(e[k], f) for _, f, k in TABLE_COLUMNS)
            + f" {e['joint_limit_hits']:5d} {e['torque_limit_hits']:5d} {len(e['safety_faults']):6d}"
            f" {e['runtime']['outcome']}"
        )
    s = result["summary"]
    falls = f"{s['falls']}/{s['episodes']}"
    lines.append(
        f"{'mean':>4} {falls:>5} {_fmt(s['mean_time_to_fall_s'], '7.2f')} "
        + " ".join(_fmt(s[k], f) for _, f, k in TABLE_COLUMNS)
        + f" {s['joint_limit_hits']:5d} {s['torque_limit_hits']:5d} {s['safety_faults']:6d}"
    )
    return "\n".join(lines)
