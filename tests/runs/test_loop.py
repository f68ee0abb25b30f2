"""robolearn.runs.loop: the run directory of loops that are not SB3's (contract 8)."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from omegaconf import DictConfig, OmegaConf

from robolearn.errors import UserError
from robolearn.runs.loop import LoopRun, resume_config, run_loop_job
from robolearn.runs.metrics import read_metrics
from robolearn.runs.trainer import TrainingStopped


def _cfg(steps: int = 6, lr: float = 0.1, seed: int = 3) -> DictConfig:
    return OmegaConf.create(
        {
            "seed": seed,
            "steps": steps,
            "lr": lr,
            "env": {"id": "toy"},
            "method": {"name": "toyfit"},
            "logger": {"progress": "none"},
        }
    )


def _job(cfg: DictConfig, root: Path, stop_at: int | None = None) -> dict[str, Any]:
    """A tiny regression loop whose every step draws from the global RNGs (torch and numpy)."""
    with LoopRun(cfg, root, "test", total=cfg.steps) as run:
        if run.completed is not None:
            return run.completed
        torch.manual_seed(cfg.seed)
        np.random.seed(cfg.seed)
        w = torch.zeros(3)
        state = run.resume_state()
        if state is not None:
            w = state["w"].clone()
        for step in range(run.step + 1, cfg.steps + 1):
            x = torch.randn(16, 3)
            y = x @ torch.tensor([1.0, -2.0, 0.5]) + 0.01 * float(np.random.randn())
            grad = 2 * x.T @ (x @ w - y) / 16
            w = w - cfg.lr * grad
            loss = float(((x @ w - y) ** 2).mean())
            run.log(step, {"train/loss": loss})
            run.progress(step)
            if step % 2 == 0:
                run.checkpoint(step, {"w": w})
            if stop_at == step:
                os.kill(os.getpid(), signal.SIGINT)
            run.stop_point(step, lambda: {"w": w})  # noqa: B023 - called at once
        return run.finish(
            {"eval/mean_return": -loss, "eval/std_return": 0.0, "eval/episodes": 1, "w": w.tolist()}
        )


def _lines(root: Path) -> list[dict[str, Any]]:
    return [
        {k: v for k, v in row.items() if k != "wall_time_s"} for row in read_metrics(root / "metrics.jsonl")
    ]


def test_stop_and_resume_continue_exactly(tmp_path: Path) -> None:
    whole = _job(_cfg(), tmp_path / "whole")
    with pytest.raises(TrainingStopped) as stopped:
        _job(_cfg(), tmp_path / "cut", stop_at=3)
    assert stopped.value.step == 3
    assert json.loads((tmp_path / "cut/checkpoints/latest.json").read_text())["step"] == 3
    resumed = _job(_cfg(), tmp_path / "cut")
    assert resumed["w"] == whole["w"]
    assert resumed["resumes"] == 1 and whole["resumes"] == 0
    assert _lines(tmp_path / "cut") == _lines(tmp_path / "whole")
    assert [row["step"] for row in _lines(tmp_path / "cut")] == [1, 2, 3, 4, 5, 6]
    assert resumed["status"] == "completed" and resumed["seed"] == 3 and resumed["steps"] == 6
    # Two checkpoints are kept, each written whole.
    assert sorted(p.name for p in (tmp_path / "cut/checkpoints").glob("step_*")) == [
        "step_000000000004",
        "step_000000000006",
    ]
    assert not list((tmp_path / "cut/checkpoints").glob(".tmp-*"))
    assert list((tmp_path / "cut/tb").glob("events.out.tfevents.*"))


def test_completed_run_is_skipped_and_extended(tmp_path: Path) -> None:
    first = _job(_cfg(steps=4), tmp_path / "r")
    again = _job(_cfg(steps=4), tmp_path / "r")
    assert again == first  # skipped: summary.json returned as it is
    longer = _job(_cfg(steps=6), tmp_path / "r")  # steps may grow: continues from step 4
    assert longer["steps"] == 6 and longer["resumes"] == 1
    assert [row["step"] for row in _lines(tmp_path / "r")] == [1, 2, 3, 4, 5, 6]


def test_a_different_config_is_refused_before_any_write(tmp_path: Path) -> None:
    _job(_cfg(), tmp_path / "r")
    before = (tmp_path / "r/summary.json").read_bytes()
    with pytest.raises(UserError, match=r"holds a run with lr=0.1, not 0.5"):
        _job(_cfg(lr=0.5), tmp_path / "r")
    assert (tmp_path / "r/summary.json").read_bytes() == before


def test_a_failing_loop_writes_error_txt_and_keeps_its_checkpoint(tmp_path: Path) -> None:
    cfg = _cfg()
    with pytest.raises(ValueError, match="diverged"), LoopRun(cfg, tmp_path / "r", "test", total=6) as run:
        run.checkpoint(2, {"w": torch.ones(2)})
        raise ValueError("diverged")
    assert (tmp_path / "r/error.txt").read_text() == "ValueError: diverged\n"
    assert not (tmp_path / "r/summary.json").exists()
    with LoopRun(cfg, tmp_path / "r", "test", total=6) as run:
        state = run.resume_state()
        assert run.step == 2 and state is not None and torch.equal(state["w"], torch.ones(2))


def test_corrupt_checkpoint_is_one_line(tmp_path: Path) -> None:
    _job(_cfg(steps=2), tmp_path / "r")
    (tmp_path / "r/checkpoints/step_000000000002/state.pt").write_bytes(b"not a checkpoint")
    (tmp_path / "r/summary.json").unlink()
    with pytest.raises(UserError, match=r"state.pt cannot be read .*delete it to restart the run"):
        _job(_cfg(steps=2), tmp_path / "r")


def test_run_loop_job_maps_errors_and_stops_to_exit_codes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    def bad() -> dict[str, Any]:
        raise UserError("sequence=nope is unknown")

    with pytest.raises(SystemExit) as ex:
        run_loop_job("continual", bad, tmp_path, multirun=False)
    assert ex.value.code == 2
    assert capsys.readouterr().err.strip() == "error: sequence=nope is unknown"

    def stopped() -> dict[str, Any]:
        raise TrainingStopped(signal.SIGTERM, 40)

    with pytest.raises(SystemExit) as ex:
        run_loop_job("continual", stopped, tmp_path, multirun=False)
    assert ex.value.code == 128 + signal.SIGTERM
    err = capsys.readouterr().err
    assert "stopped by SIGTERM at step 40" in err and f"robolearn.continual resume={tmp_path}" in err


def test_resume_config_allows_only_existing_keys(tmp_path: Path) -> None:
    _job(_cfg(steps=2), tmp_path / "r")
    run, cfg = resume_config("continual", [f"resume={tmp_path / 'r'}", "steps=8"])
    assert run.root == tmp_path / "r" and cfg.steps == 8 and cfg.lr == 0.1
    with pytest.raises(UserError, match=r"nope=1 cannot be combined with resume="):
        resume_config("continual", [f"resume={tmp_path / 'r'}", "nope=1"])


def test_report_reads_a_loop_run(tmp_path: Path) -> None:
    from robolearn.report.collect import collect

    for seed in (0, 1):
        _job(_cfg(steps=2, seed=seed), tmp_path / "sweep" / f"r{seed}")
    collection = collect([tmp_path / "sweep"])
    assert not collection.failed and not collection.issues
    [group] = collection.groups
    assert (group.method, group.env_id, group.seeds) == ("toyfit", "toy", [0, 1])
    assert all(r < 0 for r in group.final_returns)
