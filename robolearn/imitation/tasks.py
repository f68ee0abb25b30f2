"""Multitask imitation tasks with a hidden context (issue 18; contract in docs / /tmp/h2/imitation_api.md).

Each task is a family of MuJoCo control problems indexed by a latent context (a goal, a target, a
velocity command) that the learner never observes: `make_env(context)` builds the learner's env, whose
observation holds no trace of the context, and `expert(env, context)` is a scripted (or trained) policy
that does see it. Pretraining and finetuning draw their contexts from disjoint sets (`sample_contexts`),
as in Brandfonbrener, Nachum & Bruna, "Inverse Dynamics Pretraining Learns Good Representations for
Multitask Imitation" (NeurIPS 2023; Sec. 5: pretrain on many goals, finetune on a new one).

Tasks:
    pointmass_pixels  planar point mass seen through a 64x64 top-down camera, hidden goal (the paper's
                      point-mass setting, after its dm_control-based env and PD demonstrator)
    reacher           Gymnasium Reacher-v5 with the target removed from the observation
    pusher            Gymnasium Pusher-v5 with the goal (moved per context) removed from the observation
    bimodal           planar point mass that must pass an obstacle on either side (multimodal demos)
    go2_command       robolearn/Go2Velocity-v1 with the commanded velocity hidden; expert = a policy artifact
"""

from __future__ import annotations

import os
import sys

# MuJoCo picks its OpenGL platform when the renderer is first made; EGL renders off screen on CPU (llvmpipe)
# and on GPUs. A user's own MUJOCO_GL (osmesa) wins.
os.environ.setdefault("MUJOCO_GL", "egl")

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import gymnasium as gym
import mujoco
import numpy as np
from gymnasium import spaces

from robolearn.errors import UserError, close_matches

Obs = np.ndarray | dict[str, np.ndarray]
Policy = Callable[[Obs], np.ndarray]
SPLITS = ("pretrain", "finetune")


class ImitationTask(Protocol):
    """One hidden-context imitation task (the shared contract of robolearn.imitation)."""

    name: str
    context_dim: int
    pixels: bool
    success_metric: str
    max_steps: int

    def sample_contexts(self, n: int, split: str, seed: int) -> np.ndarray:
        """n contexts (n, context_dim) of the split; pretrain and finetune sets are disjoint."""
        ...

    def make_env(self, context: np.ndarray, seed: int | None = None) -> gym.Env:
        """The learner's env for one context (the context is not in its observation)."""
        ...

    def expert(self, env: gym.Env, context: np.ndarray, seed: int | None = None) -> Policy:
        """The demonstrator for `context` acting in `env` (may read the simulator and the context)."""
        ...


# ---------------------------------------------------------------------------------------------------------
# Context splits


def _check_split(split: str) -> None:
    if split not in SPLITS:
        raise UserError(f"split={split} is not known; choose one of {', '.join(SPLITS)}")


def _check_n(n: int) -> None:
    if not isinstance(n, int | np.integer) or isinstance(n, bool) or n < 1:
        raise UserError(f"n={n} contexts is out of range; use an integer >= 1")


def checkerboard_parity(x: np.ndarray, low: np.ndarray, high: np.ndarray, cells: int) -> np.ndarray:
    """0/1 colour of the checkerboard cell (cells per axis over [low, high]) holding each row of x."""
    idx = np.floor((x - low) / (high - low) * cells).clip(0, cells - 1).astype(np.int64)
    return idx.sum(axis=-1) % 2


def sample_checkerboard(
    n: int, split: str, seed: int, low: np.ndarray, high: np.ndarray, cells: int
) -> np.ndarray:
    """Uniform samples from the box's "pretrain" (even) or "finetune" (odd) checkerboard cells.

    Why a checkerboard: finetuning contexts are new (no pretraining context lies in their cells) yet
    spread over the same region, so a finetuned policy is tested on held-out goals, not on extrapolation.
    """
    _check_split(split)
    _check_n(n)
    # The split is mixed into the seed so the two splits never share a random stream.
    rng = np.random.default_rng([seed, SPLITS.index(split), 18])
    want = SPLITS.index(split)
    out: list[np.ndarray] = []
    while len(out) < n:
        x = rng.uniform(low, high, size=(2 * n, len(low)))
        keep = x[checkerboard_parity(x, low, high, cells) == want]
        out.extend(keep)
    return np.asarray(out[:n], dtype=np.float32)


# ---------------------------------------------------------------------------------------------------------
# Planar point mass (pointmass_pixels, bimodal)

