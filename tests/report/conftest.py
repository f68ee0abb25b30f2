"""Fake but realistic run directories, written to the run-directory contract of robolearn.train.

A run directory holds config.yaml (the resolved config), metrics.jsonl (one JSON object per log step),
summary.json (final figures), .hydra/overrides.yaml, and error.txt when the run failed. The learning
curves are saturating exponentials with seed noise, so figures look like real training.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import yaml

VERSIONS = {
    "robolearn": "0.1.0",
    "python": "3.11.9",
    "torch": "2.13.0+cpu",
    "stable-baselines3": "2.9.2",
    "gymnasium": "1.4.0",
    "mujoco": "3.3.2",
    "numpy": "2.4.6",
}
CPU = {"model": "AMD EPYC 7B13", "cores": 2, "platform": "Linux-6.1.0-x86_64-with-glibc2.36"}

ALGO_CONFIG: dict[str, dict[str, Any]] = {
    "sac": {
        "algo": "sac",
        "policy": "MlpPolicy",
        "learning_rate": 0.0003,
        "gamma": 0.99,
        "buffer_size": 1000000,
        "learning_starts": 100,
        "batch_size": 256,
        "tau": 0.005,
        "ent_coef": "auto",
        "policy_kwargs": {"net_arch": [256, 256], "activation": "default"},
    },
    "td3": {
        "algo": "td3",
        "policy": "MlpPolicy",
        "learning_rate": 0.001,
        "gamma": 0.99,
        "buffer_size": 1000000,
        "learning_starts": 10000,
        "batch_size": 256,
        "tau": 0.005,
        "policy_delay": 2,
        "policy_kwargs": {"net_arch": [400, 300], "activation": "default"},
    },
}


def write_run(
    run_dir: Path,
    *,
    env_id: str = "Hopper-v5",
    algo: str = "sac",
    seed: int = 0,
    steps: int = 20_000,
    method: str | None = None,
    start: float = 0.0,
    final: float = 1000.0,
    eval_every: int = 2_000,
    complete: bool = True,
    error: str | None = None,
    config_changes: dict[str, Any] | None = None,
    versions: dict[str, str] | None = None,
    truncated_metrics: bool = False,
) -> Path:
    """Write one run directory as robolearn.train would; returns it."""
    rng = np.random.default_rng(seed + 1000 * len(env_id) + len(algo))
    run_dir.mkdir(parents=True, exist_ok=True)
    config: dict[str, Any] = {
        "env": {"id": env_id, "kwargs": {}, "max_episode_steps": None, "vec_env": "dummy"},
        "agent": json.loads(json.dumps(ALGO_CONFIG[algo])),
        "logger": {"tensorboard": True, "log_interval": 4, "progress": "auto", "wandb": {"enabled": False}},
        "eval": {"every": eval_every, "episodes": 10, "deterministic": True, "seed_offset": 1000000},
        "checkpoint": {"every": 10000, "save_replay_buffer": True},
        "steps": steps,
        "seed": seed,
        "device": "cpu",
        "torch_threads": 1,
        "resume": None,
    }
    if method:
        config["method"] = {"name": method, "prior": "policies/camel/hopper.py", "mask_threshold": 0.5}
    for dotted, value in (config_changes or {}).items():
        node = config
        *parents, leaf = dotted.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    (run_dir / "config.yaml").write_text(yaml.safe_dump(config, sort_keys=False))
    hydra = run_dir / ".hydra"
    hydra.mkdir(exist_ok=True)
    overrides = [f"env={env_id.split('-')[0].lower()}", f"agent={algo}", f"seed={seed}", f"steps={steps}"]
    if method:
        overrides.append(f"method={method}")
    (hydra / "overrides.yaml").write_text(yaml.safe_dump(overrides))

    # Learning curve: a saturating exponential from `start` towards `final`, with seed noise.
    lines = []
    wall = 0.0
    last_eval = start
    end = steps if complete else steps // 2
    for step in range(1000, end + 1, 1000):
        wall += 1.7 + 0.1 * rng.random()
        row: dict[str, Any] = {
            "step": step,
            "wall_time_s": round(wall, 3),
            "train/actor_loss": float(-5.0 - step / 1000 + rng.normal()),
            "train/critic_loss": float(abs(rng.normal(2.0, 0.5))),
            "rollout/ep_rew_mean": float(last_eval * 0.9),
        }
        if step % eval_every == 0:
            progress = 1.0 - math.exp(-4.0 * step / steps)
            spread = 0.06 * abs(final - start) + 1.0
            last_eval = start + (final - start) * progress + float(rng.normal(0, spread))
            row["eval/mean_return"] = last_eval
            row["eval/std_return"] = float(abs(rng.normal(0.05 * abs(last_eval) + 1.0, 1.0)))
        lines.append(json.dumps(row))
    text = "\n".join(lines) + "\n"
    if truncated_metrics:
        text += '{"step": 99000, "wall_time_s": 1'  # killed mid-write
    (run_dir / "metrics.jsonl").write_text(text)

    if error is not None:
        (run_dir / "error.txt").write_text(
            'Traceback (most recent call last):\n  File "robolearn/train.py", line 88, in main\n'
            f"    agent.learn(total_timesteps=cfg.steps)\n{error}\n"
        )
    if complete and error is None:
        summary = {
            "eval/mean_return": last_eval,
            "eval/std_return": float(abs(rng.normal(0.05 * abs(last_eval) + 1.0, 1.0))),
            "eval/episodes": 10,
            "steps": steps,
            "wall_time_s": round(wall + 3.0, 3),
            "seed": seed,
            "env": env_id,
            "algo": algo,
            "resumes": 0,
            "command": "python -m robolearn.train " + " ".join(overrides),
            "versions": versions or VERSIONS,
            "cpu": CPU,
            "status": "completed",
        }
        (run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    return run_dir


# (env, algo, method, start, final) of the standard sweep: three methods on two referenced envs.
SWEEP = [
    ("Hopper-v5", "sac", None, 20.0, 2600.0),
    ("Hopper-v5", "td3", None, 20.0, 2200.0),
    ("Hopper-v5", "td3", "camel", 20.0, 3000.0),
    ("Pendulum-v1", "sac", None, -1250.0, -180.0),
    ("Pendulum-v1", "td3", None, -1250.0, -300.0),
    ("Pendulum-v1", "td3", "camel", -1250.0, -160.0),
]
SEEDS = range(5)


def write_sweep(sweep_dir: Path) -> Path:
    """A Hydra multirun: 6 groups x 5 seeds, one crashed job and one interrupted job."""
    job = 0
    for env_id, algo, method, start, final in SWEEP:
        for seed in SEEDS:
            write_run(
                sweep_dir / str(job),
                env_id=env_id,
                algo=algo,
                method=method,
                seed=seed,
                start=start,
                final=final,
            )
            job += 1
    write_run(
        sweep_dir / str(job),
        env_id="Hopper-v5",
        algo="sac",
        seed=5,
        complete=False,
        error="RuntimeError: CUDA error: out of memory",
    )
    write_run(
        sweep_dir / str(job + 1),
        env_id="Pendulum-v1",
        algo="td3",
        seed=5,
        complete=False,
        truncated_metrics=True,
    )
    (sweep_dir / "multirun.yaml").write_text("hydra:\n  mode: MULTIRUN\n")
    return sweep_dir


@pytest.fixture
def make_run(tmp_path: Path) -> Callable[..., Path]:
    """write_run rooted in this test's tmp_path: make_run('sweep/0', seed=0, ...)."""

    def make(relative: str, **kwargs: Any) -> Path:
        return write_run(tmp_path / relative, **kwargs)

    return make


@pytest.fixture(scope="session")
def sweep_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The standard sweep, written once per test session (tests must not modify it)."""
    return write_sweep(tmp_path_factory.mktemp("multirun") / "2025-06-01" / "12-00-00")


@pytest.fixture(scope="session")
def built_report(sweep_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The report of the standard sweep, built once per session."""
    from robolearn.report import ReportOptions, build_report

    out = tmp_path_factory.mktemp("report")
    return build_report(
        [sweep_dir], out, ReportOptions(reps=1000), command="python -m robolearn.report runs=x"
    )
