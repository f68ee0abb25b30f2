"""The command convention: `python -m robolearn.<verb> key=value ...`, mirrored by `robolearn-<verb>`.

Every verb checks its whole command line (composition and values) before Hydra starts a job, so a
typo costs a one-line error and nothing else.
"""

from __future__ import annotations

import shlex
import signal
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

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


def precheck(
    config_name: str, argv: list[str], validate: Callable[[DictConfig], None], config_dir: Path | None = None
) -> None:
    """Compose + validate what argv asks for (and check a [dist] launcher is installed); --help/--cfg/--info
    style Hydra flags skip the check."""
    if any(a in ("--help", "-h", "--hydra-help", "--info", "-i") or a.startswith("--cfg") for a in argv):
        return
    require_launcher(argv)
    precheck_overrides(config_name, argv, validate, config_dir)


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


# A loop verb's job: (config, run directory, the command as typed, multirun?) -> its summary.
def check_target_dir(
    config_name: str,
    argv: list[str],
    config_dir: Path | None = None,
    resolve: Callable[[DictConfig], DictConfig] | None = None,
) -> None:
    """Refuse a `hydra.run.dir` that holds a different run, before Hydra rewrites its .hydra folder.

    The run's config is composed from argv (`resolve` gives what a run directory records) and compared
    with the one in the folder (robolearn.runs.trainer.check_same_run); sweeps have no single folder.
    """
    if any(a in ("-m", "--multirun") for a in argv):
        return
    dirs = [a.split("=", 1)[1] for a in argv if a.startswith("hydra.run.dir=")]
    if not dirs or not (Path(dirs[-1]) / "config.yaml").is_file():
        return
    from robolearn.config.validate import compose_config
    from robolearn.runs.layout import RunDir
    from robolearn.runs.trainer import check_same_run

    task = [
        a
        for a in argv
        if "=" in a and not a.startswith("-") and not a.split("=", 1)[0].lstrip("+~").startswith("hydra")
    ]
    cfg = compose_config(config_name, task, config_dir)
    resolved = OmegaConf.to_container(resolve(cfg) if resolve else cfg, resolve=True)
    assert isinstance(resolved, dict)
    check_same_run(RunDir(Path(dirs[-1])), resolved)


LoopJob = Callable[[DictConfig, Path, str, bool], Any]


def loop_verb(
    verb: str,
    config_name: str,
    help_text: str,
    job: LoopJob,
    validate: Callable[[DictConfig], None],
    resolve: Callable[[DictConfig], DictConfig] | None = None,
    config_dir: Path | None = None,
    setup: Callable[[], None] | None = None,
) -> Callable[[], None]:
    """The console entry of a verb whose job writes a robolearn.runs.loop run directory (continual,
    offline, the imitation verbs): --help; `resume=<run dir>` (the run's own config, validated); else
    every sweep value composed and validated, a `hydra.run.dir` holding a different run refused before
    Hydra rewrites it, then the job under Hydra. `resolve` gives the config a run directory records
    (default: the composed one); `config_dir` is a verb's own config root (default: configs/)."""
    import hydra

    from robolearn.errors import report_user_errors
    from robolearn.resources import configs_dir

    root = config_dir or configs_dir()

    @report_user_errors
    def prepare(argv: list[str]) -> tuple[Any, DictConfig] | None:
        if any(a.startswith("resume=") for a in argv):
            from robolearn.runs.loop import resume_config

            return resume_config(verb, argv, validate)
        precheck(config_name, argv, validate, config_dir)
        check_target_dir(config_name, argv, config_dir, resolve)
        return None

    @hydra.main(version_base="1.3", config_path=str(root), config_name=config_name)
    def hydra_main(cfg: DictConfig) -> None:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hydra_cfg = HydraConfig.get()
        multirun = hydra_cfg.mode == RunMode.MULTIRUN
        job(
            cfg,
            Path(hydra_cfg.runtime.output_dir),
            command_line(verb, list(hydra_cfg.overrides.task)),
            multirun,
        )

    def main() -> None:
        if print_help_if_asked(help_text, sys.argv[1:]):
            return
        try:
            if setup is not None:
                setup()
            resumed = prepare(sys.argv[1:])
            if resumed is not None:
                run, cfg = resumed
                job(cfg, run.root, command_line(verb, sys.argv[1:]), False)
                return
            hydra_main()
        except KeyboardInterrupt:
            print("stopped by SIGINT before the run started", file=sys.stderr)
            raise SystemExit(128 + signal.SIGINT) from None

    return main
