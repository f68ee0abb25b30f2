"""Whole-body motion tracking (G1): follow reference clips body by body (BeyondMimic / mjlab style).

Each episode starts on a random frame of a random clip in the reference's own state (reference
state initialisation); the reference then advances one control period per step, looping periodic
clips. Rewards compare the robot's bodies with the reference's: the anchor (torso) in the world, and
every tracked body relative to the anchor (the reference moved onto the robot's anchor position and
heading), in position, orientation and velocity. The episode ends when the anchor drifts more than
`max_anchor_height_error` in height or `max_anchor_tilt_error` in tilt from the reference, or (when
set) a foot or hand more than `max_end_effector_height_error` in height.

With `adaptive_sampling` (BeyondMimic's adaptive sampling, Liao et al. 2025), a batch of training envs
starts its episodes where the policy fails: each clip is cut into bins of about `bin_s` seconds, every
step the bins' failure rates (failures per step, an exponential moving average with weight `alpha`)
take in the bins the terminated envs failed in, and a start bin is drawn with probability
`uniform` x today's uniform start + (1 - `uniform`) x the failure rates smoothed by `kernel` (a bin
also takes the failures of the bins after it, so episodes start a little before a hard segment).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from robolearn.envs.backends.base import RootJointState, SimFrame
from robolearn.envs.tasks.base import RobotTask
from robolearn.envs.tasks.motion import ReferenceMotion, default_clip_paths, load_clip, reference_kinematics
from robolearn.envs.tasks.rewards import TRACKING_REWARDS, TrackingContext
from robolearn.envs.tasks.rotations import (
    quat_angle_between,
    quat_from_yaw,
    quat_multiply,
    quat_rotate,
    quat_rotate_inverse,
    yaw_of,
)
from robolearn.envs.tasks.velocity import SOFT_LIMIT_FRACTION, soft_joint_limits
from robolearn.errors import UserError, close_matches
from robolearn.resources import envs_dir
from robolearn.robots.observations import ObsTerm
from robolearn.robots.state import MotionFrame

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
# Then the reference (robolearn.robots.observations' motion_* terms, which the deploy runtime builds
# from the artifact's motion file): its joints relative to default, its joint velocities x 0.05, and
# its anchor's orientation in the robot's base frame (6).
TRACKING_MOTION_TERMS = (
    ObsTerm("motion_joint_pos"),
    ObsTerm("motion_joint_vel", scale=0.05),
    ObsTerm("motion_anchor_ori"),
)

# The end effectors BeyondMimic's `ee_body_pos` termination watches (its wrist yaw links are our hands).
END_EFFECTORS = (
    "left_ankle_roll_link",
    "right_ankle_roll_link",
    "left_wrist_roll_rubber_hand",
    "right_wrist_roll_rubber_hand",
)

# Where an episode starts: a random frame of a random clip (reference state initialisation, training
# and the default evaluation) or the first frame of a random clip (does the policy play a whole clip?).
START_MODES = ("random", "first")

# BeyondMimic's weights (mjlab tracking config), per second; the termination penalty is ours (neither
# BeyondMimic nor mjlab has one: ending early only forfeits the positive tracking terms there).
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
        max_end_effector_height_error: float | None = None,
        init_joint_noise: float = 0.05,
        action_clip: float = 5.0,
        max_episode_steps: int | None = None,
        render_mode: str | None = None,
        adaptive_sampling: Mapping[str, Any] | None = None,
        start: str = "random",
        only_positive_rewards: bool = False,
    ) -> None:
        from robolearn.robots.registry import get_robot_spec

        # Parsed first: a bad option fails before the model and the clips load.
        sampling = AdaptiveSampling.from_kwargs(adaptive_sampling)
        if start not in START_MODES:
            raise UserError(
                f"start={start!r} is not a start mode; use 'random' (a random frame, as training) "
                "or 'first' (each episode plays a clip from its first frame)"
            )
        if start == "first" and sampling is not None and num_envs > 1:
            raise UserError(
                "start='first' with adaptive_sampling: adaptive sampling picks start frames; "
                "set adaptive_sampling: null or start: random"
            )
        self.start = start

        spec = get_robot_spec(robot)
        scales = dict(DEFAULT_TRACKING_SCALES)
        scales.update({str(k): float(v) for k, v in (reward_scales or {}).items()})
        super().__init__(
            robot=robot,
            proprio_terms=(*TRACKING_PROPRIO_TERMS, *TRACKING_MOTION_TERMS),
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
            only_positive_rewards=only_positive_rewards,
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
        if max_end_effector_height_error is not None and not float(max_end_effector_height_error) > 0:
            raise UserError(
                f"max_end_effector_height_error={max_end_effector_height_error} must be > 0 (m), e.g. 0.25, or null"
            )
        self.max_end_effector_height_error = (
            None if max_end_effector_height_error is None else float(max_end_effector_height_error)
        )
        self.end_effectors = np.array([TRACKED_BODIES.index(b) for b in END_EFFECTORS], dtype=np.int64)
        self.init_joint_noise = float(init_joint_noise)
        lower, upper = np.asarray(spec.joint_pos_lower), np.asarray(spec.joint_pos_upper)
        self.joint_lower, self.joint_upper = lower, upper
        self.soft_lower, self.soft_upper = soft_joint_limits(lower, upper, SOFT_LIMIT_FRACTION)
        self.clip_index = np.zeros(self.num_envs, dtype=np.int64)
        self.motion_time = np.zeros(self.num_envs)
        # Adaptive sampling shapes training batches only: a single env (evaluation, checks) starts
        # uniformly, as the tracking goal is measured.
        self.adaptive = sampling if self.num_envs > 1 else None
        bin_s = AdaptiveSampling().bin_s if sampling is None else sampling.bin_s
        durations = self.clip_frames / self.clip_fps
        # Equal bins per clip (as BeyondMimic's), about bin_s long; all clips' bins on one axis.
        self.clip_bins = np.maximum(np.ceil(durations / bin_s - 1e-9), 1).astype(np.int64)
        self.clip_first_bin = np.concatenate(([0], np.cumsum(self.clip_bins)[:-1]))
        self.bin_clip = np.repeat(np.arange(len(self.references)), self.clip_bins)
        # Today's start distribution over bins: a uniform clip, then a uniform frame in it.
        self.uniform_start = 1.0 / (len(self.references) * self.clip_bins[self.bin_clip])
        # Plain arrays, so env snapshots (exact resume) carry the sampler's state.
        self.bin_failure_rate = np.zeros(len(self.bin_clip))
        kernel = np.ones(1) if sampling is None else sampling.kernel
        self.bin_smoothing = _bin_smoothing(self.clip_bins, self.clip_periodic, kernel)

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

    def current_bin(self, ids: np.ndarray | None = None) -> np.ndarray:
        """Index (on the all-clips bin axis) of the bin the current reference frame of envs ids lies in."""
        sel = slice(None) if ids is None else ids
        clip = self.clip_index[sel]
        nb = self.clip_bins[clip]
        local = np.minimum(self.frame_index(ids) * nb // self.clip_frames[clip], nb - 1)
        return self.clip_first_bin[clip] + local

    # -- episode start ---------------------------------------------------------------------------------
    def start_probabilities(self) -> np.ndarray:
        """Probability of each bin (all clips' bins on one axis) being an episode's start."""
        cfg = self.adaptive
        if cfg is None:
            return self.uniform_start
        # Elementwise, not a matrix product: BLAS threads would spin on the batch backend's cores
        # (see RobotTask.step_envs).
        failures = (self.bin_smoothing * self.bin_failure_rate).sum(axis=1)
        total = failures.sum()
        if total <= 0.0:
            return self.uniform_start
        return cfg.uniform * self.uniform_start + (1.0 - cfg.uniform) * failures / total

    def initial_state(self, ids: np.ndarray) -> RootJointState:
        """The reference state at a random frame of a random clip, with a little joint noise.

        Uniform starts draw a clip then a frame (frame 0 with start='first'); adaptive sampling draws a
        bin, then a frame in it."""
        k = len(ids)
        if self.adaptive is None:
            self.clip_index[ids] = self.rng.integers(0, len(self.references), size=k)
            fraction = self.rng.uniform(size=k) if self.start == "random" else np.zeros(k)
        else:
            bins = self.rng.choice(len(self.bin_clip), size=k, p=self.start_probabilities())
            clip = self.bin_clip[bins]
            self.clip_index[ids] = clip
            fraction = (bins - self.clip_first_bin[clip] + self.rng.uniform(size=k)) / self.clip_bins[clip]
        frames = self.clip_frames[self.clip_index[ids]]
        start = np.minimum(np.floor(fraction * frames).astype(np.int64), frames - 1)
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
    def motion_frame(self, ids: np.ndarray | None) -> MotionFrame:
        """The reference's joint positions and velocities and its anchor's (torso's) world orientation
        at the current frame of envs ids: what the motion_* observation terms read."""
        return MotionFrame(
            joint_pos=self.reference("joint_pos", ids),
            joint_vel=self.reference("joint_vel", ids),
            anchor_quat=self.reference("body_quat", ids)[:, 0],
        )

    def fallen(self, frame: SimFrame) -> np.ndarray:
        """Anchor height or tilt (or, when set, an end effector's height) too far from the reference's."""
        ref_body_pos = self.reference("body_pos")
        ref_pos = ref_body_pos[:, 0]
        ref_quat = self.reference("body_quat")[:, 0]
        down = np.array([0.0, 0.0, -1.0])
        tilt_err = np.abs(
            quat_rotate_inverse(frame.body_quat[:, 0], down)[:, 2] - quat_rotate_inverse(ref_quat, down)[:, 2]
        )
        height_err = np.abs(frame.body_pos[:, 0, 2] - ref_pos[:, 2])
        lost = (height_err > self.max_anchor_height_error) | (tilt_err > self.max_anchor_tilt_error)
        if self.max_end_effector_height_error is not None:
            # BeyondMimic compares with the anchored reference, whose heights are the reference's own.
            ee = self.end_effectors
            ee_err = np.abs(frame.body_pos[:, ee, 2] - ref_body_pos[:, ee, 2])
            lost |= np.any(ee_err > self.max_end_effector_height_error, axis=1)
        return lost

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
        if self.adaptive is not None:
            self._count_failures(terminated)
        return obs, reward, terminated, truncated | (self.clip_finished() & ~terminated), terms

    def _count_failures(self, terminated: np.ndarray) -> None:
        """Move each bin's failure rate towards this step's failures in it (BeyondMimic: every step)."""
        assert self.adaptive is not None
        failed = np.bincount(self.current_bin(np.flatnonzero(terminated)), minlength=len(self.bin_clip))
        alpha = self.adaptive.alpha
        self.bin_failure_rate *= 1.0 - alpha
        self.bin_failure_rate += alpha * failed


class AdaptiveSampling(NamedTuple):
    """Options of adaptive start sampling; the kernel is normalised to sum to one."""

    bin_s: float = 1.0
    alpha: float = 0.001
    uniform: float = 0.1
    kernel: np.ndarray = np.ones(1)

    @classmethod
    def from_kwargs(cls, cfg: Mapping[str, Any] | None) -> AdaptiveSampling | None:
        """Parse adaptive_sampling={bin_s, alpha, uniform, kernel} (None: uniform starts)."""
        if cfg is None:
            return None
        if not isinstance(cfg, Mapping):
            raise UserError(
                f"adaptive_sampling={cfg!r} must be a mapping such as {{bin_s: 1.0, alpha: 0.001}} or null"
            )
        options = cls._fields
        for key in cfg:
            if key not in options:
                raise UserError(
                    f"adaptive_sampling.{key} is not an option{close_matches(str(key), options)}; "
                    f"options: {', '.join(options)}"
                )
        default = cls()
        bin_s = _option_number(cfg, "bin_s", default.bin_s)
        if not bin_s > 0.0:
            raise UserError(f"adaptive_sampling.bin_s={bin_s} must be > 0 (seconds), e.g. 1.0")
        alpha = _option_number(cfg, "alpha", default.alpha)
        if not 0.0 < alpha <= 1.0:
            raise UserError(f"adaptive_sampling.alpha={alpha} must be in (0, 1], e.g. 0.001")
        uniform = _option_number(cfg, "uniform", default.uniform)
        if not 0.0 <= uniform <= 1.0:
            raise UserError(f"adaptive_sampling.uniform={uniform} must be in [0, 1], e.g. 0.1")
        raw = cfg.get("kernel", default.kernel.tolist())
        try:
            kernel = np.array([float(w) for w in raw], dtype=np.float64)
        except (TypeError, ValueError):
            kernel = np.zeros(0)
        if len(kernel) == 0 or not np.all(kernel >= 0.0) or not kernel.sum() > 0.0:
            raise UserError(
                f"adaptive_sampling.kernel={raw!r} must be a list of weights >= 0 with a positive sum, "
                "e.g. [1.0, 0.5] (weight of the bin itself, then of the bins after it)"
            )
        return cls(bin_s, alpha, uniform, kernel / kernel.sum())


def _option_number(cfg: Mapping[str, Any], key: str, default: float) -> float:
    value = cfg.get(key, default)
    try:
        return float(value)
    except (TypeError, ValueError):
        raise UserError(f"adaptive_sampling.{key}={value!r} must be a number") from None


def _bin_smoothing(clip_bins: np.ndarray, periodic: np.ndarray, kernel: np.ndarray) -> np.ndarray:
    """(B, B) matrix spreading each bin's failures onto itself and the bins before it, within its clip:
    row b takes kernel[j] of the bin j after b (wrapping on periodic clips, the last bin repeating on
    others, as BeyondMimic's replicate padding)."""
    total = int(clip_bins.sum())
    matrix = np.zeros((total, total))
    first = 0
    for nb, loops in zip(clip_bins.tolist(), periodic.tolist(), strict=True):
        for b in range(nb):
            for j, weight in enumerate(kernel):
                after = (b + j) % nb if loops else min(b + j, nb - 1)
                matrix[first + b, first + after] += weight
        first += nb
    return matrix


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
