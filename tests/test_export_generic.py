"""Export of runs that are not robot tasks: policy.onnx + metadata.json, equal to SB3's deterministic predict."""

from __future__ import annotations

import json
import pickle
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from train_helpers import REPO, tiny_config

from robolearn.agents.factory import SB3_CLASSES
from robolearn.deploy.artifact import CONTRACT_FILE, load_artifact
from robolearn.envs import make_env
from robolearn.errors import UserError
from robolearn.export import METADATA_FILE, OnnxExport, export_run
from robolearn.runs.trainer import Trainer

ort = pytest.importorskip("onnxruntime", reason='export needs pip install "robolearn[deploy]"')
pytest.importorskip("onnx", reason='export needs pip install "robolearn[deploy]"')

# A few hundred steps: enough for the weights (and VecNormalize's statistics) to move off their start.
SHORT = ["steps=300", "eval.every=0", "eval.episodes=1", "checkpoint.every=300"]
RUNS = {
    "sac": ["agent.learning_starts=100"],
    "ppo": ["agent.normalize_obs=true"],  # the one with VecNormalize
}


@pytest.fixture(scope="module", params=list(RUNS))
def pendulum_run(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    algo = str(request.param)
    run = tmp_path_factory.mktemp(f"export_{algo}") / "run"
    Trainer(tiny_config(algo, *SHORT, *RUNS[algo]), run, "test").run_training()
    return run


def _policy(run: Path) -> tuple[Any, Any]:
    """The run's SB3 model and its VecNormalize (or None), loaded as robolearn.evaluate does."""
    algo = "ppo" if "export_ppo" in str(run) else "sac"
    model = SB3_CLASSES[algo].load(run / "final" / "model.zip", device="cpu")
    vecnorm = None
    if (run / "final" / "vecnormalize.pkl").is_file():
        with open(run / "final" / "vecnormalize.pkl", "rb") as fh:
            vecnorm = pickle.load(fh)
    return model, vecnorm


def _observations(run: Path, count: int = 128) -> np.ndarray:
    """Raw observations from the run's env under random actions, plus some beyond the space's bounds."""
    from omegaconf import OmegaConf

    env = make_env(OmegaConf.load(run / "config.yaml").env)
    obs, _ = env.reset(seed=3)
    batch = []
    for _ in range(count):
        batch.append(obs)
        obs, _, terminated, truncated, _ = env.step(env.action_space.sample())
        if terminated or truncated:
            obs, _ = env.reset()
    env.close()
    raw = np.asarray(batch, dtype=np.float32)
    raw[: count // 8] *= 20.0  # far outside: VecNormalize's clip and the action bounds must hold
    return raw


def test_onnx_equals_sb3_deterministic_predict(pendulum_run: Path) -> None:
    exported = export_run(pendulum_run, check_samples=64)
    assert isinstance(exported, OnnxExport) and exported.root == pendulum_run / "policy"
    model, vecnorm = _policy(pendulum_run)
    raw = _observations(pendulum_run)
    session = ort.InferenceSession(str(exported.network_path), providers=["CPUExecutionProvider"])
    onnx_actions = session.run(["action"], {"obs": raw})[0]
    policy_obs = vecnorm.normalize_obs(raw) if vecnorm is not None else raw
    expected, _ = model.predict(policy_obs, deterministic=True)
    assert onnx_actions.shape == expected.shape == (len(raw), 1)
    np.testing.assert_allclose(onnx_actions, expected, atol=1e-5)


def test_metadata_describes_spaces_normalisation_and_use(
    pendulum_run: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    out = tmp_path / "exported"
    export_run(pendulum_run, out=out, check_samples=16)
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint", METADATA_FILE, "policy.onnx"]
    meta = json.loads((out / METADATA_FILE).read_text())
    model, vecnorm = _policy(pendulum_run)
    assert meta["env_id"] == "Pendulum-v1" and meta["algo"] == model.__class__.__name__.lower()
    assert meta["robot_contract"] is False and meta["network"]["opset"] == 17
    assert meta["observation_space"] == {
        "type": "Box",
        "shape": [3],
        "low": [-1.0, -1.0, -8.0],
        "high": [1.0, 1.0, 8.0],
    }
    assert meta["action_space"]["low"] == [-2.0] and meta["action_space"]["high"] == [2.0]
    assert meta["network"]["check"]["max_abs_error"]["stable-baselines3 predict"] <= 1e-5
    files = {c["file"] for c in meta["checkpoint"]}
    if vecnorm is None:
        assert meta["normalization"] is None and files == {"checkpoint/model.zip"}
    else:
        norm = meta["normalization"]
        assert norm["in_graph"] is True and norm["clip"] == vecnorm.clip_obs
        np.testing.assert_allclose(norm["mean"], vecnorm.obs_rms.mean)
        np.testing.assert_allclose(norm["var"], vecnorm.obs_rms.var)
        assert not np.allclose(norm["mean"], 0.0)  # statistics of the run, not VecNormalize's start
        assert files == {"checkpoint/model.zip", "checkpoint/vecnormalize.pkl"}
    assert all((out / f).is_file() for f in files)
    # The documented snippet runs as written, from the export folder, on a raw observation.
    obs = _observations(pendulum_run, 4)[-1]
    monkeypatch.chdir(out)
    scope: dict[str, Any] = {"obs": obs}
    exec(meta["usage"], scope)
    policy_obs = vecnorm.normalize_obs(obs[None]) if vecnorm is not None else obs[None]
    np.testing.assert_allclose(
        scope["action"], model.predict(policy_obs, deterministic=True)[0][0], atol=1e-5
    )


def test_deploy_refuses_an_export_without_robot_contract(pendulum_run: Path, tmp_path: Path) -> None:
    exported = export_run(pendulum_run, out=tmp_path / "policy", check_samples=8)
    assert not (exported.root / CONTRACT_FILE).exists()
    with pytest.raises(
        UserError, match=r"has no contract\.json: it was exported from a run on Pendulum-v1, not a robot task"
    ):
        load_artifact(exported.root)


def _untrained_run(tmp_path: Path, env_id: str, algo: str, edit: Any = None) -> Path:
    """A run directory as robolearn.train writes it, holding an untrained model (for shapes and bounds),
    changed by edit(model) before it is saved."""
    import yaml

    run = tmp_path / f"{env_id}_{algo}"
    (run / "final").mkdir(parents=True)
    (run / "config.yaml").write_text(
        yaml.safe_dump({"env": {"id": env_id, "kwargs": {}}, "agent": {"algo": algo}})
    )
    from omegaconf import OmegaConf

    env = make_env(OmegaConf.create({"id": env_id, "kwargs": {}}))
    extra = {"buffer_size": 100} if algo != "ppo" else {"n_steps": 16, "batch_size": 16}
    model = SB3_CLASSES[algo](
        "MlpPolicy", env, policy_kwargs={"net_arch": [16]}, seed=0, device="cpu", **extra
    )
    if edit is not None:
        edit(model)
    model.save(run / "final" / "model.zip")
    env.close()
    return run


def test_td3_on_hopper_with_unbounded_observations(tmp_path: Path) -> None:
    run = _untrained_run(tmp_path, "Hopper-v5", "td3")
    exported = export_run(run, check_samples=32)
    assert isinstance(exported, OnnxExport)
    space = exported.metadata["observation_space"]
    assert space["shape"] == [11] and space["low"] == [None] * 11 and space["high"] == [None] * 11
    model = SB3_CLASSES["td3"].load(run / "final" / "model.zip", device="cpu")
    obs = np.random.default_rng(0).normal(0, 3, size=(64, 11)).astype(np.float32)
    session = ort.InferenceSession(str(exported.network_path), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(
        session.run(["action"], {"obs": obs})[0], model.predict(obs, deterministic=True)[0], atol=1e-5
    )


def test_ppo_mean_beyond_the_bounds_is_clipped_as_predict_does(tmp_path: Path) -> None:
    import torch

    def widen(model: Any) -> None:  # means up to several times the action bound, of either sign
        with torch.no_grad():
            model.policy.action_net.weight.normal_(0.0, 3.0, generator=torch.Generator().manual_seed(0))

    run = _untrained_run(tmp_path, "Pendulum-v1", "ppo", widen)
    exported = export_run(run, check_samples=32)
    model = SB3_CLASSES["ppo"].load(run / "final" / "model.zip", device="cpu")
    obs = np.random.default_rng(1).uniform([-1, -1, -8], [1, 1, 8], size=(256, 3)).astype(np.float32)
    expected = model.predict(obs, deterministic=True)[0]
    assert (expected == 2.0).any() and (expected == -2.0).any() and (np.abs(expected) < 2.0).any()
    session = ort.InferenceSession(str(exported.network_path), providers=["CPUExecutionProvider"])
    np.testing.assert_allclose(session.run(["action"], {"obs": obs})[0], expected, atol=1e-5)


def test_cli_export_of_a_pendulum_run(tmp_path: Path) -> None:
    run = _untrained_run(tmp_path, "Pendulum-v1", "sac")
    out = tmp_path / "cli"
    result = subprocess.run(
        [sys.executable, "-m", "robolearn.export", f"run={run}", f"out={out}", "check_samples=16"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    assert f"exported Pendulum-v1 sac policy to {out}" in result.stdout
    assert "no contract.json" in result.stdout and (out / METADATA_FILE).is_file()
    meta = json.loads((out / METADATA_FILE).read_text())
    assert meta["source"]["command"].startswith("python -m robolearn.export run=")


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["run=x", "checkpoint=bogus"],
            r"checkpoint=bogus is not allowed; choose one of final, best, latest",
        ),
        ([], r"pass exactly one of run=<run dir> or reference=<name>"),
        (["run=x", "reference=go2_stand"], r"pass exactly one of run="),
        (["run=x", "check_samples=0"], r"check_samples=0 is out of range"),
    ],
)
def test_bad_arguments_fail_before_any_work(args: list[str], message: str) -> None:
    from robolearn.config.validate import compose_config
    from robolearn.export import validate_export_config

    with pytest.raises(UserError, match=message):
        validate_export_config(compose_config("export", args))