# Sizes after the paper's point mass (imitation_pretraining/envs/my_point_mass.xml: a 0.6 m square arena,
# slide joints with damping 1, 0.3 kg mass, 0.05 s control step). The rendered ball is larger (0.03 m) than
# theirs so a 64x64 frame shows it as a ~6 px disc, and the motor gear is 0.3 (theirs 0.1) so a clipped PD
# crosses the arena within the episode.
_POINTMASS_XML = """
<mujoco model="robolearn planar point mass">
  <option timestep="0.01"><flag contact="disable"/></option>
  <visual><quality shadowsize="0"/><global offwidth="{size}" offheight="{size}"/></visual>
  <asset>
    <texture name="grid" type="2d" builtin="checker" rgb1=".22 .3 .4" rgb2=".3 .38 .48" width="64" height="64"/>
    <material name="grid" texture="grid" texrepeat="3 3"/>
  </asset>
  <default>
    <joint type="slide" limited="true" range="-.29 .29" damping="1"/>
    <motor gear=".3" ctrlrange="-1 1" ctrllimited="true"/>
  </default>
  <worldbody>
    <light name="light" pos="0 0 1" castshadow="false"/>
    <camera name="top" pos="0 0 .78" fovy="45"/>
    <geom name="ground" type="plane" size=".3 .3 .1" material="grid"/>
    <geom name="wall_px" type="box" pos=".31 0 .01" size=".01 .32 .01" rgba=".7 .5 .3 1"/>
    <geom name="wall_nx" type="box" pos="-.31 0 .01" size=".01 .32 .01" rgba=".7 .5 .3 1"/>
    <geom name="wall_py" type="box" pos="0 .31 .01" size=".32 .01 .01" rgba=".7 .5 .3 1"/>
    <geom name="wall_ny" type="box" pos="0 -.31 .01" size=".32 .01 .01" rgba=".7 .5 .3 1"/>
    {obstacle}
    <body name="pointmass" pos="0 0 .03">
      <joint name="root_x" axis="1 0 0"/>
      <joint name="root_y" axis="0 1 0"/>
      <geom name="pointmass" type="sphere" size=".03" mass=".3" rgba=".9 .3 .2 1"/>
    </body>
  </worldbody>
  <actuator>
    <motor name="fx" joint="root_x"/>
    <motor name="fy" joint="root_y"/>
  </actuator>
</mujoco>
"""
_OBSTACLE_GEOM = '<geom name="obstacle" type="cylinder" pos="{x} {y} .02" size="{r} .02" rgba=".2 .2 .2 1"/>'


# One compiled model and one GL renderer per scene, shared by every env of that scene: a renderer costs
# ~0.3 s to make (an EGL context and the model's upload) against ~1 ms per 64x64 frame, and demo
# collection makes one env per context. Models are never modified after compilation.
_MODELS: dict[str, mujoco.MjModel] = {}
_RENDERERS: dict[str, mujoco.Renderer] = {}


def _shared_model(xml: str) -> mujoco.MjModel:
    if xml not in _MODELS:
        _MODELS[xml] = mujoco.MjModel.from_xml_string(xml)
    return _MODELS[xml]


def _prefer_offscreen_gl() -> None:
    """Use EGL when MuJoCo settled on GLFW without a display.

    MuJoCo picks its GL platform when it is first imported: a process that imported it before this
    module (MUJOCO_GL unset) gets GLFW, which needs a display, and a failed GLFW attempt cannot be
    retried in the same process. So switch before the first renderer, not after a failure.
    """
    from mujoco.rendering.classic import gl_context

    current = getattr(gl_context, "GLContext", None)
    glfw = current is not None and current.__module__.startswith("mujoco.glfw")
    if glfw and sys.platform.startswith("linux") and not os.environ.get("DISPLAY"):
        try:
            from mujoco.egl import GLContext
        except Exception:  # no libEGL: leave MuJoCo's choice, whose failure is reported below
            return
        gl_context.GLContext = GLContext


def _shared_renderer(xml: str, size: int) -> mujoco.Renderer:
    if xml not in _RENDERERS:
        _prefer_offscreen_gl()
        try:
            _RENDERERS[xml] = mujoco.Renderer(_shared_model(xml), size, size)
        except Exception as exc:  # mujoco raises FatalError/RuntimeError/AttributeError by GL platform
            text = str(exc).splitlines()[0] if str(exc) else ""
            raise UserError(
                f"pointmass_pixels needs MuJoCo's offscreen renderer, which failed with MUJOCO_GL="
                f"{os.environ.get('MUJOCO_GL')} ({type(exc).__name__}: {text}); "
                "install libegl1 (MUJOCO_GL=egl) or libosmesa6 (MUJOCO_GL=osmesa)"
            ) from None
    return _RENDERERS[xml]


