"""The run directory for loops that are not SB3's (ARCHITECTURE.md, contract 8).

Model-based, offline, imitation and sim-to-real loops own their iteration; `LoopRun` gives them
the same run directory a `robolearn.train` run has, so `robolearn.report`, sweeps and exports treat
every run alike: `config.yaml`, `metrics.jsonl` (one line per log point, with `step` and
`wall_time_s`), TensorBoard under `tb/`, atomic checkpoints under `checkpoints/` (the newest named
in `latest.json`), `summary.json` when the run completes and `error.txt` when it raised.

    with LoopRun(cfg, run_dir, command, total=cfg.steps) as run:
        if run.completed is not None:
            return run.completed                  # the same run finished before: skip it
        learner = build(cfg)                      # seeds, networks, envs ...
        state = run.resume_state()                # last: it restores the global RNGs
        if state is not None:
            learner.load_state_dict(state["learner"])
        step = run.step
        while step < cfg.steps:
            step = learner.iterate()
            run.log(step, {"train/loss": learner.loss})
            run.progress(step)
            if step % cfg.checkpoint.every == 0:
                run.checkpoint(step, {"learner": learner.state_dict()})
            run.stop_point(step, lambda: {"learner": learner.state_dict()})
        return run.finish({"eval/mean_return": ..., ...})

A first SIGINT/SIGTERM asks the loop to stop at its next `stop_point`, where a checkpoint is
written and `TrainingStopped` raised; a second stops at once (the last complete checkpoint stays
intact). `run_loop_job` turns both into the one line and exit code `robolearn.train` uses.
"""

from __future__ import annotations

import json
import pickle
import shutil
import signal
import sys
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from stable_baselines3.common.logger import TensorBoardOutputFormat

from robolearn.errors import UserError
from robolearn.runs.layout import RunDir, existing_run_dir
from robolearn.runs.metrics import JsonlMetricsWriter, WallClock
from robolearn.runs.progress import ProgressReporter
from robolearn.runs.trainer import (
    StoppedAtOnce,
    TrainingStopped,
    _shown_value,
    _StopRequests,
    config_differences,
)
from robolearn.threads import summary as thread_policy_summary
from robolearn.utils.io import atomic_save_with, atomic_write_json, atomic_write_text, replace_dir
from robolearn.utils.seeding import get_global_rng_state, set_global_rng_state
from robolearn.utils.sysinfo import cpu_info, package_versions

STATE_FILE = "state.pt"
FORMAT_VERSION = 1
_DEFAULT_RESUMABLE = (
    "steps",
    "resume",
    "logger.progress",
    "logger.progress_every_s",
    "device",
    "torch_threads",
)


