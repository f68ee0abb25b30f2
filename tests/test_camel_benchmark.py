"""The 100k CAMEL benchmark's bookkeeping (benchmarks/camel.py), without training: which runs a
sweep skips, copies, resumes or starts, and the tables rebuilt from hand-made small files."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load_benchmark() -> ModuleType:
    spec = importlib.util.spec_from_file_location("camel_benchmark", ROOT / "benchmarks" / "camel.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["camel_benchmark"] = module  # dataclasses look their module up by name
    spec.loader.exec_module(module)
    return module


cb = _load_benchmark()
KEYS_WITH_REPLAY = {"prior", "radius", "eps_fraction", "eval_mask", "masked_replay"}


def _summary(steps: int, final: float, **extra: Any) -> dict[str, Any]:
    return {"status": "completed", "steps": steps, "eval/mean_return": final, "wall_time_s": 60.0, **extra}


def _write_run(folder: Path, steps: int, final: float, curve: list[tuple[int, float]], **extra: Any) -> None:
    """A run's small files: summary.json, a metrics.jsonl with the training-return curve (and the
    evaluation curve equal to it), config.yaml."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "summary.json").write_text(json.dumps(_summary(steps, final, **extra)))
    rows = [{"step": s, "rollout/ep_rew_mean": v, "eval/mean_return": v} for s, v in curve]
    (folder / "metrics.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    (folder / "config.yaml").write_text(f"steps: {steps}\n")


def _job(tmp_path: Path, steps: int = 1000, arm: str = "td3") -> Any:
    return cb.Job(
        env="Hopper-v5",
        arm=arm,
        seed=0,
        steps=steps,
        overrides=("agent=td3",),
        run_dir=tmp_path / "runs" / "Hopper-v5" / arm / "seed_0",
        result_dir=tmp_path / "results" / "Hopper-v5" / arm / "seed_0",
        needs_expert=arm == "camel_expert",
    )


def test_run_state_skips_copies_resumes_or_starts(tmp_path: Path) -> None:
    job = _job(tmp_path)
    assert cb.run_state(job) == "new"
    assert cb.job_command(job)[3:] == [
        "env=Hopper-v5",
        "seed=0",
        "agent=td3",
        f"hydra.run.dir={job.run_dir}",
    ]
    job.run_dir.mkdir(parents=True)
    (job.run_dir / "config.yaml").write_text("steps: 1000\n")
    assert cb.run_state(job) == "resume"
    assert cb.job_command(job)[3:] == [f"resume={job.run_dir}", "steps=1000", "logger.progress=lines"]
    # A run folder that completed fewer steps than asked for is resumed (extended), not copied.
    _write_run(job.run_dir, 500, 1.0, [(500, 1.0)])
    assert cb.run_state(job) == "resume"
    _write_run(job.run_dir, 1000, 2.0, [(1000, 2.0)])
    assert cb.run_state(job) == "finished"
    assert cb.copy_small_files(job.run_dir, job.result_dir) == [
        "metrics.jsonl",
        "config.yaml",
        "summary.json",
    ]
    assert cb.run_state(job) == "done"
    # Done from the results alone (a fresh machine without the run folder).
    for name in ("summary.json", "metrics.jsonl", "config.yaml"):
        (job.run_dir / name).unlink()
    assert cb.run_state(job) == "done"


def test_plan_skips_an_arm_whose_method_option_is_missing(tmp_path: Path) -> None:
    budget = cb.Budget(steps=1000, expert_steps=2000)
    seeds = {"Hopper-v5": 2, "Walker2d-v5": 1}
    negated = {"Hopper-v5": tmp_path / "neg.py", "Walker2d-v5": tmp_path / "neg_w.py"}
    envs = ["Hopper-v5", "Walker2d-v5"]
    jobs, notes = cb.plan_jobs(
        envs, seeds, budget, tmp_path / "out", tmp_path / "res", negated, KEYS_WITH_REPLAY - {"masked_replay"}
    )
    assert {j.arm for j in jobs} == {"td3", "camel", "camel_expert", "camel_negated"}
    assert len(notes) == 2 and all("masked_replay" in n for n in notes)
    jobs, notes = cb.plan_jobs(
        envs, seeds, budget, tmp_path / "out", tmp_path / "res", negated, KEYS_WITH_REPLAY
    )
    assert notes == []
    # Seed-major: seed 0 of every env and arm first; the ablation arms only on Hopper.
    assert [j.label for j in jobs[:10]] == [
        "Hopper-v5/td3/seed_0",
        "Hopper-v5/camel/seed_0",
        "Hopper-v5/camel_expert/seed_0",
        "Hopper-v5/camel_negated/seed_0",
        "Hopper-v5/camel_raw/seed_0",
        "Hopper-v5/camel_drop/seed_0",
        "Walker2d-v5/td3/seed_0",
        "Walker2d-v5/camel/seed_0",
        "Walker2d-v5/camel_expert/seed_0",
        "Walker2d-v5/camel_negated/seed_0",
    ]
    assert len(jobs) == 6 * 2 + 4
    raw = next(j for j in jobs if j.arm == "camel_raw")
    assert "method.masked_replay=raw" in raw.overrides and "method.eps_fraction=0.4" in raw.overrides
    assert "agent.learning_starts=5000" in raw.overrides and "torch_threads=1" in raw.overrides
    expert = next(j for j in jobs if j.arm == "camel_expert")
    assert f"method.prior=expert:{tmp_path / 'out' / 'experts' / 'Hopper-v5'}" in expert.overrides


def test_expert_is_queued_only_while_a_camel_expert_run_needs_it(tmp_path: Path) -> None:
    budget = cb.Budget(steps=1000, expert_steps=2000)
    expert = cb.expert_job("Hopper-v5", budget, tmp_path / "runs_root", tmp_path / "results")
    experts = {"Hopper-v5": expert}
    needing = _job(tmp_path, arm="camel_expert")
    other = _job(tmp_path, arm="td3")
    assert cb.jobs_to_run([other, needing], experts) == [expert, other, needing]
    assert not cb._expert_ready(needing, experts) and cb._expert_ready(other, experts)
    _write_run(expert.run_dir, 2000, 3000.0, [(2000, 3000.0)])
    assert cb.jobs_to_run([other, needing], experts) == [other, needing]
    assert cb._expert_ready(needing, experts)
    # Every camel_expert run done: no expert needed, even on a machine without its folder.
    cb.copy_small_files(expert.run_dir, needing.result_dir)
    for name in ("summary.json", "metrics.jsonl", "config.yaml"):
        (expert.run_dir / name).unlink()
    assert cb.jobs_to_run([other, needing], experts) == [other]


def test_curve_auc_is_the_mean_height_over_training() -> None:
    rows = [{"step": 100, "r": 10.0}, {"step": 200, "r": 20.0}, {"step": 150}]
    # Flat 10 over [0, 100], trapezoid 10 -> 20 over [100, 200], held at 20 over [200, 400].
    assert cb.curve_auc(rows, "r", 400) == pytest.approx((1000 + 1500 + 4000) / 400)
    assert cb.curve_auc(rows, "r", 200) == pytest.approx(12.5)
    assert cb.curve_auc([], "r", 400) != cb.curve_auc([], "r", 400)  # nan


def _hand_made_results(root: Path) -> None:
    """Hopper: TD3 flat at 10, 20, 30; CAMEL flat at 40, 50, 60 (AUC = the constant); raw ablation
    flat at 5, 15, 25. Walker2d: TD3 at 100, 110, 120, CAMEL at 90, 95, 200. An expert per env."""
    steps = 1000
    arms = {
        ("Hopper-v5", "td3"): [10, 20, 30],
        ("Hopper-v5", "camel"): [40, 50, 60],
        ("Hopper-v5", "camel_raw"): [5, 15, 25],
        ("Walker2d-v5", "td3"): [100, 110, 120],
        ("Walker2d-v5", "camel"): [90, 95, 200],
    }
    for (env, arm), values in arms.items():
        for seed, v in enumerate(values):
            extra = {"camel/prior_status": f"ok (/x/priors/{env}/p_{env[0]}.py)"} if arm != "td3" else {}
            _write_run(
                root / env / arm / f"seed_{seed}",
                steps,
                float(v + 1),
                [(200, float(v)), (1000, float(v))],
                **extra,
            )
    for env in ("Hopper-v5", "Walker2d-v5"):
        _write_run(root / env / "expert", 3000, 2500.0, [(3000, 2500.0)])


def test_tables_rebuild_from_hand_made_small_files(tmp_path: Path) -> None:
    _hand_made_results(tmp_path)
    results = cb.load_results(tmp_path)
    assert len(results) == 15  # the experts' folders are not runs of an arm
    tables = cb.build_tables(results, {"Hopper-v5": _summary(3000, 2500.0)})
    hopper = tables["envs"]["Hopper-v5"]["arms"]
    assert hopper["td3"]["train_auc"]["iqm"] == pytest.approx(20.0)
    assert hopper["camel"]["train_auc"]["iqm"] == pytest.approx(50.0)
    assert hopper["camel"]["final"]["iqm"] == pytest.approx(51.0)
    assert hopper["camel"]["eval_auc"]["iqm"] == pytest.approx(50.0)
    assert hopper["camel"]["prior"] == "p_H"
    assert hopper["camel"]["p_vs_td3"]["train_auc"] == {"point": 1.0, "low": 1.0, "high": 1.0}
    # raw vs mapped: 5,15,25 against 40,50,60 never wins.
    assert hopper["camel_raw"]["p_vs_mapped"]["train_auc"]["point"] == 0.0
    walker = tables["envs"]["Walker2d-v5"]["arms"]
    # 90, 95, 200 against 100, 110, 120: 3 wins out of 9.
    assert walker["camel"]["p_vs_td3"]["train_auc"]["point"] == pytest.approx(3 / 9)
    parts = {p["env"]: p["held"] for p in tables["claim"]["parts"]}
    assert parts == {
        "Hopper-v5": True,
        "Ant-v5": None,
        "Walker2d-v5": walker["camel"]["p_vs_td3"]["train_auc"]["high"] >= 0.5,
    }
    assert tables["claim"]["held"] is None  # no Ant runs: not decided
    # 3 arms x 3 seeds x 60 s on Hopper plus its expert's 60 s.
    assert tables["envs"]["Hopper-v5"]["run_time_s"] == pytest.approx(600.0)


def test_report_only_writes_tables_and_curves(tmp_path: Path) -> None:
    _hand_made_results(tmp_path)
    text = cb.report_100k(tmp_path)
    assert "| Hopper-v5 | camel | 3 | 50.0 [" in text
    assert "| raw | 3 | 15.0 [" in text  # the ablation table
    assert "not decided" in text
    written = json.loads((tmp_path / "camel_100k.json").read_text())
    assert written["envs"]["Hopper-v5"]["expert"]["final"] == 2500.0
    assert (tmp_path / "camel_100k.md").read_text().strip() == text
    assert (tmp_path / "curve_Hopper-v5.png").stat().st_size > 0
    with pytest.raises(cb.UserError, match="no finished runs"):
        cb.report_100k(tmp_path / "empty")


def test_negated_prior_wraps_the_best_prior_and_negates_its_action(tmp_path: Path) -> None:
    import numpy as np

    from robolearn.llm.priors import load_prior
    from robolearn.methods.camel_prior import best_prior_name

    path = cb.write_negated_prior("Hopper-v5", tmp_path)
    best = best_prior_name("Hopper-v5")
    assert path == tmp_path / "Hopper-v5" / f"{best}_negated.py"
    negated = load_prior(path, env_id="Hopper-v5", probe=False)  # the checker runs all the same
    base = load_prior(best, env_id="Hopper-v5", probe=False)
    obs = np.random.default_rng(0).normal(scale=0.3, size=11)
    np.testing.assert_allclose(negated.policy(obs), -base.policy(obs))
    assert negated.file.header["negated_from"] == best and negated.file.screened_return is None
    assert cb.write_negated_prior("Hopper-v5", tmp_path) == path  # unchanged program: file kept