class PointMassEnv(gym.Env[Any, np.ndarray]):
    """A planar point mass driven by two clipped motors toward a hidden goal.

    Observation: state [x, y, vx, vy] (float32), or Dict {"pixels": uint8 (S, S, 3) top-down frame,
    "state": the same vector} when `pixels`. The goal is never drawn nor observed. Reward: minus the
    distance to the goal. The episode terminates with info["success"]=True when the mass is within
    `goal_radius` of the goal, with success False when it touches the obstacle, and is truncated
    after `max_steps`.
    """

    metadata = {"render_modes": ["rgb_array"], "render_fps": 20}  # noqa: RUF012 - gymnasium.Env declares it so

    def __init__(
        self,
        goal: np.ndarray,
        *,
        pixels: bool = False,
        image_size: int = 64,
        max_steps: int = 60,
        frame_skip: int = 5,
        goal_radius: float = 0.015,
        start_low: tuple[float, float] = (-0.25, -0.25),
        start_high: tuple[float, float] = (0.25, 0.25),
        obstacle: tuple[float, float, float] | None = None,
        render_mode: str | None = None,
    ) -> None:
        self.goal = np.asarray(goal, dtype=np.float64).reshape(2)
        self.pixels = pixels
        self.image_size = int(image_size)
        self.max_steps = int(max_steps)
        self.frame_skip = int(frame_skip)
        self.goal_radius = float(goal_radius)
        self.start_low = np.asarray(start_low, dtype=np.float64)
        self.start_high = np.asarray(start_high, dtype=np.float64)
        self.obstacle = obstacle
        self.render_mode = render_mode
        obstacle_xml = ""
        if obstacle is not None:
            obstacle_xml = _OBSTACLE_GEOM.format(x=obstacle[0], y=obstacle[1], r=obstacle[2])
        self._xml = _POINTMASS_XML.format(size=self.image_size, obstacle=obstacle_xml)
        self.model = _shared_model(self._xml)
        self.data = mujoco.MjData(self.model)
        self._mass_radius = float(self.model.geom("pointmass").size[0])
        state_space = spaces.Box(-np.inf, np.inf, shape=(4,), dtype=np.float32)
        self.observation_space: spaces.Space[Any]
        if pixels:
            self.observation_space = spaces.Dict(
                {
                    "pixels": spaces.Box(0, 255, shape=(self.image_size, self.image_size, 3), dtype=np.uint8),
                    "state": state_space,
                }
            )
        else:
            self.observation_space = state_space
        self.action_space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)
        self._steps = 0

    @property
    def dt(self) -> float:
        """Seconds per env step."""
        return float(self.model.opt.timestep) * self.frame_skip

    def position(self) -> np.ndarray:
        """The mass's planar position (x, y)."""
        return self.data.qpos[:2].copy()

    def velocity(self) -> np.ndarray:
        """The mass's planar velocity."""
        return self.data.qvel[:2].copy()

    def _state(self) -> np.ndarray:
        return np.concatenate([self.data.qpos[:2], self.data.qvel[:2]]).astype(np.float32)

    def _frame(self) -> np.ndarray:
        renderer = _shared_renderer(self._xml, self.image_size)
        renderer.update_scene(self.data, camera="top")
        return renderer.render().copy()

    def _obs(self) -> Obs:
        if self.pixels:
            return {"pixels": self._frame(), "state": self._state()}
        return self._state()

    def collided(self) -> bool:
        """Whether the mass overlaps the obstacle (a vertical cylinder)."""
        if self.obstacle is None:
            return False
        ox, oy, r = self.obstacle
        return bool(np.hypot(self.data.qpos[0] - ox, self.data.qpos[1] - oy) < r + self._mass_radius)

    def reset(self, *, seed: int | None = None, options: dict[str, Any] | None = None) -> tuple[Obs, dict]:
        """Start at a seeded random position at rest; the goal does not change the start."""
        super().reset(seed=seed)
        mujoco.mj_resetData(self.model, self.data)
        self.data.qpos[:2] = self.np_random.uniform(self.start_low, self.start_high)
        mujoco.mj_forward(self.model, self.data)
        self._steps = 0
        return self._obs(), {"success": False, "distance": self._distance()}

    def _distance(self) -> float:
        return float(np.linalg.norm(self.data.qpos[:2] - self.goal))

    def step(self, action: np.ndarray) -> tuple[Obs, float, bool, bool, dict]:
        """Apply the clipped force for frame_skip physics steps."""
        self.data.ctrl[:] = np.clip(np.asarray(action, dtype=np.float64).reshape(2), -1.0, 1.0)
        mujoco.mj_step(self.model, self.data, nstep=self.frame_skip)
        self._steps += 1
        distance = self._distance()
        collided = self.collided()
        success = distance < self.goal_radius and not collided
        terminated = success or collided
        truncated = not terminated and self._steps >= self.max_steps
        info = {"success": bool(success), "collided": collided, "distance": distance}
        return self._obs(), -distance, terminated, truncated, info

    def render(self) -> np.ndarray:
        """The top-down frame (the goal is not drawn)."""
        return self._frame()

    def close(self) -> None:
        """Nothing to free: the model and renderer are shared by every env of the same scene."""


def pd_to(position: np.ndarray, velocity: np.ndarray, target: np.ndarray, kp: float, kd: float) -> np.ndarray:
    """A clipped PD force toward `target` (the paper's point-mass demonstrator: kp=10, kd=1)."""
    return np.clip(kp * (target - position) - kd * velocity, -1.0, 1.0)


@dataclass
class PointMassPixelsTask:
    """The paper's visual point-mass task: reach a hidden goal seen only through 64x64 frames + proprio."""

    name: str = "pointmass_pixels"
    context_dim: int = 2
    pixels: bool = True
    success_metric: str = "success_rate"
    max_steps: int = 60
    image_size: int = 64
    # Goals uniform in the paper's +-0.29 box (envs/point_mass.py _generate_goal) shrunk to +-0.25 so the
    # start box and the goal box coincide; a 4x4 checkerboard splits pretraining from finetuning goals.
    goal_low: tuple[float, float] = (-0.25, -0.25)
    goal_high: tuple[float, float] = (0.25, 0.25)
    cells: int = 4
    expert_kp: float = 10.0
    expert_kd: float = 1.0
    expert_noise: float = 0.1

    def sample_contexts(self, n: int, split: str, seed: int) -> np.ndarray:
        """Goals (n, 2) from the split's checkerboard cells."""
        return sample_checkerboard(
            n, split, seed, np.array(self.goal_low), np.array(self.goal_high), self.cells
        )

    def make_env(self, context: np.ndarray, seed: int | None = None) -> gym.Env:
        """A PointMassEnv with pixels for this goal."""
        _check_context(self, context)
        env = PointMassEnv(context, pixels=True, image_size=self.image_size, max_steps=self.max_steps)
        if seed is not None:
            env.reset(seed=seed)
        return env

    def expert(self, env: gym.Env, context: np.ndarray, seed: int | None = None) -> Policy:
        """Clipped PD to the goal with Gaussian action noise (reads the simulator's state)."""
        base = _unwrap(env, PointMassEnv)
        goal = np.asarray(context, dtype=np.float64)
        rng = np.random.default_rng(seed)

        def act(obs: Obs) -> np.ndarray:
            a = pd_to(base.position(), base.velocity(), goal, self.expert_kp, self.expert_kd)
            a = a + self.expert_noise * rng.standard_normal(2)
            return np.clip(a, -1.0, 1.0).astype(np.float32)

        return act


