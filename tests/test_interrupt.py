"""Ctrl-C (SIGINT) or SIGTERM during training: a checkpoint at the next safe point, one line naming the
run directory and the resume command, exit 130/143; `resume=` then finishes the run exactly as an
uninterrupted one. A run without a checkpoint says so when resumed."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from omegaconf import OmegaConf
from train_helpers import REPO, TINY, TINY_PER_ALGO, run_cli, tiny_config

from robolearn.runs.metrics import read_metrics
from robolearn.runs.trainer import Trainer

pytestmark = pytest.mark.timeout(300)

STEPS = 600


def _args(run: Path) -> list[str]:
    return [
        "robolearn.train",
        f"hydra.run.dir={run}",
        "env=Pendulum-v1",
        *TINY_PER_ALGO["sac"],
        *TINY,
        f"steps={STEPS}",
        "logger.progress=lines",
        "logger.progress_every_s=0",
    ]


def _start_and_signal(run: Path, signum: int, log: Path) -> tuple[int, str, str]:
    """Start a run, send `signum` once it prints a progress line past step 0; (exit code, stdout, stderr)."""
    with open(log, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", *_args(run)],
            cwd=REPO,
            stdout=out,
            stderr=subprocess.PIPE,
            text=True,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        deadline = time.monotonic() + 120
        try:
            while not re.search(r"^step [1-9]\d*/", log.read_text(), re.MULTILINE):
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"run never started stepping: {log.read_text()} {proc.communicate()[1]}")
                time.sleep(0.05)
            proc.send_signal(signum)
            _, err = proc.communicate(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    return proc.returncode, log.read_text(), err


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_signal_saves_a_checkpoint_that_resume_continues(tmp_path: Path, signum: int) -> None:
    run = tmp_path / "run"
    whole = None
    if signum == signal.SIGINT:  # once, for exactness: the same run uninterrupted, alongside
        whole = subprocess.Popen(
            [sys.executable, "-m", *_args(tmp_path / "whole")], cwd=REPO, stdout=subprocess.DEVNULL
        )
    code, out, err = _start_and_signal(run, signum, tmp_path / "out.log")

    assert code == 128 + signum, err
    assert out.splitlines()[0] == f"run directory: {run}"  # said when the run starts
    assert "Traceback" not in err + out
    last = err.strip().splitlines()[-1]
    stopped = re.fullmatch(
        rf"stopped by {signal.Signals(signum).name} at step (\d+), checkpoint saved; "
        rf"continue with: \S*python\S* -m robolearn\.train resume={re.escape(str(run))}",
        last,
    )
    assert stopped is not None, err
    step = int(stopped.group(1))
    assert 0 < step < STEPS
    assert json.loads((run / "checkpoints" / "latest.json").read_text())["step"] == step
    assert (run / "checkpoints" / f"step_{step:012d}" / "model.zip").is_file()
    assert not (run / "summary.json").exists() and not (run / "error.txt").exists()

    resumed = run_cli("robolearn.train", f"resume={run}", "logger.progress=none")
    assert resumed.returncode == 0, resumed.stderr
    assert f"resuming {run} from step {step}" in resumed.stdout
    summary = json.loads((run / "summary.json").read_text())
    assert summary["status"] == "completed" and summary["steps"] == STEPS and summary["resumes"] == 1

    if whole is not None:
        assert whole.wait(timeout=120) == 0
        reference = json.loads((tmp_path / "whole" / "summary.json").read_text())
        assert summary["eval/returns"] == reference["eval/returns"]

        def rows(path: Path) -> list[dict[str, object]]:
            return [
                {k: v for k, v in r.items() if k != "wall_time_s" and not k.startswith("time/")}
                for r in read_metrics(path / "metrics.jsonl")
            ]

        assert rows(run) == rows(tmp_path / "whole")


def test_resuming_a_run_without_a_checkpoint_says_so(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    # What a run stopped (or killed) before its first checkpoint leaves: its config, no checkpoint.
    run = tmp_path / "run"
    cfg = tiny_config("sac", "steps=200", "checkpoint.every=5000")
    run.mkdir()
    OmegaConf.save(cfg, run / "config.yaml", resolve=True)
    summary = Trainer(cfg, run, "test").run_training()
    out = capsys.readouterr().out
    assert (
        f"{run} has no checkpoint yet (the first is taken at step 5000): training starts again from step 0"
        in out
    )
    assert summary["steps"] == 200 and summary["resumes"] == 0

    # A fresh directory is not a resume: no such line.
    Trainer(cfg, tmp_path / "fresh", "test").run_training()
    assert "no checkpoint yet" not in capsys.readouterr().out


def test_a_signal_during_the_warm_start_stops_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before training starts there is nothing to checkpoint, and prior_init's warm start can take
    # minutes: the first signal stops there and then. It is sent from the first progress note.
    import robolearn.methods.prior_init as prior_init
    from robolearn.runs.trainer import TrainingStopped

    notes: list[str] = []

    def note_and_signal(message: str) -> None:
        notes.append(message)
        if "collecting prior rollouts" in message:
            os.kill(os.getpid(), signal.SIGTERM)

    monkeypatch.setattr(prior_init, "note", note_and_signal)
    handler = signal.getsignal(signal.SIGTERM)
    cfg = tiny_config(
        "ppo",
        "method=prior_init",
        "method.prior=pendulum_energy_swingup",
        "method.probe=false",
        "method.samples=4000",
    )
    with pytest.raises(TrainingStopped) as stopped:
        Trainer(cfg, tmp_path / "run", "test").run_training()
    assert stopped.value.signum == signal.SIGTERM and stopped.value.step is None
    assert "collecting prior rollouts" in notes[-1]  # the signal stopped it: no more collecting, no fitting
    assert sum("collecting" in n for n in notes) == 1 and not any("fitting" in n for n in notes)
    assert not (tmp_path / "run" / "checkpoints").exists() and not (tmp_path / "run" / "error.txt").exists()
    assert signal.getsignal(signal.SIGTERM) is handler  # the trainer's handler is gone again


def test_a_second_signal_waits_for_the_checkpoint_being_written(capsys: pytest.CaptureFixture[str]) -> None:
    from robolearn.runs.trainer import StoppedAtOnce, _StopRequests

    stops = _StopRequests()
    with stops:
        stops.at_once = False  # training: the first signal only asks for a stop
        os.kill(os.getpid(), signal.SIGTERM)
        assert stops.signum == signal.SIGTERM
        assert "saving a checkpoint at the next safe point" in capsys.readouterr().err
        written = []
        with pytest.raises(StoppedAtOnce), stops.writing():
            os.kill(os.getpid(), signal.SIGTERM)  # the second, mid-write: held back...
            written.append("rest of the checkpoint")
        assert written == ["rest of the checkpoint"]  # ...until the write is done
        with pytest.raises(StoppedAtOnce):
            os.kill(os.getpid(), signal.SIGTERM)  # outside a write: at once
            time.sleep(1)
