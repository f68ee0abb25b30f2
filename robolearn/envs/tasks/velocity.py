"""Velocity tracking on flat ground: follow a commanded planar velocity and yaw rate (Go2, G1).

legged_gym's locomotion task on our robot contract: the observation is the robots package's
LOCOMOTION_TERMS (the deploy runtime's), commands are resampled per env every
`command_resample_s`, falls (tilt or a low base) terminate, the time limit truncates.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import mujoco
import numpy as np

from robolearn.envs.backends.base import RootJointState, SimFrame
from robolearn.envs.tasks.base import RobotTask
from robolearn.envs.tasks.rewards import LOCOMOTION_REWARDS, LocomotionContext
from robolearn.envs.tasks.rotations import gravity_in_body, quat_from_yaw, quat_rotate_inverse_rows, yaw_of
from robolearn.envs.terrain import TerrainOptions, generate_terrain
from robolearn.errors import UserError, close_matches
from robolearn.robots.model import joint_index_map, set_default_pose
from robolearn.robots.observations import LOCOMOTION_TERMS, ObsTerm, clock_phase

# Per-robot defaults. Scales follow legged_gym (Go2: unitree_rl_gym go2_config; G1: g1_config),
# in our units (scale per second; penalties negative). docs/envs.md records the variants tried on
# the way to the walking benchmark (e.g. Genesis's pose_deviation and base_height terms).
ROBOT_DEFAULTS: dict[str, dict[str, Any]] = {
    "go2": {
        "reward_scales": {
            "tracking_lin_vel": 1.0,
            "tracking_ang_vel": 0.5,
            "lin_vel_z": -2.0,
            "ang_vel_xy": -0.05,
            "orientation": -0.2,
            "torques": -2e-4,
            "joint_acc": -2.5e-7,
            "action_rate": -0.01,
            "joint_limits": -10.0,
            "feet_air_time": 1.0,
            "termination": -50.0,
        },
        "air_time_target": 0.5,
        "base_height_target": 0.30,
        "min_base_height": 0.12,
        "hip_joints": (),
        # Trot: diagonal pairs (FR+RL, FL+RR) half a cycle apart, in foot_bodies order FR, FL, RR, RL.
        "gait_offsets": (0.0, 0.5, 0.5, 0.0),
        "swing_height": 0.08,
    },
    "g1": {
        "reward_scales": {
            "tracking_lin_vel": 1.0,
            "tracking_ang_vel": 0.5,
            "lin_vel_z": -2.0,
            "ang_vel_xy": -0.05,
            "orientation": -1.0,
            "base_height": -10.0,
            "joint_vel": -1e-3,
            "joint_acc": -2.5e-7,
            "action_rate": -0.01,
            "joint_limits": -5.0,
            "hip_deviation": -1.0,
            "feet_air_time": 0.25,
            "alive": 0.15,
            "termination": -50.0,
        },
        "air_time_target": 0.4,
        "base_height_target": 0.75,
        "min_base_height": 0.4,
        "hip_joints": (
            "left_hip_roll_joint",
            "left_hip_yaw_joint",
            "right_hip_roll_joint",
            "right_hip_yaw_joint",
        ),
        "gait_offsets": (0.0, 0.5),
        "swing_height": 0.08,
    },
}
# The 29-DoF G1 (robolearn/robots/g1_29.py) has the 23-DoF one's legs, hip joints and heights; its
# extra wrist and waist joints change nothing the task's rewards read.
ROBOT_DEFAULTS["g1_29dof"] = ROBOT_DEFAULTS["g1"]

DEFAULT_COMMAND_RANGES = {"lin_vel_x": (-1.0, 1.0), "lin_vel_y": (-0.5, 0.5), "ang_vel_z": (-1.0, 1.0)}

# legged_gym's soft_dof_pos_limit: joints are penalised in the outer 5 % of their range at each end.
SOFT_LIMIT_FRACTION = 0.9
# legged_gym's obs_scales.lin_vel and noise_scales.lin_vel (m/s, before the scale).
LIN_VEL_OBS_SCALE = 2.0
LIN_VEL_OBS_NOISE = 0.1
# Reward terms that read the gait clock (a task without one refuses them).
GAIT_REWARDS = ("gait_contact", "swing_height")
# A foot is in contact when its body is within this much of its height standing at the default pose.
CONTACT_MARGIN = 0.01


def soft_joint_limits(lower: np.ndarray, upper: np.ndarray, fraction: float) -> tuple[np.ndarray, np.ndarray]:
    """The central `fraction` of each joint range."""
    mid, half = 0.5 * (lower + upper), 0.5 * (upper - lower) * fraction
    return mid - half, mid + half


def standing_foot_heights(model: mujoco.MjModel, spec: Any) -> np.ndarray:
    """World z of each foot body at the default pose with the base at base_height (flat ground)."""
    data = mujoco.MjData(model)
    set_default_pose(model, data, spec, joint_index_map(model, spec))
    ids = [mujoco.mj_name2id(model, mujoco.mjtObj.mjOBJ_BODY, b) for b in spec.foot_bodies]
    return np.array([data.xpos[i][2] for i in ids])


# legged_gym's measured_points_x (-0.8..0.8 m) and _y (-0.5..0.5 m), 0.1 m apart: 17 x 11 = 187
# points in the base's heading frame; its obs_scales.height_measurements 5.0.
HEIGHT_SCAN_POINTS = np.stack(
    np.meshgrid(np.linspace(-0.8, 0.8, 17), np.linspace(-0.5, 0.5, 11), indexing="ij"), axis=-1
).reshape(-1, 2)
HEIGHT_SCAN_SCALE = 5.0

# A robot starts within this much (m, per axis) of its tile's origin (ours; [lg] 1 m with a 2 m square:
# ours keeps its feet inside the origin's square too).
TERRAIN_SPAWN_OFFSET = 0.5


class _FrameCache:
    """A value derived from one SimFrame, kept while that frame is current; not state (not snapshotted)."""

    __slots__ = ("frame", "value")

    def __init__(self) -> None:
        self.frame: SimFrame | None = None
        self.value: np.ndarray = np.zeros(0)


class VelocityTask(RobotTask):
    """Track (vx, vy, yaw rate) commands; see docs/envs.md for terms, scales and options."""

    reward_functions = LOCOMOTION_REWARDS

    def __init__(
        self,
        robot: str = "go2",
        num_envs: int = 1,
        backend: str = "mujoco",
        threads: int = 1,
        device: str | None = None,
        model_path: str | None = None,
        randomization: Mapping[str, Any] | None = None,
        robot_options: Mapping[str, Any] | None = None,
        reward_scales: Mapping[str, float] | None = None,
        command_ranges: Mapping[str, Any] | None = None,
        command_resample_s: float = 10.0,
        command_curriculum: Mapping[str, Any] | None = None,
        standing_fraction: float = 0.1,
        tracking_sigma: float = 0.25,
        max_tilt_deg: float = 60.0,
        init_joint_noise: float = 0.1,
        init_velocity_noise: float = 0.2,
        action_clip: float = 5.0,
        only_positive_rewards: bool = True,
        observe_base_lin_vel: bool = False,
        critic_observes_base_lin_vel: bool = False,
        critic_observes_height_scan: bool = False,
        observation_history: int = 1,
        delta_action: Mapping[str, Any] | None = None,
        residual_dynamics: Mapping[str, Any] | None = None,
        gait_period_s: float | None = None,
        gait_duty: float = 0.5,
        swing_height: float | None = None,
        air_time_target: float | None = None,
        base_height_target: float | None = None,
        soft_velocity_limit: float = 0.9,
        air_time_window: tuple[float, float] = (0.05, 0.15),
        clearance_speed_gain: float = 2.0,
        terrain: Mapping[str, Any] | None = None,
        max_episode_steps: int | None = None,
        render_mode: str | None = None,
    ) -> None:
        if robot not in ROBOT_DEFAULTS:
            raise UserError(f"no velocity task for robot '{robot}'{close_matches(robot, ROBOT_DEFAULTS)}")
        defaults = ROBOT_DEFAULTS[robot]
        scales = dict(defaults["reward_scales"])
        scales.update({str(k): float(v) for k, v in (reward_scales or {}).items()})
        from robolearn.robots.registry import get_robot_spec

        feet = get_robot_spec(robot).foot_bodies
        if gait_period_s is not None and gait_period_s <= 0:
            raise UserError(
                f"gait_period_s={gait_period_s} must be positive (seconds per gait cycle), or null"
            )
        clocked = [n for n in GAIT_REWARDS if scales.get(n, 0.0) != 0.0]
        if clocked and gait_period_s is None:
            raise UserError(
                f"reward term {clocked[0]} follows the gait clock; set gait_period_s (e.g. 0.5) or its scale to 0"
            )
        if not 0.0 < gait_duty < 1.0:
            raise UserError(f"gait_duty={gait_duty} must be in (0, 1): the stance share of a gait cycle")
        if critic_observes_base_lin_vel and observe_base_lin_vel:
            raise UserError(
                "critic_observes_base_lin_vel=true with observe_base_lin_vel=true: the actor already "
                "observes the base velocity (and so does the critic); set critic_observes_base_lin_vel=false"
            )
        terms = LOCOMOTION_TERMS if gait_period_s is None else (*LOCOMOTION_TERMS, ObsTerm("gait_clock"))
        terrain_options = TerrainOptions.from_kwargs(terrain)
        super().__init__(
            robot=robot,
            proprio_terms=terms,
            reward_scales=scales,
            bodies=feet,
            num_envs=num_envs,
            backend=backend,
            threads=threads,
            device=device,
            model_path=model_path,
            randomization=randomization,
            robot_options=robot_options,
            action_clip=action_clip,
            only_positive_rewards=only_positive_rewards,
            max_episode_steps=max_episode_steps,
            render_mode=render_mode,
            extra_obs_size=3 if observe_base_lin_vel else 0,
            observation_history=observation_history,
            delta_action=delta_action,
            residual_dynamics=residual_dynamics,
            terrain=None if terrain_options is None else generate_terrain(terrain_options.grid),
        )
        spec = self.robot_spec
        self.observe_base_lin_vel = bool(observe_base_lin_vel)
        self.critic_observes_base_lin_vel = bool(critic_observes_base_lin_vel)
        self.critic_observes_height_scan = bool(critic_observes_height_scan)
        if self.critic_observes_height_scan and self.terrain is None:
            raise UserError(
                "critic_observes_height_scan=true needs terrain (on the flat floor the scan is the base"
                " height); set terrain: {...} or critic_observes_height_scan=false"
            )
        self.privileged_size = (3 if critic_observes_base_lin_vel else 0) + (
            len(HEIGHT_SCAN_POINTS) if critic_observes_height_scan else 0
        )
        self.gait_period_s = None if gait_period_s is None else float(gait_period_s)
        self.gait_duty = float(gait_duty)
        self.gait_offsets = np.asarray(defaults["gait_offsets"], dtype=np.float64)
        self.swing_height = float(defaults["swing_height"] if swing_height is None else swing_height)
        self.command_ranges = _command_ranges(command_ranges)
        lo_air, hi_air = (float(v) for v in air_time_window)
        if not 0.0 <= lo_air < hi_air:
            raise UserError(
                f"air_time_window=[{lo_air}, {hi_air}] must be 0 <= min < max (seconds), e.g. [0.05, 0.15]"
            )
        self.air_time_window = (lo_air, hi_air)
        self.clearance_speed_gain = float(clearance_speed_gain)
        # The curriculum shapes training batches only: a single env (evaluation, checks) always samples
        # the full command_ranges, which are what the walking goal is measured over.
        curriculum = _CommandCurriculum.from_kwargs(command_curriculum, self.command_ranges, scales)
        self.curriculum = curriculum if num_envs > 1 else None
        # Plain arrays and floats, so env snapshots (exact resume) carry the curriculum's progress.
        self.curriculum_ranges = np.array(
            self.command_ranges if self.curriculum is None else self.curriculum.start, dtype=np.float64
        )
        self.curriculum_level = 0
        self.curriculum_score_sum = 0.0
        self.curriculum_episodes = 0
        # score=relative_tracking: each episode's summed planar velocity error and commanded speed.
        self.curriculum_error_sum = np.zeros(self.num_envs)
        self.curriculum_command_sum = np.zeros(self.num_envs)
        self.curriculum_error_total = 0.0  # and their totals over the batch being scored
        self.curriculum_command_total = 0.0
        # score=directional_tracking: the same per direction of the command (DIRECTIONS).
        self.curriculum_sector_error = np.zeros((self.num_envs, len(DIRECTIONS)))
        self.curriculum_sector_command = np.zeros((self.num_envs, len(DIRECTIONS)))
        self.curriculum_sector_error_total = np.zeros(len(DIRECTIONS))
        self.curriculum_sector_command_total = np.zeros(len(DIRECTIONS))
        self.command_resample_s = float(command_resample_s)
        self.standing_fraction = float(standing_fraction)
        self.tracking_sigma = float(tracking_sigma)
        self.min_base_height = float(defaults["min_base_height"])
        self.base_height_target = float(
            defaults["base_height_target"] if base_height_target is None else base_height_target
        )
        if not self.base_height_target > 0:
            raise UserError(
                f"base_height_target={base_height_target} must be a positive height (m), e.g. 0.78, or null"
            )
        self.air_time_target = float(
            defaults["air_time_target"] if air_time_target is None else air_time_target
        )
        if self.air_time_target < 0:
            raise UserError(f"air_time_target={air_time_target} must be >= 0 (seconds), e.g. 0.25, or null")
        self.max_tilt_cos = float(np.cos(np.deg2rad(max_tilt_deg)))
        self.init_joint_noise = float(init_joint_noise)
        self.init_velocity_noise = float(init_velocity_noise)
        self.hip_joints = np.array(
            [spec.joint_names.index(j) for j in defaults["hip_joints"]], dtype=np.int64
        )
        lower = np.asarray(spec.joint_pos_lower)
        upper = np.asarray(spec.joint_pos_upper)
        self.joint_lower, self.joint_upper = lower, upper
        self.soft_lower, self.soft_upper = soft_joint_limits(lower, upper, SOFT_LIMIT_FRACTION)
        if not 0.0 < float(soft_velocity_limit) <= 1.0:
            raise UserError(
                f"soft_velocity_limit={soft_velocity_limit} must be in (0, 1] (a fraction of each joint's"
                " speed limit), e.g. 0.9"
            )
        self.soft_velocity_limits = float(soft_velocity_limit) * np.asarray(
            spec.velocity_limits, dtype=np.float64
        )
        self.standing_foot_height = standing_foot_heights(self.mj_model, spec)
        self.contact_height = self.standing_foot_height + CONTACT_MARGIN
        nf = len(spec.foot_bodies)
        self.command_timer = np.zeros(self.num_envs)
        self.foot_air_time = np.zeros((self.num_envs, nf))
        self.foot_last_contact = np.ones((self.num_envs, nf), dtype=bool)
        self._gravity_cache = _FrameCache()
        self._ground_cache = _FrameCache()
        # Terrain: each env walks one tile, (level, type); training batches move between levels by
        # legged_gym's curriculum (_update_terrain_curriculum), a single env (evaluation) draws its tile.
        self.terrain_curriculum = bool(terrain_options and terrain_options.curriculum and self.num_envs > 1)
        if self.terrain is not None:
            assert terrain_options is not None
            grid = terrain_options.grid
            # [lg] envs spread over the columns in order, levels 0..max_init_terrain_level in turn.
            self.terrain_type = np.arange(self.num_envs) * grid.types // self.num_envs
            top = (
                min(terrain_options.max_init_level, grid.levels - 1)
                if self.terrain_curriculum
                else grid.levels - 1
            )
            self.terrain_level = np.arange(self.num_envs) % (top + 1)
            self.last_root_xy = np.zeros((self.num_envs, 2))

    # -- episode start -------------------------------------------------------------------------------
    def initial_state(self, ids: np.ndarray) -> RootJointState:
        """Default pose with joint noise, random heading, small random base velocity."""
        spec, k, nj = self.robot_spec, len(ids), self.robot_spec.num_joints
        joint_pos = spec.default_pos_array + self.rng.uniform(-1.0, 1.0, size=(k, nj)) * self.init_joint_noise
        joint_pos = np.clip(joint_pos, self.joint_lower, self.joint_upper)
        root_pos = np.zeros((k, 3))
        # A centimetre of drop so joint noise never starts a foot inside the floor.
        root_pos[:, 2] = spec.base_height + 0.01
        if self.terrain is not None:
            t = self.terrain
            if not self.terrain_curriculum:  # a single env: any tile of the grid
                self.terrain_level[ids] = self.rng.integers(0, t.config.levels, size=k)
                self.terrain_type[ids] = self.rng.integers(0, t.config.types, size=k)
            origin = t.origins[self.terrain_level[ids], self.terrain_type[ids]]
            # Within TERRAIN_SPAWN_OFFSET of the tile's origin, whose height is the highest point of the
            # central square: the feet start above the ground wherever they land.
            root_pos[:, :2] = origin[:, :2] + self.rng.uniform(-1.0, 1.0, size=(k, 2)) * TERRAIN_SPAWN_OFFSET
            root_pos[:, 2] += origin[:, 2]
        quat = quat_from_yaw(self.rng.uniform(-np.pi, np.pi, size=k))
        lin = self.rng.uniform(-1.0, 1.0, size=(k, 3)) * self.init_velocity_noise
        ang = self.rng.uniform(-1.0, 1.0, size=(k, 3)) * self.init_velocity_noise
        return RootJointState(root_pos, quat, lin, ang, joint_pos, np.zeros((k, nj)))

    def reset_envs(self, ids: np.ndarray) -> None:
        """Score the ending episodes for the command curriculum, then start new ones."""
        ids = np.asarray(ids, dtype=np.int64)
        if self.curriculum is not None and len(ids):
            self._update_curriculum(ids[self.episode_step[ids] > 0])
        if self.terrain_curriculum and len(ids):
            self._update_terrain_levels(ids[self.episode_step[ids] > 0])
        super().reset_envs(ids)

    def _update_terrain_levels(self, ended: np.ndarray) -> None:
        """legged_gym's terrain curriculum: a robot that walked more than half a tile from its origin
        goes a level up; one that walked less than half the distance its command asked for over a
        full episode goes a level down; one past the last level goes to a random level."""
        if len(ended) == 0:
            return
        t = self.terrain
        assert t is not None
        origin = t.origins[self.terrain_level[ended], self.terrain_type[ended], :2]
        distance = np.linalg.norm(self.last_root_xy[ended] - origin, axis=1)
        episode_s = (self.max_episode_steps or 1000) * self.control_dt
        up = distance > t.config.tile_size / 2
        down = (distance < np.linalg.norm(self.command[ended, :2], axis=1) * episode_s * 0.5) & ~up
        level = self.terrain_level[ended] + up.astype(np.int64) - down.astype(np.int64)
        solved = level >= t.config.levels
        level = np.where(solved, self.rng.integers(0, t.config.levels, size=len(ended)), np.maximum(level, 0))
        self.terrain_level[ended] = level

    def _update_curriculum(self, ended: np.ndarray) -> None:
        """Once a batch of ended episodes (as many as there are envs) scores more than `threshold`,
        widen every range by its step. score=tracking_reward is legged_gym's rule: the
        tracking_lin_vel term per second of the full episode over its scale. score=relative_tracking:
        1 - (summed planar velocity error) / (summed commanded planar speed), pooled over the batch,
        a fall's missing steps counted as not moving; 0 for standing still whatever the commands are,
        1 for perfect tracking. score=directional_tracking: the same per direction of the command
        (forward, left, backward, right; commands under DIRECTION_MIN_SPEED left out), and the worst
        direction's score decides."""
        cur = self.curriculum
        assert cur is not None
        if len(ended) == 0:
            return
        max_steps = self.max_episode_steps or 1000
        if cur.score == "relative_tracking":
            steps = self.episode_step[ended].astype(np.float64)
            missing = np.maximum(max_steps - steps, 0.0)
            command = self.curriculum_command_sum[ended]
            padding = command / np.maximum(steps, 1.0) * missing  # the mean commanded speed, not moved
            error = self.curriculum_error_sum[ended] + padding
            command = command + padding
            # Pooled over the batch (not a mean of per-episode ratios, which episodes of near-zero
            # commands would dominate); standing commands add their drift to the error only.
            self.curriculum_error_total += float(error.sum())
            self.curriculum_command_total += float(command.sum())
            self.curriculum_episodes += len(ended)
            if self.curriculum_episodes < self.num_envs:
                return
            self.curriculum_score_sum = self.curriculum_episodes * (
                1.0 - self.curriculum_error_total / max(self.curriculum_command_total, 1e-9)
            )
            self.curriculum_error_total = self.curriculum_command_total = 0.0
        elif cur.score == "directional_tracking":
            steps = self.episode_step[ended].astype(np.float64)
            missing = np.maximum(max_steps - steps, 0.0)[:, None]
            command = self.curriculum_sector_command[ended]
            padding = command / np.maximum(steps, 1.0)[:, None] * missing
            self.curriculum_sector_error_total += (self.curriculum_sector_error[ended] + padding).sum(axis=0)
            self.curriculum_sector_command_total += (command + padding).sum(axis=0)
            self.curriculum_episodes += len(ended)
            if self.curriculum_episodes < self.num_envs:
                return
            scores = self.direction_scores()
            # No direction with enough commanded distance (all commands slow): nothing to widen on.
            self.curriculum_score_sum = self.curriculum_episodes * (
                float(scores.min()) if scores.size else 0.0
            )
            self.curriculum_sector_error_total[:] = 0.0
            self.curriculum_sector_command_total[:] = 0.0
        else:
            col = self.reward_names.index("tracking_lin_vel")
            episode_s = max_steps * self.control_dt
            per_second = self.term_sums[ended, col] / (episode_s * self.reward_scales[col])
            self.curriculum_score_sum += float(per_second.sum())
            self.curriculum_episodes += len(ended)
        if self.curriculum_episodes < self.num_envs:
            return
        if self.curriculum_score_sum / self.curriculum_episodes > cur.threshold:
            full = np.asarray(self.command_ranges)
            self.curriculum_ranges = np.stack(
                (
                    np.maximum(self.curriculum_ranges[:, 0] - cur.step, full[:, 0]),
                    np.minimum(self.curriculum_ranges[:, 1] + cur.step, full[:, 1]),
                ),
                axis=1,
            )
            self.curriculum_level += 1
        self.curriculum_score_sum, self.curriculum_episodes = 0.0, 0

    def direction_scores(self) -> np.ndarray:
        """Relative tracking, 1 - summed error / summed commanded speed, of each direction in the batch
        being scored that holds at least DIRECTION_MIN_SHARE of the commanded distance (the others are
        left out: at the start a curriculum may command hardly any sideways motion)."""
        command = self.curriculum_sector_command_total
        scored = command >= DIRECTION_MIN_SHARE * max(float(command.sum()), 1e-9)
        return 1.0 - self.curriculum_sector_error_total[scored] / command[scored]

    def on_reset(self, ids: np.ndarray) -> None:
        """New commands, feet on the ground."""
        self._resample_commands(ids)
        self.curriculum_error_sum[ids] = 0.0
        self.curriculum_command_sum[ids] = 0.0
        self.curriculum_sector_error[ids] = 0.0
        self.curriculum_sector_command[ids] = 0.0
        self.foot_air_time[ids] = 0.0
        self.foot_last_contact[ids] = True

    def gait_phase(self) -> np.ndarray | None:
        """Each env's position in its gait cycle, in [0, 1), after its control steps so far in the
        episode (robolearn.robots.observations.clock_phase, which the deploy runtime calls too)."""
        if self.gait_period_s is None:
            return None
        return clock_phase(self.episode_step, self.control_dt, self.gait_period_s)

    def stance_target(self, steps: np.ndarray) -> np.ndarray:
        """(N, nf) which feet the clock wants on the ground after `steps` control steps: a foot stands
        for the first gait_duty of its own cycle (the phase plus the foot's offset); all of them
        without a clock."""
        if self.gait_period_s is None:
            return np.ones((self.num_envs, len(self.gait_offsets)), dtype=bool)
        phase = clock_phase(steps, self.control_dt, self.gait_period_s)
        return np.mod(phase[:, None] + self.gait_offsets, 1.0) < self.gait_duty

    def _resample_commands(self, ids: np.ndarray) -> None:
        k = len(ids)
        lo, hi = self.curriculum_ranges[:, 0], self.curriculum_ranges[:, 1]
        cmd = self.rng.uniform(lo, hi, size=(k, 3))
        standing = self.rng.uniform(size=k) < self.standing_fraction
        cmd[standing] = 0.0
        self.command[ids] = cmd
        self.command_timer[ids] = self.command_resample_s

    def extra_observation(self, frame: SimFrame, ids: np.ndarray) -> np.ndarray | None:
        """With observe_base_lin_vel: the base's linear velocity in its own frame, scaled by 2 and
        noised as legged_gym's (privileged: the robot's IMU does not measure it, so a policy that
        reads it cannot be exported for the hardware without a velocity estimator)."""
        if not self.observe_base_lin_vel:
            return None
        vel = quat_rotate_inverse_rows(frame.root_quat[ids], frame.root_lin_vel[ids]) * LIN_VEL_OBS_SCALE
        if self._noisy_obs:
            noise = LIN_VEL_OBS_NOISE * self.randomization.obs_noise * LIN_VEL_OBS_SCALE
            vel = vel + self.rng.uniform(-noise, noise, size=vel.shape)
        return vel

    def privileged_observation(self, frame: SimFrame, ids: np.ndarray) -> np.ndarray | None:
        """Values for the critic only (an asymmetric actor-critic: the actor stays deployable on a robot
        that measures neither): with critic_observes_base_lin_vel the base's linear velocity in its
        own frame, scaled by 2, without noise; then with critic_observes_height_scan the height scan."""
        if not self.privileged_size:
            return None
        parts = []
        if self.critic_observes_base_lin_vel:
            parts.append(
                quat_rotate_inverse_rows(frame.root_quat[ids], frame.root_lin_vel[ids]) * LIN_VEL_OBS_SCALE
            )
        if self.critic_observes_height_scan:
            parts.append(self.height_scan(frame, ids))
        return parts[0] if len(parts) == 1 else np.concatenate(parts, axis=1)

    def height_scan(self, frame: SimFrame, ids: np.ndarray) -> np.ndarray:
        """legged_gym's measured heights: the ground at HEIGHT_SCAN_POINTS around the base (turned with
        its heading), as clip(base z - 0.5 - ground, -1, 1) x 5 (its obs_scales.height_measurements)."""
        assert self.terrain is not None
        yaw = yaw_of(frame.root_quat[ids])
        c, s = np.cos(yaw)[:, None], np.sin(yaw)[:, None]
        px, py = HEIGHT_SCAN_POINTS[:, 0], HEIGHT_SCAN_POINTS[:, 1]
        xy = np.stack((c * px - s * py, s * px + c * py), axis=-1) + frame.root_pos[ids, None, :2]
        ground = self.terrain.height_at(xy)
        return np.clip(frame.root_pos[ids, 2:3] - 0.5 - ground, -1.0, 1.0) * HEIGHT_SCAN_SCALE

    # -- step ----------------------------------------------------------------------------------------
    def _gravity(self, frame: SimFrame) -> np.ndarray:
        """gravity_in_body of the frame's base, computed once per frame (fallen and rewards read it)."""
        cache = self._gravity_cache
        if cache.frame is not frame:
            cache.frame, cache.value = frame, gravity_in_body(frame.root_quat)
        return cache.value

    def _ground(self, frame: SimFrame) -> np.ndarray:
        """(N, 1 + feet) ground height under the base and under each foot (0 on the flat floor), once
        per frame; the terrain case also keeps the base's position for the terrain curriculum."""
        cache = self._ground_cache
        if self.terrain is None:
            if cache.value.shape != (self.num_envs, 1 + frame.body_pos.shape[1]):
                cache.value = np.zeros((self.num_envs, 1 + frame.body_pos.shape[1]))
            return cache.value  # flat floor at 0: one array of zeros, never written
        if cache.frame is not frame:
            xy = np.concatenate((frame.root_pos[:, None, :2], frame.body_pos[:, :, :2]), axis=1)
            cache.frame, cache.value = frame, self.terrain.height_at(xy)
            self.last_root_xy = np.array(frame.root_pos[:, :2], dtype=np.float64)
        return cache.value

    def fallen(self, frame: SimFrame) -> np.ndarray:
        """Base tilted past max_tilt_deg or lower than the robot's minimum base height (above the
        ground under it)."""
        gravity_z = self._gravity(frame)[:, 2]
        height = frame.root_pos[:, 2] - self._ground(frame)[:, 0]
        return (gravity_z > -self.max_tilt_cos) | (height < self.min_base_height)

    def reward_context(
        self, frame: SimFrame, action: np.ndarray, torque: np.ndarray, terminated: np.ndarray
    ) -> LocomotionContext:
        """Base velocities in the base frame, foot contacts and air time, joint state and actions."""
        quat = frame.root_quat
        ground = self._ground(frame)
        foot_z = frame.body_pos[:, :, 2] - ground[:, 1:]  # above the ground under each foot
        contact = foot_z < self.contact_height
        # legged_gym's filter: a touch-down counts on either of two consecutive contact readings.
        contact_filt = contact | self.foot_last_contact
        first_contact = (self.foot_air_time > 0.0) & contact_filt
        self.foot_air_time += self.control_dt
        air_time = self.foot_air_time.copy()
        self.foot_air_time *= ~contact_filt
        self.foot_last_contact = contact
        base_lin_vel = quat_rotate_inverse_rows(quat, frame.root_lin_vel)
        if self.curriculum is not None and self.curriculum.score == "relative_tracking":
            planar = self.command[:, :2]
            self.curriculum_error_sum += np.linalg.norm(planar - base_lin_vel[:, :2], axis=1)
            self.curriculum_command_sum += np.linalg.norm(planar, axis=1)
        elif self.curriculum is not None and self.curriculum.score == "directional_tracking":
            planar = self.command[:, :2]
            speed = np.linalg.norm(planar, axis=1)
            error = np.linalg.norm(planar - base_lin_vel[:, :2], axis=1)
            moving = speed >= DIRECTION_MIN_SPEED
            rows = np.flatnonzero(moving)
            sector = command_direction(planar[rows])
            np.add.at(self.curriculum_sector_error, (rows, sector), error[rows])
            np.add.at(self.curriculum_sector_command, (rows, sector), speed[rows])
        return LocomotionContext(
            command=self.command,
            base_lin_vel=base_lin_vel,
            base_ang_vel=frame.root_ang_vel,
            projected_gravity=self._gravity(frame),
            base_height=frame.root_pos[:, 2] - ground[:, 0],
            base_height_target=self.base_height_target,
            joint_pos=frame.joint_pos,
            joint_vel=frame.joint_vel,
            joint_acc=(frame.joint_vel - self.last_joint_vel) / self.control_dt,
            default_joint_pos=self.robot_spec.default_pos_array,
            soft_lower=self.soft_lower,
            soft_upper=self.soft_upper,
            soft_velocity_limits=self.soft_velocity_limits,
            torque=torque,
            action=action,
            last_action=self.last_action,
            hip_joints=self.hip_joints,
            foot_contact=contact,
            foot_first_contact=first_contact,
            foot_air_time=air_time,
            foot_lin_vel=frame.body_lin_vel,
            air_time_target=self.air_time_target,
            tracking_sigma=self.tracking_sigma,
            terminated=terminated,
            # The clock the policy observed when it chose this action: one step before this one.
            foot_stance_target=self.stance_target(self.episode_step - 1),
            foot_height=foot_z - self.standing_foot_height,
            swing_height=self.swing_height,
            air_time_window=self.air_time_window,
            clearance_speed_gain=self.clearance_speed_gain,
        )

    def step_metrics(self, ctx: LocomotionContext) -> dict[str, np.ndarray]:
        """Planar velocity error |v*_xy - v_xy| (m/s) and yaw-rate error |ω*_z - ω_z| (rad/s)."""
        return {
            "lin_vel_error": np.linalg.norm(ctx.command[:, :2] - ctx.base_lin_vel[:, :2], axis=1),
            "ang_vel_error": np.abs(ctx.command[:, 2] - ctx.base_ang_vel[:, 2]),
        }

    def after_step(self, frame: SimFrame) -> None:
        """Resample the commands whose time is up."""
        self.command_timer -= self.control_dt
        due = np.flatnonzero(self.command_timer <= 0.0)
        if len(due):
            self._resample_commands(due)


