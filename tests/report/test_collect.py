"""Finding and grouping runs: inconsistent configs, failed and corrupt runs are surfaced, never mixed."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path

import pytest

from robolearn.report.collect import collect, comparable_config, find_run_dirs, method_label


def test_standard_sweep_groups(sweep_dir: Path) -> None:
    c = collect([sweep_dir])
    assert c.methods == ["camel-td3", "sac", "td3"]
    assert c.envs == ["Hopper-v5", "Pendulum-v1"]
    assert len(c.groups) == 6
    assert all(g.seeds == [0, 1, 2, 3, 4] for g in c.groups)
    # The interrupted run's truncated last line is reported, but it is not a completed run.
    assert len(c.failed) == 2
    assert not [i for i in c.issues if "different configs" in i.message]


def test_failed_and_incomplete_runs_are_listed_with_their_error(sweep_dir: Path) -> None:
    c = collect([sweep_dir])
    reasons = {(f.method, f.env_id, f.seed): f.reason for f in c.failed}
    assert reasons[("sac", "Hopper-v5", 5)] == "RuntimeError: CUDA error: out of memory"
    assert reasons[("td3", "Pendulum-v1", 5)].startswith("incomplete: no summary.json")


def test_inconsistent_configs_warn_and_split(
    make_run: Callable[..., Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    for seed in range(3):
        make_run(f"sweep/{seed}", seed=seed, steps=20_000, final=2000.0)
    make_run("sweep/3", seed=3, steps=10_000, final=1500.0)
    with caplog.at_level(logging.WARNING, logger="robolearn.report"):
        c = collect([tmp_path / "sweep"])
    warnings = [i for i in c.issues if "different configs" in i.message]
    assert len(warnings) == 1
    assert "steps: 10000, 20000" in warnings[0].message
    assert warnings[0].path == "sac on Hopper-v5"
    assert any("different configs" in r.getMessage() for r in caplog.records)
    labels = {g.method: g.seeds for g in c.groups}
    assert labels == {"sac [steps=10000]": [3], "sac [steps=20000]": [0, 1, 2]}


def test_hyperparameter_difference_is_a_variant(make_run: Callable[..., Path], tmp_path: Path) -> None:
    for seed in range(2):
        make_run(f"s/a{seed}", seed=seed, config_changes={"agent.learning_rate": 0.001})
        make_run(f"s/b{seed}", seed=seed, config_changes={"agent.learning_rate": 0.0003})
    c = collect([tmp_path / "s"])
    assert sorted(g.method for g in c.groups) == [
        "sac [agent.learning_rate=0.0003]",
        "sac [agent.learning_rate=0.001]",
    ]


def test_seed_logger_and_device_differences_do_not_split(
    make_run: Callable[..., Path], tmp_path: Path
) -> None:
    make_run("s/0", seed=0, config_changes={"logger.progress": "bar", "device": "cuda"})
    make_run("s/1", seed=1, config_changes={"logger.progress": "none", "checkpoint.every": 5})
    c = collect([tmp_path / "s"])
    assert [g.method for g in c.groups] == ["sac"]
    assert c.issues == []


def test_corrupt_files_are_warned_and_left_out(make_run: Callable[..., Path], tmp_path: Path) -> None:
    make_run("s/0", seed=0)
    bad_summary = make_run("s/1", seed=1)
    (bad_summary / "summary.json").write_text('{"eval/mean_return": 12')
    bad_metrics = make_run("s/2", seed=2)
    with (bad_metrics / "metrics.jsonl").open("a") as f:
        f.write("not json\n")
    no_return = make_run("s/3", seed=3)
    (no_return / "summary.json").write_text('{"status": "completed", "eval/mean_return": NaN}')
    bad_config = make_run("s/4", seed=4)
    (bad_config / "config.yaml").write_text("env: [unclosed\n")
    (bad_config / ".hydra" / "config.yaml").unlink(missing_ok=True)
    c = collect([tmp_path / "s"])
    assert [g.seeds for g in c.groups] == [[0, 2]]
    messages = " | ".join(f"{i.path}: {i.message}" for i in c.issues)
    assert "summary.json: unreadable JSON" in messages
    assert "1 unreadable line(s) skipped" in messages
    assert "no finite eval/mean_return" in messages
    assert "unreadable YAML" in messages


def test_failed_status_and_missing_metrics(make_run: Callable[..., Path], tmp_path: Path) -> None:
    crashed = make_run("s/0", seed=0, error="ValueError: env.id 'Hoper-v5' is not registered")
    # A summary that says the run failed (e.g. diverged) keeps the run out, with error.txt's message.
    (crashed / "summary.json").write_text('{"status": "failed", "eval/mean_return": 1.0}')
    no_metrics = make_run("s/1", seed=1)
    (no_metrics / "metrics.jsonl").unlink()
    c = collect([tmp_path / "s"])
    assert c.failed[0].reason == "status 'failed': ValueError: env.id 'Hoper-v5' is not registered"
    assert c.groups[0].runs[0].eval_steps == ()
    assert any("no metrics.jsonl" in i.message for i in c.issues)


def test_repeated_seeds_and_mixed_versions_warn(make_run: Callable[..., Path], tmp_path: Path) -> None:
    make_run("a/0", seed=0)
    make_run("b/0", seed=0, versions={"torch": "2.3.0"})
    c = collect([tmp_path / "a", tmp_path / "b"])
    messages = " | ".join(i.message for i in c.issues)
    assert "seed(s) 0 appear in more than one run directory" in messages
    assert "different package versions" in messages and "torch" in messages


def test_same_run_given_twice_is_counted_once(make_run: Callable[..., Path], tmp_path: Path) -> None:
    make_run("s/0", seed=0)
    c = collect([tmp_path / "s", tmp_path / "s" / "0"])
    assert len(c.runs) == 1
    assert [i.message for i in c.issues] == [
        "only one run: its confidence intervals are a single point, not an uncertainty"
    ]


def test_find_run_dirs_depth_and_stop_at_runs(make_run: Callable[..., Path], tmp_path: Path) -> None:
    run = make_run("root/sweep/3", seed=0)
    (run / "checkpoints" / "nested").mkdir(parents=True)
    (run / "checkpoints" / "nested" / "config.yaml").write_text("{}")
    make_run("root/a/b/c/d", seed=1)  # 4 levels below root: past the default depth
    assert find_run_dirs(tmp_path / "root") == [run]
    assert find_run_dirs(run) == [run]


def test_method_label_and_comparable_config() -> None:
    assert method_label({"agent": {"algo": "sac"}}) == "sac"
    assert method_label({"agent": {"algo": "td3"}, "method": {"name": "camel"}}) == "camel-td3"
    flat = comparable_config(
        {"seed": 3, "env": {"id": "Hopper-v5", "seed": 9}, "logger": {"tensorboard": True}, "steps": 10}
    )
    assert flat == {"env.id": "Hopper-v5", "steps": 10}


def test_run_declared_seed_keys_pool_per_seed_inputs() -> None:
    # A finetune run's seed picks its own demos and encoder: report.seed_keys keeps them out of the variant.
    a = {
        "seed": 0,
        "data": "goal0",
        "encoder": "pre/s0",
        "lr": 1e-3,
        "report": {"seed_keys": ["data", "encoder"]},
    }
    b = {**a, "seed": 1, "data": "goal1", "encoder": "pre/s1"}
    assert comparable_config(a) == comparable_config(b) == {"lr": 1e-3}
    # Without the declaration they are different variants, and a real difference still splits.
    assert comparable_config({**a, "report": {}}) != comparable_config({**b, "report": {}})
    assert comparable_config(a) != comparable_config({**b, "lr": 3e-4})
