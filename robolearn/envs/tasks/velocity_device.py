"""The velocity task with its logic on the device: rsl_rl's torch VecEnv over MuJoCo Warp, no host round trip.

`backend=warp` with the numpy task (robolearn/envs/tasks/velocity.py) copies the device state to the
host every control step and runs the task there. DeviceVelocityEnv keeps every per-step operation on
Warp's device: torch tensors alias the mjw.Data arrays (wp.to_torch, zero-copy), and observations,
rewards, terminations, auto-resets with their randomisation, command resampling and pushes are torch
operations on those tensors (on CUDA, queued on Warp's stream behind the captured physics graph).
Nothing in step() reads a value back to the host, so the step never waits for the device.

One source of truth: the env builds the numpy VelocityTask on the same WarpBackend and takes every
setting from it (spec, scales, weights, command ranges, contact heights, soft limits, randomisation);
only the per-step arithmetic is written again here, in torch, and tests/envs/test_envs_warp_device.py
checks it against the numpy task from identical states. docs/warp.md has the design and its limits.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from typing import Any, NamedTuple

import numpy as np
import torch

from robolearn.envs.backends.warp_backend import WarpBackend, WarpTorchViews, wp
from robolearn.envs.tasks.base import OBS_CLIP
from robolearn.envs.tasks.velocity import LIN_VEL_OBS_NOISE, LIN_VEL_OBS_SCALE, VelocityTask
from robolearn.errors import UserError

POLICY_GROUP = "policy"  # rsl_rl's default observation group (robolearn/agents/rsl_vec_env.py)


class DeviceContext(NamedTuple):
    """What the torch reward terms read, for N envs: LocomotionContext's fields as float32 tensors."""

    command: torch.Tensor  # (N, 3)
    base_lin_vel: torch.Tensor  # (N, 3) body frame
    base_ang_vel: torch.Tensor  # (N, 3) body frame
    projected_gravity: torch.Tensor  # (N, 3)
    base_height: torch.Tensor  # (N,)
    joint_pos: torch.Tensor  # (N, nj)
    joint_vel: torch.Tensor
    joint_acc: torch.Tensor
    torque: torch.Tensor
    action: torch.Tensor
    last_action: torch.Tensor
    foot_contact: torch.Tensor  # (N, nf) bool
    foot_first_contact: torch.Tensor  # (N, nf) bool
    foot_air_time: torch.Tensor  # (N, nf)
    foot_lin_vel: torch.Tensor  # (N, nf, 3) world frame
    terminated: torch.Tensor  # (N,) bool


class DeviceConstants(NamedTuple):
    """The task's per-robot numbers the reward terms read, on the device."""

    default_joint_pos: torch.Tensor  # (nj,)
    soft_lower: torch.Tensor
    soft_upper: torch.Tensor
    hip_joints: torch.Tensor  # (k,) int64
    base_height_target: float
    air_time_target: float
    tracking_sigma: float


DeviceReward = Callable[[DeviceContext, DeviceConstants], torch.Tensor]


# Torch transcriptions of robolearn/envs/tasks/rewards.py's locomotion terms (same names, same formulas).
def _tracking_lin_vel(c: DeviceContext, k: DeviceConstants) -> torch.Tensor:
    err = torch.square(c.command[:, :2] - c.base_lin_vel[:, :2]).sum(dim=1)
    return torch.exp(-err / k.tracking_sigma)


def _tracking_ang_vel(c: DeviceContext, k: DeviceConstants) -> torch.Tensor:
    return torch.exp(-torch.square(c.command[:, 2] - c.base_ang_vel[:, 2]) / k.tracking_sigma)


def _lin_vel_z(c: DeviceContext, k: DeviceConstants) -> torch.Tensor:
    return torch.square(c.base_lin_vel[:, 2])


def _ang_vel_xy(c: DeviceContext, k: DeviceConstants) -> torch.Tensor:
    return torch.square(c.base_ang_vel[:, :2]).sum(dim=1)


def _orientation(c: DeviceContext, k: DeviceConstants) -> torch.Tensor:
    return torch.square(c.projected_gravity[:, :2]).sum(dim=1)


def _base_height(c: DeviceContext, k: DeviceConstants) -> torch.Tensor:
    return torch.square(c.base_height - k.base_height_target)


def _torques(c: DeviceContext, k: DeviceConstants) -> torch.Tensor:
    return torch.square(c.torque).sum(dim=1)