@dataclass
class BimodalTask:
    """Pass a round obstacle on either side to reach a hidden goal behind it; demos pick a side at random.

    The demonstrations are bimodal by construction (half go left, half right), so a policy fitted by
    mean-squared error averages the two modes and drives into the obstacle, while a generative policy
    (diffusion) can commit to one (Chi et al., "Diffusion Policy", 2023, Sec. 4's multimodality example).
    """

    name: str = "bimodal"
    context_dim: int = 2
    pixels: bool = False
    success_metric: str = "success_rate"
    max_steps: int = 80
    obstacle: tuple[float, float, float] = (0.0, 0.0, 0.08)
    start_low: tuple[float, float] = (-0.03, -0.25)
    start_high: tuple[float, float] = (0.03, -0.21)
    # Goals behind the obstacle, centred on the start-obstacle axis so neither side is shorter on average.
    goal_low: tuple[float, float] = (-0.06, 0.18)
    goal_high: tuple[float, float] = (0.06, 0.24)
    cells: int = 4
    goal_radius: float = 0.02
    waypoint_x: float = 0.16  # the side waypoint's |x|: obstacle radius + mass radius + a margin
    expert_kp: float = 10.0
    expert_kd: float = 1.0
    expert_noise: float = 0.05

    def sample_contexts(self, n: int, split: str, seed: int) -> np.ndarray:
        """Goals (n, 2) behind the obstacle from the split's checkerboard cells."""
        return sample_checkerboard(
            n, split, seed, np.array(self.goal_low), np.array(self.goal_high), self.cells
        )

    def make_env(self, context: np.ndarray, seed: int | None = None) -> gym.Env:
        """A state-only PointMassEnv with the obstacle between start and goal."""
        _check_context(self, context)
        env = PointMassEnv(
            context,
            pixels=False,
            max_steps=self.max_steps,
            goal_radius=self.goal_radius,
            start_low=self.start_low,
            start_high=self.start_high,
            obstacle=self.obstacle,
        )
        if seed is not None:
            env.reset(seed=seed)
        return env

    def expert(self, env: gym.Env, context: np.ndarray, seed: int | None = None) -> Policy:
        """PD to a waypoint beside the obstacle (side drawn from `seed`), then PD to the goal."""
        base = _unwrap(env, PointMassEnv)
        goal = np.asarray(context, dtype=np.float64)
        rng = np.random.default_rng(seed)
        side = float(rng.choice([-1.0, 1.0]))
        waypoint = np.array([self.obstacle[0] + side * self.waypoint_x, self.obstacle[1]])

        def act(obs: Obs) -> np.ndarray:
            pos = base.position()
            # Head for the waypoint until level with the obstacle's centre, then for the goal.
            target = waypoint if pos[1] < self.obstacle[1] - 0.02 else goal
            a = pd_to(pos, base.velocity(), target, self.expert_kp, self.expert_kd)
            a = a + self.expert_noise * rng.standard_normal(2)
            return np.clip(a, -1.0, 1.0).astype(np.float32)

        act.side = side  # type: ignore[attr-defined]  # which mode this demo takes, for tests and analysis
        return act


# ---------------------------------------------------------------------------------------------------------
# Gymnasium Reacher-v5 / Pusher-v5 with the target hidden


class HiddenTargetReacher(gym.Wrapper[np.ndarray, np.ndarray, np.ndarray, np.ndarray]):
    """Reacher-v5 whose target is the context: placed after every reset, removed from the observation.

    Observation (8,): cos q (2), sin q (2), joint velocities (2), fingertip (x, y). Reacher-v5's own
    observation adds the target and fingertip-minus-target, which would reveal the context.
    info["success"]: the fingertip ends within `success_radius` of the target; info["distance"] each step.
    """

    def __init__(self, target: np.ndarray, success_radius: float = 0.02) -> None:
        super().__init__(gym.make("Reacher-v5"))
        self.target = np.asarray(target, dtype=np.float64).reshape(2)
        self.success_radius = float(success_radius)
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(8,), dtype=np.float32)
        self.action_space = spaces.Box(-1.0, 1.0, shape=(2,), dtype=np.float32)

    def _obs(self) -> np.ndarray:
        base: Any = self.env.unwrapped
        q, qd = base.data.qpos[:2], base.data.qvel[:2]
        tip = base.get_body_com("fingertip")[:2]
        return np.concatenate([np.cos(q), np.sin(q), qd, tip]).astype(np.float32)

    def distance(self) -> float:
        """Fingertip-target distance (m)."""
        base: Any = self.env.unwrapped
        return float(np.linalg.norm(base.get_body_com("fingertip")[:2] - self.target))

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict]:
        """Reacher's seeded arm start, with the target moved to the context (the arm start ignores it)."""
        self.env.reset(seed=seed, options=options)
        base: Any = self.env.unwrapped
        qpos, qvel = base.data.qpos.copy(), base.data.qvel.copy()
        qpos[2:4] = self.target
        qvel[2:4] = 0.0
        base.set_state(qpos, qvel)
        return self._obs(), {"success": False, "distance": self.distance()}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        """Reacher-v5's step and reward, with our observation and success flag."""
        _, reward, terminated, truncated, info = self.env.step(np.asarray(action, dtype=np.float32))
        distance = self.distance()
        info = dict(info, distance=distance, success=bool(distance < self.success_radius))
        return self._obs(), float(reward), terminated, truncated, info


