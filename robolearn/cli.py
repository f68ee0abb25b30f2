"""The command convention: `python -m robolearn.<verb> key=value ...`, mirrored by `robolearn-<verb>`.

Every verb checks its whole command line (composition and values) before Hydra starts a job, so a
typo costs a one-line error and nothing else.
"""

from __future__ import annotations

import shlex
import sys
from collections.abc import Callable, Sequence

from omegaconf import DictConfig

from robolearn.config.validate import precheck_overrides


def command_line(verb: str, argv: list[str]) -> str:
    """The command as a user would re-type it (recorded in summaries and reports)."""
    return shlex.join([sys.executable.rsplit("/", 1)[-1], "-m", f"robolearn.{verb}", *argv])


HELP_FLAGS = ("--help", "-h")


def verb_help(
    verb: str,
    usage: str,
    about: str,
    keys: Sequence[tuple[str, str]],
    examples: Sequence[str],
    script: str | None = None,
) -> str:
    """A verb's --help text: usage (its arguments), what it does, its keys (name, description) and
    examples; `script` is the console script when it is not robolearn-<verb>."""
    width = max(len(k) for k, _ in keys) + 2
    lines = [
        f"usage: python -m robolearn.{verb} {usage}",
        f"       {script or 'robolearn-' + verb.replace('_', '-')} {usage}",
        "",
        about.strip(),
        "",
        "keys (Hydra overrides, key=value):",
        *(f"  {name.ljust(width)}{text}" for name, text in keys),
        "",
        "examples:",
        *(f"  {e}" for e in examples),
        "",
        "--cfg job prints the composed config without running; --hydra-help lists Hydra's own flags.",
    ]
    return "\n".join(lines) + "\n"


def print_help_if_asked(help_text: str | None, argv: Sequence[str]) -> bool:
    """Print help_text when argv holds --help or -h (True: the caller should exit 0)."""
    if help_text is None or not any(a in HELP_FLAGS for a in argv):
        return False
    print(help_text, end="")
    return True


# Launchers from the [dist] extra, by the name hydra/launcher= takes (ours in configs/hydra/launcher/, then
# the plugins' own) -> the modules the sweep imports when it starts (robolearn.errors.OPTIONAL_MODULES).
_RAY = ("hydra_plugins.hydra_ray_launcher", "ray")
_SUBMITIT = ("hydra_plugins.hydra_submitit_launcher", "submitit")
DIST_LAUNCHERS: dict[str, tuple[str, ...]] = {
    "ray_local": _RAY,
    "ray_cluster": _RAY,
    "slurm": _SUBMITIT,
    "ray": _RAY,
    "ray_aws": _RAY,
    "submitit_local": _SUBMITIT,
    "submitit_slurm": _SUBMITIT,
}


def require_launcher(argv: Sequence[str]) -> None:
    """A MissingExtraError naming [dist] when argv picks a Ray or Slurm launcher that is not installed
    (Hydra would otherwise fail with a traceback once the sweep starts)."""
    from robolearn.errors import require_extra

    for arg in argv:
        key, sep, value = arg.lstrip("+~").partition("=")
        if key == "hydra/launcher" and sep and value in DIST_LAUNCHERS:
            require_extra(f"hydra/launcher={value}", *DIST_LAUNCHERS[value])


def precheck(config_name: str, argv: list[str], validate: Callable[[DictConfig], None]) -> None:
    """Compose + validate what argv asks for (and check a [dist] launcher is installed); --help/--cfg/--info
    style Hydra flags skip the check."""
    if any(a in ("--help", "-h", "--hydra-help", "--info", "-i") or a.startswith("--cfg") for a in argv):
        return
    require_launcher(argv)
    precheck_overrides(config_name, argv, validate)


def hydra_verb(
    config_name: str,
    job: Callable[[DictConfig], object],
    validate: Callable[[DictConfig], None] | None = None,
    setup: Callable[[], None] | None = None,
    help_text: str | None = None,
) -> Callable[[], None]:
    """The console entry of a verb: `help_text` printed (exit 0) when --help/-h is asked for, else
    `setup()` (schema registration), the command-line check when a validator is given, then
    `job(cfg)` under Hydra. A UserError anywhere is a one-line error with exit code 2; an int the
    job returns other than 0 is the exit code."""
    import hydra

    from robolearn.errors import report_user_errors
    from robolearn.resources import configs_dir

    @hydra.main(version_base="1.3", config_path=str(configs_dir()), config_name=config_name)
    @report_user_errors
    def entry(cfg: DictConfig) -> None:
        code = job(cfg)
        if isinstance(code, int) and not isinstance(code, bool) and code != 0:
            raise SystemExit(code)

    @report_user_errors
    def check(argv: list[str]) -> None:
        if validate is not None:
            precheck(config_name, argv, validate)
        else:
            require_launcher(argv)

    def main() -> None:
        if print_help_if_asked(help_text, sys.argv[1:]):
            return
        if setup is not None:
            setup()
        check(sys.argv[1:])
        entry()

    return main