class LoopRun:
    """One run directory for a loop that is not SB3's; use it as a context manager.

    `total` is the length of the run in `unit`s (env steps for most loops); a completed run with at
    least `total` steps is skipped, a shorter one is extended from its last checkpoint.
    `resumable_keys` adds config keys (dotted prefixes) that may differ on resume besides `steps`,
    `resume`, `logger.progress*`, `device` and `torch_threads`.
    """

    def __init__(
        self,
        cfg: DictConfig,
        run_root: Path | str,
        command: str,
        total: int,
        unit: str = "steps",
        resumable_keys: tuple[str, ...] = (),
    ) -> None:
        self.cfg = cfg
        self.run = RunDir(Path(run_root))
        self.command = command
        self.total = int(total)
        self.unit = unit
        self.resumable_keys = _DEFAULT_RESUMABLE + tuple(resumable_keys)
        resolved = OmegaConf.to_container(cfg, resolve=True)
        assert isinstance(resolved, dict)
        self.resolved: dict[str, Any] = resolved  # type: ignore[assignment]
        self.completed: dict[str, Any] | None = None
        self.step = 0
        self.resumes = 0
        self.stops = _StopRequests()
        self.clock: WallClock = WallClock()
        self._saved: dict[str, Any] | None = None
        self._metrics: JsonlMetricsWriter | None = None
        self._tensorboard: TensorBoardOutputFormat | None = None
        self._progress: ProgressReporter | None = None
        self._last_step = 0

    # -- entering and leaving ----------------------------------------------------------------------
    def __enter__(self) -> LoopRun:
        self._check_same_run()
        summary = self.run.read_summary()
        if (
            summary is not None
            and summary.get("status") == "completed"
            and summary.get("steps", 0) >= self.total
        ):
            self.completed = summary
            return self
        self.run.root.mkdir(parents=True, exist_ok=True)
        atomic_write_text(self.run.config, OmegaConf.to_yaml(self.cfg, resolve=True))
        self._saved = self._load_latest()
        offset = 0
        if self._saved is not None:
            self.step = int(self._saved["step"])
            self.resumes = int(self._saved["resumes"]) + 1
            offset = int(self._saved["metrics_offset"])
            self.clock = WallClock(float(self._saved["wall_time_s"]))
        # A fresh run truncates whatever a run killed before its first checkpoint wrote.
        self._metrics = JsonlMetricsWriter(self.run.metrics, self.clock, offset=offset)
        if bool(OmegaConf.select(self.cfg, "logger.tensorboard", default=True)):
            self._tensorboard = TensorBoardOutputFormat(str(self.run.tensorboard))
        self._progress = ProgressReporter(
            self.total,
            self.step,
            str(OmegaConf.select(self.cfg, "logger.progress", default="auto")),
            float(OmegaConf.select(self.cfg, "logger.progress_every_s", default=30.0)),
        )
        self._last_step = self.step
        self.stops.__enter__()
        self.stops.at_once = False
        print(f"run directory: {self.run.root}", flush=True)
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        if self.completed is not None:
            return
        self.stops.__exit__(exc_type, exc, tb)
        if self._progress is not None:
            # A stopped run ends with the stop line alone.
            self._progress.close(self._last_step, report=self.stops.signum is None and exc is None)
        if self._metrics is not None:
            self._metrics.close()
        if self._tensorboard is not None:
            self._tensorboard.close()
        if exc is not None and not isinstance(exc, KeyboardInterrupt | SystemExit | TrainingStopped):
            atomic_write_text(self.run.error, f"{type(exc).__name__}: {exc}\n")

    def _check_same_run(self) -> None:
        if not self.run.config.is_file():
            return
        saved = OmegaConf.to_container(OmegaConf.load(self.run.config), resolve=True)
        assert isinstance(saved, dict)
        diffs = [k for k in config_differences(saved, self.resolved) if not k.startswith(self.resumable_keys)]
        if diffs:
            key = diffs[0]
            old, new = _shown_value(saved, key), _shown_value(self.resolved, key)
            raise UserError(
                f"{self.run.root} holds a run with {key}={old}, not {new} ({len(diffs)} keys differ); "
                "pick another run directory (hydra.run.dir=...) or resume with the run's own config"
            )

    # -- checkpoints -------------------------------------------------------------------------------
    def _load_latest(self) -> dict[str, Any] | None:
        pointer = self.run.checkpoints / "latest.json"
        if not pointer.is_file():
            return None
        try:
            info = json.loads(pointer.read_text(encoding="utf-8"))
            path = self.run.checkpoints / str(info["name"]) / STATE_FILE
        except (json.JSONDecodeError, KeyError, TypeError):
            raise UserError(
                f"{pointer} is corrupt; delete the checkpoints folder to restart the run"
            ) from None
        try:
            saved = torch.load(path, map_location="cpu", weights_only=False)
        except (OSError, RuntimeError, EOFError, pickle.UnpicklingError) as exc:
            raise UserError(
                f"checkpoint {path} cannot be read ({exc}); delete it to restart the run"
            ) from None
        if not isinstance(saved, dict) or saved.get("format_version") != FORMAT_VERSION:
            version = saved.get("format_version") if isinstance(saved, dict) else None
            raise UserError(f"checkpoint {path} has format {version}, expected {FORMAT_VERSION}")
        return saved

    def resume_state(self) -> dict[str, Any] | None:
        """The `state` given to the newest checkpoint (None on a fresh run). Restores the python,
        numpy and torch global RNGs, so call it after everything that draws random numbers while
        it is built."""
        if self._saved is None:
            return None
        set_global_rng_state(self._saved["rng"])
        state = self._saved["state"]
        assert isinstance(state, dict)
        return state

    def checkpoint(self, step: int, state: dict[str, Any]) -> None:
        """Write `state` (anything torch.save pickles) as the checkpoint at `step`, atomically, with
        the global RNGs, the metrics offset and the wall clock; keeps the newest two."""
        assert self._metrics is not None, "LoopRun.checkpoint outside its with-block"
        name = f"step_{int(step):012d}"
        payload = {
            "format_version": FORMAT_VERSION,
            "step": int(step),
            "rng": get_global_rng_state(),
            "metrics_offset": self._metrics.tell(),
            "wall_time_s": self.clock(),
            "resumes": self.resumes,
            "state": state,
        }
        with self.stops.writing():
            self.run.checkpoints.mkdir(parents=True, exist_ok=True)
            tmp = self.run.checkpoints / f".tmp-{name}"
            if tmp.exists():
                shutil.rmtree(tmp)
            tmp.mkdir()
            atomic_save_with(tmp / STATE_FILE, lambda p: torch.save(payload, p))
            final = self.run.checkpoints / name
            replace_dir(tmp, final)
            atomic_write_json(self.run.checkpoints / "latest.json", {"name": name, "step": int(step)})
            for old in sorted(p for p in self.run.checkpoints.glob("step_*") if p.is_dir())[:-2]:
                if old != final:
                    shutil.rmtree(old, ignore_errors=True)

    def stop_point(self, step: int, state: Callable[[], dict[str, Any]]) -> None:
        """A safe point between iterations: when a stop was asked for, checkpoint and raise
        TrainingStopped."""
        if self.stops.signum is None:
            return
        self.checkpoint(step, state())
        raise TrainingStopped(self.stops.signum, int(step))

    # -- reporting ---------------------------------------------------------------------------------
    def log(self, step: int, scalars: dict[str, Any]) -> None:
        """One metrics.jsonl line ({step, wall_time_s, **scalars}) and the TensorBoard scalars."""
        assert self._metrics is not None, "LoopRun.log outside its with-block"
        self._metrics.write(scalars, {}, int(step))
        if self._tensorboard is not None:
            # SB3's writer pairs each value with its exclusions by position.
            excluded: dict[str, tuple[str, ...]] = {key: () for key in scalars}
            self._tensorboard.write(scalars, excluded, int(step))

    def progress(
        self, step: int, episode_return: float | None = None, eval_return: float | None = None
    ) -> None:
        """Move the progress bar (or print a progress line every logger.progress_every_s)."""
        self._last_step = int(step)
        if self._progress is None:
            return
        if episode_return is not None:
            self._progress.episode_return = float(episode_return)
        if eval_return is not None:
            self._progress.eval_return = float(eval_return)
        self._progress.update(int(step))

    def note(self, message: str) -> None:
        """A line printed above the progress bar."""
        if self._progress is not None:
            self._progress.note(message)
        else:
            print(message, flush=True)

    def finish(self, summary: dict[str, Any]) -> dict[str, Any]:
        """Complete the run: summary.json with the loop's figures plus the run's facts."""
        full: dict[str, Any] = {
            "status": "completed",
            **summary,
            "steps": int(summary.get("steps", self._last_step)),
            "unit": self.unit,
            "wall_time_s": round(self.clock(), 3),
            "seed": OmegaConf.select(self.cfg, "seed", default=None),
            "resumes": self.resumes,
            "command": self.command,
            "versions": package_versions(),
            "cpu": cpu_info(),
            "torch_threads": torch.get_num_threads(),
            "thread_policy": thread_policy_summary(),
            "run_dir": str(self.run.root.resolve()),
        }
        atomic_write_json(self.run.summary, full)
        if self.run.error.exists():
            self.run.error.unlink()
        self.completed = None
        return full


