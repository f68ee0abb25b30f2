"""Every registered robolearn task: creation, stepping, the env checkers, snapshots, limits, clips."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import gymnasium as gym
import mujoco
import numpy as np
import pytest
from gymnasium.utils.env_checker import check_env as gym_check_env
from stable_baselines3.common.env_checker import check_env as sb3_check_env

from robolearn.envs.factory import make_env, register_envs
from robolearn.envs.state import EnvSnapshotWrapper
from robolearn.envs.tasks import BUILDABLE
from robolearn.envs.tasks.base import RobotTask
from robolearn.envs.tasks.motion import (
    MotionClip,
    default_clip_paths,
    load_clip,
    reference_kinematics,
    save_clip,
)
from robolearn.errors import UserError
from robolearn.robots import G1_SPEC
from robolearn.robots.model import load_model

register_envs()
ENV_IDS = list(BUILDABLE)
# Every option on, to exercise randomisation, delays and pushes in the same tests.
FULL_DR = {
    "friction": [0.5, 1.25],
    "link_mass": [0.9, 1.1],
    "com_offset": 0.03,
    "kp_scale": [0.9, 1.1],
    "kd_scale": [0.9, 1.1],
    "motor_strength": [0.9, 1.1],
    "action_delay": [0, 2],
    "obs_noise": 1.0,
    "push_interval_s": [0.1, 0.3],
    "push_velocity": 0.5,
}


def _task(env: gym.Env) -> RobotTask:
    task = env.unwrapped
    assert isinstance(task, RobotTask)
    return task


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_registered_env_resets_and_steps_without_nan(env_id: str) -> None:
    env = gym.make(env_id)
    obs, _ = env.reset(seed=0)
    assert obs.dtype == np.float32 and obs.shape == env.observation_space.shape
    rng = np.random.default_rng(0)
    for kind in ("zero", "random"):
        for _ in range(60):
            action = (
                np.zeros(env.action_space.shape)
                if kind == "zero"
                else rng.uniform(-1, 1, env.action_space.shape)
            )
            obs, reward, terminated, truncated, info = env.step(action.astype(np.float32))
            assert obs.dtype == np.float32
            assert np.isfinite(obs).all() and np.isfinite(reward), f"{env_id} {kind}"
            assert set(info["reward_terms"]) == set(_task(env).reward_names)
            if terminated or truncated:
                env.reset()
    env.close()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_registered_env_passes_gymnasium_and_sb3_checkers(env_id: str) -> None:
    env = gym.make(env_id)
    gym_check_env(env.unwrapped, skip_render_check=True)
    with warnings.catch_warnings():
        # SB3 recommends a [-1, 1] action box; ours is [-action_clip, action_clip] in action-scale units.
        warnings.simplefilter("ignore", UserWarning)
        sb3_check_env(env, warn=True)
    env.close()


def test_config_files_build_their_envs() -> None:
    from omegaconf import OmegaConf

    from robolearn.config.validate import compose_config

    for name in ("Go2Velocity-v1", "G1Velocity-v1", "G1Tracking-v1"):
        cfg = compose_config("train", [f"env={name}", "agent=ppo"])
        env = make_env(cfg.env)
        task = _task(env)
        assert env.spec is not None and env.spec.id == f"robolearn/{name}" == cfg.env.id
        # The config's randomisation reached the task, range by range.
        wanted = OmegaConf.to_container(cfg.env.kwargs.randomization)
        assert isinstance(wanted, dict) and wanted
        for key, value in wanted.items():
            got = getattr(task.randomization, key)
            assert (list(got) if isinstance(got, tuple) else got) == value, f"{name}: {key}"
        obs, _ = env.reset(seed=1)
        assert obs.shape == env.observation_space.shape and np.isfinite(obs).all()
        # Every config randomises the joint losses, so the model differs from the file's.
        assert task.dynamics is not None
        assert not np.array_equal(task.model.dof_frictionloss, task.mj_model.dof_frictionloss)
        obs, reward, *_ = env.step(env.action_space.sample())
        assert np.isfinite(obs).all() and np.isfinite(reward)
        env.close()


@pytest.mark.parametrize("env_id", ENV_IDS)
def test_snapshot_round_trip_continues_identically(env_id: str) -> None:
    def build() -> gym.Env:
        return EnvSnapshotWrapper(gym.make(env_id, randomization=FULL_DR))

    rng = np.random.default_rng(1)
    actions = rng.uniform(-1, 1, (40, *gym.make(env_id).action_space.shape)).astype(np.float32)
    env = build()
    env.reset(seed=3)
    for a in actions[:15]:
        env.step(a)
    snapshot = env.get_state()
    expected = [env.step(a)[:2] for a in actions[15:]]

    fresh = build()
    fresh.reset(seed=99)  # a different episode, overwritten by the snapshot
    fresh.set_state(snapshot)
    got = [fresh.step(a)[:2] for a in actions[15:]]
    for (o1, r1), (o2, r2) in zip(expected, got, strict=True):
        np.testing.assert_array_equal(o1, o2)
        assert r1 == r2


@pytest.mark.parametrize("env_id", ["robolearn/Go2Velocity-v1", "robolearn/G1Velocity-v1"])
def test_pd_torques_stay_within_limits_under_extreme_actions(env_id: str) -> None:
    env = gym.make(env_id)
    task = _task(env)
    env.reset(seed=0)
    spec = task.robot_spec
    index = task.backend.layout.index
    limits = spec.torque_limit_array
    for sign in (1.0, -1.0, 1.0, -1.0):
        for _ in range(5):
            env.step(np.full(spec.num_joints, sign * 1e6, dtype=np.float32))
            torque = task.data.actuator_force[index.actuator_ids]
            assert np.all(np.abs(torque) <= limits + 1e-9)
    # A NaN action is clipped to NaN targets, which the PD law turns into a limp (zero-torque) joint.
    env.step(np.full(spec.num_joints, np.nan, dtype=np.float32))
    assert np.all(task.data.actuator_force[index.actuator_ids] == 0.0)


def test_unknown_kwargs_fail_with_one_line_errors() -> None:
    with pytest.raises(UserError, match="did you mean friction"):
        gym.make("robolearn/Go2Velocity-v1", randomization={"frictoin": [0.5, 1.0]})
    with pytest.raises(UserError, match="unknown reward term"):
        gym.make("robolearn/Go2Velocity-v1", reward_scales={"tracking_speed": 1.0})
    with pytest.raises(UserError, match="unknown backend"):
        gym.make("robolearn/Go2Velocity-v1", backend="isaac")
    with pytest.raises(UserError, match="must be positive"):
        gym.make("robolearn/Go2Velocity-v1", randomization={"friction": [1.2, 0.5]})


def test_falls_terminate_and_time_limits_truncate() -> None:
    env = gym.make("robolearn/G1Velocity-v1", max_episode_steps=400)
    env.reset(seed=0)
    # The G1 cannot stand on PD alone (docs/robots.md): zero actions must end in a fall.
    for _ in range(400):
        _, _, terminated, truncated, info = env.step(np.zeros(23, dtype=np.float32))
        if terminated:
            assert not truncated and info["reward_terms"]["termination"] == 1.0
            break
    else:
        pytest.fail("the G1 did not fall on zero actions")
    go2 = gym.make("robolearn/Go2Velocity-v1", max_episode_steps=20)
    go2.reset(seed=0)
    for step in range(20):
        _, _, terminated, truncated, _ = go2.step(np.zeros(12, dtype=np.float32))
        assert not terminated
        assert truncated == (step == 19)


def test_commands_stay_in_their_ranges_and_are_resampled() -> None:
    env = gym.make("robolearn/Go2Velocity-v1", command_resample_s=0.1, standing_fraction=0.0)
    task = _task(env)
    env.reset(seed=0)
    seen = {tuple(task.command[0])}
    for _ in range(20):
        env.step(np.zeros(12, dtype=np.float32))
        seen.add(tuple(task.command[0]))
    assert len(seen) >= 4
    commands = np.array(sorted(seen))
    assert np.all(np.abs(commands[:, 0]) <= 1.0) and np.all(np.abs(commands[:, 1]) <= 0.5)
    assert np.all(np.abs(commands[:, 2]) <= 1.0)


# -- motion clips ------------------------------------------------------------------------------------
def test_shipped_clips_load_and_are_small() -> None:
    paths = default_clip_paths("g1")
    assert {p.stem for p in paths} == {"squat", "arm_swing", "weight_shift", "stepping"}
    for path in paths:
        assert path.stat().st_size < 50_000
        clip = load_clip(path)
        assert clip.robot == "g1" and clip.fps == 50.0 and clip.periodic
        assert clip.joint_pos.shape == (clip.num_frames, G1_SPEC.num_joints)


def test_clip_round_trips_through_npz(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    frames = 30
    quat = rng.normal(size=(frames, 4))
    quat /= np.linalg.norm(quat, axis=1, keepdims=True)
    names = tuple(reversed(G1_SPEC.joint_names))  # any joint order is allowed in a file
    clip = MotionClip(
        "probe",
        "g1",
        30.0,
        names,
        rng.normal(size=(frames, len(names))),
        rng.normal(size=(frames, 3)),
        quat,
        False,
    )
    save_clip(tmp_path / "probe.npz", clip)
    loaded = load_clip(tmp_path / "probe.npz")
    assert (
        loaded.name == "probe" and loaded.fps == 30.0 and loaded.joint_names == names and not loaded.periodic
    )
    np.testing.assert_allclose(loaded.joint_pos, clip.joint_pos, atol=1e-6)  # stored as float32
    np.testing.assert_allclose(loaded.root_pos, clip.root_pos, atol=1e-6)
    np.testing.assert_allclose(loaded.root_quat, clip.root_quat, atol=1e-6)
    ordered = loaded.in_spec_order(G1_SPEC)
    np.testing.assert_allclose(ordered.joint_pos[:, 0], clip.joint_pos[:, -1], atol=1e-6)


def test_bad_clips_are_refused(tmp_path: Path) -> None:
    np.savez(tmp_path / "broken.npz", fps=50.0, joint_pos=np.zeros((3, 2)))
    with pytest.raises(UserError, match="lacks key"):
        load_clip(tmp_path / "broken.npz")
    with pytest.raises(UserError, match="not found"):
        load_clip(tmp_path / "missing.npz")


def test_reference_kinematics_keep_stance_feet_on_the_floor() -> None:
    model = load_model(G1_SPEC)
    feet = list(G1_SPEC.foot_bodies)
    for path in default_clip_paths("g1"):
        ref = reference_kinematics(model, G1_SPEC, load_clip(path), feet)
        lowest = ref.body_pos[:, :, 2].min(axis=1)
        # The ankle-roll frame sits 0.035 m above the sole: one foot is always down.
        np.testing.assert_allclose(lowest, 0.035, atol=2e-3, err_msg=path.stem)
        assert np.isfinite(ref.body_lin_vel).all() and np.isfinite(ref.body_ang_vel).all()


def test_tracking_env_starts_on_its_reference() -> None:
    env = gym.make("robolearn/G1Tracking-v1", init_joint_noise=0.0)
    task = _task(env)
    env.reset(seed=4)
    np.testing.assert_allclose(
        task.data.qpos[task.backend.layout.index.qpos_adr], task.reference("joint_pos")[0]
    )
    _, _, _, _, info = env.step(np.zeros(23, dtype=np.float32))
    # One step after starting on the reference, every body is close to it.
    assert info["reward_terms"]["body_pos"] > 0.9


def test_body_velocities_match_mujoco() -> None:
    env = gym.make("robolearn/G1Tracking-v1")
    task = _task(env)
    env.reset(seed=0)
    for _ in range(5):
        env.step(env.action_space.sample())
    frame = task.backend.frame()
    data, model = task.data, task.model
    for row, body in enumerate(task.backend.layout.body_ids):
        vel = np.zeros(6)
        mujoco.mj_objectVelocity(model, data, mujoco.mjtObj.mjOBJ_XBODY, int(body), vel, 0)
        np.testing.assert_allclose(frame.body_ang_vel[0, row], vel[:3], atol=1e-9)
        np.testing.assert_allclose(frame.body_lin_vel[0, row], vel[3:], atol=1e-9)


def test_rgb_array_rendering_follows_the_robot() -> None:
    # MuJoCo picks its GL backend at import, so render in a fresh process with EGL (headless).
    code = (
        "import gymnasium as gym, numpy as np\n"
        "from robolearn.envs.factory import register_envs\n"
        "register_envs()\n"
        "env = gym.make('robolearn/Go2Velocity-v1', render_mode='rgb_array')\n"
        "env.reset(seed=0)\n"
        "frame = env.render()\n"
        "print(frame.shape, frame.dtype, int(frame.std() > 5))\n"
    )
    env = {**os.environ, "MUJOCO_GL": "egl"}
    # 180 s: on a loaded shared machine the child has been seen to take over 60 s to exit after printing.
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=180, env=env)
    if proc.returncode != 0 and (
        "EGL" in proc.stderr or "OpenGL" in proc.stderr or "glGetError" in proc.stderr
    ):
        pytest.skip(f"no headless OpenGL here: {proc.stderr.strip().splitlines()[-1]}")
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "(240, 320, 3) uint8 1"


def test_velocity_metrics_measure_the_tracking_error_in_physical_units() -> None:
    env = gym.make("robolearn/Go2Velocity-v1", standing_fraction=0.0)
    task = _task(env)
    env.reset(seed=3)
    task.command[0] = (0.8, -0.3, 0.5)
    _, _, _, _, info = env.step(np.zeros(12, dtype=np.float32))
    frame = task.backend.frame()
    from robolearn.envs.tasks.rotations import quat_rotate_inverse

    v_body = quat_rotate_inverse(frame.root_quat, frame.root_lin_vel)[0]
    # A robot standing still misses the command by its own size; the metric is that distance.
    expected = np.hypot(0.8 - v_body[0], -0.3 - v_body[1])
    assert info["metrics"]["lin_vel_error"] == pytest.approx(expected)
    assert info["metrics"]["lin_vel_error"] == pytest.approx(np.hypot(0.8, 0.3), abs=0.3)
    assert info["metrics"]["ang_vel_error"] == pytest.approx(abs(0.5 - frame.root_ang_vel[0, 2]))


def test_tracking_metrics_are_small_on_the_reference_and_grow_when_the_robot_falls() -> None:
    env = gym.make("robolearn/G1Tracking-v1")
    env.reset(seed=0)
    errors = []
    for _ in range(60):
        _, _, terminated, _, info = env.step(np.zeros(23, dtype=np.float32))
        errors.append(info["metrics"]["body_pos_error"])
        if terminated:
            break
    # It starts on the reference (centimetres) and drifts off it without a policy.
    assert errors[0] < 0.05
    assert max(errors) > 3 * errors[0]
    assert set(info["metrics"]) == {"body_pos_error", "anchor_pos_error", "anchor_rot_error"}


def test_tracking_only_positive_rewards_floor_each_step_at_zero_but_keep_the_fall_penalty() -> None:
    # Jerky random actions: the action-rate and joint-limit penalties outweigh the tracking terms.
    rewards: dict[bool, list[tuple[float, bool]]] = {}
    for clipped in (False, True):
        env = gym.make("robolearn/G1Tracking-v1", only_positive_rewards=clipped)
        env.reset(seed=0)
        rng = np.random.default_rng(0)
        rows = rewards[clipped] = []
        for _ in range(200):
            _, r, terminated, truncated, _ = env.step(rng.uniform(-3, 3, 23).astype(np.float32))
            rows.append((float(r), bool(terminated)))
            if terminated or truncated:
                break
        env.close()
    fall = -50.0 * G1_SPEC.control_dt  # the termination scale, per second, times the step
    plain, floored = rewards[False], rewards[True]
    assert len(plain) == len(floored) and plain[-1][1]  # same rollout, ending in a fall
    assert min(r for r, done in plain if not done) < 0.0  # unclipped: staying up can cost
    for (r0, done), (r1, _) in zip(plain, floored, strict=True):
        if done:  # the fall keeps its penalty on top of a floored sum
            assert fall <= r1 < fall + 0.2 and r1 >= r0
        else:
            assert r1 == pytest.approx(max(r0, 0.0), abs=1e-9)


def test_privileged_base_velocity_observation_is_appended_scaled() -> None:
    env = gym.make("robolearn/Go2Velocity-v1", observe_base_lin_vel=True, randomization={"obs_noise": 0.0})
    plain = gym.make("robolearn/Go2Velocity-v1", randomization={"obs_noise": 0.0})
    task = _task(env)
    obs, _ = env.reset(seed=1)
    ref, _ = plain.reset(seed=1)
    assert obs.shape == (ref.shape[0] + 3,) and env.observation_space.shape == obs.shape
    np.testing.assert_array_equal(obs[:-3], ref)
    for _ in range(5):
        obs, *_ = env.step(np.full(12, 0.5, dtype=np.float32))
    from robolearn.envs.tasks.rotations import quat_rotate_inverse

    frame = task.backend.frame()
    v_body = quat_rotate_inverse(frame.root_quat, frame.root_lin_vel)[0]
    np.testing.assert_allclose(obs[-3:], 2.0 * v_body, rtol=1e-5, atol=1e-6)
    assert np.abs(v_body).max() > 0.01  # the robot moved, so the check compares something


GAIT_SCALES = {"gait_contact": 0.5, "swing_height": -10.0}


def test_gait_clock_is_observed_and_its_rewards_follow_the_feet() -> None:
    env = gym.make(
        "robolearn/Go2Velocity-v1",
        gait_period_s=0.5,
        reward_scales=GAIT_SCALES,
        randomization={"obs_noise": 0.0},
    )
    plain = gym.make("robolearn/Go2Velocity-v1", randomization={"obs_noise": 0.0})
    task = _task(env)
    obs, _ = env.reset(seed=2)
    ref, _ = plain.reset(seed=2)
    assert obs.shape == (47,) and env.observation_space.shape == (47,)
    np.testing.assert_array_equal(obs[:45], ref)
    np.testing.assert_allclose(obs[45:], [0.0, 1.0])  # phase 0 at the episode start
    # Trot: at phase 0 the diagonal FR+RL stands and FL+RR swings; half a cycle later they swap.
    np.testing.assert_array_equal(task.stance_target(task.episode_step)[0], [True, False, False, True])
    rng = np.random.default_rng(0)
    swings = 0
    for k in range(1, 40):
        target = task.stance_target(task.episode_step)[0].copy()
        obs, _, terminated, _, info = env.step(rng.uniform(-1, 1, 12).astype(np.float32))
        assert not terminated
        angle = 2 * np.pi * k * 0.02 / 0.5
        np.testing.assert_allclose(obs[45:], [np.sin(angle), np.cos(angle)], atol=1e-6)
        # The terms, recomputed by hand from the foot heights against the clock the policy acted on.
        z = task.backend.frame().body_pos[0, :, 2]
        contact = z < task.contact_height
        assert info["reward_terms"]["gait_contact"] == pytest.approx(np.mean(contact == target))
        height = z - (task.contact_height - 0.01)
        swing_err = np.sum(np.square(height - 0.08) * ~target)
        assert info["reward_terms"]["swing_height"] == pytest.approx(swing_err)
        swings += int(not target.all())
    assert swings == 39  # every step had swing feet (duty 0.5)
    # 39 steps = 1.56 cycles: the other diagonal stands now.
    np.testing.assert_array_equal(task.stance_target(task.episode_step)[0], [False, True, True, False])


def test_gait_options_fail_with_one_line_errors() -> None:
    with pytest.raises(UserError, match="gait_contact follows the gait clock; set gait_period_s"):
        gym.make("robolearn/Go2Velocity-v1", reward_scales=GAIT_SCALES)
    with pytest.raises(UserError, match=r"gait_period_s=0\.0 must be positive"):
        gym.make("robolearn/Go2Velocity-v1", gait_period_s=0.0)
    with pytest.raises(UserError, match=r"gait_duty=1.0 must be in \(0, 1\)"):
        gym.make("robolearn/Go2Velocity-v1", gait_period_s=0.5, gait_duty=1.0)


def test_calf_gear_ratio_option_rebuilds_gains_and_armature() -> None:
    from robolearn.robots import GO2_SPEC
    from robolearn.robots.actuators import GO2_HIP, go2_calf_motor

    # null keeps the registered spec (the one contract.json and deploy check against).
    task = _task(gym.make("robolearn/Go2Velocity-v1", robot_options={"calf_gear_ratio": None}))
    assert task.robot_spec is GO2_SPEC
    # mjlab's 9:1 calf: armature I x 81, kp = armature x (2 pi 10 Hz)^2, in the task's gains and the model.
    task = _task(gym.make("robolearn/Go2Velocity-v1", robot_options={"calf_gear_ratio": 9.0}))
    calf = [i for i, name in enumerate(GO2_SPEC.joint_names) if "calf" in name]
    hips = [i for i in range(12) if i not in calf]
    armature = 0.000111842 * 9.0**2
    assert go2_calf_motor(9.0).armature == pytest.approx(armature)
    np.testing.assert_allclose(np.asarray(task.robot_spec.armature)[calf], armature)
    np.testing.assert_allclose(task.kp[0, calf], armature * (2 * np.pi * 10) ** 2)  # 35.8, mjlab's
    np.testing.assert_allclose(task.kp[0, hips], GO2_HIP.gains()[0])
    index = task.backend.layout.index
    np.testing.assert_allclose(task.model.dof_armature[index.qvel_adr[calf]], armature)
    # The default ratio is 6.33 x 45.43/23.7 = 12.13: its kp is 65.
    assert GO2_SPEC.kp[2] == pytest.approx(0.000111842 * (6.33 * 45.43 / 23.7) ** 2 * (2 * np.pi * 10) ** 2)
    assert GO2_SPEC.kp[2] == pytest.approx(65.0, abs=0.1)


def test_robot_and_randomisation_options_fail_with_one_line_errors() -> None:
    with pytest.raises(
        UserError, match="unknown robot_options key 'calf_ratio' for robot go2 \\(did you mean"
    ):
        gym.make("robolearn/Go2Velocity-v1", robot_options={"calf_ratio": 9})
    with pytest.raises(
        UserError, match="unknown robot_options key 'calf_gear_ratio' for robot g1; options: none"
    ):
        gym.make("robolearn/G1Velocity-v1", robot_options={"calf_gear_ratio": 9})
    with pytest.raises(UserError, match=r"robot_options.calf_gear_ratio=-3 must be a positive number"):
        gym.make("robolearn/Go2Velocity-v1", robot_options={"calf_gear_ratio": -3})
    with pytest.raises(UserError, match=r"randomization.added_base_mass=\[3.0, -1.0\] must have min <= max"):
        gym.make("robolearn/G1Velocity-v1", randomization={"added_base_mass": [3, -1]})
    with pytest.raises(UserError, match=r"randomization.joint_friction=\[-0.5, 1.0\] must be non-negative"):
        gym.make("robolearn/G1Velocity-v1", randomization={"joint_friction": [-0.5, 1]})
