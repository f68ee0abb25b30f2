"""`python -m robolearn.export` of an agent=rsl_ppo velocity policy that observes its base velocity and a
gait clock (the go2_walk_trot recipe's observation): checkpoint=latest reads the actor out of the loop's
state.pt, and the artifact's ONNX network, fed what the deploy runtime's ObservationPipeline builds
from a MuJoCo state, acts as the torch actor does on the observation the env built for that state.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("rsl_rl")

import mujoco
import torch

from robolearn.agents.rsl_ppo import RslPolicy
from robolearn.config.validate import compose_config, validate_train_config
from robolearn.deploy.artifact import PolicyArtifact
from robolearn.deploy.backends.mujoco_backend import MujocoBackend
from robolearn.deploy.policy import ObservationPipeline, OnnxPolicy
from robolearn.errors import UserError
from robolearn.export import export_run
from robolearn.robots import RobotState
from robolearn.runs.rsl_trainer import train_rsl_ppo

pytestmark = pytest.mark.timeout(300)

GAIT_PERIOD_S = 0.5
# Two iterations of 4 envs x 8 steps, a checkpoint after each; final/ is removed to leave a run that
# stopped between checkpoints, as a long run cut short does.
TRAIN = [
    "env=Go2Velocity-v1",
    "env.kwargs.backend=batch",
    "+env.kwargs.observe_base_lin_vel=true",
    f"+env.kwargs.gait_period_s={GAIT_PERIOD_S}",
    "env.max_episode_steps=20",
    "agent=rsl_ppo",
    "agent.n_envs=4",
    "agent.num_steps_per_env=8",
    "agent.actor_hidden_dims=[16]",
    "agent.critic_hidden_dims=[16]",
    "steps=64",
    "checkpoint.every=32",
    "eval.every=0",
    "eval.episodes=1",
    "logger.progress=none",
]


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    import shutil

    root = tmp_path_factory.mktemp("rsl_velocity") / "run"
    cfg = compose_config("train", TRAIN)
    validate_train_config(cfg)
    train_rsl_ppo(cfg, root, "test")
    shutil.rmtree(root / "final")
    return root


def _newest_actor(run: Path) -> RslPolicy:
    """The torch actor in the run's newest checkpoint, read without the exporter."""
    import json

    name = json.loads((run / "checkpoints" / "latest.json").read_text())["name"]
    saved = torch.load(run / "checkpoints" / name / "state.pt", map_location="cpu", weights_only=False)
    return RslPolicy.from_payload(saved["state"]["policy"])


def test_latest_exports_with_base_velocity_and_clock_terms(run: Path, tmp_path: Path) -> None:
    with pytest.raises(UserError, match=r"did not finish \(no final/\); use checkpoint=latest"):
        export_run(run, tmp_path / "final", checkpoint="final", check_samples=8)
    artifact = export_run(run, tmp_path / "artifact", checkpoint="latest", check_samples=16)
    assert isinstance(artifact, PolicyArtifact)
    contract = artifact.contract
    names = [t.name for t in contract.terms]
    assert names[-2:] == ["gait_clock", "base_lin_vel"] and contract.input_size == 50
    lin = contract.terms[-1]
    # VelocityTask.extra_observation: x2, legged_gym's 0.1 m/s noise x the config's obs_noise 1.0.
    assert lin.scale == 2.0 and lin.noise == pytest.approx(0.1)
    assert contract.gait_period_s == GAIT_PERIOD_S
    assert [c["file"] for c in contract.checkpoint] == ["checkpoint/model.zip"]
    # The small actor file, loadable on its own: the newest checkpoint's weights.
    saved = RslPolicy.load(artifact.root / "checkpoint" / "model.zip")
    newest = _newest_actor(run)
    for key, value in newest.payload["actor_state_dict"].items():
        assert torch.equal(saved.payload["actor_state_dict"][key], value)


