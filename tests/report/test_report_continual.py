"""Continual-run plots (robolearn.report.continual) from hand-made run directories, alone and
through robolearn.report."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

from robolearn.errors import UserError
from robolearn.report import build_report
from robolearn.report.continual import load_continual_run, plot_continual_run, task_names

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
NAN = math.nan


def _json_matrix(m: np.ndarray) -> list[list[float | None]]:
    return [[None if not math.isfinite(v) else float(v) for v in row] for row in m]


def write_continual_run(
    run_dir: Path,
    learner: str,
    seed: int,
    returns: np.ndarray,
    pred_error: np.ndarray,
    sequence: str = "pendulum",
) -> Path:
    """A finished continual run directory as robolearn.continual writes it (the keys report reads)."""
    run_dir.mkdir(parents=True)
    config = {
        "seed": seed,
        "sequence": sequence,
        "learner": {"name": learner},
        "method": {"name": learner},
        "env": {"id": sequence},
    }
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config))
    final = returns[-1]
    summary: dict[str, Any] = {
        "status": "completed",
        "seed": seed,
        "eval/mean_return": float(np.mean(final)),
        "eval/std_return": float(np.std(final)),
        "eval/episodes": 2 * len(final),
        "eval/returns": [float(v) for v in final],
        "continual/returns": _json_matrix(returns),
        "continual/pred_error": _json_matrix(pred_error),
    }
    (run_dir / "summary.json").write_text(json.dumps(summary))
    (run_dir / "metrics.jsonl").write_text(
        "".join(
            json.dumps({"step": 100 * (k + 1), "eval/mean_return": float(v)}) + "\n"
            for k, v in enumerate(final)
        )
    )
    return run_dir


def _matrices(forget: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    t = 4
    returns = np.full((t, t), NAN)
    errors = np.full((t, t), NAN)
    for i in range(t):
        for j in range(i + 1):
            returns[i, j] = 200.0 * (1 - forget) ** (i - j) + rng.normal(0, 2)
            errors[i, j] = 0.01 * (1 + 5 * forget) ** (i - j) * (1 + 0.1 * rng.random())
    return returns, errors


def test_plot_one_run_from_a_hand_made_summary(tmp_path: Path) -> None:
    returns, errors = _matrices(forget=0.3, seed=0)
    run = write_continual_run(tmp_path / "run", "finetune", 0, returns, errors)
    loaded = load_continual_run(run)
    np.testing.assert_allclose(loaded.returns, returns, equal_nan=True)
    assert (loaded.method, loaded.sequence, loaded.seed) == ("finetune", "pendulum", 0)
    figures = plot_continual_run(run, tmp_path / "figs")
    assert [f.name for f in figures] == ["continual_pred_error_pendulum", "continual_returns_pendulum"]
    for f in figures:
        assert f.png.read_bytes().startswith(PNG_MAGIC) and f.png.stat().st_size > 10_000
        assert b"<svg" in f.svg_bytes
    # The heat map annotates every seen cell (lower triangle) with its value: 10 cells for T = 4.
    svg = figures[0].svg.read_text()
    assert svg.count('<g id="text_') >= 10


def test_task_names_come_from_the_runs_saved_sequence(tmp_path: Path) -> None:
    # robolearn.continual composes the sequence node into config.yaml: its task names label the plots.
    returns, errors = _matrices(forget=0.1, seed=1)
    run = write_continual_run(tmp_path / "run", "hypercrl", 1, returns, errors)
    config = yaml.safe_load((run / "config.yaml").read_text())
    config["sequence"] = {"name": "mine", "tasks": [{"name": n} for n in ("a", "b", "c", "d")]}
    config["env"] = {"id": "mine"}
    (run / "config.yaml").write_text(yaml.safe_dump(config))
    loaded = load_continual_run(run)
    assert (loaded.sequence, loaded.task_names) == ("mine", ("a", "b", "c", "d"))


def test_task_names_come_from_the_sequence() -> None:
    assert task_names("pendulum", 4) == ("nominal", "long_pole", "heavy_pole", "half_gravity")
    assert task_names("no_such_sequence", 3) == ("task0", "task1", "task2")


def test_report_adds_continual_figures_and_table(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    for seed in range(2):
        write_continual_run(runs / f"hyper_{seed}", "hypercrl", seed, *_matrices(0.0, seed))
        write_continual_run(runs / f"fine_{seed}", "finetune", seed, *_matrices(0.4, seed + 10))
    built = build_report([runs], tmp_path / "report")
    names = {f.name for f in built.figures}
    assert {"continual_pred_error_pendulum", "continual_returns_pendulum"} <= names
    md = built.markdown.read_text()
    assert "## Continual learning" in md
    continual = md.split("## Continual learning", 1)[1].split("\n## ", 1)[0]
    rows = {
        line.split("|")[2].strip(): line for line in continual.splitlines() if line.startswith("| pendulum")
    }
    # hypercrl keeps its returns (retention ~1), finetune loses 40 % per later task.
    hyper_cells = [c.strip() for c in rows["hypercrl"].split("|")]
    fine_cells = [c.strip() for c in rows["finetune"].split("|")]
    assert float(hyper_cells[5]) == pytest.approx(1.0, abs=0.05)
    assert float(fine_cells[5]) < 0.6


def test_table_uses_the_runs_reference_returns(tmp_path: Path) -> None:
    returns = np.array([[30.0, NAN], [5.0, 30.0]])
    run = write_continual_run(tmp_path / "runs" / "r", "finetune", 0, returns, np.full((2, 2), 0.1))
    summary = json.loads((run / "summary.json").read_text())
    summary["continual/reference"] = [2.0, 2.0]
    (run / "summary.json").write_text(json.dumps(summary))
    md = build_report([tmp_path / "runs"], tmp_path / "report").markdown.read_text()
    row = next(
        line for line in md.split("## Continual learning")[1].splitlines() if line.startswith("| pendulum")
    )
    # (5 - 2) / (30 - 2) = 0.107, not the plain ratio 5/30 = 0.167.
    assert [c.strip() for c in row.split("|")][5] == "0.11"


def test_not_a_continual_run_is_a_one_line_error(tmp_path: Path) -> None:
    (tmp_path / "summary.json").write_text(json.dumps({"eval/mean_return": 1.0}))
    with pytest.raises(UserError, match="has no continual/returns and continual/pred_error"):
        load_continual_run(tmp_path)
    with pytest.raises(UserError, match=r"has no summary\.json"):
        load_continual_run(tmp_path / "missing")
