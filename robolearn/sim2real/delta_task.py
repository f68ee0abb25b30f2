"""ASAP's delta-action environment (train_delta; He et al. 2025, "ASAP", Sec. 3 and 4).

The nominal simulator, reset to a recorded state of the target (robolearn.sim2real.recordings), replays
the action the policy sent there plus the agent's delta, a' = a + scale x mask x d
(robolearn.sim2real.delta), and is rewarded for landing where the target did: for each of the next
`horizon` policy steps, exponentials of the squared errors between the simulated and the recorded
state (joint positions and velocities, base position, orientation and linear and angular velocity),
minus a penalty on the delta. The agent observes the simulated state (what it would see during
fine-tuning: base angular velocity, gravity in the body frame, joint positions and velocities, its
last delta, the base's body-frame linear velocity), the recorded action it is to correct and, with
previous_action (the default), the action recorded the step before, which a command delay executes.
It is a RobotTask, so robolearn.envs.vector.BatchedVecEnv batches it for any agent; ASAP's
train_delta stage builds it from the dataset a collect stage wrote.

Reward scales and tolerances are ours, after the state-matching terms the paper's delta-action reward is
built from (body position, rotation and velocities, joint positions and velocities) and its penalty
on the delta's magnitude; each state term is exp(-MSE / tolerance²), the tolerance being the RMS
error (per joint for the joint terms) at which it is worth e^-1.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from robolearn.envs.backends.base import RootJointState, SimFrame
from robolearn.envs.tasks.base import OBS_CLIP, RobotTask
from robolearn.envs.tasks.rotations import quat_angle_between, quat_rotate_inverse_rows
from robolearn.errors import UserError
from robolearn.robots.observations import ObsTerm, build_observation
from robolearn.robots.spec import RobotSpec
from robolearn.robots.state import RobotState
from robolearn.sim2real.delta import DELTA_CLIP, apply_delta, joint_mask
from robolearn.sim2real.recordings import DeltaSegment, load_delta_dataset

DELTA_TERMS: tuple[ObsTerm, ...] = (
    ObsTerm("base_ang_vel", scale=0.25),
    ObsTerm("projected_gravity", scale=1.0),
    ObsTerm("joint_pos_rel", scale=1.0),
    ObsTerm("joint_vel", scale=0.05),
    ObsTerm("last_action", scale=1.0),
)
CALIBRATION_STARTS = 1024  # recorded starts bare_replay_errors replays
DEFAULT_SCALES = {
    "joint_pos": 1.0,
    "joint_vel": 0.5,
    "base_pos": 0.5,
    "base_rot": 0.5,
    "base_lin_vel": 0.5,
    "base_ang_vel": 0.5,
    "delta_action": -0.01,
}
# The RMS error (per joint for the joint terms) at which a term is worth e^-1. On the 0.65 x Kp
# benchmark recording (benchmarks/asap_delta.py) the bare replay's median errors sit near these and
# the analytic delta's about a tenth of them.
DEFAULT_TOLERANCES = {
    "joint_pos": 0.01,  # rad
    "joint_vel": 0.2,  # rad/s
    "base_pos": 0.005,  # m
    "base_rot": 0.005,  # rad
    "base_lin_vel": 0.05,  # m/s
    "base_ang_vel": 0.1,  # rad/s
}


def delta_observation(
    spec: RobotSpec,
    frame: SimFrame,
    rows: np.ndarray,
    last_delta: np.ndarray,
    action: np.ndarray,
    previous_action: np.ndarray | None = None,
) -> np.ndarray:
    """(k, obs) float32 input of a delta-action model for envs `rows` of a frame: DELTA_TERMS of the
    simulated state (its last delta as last_action), the base's body-frame linear velocity x 2, the
    action to correct, then (when given) the policy's action of the step before: with it a delta can
    express a command delay (a one-period delay's delta is previous - action). The one construction
    train_delta (DeltaActionTask) and finetune (RobotTask's delta_action) use; the simulator's state
    without noise."""
    state = RobotState(
        joint_pos=frame.joint_pos[rows],
        joint_vel=frame.joint_vel[rows],
        base_quat=frame.root_quat[rows],
        gyro=frame.root_ang_vel[rows],
        command=np.zeros((len(rows), 3)),
        last_action=last_delta,
    )
    obs = build_observation(state, spec, DELTA_TERMS, rng=None, clip=OBS_CLIP)
    lin = quat_rotate_inverse_rows(frame.root_quat[rows], frame.root_lin_vel[rows]) * 2.0
    parts = [lin, action] if previous_action is None else [lin, action, previous_action]
    extra = np.clip(np.concatenate(parts, axis=1), -OBS_CLIP, OBS_CLIP).astype(np.float32)
    return np.concatenate([obs, extra], axis=1)


class DeltaContext(NamedTuple):
    """Mean squared errors (per joint for the joint terms) of the simulated state against the
    recorded next state, and the delta."""

    joint_pos: np.ndarray  # (N,)
    joint_vel: np.ndarray
    base_pos: np.ndarray
    base_rot: np.ndarray
    base_lin_vel: np.ndarray
    base_ang_vel: np.ndarray
    delta: np.ndarray  # (N, nj) the agent's clipped output
    tolerances: Mapping[str, float]
    terminated: np.ndarray


def _exp_term(name: str) -> Any:
    def term(c: DeltaContext) -> np.ndarray:
        return np.exp(-getattr(c, name) / c.tolerances[name] ** 2)

    term.__name__ = name
    term.__doc__ = f"exp(-squared {name.replace('_', ' ')} error / its tolerance²)"
    return term


def delta_action(c: DeltaContext) -> np.ndarray:
    """Squared norm of the delta (a penalty: negative scale)."""
    return np.square(c.delta).sum(axis=1)


def delta_termination(c: DeltaContext) -> np.ndarray:
    """1 where the simulated base drifted past max_base_error from the recording."""
    return c.terminated.astype(np.float64)


DELTA_REWARDS = {
    **{name: _exp_term(name) for name in DEFAULT_TOLERANCES},
    "delta_action": delta_action,
    "termination": delta_termination,
}


class DeltaActionTask(RobotTask):
    """Learn a' = a + scale x d so the nominal simulator reproduces a target's recorded transitions."""

    reward_functions = DELTA_REWARDS

    def __init__(
        self,
        dataset: str | None = None,
        robot: str = "go2",
        num_envs: int = 1,
        backend: str = "mujoco",
        threads: int = 1,
        device: str | None = None,
        model_path: str | None = None,
        horizon: int = 4,
        delta_scale: float = 0.5,
        delta_joints: Sequence[str] | None = None,
        reward_scales: Mapping[str, float] | None = None,
        reward_tolerances: Mapping[str, float] | None = None,
        tolerances_from_recording: bool = True,
        max_base_error: float = 0.3,
        previous_action: bool = True,
        randomization: Mapping[str, Any] | None = None,
        max_episode_steps: int | None = None,
        render_mode: str | None = None,
        residual_dynamics: Mapping[str, Any] | None = None,
    ) -> None:
        if dataset is None:
            raise UserError(
                "the delta-action task needs env.kwargs.dataset=<delta dataset folder> (a recording on the"
                " target: robolearn.sim2real.recordings.write_delta_dataset)"
            )
        for name, flag in (
            ("previous_action", previous_action),
            ("tolerances_from_recording", tolerances_from_recording),
        ):
            if not isinstance(flag, bool):
                raise UserError(f"{name}={flag!r} must be true or false")
        if isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1:
            raise UserError(f"horizon={horizon!r} must be a whole number of policy steps >= 1, e.g. 4")
        segments, provenance = load_delta_dataset(dataset, robot)
        starts = [(i, t) for i, seg in enumerate(segments) for t in range(seg.steps - horizon + 1)]
        if not starts:
            longest = max((s.steps for s in segments), default=0)
            raise UserError(
                f"{dataset}: no recorded stretch has {horizon} steps (the longest has {longest});"
                f" lower horizon or record longer"
            )
        given_tolerances = {str(k): float(v) for k, v in (reward_tolerances or {}).items()}
        tolerances = {**DEFAULT_TOLERANCES, **given_tolerances}
        unknown = sorted(set(tolerances) - set(DEFAULT_TOLERANCES))
        if unknown or any(v <= 0 for v in tolerances.values()):
            raise UserError(
                f"reward_tolerances={dict(reward_tolerances or {})} must be positive RMS errors of:"
                f" {', '.join(DEFAULT_TOLERANCES)}"
            )
        scales = {**DEFAULT_SCALES, **{str(k): float(v) for k, v in (reward_scales or {}).items()}}
        super().__init__(
            robot=robot,
            proprio_terms=DELTA_TERMS,
            reward_scales=scales,
            num_envs=num_envs,
            backend=backend,
            threads=threads,
            device=device,
            model_path=model_path,
            randomization=randomization,
            action_clip=DELTA_CLIP,
            max_episode_steps=horizon if max_episode_steps is None else min(horizon, max_episode_steps),
            render_mode=render_mode,
            extra_obs_size=3 + len(get_spec_joints(robot)) * (2 if previous_action else 1),
            residual_dynamics=residual_dynamics,
        )
        spec = self.robot_spec
        if abs(float(provenance["control_dt"]) - spec.control_dt) > 1e-9:
            raise UserError(
                f"{dataset} was recorded at control_dt={provenance['control_dt']} s but the {robot}'s is"
                f" {spec.control_dt} s"
            )
        for key, ours in (
            ("action_scale", spec.action_scale_array),
            ("default_pose", spec.default_pos_array),
        ):
            if not np.allclose(np.asarray(provenance[key], dtype=np.float64), ours):
                raise UserError(
                    f"{dataset} was recorded with another {key} than the {robot}'s model here"
                    f" ({list(provenance[key])} against {ours.tolist()}); record it again on this robot"
                )
        self.segments: list[DeltaSegment] = segments
        self._index_recording()
        self.provenance = provenance
        self.starts = np.asarray(starts, dtype=np.int64)
        self.horizon = int(horizon)
        self.delta_scale = float(delta_scale)
        self.delta_mask = joint_mask(spec, delta_joints)
        apply_delta(np.zeros(1), np.zeros(1), self.delta_scale, np.ones(1))  # checks the scale
        self.reward_tolerances = tolerances
        self.max_base_error = float(max_base_error)
        layout = provenance["layout"]
        self._root_q = int(layout["root_qpos_adr"])
        self._root_v = int(layout["root_qvel_adr"])
        self._joint_q = np.asarray(layout["joint_qpos_adr"], dtype=np.int64)
        self._joint_v = np.asarray(layout["joint_qvel_adr"], dtype=np.int64)
        n = self.num_envs
        self.segment = np.zeros(n, dtype=np.int64)  # which recorded stretch each env replays
        self.origin = np.zeros(n, dtype=np.int64)  # the step it was reset to
        self.recorded_action = np.zeros((n, spec.num_joints))
        self.previous_action = bool(previous_action)
        self.previous_recorded = np.zeros((n, spec.num_joints))  # the action recorded the step before
        self._forced_starts: np.ndarray | None = None
        if tolerances_from_recording:
            self.reward_tolerances = {**self.bare_replay_errors(), **given_tolerances}

    def reset_to(self, ids: np.ndarray, starts: np.ndarray) -> None:
        """Start envs ids at the given (stretch, step) rows of `starts` (evaluation over every start)."""
        self._forced_starts = np.asarray(starts, dtype=np.int64).reshape(len(ids), 2)
        try:
            self.reset_envs(ids)
        finally:
            self._forced_starts = None

    def bare_replay_errors(self) -> dict[str, float]:
        """Each state term's RMS error (per joint for the joint terms) when the recorded actions are
        replayed without a delta for `horizon` steps from up to CALIBRATION_STARTS starts spread evenly
        over the recording (in batches of num_envs, so the figure does not depend on it): the
        tolerances_from_recording default, under which the bare replay earns e^-1 on every term
        whatever the mismatch. Fixed tolerances flatten a term whose errors are many times its
        tolerance (exp(-11) for the joint positions of a walking recording with a command delay
        against 0.01 rad). Leaves every env to be reset."""
        n, nj = self.num_envs, self.robot_spec.num_joints
        count = min(len(self.starts), CALIBRATION_STARTS)
        starts = self.starts[np.linspace(0, len(self.starts) - 1, count).round().astype(np.int64)]
        sums = dict.fromkeys(DEFAULT_TOLERANCES, 0.0)
        zero = np.zeros((n, nj))
        for first in range(0, count, n):
            chunk = starts[first : first + n]
            self.reset_to(self._all_ids, chunk[np.arange(n) % len(chunk)])  # the last batch repeats
            for _ in range(self.horizon):
                self.step_envs(zero)
                ctx = self.reward_context(self.backend.frame(), zero, zero, np.zeros(n, dtype=bool))
                for name in sums:
                    sums[name] += float(np.sum(getattr(ctx, name)[: len(chunk)]))
        return {
            name: max(float(np.sqrt(total / (count * self.horizon))), 1e-6) for name, total in sums.items()
        }

    # -- the recording ---------------------------------------------------------------------------
    def _index_recording(self) -> None:
        """Every stretch's states and actions in flat arrays, with each stretch's first row."""
        self._qpos_all = np.concatenate([seg.qpos for seg in self.segments])
        self._qvel_all = np.concatenate([seg.qvel for seg in self.segments])
        self._actions_all = np.concatenate([seg.actions for seg in self.segments]).astype(np.float64)
        self._state_row = np.cumsum([0] + [seg.steps + 1 for seg in self.segments])[:-1]
        self._action_row = np.cumsum([0] + [seg.steps for seg in self.segments])[:-1]

    def _recorded(self, ids: np.ndarray, offset: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(qpos, qvel) the target had `offset` steps after each env's origin."""
        rows = self._state_row[self.segment[ids]] + self.origin[ids] + offset
        return self._qpos_all[rows], self._qvel_all[rows]

    def action_before_start(self, ids: np.ndarray, back: int = 1) -> np.ndarray:
        """The action recorded `back` steps before each env's start (the stretch's first action
        stands in before the stretch began)."""
        return self._actions_all[self._action_row[self.segment[ids]] + np.maximum(self.origin[ids] - back, 0)]

    def _load_actions(self, ids: np.ndarray) -> None:
        first = self._action_row[self.segment[ids]]
        step = self.origin[ids] + self.episode_step[ids]
        self.recorded_action[ids] = self._actions_all[first + step]
        # The stretch's first action stands in before it began, as in action_before_start.
        self.previous_recorded[ids] = self._actions_all[first + np.maximum(step - 1, 0)]

    # -- RobotTask hooks -------------------------------------------------------------------------
    def initial_state(self, ids: np.ndarray) -> RootJointState:
        """A recorded state of the target, drawn uniformly over every start with `horizon` steps after it."""
        if self._forced_starts is not None:
            pick = self._forced_starts
        else:
            pick = self.starts[self.rng.integers(0, len(self.starts), size=len(ids))]
        self.segment[ids], self.origin[ids] = pick[:, 0], pick[:, 1]
        qpos, qvel = self._recorded(ids, np.zeros(len(ids), dtype=np.int64))
        r, v = self._root_q, self._root_v
        return RootJointState(
            root_pos=qpos[:, r : r + 3],
            root_quat=qpos[:, r + 3 : r + 7],
            root_lin_vel=qvel[:, v : v + 3],
            root_ang_vel=qvel[:, v + 3 : v + 6],
            joint_pos=qpos[:, self._joint_q],
            joint_vel=qvel[:, self._joint_v],
        )

    def on_reset(self, ids: np.ndarray) -> None:
        """The recorded action of each new episode's first step; with an action delay (a SysID
        candidate's or the oracle's randomization.action_delay), the actions recorded before the start
        fill the delay line, so the first steps replay what the target's motors were executing, not
        zeros (the stretch's first action stands in before its start)."""
        self._load_actions(ids)
        if self.frozen_residual is not None:  # the residual model's input: the action before the start
            self.previous_sent[ids] = self.action_before_start(ids)
        length = self.action_history.shape[1]
        for back in range(1, length):
            self.action_history[ids, (self.history_head + 1 - back) % length] = self.action_before_start(
                ids, back
            )

    def robot_action(self, action: np.ndarray) -> np.ndarray:
        """The recorded action plus the scaled delta (robolearn.sim2real.delta.apply_delta)."""
        return apply_delta(self.recorded_action, action, self.delta_scale, self.delta_mask)

    def observe(self, frame: SimFrame, ids: np.ndarray | None = None) -> np.ndarray:
        """robolearn.sim2real.delta_task.delta_observation of envs ids (all by default)."""
        rows = self._all_ids if ids is None else np.asarray(ids, dtype=np.int64)
        previous = self.previous_recorded[rows] if self.previous_action else None
        return delta_observation(
            self.robot_spec, frame, rows, self.last_action[rows], self.recorded_action[rows], previous
        )

    def reward_context(
        self, frame: SimFrame, action: np.ndarray, torque: np.ndarray, terminated: np.ndarray
    ) -> DeltaContext:
        """Errors against the recorded state one step on (episode_step already counts this step)."""
        ids = self._all_ids
        qpos, qvel = self._recorded(ids, self.episode_step)
        r, v = self._root_q, self._root_v
        base_err = np.square(frame.root_pos - qpos[:, r : r + 3]).sum(axis=1)
        return DeltaContext(
            joint_pos=np.square(frame.joint_pos - qpos[:, self._joint_q]).mean(axis=1),
            joint_vel=np.square(frame.joint_vel - qvel[:, self._joint_v]).mean(axis=1),
            base_pos=base_err,
            base_rot=np.square(quat_angle_between(frame.root_quat, qpos[:, r + 3 : r + 7])),
            base_lin_vel=np.square(frame.root_lin_vel - qvel[:, v : v + 3]).sum(axis=1),
            base_ang_vel=np.square(frame.root_ang_vel - qvel[:, v + 3 : v + 6]).sum(axis=1),
            delta=action,
            tolerances=self.reward_tolerances,
            terminated=terminated,
        )

    def fallen(self, frame: SimFrame) -> np.ndarray:
        """The simulated base drifted more than max_base_error (m) from the recording."""
        qpos, _ = self._recorded(self._all_ids, np.minimum(self.episode_step, self.horizon))
        r = self._root_q
        return np.linalg.norm(frame.root_pos - qpos[:, r : r + 3], axis=1) > self.max_base_error

    def after_step(self, frame: SimFrame) -> None:
        """The recorded action of the next step (the last step of a stretch keeps its own)."""
        ids = self._all_ids[self.episode_step < self.horizon]
        if len(ids):
            self._load_actions(ids)

    def step_metrics(self, ctx: DeltaContext) -> dict[str, np.ndarray]:
        """Root-mean-square joint position error (rad) and base position error (m) against the recording."""
        return {"joint_pos_error": np.sqrt(ctx.joint_pos), "base_pos_error": np.sqrt(ctx.base_pos)}


def get_spec_joints(robot: str) -> tuple[str, ...]:
    """The robot's joint names (for the observation's size before the spec is built)."""
    from robolearn.robots.registry import get_robot_spec

    return tuple(get_robot_spec(robot).joint_names)