def _joint_vel(c: DeviceContext, k: DeviceConstants) -> torch.Tensor:
    return torch.square(c.joint_vel).sum(dim=1)


def _joint_acc(c: DeviceContext, k: DeviceConstants) -> torch.Tensor:
    return torch.square(c.joint_acc).sum(dim=1)


def _action_rate(c: DeviceContext, k: DeviceConstants) -> torch.Tensor:
    return torch.square(c.action - c.last_action).sum(dim=1)


def _joint_limits(c: DeviceContext, k: DeviceConstants) -> torch.Tensor:
    below = torch.clamp(k.soft_lower - c.joint_pos, min=0.0)
    above = torch.clamp(c.joint_pos - k.soft_upper, min=0.0)
    return (below + above).sum(dim=1)


def _hip_deviation(c: DeviceContext, k: DeviceConstants) -> torch.Tensor:
    dev = c.joint_pos[:, k.hip_joints] - k.default_joint_pos[k.hip_joints]
    return torch.square(dev).sum(dim=1)


def _pose_deviation(c: DeviceContext, k: DeviceConstants) -> torch.Tensor:
    return torch.abs(c.joint_pos - k.default_joint_pos).sum(dim=1)


def _feet_air_time(c: DeviceContext, k: DeviceConstants) -> torch.Tensor:
    paid = ((c.foot_air_time - k.air_time_target) * c.foot_first_contact).sum(dim=1)
    moving = torch.sqrt(torch.square(c.command[:, :2]).sum(dim=1)) > 0.1
    return paid * moving


def _feet_slip(c: DeviceContext, k: DeviceConstants) -> torch.Tensor:
    speed = torch.square(c.foot_lin_vel[..., :2]).sum(dim=2)
    return (speed * c.foot_contact).sum(dim=1)


def _alive(c: DeviceContext, k: DeviceConstants) -> torch.Tensor:
    return torch.ones_like(c.base_height)


def _termination(c: DeviceContext, k: DeviceConstants) -> torch.Tensor:
    return c.terminated.to(c.base_height.dtype)


# The gait-clock terms (gait_contact, swing_height) are not here: DeviceVelocityEnv refuses a clock.
DEVICE_LOCOMOTION_REWARDS: dict[str, DeviceReward] = {
    "tracking_lin_vel": _tracking_lin_vel,
    "tracking_ang_vel": _tracking_ang_vel,
    "lin_vel_z": _lin_vel_z,
    "ang_vel_xy": _ang_vel_xy,
    "orientation": _orientation,
    "base_height": _base_height,
    "torques": _torques,
    "joint_vel": _joint_vel,
    "joint_acc": _joint_acc,
    "action_rate": _action_rate,
    "joint_limits": _joint_limits,
    "hip_deviation": _hip_deviation,
    "pose_deviation": _pose_deviation,
    "feet_air_time": _feet_air_time,
    "feet_slip": _feet_slip,
    "alive": _alive,
    "termination": _termination,
}


def quat_rotate_inverse_t(quat: torch.Tensor, vec: torch.Tensor) -> torch.Tensor:
    """(N, 3) world vectors in the frames of (N, 4) w-x-y-z quaternions, normalised first (as the numpy one)."""
    q = quat / torch.clamp(torch.linalg.vector_norm(quat, dim=1, keepdim=True), min=1e-12)
    w, u = q[:, :1], q[:, 1:]
    uv = torch.linalg.cross(u, vec, dim=1)
    return vec - 2.0 * w * uv + 2.0 * torch.linalg.cross(u, uv, dim=1)


def gravity_in_body_t(q: torch.Tensor) -> torch.Tensor:
    """rotations.gravity_in_body: minus the last row of R(q), quaternion not normalised."""
    w, x, y, z = q[:, 0], q[:, 1], q[:, 2], q[:, 3]
    return -torch.stack((2.0 * (x * z - w * y), 2.0 * (y * z + w * x), 1.0 - 2.0 * (x * x + y * y)), dim=1)


class DeviceFrame(NamedTuple):
    """SimFrame's fields the velocity task reads, as float32 tensors on the device (copies, not views)."""

    root_pos: torch.Tensor
    root_quat: torch.Tensor
    root_lin_vel: torch.Tensor  # world frame
    root_ang_vel: torch.Tensor  # body frame
    joint_pos: torch.Tensor
    joint_vel: torch.Tensor
    foot_pos: torch.Tensor  # (N, nf, 3)
    foot_lin_vel: torch.Tensor  # (N, nf, 3) world frame, at the body origin


