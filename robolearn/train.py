"""`python -m robolearn.train [key=value ...]`: train an agent, writing a resumable run directory.

Examples:
    python -m robolearn.train                                   # SAC on Pendulum-v1, 10k steps
    python -m robolearn.train env=Hopper-v5 agent=td3 seed=1 steps=100000
    python -m robolearn.train -m agent=sac,td3 seed=0,1,2 hydra.sweep.dir=sweeps/pend
    python -m robolearn.train resume=outputs/2026-11-26/10-00-00_sac_Pendulum-v1
"""

from __future__ import annotations

import sys
from pathlib import Path

import hydra
import yaml
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from robolearn.cli import command_line, precheck
from robolearn.config.schema import register_schemas
from robolearn.config.validate import validate_train_config
from robolearn.errors import UserError, report_user_errors
from robolearn.resources import configs_dir
from robolearn.runs.layout import existing_run_dir
from robolearn.runs.trainer import Trainer

_ARGV: list[str] = []


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def expand_resume(argv: list[str]) -> list[str]:
    """Turn `resume=<run dir>` into that run's own overrides, pointed at its directory.

    Overrides given beside resume= win (e.g. steps=... to extend a run); any that change what the
    run computes are refused by the trainer's config comparison.
    """
    resumes = [a for a in argv if a.startswith("resume=")]
    if not resumes:
        return argv
    run = existing_run_dir(resumes[-1].split("=", 1)[1])
    saved = run.root / ".hydra" / "overrides.yaml"
    if not saved.is_file():
        raise UserError(f"{saved} is missing, so the run's command line is unknown; re-run it with its overrides")
    original = [o for o in (yaml.safe_load(saved.read_text()) or []) if _key(o) != "resume" and not _key(o).startswith("hydra")]
    rest = [a for a in argv if not a.startswith("resume=") and not a.startswith("-")]
    given = {_key(a) for a in rest if "=" in a}
    merged = [o for o in original if _key(o) not in given] + rest
    root = run.root.resolve()
    return [*merged, f"resume={root}", f"hydra.run.dir={root}"]


@hydra.main(version_base="1.3", config_path=str(configs_dir()), config_name="train")
def _hydra_main(cfg: DictConfig) -> float:
    return train_job(cfg)


@report_user_errors
def train_job(cfg: DictConfig) -> float:
    """One training job (a Hydra task): validate, train, print and return the final eval return."""
    validate_train_config(cfg)
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    summary = Trainer(cfg, run_dir, command_line("train", _ARGV)).run_training()
    print(
        f"{cfg.agent.algo} on {cfg.env.id} seed {cfg.seed}: eval return {summary['eval/mean_return']:.1f} "
        f"± {summary['eval/std_return']:.1f} over {summary['eval/episodes']} episodes after "
        f"{summary['steps']} steps in {summary['wall_time_s']:.0f} s -> {run_dir}",
        flush=True,
    )
    return float(summary["eval/mean_return"])


@report_user_errors
def _prepare(argv: list[str]) -> list[str]:
    argv = expand_resume(argv)
    precheck("train", argv, validate_train_config)
    return argv


def main() -> None:
    """Console entry point (robolearn-train)."""
    register_schemas()
    argv = _prepare(sys.argv[1:])
    _ARGV[:] = [a for a in sys.argv[1:]]
    sys.argv = [sys.argv[0], *argv]
    _hydra_main()


if __name__ == "__main__":
    main()