CURRICULUM_SCORES = ("tracking_reward", "relative_tracking", "directional_tracking")
# score=directional_tracking scores relative tracking per direction of the planar command and takes
# the worst: a policy that only walks forwards does not widen the ranges it cannot walk backwards in.
DIRECTIONS = ("forward", "left", "backward", "right")
DIRECTION_MIN_SPEED = 0.2  # m/s: slower commands are mostly sway and drift, not a direction
DIRECTION_MIN_SHARE = 0.05  # a direction is scored once it has this share of the commanded distance


def command_direction(planar: np.ndarray) -> np.ndarray:
    """(k,) index into DIRECTIONS of each (vx, vy) command: the 90-degree sector its heading lies in
    (forward: within 45 degrees of +x; boundaries go to forward/backward)."""
    angle = np.arctan2(planar[:, 1], planar[:, 0])
    quarter = np.pi / 4
    out = np.full(len(planar), 1, dtype=np.int64)  # left: 45..135 degrees
    out[np.abs(angle) <= quarter] = 0
    out[np.abs(angle) >= 3 * quarter] = 2
    out[(angle < -quarter) & (angle > -3 * quarter)] = 3
    return out


class _CommandCurriculum(NamedTuple):
    """Start ranges (3, 2), the per-key widening step (3,), the score that earns it and its threshold."""

    start: np.ndarray
    step: np.ndarray
    threshold: float
    score: str = "tracking_reward"

    @classmethod
    def from_kwargs(
        cls, cfg: Mapping[str, Any] | None, full: tuple[tuple[float, float], ...], scales: Mapping[str, float]
    ) -> _CommandCurriculum | None:
        """Parse command_curriculum={start: {key: [lo, hi]}, step: {key: w}, threshold: f,
        score: tracking_reward|relative_tracking|directional_tracking} (None: off)."""
        if not cfg:
            return None
        unknown = sorted(set(cfg) - {"start", "step", "threshold", "score"})
        if unknown:
            raise UserError(
                f"command_curriculum.{unknown[0]} is not an option; options: start, step, threshold, score"
            )
        score = str(cfg.get("score", "tracking_reward"))
        if score not in CURRICULUM_SCORES:
            raise UserError(
                f"command_curriculum.score={score} is not a score{close_matches(score, CURRICULUM_SCORES)}; "
                f"choose one of: {', '.join(CURRICULUM_SCORES)}"
            )
        if float(scales.get("tracking_lin_vel", 0.0)) <= 0.0:
            raise UserError("command_curriculum grows on tracking_lin_vel: give it a positive reward scale")
        start = np.array(_command_ranges(cfg.get("start") or {}), dtype=np.float64)
        full_arr = np.asarray(full)
        for k, key in enumerate(DEFAULT_COMMAND_RANGES):
            if start[k, 0] < full_arr[k, 0] or start[k, 1] > full_arr[k, 1]:
                raise UserError(
                    f"command_curriculum.start.{key}={start[k].tolist()} lies outside command_ranges.{key}="
                    f"{full_arr[k].tolist()}; the curriculum grows towards command_ranges"
                )
        steps = dict.fromkeys(DEFAULT_COMMAND_RANGES, 0.0)
        for key, value in (cfg.get("step") or {}).items():
            if key not in steps:
                raise UserError(
                    f"unknown command_curriculum.step key '{key}'{close_matches(str(key), steps)}; "
                    f"keys: {', '.join(steps)}"
                )
            if float(value) < 0:
                raise UserError(f"command_curriculum.step.{key}={value} must be >= 0")
            steps[key] = float(value)
        threshold = float(cfg.get("threshold", 0.8))
        if not 0.0 < threshold < 1.0:
            raise UserError(f"command_curriculum.threshold={threshold} must be in (0, 1), e.g. 0.8")
        return cls(start, np.array(list(steps.values())), threshold, score)


def _command_ranges(ranges: Mapping[str, Any] | None) -> tuple[tuple[float, float], ...]:
    merged = dict(DEFAULT_COMMAND_RANGES)
    for key, value in (ranges or {}).items():
        if key not in merged:
            raise UserError(
                f"unknown command range '{key}'{close_matches(str(key), merged)}; keys: {', '.join(merged)}"
            )
        lo, hi = (float(v) for v in value)
        if lo > hi:
            raise UserError(f"command_ranges.{key}=[{lo}, {hi}] has min > max")
        merged[key] = (lo, hi)
    return tuple(merged[k] for k in DEFAULT_COMMAND_RANGES)
