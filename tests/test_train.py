"""A tiny training run per agent writes the whole run directory, and its models load with plain SB3."""

from __future__ import annotations

import io
import json
import math
import re
from pathlib import Path

import numpy as np
import pytest
from stable_baselines3 import PPO, SAC, TD3
from train_helpers import tiny_config

from robolearn.runs.metrics import read_metrics
from robolearn.runs.trainer import Trainer

SB3 = {"ppo": PPO, "sac": SAC, "td3": TD3}


@pytest.mark.parametrize("algo", ["sac", "td3", "ppo", "zero", "random"])
def test_tiny_run_writes_run_directory(tmp_path: Path, algo: str) -> None:
    cfg = tiny_config(algo)
    run = tmp_path / "run"
    summary = Trainer(cfg, run, "test").run_training()

    for name in ("config.yaml", "metrics.jsonl", "summary.json", "final/model.zip", "best/model.zip"):
        assert (run / name).is_file(), name
    assert list((run / "tb").glob("events.out.tfevents.*")), "TensorBoard events missing"
    assert json.loads((run / "checkpoints" / "latest.json").read_text())["step"] == summary["steps"]

    rows = read_metrics(run / "metrics.jsonl")
    assert rows and all("step" in r and "wall_time_s" in r for r in rows)
    eval_steps = [r["step"] for r in rows if "eval/mean_return" in r]
    # One periodic evaluation at the first vector step past eval.every=300, and the final one where
    # training ended: at steps=600, or for PPO at the end of the whole rollout that passed it.
    n_envs = cfg.agent.n_envs
    rollout = cfg.agent.n_steps * n_envs if algo == "ppo" else n_envs
    assert eval_steps == [math.ceil(300 / n_envs) * n_envs, math.ceil(600 / rollout) * rollout]
    assert summary["steps"] == eval_steps[-1]
    if algo in ("zero", "random"):
        assert any("rollout/ep_rew_mean" in r for r in rows)
    else:
        assert any(k.startswith("train/") for r in rows for k in r), "agent's training scalars not logged"

    on_disk = json.loads((run / "summary.json").read_text())
    assert on_disk == json.loads(json.dumps(summary))
    for key in (
        "eval/mean_return",
        "eval/std_return",
        "eval/episodes",
        "steps",
        "wall_time_s",
        "seed",
        "command",
    ):
        assert key in on_disk
    assert on_disk["steps"] >= 600 and on_disk["eval/episodes"] == 2
    assert on_disk["cpu"]["cores"] >= 1 and "model" in on_disk["cpu"]
    assert on_disk["versions"]["stable-baselines3"]
    assert np.isfinite(on_disk["eval/mean_return"])


@pytest.mark.parametrize("algo", ["sac", "ppo"])
def test_checkpoint_loads_with_plain_sb3(tmp_path: Path, algo: str) -> None:
    cfg = tiny_config(algo)
    Trainer(cfg, tmp_path / "run", "test").run_training()
    model = SB3[algo].load(tmp_path / "run" / "final" / "model.zip", device="cpu")
    ckpt = SB3[algo].load(next((tmp_path / "run" / "checkpoints").glob("step_*")) / "model.zip", device="cpu")
    obs = np.zeros(3, dtype=np.float32)
    action, _ = model.predict(obs, deterministic=True)
    assert action.shape == (1,) and -2.0 <= float(action[0]) <= 2.0
    assert type(model) is SB3[algo] and ckpt.num_timesteps > 0


def test_same_seed_same_figures(tmp_path: Path) -> None:
    a = Trainer(tiny_config("sac"), tmp_path / "a", "test").run_training()
    b = Trainer(tiny_config("sac"), tmp_path / "b", "test").run_training()
    c = Trainer(tiny_config("sac", "seed=1"), tmp_path / "c", "test").run_training()
    assert a["eval/returns"] == b["eval/returns"]
    assert a["eval/returns"] != c["eval/returns"]


def test_completed_run_is_skipped_and_changed_config_refused(tmp_path: Path) -> None:
    from robolearn.errors import UserError

    run = tmp_path / "run"
    first = Trainer(tiny_config("sac"), run, "test").run_training()
    again = Trainer(tiny_config("sac"), run, "test").run_training()
    assert again == json.loads(json.dumps(first))
    with pytest.raises(UserError, match=r"agent.learning_rate"):
        Trainer(tiny_config("sac", "agent.learning_rate=0.5"), run, "test").run_training()


