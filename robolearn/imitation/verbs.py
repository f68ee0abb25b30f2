"""The command-line shell the imitation verbs share (pretrain, finetune, label).

Their configs live under configs/imitation/ (so groups read `objective=id`, not
`imitation/objective=id`); each verb composes and validates its whole command line before Hydra
starts a job (one-line errors), refuses a run directory holding another run, and continues a run
with `resume=<run dir>`, as robolearn.continual does.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf, open_dict

from robolearn.errors import UserError, report_user_errors
from robolearn.resources import configs_dir

Job = Callable[[DictConfig, Path, str, bool], dict[str, Any]]


def config_root() -> Path:
    """configs/imitation: the imitation verbs' config root."""
    return configs_dir() / "imitation"


def compose_config(config_name: str, overrides: list[str]) -> DictConfig:
    """Compose configs/imitation/<config_name>.yaml with `overrides` (errors as one-line UserError)."""
    from hydra import compose, initialize_config_dir
    from hydra.errors import ConfigCompositionException, MissingConfigException
    from omegaconf.errors import OmegaConfBaseException

    from robolearn.config.validate import _explain

    with_hydra = any(o.lstrip("+~").startswith("hydra") for o in overrides)
    with initialize_config_dir(config_dir=str(config_root()), version_base="1.3"):
        try:
            cfg = compose(config_name=config_name, overrides=overrides, return_hydra_config=with_hydra)
        except (
            ConfigCompositionException,
            MissingConfigException,
            OmegaConfBaseException,
            ValueError,
        ) as exc:
            raise UserError(_explain(exc, overrides)) from None
    if with_hydra:
        with open_dict(cfg):
            del cfg["hydra"]
    return cfg


def check_top_keys(cfg: DictConfig, known: set[str]) -> None:
    """A one-line error for a top-level key the verb does not read (a typo)."""
    unknown = sorted({str(k) for k in cfg} - known)
    if unknown:
        raise UserError(f"unknown config key {unknown[0]}; keys here: {', '.join(sorted(known))}")


def positive_int(cfg: DictConfig, key: str, minimum: int = 1) -> int:
    """cfg.<key> as an int >= minimum, else a one-line error."""
    value = OmegaConf.select(cfg, key)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise UserError(f"{key}={value} is out of range; use an integer >= {minimum}")
    return value


def positive_float(cfg: DictConfig, key: str) -> float:
    """cfg.<key> as a float > 0, else a one-line error."""
    value = OmegaConf.select(cfg, key)
    if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
        raise UserError(f"{key}={value} is out of range; use a number > 0")
    return float(value)


def check_dataset(cfg: DictConfig, key: str) -> str:
    """cfg.<key> must name an existing dataset (path or minari id): checked before any run directory is made."""
    from robolearn.datasets import dataset_dir

    if OmegaConf.is_missing(cfg, key) or not OmegaConf.select(cfg, key):
        raise UserError(f"{key}= is missing; give a demonstration dataset (a path or a minari id)")
    name = str(OmegaConf.select(cfg, key))
    if not (dataset_dir(name) / "metadata.json").is_file():
        raise UserError(
            f"{key}={name}: no dataset there ({dataset_dir(name)}/metadata.json is missing); "
            "write one with python -m robolearn.imitation.collect or give another path"
        )
    return name


def check_common(cfg: DictConfig) -> None:
    """seed, torch_threads and device, as every verb checks them."""
    positive_int(cfg, "seed", 0)
    positive_int(cfg, "torch_threads")
    if cfg.get("device") not in ("cpu", "cuda", "auto"):
        raise UserError(f"device={cfg.get('device')} is not allowed; choose one of cpu, cuda, auto")


def verb_main(
    verb: str,
    config_name: str,
    help_text: str,
    job: Job,
    complete: Callable[[DictConfig], DictConfig],
) -> Callable[[], None]:
    """The console entry of an imitation verb: --help, precheck of every sweep value, the target
    run directory check, resume=, then the job under Hydra."""
    import hydra
    from hydra.core.hydra_config import HydraConfig
    from hydra.types import RunMode

    from robolearn.cli import command_line, print_help_if_asked, require_launcher

    def precheck(argv: list[str]) -> None:
        from robolearn.config.validate import _refuse_sweep_without_multirun, _sweep_variants

        if any(a in ("--help", "-h", "--hydra-help", "--info", "-i") or a.startswith("--cfg") for a in argv):
            return
        require_launcher(argv)
        overrides = [a for a in argv if "=" in a and not a.startswith("-")]
        if not any(a in ("-m", "--multirun") for a in argv):
            _refuse_sweep_without_multirun(overrides)
        for variant in _sweep_variants(overrides):
            complete(compose_config(config_name, variant))

    def check_target_dir(argv: list[str]) -> None:
        # Hydra rewrites <run dir>/.hydra before the job starts, so a directory holding a different
        # run is refused here, before Hydra touches it (as robolearn.train does).
        if any(a in ("-m", "--multirun") for a in argv):
            return
        dirs = [a.split("=", 1)[1] for a in argv if a.startswith("hydra.run.dir=")]
        if not dirs or not (Path(dirs[-1]) / "config.yaml").is_file():
            return
        from robolearn.runs.layout import RunDir
        from robolearn.runs.trainer import check_same_run

        task = [
            a
            for a in argv
            if "=" in a and not a.startswith("-") and not a.split("=", 1)[0].lstrip("+~").startswith("hydra")
        ]
        resolved = OmegaConf.to_container(complete(compose_config(config_name, task)), resolve=True)
        assert isinstance(resolved, dict)
        check_same_run(RunDir(Path(dirs[-1])), resolved)

    @report_user_errors
    def prepare(argv: list[str]) -> tuple[Any, DictConfig] | None:
        if any(a.startswith("resume=") for a in argv):
            from robolearn.runs.loop import resume_config

            def validate(c: DictConfig) -> None:
                complete(c)

            return resume_config(verb, argv, validate)
        precheck(argv)
        check_target_dir(argv)
        return None

    @hydra.main(version_base="1.3", config_path=str(config_root()), config_name=config_name)
    def hydra_main(cfg: DictConfig) -> None:
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
