"""Export: contract round trip, the shipped reference artifact, run directories, onnxruntime vs torch/SB3."""

from __future__ import annotations

import dataclasses
import json
import pickle
from pathlib import Path

import gymnasium as gym
import numpy as np
import pytest

pytest.importorskip("onnxruntime")
pytest.importorskip("onnx")

from deploy_helpers import REFERENCE

from robolearn.deploy.artifact import CONTRACT_FILE, PolicyContract, check_spec_matches, load_artifact
from robolearn.deploy.policy import ObservationPipeline, OnnxPolicy
from robolearn.errors import UserError
from robolearn.export import build_reference, export_run
from robolearn.robots import G1_SPEC, GO2_SPEC, LOCOMOTION_TERMS, ObsTerm, RobotState, observation_layout

# The Go2 velocity task's id without its version, which bumps when its dynamics or observations change.
GO2_VELOCITY = "robolearn/Go2Velocity-v"


def same_terms(terms: tuple[ObsTerm, ...]) -> bool:
    """Terms laid out as LOCOMOTION_TERMS (names, positions, per-element scales; noise may differ)."""

    def layout(ts: tuple[ObsTerm, ...]) -> list[tuple[str, int, int, tuple[float, ...]]]:
        return [(e.name, e.start, e.size, e.scale) for e in observation_layout(GO2_SPEC, ts)]

    return layout(terms) == layout(LOCOMOTION_TERMS)


def test_reference_artifact_is_tiny_and_holds_the_default_pose() -> None:
    size = sum(p.stat().st_size for p in REFERENCE.rglob("*") if p.is_file())
    assert size < 64 * 1024
    artifact = load_artifact(REFERENCE)
    c = artifact.contract
    assert c.robot == GO2_SPEC and same_terms(c.terms) and c.input_size == 45
    assert c.action_clip == 5.0 and c.obs_clip == 100.0 and c.history_length == 1 and c.normalization is None
    assert c.source["command"] == "python -m robolearn.export reference=go2_stand"
    policy = OnnxPolicy(artifact.network_path, c)
    x = np.random.default_rng(0).normal(size=(1, 45)).astype(np.float32)
    np.testing.assert_array_equal(policy(x), np.zeros(12))
    assert (REFERENCE / "checkpoint" / "policy.pt").is_file()


def test_reference_is_reproduced_by_its_documented_command(tmp_path: Path) -> None:
    rebuilt = build_reference("go2_stand", tmp_path / "go2_stand").contract.to_dict()
    shipped = load_artifact(REFERENCE).contract.to_dict()
    for contract in (rebuilt, shipped):
        contract["source"].pop("torch_version")
    assert rebuilt == shipped


def test_contract_round_trips_and_rejects_bad_files(tmp_path: Path) -> None:
    data = json.loads((REFERENCE / CONTRACT_FILE).read_text())
    assert PolicyContract.from_dict(data).to_dict() == data
    for mutate, message in (
        (lambda d: d.update(format_version=99), "format_version 99 is not supported"),
        (lambda d: d["action"].update(scale=[1.0] * 12), "action.scale disagrees"),
        (lambda d: d["observation"]["terms"][1].update(start=7), "projected_gravity has start 7"),
        (
            lambda d: d["observation"].update(
                normalization={"mean": [0.0], "var": [1.0], "epsilon": 1e-8, "clip": 10.0}
            ),
            "normalization.mean has 1 values",
        ),
        (lambda d: d["robot"].update(kp="x"), "robot spec field 'kp'"),
        (lambda d: d.pop("command"), "malformed"),
        (lambda d: d.update(gait={"period_s": -0.5}), "gait.period_s must be a positive number"),
        (
            lambda d: d["observation"]["terms"].append(
                {"name": "gait_clock", "start": 45, "size": 2, "scale": [1.0, 1.0], "noise": 0.0}
            ),
            "gait_clock term but gait.period_s is missing",
        ),
    ):
        broken = json.loads(json.dumps(data))
        mutate(broken)
        with pytest.raises(UserError, match=message):
            PolicyContract.from_dict(broken)
    with pytest.raises(UserError, match=r"has no contract\.json"):
        load_artifact(tmp_path)
    # A clocked contract round-trips, and its phase counts policy steps modulo the period.
    clocked = json.loads(json.dumps(data))
    clocked["observation"]["terms"].append(
        {"name": "gait_clock", "start": 45, "size": 2, "scale": [1.0, 1.0], "noise": 0.0}
    )
    clocked["observation"]["frame_size"] = 47
    clocked["gait"] = {"period_s": 0.5}
    contract = PolicyContract.from_dict(clocked)
    assert contract.to_dict() == clocked and contract.input_size == 47
    assert contract.gait_phase(0)[0] == 0.0 and contract.gait_phase(30)[0] == pytest.approx(0.2)
    assert PolicyContract.from_dict(data).gait_phase(30) is None


def test_spec_mismatch_is_refused() -> None:
    check_spec_matches(GO2_SPEC, GO2_SPEC)
    with pytest.raises(UserError, match="exported for robot 'go2', not 'g1'"):
        check_spec_matches(GO2_SPEC, G1_SPEC)
    softer = dataclasses.replace(GO2_SPEC, kp=(1.0, *GO2_SPEC.kp[1:]))
    with pytest.raises(UserError, match=r"differs .* in kp \(FR_hip_joint: policy 1.0 vs robot 17.6"):
        check_spec_matches(softer, GO2_SPEC)


