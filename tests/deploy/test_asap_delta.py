"""ASAP's delta-action task (robolearn.sim2real.delta_task) on a recording from a weaker-motor target.

With the target "the nominal robot with 0.65 x Kp", the delta that makes the nominal simulator's PD law
apply the target's torque is known: kp (q0 + s a' - q) = 0.65 kp (q0 + s a - q) gives
a' - a = -0.35 (a - (q - q0) / s). Replaying the recording with it must land nearer the recorded next
states than replaying the bare actions; the reward must say so; and the task's robot action is the one
shared definition of the delta (robolearn.sim2real.delta.apply_delta).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest

from robolearn.envs.vector import BatchedVecEnv
from robolearn.errors import UserError
from robolearn.robots.registry import get_robot_spec
from robolearn.sim2real.delta import apply_delta, joint_mask
from robolearn.sim2real.delta_task import DeltaActionTask

SPEC = get_robot_spec("go2")
SCALE = 0.5
N = 16


@pytest.fixture(scope="module")
def dataset(kp065_dataset: Path) -> Path:
    """conftest's recording of the standing policy on the kp065 target."""
    return kp065_dataset


def _analytic_delta(task: DeltaActionTask) -> np.ndarray:
    """The agent output that turns the nominal PD law into the 0.65 x Kp target's, per env."""
    q = task.backend.frame().joint_pos
    a = task.recorded_action
    offset = (q - SPEC.default_pos_array) / SPEC.action_scale_array
    return np.clip(-0.35 * (a - offset) / SCALE, -1.0, 1.0)


def _replay(dataset: Path, analytic: bool, policy: Any = None) -> tuple[float, float]:
    """(mean joint position error in rad, mean reward per step) over 3 episodes of every env, with
    no delta, the analytic one, or a trained policy's."""
    task = DeltaActionTask(str(dataset), num_envs=N, backend="batch", horizon=4, delta_scale=SCALE)
    venv = BatchedVecEnv(task)
    venv.seed(0)
    obs = venv.reset()
    errors, rewards = [], []
    try:
        for _ in range(12):
            if policy is not None:
                delta = np.asarray(policy.predict(obs, deterministic=True)[0])
            elif analytic:
                delta = _analytic_delta(task)
            else:
                delta = np.zeros((N, SPEC.num_joints))
            obs, reward, _, _ = venv.step(delta.astype(np.float32))
            errors.append(task.last_metrics["joint_pos_error"].mean())
            rewards.append(reward.mean())
    finally:
        venv.close()
    return float(np.mean(errors)), float(np.mean(rewards))


def test_the_analytic_delta_reproduces_the_weaker_motors_transitions(dataset: Path) -> None:
    bare_error, bare_reward = _replay(dataset, analytic=False)
    fixed_error, fixed_reward = _replay(dataset, analytic=True)
    assert fixed_error < 0.5 * bare_error, (fixed_error, bare_error)
    assert fixed_reward > bare_reward


def test_a_delay_is_expressible_from_the_previous_action_in_the_delta_observation(
    delay1_dataset: Path,
) -> None:
    """On a target that executes the action sent the step before, the delta previous - action, read
    from the delta observation's last two blocks (the action to correct, the one recorded before it),
    replays the recording exactly as the nominal simulator with the true one-period delay does, and
    far better than the bare replay (0.0067 against 0.0315 rad here). Without previous_action the
    observation lacks that block, and the delta cannot express a delay."""
    from robolearn.sim2real.physics import PhysicsParams, TrainingPhysics, replay_errors, replay_starts

    nj = SPEC.num_joints
    scale = 4.0  # wide enough that no step's previous - action is clipped
    without = DeltaActionTask(str(delay1_dataset), horizon=4, previous_action=False)
    with_previous = DeltaActionTask(str(delay1_dataset), horizon=4)
    try:
        assert with_previous.observation_space.shape[0] == without.observation_space.shape[0] + nj
    finally:
        without.close()
        with_previous.close()
    moved: list[float] = []

    def from_observation(task: DeltaActionTask, obs: np.ndarray) -> np.ndarray:
        action, previous = obs[:, -2 * nj : -nj], obs[:, -nj:]
        np.testing.assert_allclose(action, task.recorded_action, atol=1e-6)
        np.testing.assert_allclose(previous, task.previous_recorded, atol=1e-6)
        moved.append(float(np.abs(previous - action).max()))
        return (previous - action) / scale

    starts = replay_starts(delay1_dataset, 4)
    bare = replay_errors(delay1_dataset, starts, horizon=4)
    delayed = replay_errors(
        delay1_dataset, starts, horizon=4, physics=TrainingPhysics(PhysicsParams(delay=1))
    )
    delta = replay_errors(delay1_dataset, starts, horizon=4, delta_scale=scale, delta_rule=from_observation)
    assert max(moved) > 0.1  # the walker's actions change from step to step, so the delay matters
    assert delta.joint_pos_rms == pytest.approx(delayed.joint_pos_rms, rel=1e-6)
    assert delta.joint_pos_rms < 0.3 * bare.joint_pos_rms, (delta, bare)