_NUMPY_OPTIONS = ("gait_period_s", "command_curriculum")


class DeviceVelocityEnv:
    """Go2/G1 velocity tracking on MuJoCo Warp with the task logic on the device, as rsl_rl's VecEnv.

    Takes VelocityTask's keyword arguments (robot, randomization, reward_scales, command_ranges, ...)
    plus device (Warp's: "cuda:0", "cpu"), seed and max_episode_steps (default: the registered limit).
    Observations come back as a TensorDict {"policy": (N, obs)}; dones and time-outs as tensors.
    """

    def __init__(
        self,
        robot: str = "go2",
        num_envs: int = 4096,
        device: str | None = "cuda:0",
        seed: int = 0,
        max_episode_steps: int | None = 1000,
        **task_kwargs: Any,
    ) -> None:
        for key in _NUMPY_OPTIONS:
            if task_kwargs.get(key) is not None:
                raise UserError(
                    f"{key}={task_kwargs[key]!r} is not on the device task yet; "
                    f"set {key}=null or use backend=warp without the device task"
                )
        if task_kwargs.get("residual_dynamics"):
            raise UserError(
                "residual_dynamics is not on the device task yet (its step never adds the residual); set "
                "agent.env_on_device=false (backend=warp or batch) for ASAP's delta-dynamics baseline"
            )
        if task_kwargs.get("delta_action"):
            raise UserError(
                "delta_action is not on the device task yet (its step never adds the delta); set "
                "agent.env_on_device=false (backend=warp or batch) for ASAP's finetune stage"
            )
        if task_kwargs.get("observation_history", 1) not in (1, None):
            raise UserError(
                f"observation_history={task_kwargs['observation_history']} is not on the device task yet;"
                " set agent.env_on_device=false (backend=warp or batch) or observation_history=1"
            )
        if task_kwargs.get("critic_observes_base_lin_vel"):
            raise UserError(
                "critic_observes_base_lin_vel=true is not on the device task yet; set "
                "agent.env_on_device=false (backend=warp or batch) or critic_observes_base_lin_vel=false"
            )
        if max_episode_steps is None or int(max_episode_steps) < 1:
            raise UserError(
                f"max_episode_steps={max_episode_steps!r}: the device task needs a positive time limit"
            )
        self.task = VelocityTask(
            robot=robot,
            num_envs=num_envs,
            backend="warp",
            device=device,
            max_episode_steps=max_episode_steps,
            **task_kwargs,
        )
        task = self.task
        backend = task.backend
        assert isinstance(backend, WarpBackend)
        self.backend = backend
        self.views: WarpTorchViews = backend.torch_views()
        dev = self.views.qpos.device
        self.device = dev
        f32 = torch.float32

        def t(value: Any, dtype: torch.dtype = f32) -> torch.Tensor:
            return torch.as_tensor(np.array(value), dtype=dtype, device=dev)

        spec = task.robot_spec
        n, nj, nf = task.num_envs, spec.num_joints, len(spec.foot_bodies)
        self.num_envs, self.num_actions = n, nj
        self.max_episode_length = int(max_episode_steps)
        self.cfg: dict[str, Any] = {}
        self.observation_space = task.observation_space
        self.action_space = task.action_space
        self.dt = float(task.control_dt)
        index = backend.layout.index
        self._root_q, self._root_v = int(index.root_qpos_adr), int(index.root_qvel_adr)
        self._qpos_adr = t(index.qpos_adr, torch.int64)
        self._qvel_adr = t(index.qvel_adr, torch.int64)
        self._foot_ids = t(backend.layout.body_ids, torch.int64)
        self._foot_root_ids = t(backend.layout.body_root_ids, torch.int64)
        self._qpos0 = t(backend.model.qpos0)
        self.consts = DeviceConstants(
            default_joint_pos=t(spec.default_pos_array),
            soft_lower=t(task.soft_lower),
            soft_upper=t(task.soft_upper),
            hip_joints=t(task.hip_joints, torch.int64),
            base_height_target=task.base_height_target,
            air_time_target=task.air_time_target,
            tracking_sigma=task.tracking_sigma,
        )
        self._action_scale = t(spec.action_scale_array)
        self._joint_lower, self._joint_upper = t(task.joint_lower), t(task.joint_upper)
        self._kp0, self._kd0, self._limit0 = t(spec.kp_array), t(spec.kd_array), t(spec.torque_limit_array)
        self._contact_height = t(task.contact_height)
        missing = [name for name in task.reward_names if name not in DEVICE_LOCOMOTION_REWARDS]
        if missing:
            raise UserError(
                f"reward term {missing[0]} is not on the device task yet; set its scale to 0 or use "
                "backend=warp without the device task"
            )
        self._reward_fns = [DEVICE_LOCOMOTION_REWARDS[name] for name in task.reward_names]
        self._weights = t(task._reward_weights)
        self._not_termination = t(task._not_termination)
        self._is_termination = t(task._is_termination)
        ranges = np.asarray(task.command_ranges)
        self._cmd_lo, self._cmd_span = t(ranges[:, 0]), t(ranges[:, 1] - ranges[:, 0])
        # Observation terms: per-element scale and noise half-width (noise already times obs_noise).
        self._obs_terms = [
            (term.name, t(term.scale_array(spec)), float(term.noise)) for term in task.proprio_terms
        ]
        self._noisy = bool(task._noisy_obs)
        self._lin_vel_noise = LIN_VEL_OBS_NOISE * task.randomization.obs_noise * LIN_VEL_OBS_SCALE
        self._nominal_model = {name: t(getattr(backend.model, name)) for name in self.views.model}
        self._base_body = backend.layout.base_body_id

        self.generator = torch.Generator(device=dev)
        self.generator.manual_seed(int(seed))
        # Task state, the numpy task's attributes as device tensors.
        self.episode_length_buf = torch.zeros(n, dtype=torch.long, device=dev)
        self.episode_return = torch.zeros(n, dtype=f32, device=dev)
        self.command = torch.zeros((n, 3), dtype=f32, device=dev)
        self.command_timer = torch.zeros(n, dtype=f32, device=dev)
        self.last_action = torch.zeros((n, nj), dtype=f32, device=dev)
        self.last_joint_vel = torch.zeros((n, nj), dtype=f32, device=dev)
        self.foot_air_time = torch.zeros((n, nf), dtype=f32, device=dev)
        self.foot_last_contact = torch.ones((n, nf), dtype=torch.bool, device=dev)
        self.push_timer = torch.full((n,), math.inf, dtype=f32, device=dev)
        dr = task.randomization
        self.action_history = torch.zeros((n, dr.max_action_delay + 1, nj), dtype=f32, device=dev)
        self.history_head = 0
        self.action_delay = torch.zeros(n, dtype=torch.long, device=dev)
        self.term_sums = torch.zeros((n, len(task.reward_names)), dtype=f32, device=dev)
        # Finished episodes, summed on the device; episode_stats() reads them (one sync per call).
        self._finished = torch.zeros(3, dtype=torch.float64, device=dev)  # return sum, length sum, count
        self._all = torch.arange(n, device=dev)
        self._obs: Any = None
        if dev.type == "cuda":
            self._stream: Any = wp.stream_to_torch(backend.device.stream)
        else:
            self._stream = None

    # -- streams -------------------------------------------------------------------------------------------
    def _on_warp_stream(self) -> AbstractContextManager[Any]:
        """Run torch work on Warp's stream, after the caller's stream's pending work (the actions)."""
        if self._stream is None:
            return nullcontext()
        self._stream.wait_stream(torch.cuda.current_stream(self.device))
        return torch.cuda.stream(self._stream)

    def _hand_back(self, *tensors: torch.Tensor) -> None:
        # The caller's stream waits for Warp's (an event, not a host sync) before it reads our tensors,
        # and the allocator learns they are in use there (memory made on one stream, read on another).
        if self._stream is not None:
            caller = torch.cuda.current_stream(self.device)
            caller.wait_stream(self._stream)
            for tensor in tensors:
                tensor.record_stream(caller)

    # -- random draws ----------------------------------------------------------------------------------------
    def _uniform(self, shape: tuple[int, ...], lo: Any = 0.0, hi: Any = 1.0) -> torch.Tensor:
        u = torch.rand(shape, generator=self.generator, device=self.device)
        return lo + (hi - lo) * u

    def _scale(self, bounds: tuple[float, float] | None, shape: tuple[int, ...]) -> torch.Tensor:
        """randomization.uniform: ones when the option is off."""
        if bounds is None:
            return torch.ones(shape, device=self.device)
        return self._uniform(shape, bounds[0], bounds[1])

    # -- state -------------------------------------------------------------------------------------------------
    def frame(self) -> DeviceFrame:
        """The rows the task reads, gathered from the aliased mjw.Data arrays."""
        v = self.views
        r, rv = self._root_q, self._root_v
        qpos, qvel = v.qpos, v.qvel
        pos = v.xpos[:, self._foot_ids]
        vel = v.cvel[:, self._foot_ids]
        ang = vel[..., :3]
        # cvel's linear part is at the tree root's subtree com; move it to the body origin (as ModelLayout.frame).
        com = v.subtree_com[:, self._foot_root_ids]
        lin = vel[..., 3:] + torch.linalg.cross(ang, pos - com, dim=-1)
        return DeviceFrame(
            root_pos=qpos[:, r : r + 3].clone(),
            root_quat=qpos[:, r + 3 : r + 7].clone(),
            root_lin_vel=qvel[:, rv : rv + 3].clone(),
            root_ang_vel=qvel[:, rv + 3 : rv + 6].clone(),
            joint_pos=qpos[:, self._qpos_adr],
            joint_vel=qvel[:, self._qvel_adr],
            foot_pos=pos,
            foot_lin_vel=lin,
        )

    def observe(self, frame: DeviceFrame) -> torch.Tensor:
        """(N, obs) float32: the proprioceptive terms (LOCOMOTION_TERMS' scales and noise), then extras."""
        parts = []
        for name, scale, noise in self._obs_terms:
            raw = self._obs_term(name, frame)
            if self._noisy and noise > 0:
                raw = raw + self._uniform(tuple(raw.shape), -noise, noise)
            parts.append(raw * scale)
        obs = torch.clamp(torch.cat(parts, dim=1), -OBS_CLIP, OBS_CLIP)
        if self.task.observe_base_lin_vel:
            vel = quat_rotate_inverse_t(frame.root_quat, frame.root_lin_vel) * LIN_VEL_OBS_SCALE
            if self._noisy:
                vel = vel + self._uniform(tuple(vel.shape), -self._lin_vel_noise, self._lin_vel_noise)
            obs = torch.cat((obs, torch.clamp(vel, -OBS_CLIP, OBS_CLIP)), dim=1)
        return obs

    def _obs_term(self, name: str, frame: DeviceFrame) -> torch.Tensor:
        # robolearn/robots/observations.py's TERMS, on tensors.
        if name == "base_ang_vel":
            return frame.root_ang_vel
        if name == "projected_gravity":
            down = torch.zeros_like(frame.root_lin_vel)
            down[:, 2] = -1.0
            return quat_rotate_inverse_t(frame.root_quat, down)
        if name == "commands":
            return self.command
        if name == "joint_pos_rel":
            return frame.joint_pos - self.consts.default_joint_pos
        if name == "joint_vel":
            return frame.joint_vel
        if name == "last_action":
            return self.last_action
        raise UserError(f"observation term '{name}' is not on the device task")

    # -- resets ------------------------------------------------------------------------------------------------
    def _reset(self, mask: torch.Tensor) -> None:
        """VelocityTask.reset_envs + on_reset for the envs where mask is true, without leaving the device.

        Every env draws; torch.where keeps the draws of the masked envs only, so the number of resets
        never has to be known on the host.
        """
        task, dr, n = self.task, self.task.randomization, self.num_envs
        nj = self.num_actions
        m = mask[:, None]
        v = self.views
        if v.model:
            self._randomize_dynamics(mask)
        strength = self._scale(dr.motor_strength, (n, nj))
        v.kp.copy_(torch.where(m, self._kp0 * self._scale(dr.kp_scale, (n, nj)) * strength, v.kp))
        v.kd.copy_(torch.where(m, self._kd0 * self._scale(dr.kd_scale, (n, nj)) * strength, v.kd))
        v.torque_limit.copy_(torch.where(m, self._limit0 * strength, v.torque_limit))
        if dr.action_delay is not None:
            lo, hi = dr.action_delay
            delay = torch.randint(lo, hi + 1, (n,), generator=self.generator, device=self.device)
            self.action_delay = torch.where(mask, delay, self.action_delay)
        if dr.push_interval_s is not None:
            self.push_timer = torch.where(mask, self._uniform((n,), *dr.push_interval_s), self.push_timer)
        # initial_state: default pose with joint noise, random heading, small base velocity.
        spec = task.robot_spec
        joint_pos = self.consts.default_joint_pos + self._uniform((n, nj), -1.0, 1.0) * task.init_joint_noise
        joint_pos = torch.clamp(joint_pos, self._joint_lower, self._joint_upper)
        half = 0.5 * self._uniform((n,), -math.pi, math.pi)
        quat = torch.zeros((n, 4), device=self.device)
        quat[:, 0], quat[:, 3] = torch.cos(half), torch.sin(half)
        lin = self._uniform((n, 3), -1.0, 1.0) * task.init_velocity_noise
        ang = self._uniform((n, 3), -1.0, 1.0) * task.init_velocity_noise
        self.backend.reset_on_device(mask)
        qpos = self._qpos0.expand(n, -1).clone()
        qvel = torch.zeros_like(v.qvel)
        r, rv = self._root_q, self._root_v
        qpos[:, r + 2] = spec.base_height + 0.01
        qpos[:, r + 3 : r + 7] = quat
        qpos[:, self._qpos_adr] = joint_pos
        qvel[:, rv : rv + 3] = lin
        qvel[:, rv + 3 : rv + 6] = ang
        v.qpos.copy_(torch.where(m, qpos, v.qpos))
        v.qvel.copy_(torch.where(m, qvel, v.qvel))
        zero = torch.zeros((), device=self.device)
        self.episode_length_buf = torch.where(mask, 0, self.episode_length_buf)
        self.episode_return = torch.where(mask, zero, self.episode_return)
        self.last_action = torch.where(m, zero, self.last_action)
        self.last_joint_vel = torch.where(m, zero, self.last_joint_vel)
        self.action_history = torch.where(mask[:, None, None], zero, self.action_history)
        self.term_sums = torch.where(m, zero, self.term_sums)
        self._resample_commands(mask)
        self.foot_air_time = torch.where(m, zero, self.foot_air_time)
        self.foot_last_contact = self.foot_last_contact | m

    def _randomize_dynamics(self, mask: torch.Tensor) -> None:
        """The per-world model fields (robolearn.envs.backends.base.dynamics_fields) for the masked envs."""
        dr, n, nv, nbody = (
            self.task.randomization,
            self.num_envs,
            self.backend.model.nv,
            self.backend.model.nbody,
        )
        nom, v, base = self._nominal_model, self.views.model, self._base_body
        friction = nom["geom_friction"].expand(n, -1, -1).clone()
        friction[..., 0] *= self._scale(dr.friction, (n,))[:, None]
        mass_scale = self._scale(dr.link_mass, (n, nbody))
        mass = nom["body_mass"] * mass_scale
        inertia = nom["body_inertia"] * mass_scale[..., None]
        if dr.added_base_mass is not None:
            mass[:, base] += self._uniform((n,), *dr.added_base_mass)
        ipos = nom["body_ipos"].expand(n, -1, -1).clone()
        if dr.com_offset > 0:
            ipos[:, base] += self._uniform((n, 3), -dr.com_offset, dr.com_offset)
        new = {
            "geom_friction": friction,
            "body_mass": mass,
            "body_inertia": inertia,
            "body_ipos": ipos,
            "dof_frictionloss": nom["dof_frictionloss"] * self._scale(dr.joint_friction, (n, nv)),
            "dof_damping": nom["dof_damping"] * self._scale(dr.joint_damping, (n, nv)),
        }
        for name, value in new.items():
            rows = mask.view(n, *([1] * (value.dim() - 1)))
            v[name].copy_(torch.where(rows, value, v[name]))

    def _resample_commands(self, mask: torch.Tensor) -> None:
        n = self.num_envs
        cmd = self._cmd_lo + self._cmd_span * self._uniform((n, 3))
        standing = self._uniform((n,)) < self.task.standing_fraction
        cmd = torch.where(standing[:, None], torch.zeros((), device=self.device), cmd)
        self.command = torch.where(mask[:, None], cmd, self.command)
        self.command_timer = torch.where(mask, self.task.command_resample_s, self.command_timer)

    # -- rsl_rl's VecEnv -----------------------------------------------------------------------------------------
    def reset(self) -> Any:
        """Reset every env and return the first observations (TensorDict {"policy": ...})."""
        with self._on_warp_stream():
            mask = torch.ones(self.num_envs, dtype=torch.bool, device=self.device)
            self._reset(mask)
            self._obs = self._groups(self.observe(self.frame()))
        self._hand_back(self._obs[POLICY_GROUP])
        return self._obs

    def get_observations(self) -> Any:
        """The current observations (TensorDict of groups); resets first on the first call."""
        if self._obs is None:
            return self.reset()
        return self._obs

    def step(self, actions: torch.Tensor) -> tuple[Any, torch.Tensor, torch.Tensor, dict[str, Any]]:
        """One control step of every env, done ones reset in the same step (rsl_rl's convention).

        extras: "time_outs" (float, truncations that were not failures), "terminated" (bool),
        "reward_terms" ((N, terms) weighted values of this step, named by reward_names) and an empty
        "episodes" (see episode_stats()).
        """
        with self._on_warp_stream():
            obs, reward, terminated, truncated, weighted = self.step_task(actions)
            done = terminated | truncated
            self._finished = self._finished + torch.stack(
                (
                    (self.episode_return * done).sum(dtype=torch.float64),
                    (self.episode_length_buf * done).sum(dtype=torch.float64),
                    done.sum(dtype=torch.float64),
                )
            )
            self._reset(done)
            obs = torch.where(done[:, None], self.observe(self.frame()), obs)
            self._obs = self._groups(obs)
            extras: dict[str, Any] = {
                "time_outs": truncated.to(torch.float32),
                "terminated": terminated,
                "reward_terms": weighted,
                # RslVecEnv's per-step list of finished (return, length) pairs would need a host sync
                # every step; always empty here, episode_stats() gives them once per iteration.
                "episodes": (),
            }
        self._hand_back(obs, reward, done, extras["time_outs"], terminated, weighted)
        return self._obs, reward, done, extras

    def step_task(
        self, actions: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """VelocityTask.step_envs on the device: obs (before auto-reset), reward, terminated, truncated,
        weighted reward terms (N, terms). Call it on Warp's stream (step() does)."""
        task, v = self.task, self.views
        action = torch.clamp(actions.to(self.device, torch.float32), -task.action_clip, task.action_clip)
        length = self.action_history.shape[1]
        if length > 1:
            self.history_head = (self.history_head + 1) % length
            # Out of place, as every state update here: rsl_rl steps under torch.inference_mode(), and an
            # inference tensor must not be written in place by a later call outside it (or vice versa).
            history = self.action_history.clone()
            history[:, self.history_head] = action
            self.action_history = history
            applied = self.action_history[self._all, (self.history_head - self.action_delay) % length]
        else:
            applied = action
        v.targets.copy_(self.consts.default_joint_pos + self._action_scale * applied)
        self.backend.step_on_device()
        frame = self.frame()
        self.episode_length_buf = self.episode_length_buf + 1

        gravity = gravity_in_body_t(frame.root_quat)
        fallen = (gravity[:, 2] > -task.max_tilt_cos) | (frame.root_pos[:, 2] < task.min_base_height)
        terminated = fallen | ~torch.isfinite(frame.joint_pos).all(dim=1)
        contact = frame.foot_pos[..., 2] < self._contact_height
        contact_filt = contact | self.foot_last_contact
        first_contact = (self.foot_air_time > 0.0) & contact_filt
        self.foot_air_time = self.foot_air_time + self.dt
        air_time = self.foot_air_time
        self.foot_air_time = air_time * ~contact_filt
        self.foot_last_contact = contact
        ctx = DeviceContext(
            command=self.command,
            base_lin_vel=quat_rotate_inverse_t(frame.root_quat, frame.root_lin_vel),
            base_ang_vel=frame.root_ang_vel,
            projected_gravity=gravity,
            base_height=frame.root_pos[:, 2],
            joint_pos=frame.joint_pos,
            joint_vel=frame.joint_vel,
            joint_acc=(frame.joint_vel - self.last_joint_vel) / self.dt,
            torque=v.torque,
            action=action,
            last_action=self.last_action,
            foot_contact=contact,
            foot_first_contact=first_contact,
            foot_air_time=air_time,
            foot_lin_vel=frame.foot_lin_vel,
            terminated=terminated,
        )
        terms = torch.stack([fn(ctx, self.consts) for fn in self._reward_fns], dim=1)
        weighted = terms * self._weights
        # A diverged env ends (terminated) without poisoning the batch, as the numpy task.
        weighted = torch.where(torch.isfinite(weighted), weighted, torch.zeros((), device=self.device))
        if task.only_positive_rewards:
            positive = torch.clamp((weighted * self._not_termination).sum(dim=1), min=0.0)
            reward = positive + (weighted * self._is_termination).sum(dim=1)
        else:
            reward = weighted.sum(dim=1)
        self.term_sums = self.term_sums + weighted
        self.episode_return = self.episode_return + reward
        truncated = (self.episode_length_buf >= self.max_episode_length) & ~terminated

        self.last_action = action
        self.last_joint_vel = frame.joint_vel
        # after_step: resample the commands whose time is up.
        self.command_timer = self.command_timer - self.dt
        self._resample_commands(self.command_timer <= 0.0)
        self._push()
        return self.observe(frame), reward, terminated, truncated, weighted

    def _push(self) -> None:
        dr = self.task.randomization
        if dr.push_interval_s is None:
            return
        n, rv = self.num_envs, self._root_v
        self.push_timer = self.push_timer - self.dt
        due = self.push_timer <= 0.0
        kick = self._uniform((n, 2), -dr.push_velocity, dr.push_velocity) * due[:, None]
        self.views.qvel[:, rv : rv + 2] += kick
        self.push_timer = torch.where(due, self._uniform((n,), *dr.push_interval_s), self.push_timer)

    def _groups(self, obs: torch.Tensor) -> Any:
        from tensordict import TensorDict  # rsl-rl-lib's dependency

        return TensorDict({POLICY_GROUP: obs}, batch_size=[self.num_envs], device=self.device)

    # -- robolearn's -----------------------------------------------------------------------------------------------
    def episode_stats(self) -> tuple[float, float, int]:
        """Mean return and length of the episodes finished since the last call, and their number
        (one device-to-host copy; call it once per training iteration, not per step)."""
        ret, length, count = (float(x) for x in self._finished.cpu())
        self._finished = torch.zeros_like(self._finished)
        if count == 0:
            return float("nan"), float("nan"), 0
        return ret / count, length / count, int(count)

    _STATE = (
        "episode_length_buf",
        "episode_return",
        "command",
        "command_timer",
        "last_action",
        "last_joint_vel",
        "foot_air_time",
        "foot_last_contact",
        "push_timer",
        "action_history",
        "action_delay",
        "term_sums",
        "_finished",
    )

    def get_state(self) -> dict[str, Any]:
        """Everything needed to continue exactly (host copies): task buffers, gains, per-world model
        fields, the physics state, the generator and the current observations."""
        v = self.views
        return {
            "buffers": {name: getattr(self, name).detach().cpu().clone() for name in self._STATE},
            "gains": {k: getattr(v, k).detach().cpu().clone() for k in ("kp", "kd", "torque_limit")},
            "model": {k: t.detach().cpu().clone() for k, t in v.model.items()},
            # A tensor, not an ndarray: torch.load(weights_only=True) reads checkpoints holding it.
            "physics": torch.from_numpy(self.backend.get_physics_state()),
            "generator": self.generator.get_state(),
            "history_head": self.history_head,
            "obs": None if self._obs is None else self._obs[POLICY_GROUP].detach().cpu().clone(),
        }

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore get_state()'s snapshot into an identically built env."""
        for name, value in state["buffers"].items():
            setattr(self, name, value.to(self.device))
        for name, value in state["gains"].items():
            getattr(self.views, name).copy_(value)
        for name, value in state["model"].items():
            self.views.model[name].copy_(value)
        self.backend.set_physics_state(np.asarray(state["physics"], dtype=np.float64))
        self.generator.set_state(state["generator"])
        self.history_head = int(state["history_head"])
        obs = state["obs"]
        self._obs = None if obs is None else self._groups(obs.to(self.device))

    @property
    def reward_names(self) -> tuple[str, ...]:
        """Names of the columns of extras["reward_terms"]."""
        return self.task.reward_names

    def close(self) -> None:
        """Release the device arrays."""
        self.task.close()


def make_device_velocity_env(env_id: str, num_envs: int, seed: int = 0, **kwargs: Any) -> DeviceVelocityEnv:
    """DeviceVelocityEnv for a registered velocity id (robolearn/Go2Velocity-v1, robolearn/G1Velocity-v1)
    with the id's fixed kwargs and time limit; kwargs as the env config's (backend is ignored)."""
    from robolearn.envs.tasks import TASKS

    entry = TASKS.get(env_id)
    if entry is None or not entry.entry_point.endswith(":VelocityTask"):
        velocity = [k for k, e in TASKS.items() if e.entry_point.endswith(":VelocityTask")]
        raise UserError(f"the device task runs velocity ids only, not '{env_id}'; ids: {', '.join(velocity)}")
    options: dict[str, Any] = {**entry.kwargs, **{k: v for k, v in kwargs.items() if k != "backend"}}
    options.setdefault("max_episode_steps", entry.max_episode_steps)
    return DeviceVelocityEnv(num_envs=num_envs, seed=seed, **options)


__all__ = ["DEVICE_LOCOMOTION_REWARDS", "DeviceVelocityEnv", "make_device_velocity_env"]
