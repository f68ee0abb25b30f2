"""`python -m robolearn.train [key=value ...]`: train an agent, writing a resumable run directory.

Examples:
    python -m robolearn.train                                   # SAC on Pendulum-v1, 10k steps
    python -m robolearn.train env=Hopper-v5 agent=td3 seed=1 steps=100000
    python -m robolearn.train -m agent=sac,td3 seed=0,1,2 hydra.sweep.dir=sweeps/pend
    python -m robolearn.train resume=outputs/2026-11-26/10-00-00_sac_Pendulum-v1 [steps=20000]
"""

from __future__ import annotations

# Before anything loads torch: OpenMP reads its wait policy once, when it is loaded (robolearn/threads.py).
from robolearn.threads import apply_thread_policy

apply_thread_policy()

import signal  # noqa: E402
import sys  # noqa: E402
from functools import partial  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Any  # noqa: E402

import hydra  # noqa: E402
from hydra.core.hydra_config import HydraConfig  # noqa: E402
from hydra.types import RunMode  # noqa: E402
from omegaconf import DictConfig, OmegaConf  # noqa: E402

from robolearn.cli import check_target_dir, command_line, precheck, print_help_if_asked, verb_help  # noqa: E402
from robolearn.config.schema import register_schemas  # noqa: E402
from robolearn.config.validate import validate_train_config  # noqa: E402
from robolearn.errors import report_user_errors  # noqa: E402
from robolearn.isaac.options import expand_env_shorthand  # noqa: E402
from robolearn.resources import configs_dir  # noqa: E402
from robolearn.runs.layout import RunDir  # noqa: E402
from robolearn.runs.loop import resume_config as loop_resume_config  # noqa: E402
from robolearn.runs.loop import run_loop_job  # noqa: E402
from robolearn.runs.trainer import Trainer, check_same_run  # noqa: E402


def _key(override: str) -> str:
    return override.split("=", 1)[0].lstrip("+~")


def resume_config(argv: list[str]) -> tuple[RunDir, DictConfig]:
    """The saved config of the run named by `resume=<run dir>`, with the other overrides applied.
    Only keys that change how long or how verbosely a run goes (steps=..., logger.progress=...) may
    differ from the saved run; anything else is refused, since it would not be the same run.
    """
    run, cfg = loop_resume_config("train", argv)
    resolved = OmegaConf.to_container(cfg, resolve=True)
    assert isinstance(resolved, dict)
    # First, so that `agent=td3` on a SAC run is named as such, not as a malformed agent.
    check_same_run(run, resolved)
    validate_train_config(cfg)
    return run, cfg


@hydra.main(version_base="1.3", config_path=str(configs_dir()), config_name="train")
def _hydra_main(cfg: DictConfig) -> float:
    return train_job(cfg)


def train_job(cfg: DictConfig, run_dir: Path | None = None, command: str | None = None) -> float:
    """One training job (a Hydra task): validate, train, print and return the final eval return.

    In a sweep, a job's failure is raised to Hydra, which records it and runs the other jobs; the
    trainer has written the message to the job's error.txt for the report.
    """
    multirun = False
    if run_dir is None:
        hydra_cfg = HydraConfig.get()
        run_dir = Path(hydra_cfg.runtime.output_dir)
        multirun = hydra_cfg.mode == RunMode.MULTIRUN
        # The job's own overrides (sweep values included): correct in remote workers too.
        command = command_line("train", list(hydra_cfg.overrides.task))
    summary = run_loop_job(
        "train", partial(_train, cfg, run_dir, command or command_line("train", [])), run_dir, multirun
    )
    print(
        f"{cfg.agent.algo} on {cfg.env.id} seed {cfg.seed}: eval return {summary['eval/mean_return']:.1f} "
        f"± {summary['eval/std_return']:.1f} over {summary['eval/episodes']} episodes after "
        f"{summary['steps']} steps{_overshoot(cfg, int(summary['steps']))} in "
        f"{summary['wall_time_s']:.0f} s -> {run_dir}",
        flush=True,
    )
    return float(summary["eval/mean_return"])


def _train(cfg: DictConfig, run_dir: Path, command: str) -> dict[str, Any]:
    """Validate, then train with the agent's loop: SB3's Trainer, or ours around rsl_rl's PPO
    (robolearn/runs/rsl_trainer.py) for agent=rsl_ppo."""
    validate_train_config(cfg)
    if cfg.agent.algo == "rsl_ppo":
        from robolearn.runs.rsl_trainer import train_rsl_ppo

        return train_rsl_ppo(cfg, run_dir, command)
    return Trainer(cfg, run_dir, command).run_training()


