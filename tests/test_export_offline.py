"""Export of robolearn.offline runs: a tiny MOPO run on InvertedPendulum-v5 data (policy.onnx + metadata.json)
and on Go2Velocity data (a contract.json artifact that robolearn.deploy loads and runs in MuJoCo)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, cast

import gymnasium as gym
import numpy as np
import pytest

from robolearn.datasets import write_dataset
from robolearn.deploy.artifact import CONTRACT_FILE, load_artifact
from robolearn.errors import UserError
from robolearn.export import METADATA_FILE, OnnxExport, export_run

ort = pytest.importorskip("onnxruntime", reason='export needs pip install "robolearn[deploy]"')
pytest.importorskip("onnx", reason='export needs pip install "robolearn[deploy]"')

GO2 = "robolearn/Go2Velocity-v1"
# Budgets in seconds (configs/offline.yaml's are hours): enough for the actor to move off its start.
TINY = [
    "algo=mopo",
    "steps=40",
    "dynamics.hidden=[16,16]",
    "dynamics.max_epochs=2",
    "dynamics.members=3",
    "dynamics.elites=2",
    "sac.hidden=[16,16]",
    "loop.batch_size=32",
    "loop.rollout_every=20",
    "loop.rollout_batch=32",
    "loop.eval_every=40",
    "loop.eval_episodes=1",
    "loop.log_every=20",
    "loop.checkpoint_every=20",
    "logger.progress=none",
]


class SmallRandomActions:
    """Gaussian actions of `std` x the half-range, clipped to the box (a behaviour policy for rollout_episodes)."""

    def __init__(self, box: gym.spaces.Box, std: float) -> None:
        self.box, self.std = box, std

    def act(self, obs: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """One action for one observation."""
        a = rng.normal(0.0, self.std, self.box.shape) * self.box.high
        return np.clip(a, self.box.low, self.box.high).astype(np.float32)


def write_rollouts(
    out: Path, env_id: str, env_kwargs: dict[str, Any], steps: int, action_std: float, dataset_id: str
) -> Path:
    """`steps` real env steps under SmallRandomActions, written with robolearn.datasets."""
    import robolearn.envs  # noqa: F401 - registers robolearn/<Name>-v<N>
    from robolearn.datasets.collect import rollout_episodes

    env = gym.make(env_id, **env_kwargs)
    box = env.action_space
    assert isinstance(box, gym.spaces.Box)
    policy = cast(Any, SmallRandomActions(box, action_std))  # rollout_episodes calls only act(obs, rng)
    episodes = list(rollout_episodes(env, policy, steps, first_seed=0, policy_seed=0))
    env.close()
    return write_dataset(
        out,
        episodes,
        dataset_id=dataset_id,
        observation_space=env.observation_space,
        action_space=box,
        env_id=env_id,
        env_kwargs=env_kwargs,
    )


def offline_run(root: Path, dataset: Path) -> Path:
    """A finished `python -m robolearn.offline` run (in this process) on dataset; its run directory."""
    from robolearn import offline

    run = root / "run"
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sys, "argv", ["robolearn-offline", f"dataset={dataset}", *TINY, f"hydra.run.dir={run}"])
        try:
            offline.main()
        except SystemExit as exc:
            assert not exc.code, exc.code
    assert (run / "policy.pt").is_file()
    return run


@pytest.fixture(scope="module")
def pendulum_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("offline_pendulum")
    data = write_rollouts(root / "ds", "InvertedPendulum-v5", {}, 200, 0.5, "test/invertedpendulum/random-v0")
    return offline_run(root, data.parent)


@pytest.fixture(scope="module")
def go2_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("offline_go2")
    # Short episodes (gymnasium's TimeLimit) keep both the data and the loop's evaluation to seconds.
    data = write_rollouts(root / "ds", GO2, {"max_episode_steps": 50}, 200, 0.05, "test/go2/random-v0")
    return offline_run(root, data.parent)


def _onnx(path: Path, obs: np.ndarray) -> np.ndarray:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return np.asarray(session.run(["action"], {"obs": obs.astype(np.float32)})[0])


def _load_policy_actions(run: Path, obs: np.ndarray) -> np.ndarray:
    import torch

    from robolearn.mbrl.offline.loop import load_policy

    policy, _ = load_policy(run)
    with torch.no_grad():
        return policy(torch.as_tensor(obs, dtype=torch.float32)).numpy()


def test_pendulum_run_exports_onnx_equal_to_load_policy(pendulum_run: Path) -> None:
    exported = export_run(pendulum_run, check_samples=64)
    assert isinstance(exported, OnnxExport) and exported.root == pendulum_run / "policy"
    assert sorted(p.name for p in exported.root.iterdir()) == ["checkpoint", METADATA_FILE, "policy.onnx"]
    obs = np.random.default_rng(0).normal(0.0, 2.0, size=(256, 4))
    onnx_actions = _onnx(exported.network_path, obs)
    expected = _load_policy_actions(pendulum_run, obs)
    assert onnx_actions.shape == (256, 1)
    np.testing.assert_allclose(onnx_actions, expected, atol=1e-5)
    # A trained actor, not a constant: actions vary, and stay inside the box [-3, 3].
    assert np.ptp(onnx_actions) > 1e-3 and np.all(np.abs(onnx_actions) <= 3.0)
    meta = json.loads((exported.root / METADATA_FILE).read_text())
    assert meta["env_id"] == "InvertedPendulum-v5" and meta["algo"] == "mopo"
    assert meta["normalization"] is None and meta["action_space"]["high"] == [3.0]
    assert meta["network"]["check"]["max_abs_error"]["robolearn.offline evaluation"] <= 1e-5
    assert meta["checkpoint"] == [{"file": "checkpoint/policy.pt", "kind": meta["checkpoint"][0]["kind"]}]
    assert (exported.root / "checkpoint" / "policy.pt").read_bytes() == (
        pendulum_run / "policy.pt"
    ).read_bytes()


def test_offline_run_refuses_checkpoints_other_than_final(pendulum_run: Path, tmp_path: Path) -> None:
    for which in ("best", "latest"):
        with pytest.raises(
            UserError, match=rf"checkpoint={which}: a robolearn.offline run keeps only its final"
        ):
            export_run(pendulum_run, out=tmp_path / which, checkpoint=which)
        assert not (tmp_path / which).exists()


def test_unfinished_offline_run_says_how_to_resume(pendulum_run: Path, tmp_path: Path) -> None:
    import shutil

    run = tmp_path / "unfinished"
    shutil.copytree(pendulum_run, run, ignore=shutil.ignore_patterns("policy.pt", "policy"))
    with pytest.raises(UserError, match=r"has no policy\.pt: .* python -m robolearn\.offline resume="):
        export_run(run)


def test_go2_run_exports_an_artifact_that_deploy_runs(go2_run: Path, tmp_path: Path) -> None:
    from robolearn.config.validate import compose_config
    from robolearn.deploy.app import build_session
    from robolearn.deploy.policy import OnnxPolicy
    from robolearn.robots import GO2_SPEC

    artifact = export_run(go2_run, out=tmp_path / "go2", check_samples=64)
    assert sorted(p.name for p in artifact.root.iterdir()) == ["checkpoint", CONTRACT_FILE, "policy.onnx"]
    c = load_artifact(artifact.root).contract  # every contract check of deploy's loader
    assert c.robot == GO2_SPEC and c.input_size == 45 and c.normalization is None
    assert c.action_clip == 5.0 and c.source["env_id"] == GO2 and c.source["algo"] == "mopo"
    assert c.network["check"]["max_abs_error"]["reference"] <= 1e-5
    # The network the runtime calls equals the offline policy on observations like the env's.
    obs = np.random.default_rng(1).normal(0.0, 1.0, size=(32, 45)).astype(np.float32)
    policy = OnnxPolicy(artifact.network_path, c)
    runtime_actions = np.stack([policy(x[None]) for x in obs])
    np.testing.assert_allclose(runtime_actions, _load_policy_actions(go2_run, obs), atol=1e-5)
    # The deploy verb's session, in-process MuJoCo: stand up, hand over to the policy, damp, clean exit.
    cfg = compose_config(
        "deploy",
        [
            f"policy={artifact.root}",
            "backend=mujoco",
            "autostart=true",
            "autopolicy_s=0.2",
            "settings.ramp_s=0.3",
            "duration_s=1.2",
            "exit_damp_s=0.2",
            "keyboard=false",
            "status_every_s=0",
        ],
    )
    runtime, _, _ = build_session(cfg)
    summary = runtime.run()
    assert [t["to"] for t in summary["transitions"]] == ["RAMP", "HOLD", "POLICY", "DAMP"]
    assert summary["policy_steps"] > 10 and summary["final_state"] == "DAMP"


def test_cli_exports_an_offline_run_and_refuses_best(
    pendulum_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from robolearn import export

    def main(*args: str) -> int:
        monkeypatch.setattr(sys, "argv", ["robolearn-export", *args])
        try:
            export.main()
        except SystemExit as exc:
            return int(exc.code or 0)
        return 0

    out = tmp_path / "cli"
    assert main(f"run={pendulum_run}", f"out={out}", "check_samples=16") == 0
    printed = capsys.readouterr().out
    assert f"exported InvertedPendulum-v5 mopo policy to {out}" in printed and "no contract.json" in printed
    assert main(f"run={pendulum_run}", f"out={tmp_path / 'best'}", "checkpoint=best") != 0
    err = capsys.readouterr().err
    assert "checkpoint=best: a robolearn.offline run keeps only its final policy" in err
    assert "Traceback" not in err and not (tmp_path / "best").exists()
