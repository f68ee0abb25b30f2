"""`robolearn.evaluate` reproduces a run's final evaluation from its directory alone."""

from __future__ import annotations

import json
import os
import subprocess
import sys
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


def _no_evaluation(*args: object, **kwargs: object) -> None:
    raise AssertionError("an evaluation ran before the video check")


@pytest.mark.parametrize("module", ["imageio", "imageio_ffmpeg", "pygame"])
def test_video_without_its_packages_names_the_extra_before_evaluating(
    trained_run: Path, module: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A None entry in sys.modules makes `import <module>` fail as if it were not installed.
    monkeypatch.setitem(sys.modules, module, None)
    monkeypatch.setattr("robolearn.evaluate.evaluate_policy", _no_evaluation)
    cfg = compose_config("evaluate", [f"run={trained_run}", "episodes=1", "video=true", "checkpoint=best"])
    with pytest.raises(UserError) as info:
        evaluate_run(cfg)
    message = str(info.value)
    assert 'pip install "robolearn[video]"' in message and "\n" not in message
    assert "EGL" not in message and "OSMesa" not in message.lower()


def test_cli_video_without_ffmpeg_is_one_line_and_evaluates_nothing(trained_run: Path) -> None:
    best = trained_run / "evaluations" / "best.json"
    best.unlink(missing_ok=True)
    code = (
        "import sys; sys.modules['imageio_ffmpeg'] = None; from robolearn.evaluate import main; "
        f"sys.argv = ['robolearn-evaluate', 'run={trained_run}', 'video=true', 'checkpoint=best']; main()"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert result.returncode == 2, result.stderr
    assert result.stderr.strip().count("\n") == 0 and 'pip install "robolearn[video]"' in result.stderr
    assert result.stdout == "" and not best.exists()


def test_video_of_pendulum_is_an_mp4(trained_run: Path) -> None:
    for module in ("imageio_ffmpeg", "pygame"):
        pytest.importorskip(module, reason='video of Pendulum needs pip install "robolearn[video]"')
    out = evaluate_run(compose_config("evaluate", [f"run={trained_run}", "episodes=1", "video=true"]))
    video = Path(out["video"])
    assert video == trained_run / "videos" / "final.mp4" and video.stat().st_size > 1000
    assert video.read_bytes()[4:8] == b"ftyp"  # an MP4 container


@pytest.fixture(scope="module")
def mujoco_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    run = tmp_path_factory.mktemp("mujoco") / "run"
    cfg = compose_config(
        "train",
        [
            *("env=InvertedPendulum-v5", "agent=sac", "steps=200", "agent.learning_starts=100"),
            *("agent.batch_size=32", "agent.policy_kwargs.net_arch=[16]", "eval.every=0", "eval.episodes=1"),
            *("checkpoint.every=200", "logger.progress=none", "env.max_episode_steps=60"),
        ],
    )
    Trainer(cfg, run, "test").run_training()
    return run


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")  # gymnasium's half-made viewer
def test_video_without_mujoco_gl_says_how_to_get_one(
    mujoco_run: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # No EGL: MuJoCo's EGL context module cannot be imported, as on a machine without libEGL.
    monkeypatch.setenv("MUJOCO_GL", "egl")
    monkeypatch.setitem(sys.modules, "mujoco.egl", None)
    monkeypatch.setattr("robolearn.evaluate.evaluate_policy", _no_evaluation)
    cfg = compose_config("evaluate", [f"run={mujoco_run}", "episodes=1", "video=true"])
    with pytest.raises(UserError, match=r"no offscreen OpenGL .*apt-get install libegl1 .* libosmesa6"):
        evaluate_run(cfg)


def test_video_of_a_mujoco_env(mujoco_run: Path) -> None:
    pytest.importorskip("imageio_ffmpeg", reason='needs pip install "robolearn[video]"')
    cfg = compose_config("evaluate", [f"run={mujoco_run}", "episodes=1", "video=true"])
    try:
        out = evaluate_run(cfg)
    except UserError as exc:
        if "no offscreen OpenGL" not in str(exc):
            raise
        pytest.skip(f"no offscreen GL on this machine: {exc}")
    video = Path(out["video"])
    assert video.suffix == ".mp4" and video.stat().st_size > 1000
    assert video.read_bytes()[4:8] == b"ftyp"  # an MP4 container