@pytest.fixture(scope="module")
def velocity_env_id() -> str:
    """The Go2 velocity task as robolearn registers it (the env a Go2 training run names)."""
    from robolearn.envs import register_envs

    register_envs()
    ids = [env_id for env_id in gym.registry if env_id.startswith(GO2_VELOCITY)]
    assert len(ids) == 1, ids
    return ids[0]


def _run_dir(tmp_path: Path, env_id: str, algo: str) -> Path:
    """A run directory as robolearn.train writes it: config.yaml, final/model.zip, final/vecnormalize.pkl."""
    import yaml
    from stable_baselines3.common.vec_env import DummyVecEnv, VecNormalize

    from robolearn.agents.factory import SB3_CLASSES

    run = tmp_path / f"run_{algo}"
    (run / "final").mkdir(parents=True)
    (run / "config.yaml").write_text(
        yaml.safe_dump({"env": {"id": env_id, "kwargs": {}}, "agent": {"algo": algo}})
    )
    venv = VecNormalize(DummyVecEnv([lambda: gym.make(env_id)]), norm_obs=True, norm_reward=False)
    rng = np.random.default_rng(1)
    venv.obs_rms.mean = rng.normal(size=45)
    venv.obs_rms.var = rng.uniform(0.5, 2.0, size=45)
    extra = {"buffer_size": 100} if algo != "ppo" else {"n_steps": 16, "batch_size": 16}
    model = SB3_CLASSES[algo](
        "MlpPolicy", venv, policy_kwargs={"net_arch": [16]}, seed=0, device="cpu", **extra
    )
    model.save(run / "final" / "model.zip")
    with open(run / "final" / "vecnormalize.pkl", "wb") as fh:
        pickle.dump(venv, fh)
    venv.close()
    return run


@pytest.mark.parametrize("algo", ["ppo", "sac", "td3"])
def test_export_run_matches_stable_baselines3(algo: str, velocity_env_id: str, tmp_path: Path) -> None:
    from robolearn.agents.factory import SB3_CLASSES

    run = _run_dir(tmp_path, velocity_env_id, algo)
    artifact = export_run(run, check_samples=64)
    assert artifact.root == run / "policy"
    assert sorted(p.name for p in artifact.root.iterdir()) == ["checkpoint", CONTRACT_FILE, "policy.onnx"]
    loaded = load_artifact(artifact.root)
    c = loaded.contract
    assert c.robot == GO2_SPEC and same_terms(c.terms) and c.action_clip == 5.0 and c.obs_clip == 100.0
    assert c.normalization is not None and c.normalization.clip == 10.0
    assert c.source["env_id"] == velocity_env_id and c.source["algo"] == algo
    assert c.network["check"]["max_abs_error"]["reference"] <= 1e-5
    assert {e["file"] for e in c.checkpoint} == {"checkpoint/model.zip", "checkpoint/vecnormalize.pkl"}
    # The deploy path (contract -> observation -> normalisation -> onnxruntime) equals SB3 on the same state.
    with open(run / "final" / "vecnormalize.pkl", "rb") as fh:
        vecnorm = pickle.load(fh)
    model = SB3_CLASSES[algo].load(run / "final" / "model.zip", device="cpu")
    policy = OnnxPolicy(loaded.network_path, c)
    pipeline = ObservationPipeline(c)
    rng = np.random.default_rng(2)
    for _ in range(20):
        state = RobotState(
            joint_pos=GO2_SPEC.default_pos_array + rng.normal(0, 0.2, 12),
            joint_vel=rng.normal(0, 2, 12),
            base_quat=np.array([1.0, 0.05, -0.03, 0.1]),
            gyro=rng.normal(0, 0.5, 3),
            command=np.array([0.5, 0.1, -0.2]),
            last_action=rng.normal(0, 1, 12),
        )
        pipeline.reset()
        frame, x = pipeline(state)
        np.testing.assert_array_equal(x, vecnorm.normalize_obs(frame[None]).astype(np.float32))
        expected = model.predict(x, deterministic=True)[0][0]
        np.testing.assert_allclose(policy(x), expected, atol=1e-5)


def test_export_of_a_damaged_model_is_a_one_line_error(tmp_path: Path) -> None:
    import yaml

    run = tmp_path / "pendulum"
    (run / "final").mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump({"env": {"id": "Pendulum-v1"}, "agent": {"algo": "sac"}}))
    (run / "final" / "model.zip").write_bytes(b"")
    with pytest.raises(UserError, match=r"final/model\.zip cannot be loaded"):
        export_run(run)
    assert not (run / "policy").exists()


def test_contract_maps_the_observed_base_velocity_to_its_term(velocity_env_id: str) -> None:
    """observe_base_lin_vel appends body-frame velocity x 2 after the robot terms: the base_lin_vel
    term at the same place (which DDS deploy refuses at start and the simulators fill)."""
    from robolearn.export import task_contract_fields

    fields = task_contract_fields(gym.make(velocity_env_id, observe_base_lin_vel=True).unwrapped)
    assert [t.name for t in fields["terms"]] == [*(t.name for t in LOCOMOTION_TERMS), "base_lin_vel"]
    assert fields["terms"][-1] == ObsTerm("base_lin_vel", scale=2.0, noise=0.0)
    plain = task_contract_fields(gym.make(velocity_env_id).unwrapped)["terms"]
    assert [t.name for t in plain] == [t.name for t in LOCOMOTION_TERMS]
