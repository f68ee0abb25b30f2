"""A run killed with SIGKILL and resumed ends with the same figures as an uninterrupted run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from train_helpers import REPO, TINY, TINY_PER_ALGO, run_cli

from robolearn.runs.metrics import read_metrics

pytestmark = pytest.mark.timeout(300)  # two training processes per test

CASES = {
    "sac": ("sac", []),
    "td3": ("td3", []),
    # Two envs and observation/reward normalisation exercise VecNormalize's state too.
    "ppo": ("ppo", ["agent.n_envs=2", "agent.normalize_obs=true", "agent.normalize_reward=true"]),
    # A robolearn task stepped as one mujoco.batch batch: the batch's own state and RNG.
    "ppo_go2_batch": (
        "ppo",
        ["env=Go2Velocity-v1", "env.kwargs.backend=batch", "agent.n_envs=4", "env.max_episode_steps=100"],
    ),
    # CAMEL's mask generator, per-episode mask flags and the boxes in replay.
    "camel": ("td3", ["method=camel", "method.prior=pendulum_energy_swingup", "method.probe=false"]),
    "camel_sac": ("sac", ["method=camel", "method.prior=pendulum_energy_swingup", "method.probe=false"]),
}


def _args(case: str, run: Path) -> list[str]:
    algo, extra = CASES[case]
    return [
        "robolearn.train",
        f"hydra.run.dir={run}",
        "env=Pendulum-v1",  # a case's own env= comes later and wins
        *TINY_PER_ALGO[algo],
        *TINY,
        *extra,
        "steps=1600",
        "checkpoint.every=200",
        "eval.every=400",
    ]


def _figures(run: Path) -> tuple[dict[str, object], list[dict[str, object]]]:
    summary = json.loads((run / "summary.json").read_text())
    figures = {k: v for k, v in summary.items() if k not in ("wall_time_s", "command", "run_dir", "resumes")}
    rows = [
        {k: v for k, v in row.items() if k != "wall_time_s" and not k.startswith("time/")}
        for row in read_metrics(run / "metrics.jsonl")
    ]
    return figures, rows


def _kill_after_checkpoint(args: list[str], run: Path, min_step: int) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", *args], cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    pointer = run / "checkpoints" / "latest.json"
    deadline = time.monotonic() + 90
    try:
        while time.monotonic() < deadline:
            if pointer.is_file():
                try:
                    if json.loads(pointer.read_text())["step"] >= min_step:
                        break
                except (json.JSONDecodeError, KeyError):
                    pass
            if proc.poll() is not None:
                pytest.fail(
                    f"training ended before it could be killed: {proc.stderr.read() if proc.stderr else ''}"
                )
            time.sleep(0.02)
        else:
            pytest.fail("no checkpoint appeared in time")
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    assert not (run / "summary.json").exists(), "run finished before the kill"


@pytest.mark.parametrize("algo", list(CASES))
def test_kill_and_resume_reproduces_uninterrupted_run(tmp_path: Path, algo: str) -> None:
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    uninterrupted = subprocess.Popen(
        [sys.executable, "-m", *_args(algo, whole)], cwd=REPO, stdout=subprocess.DEVNULL
    )
    _kill_after_checkpoint(_args(algo, killed), killed, min_step=600)

    resumed = run_cli("robolearn.train", f"resume={killed}", "logger.progress=none")
    assert resumed.returncode == 0, resumed.stderr
    assert "resuming" in resumed.stdout
    assert uninterrupted.wait(timeout=120) == 0

    whole_figures, whole_rows = _figures(whole)
    killed_figures, killed_rows = _figures(killed)
    assert killed_figures["steps"] == whole_figures["steps"] >= 1600
    assert killed_figures == whole_figures
    assert killed_rows == whole_rows
    assert json.loads((killed / "summary.json").read_text())["resumes"] == 1


def test_resume_can_extend_steps_but_not_change_the_run(tmp_path: Path) -> None:
    run = tmp_path / "run"
    first = run_cli(*_args("sac", run)[:-3], "steps=600")  # evaluations every 300 steps (TINY)
    assert first.returncode == 0, first.stderr
    bad = run_cli("robolearn.train", f"resume={run}", "agent.learning_rate=0.1")
    assert bad.returncode == 2
    assert bad.stderr.strip().count("\n") == 0 and "agent.learning_rate" in bad.stderr
    longer = run_cli("robolearn.train", f"resume={run}", "steps=800", "logger.progress=none")
    assert longer.returncode == 0, longer.stderr
    assert json.loads((run / "summary.json").read_text())["steps"] == 800
    # The final evaluation at 600 counts for that boundary: extending does not re-evaluate at 601.
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows if "eval/mean_return" in r] == [300, 600, 800]