def _report_stop(verb: str, run_dir: Path, signum: int, step: int | None) -> None:
    """The one line a stopped loop ends with: where it is and how to continue it."""
    from robolearn.cli import command_line

    name = signal.Signals(signum).name
    resume = command_line(verb, [f"resume={run_dir}"])
    if step is not None:
        print(f"stopped by {name} at step {step}, checkpoint saved; continue with: {resume}", file=sys.stderr)
        return
    pointer = run_dir / "checkpoints" / "latest.json"
    try:
        saved_step = int(json.loads(pointer.read_text(encoding="utf-8"))["step"])
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError):
        saved_step = None
    if saved_step is not None:
        print(
            f"stopped by {name} without saving; the checkpoint at step {saved_step} is intact; "
            f"continue with: {resume}",
            file=sys.stderr,
        )
    else:
        print(
            f"stopped by {name} before the first checkpoint, so nothing is saved; {resume} starts"
            " again from step 0",
            file=sys.stderr,
        )


def run_loop_job(
    verb: str, job: Callable[[], dict[str, Any]], run_dir: Path, multirun: bool
) -> dict[str, Any]:
    """Run a loop's job: a UserError is one line and exit 2 (raised to Hydra in a sweep, which
    records it and goes on); a stop is the stop line and exit 128 + signal."""
    try:
        return job()
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr, flush=True)
        if multirun:
            raise
        raise SystemExit(2) from None
    except TrainingStopped as stop:
        _report_stop(verb, Path(run_dir), stop.signum, stop.step)
        raise SystemExit(128 + stop.signum) from None
    except KeyboardInterrupt as exc:
        signum = exc.signum if isinstance(exc, StoppedAtOnce) else signal.SIGINT
        _report_stop(verb, Path(run_dir), signum, None)
        raise SystemExit(128 + signum) from None


_MISSING = object()


def resume_config(
    verb: str, argv: list[str], validate: Callable[[DictConfig], None] | None = None
) -> tuple[RunDir, DictConfig]:
    """`resume=<run dir>`: the run's saved config with the other overrides applied. Only keys the
    saved config has may be set (steps=N extends a run); the result is validated."""
    resume = [a for a in argv if a.startswith("resume=")][-1].split("=", 1)[1]
    run = existing_run_dir(resume, key="resume")
    saved = OmegaConf.load(run.config)
    assert isinstance(saved, DictConfig)
    overrides = [a for a in argv if not a.startswith("resume=")]
    for item in overrides:
        key = item.split("=", 1)[0].lstrip("+~")
        if (
            item.startswith("-")
            or "=" not in item
            or OmegaConf.select(saved, key, default=_MISSING) is _MISSING
        ):
            raise UserError(
                f"{item} cannot be combined with resume=; only existing keys such as steps=N may be set "
                f"(python -m robolearn.{verb} resume={resume} steps=N)"
            )
    cfg = OmegaConf.merge(saved, OmegaConf.from_dotlist(overrides))
    if OmegaConf.select(saved, "resume", default=_MISSING) is not _MISSING:
        cfg = OmegaConf.merge(cfg, {"resume": str(run.root)})
    assert isinstance(cfg, DictConfig)
    if validate is not None:
        validate(cfg)
    return run, cfg
