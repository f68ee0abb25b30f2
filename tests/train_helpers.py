"""Shared test helpers (imported by name; not a conftest, so sub-folder conftests cannot shadow it):
compose configs the way the CLI does, and run the CLI in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from omegaconf import DictConfig

from robolearn.config.validate import compose_config

REPO = Path(__file__).resolve().parent.parent

# Tiny, fast settings that still exercise every part of a run (eval, checkpoints, best model).
TINY = [
    "steps=600",
    "agent.policy_kwargs.net_arch=[16]",
    "eval.every=300",
    "eval.episodes=2",
    "checkpoint.every=300",
    "logger.progress=none",
]
TINY_PER_ALGO = {
    "sac": ["agent=sac", "agent.learning_starts=100", "agent.batch_size=32"],
    "td3": ["agent=td3", "agent.learning_starts=100", "agent.batch_size=32"],
    "ppo": ["agent=ppo", "agent.n_steps=64", "agent.n_epochs=2", "agent.batch_size=32"],
    "zero": ["agent=zero"],
    "random": ["agent=random"],
}


def tiny_config(algo: str, *extra: str) -> DictConfig:
    """A composed, validated training config for a seconds-long Pendulum run."""
    return compose_config("train", ["env=Pendulum-v1", *TINY_PER_ALGO[algo], *TINY, *extra])


def run_cli(*args: str, timeout: float = 120, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    """Run `python -m robolearn.<args>` and capture its output."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "-m", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=cwd or REPO,
        env=env,
    )