def test_wandb_offline_writes_run_files(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("wandb")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    run = tmp_path / "run"
    Trainer(tiny_config("sac", "steps=300", "logger.wandb.enabled=true"), run, "test").run_training()
    offline = list((run / "wandb").glob("offline-run-*"))
    assert offline, "no offline wandb run written"
    assert list(offline[0].glob("*.wandb")), "offline run has no history file"
    assert (run / "wandb_id.txt").read_text().strip() in offline[0].name


def test_sanity_agents_act_as_named(tmp_path: Path) -> None:
    from robolearn.evaluate import load_policy
    from robolearn.runs.layout import RunDir

    for algo in ("zero", "random"):
        cfg = tiny_config(algo, "steps=200")
        Trainer(cfg, tmp_path / algo, "test").run_training()
        model, _ = load_policy(RunDir(tmp_path / algo), "final", cfg)
        actions = np.stack([model.predict(np.zeros(3, dtype=np.float32))[0] for _ in range(50)])
        assert np.all(np.abs(actions) <= 2.0)
        if algo == "zero":
            assert np.all(actions == 0.0)
        else:
            assert actions.std() > 0.5  # uniform on [-2, 2] has std 1.15


def test_kl_adaptive_learning_rate_follows_the_measured_kl(tmp_path: Path) -> None:
    # With a KL target far below what an update reaches the rate must shrink every rollout; far above
    # it, grow; the rate is logged, and the checkpoint holds it so a resume continues from it.
    rates = {}
    for name, kl in (("low", "1e-12"), ("high", "10.0")):
        cfg = tiny_config(
            "ppo", "agent.learning_rate=0.001", f"agent.desired_kl={kl}", "logger.log_interval=1"
        )
        Trainer(cfg, tmp_path / name, "test").run_training()
        rows = [r for r in read_metrics(tmp_path / name / "metrics.jsonl") if "train/learning_rate" in r]
        rates[name] = [r["train/learning_rate"] for r in rows]
        model = PPO.load(tmp_path / name / "final" / "model.zip", device="cpu")
        assert model.adaptive_lr == pytest.approx(rates[name][-1] * (1.5 ** (-1 if name == "low" else 1)))
    assert rates["low"][0] == pytest.approx(0.001) and rates["high"][0] == pytest.approx(0.001)
    assert all(b < a for a, b in zip(rates["low"], rates["low"][1:], strict=False))
    assert all(b > a for a, b in zip(rates["high"], rates["high"][1:], strict=False))


def test_desired_kl_is_validated(tmp_path: Path) -> None:
    from robolearn.config.validate import validate_train_config
    from robolearn.errors import UserError

    with pytest.raises(UserError, match=r"agent.desired_kl=-0.1 is out of range"):
        validate_train_config(tiny_config("ppo", "agent.desired_kl=-0.1"))


def test_ppo_progress_stops_at_100_percent_and_the_final_line_says_why(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from robolearn.train import train_job

    cfg = tiny_config("ppo", "logger.progress=lines", "logger.progress_every_s=0")
    rollout = cfg.agent.n_steps * cfg.agent.n_envs
    train_job(cfg, tmp_path / "run", "test")
    out = capsys.readouterr().out
    ran = json.loads((tmp_path / "run" / "summary.json").read_text())["steps"]
    assert ran == math.ceil(600 / rollout) * rollout > 600
    shown = [tuple(map(int, m)) for m in re.findall(r"^step (\d+)/(\d+) \((\d+)%\)", out, re.MULTILINE)]
    assert len(shown) > 2 and all(done <= total == 600 and pct <= 100 for done, total, pct in shown)
    assert shown[-1] == (600, 600, 100)
    assert (
        f"after {ran} steps (steps=600: ppo runs whole rollouts of n_steps x n_envs = {rollout} steps)" in out
    )


def test_progress_bar_fits_80_columns(monkeypatch: pytest.MonkeyPatch) -> None:
    from rich.console import Console

    from robolearn.runs.progress import ProgressReporter

    monkeypatch.setenv("COLUMNS", "80")
    console = Console(file=io.StringIO(), force_terminal=True)
    assert console.width == 80
    bar = ProgressReporter(3_000_000, 122_880, "bar", console=console)
    bar.episode_return, bar.eval_return = -1234.5, -145.25
    bar.update(1_500_000, force=True)
    bar.close(3_004_608)  # PPO's last rollout overshoots
    text = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", console.file.getvalue())  # type: ignore[attr-defined]
    lines = [line for line in re.split(r"[\r\n]", text) if line.strip()]
    assert lines and all(len(line) <= 80 for line in lines), lines
    # The step count (capped at the total), the rate and elapsed<left survive on the last frame.
    assert re.search(r"3000000/3000000 \d+ steps/s \d+:\d\d<\d+:\d\d", lines[-1]), lines[-1]
    assert re.search(r"1500000/3000000 \d+ steps/s", text)