def _mujoco_states(env: Any, steps: int, seed: int) -> list[dict[str, Any]]:
    """The env's observation and the state it was built from (MuJoCo's qpos/qvel and the task's
    command, last action and step count) after each of `steps` random actions."""
    rng = np.random.default_rng(seed)
    env.reset(seed=seed)
    task = env.unwrapped
    out = []
    for _ in range(steps):
        obs, *_ = env.step(rng.uniform(-0.5, 0.5, size=env.action_space.shape).astype(np.float32))
        out.append(
            {
                "obs": np.asarray(obs, np.float32),
                "qpos": task.data.qpos.copy(),
                "qvel": task.data.qvel.copy(),
                "command": task.command[0].copy(),
                "last_action": task.last_action[0].copy(),
                "steps": int(task.episode_step[0]),
            }
        )
    return out


def test_onnx_on_the_deploy_observation_matches_the_actor_on_the_env_observation(
    run: Path, tmp_path: Path
) -> None:
    artifact = export_run(run, tmp_path / "artifact", checkpoint="latest", check_samples=16)
    assert isinstance(artifact, PolicyArtifact)
    contract = artifact.contract
    network = OnnxPolicy(artifact.network_path, contract)
    actor = _newest_actor(run)
    # The same task, noise-free so the env's observation is a function of the state.
    env = gym.make(
        "robolearn/Go2Velocity-v1", observe_base_lin_vel=True, gait_period_s=GAIT_PERIOD_S, backend="mujoco"
    )
    backend = MujocoBackend(contract.robot)
    model, data = backend.sim.model, backend.sim.data
    compared = 0
    try:
        for seen in _mujoco_states(env, steps=12, seed=3):
            obs = seen["obs"]
            assert model.nq == seen["qpos"].size and model.nv == seen["qvel"].size
            data.qpos[:], data.qvel[:] = seen["qpos"], seen["qvel"]
            mujoco.mj_forward(model, data)
            sample = backend.poll_state(0.0)
            assert (
                sample.base_lin_vel is not None and np.abs(sample.base_lin_vel).max() > 1e-3
            )  # the term carries a real velocity
            # As DeployRuntime.policy_tick builds it.
            state = RobotState(
                joint_pos=sample.joint_pos,
                joint_vel=sample.joint_vel,
                base_quat=sample.quat,
                gyro=sample.gyro,
                command=seen["command"],
                last_action=seen["last_action"],
                gait_phase=contract.gait_phase(seen["steps"]),
                base_lin_vel=sample.base_lin_vel,
            )
            pipeline = ObservationPipeline(contract)
            frame, x = pipeline(state)
            np.testing.assert_allclose(frame, obs, atol=1e-5)
            onnx_action = network(x)
            torch_action, _ = actor.predict(obs, deterministic=True)
            np.testing.assert_allclose(onnx_action, torch_action, atol=1e-5)
            compared += 1
    finally:
        env.close()
    assert compared == 12


def test_latest_without_checkpoints_is_one_line(run: Path, tmp_path: Path) -> None:
    import shutil

    bare = tmp_path / "bare"
    shutil.copytree(run, bare, ignore=shutil.ignore_patterns("checkpoints"))
    with pytest.raises(UserError, match="has no checkpoint yet; train longer or pick checkpoint=final"):
        export_run(bare, tmp_path / "out", checkpoint="latest", check_samples=8)


def test_contract_terms_follow_the_env_noise_level(run: Path) -> None:
    from robolearn.export import task_contract_fields

    env = gym.make(
        "robolearn/Go2Velocity-v1",
        observe_base_lin_vel=True,
        gait_period_s=GAIT_PERIOD_S,
        randomization={"obs_noise": 0.5},
    )
    try:
        terms = task_contract_fields(env.unwrapped)["terms"]
    finally:
        env.close()
    lin = dataclasses.asdict(terms[-1])
    assert lin == {"name": "base_lin_vel", "scale": 2.0, "noise": pytest.approx(0.05), "clip": None}