@dataclass
class ReacherTask:
    """Reacher-v5 with a hidden target; expert: inverse kinematics + joint PD."""

    name: str = "reacher"
    context_dim: int = 2
    pixels: bool = False
    success_metric: str = "success_rate"
    max_steps: int = 50  # Reacher-v5's TimeLimit
    # Targets in Reacher-v5's disc (reset_model samples |target| < 0.2) minus the unreachable-by-elbow
    # centre; the split is a 12-sector angular checkerboard, so finetuning targets lie between pretraining ones.
    radius_low: float = 0.06
    radius_high: float = 0.19
    sectors: int = 12
    success_radius: float = 0.02
    expert_kp: float = 2.0  # joint PD in ctrl units: gear 200, armature 1 -> ~20 rad/s, critically damped
    expert_kd: float = 0.2
    expert_noise: float = 0.05

    def sample_contexts(self, n: int, split: str, seed: int) -> np.ndarray:
        """Targets (n, 2) whose polar angle lies in the split's sectors."""
        _check_split(split)
        _check_n(n)
        rng = np.random.default_rng([seed, SPLITS.index(split), 18])
        sector = 2 * rng.integers(0, self.sectors // 2, size=n) + SPLITS.index(split)
        angle = (sector + rng.uniform(0.05, 0.95, size=n)) * (2 * np.pi / self.sectors)
        radius = np.sqrt(rng.uniform(self.radius_low**2, self.radius_high**2, size=n))
        return np.stack([radius * np.cos(angle), radius * np.sin(angle)], axis=1).astype(np.float32)

    def make_env(self, context: np.ndarray, seed: int | None = None) -> gym.Env:
        """HiddenTargetReacher at this target."""
        _check_context(self, context)
        env = HiddenTargetReacher(context, self.success_radius)
        if seed is not None:
            env.reset(seed=seed)
        return env

    def expert(self, env: gym.Env, context: np.ndarray, seed: int | None = None) -> Policy:
        """Two-link inverse kinematics to the target (the elbow solution nearest the arm), joint PD to it."""
        base: Any = env.unwrapped
        rng = np.random.default_rng(seed)
        l1 = float(np.linalg.norm(base.model.body("body1").pos))
        l2 = float(np.linalg.norm(base.model.body("fingertip").pos))
        target = np.asarray(context, dtype=np.float64)
        base_xy = base.data.xpos[base.model.body("body0").id][:2].copy()

        def act(obs: Obs) -> np.ndarray:
            q, qd = base.data.qpos[:2], base.data.qvel[:2]
            goal_q = two_link_ik(target - base_xy, l1, l2, q)
            err = np.angle(np.exp(1j * (goal_q - q)))  # wrapped: joint0 turns freely
            a = self.expert_kp * err - self.expert_kd * qd + self.expert_noise * rng.standard_normal(2)
            return np.clip(a, -1.0, 1.0).astype(np.float32)

        return act


class HiddenGoalPusher(gym.Wrapper[np.ndarray, np.ndarray, np.ndarray, np.ndarray]):
    """Pusher-v5 where the goal sits at the object's start plus the context (an offset), hidden.

    After Pusher's reset the object is re-placed from the env's seeded generator in the part of the
    table where the arm can get behind it with its claw level (x in [0.48, 0.58], y in [-0.25, -0.10];
    nearer the shoulder the claw cannot reach down behind the object, farther out it runs out of reach
    while pushing), then the goal is put at
    start + context. Observation (20,): Pusher-v5's 23 values less the goal's 3.
    info["success"]: the object ends within `success_radius` of the goal; info["distance"] each step.
    """

    def __init__(self, offset: np.ndarray, max_steps: int, success_radius: float) -> None:
        super().__init__(gym.make("Pusher-v5", max_episode_steps=max_steps))
        self.offset = np.asarray(offset, dtype=np.float64).reshape(2)
        self.success_radius = float(success_radius)
        self.goal = np.zeros(2)
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(20,), dtype=np.float32)
        self.action_space = spaces.Box(-2.0, 2.0, shape=(7,), dtype=np.float32)
        base: Any = self.env.unwrapped
        m = base.model
        # Pusher.xml lists each slide pair y before x; address them by name.
        self._adr = {
            n: int(m.joint(n).qposadr[0]) for n in ("obj_slidex", "obj_slidey", "goal_slidex", "goal_slidey")
        }
        self._object_home = m.body("object").pos[:2].copy()
        self._goal_home = m.body("goal").pos[:2].copy()

    def object_xy(self) -> np.ndarray:
        """The object's planar position (world)."""
        base: Any = self.env.unwrapped
        return base.data.xpos[base.model.body("object").id][:2].copy()

    def distance(self) -> float:
        """Object-goal distance (m)."""
        return float(np.linalg.norm(self.object_xy() - self.goal))

    def _obs(self) -> np.ndarray:
        base: Any = self.env.unwrapped
        return np.asarray(base._get_obs()[:20], dtype=np.float32)

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict]:
        """Pusher's seeded reset, the object re-placed (seeded, not by the context), the goal at start + offset."""
        self.env.reset(seed=seed, options=options)
        base: Any = self.env.unwrapped
        start = np.array([base.np_random.uniform(0.48, 0.58), base.np_random.uniform(-0.25, -0.10)])
        self.goal = start + self.offset
        qpos, qvel = base.data.qpos.copy(), base.data.qvel.copy()
        qpos[self._adr["obj_slidex"]], qpos[self._adr["obj_slidey"]] = start - self._object_home
        qpos[self._adr["goal_slidex"]], qpos[self._adr["goal_slidey"]] = self.goal - self._goal_home
        base.set_state(qpos, qvel)
        return self._obs(), {"success": False, "distance": self.distance()}

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        """Pusher-v5's step and reward, with our observation and success flag."""
        _, reward, terminated, truncated, info = self.env.step(np.asarray(action, dtype=np.float32))
        distance = self.distance()
        info = dict(info, distance=distance, success=bool(distance < self.success_radius))
        return self._obs(), float(reward), terminated, truncated, info


