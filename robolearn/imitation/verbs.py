"""The command-line shell the imitation verbs share (pretrain, finetune, label, train): robolearn.cli.loop_verb over configs/imitation.

Their configs live under configs/imitation/ (so groups read `objective=id`, not
`imitation/objective=id`); each verb composes and validates its whole command line before Hydra
starts a job (one-line errors), refuses a run directory holding another run, and continues a run
with `resume=<run dir>`, as robolearn.continual does.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

from omegaconf import DictConfig, OmegaConf

from robolearn.errors import UserError
from robolearn.resources import configs_dir

Job = Callable[[DictConfig, Path, str, bool], dict[str, Any]]


def config_root() -> Path:
    """configs/imitation: the imitation verbs' config root."""
    return configs_dir() / "imitation"


def compose_config(config_name: str, overrides: list[str]) -> DictConfig:
    """Compose configs/imitation/<config_name>.yaml with `overrides` (errors as one-line UserError)."""
    from robolearn.config.validate import compose_config as compose

    return compose(config_name, overrides, config_root())


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
    """The console entry of an imitation verb: robolearn.cli.loop_verb over configs/imitation, with
    `complete` (validate and fill a composed config) as both the check and the recorded config."""
    from robolearn.cli import loop_verb

    def validate(cfg: DictConfig) -> None:
        complete(cfg)

    return loop_verb(verb, config_name, help_text, job, validate, resolve=complete, config_dir=config_root())


class StepTrainer(Protocol):
    """What `run_steps` drives: one gradient step per `iterate()`, a step count, and checkpoint state."""

    step: int

    def iterate(self) -> Any: ...

    def state_dict(self) -> dict[str, Any]: ...


def run_steps(
    run: Any,
    trainer: StepTrainer,
    total: int,
    log_every: int,
    checkpoint_every: int,
    scalars: Callable[[int, list[Any]], dict[str, Any]],
) -> dict[str, Any]:
    """The imitation verbs' gradient-step loop in a LoopRun: step until `total`; every `log_every`
    steps (and at the end) log `scalars(step, what iterate() returned since the last log)`; progress;
    a checkpoint every `checkpoint_every` steps and at the end; a stop point after each step. Returns
    the last logged scalars ({} when no step ran)."""
    window: list[Any] = []
    last: dict[str, Any] = {}
    while trainer.step < total:
        window.append(trainer.iterate())
        step = trainer.step
        if step % log_every == 0 or step == total:
            last = scalars(step, window)
            run.log(step, last)
            window.clear()
        run.progress(step)
        if step % checkpoint_every == 0 or step == total:
            run.checkpoint(step, trainer.state_dict())
        run.stop_point(step, trainer.state_dict)
    return last
