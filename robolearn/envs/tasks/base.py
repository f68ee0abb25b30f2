"""RobotTask: task logic written once over batched numpy arrays (leading env axis) on any backend.

A task instance simulates num_envs robots. It is also a gymnasium.Env: with num_envs=1 its
reset()/step() are the single-robot API that gymnasium.make returns; the vectorised adapters in
robolearn.envs.vector call the batched reset_envs()/step_envs() instead.

Every piece of mutable state is a plain attribute (numpy arrays, ints, one numpy Generator), and a
single env on the mujoco backend exposes its MjData as `data`, so robolearn.envs.state snapshots it
without help. Subclasses supply the robot's initial state, observation extras, reward terms and
termination; this class does actions (clip, delay, PD targets), physics, domain randomisation,
pushes, reward weighting and episode bookkeeping.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from typing import Any, ClassVar

import gymnasium as gym
import mujoco
import numpy as np

from robolearn.envs.backends import make_backend
from robolearn.envs.backends.base import DynamicsParams, RootJointState, SimFrame
from robolearn.envs.backends.mujoco_backend import MujocoBackend
from robolearn.envs.tasks.randomization import Randomization, uniform
from robolearn.envs.terrain import Terrain, model_with_terrain
from robolearn.errors import UserError, close_matches
from robolearn.robots.go2 import go2_spec
from robolearn.robots.model import check_model, default_model_path, load_model, set_joint_armature
from robolearn.robots.observations import ObsTerm, action_to_joint_targets, build_observation
from robolearn.robots.registry import get_robot_spec
from robolearn.robots.spec import RobotSpec
from robolearn.robots.state import MotionFrame, RobotState

# legged_gym's clip_observations: keeps a diverging state from producing huge network inputs.
OBS_CLIP = 100.0

RewardFunction = Callable[[Any], np.ndarray]


# Options that rebuild a robot's spec (and so its gains and armature) for one env: the values a
# primary source has not settled. None for an option keeps the registered spec's value.
ROBOT_OPTIONS: dict[str, tuple[str, ...]] = {"go2": ("calf_gear_ratio",)}


def robot_spec_with_options(robot: str, options: Mapping[str, Any] | None) -> RobotSpec:
    """The registered spec, or one rebuilt with `options` (Go2: calf_gear_ratio, the calf's total reduction)."""
    spec = get_robot_spec(robot)
    given = {str(k): v for k, v in (options or {}).items() if v is not None}
    allowed = ROBOT_OPTIONS.get(robot, ())
    for key in dict(options or {}):
        if key not in allowed:
            choices = ", ".join(allowed) if allowed else "none"
            raise UserError(
                f"unknown robot_options key '{key}' for robot {robot}{close_matches(str(key), allowed)};"
                f" options: {choices}"
            )
    if not given:
        return spec
    ratio = given["calf_gear_ratio"]
    try:
        value = float(ratio)
    except (TypeError, ValueError):
        value = float("nan")
    if not (np.isfinite(value) and value > 0):
        raise UserError(
            f"robot_options.calf_gear_ratio={ratio!r} must be a positive number (the calf's total reduction,"
            " e.g. 12.13 or mjlab's 9), or null for the default"
        )
    return go2_spec(calf_gear_ratio=value)


def _rows_of(values: np.ndarray | None, ids: np.ndarray) -> np.ndarray | None:
    return None if values is None else values[ids]


class _AppliedDynamics:
    """Which dynamics dict the backend currently holds; deliberately not snapshotted (see step_envs)."""

    __slots__ = ("value",)

    def __init__(self) -> None:
        self.value: object = None


class _StepMetrics:
    """The last step's step_metrics, computed only once someone reads them; not state (not snapshotted)."""

    __slots__ = ("ctx", "values", "wanted")

    def __init__(self, wanted: bool) -> None:
        self.wanted = wanted
        self.ctx: Any = None
        self.values: dict[str, np.ndarray] | None = None


class RobotTask(gym.Env[np.ndarray, np.ndarray], ABC):
    """Batched robot task: subclasses define state init, observations, rewards and termination."""

    metadata: dict[str, Any] = {"render_modes": ["rgb_array"], "render_fps": 50}  # noqa: RUF012

    # Subclasses: the reward functions by name, and the bodies whose poses the task reads.
    reward_functions: ClassVar[Mapping[str, RewardFunction]] = {}
    # Width of privileged_observation's rows (0: none); subclasses set it per instance. step_envs
    # leaves the step's rows (of the frame it observed) in last_privileged.
    privileged_size: int = 0
    last_privileged: np.ndarray | None = None

    def __init__(
        self,
        robot: str,
        proprio_terms: Sequence[ObsTerm],
        reward_scales: Mapping[str, float],
        bodies: Sequence[str] = (),
        num_envs: int = 1,
        backend: str = "mujoco",
        threads: int = 1,
        device: str | None = None,
        model_path: str | None = None,
        randomization: Mapping[str, Any] | Randomization | None = None,
        action_clip: float = 5.0,
        only_positive_rewards: bool = False,
        max_episode_steps: int | None = None,
        render_mode: str | None = None,
        extra_obs_size: int = 0,
        robot_options: Mapping[str, Any] | None = None,
        observation_history: int = 1,
        delta_action: Mapping[str, Any] | None = None,
        residual_dynamics: Mapping[str, Any] | None = None,
        terrain: Terrain | None = None,
    ) -> None:
        history = observation_history
        if isinstance(history, bool) or not isinstance(history, int | np.integer) or not 1 <= history <= 100:
            raise UserError(
                f"observation_history={history!r} must be a whole number of frames from 1 (no history) to"
                " 100, e.g. 5"
            )
        self.robot_spec: RobotSpec = robot_spec_with_options(robot, robot_options)
        spec = self.robot_spec
        self.num_envs = int(num_envs)
        self.render_mode = render_mode
        self.randomization = Randomization.from_kwargs(randomization)
        self.max_episode_steps = max_episode_steps
        self.action_clip = float(action_clip)
        self.control_dt = spec.control_dt
        self.mj_model = load_model(spec, model_path)
        # Rough ground (robolearn.envs.terrain): the scene's flat floor replaced by a heightfield.
        self.terrain = terrain
        if terrain is not None:
            if backend == "warp":
                raise UserError(
                    "terrain with backend=warp is not supported yet (the heightfield is tested on the C "
                    "MuJoCo backends); use backend=batch, or terrain: null"
                )
            self.mj_model = model_with_terrain(model_path or default_model_path(spec), terrain)
            check_model(self.mj_model, spec, source=f"{model_path or default_model_path(spec)} with terrain")
        if spec is not get_robot_spec(robot):
            # Options rebuilt the drives, so the joints get the rebuilt spec's armature too.
            set_joint_armature(self.mj_model, spec)
        # A single env (the gymnasium API) always simulates on the reference backend: `batch` with one
        # simulation is the same computation, and `warp` is for many worlds on a GPU.
        name = "mujoco" if (self.num_envs == 1 and backend == "batch") else backend
        self.backend = make_backend(
            name,
            self.mj_model,
            spec,
            self.num_envs,
            bodies=bodies,
            threads=threads,
            device=device,
            randomize_dynamics=self.randomization.randomizes_dynamics,
        )
        if isinstance(self.backend, MujocoBackend) and self.num_envs == 1:
            # Exposed so robolearn.envs.state captures the physics (it pairs `data` with `model`).
            self.data = self.backend.datas[0]
            self.model = self.backend.models[0]
        noise = self.randomization.obs_noise
        self.proprio_terms = tuple(replace(t, noise=t.noise * noise) for t in proprio_terms)
        self._noisy_obs = noise > 0 and any(t.noise > 0 for t in self.proprio_terms)
        self.reward_names, self.reward_scales = self._check_scales(reward_scales)
        self.only_positive_rewards = bool(only_positive_rewards)
        self._is_termination = np.array(
            [n.endswith("termination") for n in self.reward_names], dtype=np.float64
        )
        self._not_termination = 1.0 - self._is_termination
        # legged_gym / mjlab convention: every term is a rate, weighted by its scale times the step.
        self._reward_weights = self.reward_scales * spec.control_dt
        termination_cols = np.flatnonzero(self._is_termination)
        # One termination column (every shipped task): its weighted values are a view, not a sum.
        self._termination_col = int(termination_cols[0]) if len(termination_cols) == 1 else None

        nj = spec.num_joints
        self.frame_size = sum(t.size(spec) for t in self.proprio_terms) + extra_obs_size
        # The actor's input is the last `observation_history` frames, oldest first, a new episode
        # starting with its first frame repeated: the deploy runtime's stacking (contract.json
        # observation.history, robolearn.deploy.policy.ObservationPipeline).
        self.observation_history = int(history)
        obs_size = self.frame_size * self.observation_history
        self.observation_space = gym.spaces.Box(-np.inf, np.inf, shape=(obs_size,), dtype=np.float32)
        self.action_space = gym.spaces.Box(-self.action_clip, self.action_clip, shape=(nj,), dtype=np.float32)

        n = self.num_envs
        self.rng = np.random.default_rng()
        self.episode_step = np.zeros(n, dtype=np.int64)
        self.last_action = np.zeros((n, nj))
        self.last_joint_vel = np.zeros((n, nj))
        self.command = np.zeros((n, 3))
        self.action_history = np.zeros((n, self.randomization.max_action_delay + 1, nj))
        self.history_head = 0
        self.action_delay = np.zeros(n, dtype=np.int64)
        self.kp = np.broadcast_to(spec.kp_array, (n, nj)).copy()
        self.kd = np.broadcast_to(spec.kd_array, (n, nj)).copy()
        self.torque_limit = np.broadcast_to(spec.torque_limit_array, (n, nj)).copy()
        self.push_timer = np.full(n, np.inf)
        self.term_sums = np.zeros((n, len(self.reward_names)))
        self.dynamics: dict[str, np.ndarray] | None = None
        self._applied = _AppliedDynamics()
        # The single-env API reports metrics every step; the batched adapters never read them.
        self._metrics = _StepMetrics(wanted=self.num_envs == 1)
        self._all_ids = np.arange(n)
        self._renderer: Any = None
        # ASAP's finetune stage: a frozen delta-action model added to every action (robolearn.sim2real).
        self.frozen_delta: Any = None
        if delta_action:
            from robolearn.sim2real.delta_model import FrozenDelta

            self.frozen_delta = FrozenDelta.from_kwargs(delta_action, spec)
            self.last_delta = np.zeros((n, nj))  # the delta model's own last output (its input)
        # ASAP's delta-dynamics baseline: a frozen residual added to the velocities after each step.
        self.frozen_residual: Any = None
        if residual_dynamics is not None:  # {} too: from_kwargs says what is missing
            from robolearn.sim2real.residual_dynamics import FrozenResidual

            self.frozen_residual = FrozenResidual.from_kwargs(residual_dynamics, spec)
            self.previous_sent = np.zeros((n, nj))  # the robot action of the step before (its input)
        if self.observation_history > 1:
            self.obs_frames = np.zeros((n, self.observation_history, self.frame_size), dtype=np.float32)
            # The episode step each env's newest frame was observed at: re-observing the same step
            # replaces that frame instead of shifting the history.
            self.obs_frames_step = np.full(n, -1, dtype=np.int64)

    # -- subclass hooks -------------------------------------------------------------------------------
    @abstractmethod
    def initial_state(self, ids: np.ndarray) -> RootJointState:
        """The state envs ids start an episode in."""

    def on_reset(self, ids: np.ndarray) -> None:
        """Task buffers for a new episode of envs ids (commands, motion phase, ...)."""

    def extra_observation(self, frame: SimFrame, ids: np.ndarray) -> np.ndarray | None:
        """Task-specific observation values appended after the proprioceptive terms, (k, extra)."""
        return None

    def motion_frame(self, ids: np.ndarray | None) -> MotionFrame | None:
        """The reference motion envs ids (all by default) follow at this step, for the motion_* terms;
        None for a task that tracks none."""
        return None

    def privileged_observation(self, frame: SimFrame, ids: np.ndarray) -> np.ndarray | None:
        """(k, privileged_size) values only a critic sees (rsl_ppo's "critic" group: the batched
        VecEnv carries them beside the observations), or None when the task has none."""
        return None

    def robot_action(self, action: np.ndarray) -> np.ndarray:
        """The robot's action (joint targets = default pose + action_scale x it) for the agent's clipped
        action: the agent's own, or with delta_action that plus the frozen delta model's correction
        on the current state (and the agent's previous action, last_action). ASAP's delta-action task adds it to a recorded action instead."""
        if self.frozen_delta is None:
            return action
        sent, self.last_delta = self.frozen_delta(
            self.robot_spec, self.backend.frame(), action, self.last_delta, self.last_action
        )
        return sent

    def gait_phase(self) -> np.ndarray | None:
        """(N,) each env's gait-clock phase in [0, 1) for the gait_clock term; None without a clock."""
        return None

    @abstractmethod
    def reward_context(
        self, frame: SimFrame, action: np.ndarray, torque: np.ndarray, terminated: np.ndarray
    ) -> Any:
        """The inputs the reward functions read."""

    @abstractmethod
    def fallen(self, frame: SimFrame) -> np.ndarray:
        """Which envs failed this step (terminated)."""

    def after_step(self, frame: SimFrame) -> None:
        """Advance task time (commands, motion phase) after rewards are computed."""

    def step_metrics(self, ctx: Any) -> dict[str, np.ndarray]:
        """Named per-env figures of this step (tracking errors in physical units), reported in
        `info["metrics"]` and averaged per episode by evaluation; none by default."""
        return {}

    @property
    def last_metrics(self) -> dict[str, np.ndarray]:
        """step_metrics of the last step; computed every step once read (the batched adapters never do)."""
        m = self._metrics
        if not m.wanted:
            m.wanted = True
            if m.ctx is not None:
                # The first read: the context's arrays may have moved on since (commands resampled
                # after rewards); every later step computes them in step_envs, before that.
                m.values = self.step_metrics(m.ctx)
        return m.values or {}

    @last_metrics.setter
    def last_metrics(self, value: dict[str, np.ndarray]) -> None:
        # Snapshots taken before the metrics became lazy carry them as state; they are derived, so
        # restoring one ignores them.
        del value

    # -- construction helpers -------------------------------------------------------------------------
    def _check_scales(self, scales: Mapping[str, float]) -> tuple[tuple[str, ...], np.ndarray]:
        for name in scales:
            if name not in self.reward_functions:
                raise UserError(
                    f"unknown reward term '{name}'{close_matches(name, self.reward_functions)}; "
                    f"terms: {', '.join(self.reward_functions)}"
                )
        names = tuple(n for n in self.reward_functions if float(scales.get(n, 0.0)) != 0.0)
        return names, np.array([float(scales[n]) for n in names])

    # -- batched API ----------------------------------------------------------------------------------
    def seed_rng(self, seed: int | None) -> None:
        """Reseed the task's generator (all randomness of the batch comes from it)."""
        self.rng = np.random.default_rng(seed)

    def reset_envs(self, ids: np.ndarray) -> None:
        """Start new episodes in envs ids: randomise, place the robots, clear buffers."""
        ids = np.asarray(ids, dtype=np.int64)
        if len(ids) == 0:
            return
        spec, dr, k, nj = self.robot_spec, self.randomization, len(ids), self.robot_spec.num_joints
        if dr.randomizes_dynamics:
            if self.dynamics is None:
                nv = self.mj_model.nv
                self.dynamics = {
                    "friction_scale": np.ones(self.num_envs),
                    "mass_scale": np.ones((self.num_envs, self.mj_model.nbody)),
                    "base_com_offset": np.zeros((self.num_envs, 3)),
                    "joint_friction_scale": np.ones((self.num_envs, nv)),
                    "joint_damping_scale": np.ones((self.num_envs, nv)),
                    "added_base_mass": np.zeros(self.num_envs),
                }
            # A new dict object on every change: step_envs re-applies by identity (see there).
            dyn = {key: value.copy() for key, value in self.dynamics.items()}
            dyn["friction_scale"][ids] = uniform(self.rng, dr.friction, (k,))
            dyn["mass_scale"][ids] = uniform(self.rng, dr.link_mass, (k, self.mj_model.nbody))
            dyn["base_com_offset"][ids] = (
                self.rng.uniform(-dr.com_offset, dr.com_offset, size=(k, 3)) if dr.com_offset > 0 else 0.0
            )
            # Drawn only when on (uniform() returns ones without a draw), so older configs keep their streams.
            nv = self.mj_model.nv
            dyn["joint_friction_scale"][ids] = uniform(self.rng, dr.joint_friction, (k, nv))
            dyn["joint_damping_scale"][ids] = uniform(self.rng, dr.joint_damping, (k, nv))
            dyn["added_base_mass"][ids] = (
                0.0 if dr.added_base_mass is None else self.rng.uniform(*dr.added_base_mass, size=k)
            )
            self.dynamics = dyn
            self._apply_dynamics(ids)
        strength = uniform(self.rng, dr.motor_strength, (k, nj))
        self.kp[ids] = spec.kp_array * uniform(self.rng, dr.kp_scale, (k, nj)) * strength
        self.kd[ids] = spec.kd_array * uniform(self.rng, dr.kd_scale, (k, nj)) * strength
        self.torque_limit[ids] = spec.torque_limit_array * strength
        if dr.action_delay is not None:
            self.action_delay[ids] = self.rng.integers(dr.action_delay[0], dr.action_delay[1] + 1, size=k)
        if dr.push_interval_s is not None:
            self.push_timer[ids] = self.rng.uniform(*dr.push_interval_s, size=k)
        self.backend.reset_envs(ids, self.initial_state(ids))
        self.episode_step[ids] = 0
        self.last_action[ids] = 0.0
        if self.frozen_delta is not None:
            self.last_delta[ids] = 0.0
        if self.frozen_residual is not None:
            self.previous_sent[ids] = 0.0
        self.last_joint_vel[ids] = 0.0
        self.action_history[ids] = 0.0
        self.term_sums[ids] = 0.0
        self.on_reset(ids)

    def _apply_dynamics(self, ids: np.ndarray) -> None:
        assert self.dynamics is not None
        d = self.dynamics
        params = DynamicsParams(
            friction_scale=d["friction_scale"][ids],
            mass_scale=d["mass_scale"][ids],
            base_com_offset=d["base_com_offset"][ids],
            # .get: a snapshot taken before joint losses were randomised lacks these keys.
            joint_friction_scale=_rows_of(d.get("joint_friction_scale"), ids),
            joint_damping_scale=_rows_of(d.get("joint_damping_scale"), ids),
            added_base_mass=_rows_of(d.get("added_base_mass"), ids),
        )
        self.backend.set_dynamics(ids, params)
        self._applied.value = d

    def observe(self, frame: SimFrame, ids: np.ndarray | None = None) -> np.ndarray:
        """float32 observations of envs ids (all by default): robots-package terms, then task extras."""
        sel = slice(None) if ids is None else ids
        phase = self.gait_phase()
        state = RobotState(
            joint_pos=frame.joint_pos[sel],
            joint_vel=frame.joint_vel[sel],
            base_quat=frame.root_quat[sel],
            gyro=frame.root_ang_vel[sel],
            command=self.command[sel],
            last_action=self.last_action[sel],
            gait_phase=None if phase is None else phase[sel, None],
            motion=self.motion_frame(ids),
        )
        rng = self.rng if self._noisy_obs else None
        obs = build_observation(state, self.robot_spec, self.proprio_terms, rng=rng, clip=OBS_CLIP)
        extra = self.extra_observation(frame, self._all_ids if ids is None else ids)
        if extra is not None:
            obs = np.concatenate((obs, np.clip(extra, -OBS_CLIP, OBS_CLIP).astype(np.float32)), axis=-1)
        if self.observation_history > 1:
            return self._stack_frames(obs, ids)
        return obs

    def _stack_frames(self, obs: np.ndarray, ids: np.ndarray | None) -> np.ndarray:
        """(k, history x frame) of envs ids: this frame appended to each env's history (oldest first);
        an env at its episode's first step has its history filled with this frame."""
        rows = self._all_ids if ids is None else np.asarray(ids, dtype=np.int64)
        step = self.episode_step[rows]
        frames = self.obs_frames if ids is None else self.obs_frames[rows]
        fresh = step == 0
        shift = (self.obs_frames_step[rows] != step) & ~fresh
        if shift.any():
            frames[shift, :-1] = frames[shift, 1:]
        frames[:, -1] = obs
        if fresh.any():
            frames[fresh] = obs[fresh, None, :]
        if ids is not None:
            self.obs_frames[rows] = frames
        self.obs_frames_step[rows] = step
        return frames.reshape(len(rows), -1).copy()

    def step_envs(
        self, actions: np.ndarray
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, dict[str, np.ndarray]]:
        """Advance every env one control step; returns obs, reward, terminated, truncated, reward terms.

        Envs are not reset here: the caller resets the done ones (auto-reset) and re-observes them.
        """
        if self.dynamics is not None and self._applied.value is not self.dynamics:
            # The dynamics dict was restored from a snapshot (a new object): give the backend its values.
            self._apply_dynamics(self._all_ids)
        action = np.asarray(actions, dtype=np.float64).reshape(self.num_envs, -1)
        # Always a new array: it becomes last_action, which must not alias the caller's buffer.
        action = np.clip(action, -self.action_clip, self.action_clip)
        sent = self.robot_action(action)
        if self.action_history.shape[1] > 1:
            length = self.action_history.shape[1]
            self.history_head = (self.history_head + 1) % length
            self.action_history[:, self.history_head] = sent
            applied = self.action_history[self._all_ids, (self.history_head - self.action_delay) % length]
        else:
            applied = sent
        targets = action_to_joint_targets(applied, self.robot_spec)
        residual = None
        if self.frozen_residual is not None:
            residual = self.frozen_residual(self.robot_spec, self.backend.frame(), self.previous_sent, sent)
            self.previous_sent = np.array(sent, dtype=np.float64)
        torque = self.backend.step(targets, self.kp, self.kd, self.torque_limit)
        if residual is not None:
            from robolearn.sim2real.residual_dynamics import split_residual

            # Root and joint velocities; body velocities in the frame (cvel) are recomputed at the next
            # physics step, as after a push.
            self.backend.add_velocity(*split_residual(residual))
        frame = self.backend.frame()
        self.episode_step += 1

        terminated = self.fallen(frame) | ~np.isfinite(frame.joint_pos).all(axis=1)
        ctx = self.reward_context(frame, action, torque, terminated)
        if self._metrics.wanted:
            self._metrics.values = self.step_metrics(ctx)
        else:
            self._metrics.ctx = ctx
        terms = {name: self.reward_functions[name](ctx) for name in self.reward_names}
        weighted = self._weighted_terms(terms)
        if self.only_positive_rewards:
            # legged_gym's only_positive_rewards: penalties cannot make a step worth less than nothing,
            # so ending the episode early never pays; the termination penalty is added after the clip.
            # Elementwise sums, not matrix products: a BLAS call here starts OpenBLAS threads that spin
            # on the cores the batch backend's threads need (measured: a third of G1's throughput).
            positive = (weighted * self._not_termination).sum(axis=1)
            np.clip(positive, 0.0, None, out=positive)
            col = self._termination_col
            # x + 0.0 is x: the one termination column equals its masked row sum exactly.
            penalty = weighted[:, col] if col is not None else (weighted * self._is_termination).sum(axis=1)
            reward = positive + penalty
        else:
            reward = weighted.sum(axis=1)
        self.term_sums += weighted
        if self.max_episode_steps is None:
            truncated = np.zeros(self.num_envs, dtype=bool)
        else:
            truncated = self.episode_step >= self.max_episode_steps
            truncated &= ~terminated

        self.last_action = action
        self.last_joint_vel = frame.joint_vel
        self.after_step(frame)
        self._push()
        obs = self.observe(frame)
        # Critic-only values of the same frame as obs (before the push's velocity kick, as obs).
        self.last_privileged = (
            self.privileged_observation(frame, self._all_ids) if self.privileged_size else None
        )
        return obs, reward, terminated, truncated, terms

    def _weighted_terms(self, terms: Mapping[str, np.ndarray]) -> np.ndarray:
        """(N, terms) each term times its scale and the control step; non-finite values zeroed."""
        values = np.empty((self.num_envs, len(self.reward_names)))
        for col, name in enumerate(self.reward_names):
            values[:, col] = terms[name]
        values *= self._reward_weights
        # A diverged env ends (terminated) without poisoning the batch. The sum is finite exactly
        # when every value is, so the masked write runs only on a step that needs it.
        if not np.isfinite(values.sum()):
            values[~np.isfinite(values)] = 0.0
        return values

    def _push(self) -> None:
        dr = self.randomization
        if dr.push_interval_s is None:
            return
        self.push_timer -= self.control_dt
        due = np.flatnonzero(self.push_timer <= 0.0)
        if len(due) == 0:
            return
        kick = np.zeros((len(due), 3))
        kick[:, :2] = self.rng.uniform(-dr.push_velocity, dr.push_velocity, size=(len(due), 2))
        self.backend.add_root_velocity(due, kick)
        self.push_timer[due] = self.rng.uniform(*dr.push_interval_s, size=len(due))

    def episode_terms(self, i: int) -> dict[str, float]:
        """Weighted reward-term sums of env i's current episode (logged when it ends)."""
        return {name: float(v) for name, v in zip(self.reward_names, self.term_sums[i], strict=True)}

    # -- gymnasium single-env API (num_envs == 1) -----------------------------------------------------
    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict[str, Any]]:
        """Start an episode; a seed reseeds the task's generator."""
        self._require_single()
        super().reset(seed=seed)
        if seed is not None:
            self.rng = self.np_random
        self.reset_envs(np.zeros(1, dtype=np.int64))
        frame = self.backend.frame()
        return self.observe(frame)[0], {}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict[str, Any]]:
        """One control step of the single env; info carries this step's unweighted reward terms."""
        self._require_single()
        obs, reward, terminated, truncated, terms = self.step_envs(np.asarray(action)[None])
        info: dict[str, Any] = {
            "reward_terms": {name: float(v[0]) for name, v in terms.items()},
            "metrics": {name: float(v[0]) for name, v in self.last_metrics.items()},
        }
        return obs[0], float(reward[0]), bool(terminated[0]), bool(truncated[0]), info

    def render(self) -> np.ndarray | None:
        """An RGB frame following the robot (render_mode='rgb_array', mujoco backend)."""
        if self.render_mode != "rgb_array":
            return None
        if not isinstance(self.backend, MujocoBackend):
            raise UserError("rendering needs backend=mujoco")
        if self._renderer is None:
            self._renderer = mujoco.Renderer(self.backend.models[0], height=240, width=320)
            self._camera = mujoco.MjvCamera()
            self._camera.type = mujoco.mjtCamera.mjCAMERA_TRACKING
            self._camera.trackbodyid = self.backend.layout.base_body_id
            self._camera.distance = 3.0 * self.robot_spec.base_height + 0.5
            self._camera.elevation = -20.0
            self._camera.azimuth = 135.0
            self._render_data = mujoco.MjData(self.backend.models[0])
        # Render a forwarded copy: the env's own MjData keeps the derived fields of its last step.
        mujoco.mj_copyData(self._render_data, self.backend.models[0], self.backend.datas[0])
        mujoco.mj_forward(self.backend.models[0], self._render_data)
        self._renderer.update_scene(self._render_data, camera=self._camera)
        return np.asarray(self._renderer.render())

    def close(self) -> None:
        """Release the backend and the renderer."""
        if self._renderer is not None:
            self._renderer.close()
            self._renderer = None
        self.backend.close()

    def _require_single(self) -> None:
        if self.num_envs != 1:
            raise UserError(
                f"this task simulates {self.num_envs} envs; use robolearn.envs.vector.make_batched_env "
                "for the vectorised API"
            )
