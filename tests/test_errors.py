"""Bad input fails before any work, with one line naming the key, the bad value and the fix."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from train_helpers import run_cli, tiny_config

from robolearn.runs.trainer import Trainer
from robolearn.train import _prepare

CASES = [
    (["agent.learnin_rate=0.1"], "agent.learnin_rate", "learning_rate"),
    (["env=Hoper-v5"], "env=Hoper-v5", "Hopper-v5"),
    (["agent=sacc"], "agent=sacc", "sac"),
    (["steps=-5"], "steps=-5", "positive"),
    (["agent.learning_rate=-0.1"], "agent.learning_rate=-0.1", "positive"),
    (["steps=abc"], "steps", "Integer"),
    (["+experiment=nope"], "experiment=nope", "choose one of"),
    (["-m", "seed=1,2,-3"], "seed=-3", ">= 0"),
    # Hydra's own messages for these two run to several lines and do not name the fix.
    (["experiment=hopper_sac"], "experiment=hopper_sac", "add it with +experiment=hopper_sac"),
    (["agent=sac,td3"], "agent=sac,td3", "add -m"),
    (["device=gpu"], "device=gpu", "cpu"),
    (["env.id=Hoper-v5"], "env.id=Hoper-v5", "Hopper-v5"),
    (["agent=sac", "agent.n_epochs=3"], "agent.n_epochs", "keys here"),
    (["agent.gamma=1.5"], "agent.gamma=1.5", "(0, 1]"),
    (["logger.progress=loud"], "logger.progress=loud", "choose one of"),
    (["resume=/nonexistent/run"], "resume=/nonexistent/run", "not a directory"),
    (["env.max_episode_steps=0"], "env.max_episode_steps=0", "positive"),
    (["hydra/launcher=rayy"], "hydra/launcher=rayy", "ray_local"),
    (["-m", "seed=0,1", "hydra/launcher=local", "hydra.launcher.n_job=2"], "hydra.launcher.n_job", "n_jobs"),
]


@pytest.mark.parametrize(("argv", "names", "fix"), CASES)
def test_bad_input_is_one_line_before_any_work(
    argv: list[str],
    names: str,
    fix: str,
    capsys: pytest.CaptureFixture[str],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.chdir(tmp_path)
    with pytest.raises(SystemExit) as exc:
        _prepare(argv)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error: ") and "\n" not in err, err
    assert names in err and fix in err, err
    assert not any(tmp_path.iterdir()), "a refused command wrote files"


def test_cli_exit_code_and_no_traceback(tmp_path: Path) -> None:
    result = run_cli("robolearn.train", "agent.learning_rate=-1", f"hydra.run.dir={tmp_path / 'run'}")
    assert result.returncode == 2
    assert result.stderr.strip() == "error: agent.learning_rate=-1.0 is out of range; use a positive number"
    assert "Traceback" not in result.stderr + result.stdout
    assert not (tmp_path / "run").exists()


def test_hydra_mistakes_are_one_line_from_the_cli(tmp_path: Path) -> None:
    for argv, fix in (
        (["experiment=hopper_sac"], "+experiment=hopper_sac"),
        (["agent=sac,td3"], "add -m"),
    ):
        result = run_cli("robolearn.train", *argv, f"hydra.run.dir={tmp_path / 'run'}")
        assert result.returncode == 2, result.stderr
        err = result.stderr.strip()
        assert err.startswith("error: ") and "\n" not in err and fix in err, err
        assert not (tmp_path / "run").exists()


def test_resume_with_another_agent_names_the_runs_agent(tmp_path: Path) -> None:
    from omegaconf import OmegaConf

    from robolearn.errors import UserError
    from robolearn.train import resume_config

    run = tmp_path / "run"
    run.mkdir()
    OmegaConf.save(tiny_config("sac"), run / "config.yaml", resolve=True)
    with pytest.raises(UserError, match=rf"{run} holds a run with agent=sac, not td3"):
        resume_config([f"resume={run}", "agent=td3"])
    with pytest.raises(UserError, match=r"holds a run with env=Pendulum-v1, not Hopper-v5"):
        resume_config([f"resume={run}", "env=Hopper-v5"])


def test_corrupt_checkpoint_is_reported_in_one_line(tmp_path: Path) -> None:
    run = tmp_path / "run"
    Trainer(tiny_config("sac", "steps=300"), run, "test").run_training()
    (run / "summary.json").unlink()
    (run / "checkpoints" / "latest.json").write_text("{not json")
    result = run_cli("robolearn.train", f"resume={run}")
    assert result.returncode == 2 and result.stderr.count("\n") == 1
    assert "latest.json is corrupt" in result.stderr

    (run / "checkpoints" / "latest.json").write_text(json.dumps({"name": "step_000000000300", "step": 300}))
    (run / "checkpoints" / "step_000000000300" / "model.zip").write_bytes(b"garbage")
    result = run_cli("robolearn.train", f"resume={run}")
    assert result.returncode == 2 and "cannot be read" in result.stderr and result.stderr.count("\n") == 1


def test_evaluate_reports_missing_run(tmp_path: Path) -> None:
    result = run_cli("robolearn.evaluate", f"run={tmp_path / 'nope'}")
    assert result.returncode == 2
    assert (
        result.stderr.strip()
        == f"error: run={tmp_path / 'nope'} is not a directory; pass the run directory that train wrote"
    )
