"""`robolearn.evaluate` reproduces a run's final evaluation from its directory alone."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from train_helpers import run_cli, tiny_config

from robolearn.config.validate import compose_config
from robolearn.errors import UserError
from robolearn.evaluate import evaluate_run
from robolearn.runs.trainer import Trainer


@pytest.fixture(scope="module")
def trained_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("eval") / "run"
    Trainer(tiny_config("sac", "agent.normalize_obs=true"), run, "test").run_training()
    return run


def test_final_checkpoint_reproduces_summary(trained_run: Path) -> None:
    summary = json.loads((trained_run / "summary.json").read_text())
    out = evaluate_run(compose_config("evaluate", [f"run={trained_run}", "episodes=2"]))
    assert out["returns"] == summary["eval/returns"]
    saved = json.loads((trained_run / "evaluations" / "final.json").read_text())
    assert saved["mean_return"] == out["mean_return"]


def test_best_and_latest_checkpoints(trained_run: Path) -> None:
    best = evaluate_run(compose_config("evaluate", [f"run={trained_run}", "episodes=2", "checkpoint=best"]))
    summary = json.loads((trained_run / "summary.json").read_text())
    assert best["mean_return"] == pytest.approx(summary["best/mean_return"])
    latest = evaluate_run(
        compose_config("evaluate", [f"run={trained_run}", "episodes=1", "checkpoint=latest"])
    )
    assert len(latest["returns"]) == 1


def test_cli_prints_mean_and_std(trained_run: Path) -> None:
    result = run_cli("robolearn.evaluate", f"run={trained_run}", "episodes=2")
    assert result.returncode == 0, result.stderr
    assert "Pendulum-v1 final: mean return" in result.stdout and "±" in result.stdout


def test_missing_final_model_is_a_clear_error(trained_run: Path, tmp_path: Path) -> None:
    broken = tmp_path / "broken"
    os.makedirs(broken)
    (broken / "config.yaml").write_text((trained_run / "config.yaml").read_text())
    with pytest.raises(UserError, match=r"final/model\.zip is missing"):
        evaluate_run(compose_config("evaluate", [f"run={broken}"]))


def test_video_without_renderer_says_how_to_get_one(trained_run: Path) -> None:
    cfg = compose_config("evaluate", [f"run={trained_run}", "episodes=1", "video=true"])
    try:
        out = evaluate_run(cfg)
    except UserError as exc:
        assert "apt-get install" in str(exc) or "pip install" in str(exc)
    else:  # a renderer is available here: the MP4 exists and is not empty
        assert Path(out["video"]).stat().st_size > 0


def test_video_of_a_mujoco_env(tmp_path: Path) -> None:
    pytest.importorskip("imageio_ffmpeg", reason="needs robolearn[video]")
    run = tmp_path / "run"
    cfg = compose_config(
        "train",
        [
            *("env=InvertedPendulum-v5", "agent=sac", "steps=200", "agent.learning_starts=100"),
            *("agent.batch_size=32", "agent.policy_kwargs.net_arch=[16]", "eval.every=0", "eval.episodes=1"),
            *("checkpoint.every=200", "logger.progress=none", "env.max_episode_steps=60"),
        ],
    )
    Trainer(cfg, run, "test").run_training()
    try:
        out = evaluate_run(compose_config("evaluate", [f"run={run}", "episodes=1", "video=true"]))
    except UserError as exc:  # no offscreen GL here: the message must say how to get one
        assert "apt-get install" in str(exc)
        return
    video = Path(out["video"])
    assert video.suffix == ".mp4" and video.stat().st_size > 1000
    assert video.read_bytes()[4:8] == b"ftyp"  # an MP4 container
