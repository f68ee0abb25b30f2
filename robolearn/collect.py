"""`python -m robolearn.collect env=<id> kind=<kind> size=<n> [key=value ...]`: D4RL-style datasets.

Trains (or reuses) a SAC behaviour run with robolearn.train and writes a Minari dataset of the asked
kind (random, medium, medium-replay, expert, medium-expert) with D4RL-style reference returns and its
provenance (robolearn/datasets/collect.py; docs/datasets.md).

Examples:
    python -m robolearn.collect env=Hopper-v5 kind=medium size=100000
    python -m robolearn.collect env=Hopper-v5 kind=medium-replay
    python -m robolearn.collect env=Pendulum-v1 kind=expert size=5000 out=/tmp/pend_expert
"""

# ruff: noqa: E402 - the thread policy must be in the environment before the imports below load torch
from __future__ import annotations

# Before anything loads torch: OpenMP reads its wait policy once, when it is loaded (robolearn/threads.py).
from robolearn.threads import apply_thread_policy

apply_thread_policy()

import signal
import sys

from robolearn.cli import command_line, print_help_if_asked, verb_help
from robolearn.errors import UserError, report_user_errors

VERB = "collect"

HELP = verb_help(
    VERB,
    "env=<id> kind=<random|medium|medium-replay|expert|medium-expert> size=<n> [key=value ...]",
    "Write a D4RL-style offline dataset (Minari layout) from a SAC behaviour run that collect trains\n"
    "with robolearn.train (budget per env in configs/collect.yaml), or reuses from behavior.dir\n"
    "(default outputs/behavior/<env>/sac_seed<seed>; an interrupted one resumes). expert: the run's\n"
    "final policy; medium: the kept policy closest to 1/3 of its return; medium-replay: the replay\n"
    "buffer up to the medium policy; random: the run's initial policy. Random and expert reference\n"
    "returns are stored for normalised scores. docs/datasets.md.",
    [
        (
            "env",
            "an id with a configs/env/<id>.yaml: Hopper-v5, HalfCheetah-v5, Walker2d-v5, Pendulum-v1, ...",
        ),
        ("kind", "random | medium | medium-replay | expert | medium-expert"),
        ("size", "steps to collect (medium-expert: size medium + size expert); medium-replay: at most"),
        ("seed", "behaviour run seed and collection seed (default: 0)"),
        (
            "out",
            "a dataset folder or a minari id (default: robolearn/<env>/<kind>-v0 under the datasets root)",
        ),
        ("overwrite", "replace an existing dataset (default: false)"),
        ("behavior.dir", "the behaviour run directory to train or reuse"),
        ("behavior.agent", "sac | td3 (default: sac, as D4RL)"),
        ("behavior.steps", "the behaviour run's budget (default: budgets.<env>)"),
        ("behavior.snapshot_every", "steps between kept policies (default: budgets.<env>)"),
        ("behavior.train_overrides", "extra robolearn.train overrides, e.g. '[agent.net_arch=[64,64]]'"),
        ("medium_fraction", "medium's target return as a fraction of the expert's (default: 1/3)"),
        ("ref_episodes", "episodes per reference policy (default: 10)"),
    ],
    [
        "python -m robolearn.collect env=Hopper-v5 kind=medium size=100000",
        "python -m robolearn.collect env=Hopper-v5 kind=medium-replay",
        "python -m robolearn.collect env=Pendulum-v1 kind=expert size=5000 out=/tmp/pend_expert",
    ],
)


@report_user_errors
def _run(argv: list[str]) -> None:
    from robolearn.config.validate import compose_config
    from robolearn.datasets.collect import collect, register_collect_schema, validate_collect_config

    if any(a in ("-m", "--multirun") for a in argv):
        raise UserError("collect writes one dataset per command; run it once per kind (no -m)")
    show = any(a.startswith("--cfg") for a in argv)
    argv = [a for a in argv if not a.startswith("--cfg") and a not in ("job", "all")] if show else argv
    bad = [a for a in argv if "=" not in a]
    if bad:
        raise UserError(f"{bad[0]!r} is not a key=value override; see python -m robolearn.collect --help")
    register_collect_schema()
    overrides = [a for a in argv if not a.split("=", 1)[0].lstrip("+~").startswith("hydra")]
    cfg = compose_config(VERB, overrides)
    if show:
        from omegaconf import OmegaConf

        print(OmegaConf.to_yaml(cfg), end="")
        return
    validate_collect_config(cfg)
    collect(cfg, command_line(VERB, argv))


def main() -> None:
    """Console entry point (robolearn-collect)."""
    if print_help_if_asked(HELP, sys.argv[1:]):
        return
    try:
        _run(sys.argv[1:])
    except KeyboardInterrupt:
        print("collect stopped by SIGINT; run the same command again to resume", file=sys.stderr)
        raise SystemExit(128 + signal.SIGINT) from None


if __name__ == "__main__":
    main()
