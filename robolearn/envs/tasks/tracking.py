"""Whole-body motion tracking (G1): follow reference clips body by body (BeyondMimic / mjlab style).

Each episode starts on a random frame of a random clip in the reference's own state (reference
state initialisation); the reference then advances one control period per step, looping periodic
clips. Rewards compare the robot's bodies with the reference's: the anchor (torso) in the world, and
every tracked body relative to the anchor (the reference moved onto the robot's anchor position and
heading), in position, orientation and velocity. The episode ends when the anchor drifts more than
`max_anchor_height_error` in height or `max_anchor_tilt_error` in tilt from the reference.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from robolearn.envs.backends.base import RootJointState, SimFrame
from robolearn.envs.tasks.base import RobotTask
from robolearn.envs.tasks.motion import ReferenceMotion, default_clip_paths, load_clip, reference_kinematics
from robolearn.envs.tasks.rewards import TRACKING_REWARDS, TrackingContext
from robolearn.envs.tasks.rotations import (
    quat_angle_between,
    quat_conjugate,
    quat_from_yaw,
    quat_multiply,
    quat_rotate,
    quat_rotate_inverse,
    quat_to_matrix,
    yaw_of,
)
from robolearn.envs.tasks.velocity import SOFT_LIMIT_FRACTION, soft_joint_limits
from robolearn.errors import UserError
from robolearn.resources import envs_dir
from robolearn.robots.observations import ObsTerm

# BeyondMimic's G1 tracking bodies; the anchor (first) is the torso.
TRACKED_BODIES = (
    "torso_link",
    "pelvis",
    "left_hip_roll_link",
    "left_knee_link",
    "left_ankle_roll_link",
    "right_hip_roll_link",
    "right_knee_link",
    "right_ankle_roll_link",
    "left_shoulder_roll_link",
    "left_elbow_link",
    "left_wrist_roll_rubber_hand",
    "right_shoulder_roll_link",
    "right_elbow_link",
    "right_wrist_roll_rubber_hand",
)

# Proprioception without the velocity command: the reference takes its place.
TRACKING_PROPRIO_TERMS = (
    ObsTerm("base_ang_vel", scale=0.25, noise=0.2),
    ObsTerm("projected_gravity", scale=1.0, noise=0.05),
    ObsTerm("joint_pos_rel", scale=1.0, noise=0.01),
    ObsTerm("joint_vel", scale=0.05, noise=1.5),
    ObsTerm("last_action", scale=1.0),
)

# BeyondMimic's weights (mjlab tracking config), per second.
DEFAULT_TRACKING_SCALES = {
    "anchor_pos": 0.5,
    "anchor_rot": 0.5,
    "body_pos": 1.0,
    "body_rot": 1.0,
    "body_lin_vel": 1.0,
    "body_ang_vel": 1.0,
    "action_rate": -0.1,
    "joint_limits": -10.0,
    "termination": -50.0,
}


class TrackingTask(RobotTask):
    """Track G1 reference clips; observation = proprioception + reference joints + anchor orientation."""

    reward_functions = TRACKING_REWARDS

    def __init__(
        self,
        robot: str = "g1",
        clips: Sequence[str] | None = None,
        num_envs: int = 1,
        backend: str = "mujoco",
        threads: int = 1,
        device: str | None = None,
        model_path: str | None = None,
        randomization: Mapping[str, Any] | None = None,
        robot_options: Mapping[str, Any] | None = None,
        reward_scales: Mapping[str, float] | None = None,
        max_anchor_height_error: float = 0.25,
        max_anchor_tilt_error: float = 0.8,
        init_joint_noise: float = 0.05,
        action_clip: float = 5.0,
        max_episode_steps: int | None = None,
        render_mode: str | None = None,
    ) -> None:
        from robolearn.robots.registry import get_robot_spec

        spec = get_robot_spec(robot)
        nj = spec.num_joints
        scales = dict(DEFAULT_TRACKING_SCALES)
        scales.update({str(k): float(v) for k, v in (reward_scales or {}).items()})
        super().__init__(
            robot=robot,
            proprio_terms=TRACKING_PROPRIO_TERMS,
            reward_scales=scales,
            bodies=TRACKED_BODIES,
            num_envs=num_envs,
            backend=backend,
            threads=threads,
            device=device,
            model_path=model_path,
            randomization=randomization,
            robot_options=robot_options,
            action_clip=action_clip,
            max_episode_steps=max_episode_steps,
            render_mode=render_mode,
            extra_obs_size=2 * nj + 6,
        )
        paths = _clip_paths(robot, clips)
        self.references: tuple[ReferenceMotion, ...] = tuple(
            reference_kinematics(self.mj_model, spec, load_clip(p), TRACKED_BODIES) for p in paths
        )
        self.clip_names = tuple(r.clip.name for r in self.references)
        # All clips in one (C, T_max, ...) table so a batch of envs indexes [clip, frame] at once.
        self._table = _ReferenceTable(_stack_references(self.references))
        self.clip_frames = np.array([r.clip.num_frames for r in self.references], dtype=np.int64)
        self.clip_fps = np.array([r.clip.fps for r in self.references])
        self.clip_periodic = np.array([r.clip.periodic for r in self.references])
        self.max_anchor_height_error = float(max_anchor_height_error)
        self.max_anchor_tilt_error = float(max_anchor_tilt_error)
        self.init_joint_noise = float(init_joint_noise)
        lower, upper = np.asarray(spec.joint_pos_lower), np.asarray(spec.joint_pos_upper)
        self.joint_lower, self.joint_upper = lower, upper
        self.soft_lower, self.soft_upper = soft_joint_limits(lower, upper, SOFT_LIMIT_FRACTION)
        self.clip_index = np.zeros(self.num_envs, dtype=np.int64)
        self.motion_time = np.zeros(self.num_envs)

    # -- reference lookup ------------------------------------------------------------------------------
    def frame_index(self, ids: np.ndarray | None = None) -> np.ndarray:
        """Current reference frame of envs ids (looping periodic clips, holding the last frame otherwise)."""
        sel = slice(None) if ids is None else ids
        clip = self.clip_index[sel]
        raw = np.floor(self.motion_time[sel] * self.clip_fps[clip] + 1e-6).astype(np.int64)
        frames = self.clip_frames[clip]
        return np.where(self.clip_periodic[clip], raw % frames, np.minimum(raw, frames - 1))

    def reference(self, field: str, ids: np.ndarray | None = None) -> np.ndarray:
        """One reference field at the current frame of envs ids."""
        sel = slice(None) if ids is None else ids
        return self._table.fields[field][self.clip_index[sel], self.frame_index(ids)]

    def clip_finished(self) -> np.ndarray:
        """Envs whose non-periodic clip has run out (their episode is truncated)."""
        clip = self.clip_index
        done = self.motion_time * self.clip_fps[clip] >= self.clip_frames[clip] - 1
        return done & ~self.clip_periodic[clip]

    # -- episode start ---------------------------------------------------------------------------------
    def initial_state(self, ids: np.ndarray) -> RootJointState:
        """The reference state at a random frame of a random clip, with a little joint noise."""
        k = len(ids)
        self.clip_index[ids] = self.rng.integers(0, len(self.references), size=k)
        frames = self.clip_frames[self.clip_index[ids]]
        start = np.floor(self.rng.uniform(size=k) * frames).astype(np.int64)
        self.motion_time[ids] = start / self.clip_fps[self.clip_index[ids]]
        ref = {
            f: self.reference(f, ids)
            for f in ("root_pos", "root_quat", "root_lin_vel", "root_ang_vel", "joint_pos", "joint_vel")
        }
        joint_pos = (
            ref["joint_pos"]
            + self.rng.uniform(-1.0, 1.0, size=ref["joint_pos"].shape) * self.init_joint_noise
        )
        joint_pos = np.clip(joint_pos, self.joint_lower, self.joint_upper)
        root_pos = ref["root_pos"].copy()
        root_pos[:, 2] += 0.01  # start a centimetre up so joint noise never puts a sole in the floor
        return RootJointState(
            root_pos, ref["root_quat"], ref["root_lin_vel"], ref["root_ang_vel"], joint_pos, ref["joint_vel"]
        )

    # -- observation, reward, termination --------------------------------------------------------------
    def extra_observation(self, frame: SimFrame, ids: np.ndarray) -> np.ndarray:
        """Reference joint positions (relative to default) and velocities, and the reference anchor's
        orientation in the robot's base frame (first two columns of the relative rotation)."""
        spec = self.robot_spec
        ref_q = self.reference("joint_pos", ids) - spec.default_pos_array
        ref_dq = self.reference("joint_vel", ids) * 0.05
        ref_anchor = self.reference("body_quat", ids)[:, 0]
        relative = quat_multiply(quat_conjugate(frame.root_quat[ids]), ref_anchor)
        cols = quat_to_matrix(relative)[..., :, :2].reshape(len(ids), 6)
        return np.concatenate((ref_q, ref_dq, cols), axis=1)

    def fallen(self, frame: SimFrame) -> np.ndarray:
        """Anchor height or tilt too far from the reference's."""
        ref_pos = self.reference("body_pos")[:, 0]
        ref_quat = self.reference("body_quat")[:, 0]
        down = np.array([0.0, 0.0, -1.0])
        tilt_err = np.abs(
            quat_rotate_inverse(frame.body_quat[:, 0], down)[:, 2] - quat_rotate_inverse(ref_quat, down)[:, 2]
        )
        height_err = np.abs(frame.body_pos[:, 0, 2] - ref_pos[:, 2])
        return (height_err > self.max_anchor_height_error) | (tilt_err > self.max_anchor_tilt_error)

    def reward_context(
        self, frame: SimFrame, action: np.ndarray, torque: np.ndarray, terminated: np.ndarray
    ) -> TrackingContext:
        """Robot bodies against the reference, the latter also moved onto the robot's anchor."""
        ref_pos = self.reference("body_pos")
        ref_quat = self.reference("body_quat")
        # BeyondMimic's relative reference: translate the reference anchor onto the robot's in the
        # plane (keeping the reference's height) and turn it to the robot anchor's heading.
        yaw = yaw_of(frame.body_quat[:, 0]) - yaw_of(ref_quat[:, 0])
        turn = quat_from_yaw(yaw)
        anchor = ref_pos[:, 0].copy()
        anchor[:, :2] = frame.body_pos[:, 0, :2]
        offsets = ref_pos - ref_pos[:, :1]
        rel_pos = anchor[:, None] + quat_rotate(np.broadcast_to(turn[:, None], ref_quat.shape), offsets)
        rel_quat = quat_multiply(turn[:, None], ref_quat)
        return TrackingContext(
            body_pos=frame.body_pos,
            body_quat=frame.body_quat,
            body_lin_vel=frame.body_lin_vel,
            body_ang_vel=frame.body_ang_vel,
            ref_body_pos=ref_pos,
            ref_body_pos_relative=rel_pos,
            ref_body_quat=ref_quat,
            ref_body_quat_relative=rel_quat,
            ref_body_lin_vel=self.reference("body_lin_vel"),
            ref_body_ang_vel=self.reference("body_ang_vel"),
            anchor=0,
            joint_pos=frame.joint_pos,
            soft_lower=self.soft_lower,
            soft_upper=self.soft_upper,
            action=action,
            last_action=self.last_action,
            terminated=terminated,
        )

    def step_metrics(self, ctx: TrackingContext) -> dict[str, np.ndarray]:
        """Mean body position error against the anchored reference (m) and the anchor's world
        position (m) and orientation (rad) errors."""
        a = ctx.anchor
        return {
            "body_pos_error": np.mean(
                np.linalg.norm(ctx.body_pos - ctx.ref_body_pos_relative, axis=2), axis=1
            ),
            "anchor_pos_error": np.linalg.norm(ctx.body_pos[:, a] - ctx.ref_body_pos[:, a], axis=1),
            "anchor_rot_error": quat_angle_between(ctx.body_quat[:, a], ctx.ref_body_quat[:, a]),
        }

    def step_envs(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """RobotTask.step_envs against the reference frame the step ends on; finished clips truncate."""
        # The reference advances before the physics: rewards, termination and the observation then
        # compare the robot's new state with the frame of the same instant.
        self.motion_time += self.control_dt
        obs, reward, terminated, truncated, terms = super().step_envs(actions)
        return obs, reward, terminated, truncated | (self.clip_finished() & ~terminated), terms


def _clip_paths(robot: str, clips: Sequence[str] | None) -> list[Path]:
    if not clips:
        paths = default_clip_paths(robot)
        if not paths:
            raise UserError(
                f"no motion clips in {envs_dir() / robot / 'motions'}; run python -m robolearn.envs.tasks.motion"
            )
        return paths
    out = []
    for entry in clips:
        path = Path(str(entry)).expanduser()
        if not path.suffix:
            path = envs_dir() / robot / "motions" / f"{entry}.npz"
        out.append(path)
    return out


class _ReferenceTable:
    """The stacked reference arrays: constant data, kept out of env snapshots by not being plain."""

    __slots__ = ("fields",)

    def __init__(self, fields: dict[str, np.ndarray]) -> None:
        self.fields = fields


def _stack_references(refs: Sequence[ReferenceMotion]) -> dict[str, np.ndarray]:
    """Pad every clip to the longest (repeating its last frame) and stack on a leading clip axis."""
    longest = max(r.clip.num_frames for r in refs)
    fields = (
        "joint_pos",
        "joint_vel",
        "root_pos",
        "root_quat",
        "root_lin_vel",
        "root_ang_vel",
        "body_pos",
        "body_quat",
        "body_lin_vel",
        "body_ang_vel",
    )
    table = {}
    for name in fields:
        arrays = []
        for r in refs:
            a = getattr(r, name)
            pad = np.repeat(a[-1:], longest - len(a), axis=0)
            arrays.append(np.concatenate((a, pad), axis=0))
        table[name] = np.stack(arrays)
    return table