@pytest.fixture(scope="module")
def delta_run(dataset: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """train_delta as the ASAP pipeline runs it (robolearn.asap.train_delta_overrides: its fixed
    learning rate), with 256 envs, a small network and 49k steps (about 15 s here)."""
    from robolearn.asap import TrainDeltaSettings, train_delta_overrides
    from robolearn.config.validate import compose_config, validate_train_config
    from robolearn.runs.rsl_trainer import train_rsl_ppo

    run = tmp_path_factory.mktemp("delta") / "run"
    small = ["agent.actor_hidden_dims=[64,64]", "agent.critic_hidden_dims=[64,64]", "eval.episodes=2"]
    settings = TrainDeltaSettings(steps=49152, delta_scale=SCALE, n_envs=256, overrides=small)
    overrides = train_delta_overrides(settings, "go2", dataset, 0, run)
    assert any(o.startswith("hydra.run.dir=") for o in overrides)  # the verb's run folder; the test gives it
    keep = [o for o in overrides if not o.startswith(("hydra.", "logger.progress="))]
    cfg = compose_config("train", [*keep, "logger.progress=none", "torch_threads=1"])
    validate_train_config(cfg)
    assert cfg.agent.schedule == "fixed" and cfg.agent.learning_rate == pytest.approx(1e-3)
    train_rsl_ppo(cfg, run, "test")
    return run


def test_a_trained_delta_replays_the_weaker_motors_better_than_none(dataset: Path, delta_run: Path) -> None:
    """The trained delta cuts the bare replay's joint error from 0.0134 to 0.0081 rad on this 1.2 s
    recording (benchmarks/asap_delta.py trains longer on a longer one and compares with the analytic
    delta)."""
    from robolearn.agents.rsl_ppo import RslPolicy

    policy = RslPolicy.load(delta_run / "final" / "model.zip")
    bare_error, _ = _replay(dataset, analytic=False)
    trained_error, _ = _replay(dataset, analytic=False, policy=policy)
    assert trained_error < 0.75 * bare_error, (trained_error, bare_error)


def test_finetune_adds_the_frozen_delta_with_the_scale_it_was_trained_with(delta_run: Path) -> None:
    """delta_action on the velocity task: each robot action is a + 0.5 x d(s, a), d the delta run's
    actor on delta_observation (the train_delta input), its own last output fed back; the policy's
    observation is unchanged (it deploys without the delta)."""
    from robolearn.agents.rsl_ppo import RslPolicy
    from robolearn.envs.tasks.velocity import VelocityTask
    from robolearn.sim2real.delta_task import delta_observation

    policy = RslPolicy.load(delta_run / "final" / "model.zip")
    plain = VelocityTask(num_envs=3, backend="batch")
    task = VelocityTask(num_envs=3, backend="batch", delta_action={"run": str(delta_run)})
    try:
        assert task.observation_space.shape == plain.observation_space.shape == (45,)
        assert task.frozen_delta.scale == SCALE and task.frozen_delta.previous_action
        for t in (task, plain):  # the same reset draws: both start from the same state
            t.seed_rng(0)
            t.reset_envs(np.arange(3))
        rng = np.random.default_rng(0)
        for _ in range(3):
            action = rng.uniform(-1.0, 1.0, size=(3, 12))
            frame = task.backend.frame()
            previous = task.last_action.copy()  # the policy's action of the step before
            obs = delta_observation(SPEC, frame, np.arange(3), task.last_delta.copy(), action, previous)
            d = np.clip(policy.predict(obs, deterministic=True)[0], -1.0, 1.0)
            expected = apply_delta(action, d, SCALE, np.ones(12))
            before = task.last_delta.copy()
            np.testing.assert_allclose(task.robot_action(action), expected, rtol=1e-6)
            task.last_delta = before  # the step below makes the same call
            task.step_envs(action)
            np.testing.assert_allclose(task.last_delta, d, rtol=1e-6)
            # The delta reaches the physics: the plain task, sent a + delta itself, lands alike.
            plain.step_envs(expected)
            np.testing.assert_allclose(
                task.backend.frame().joint_pos, plain.backend.frame().joint_pos, atol=1e-9
            )
            np.testing.assert_array_equal(task.last_action, np.clip(action, -5, 5))  # the policy's own
        assert np.abs(task.last_delta).max() > 0.01  # the delta does act
    finally:
        task.close()
        plain.close()


def test_support_distance_is_zero_on_the_recording_and_grows_away_from_it(dataset: Path) -> None:
    """robolearn.sim2real.support: a recorded state is at distance 0; one with every joint 10 of the
    recording's standard deviations faster is at most 10 x sqrt(12 / 33) from it (RMS over the 33
    features) and past the default far (2); the gate is 1 up to near, 0 past far and linear between."""
    from robolearn.sim2real.recordings import load_delta_dataset
    from robolearn.sim2real.support import RecordingSupport, state_features, support_gate

    segments, prov = load_delta_dataset(dataset, "go2")
    support = RecordingSupport.from_segments(segments, prov["layout"], SPEC.default_pos_array)
    assert support.dim == 33 and (support.recorded_spacing > 0).all()
    layout = prov["layout"]
    r, v = int(layout["root_qpos_adr"]), int(layout["root_qvel_adr"])
    jq, jv = np.asarray(layout["joint_qpos_adr"]), np.asarray(layout["joint_qvel_adr"])
    q, dq = segments[0].qpos[:5], segments[0].qvel[:5]

    def features(joint_vel_offset: float | np.ndarray) -> np.ndarray:
        return state_features(
            q[:, r + 3 : r + 7],
            dq[:, v : v + 3],
            dq[:, v + 3 : v + 6],
            q[:, jq],
            dq[:, jv] + joint_vel_offset,
            SPEC.default_pos_array,
        )

    np.testing.assert_allclose(support.distance(features(0.0)), 0.0, atol=1e-6)
    pushed = support.distance(features(10.0 * support.std[-12:]))  # joint velocities are the last 12
    assert (pushed > 2.0).all() and (pushed <= 10.0 * np.sqrt(12 / 33) + 1e-9).all(), pushed
    np.testing.assert_allclose(support_gate(np.array([0.0, 2.0, 3.0, 4.0, 9.0]), 2.0, 4.0), [1, 1, 0.5, 0, 0])


def test_the_gated_delta_is_whole_on_recorded_states_and_gone_far_from_them(
    dataset: Path, delta_run: Path
) -> None:
    """delta_action.support (the asap_gated arm): on a recorded state the robot gets the same action
    as with the plain frozen delta; on a state far from the recording it gets the policy's action,
    no delta."""
    from robolearn.envs.backends.base import RootJointState
    from robolearn.envs.tasks.velocity import VelocityTask
    from robolearn.sim2real.recordings import load_delta_dataset

    segments, prov = load_delta_dataset(dataset, "go2")
    layout = prov["layout"]
    r, v = int(layout["root_qpos_adr"]), int(layout["root_qvel_adr"])
    jq, jv = np.asarray(layout["joint_qpos_adr"]), np.asarray(layout["joint_qvel_adr"])
    q, dq = segments[0].qpos[[10, 10]], segments[0].qvel[[10, 10]].copy()
    dq[1, jv] += 10.0  # env 1: the same state with every joint 10 rad/s faster
    state = RootJointState(
        root_pos=q[:, r : r + 3],
        root_quat=q[:, r + 3 : r + 7],
        root_lin_vel=dq[:, v : v + 3],
        root_ang_vel=dq[:, v + 3 : v + 6],
        joint_pos=q[:, jq],
        joint_vel=dq[:, jv],
    )
    gated = VelocityTask(
        num_envs=2,
        backend="batch",
        delta_action={"run": str(delta_run), "support": {"near": 1.0, "far": 2.0}},
    )
    plain = VelocityTask(num_envs=2, backend="batch", delta_action={"run": str(delta_run)})
    try:
        action = np.random.default_rng(0).uniform(-0.5, 0.5, size=(2, 12))
        sent = {}
        for name, task in (("gated", gated), ("plain", plain)):
            task.backend.reset_envs(np.arange(2), state)
            sent[name] = task.robot_action(action)
        assert np.abs(sent["plain"] - action).max() > 1e-3  # the delta acts on both envs
        np.testing.assert_allclose(sent["gated"][0], sent["plain"][0], rtol=1e-6)  # on the recording
        np.testing.assert_array_equal(sent["gated"][1], action[1])  # far from it: no delta
        assert gated.frozen_delta.gate_mean == pytest.approx(0.5)
        assert plain.frozen_delta.gate_mean == 1.0
    finally:
        gated.close()
        plain.close()


@pytest.mark.parametrize(
    ("options", "robot", "needle"),
    [
        ({"run": "/nonexistent"}, "go2", "is not a finished train_delta run"),
        ({"checkpoint": "final"}, "go2", "delta_action.run is missing"),
        ({"run": "RUN", "checkpoint": "latest"}, "go2", "delta_action.checkpoint=latest is not allowed"),
        ({"run": "RUN", "lr": 1}, "go2", "delta_action.lr is not an option"),
        ({"run": "RUN"}, "g1", "is a delta for the go2, not the g1"),
        ({"run": "RUN", "support": {"near": 4.0, "far": 2.0}}, "go2", "need 0 <= near < far"),
        ({"run": "RUN", "support": {"near": 1.0, "width": 2.0}}, "go2", "delta_action.support.width is not"),
    ],
)
def test_a_wrong_delta_is_one_line(delta_run: Path, options: dict[str, Any], robot: str, needle: str) -> None:
    from robolearn.envs.tasks.velocity import VelocityTask

    given = {k: (str(delta_run) if v == "RUN" else v) for k, v in options.items()}
    with pytest.raises(UserError) as info:
        VelocityTask(robot=robot, delta_action=given)
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_the_delta_task_passes_the_env_checkers(dataset: Path) -> None:
    import warnings

    from gymnasium.utils.env_checker import check_env as gym_check_env
    from stable_baselines3.common.env_checker import check_env as sb3_check_env

    from robolearn.config.validate import compose_config
    from robolearn.envs import make_env

    cfg = compose_config("train", ["env=Go2DeltaAction-v0", f"env.kwargs.dataset={dataset}"]).env
    env = make_env(cfg)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gym_check_env(env.unwrapped, skip_render_check=True)
        sb3_check_env(make_env(cfg), warn=False)
    env.reset(seed=0)
    for _ in range(6):
        obs, reward, terminated, truncated, _ = env.step(env.action_space.sample())
        assert np.all(np.isfinite(obs)) and np.isfinite(reward)
        if terminated or truncated:
            env.reset()
    env.close()


def test_the_robot_action_is_the_one_delta_definition(dataset: Path) -> None:
    mask_joints = ["FR_calf_joint", "RL_thigh_joint"]
    task = DeltaActionTask(str(dataset), num_envs=2, horizon=3, delta_scale=0.25, delta_joints=mask_joints)
    try:
        task.reset_envs(np.arange(2))
        d = np.linspace(-2.0, 2.0, 24).reshape(2, 12)
        got = task.robot_action(np.clip(d, -1, 1))
        np.testing.assert_array_equal(
            got, apply_delta(task.recorded_action, d, 0.25, joint_mask(SPEC, mask_joints))
        )
        moved = np.flatnonzero(np.any(got != task.recorded_action, axis=0))
        assert [SPEC.joint_names[j] for j in moved] == sorted(mask_joints, key=SPEC.joint_names.index)
        assert np.abs(got - task.recorded_action).max() == pytest.approx(0.25)  # clip(d) x scale
    finally:
        task.close()


def test_episodes_start_on_recorded_states_and_last_the_horizon(dataset: Path) -> None:
    task = DeltaActionTask(str(dataset), num_envs=4, backend="batch", horizon=3)
    venv = BatchedVecEnv(task)
    venv.seed(1)
    venv.reset()
    try:
        frame = task.backend.frame()
        qpos, _ = task._recorded(np.arange(4), np.zeros(4, dtype=np.int64))
        np.testing.assert_allclose(frame.joint_pos, qpos[:, task._joint_q])
        np.testing.assert_allclose(frame.root_pos, qpos[:, :3])
        lengths = []
        for _ in range(6):
            _, _, _, infos = venv.step(np.zeros((4, 12), dtype=np.float32))
            lengths += [info["episode"]["l"] for info in infos if "episode" in info]
        assert lengths and set(lengths) == {3}
    finally:
        venv.close()


def test_reward_tolerances_come_from_the_bare_replay_of_the_recording(delay1_dataset: Path) -> None:
    """By default each state term's tolerance is the bare replay's RMS error on this recording, the
    same whatever num_envs; a given tolerance overrides its term only. On the delay recording the
    joint terms are several times the fixed defaults, under which the bare replay's joint-position
    term would be worth exp(-(0.03 / 0.01)^2) = 1e-4 and give PPO next to no gradient."""
    from robolearn.sim2real.delta_task import DEFAULT_TOLERANCES
    from robolearn.sim2real.physics import replay_errors, replay_starts

    small = DeltaActionTask(str(delay1_dataset), num_envs=2, backend="batch", horizon=4)
    wide = DeltaActionTask(
        str(delay1_dataset), num_envs=16, backend="batch", horizon=4, reward_tolerances={"base_pos": 0.02}
    )
    fixed = DeltaActionTask(str(delay1_dataset), horizon=4, tolerances_from_recording=False)
    try:
        assert fixed.reward_tolerances == DEFAULT_TOLERANCES
        for name, value in small.reward_tolerances.items():
            expected = 0.02 if name == "base_pos" else value
            assert wide.reward_tolerances[name] == pytest.approx(expected, rel=1e-9), name
        bare = replay_errors(delay1_dataset, replay_starts(delay1_dataset, 4), horizon=4)
        assert small.reward_tolerances["joint_pos"] == pytest.approx(bare.joint_pos_rms, rel=0.3)
        assert small.reward_tolerances["joint_pos"] > 2 * DEFAULT_TOLERANCES["joint_pos"]
    finally:
        for t in (small, wide, fixed):
            t.close()


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"dataset": None}, "needs env.kwargs.dataset="),
        ({"tolerances_from_recording": "yes"}, "tolerances_from_recording='yes' must be true or false"),
        ({"previous_action": 1}, "previous_action=1 must be true or false"),
        ({"horizon": 0}, "horizon=0 must be a whole number"),
        ({"horizon": 10_000}, "no recorded stretch has 10000 steps"),
        ({"delta_scale": 0.0}, "delta scale=0.0 must be > 0"),
        ({"delta_joints": ["FR_calf"]}, "delta joint 'FR_calf' is not a joint of the go2"),
        ({"robot": "g1"}, "was recorded on the go2, not the g1"),
        ({"reward_tolerances": {"joint_pos": -1.0}}, "must be positive RMS errors of"),
    ],
)
def test_bad_delta_options_are_one_line(dataset: Path, kwargs: dict[str, object], needle: str) -> None:
    args = {"dataset": str(dataset), **kwargs}
    with pytest.raises(UserError) as info:
        DeltaActionTask(**args)  # type: ignore[arg-type]
    assert needle in str(info.value) and "\n" not in str(info.value)


def test_recordings_of_other_targets_are_not_joined(
    dataset: Path, delay1_dataset: Path, tmp_path: Path
) -> None:
    """ASAP's later rounds join recordings into one dataset only when they are of one robot on one
    target: the 0.65 x Kp recording and the delayed one are refused together, in one line."""
    from robolearn.sim2real.recordings import load_delta_dataset, write_delta_dataset

    _, kp = load_delta_dataset(dataset, "go2")
    _, delay = load_delta_dataset(delay1_dataset, "go2")
    with pytest.raises(UserError) as info:
        write_delta_dataset(
            kp["log"], kp["truth"], tmp_path / "joined", more=[(delay["log"], delay["truth"])]
        )
    assert "has another mismatch than" in str(info.value) and "\n" not in str(info.value)
    assert not (tmp_path / "joined").exists()  # nothing half-written
