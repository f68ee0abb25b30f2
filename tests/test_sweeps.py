"""Real multiruns of tiny jobs through each launcher; re-runs skip finished jobs; a failed job is
reported without stopping the others."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from train_helpers import run_cli

SWEEP = ["+experiment=smoke", "steps=300", "logger.progress=none"]

# Whole sweeps in subprocesses (and a Ray instance): ~10-20 s each on a quiet 2-core machine, but
# several times that when the machine is shared, so allow more than the default 120 s.
pytestmark = pytest.mark.timeout(400)


def _jobs(sweep: Path) -> dict[str, Path]:
    return {p.name: p for p in sweep.iterdir() if p.is_dir() and (p / "config.yaml").is_file()}


def test_local_launcher_sweep_skips_finished_and_isolates_failures(tmp_path: Path) -> None:
    sweep = tmp_path / "sweep"
    # A job folder left with a corrupt checkpoint pointer: that job must fail alone.
    broken = sweep / "+experiment=smoke,seed=1,steps=300"
    (broken / "checkpoints").mkdir(parents=True)
    (broken / "checkpoints" / "latest.json").write_text("{")

    args = ["robolearn.train", "-m", *SWEEP, "seed=0,1,2", f"hydra.sweep.dir={sweep}", "hydra/launcher=local"]
    first = run_cli(*args, timeout=240)
    assert first.returncode != 0, "a failed job must make the sweep's exit code non-zero"
    assert "latest.json is corrupt" in first.stderr
    jobs = _jobs(sweep)
    assert set(jobs) == {f"+experiment=smoke,seed={s},steps=300" for s in range(3)}
    finished = {name for name, path in jobs.items() if (path / "summary.json").is_file()}
    assert finished == {"+experiment=smoke,seed=0,steps=300", "+experiment=smoke,seed=2,steps=300"}
    assert "corrupt" in (broken / "error.txt").read_text()

    mtimes = {n: (jobs[n] / "summary.json").stat().st_mtime_ns for n in finished}
    (broken / "checkpoints" / "latest.json").unlink()
    second = run_cli(*args, timeout=240)
    assert second.returncode == 0, second.stderr
    assert second.stdout.count("already completed") == 2
    assert {n: (jobs[n] / "summary.json").stat().st_mtime_ns for n in finished} == mtimes
    assert (broken / "summary.json").is_file() and not (broken / "error.txt").exists()


def _run_launcher(tmp_path: Path, launcher: str) -> dict[str, float]:
    sweep = tmp_path / launcher
    result = run_cli(
        "robolearn.train",
        "-m",
        *SWEEP,
        "seed=0,1",
        f"hydra.sweep.dir={sweep}",
        f"hydra/launcher={launcher}",
        timeout=240,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    return {
        name: json.loads((path / "summary.json").read_text())["eval/mean_return"]
        for name, path in _jobs(sweep).items()
    }


@pytest.fixture(scope="module")
def local_results(tmp_path_factory: pytest.TempPathFactory) -> dict[str, float]:
    results = _run_launcher(tmp_path_factory.mktemp("local"), "local")
    assert len(results) == 2
    return results


@pytest.mark.parametrize(
    ("launcher", "plugin"),
    [
        ("ray_local", "hydra_plugins.hydra_ray_launcher"),
        ("submitit_local", "hydra_plugins.hydra_submitit_launcher"),
    ],
)
def test_distributed_launchers_match_local_results(
    tmp_path: Path, local_results: dict[str, float], launcher: str, plugin: str
) -> None:
    pytest.importorskip(plugin, reason="needs robolearn[dist]")
    # Same seeds, same figures, whichever engine ran the jobs.
    assert _run_launcher(tmp_path, launcher) == local_results