@dataclass
class PusherTask:
    """Pusher-v5 with a hidden goal: push the object 10 cm in a hidden direction (the context's offset).

    Why 10 cm and 150 steps: Pusher's object weighs 8 mg and meets the claw through MuJoCo's soft
    contact, so a sustained push moves it at ~0.03 m/s (measured: 0.02 N of contact force at 5 cm
    penetration); Pusher-v5's own 100-step limit leaves too little time to go around the object and
    push further. Scripted expert: 59/60 pretraining and 40/40 finetuning contexts (noise 0.05).
    """

    name: str = "pusher"
    context_dim: int = 2
    pixels: bool = False
    success_metric: str = "success_rate"
    max_steps: int = 150
    push_distance: float = 0.10
    # Push directions within 60 degrees of +x (the claw's natural heading, away from the shoulder), six
    # 20-degree sectors alternating between the splits.
    max_angle_deg: float = 60.0
    sectors: int = 6
    success_radius: float = 0.05
    expert_kp: float = 5.0  # joint PD (torque units) toward the inverse-kinematics pose
    expert_kd: float = 1.0
    expert_noise: float = 0.05
    ik_iterations: int = 10

    def sample_contexts(self, n: int, split: str, seed: int) -> np.ndarray:
        """Offsets (n, 2) of length push_distance whose direction lies in the split's sectors."""
        _check_split(split)
        _check_n(n)
        rng = np.random.default_rng([seed, SPLITS.index(split), 18])
        sector = 2 * rng.integers(0, self.sectors // 2, size=n) + SPLITS.index(split)
        width = 2 * np.deg2rad(self.max_angle_deg) / self.sectors
        angle = -np.deg2rad(self.max_angle_deg) + (sector + rng.uniform(0.05, 0.95, size=n)) * width
        return (self.push_distance * np.stack([np.cos(angle), np.sin(angle)], axis=1)).astype(np.float32)

    def make_env(self, context: np.ndarray, seed: int | None = None) -> gym.Env:
        """HiddenGoalPusher with this offset."""
        _check_context(self, context)
        env = HiddenGoalPusher(context, self.max_steps, self.success_radius)
        if seed is not None:
            env.reset(seed=seed)
        return env

    def expert(self, env: gym.Env, context: np.ndarray, seed: int | None = None) -> Policy:
        """A scripted push: claw above the point behind the object, down, then push along object->goal.

        Each step solves damped-least-squares inverse kinematics (claw bar position, claw pointing along
        the push and level) from the last solution and tracks it with a joint PD; the bar is held ~3 cm
        into the object, the depth at which the soft contact pushes it steadily. Lost contact (drifted
        sideways or slipped past): go round again.
        """
        wrapper = env
        while not isinstance(wrapper, HiddenGoalPusher):
            if not isinstance(wrapper, gym.Wrapper):
                raise UserError(f"the pusher expert needs a HiddenGoalPusher env, got {type(env).__name__}")
            wrapper = wrapper.env
        base: Any = env.unwrapped
        m, d = base.model, base.data
        scratch = mujoco.MjData(m)
        tip, obj_id = m.body("tips_arm").id, m.body("object").id
        rng = np.random.default_rng(seed)
        state = {"phase": 0, "q": d.qpos[:7].copy()}
        table_z = -0.275  # the object's centre height: the bar pushes there

        def act(obs: Obs) -> np.ndarray:
            goal = wrapper.goal
            obj, bar = d.xpos[obj_id][:2], d.xpos[tip]
            to_goal = goal - obj
            u = to_goal / max(float(np.linalg.norm(to_goal)), 1e-6)
            rel = bar[:2] - obj
            along = float(rel @ u)
            lateral = rel - along * u
            behind = obj - 0.12 * u
            if state["phase"] == 0:  # above the point behind the object
                target = np.array([*behind, -0.17])
                if np.linalg.norm(bar[:2] - behind) < 0.03:
                    state["phase"] = 1
            if state["phase"] == 1:  # down to the object's height
                target = np.array([*behind, table_z])
                if abs(bar[2] - table_z) < 0.015:
                    state["phase"] = 2
            if state["phase"] == 2:  # push, steering the bar back onto the object-goal line
                target = np.array([*(obj - 0.04 * u - lateral), table_z])
                if np.linalg.norm(lateral) > 0.06 or along > -0.02:
                    state["phase"] = 0
            state["q"] = claw_ik(
                m, scratch, state["q"], target, np.array([u[0], u[1], 0.0]), self.ik_iterations
            )
            torque = self.expert_kp * (state["q"] - d.qpos[:7]) - self.expert_kd * d.qvel[:7]
            torque = torque + self.expert_noise * rng.standard_normal(7)
            return np.clip(torque, -2.0, 2.0).astype(np.float32)

        return act


def claw_ik(
    m: mujoco.MjModel,
    scratch: mujoco.MjData,
    q0: np.ndarray,
    position: np.ndarray,
    heading: np.ndarray,
    iters: int,
) -> np.ndarray:
    """Pusher arm angles putting the claw bar (tips_arm origin) at `position`, its x axis along `heading`
    and its z axis up: damped least squares from q0, clipped to the joint ranges."""
    q = q0.copy()
    tip = m.body("tips_arm").id
    jacp, jacr = np.zeros((3, m.nv)), np.zeros((3, m.nv))
    lo, hi = m.jnt_range[:7, 0], m.jnt_range[:7, 1]
    for _ in range(iters):
        scratch.qpos[:7] = q
        mujoco.mj_kinematics(m, scratch)
        mujoco.mj_comPos(m, scratch)
        rot = scratch.xmat[tip].reshape(3, 3)
        err = np.concatenate(
            [
                position - scratch.xpos[tip],
                0.5 * (np.cross(rot[:, 0], heading) + np.cross(rot[:, 2], [0.0, 0.0, 1.0])),
            ]
        )
        if np.linalg.norm(err) < 1e-3:
            break
        mujoco.mj_jac(m, scratch, jacp, jacr, scratch.xpos[tip], tip)
        jac = np.vstack([jacp[:, :7], jacr[:, :7]])
        q = np.clip(q + jac.T @ np.linalg.solve(jac @ jac.T + 1e-3 * np.eye(6), err), lo, hi)
    return q


def two_link_ik(p: np.ndarray, l1: float, l2: float, q_now: np.ndarray) -> np.ndarray:
    """Joint angles putting a planar two-link arm's tip at p; of the two elbows, the one nearest q_now."""
    r2 = float(np.clip(p @ p, (l1 - l2) ** 2 + 1e-9, (l1 + l2) ** 2 - 1e-9))
    c2 = (r2 - l1 * l1 - l2 * l2) / (2 * l1 * l2)
    best, best_cost = None, np.inf
    for sign in (1.0, -1.0):
        q2 = sign * np.arccos(np.clip(c2, -1.0, 1.0))
        q1 = np.arctan2(p[1], p[0]) - np.arctan2(l2 * np.sin(q2), l1 + l2 * np.cos(q2))
        q = np.array([q1, q2])
        cost = float(np.abs(np.angle(np.exp(1j * (q - q_now)))).sum())
        if cost < best_cost:
            best, best_cost = q, cost
    assert best is not None
    return best


# ---------------------------------------------------------------------------------------------------------
# Go2 velocity commands as the hidden context


def resolve_policy_artifact(path: str) -> Path:
    """The artifact folder (holding contract.json) a path names: the folder itself, or a run's <run>/policy."""
    root = Path(path).expanduser()
    for candidate in (root, root / "policy"):
        if (candidate / "contract.json").is_file():
            return candidate
    raise UserError(
        f"expert={path} holds no policy artifact (contract.json, or policy/contract.json in a run dir); "
        "export the walking run with python -m robolearn.export run=<run dir>"
    )


class HiddenCommandGo2(gym.Wrapper[np.ndarray, np.ndarray, np.ndarray, np.ndarray]):
    """robolearn/Go2Velocity-v1 held at one command (the context) that is cut out of the observation.

    The command is set after every reset and never resampled; the learner sees the proprioceptive
    terms only (the "commands" term removed). `full_observation` keeps the policy's own observation
    (command included) for the expert. info["tracking_error"]: this step's planar velocity error (m/s);
    info["success"]: the robot has not fallen and its mean tracking error so far is under `success_error`.
    """

    def __init__(self, command: np.ndarray, max_steps: int, success_error: float) -> None:
        from robolearn.envs.tasks import register_envs

        register_envs()
        super().__init__(
            gym.make(
                "robolearn/Go2Velocity-v1",
                max_episode_steps=max_steps,
                command_resample_s=1e9,  # one command per episode: it is the episode's context
                standing_fraction=0.0,
            )
        )
        self.command = np.asarray(command, dtype=np.float64).reshape(3)
        self.success_error = float(success_error)
        base: Any = self.env.unwrapped
        start, scale = 0, None
        for term in base.proprio_terms:
            size = term.size(base.robot_spec)
            if term.name == "commands":
                self._cmd = slice(start, start + size)
                scale = term.scale_array(base.robot_spec)
            start += size
        if scale is None:
            raise UserError("robolearn/Go2Velocity-v1 has no 'commands' observation term to hide")
        self._scale: np.ndarray = scale
        full = self.env.observation_space.shape[0]  # type: ignore[index]
        self._keep = np.array([i for i in range(full) if not self._cmd.start <= i < self._cmd.stop])
        self.observation_space = spaces.Box(-np.inf, np.inf, shape=(len(self._keep),), dtype=np.float32)
        self.full_observation = np.zeros(full, dtype=np.float32)
        self._errors: list[float] = []

    def _split(self, full: np.ndarray) -> np.ndarray:
        full = np.asarray(full, dtype=np.float32).copy()
        full[self._cmd] = self.command * self._scale  # the command set after the env drew its own
        self.full_observation = full
        return full[self._keep]

    def reset(
        self, *, seed: int | None = None, options: dict[str, Any] | None = None
    ) -> tuple[np.ndarray, dict]:
        """The task's seeded start; then the command is fixed to the context."""
        obs, info = self.env.reset(seed=seed, options=options)
        self.env.unwrapped.command[0] = self.command  # type: ignore[attr-defined]
        self._errors = []
        return self._split(obs), dict(info, success=False)

    def step(self, action: np.ndarray) -> tuple[np.ndarray, float, bool, bool, dict]:
        """One control step; adds tracking_error and success."""
        obs, reward, terminated, truncated, info = self.env.step(action)
        metrics = info.get("metrics", {})
        error = float(metrics.get("lin_vel_error", np.nan))
        self._errors.append(error)
        info = dict(
            info,
            tracking_error=error,
            ang_vel_error=float(metrics.get("ang_vel_error", np.nan)),
            success=bool(not terminated and np.nanmean(self._errors) < self.success_error),
        )
        return self._split(obs), float(reward), terminated, truncated, info


@dataclass
class Go2CommandTask:
    """Go2 velocity tracking with the command (vx, vy, yaw rate) hidden; expert: a walking policy artifact."""

    name: str = "go2_command"
    context_dim: int = 3
    pixels: bool = False
    success_metric: str = "tracking_error"
    max_steps: int = 250  # 5 s at the 50 Hz control rate
    expert_path: str | None = None
    # The command box of configs/env/Go2Velocity-v1 (policies/reference/go2_stand/contract.json "command":
    # vx [-1, 1], vy [-0.5, 0.5], yaw [-1, 1] rad/s), split by a 4-cell checkerboard on (vx, vy, yaw).
    command_low: tuple[float, float, float] = (-1.0, -0.5, -1.0)
    command_high: tuple[float, float, float] = (1.0, 0.5, 1.0)
    cells: int = 4
    success_error: float = 0.25  # m/s mean planar velocity error (legged_gym's tracking_sigma = 0.25)
    expert_noise: float = 0.0

    def sample_contexts(self, n: int, split: str, seed: int) -> np.ndarray:
        """Commands (n, 3) from the split's checkerboard cells."""
        return sample_checkerboard(
            n, split, seed, np.array(self.command_low), np.array(self.command_high), self.cells
        )

    def make_env(self, context: np.ndarray, seed: int | None = None) -> gym.Env:
        """Go2Velocity-v1 at this command, the command hidden."""
        _check_context(self, context)
        env = HiddenCommandGo2(context, self.max_steps, self.success_error)
        if seed is not None:
            env.reset(seed=seed)
        return env

    def expert(self, env: gym.Env, context: np.ndarray, seed: int | None = None) -> Policy:
        """The artifact's ONNX network on the env's full observation (command included), with the
        contract's history stacking and normalisation (as robolearn.deploy.policy does)."""
        from robolearn.deploy.artifact import load_artifact
        from robolearn.deploy.policy import OnnxPolicy

        if self.expert_path is None:
            raise UserError(
                "task go2_command needs expert=<policy artifact dir or run dir> (a walking policy)"
            )
        artifact = load_artifact(resolve_policy_artifact(self.expert_path))
        contract = artifact.contract
        wrapper = env
        while not isinstance(wrapper, HiddenCommandGo2):
            if not isinstance(wrapper, gym.Wrapper):
                raise UserError(
                    f"the go2_command expert needs a HiddenCommandGo2 env, got {type(env).__name__}"
                )
            wrapper = wrapper.env
        frame_size = wrapper.full_observation.shape[0]
        if contract.frame_size != frame_size:
            raise UserError(
                f"expert={self.expert_path}: its policy reads {contract.frame_size} values per frame, "
                f"robolearn/Go2Velocity-v1 gives {frame_size}; use a policy trained on that env"
            )
        network = OnnxPolicy(artifact.network_path, contract)
        history = np.zeros((contract.history_length, frame_size), dtype=np.float32)
        filled = [False]
        rng = np.random.default_rng(seed)

        def act(obs: Obs) -> np.ndarray:
            frame = wrapper.full_observation
            if not filled[0]:
                history[:] = frame
                filled[0] = True
            else:
                history[:-1] = history[1:]
                history[-1] = frame
            x = history.reshape(-1)
            if contract.normalization is not None:
                x = contract.normalization.apply(x)
            action = network(np.asarray(x, dtype=np.float32).reshape(1, -1))
            if self.expert_noise > 0:
                action = action + self.expert_noise * rng.standard_normal(action.shape)
            return action.astype(np.float32)

        return act


# ---------------------------------------------------------------------------------------------------------
# Registry


def _unwrap(env: gym.Env, cls: type) -> Any:
    base = env.unwrapped
    if not isinstance(base, cls):
        raise UserError(f"this expert needs a {cls.__name__}, got {type(base).__name__}")
    return base


def _check_context(task: Any, context: np.ndarray) -> None:
    c = np.asarray(context)
    if c.shape != (task.context_dim,) or not np.all(np.isfinite(c)):
        raise UserError(
            f"context {np.array2string(c, precision=3)} does not fit task {task.name}; "
            f"give {task.context_dim} finite numbers (sample_contexts makes them)"
        )


_FACTORIES: dict[str, Callable[..., Any]] = {
    "pointmass_pixels": PointMassPixelsTask,
    "reacher": ReacherTask,
    "pusher": PusherTask,
    "bimodal": BimodalTask,
    "go2_command": Go2CommandTask,
}
TASKS: tuple[str, ...] = tuple(_FACTORIES)


def get_task(name: str, **overrides: Any) -> ImitationTask:
    """The task named `name`, with dataclass fields overridden (e.g. expert_noise=0.0)."""
    if name not in _FACTORIES:
        raise UserError(
            f"task={name} is not known{close_matches(str(name), TASKS)}; choose one of {', '.join(TASKS)}"
        )
    factory = _FACTORIES[name]
    try:
        task: ImitationTask = factory(**overrides)
    except TypeError as exc:
        raise UserError(f"task {name} has no setting among {sorted(overrides)} ({exc})") from None
    return task