def _overshoot(cfg: DictConfig, ran: int) -> str:
    """Why a run took more env steps than asked for (PPO collects whole rollouts), or ''."""
    if ran <= cfg.steps:
        return ""
    agent = cfg.agent
    if agent.algo == "ppo":
        unit = f"whole rollouts of n_steps x n_envs = {agent.n_steps * agent.n_envs} steps"
    elif agent.algo == "rsl_ppo":
        unit = (
            f"whole iterations of num_steps_per_env x n_envs = {agent.num_steps_per_env * agent.n_envs} steps"
        )
    else:
        unit = f"whole vector steps of n_envs = {agent.n_envs}"
    extra = ""
    if cfg.get("method") is not None and cfg.method.name == "prior_init":
        extra = " after the warm start's rollouts"
    return f" (steps={cfg.steps}: {agent.algo} runs {unit}{extra})"


@report_user_errors
def _prepare(argv: list[str]) -> tuple[RunDir, DictConfig] | None:
    if any(a.startswith("resume=") for a in argv):
        return resume_config(argv)
    precheck("train", argv, validate_train_config)
    check_target_dir("train", argv)
    return None


HELP = verb_help(
    "train",
    "[env=<id>] [agent=ppo|sac|td3|rsl_ppo|zero|random] [key=value ...]",
    "Train an agent on an env and write a run directory (config.yaml, metrics.jsonl, summary.json,\n"
    "final/, best/, checkpoints/, tb/). With no arguments: SAC on Pendulum-v1 for 10k steps. Ctrl-C\n"
    "saves a checkpoint and prints the resume= command. -m runs a sweep (one job per value).",
    [
        (
            "env",
            "Gymnasium MuJoCo id (Hopper-v5, ...), Pendulum-v1, Go2Velocity-v1 / G1Velocity-v1 / ..., or"
            " isaaclab:<task id> with env.kwargs.python=<Isaac Lab's python> (isaaclab:standin:Go2Velocity-v1:"
            " our MuJoCo task in a task server; docs/isaac.md)",
        ),
        (
            "agent",
            "ppo | sac | td3 (SB3, the RL Zoo's tuned values merged) | rsl_ppo (rsl-rl-lib's PPO,"
            " docs/agents.md) | zero | random (baselines)",
        ),
        ("+experiment", "a named setup from configs/experiment/ (hopper_sac, go2_walk, baseline_ppo, ...)"),
        ("method", "camel | prior_init (docs/camel.md, docs/prior_init.md)"),
        ("steps", "env steps to train (default: 10000)"),
        ("seed", "the run's seed (default: 0)"),
        ("eval.every", "evaluate every N steps (eval.episodes episodes; 0: only at the end)"),
        ("checkpoint.every", "resumable checkpoint every N steps"),
        ("logger.progress", "auto | bar | lines | none; logger.wandb.enabled=true for wandb (offline)"),
        ("device", "cpu | cuda | auto"),
        ("resume", "a run directory to continue (steps=N may extend a finished one)"),
        ("hydra.run.dir", "where the run directory goes (default: outputs/<date>/<time>_<agent>_<env>)"),
    ],
    [
        "python -m robolearn.train env=Hopper-v5 agent=td3 seed=1 steps=100000",
        "python -m robolearn.train +experiment=go2_walk",
        "python -m robolearn.train env=isaaclab:Isaac-Velocity-Flat-Unitree-Go2-v0"
        " env.kwargs.python=~/env_isaaclab/bin/python agent=rsl_ppo agent.n_envs=4096",
        "python -m robolearn.train -m agent=sac,td3 seed=0,1,2 hydra.sweep.dir=sweeps/pend",
        "python -m robolearn.train resume=<run dir>",
    ],
)


def main() -> None:
    """Console entry point (robolearn-train)."""
    if print_help_if_asked(HELP, sys.argv[1:]):
        return
    try:
        # env=isaaclab:<task id> -> env=isaaclab env.id=<task id> (robolearn/isaac/options.py), before
        # the prechecks and Hydra read the command line.
        sys.argv[1:] = report_user_errors(expand_env_shorthand)(sys.argv[1:])
        register_schemas()
        resumed = _prepare(sys.argv[1:])
        if resumed is not None:
            run, cfg = resumed
            train_job(cfg, run.root, command_line("train", sys.argv[1:]))
            return
        _hydra_main()
    except KeyboardInterrupt:
        # Ctrl-C before a run started (the run itself reports its own stop).
        print("stopped by SIGINT before training started", file=sys.stderr)
        raise SystemExit(128 + signal.SIGINT) from None


if __name__ == "__main__":
    main()
