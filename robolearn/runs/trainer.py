"""The training job behind `python -m robolearn.train`: one run directory, resumable at any kill.

Flow: compare with what the run directory already holds (skip a completed run, resume an interrupted
one, refuse a different config), build env and agent (or load the newest checkpoint), learn with
periodic evaluation and checkpoints, then evaluate, checkpoint and summarise.
"""

from __future__ import annotations

import math
import secrets
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf
from stable_baselines3.common.base_class import BaseAlgorithm
from stable_baselines3.common.callbacks import BaseCallback
from stable_baselines3.common.logger import Logger, TensorBoardOutputFormat
from stable_baselines3.common.vec_env import VecEnv

from robolearn.agents import algorithm_class, build_agent
from robolearn.envs import make_eval_env, make_vec_env
from robolearn.envs.state import find_vec_normalize
from robolearn.errors import UserError
from robolearn.methods import configure_method, method_algorithm
from robolearn.runs.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint, save_model_files
from robolearn.runs.evaluation import EvalResult, evaluate_policy
from robolearn.runs.layout import RunDir
from robolearn.runs.metrics import JsonlMetricsWriter, WallClock, WandbWriter
from robolearn.runs.progress import ProgressReporter, notes_to, print_note
from robolearn.threads import summary as thread_policy_summary
from robolearn.utils.dicts import flatten
from robolearn.utils.io import atomic_write_json, atomic_write_text, replace_dir
from robolearn.utils.seeding import get_global_rng_state, seed_everything, set_global_rng_state
from robolearn.utils.sysinfo import cpu_info, package_versions

# Keys that may differ between a run directory's saved config and a resumed/re-run invocation:
# they change how long or how verbosely a run goes, not what it computes.
_RESUMABLE_KEYS = ("steps", "resume", "logger.progress", "logger.progress_every_s", "device", "torch_threads")


def config_differences(saved: dict[Any, Any], current: dict[Any, Any]) -> list[str]:
    """Keys (dotted) whose values differ, ignoring the keys a resumed run may change."""
    a, b = flatten(saved), flatten(current)
    keys = sorted(set(a) | set(b))
    return [k for k in keys if a.get(k) != b.get(k) and not k.startswith(_RESUMABLE_KEYS)]


def check_same_run(run: RunDir, resolved: dict[Any, Any]) -> None:
    """Refuse to write a different run into a directory that already holds one."""
    if not run.config.is_file():
        return
    saved = OmegaConf.to_container(OmegaConf.load(run.config), resolve=True)
    assert isinstance(saved, dict)
    diffs = config_differences(saved, resolved)
    if diffs:
        key = diffs[0]
        old, new = _shown_value(saved, key), _shown_value(resolved, key)
        raise UserError(
            f"{run.root} holds a run with {key}={old}, not {new} ({len(diffs)} keys differ); "
            "pick another run directory (hydra.run.dir=...) or resume with the run's own config"
        )


class TrainingStopped(Exception):
    """Training stopped on SIGINT/SIGTERM at a safe point (between iterations), with a checkpoint at
    `step`; `step` is None when the signal came before the first env step (nothing to save)."""

    def __init__(self, signum: int, step: int | None) -> None:
        super().__init__(f"stopped by {signal.Signals(signum).name}")
        self.signum, self.step = signum, step


class StoppedAtOnce(KeyboardInterrupt):
    """A second SIGINT/SIGTERM while stopping: stop without saving (checkpoints are atomic, so the
    last complete one stays intact)."""

    def __init__(self, signum: int) -> None:
        super().__init__(f"stopped at once by {signal.Signals(signum).name}")
        self.signum = signum


class _StopRequests:
    """SIGINT/SIGTERM during a run: the first asks for a checkpoint and a stop at the next safe
    point, a second stops at once. While `at_once` (setup: building envs, loading, a method's warm
    start, which can take minutes on a busy machine) there is nothing to save, so the first stops at
    once. A second signal while a checkpoint or model folder is being written takes effect when
    the write is done, so that no folder is left half-replaced. Installed only in the main thread
    (signals are delivered there)."""

    def __init__(self) -> None:
        self.signum: int | None = None
        self.at_once = True
        self._previous: dict[int, Any] = {}
        self._writing = 0
        self._pending: int | None = None

    @contextmanager
    def writing(self) -> Iterator[None]:
        """A block that a second signal must not cut short."""
        self._writing += 1
        try:
            yield
        finally:
            self._writing -= 1
        if self._writing == 0 and self._pending is not None:
            raise StoppedAtOnce(self._pending)

    def __enter__(self) -> _StopRequests:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.signum is not None:
            if self._writing:
                self._pending = signum
                return
            raise StoppedAtOnce(signum)
        self.signum = signum
        if self.at_once:
            raise TrainingStopped(signum, None)
        print(
            f"{signal.Signals(signum).name}: saving a checkpoint at the next safe point, then stopping"
            " (send it again to stop at once, without saving)",
            file=sys.stderr,
            flush=True,
        )


# The field that names a config group's choice (agent=sac is saved as agent.algo: sac).
_GROUP_NAME_FIELDS = {"agent": "algo", "env": "id", "method": "name"}


def _shown_value(cfg: dict[Any, Any], key: str) -> Any:
    """The value at a dotted key as a user would write it: a group's choice by its name, so that
    `resume=<a sac run> agent=td3` reports agent=sac rather than a missing leaf."""
    node: Any = cfg
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    if isinstance(node, dict) and key in _GROUP_NAME_FIELDS:
        return node.get(_GROUP_NAME_FIELDS[key])
    return node


class _TrainingCallback(BaseCallback):
    """Periodic evaluation (with best-model saving) and progress, inside SB3's loop."""

    def __init__(self, trainer: Trainer) -> None:
        super().__init__()
        self.trainer = trainer

    def _on_step(self) -> bool:
        t = self.trainer
        for info in self.locals.get("infos", ()):
            episode = info.get("episode") if isinstance(info, dict) else None
            if episode is not None:
                t.progress.episode_return = float(episode["r"])
        # The last evaluation happens after learn() returns, on the final model (SB3 still trains
        # once after this callback at the last step).
        if t.next_eval <= self.num_timesteps < t.cfg.steps:
            t.evaluate_and_log()
            while t.next_eval <= self.num_timesteps:
                t.next_eval += t.cfg.eval.every
        t.progress.update(self.num_timesteps)
        return True


class Trainer:
    """One training run in one run directory."""

    def __init__(self, cfg: DictConfig, run_root: Path, command: str) -> None:
        self.cfg = cfg
        self.run = RunDir(Path(run_root))
        self.command = command
        self.resolved: dict[str, Any] = OmegaConf.to_container(cfg, resolve=True)  # type: ignore[assignment]
        # Set when training starts (_train); declared here for readers and the type checker.
        self.model: BaseAlgorithm
        self.venv: VecEnv
        self.eval_env: Any
        self.metrics: JsonlMetricsWriter
        self.clock: WallClock
        self.progress: ProgressReporter
        self.next_eval: float = math.inf
        self.next_checkpoint: int = 0
        self.best_return: float = -math.inf
        self.best_step: int | None = None
        self.last_eval: tuple[int, EvalResult] | None = None
        self.resumes = 0
        self.method_facts: dict[str, Any] = {}
        self.stops = _StopRequests()
        self.checkpoint_step: int | None = None
        self._had_run = False  # the directory held an earlier attempt at this run

    # -- run directory bookkeeping -------------------------------------------------------------------
    def _check_existing(self) -> dict[str, Any] | None:
        check_same_run(self.run, self.resolved)
        summary = self.run.read_summary()
        if (
            summary is not None
            and summary.get("status") == "completed"
            and summary.get("steps", 0) >= self.cfg.steps
        ):
            return summary
        return None

    def _write_config(self) -> None:
        atomic_write_text(self.run.config, OmegaConf.to_yaml(self.cfg, resolve=True))

    # -- construction --------------------------------------------------------------------------------
    def _build(self) -> tuple[BaseAlgorithm, VecEnv, dict[str, Any]]:
        cfg, agent = self.cfg, self.cfg.agent
        torch.set_num_threads(cfg.torch_threads)
        seed_everything(cfg.seed)
        venv = make_vec_env(
            cfg.env,
            n_envs=agent.n_envs,
            seed=cfg.seed,
            normalize_obs=agent.normalize_obs,
            normalize_reward=agent.normalize_reward,
            gamma=agent.gamma,
        )
        device = resolve_device(cfg.device)
        algorithm, method_kwargs = method_algorithm(cfg)
        ckpt = latest_checkpoint(self.run)
        extra: dict[str, Any] = {}
        if ckpt is None and self._had_run:
            print(
                f"{self.run.root} has no checkpoint yet (the first is taken at step"
                f" {cfg.checkpoint.every}): training starts again from step 0",
                flush=True,
            )
        if ckpt is None:
            model = build_agent(
                agent, venv, seed=cfg.seed, device=device, algorithm=algorithm, **method_kwargs
            )
        else:
            model, extra = load_checkpoint(ckpt, algorithm or algorithm_class(agent.algo), venv, device)
            self.checkpoint_step = ckpt.step  # a stop right away must not rewrite this folder
            print(f"resuming {self.run.root} from step {ckpt.step}", flush=True)
        # Attaching a method (e.g. probing CAMEL's prior in a sandbox) must not move any RNG, so a
        # method that ends up inactive trains exactly like the plain agent.
        rng = get_global_rng_state()
        self.method_facts = configure_method(cfg, model, venv)
        set_global_rng_state(rng)
        return model, venv, extra

    def _logger(self, extra: dict[str, Any]) -> Logger:
        # A fresh run truncates whatever a run killed before its first checkpoint wrote.
        self.metrics = JsonlMetricsWriter(self.run.metrics, self.clock, offset=extra.get("metrics_offset", 0))
        outputs: list[Any] = [self.metrics]
        if self.cfg.logger.tensorboard:
            outputs.append(TensorBoardOutputFormat(str(self.run.tensorboard)))
        wb = self.cfg.logger.wandb
        if wb.enabled:
            outputs.append(WandbWriter(self._wandb_run()))
        logger = Logger(folder=str(self.run.root), output_formats=outputs)
        pending = extra.get("logger_pending")
        if pending:
            # Values recorded but not yet dumped when the checkpoint was taken.
            logger.name_to_value.update(pending["value"])
            logger.name_to_count.update(pending["count"])
            logger.name_to_excluded.update(pending["excluded"])
        return logger

    def _wandb_run(self) -> Any:
        import wandb  # a core dependency, imported only when enabled: it takes seconds to load

        wb = self.cfg.logger.wandb
        id_file = self.run.root / "wandb_id.txt"
        run_id = id_file.read_text().strip() if id_file.is_file() else secrets.token_hex(4)
        atomic_write_text(id_file, run_id)
        return wandb.init(
            project=wb.project,
            entity=wb.entity,
            group=wb.group,
            tags=list(wb.tags),
            mode=wb.mode,
            dir=str(self.run.root),
            config=self.resolved,
            id=run_id,
            resume="allow",
            name=self.run.root.name,
        )

    # -- evaluation and checkpoints --------------------------------------------------------------------
    def _obs_transform(self) -> Any:
        norm = find_vec_normalize(self.venv)
        return None if norm is None else norm.normalize_obs

    def evaluate(self, actor: Any = None) -> EvalResult:
        """Deterministic evaluation of the current policy (or of `actor`, a method's variant that
        takes raw observations) on the eval env."""
        ev = self.cfg.eval
        return evaluate_policy(
            self.model if actor is None else actor,
            self.eval_env,
            episodes=ev.episodes,
            base_seed=self.cfg.seed + ev.seed_offset,
            deterministic=ev.deterministic,
            obs_transform=self._obs_transform() if actor is None else None,
        )

    def evaluate_variants(self) -> dict[str, dict[str, float]]:
        """A method's extra evaluations (e.g. CAMEL's actor through its mask), on the same seeds."""
        hook = getattr(self.model, "eval_variants", None)
        if not callable(hook):
            return {}
        out = {}
        for name, actor in hook(self._obs_transform()).items():
            result = self.evaluate(actor)
            out[name] = {
                "mean_return": result.mean_return,
                "std_return": result.std_return,
                **result.figures(),
            }
        return out

    def evaluate_and_log(self) -> EvalResult:
        """Evaluate, log eval/* at the current step, and keep the best model."""
        step = int(self.model.num_timesteps)
        result = self.evaluate()
        logger = self.model.logger
        logger.record("eval/mean_return", result.mean_return)
        logger.record("eval/std_return", result.std_return)
        logger.record("eval/mean_length", float(sum(result.lengths) / len(result.lengths)))
        for name, value in result.figures().items():
            logger.record(f"eval/{name}", value)
        for variant, figures in self.evaluate_variants().items():
            for name, value in figures.items():
                logger.record(f"eval/{variant}/{name}", value)
        logger.dump(step)
        self.last_eval = (step, result)
        self.progress.eval_return = result.mean_return
        if result.mean_return > self.best_return:
            self.best_return, self.best_step = result.mean_return, step
            tmp = self.run.root / ".tmp-best"
            save_model_files(self.model, self.venv, tmp)
            atomic_write_json(tmp / "eval.json", {"step": step, "mean_return": result.mean_return})
            with self.stops.writing():
                replace_dir(tmp, self.run.best)
        return result

    def _extra_state(self) -> dict[str, Any]:
        logger = self.model.logger
        return {
            "next_eval": self.next_eval,
            "next_checkpoint": self.next_checkpoint,
            "best_return": self.best_return,
            "best_step": self.best_step,
            "last_eval_step": self.last_eval[0] if self.last_eval else None,
            "metrics_offset": self.metrics.tell(),
            "wall_time_s": self.clock(),
            "resumes": self.resumes,
            "logger_pending": {
                "value": dict(logger.name_to_value),
                "count": dict(logger.name_to_count),
                "excluded": dict(logger.name_to_excluded),
            },
        }

    def _checkpoint(self) -> None:
        with self.stops.writing():
            save_checkpoint(
                self.run, self.model, self.venv, self._extra_state(), self.cfg.checkpoint.save_replay_buffer
            )
        self.checkpoint_step = int(self.model.num_timesteps)

    def _before_collect(self, model: BaseAlgorithm) -> None:
        if model.num_timesteps >= self.next_checkpoint and model.num_timesteps > 0:
            while self.next_checkpoint <= model.num_timesteps:
                self.next_checkpoint += self.cfg.checkpoint.every
            self._checkpoint()
        self._stop_if_asked()

    def _stop_if_asked(self) -> None:
        """At a safe point (where periodic checkpoints are taken, so resuming stays exact): after a
        stop signal, checkpoint (unless nothing has run yet) and raise TrainingStopped."""
        signum = self.stops.signum
        if signum is None:
            return
        step = int(self.model.num_timesteps)
        if step == 0:
            # A step-0 checkpoint would not resume exactly (learn() resets the envs at step 0);
            # there is nothing to lose either.
            raise TrainingStopped(signum, None)
        if self.checkpoint_step != step:
            self._checkpoint()
        raise TrainingStopped(signum, step)

    # -- the run -------------------------------------------------------------------------------------
    def run_training(self) -> dict[str, Any]:
        """Train to cfg.steps (resuming if possible) and return the summary."""
        done = self._check_existing()
        if done is not None:
            print(f"{self.run.root} already completed {done['steps']} steps; skipping", flush=True)
            return done
        self._had_run = self.run.config.is_file()
        self.run.root.mkdir(parents=True, exist_ok=True)
        self._write_config()
        print(f"run directory: {self.run.root}", flush=True)
        try:
            with self.stops:
                return self._train()
        except BaseException as exc:
            if not isinstance(exc, KeyboardInterrupt | SystemExit | TrainingStopped):
                atomic_write_text(self.run.error, f"{type(exc).__name__}: {exc}\n")
            raise

    def _train(self) -> dict[str, Any]:
        cfg = self.cfg
        # Setup phases (prior_init's warm start) report through progress notes.
        with notes_to(print_note(cfg.logger.progress)):
            self.model, self.venv, extra = self._build()
        self.stops.at_once = False
        # A fresh run's clock starts with the time a method spent before training (prior_init's rollouts).
        self.clock = WallClock(extra.get("wall_time_s", self.method_facts.get("method/setup_s", 0.0)))
        self.model.set_logger(self._logger(extra))
        self.eval_env = make_eval_env(cfg.env)
        every = cfg.eval.every if cfg.eval.every > 0 else math.inf
        self.next_eval = extra.get("next_eval", every)
        self.next_checkpoint = int(extra.get("next_checkpoint", cfg.checkpoint.every))
        self.best_return = extra.get("best_return", -math.inf)
        self.best_step = extra.get("best_step")
        self.resumes = extra.get("resumes", -1) + 1
        self.last_eval = None
        start = int(self.model.num_timesteps)
        self.progress = ProgressReporter(cfg.steps, start, cfg.logger.progress, cfg.logger.progress_every_s)
        self.model.before_collect = self._before_collect  # type: ignore[attr-defined]
        try:
            remaining = cfg.steps - start
            if remaining > 0:
                with notes_to(self.progress.note):
                    self.model.learn(
                        total_timesteps=remaining,
                        callback=_TrainingCallback(self),
                        log_interval=_log_interval(cfg),
                        reset_num_timesteps=start == 0,
                        progress_bar=False,
                    )
            # A stop asked for during the last rollout: the final evaluation is left to the resume.
            self._stop_if_asked()
            step = int(self.model.num_timesteps)
            # A run resumed from its final checkpoint has logged this evaluation already.
            already_logged = remaining <= 0 and extra.get("last_eval_step") == step
            final = self.evaluate() if already_logged else self.evaluate_and_log()
            # The final evaluation stands for every boundary up to here: extending the run later
            # must not evaluate this same model again at its first step.
            while self.next_eval <= step:
                self.next_eval += every
            self._checkpoint()
            tmp = self.run.root / ".tmp-final"
            save_model_files(self.model, self.venv, tmp)
            with self.stops.writing():
                replace_dir(tmp, self.run.final)
        finally:
            # A stopped run ends with the stop line alone.
            self.progress.close(int(self.model.num_timesteps), report=self.stops.signum is None)
            self.model.logger.close()
            self.eval_env.close()
            self.venv.close()
        summary = self._summary(final)
        atomic_write_json(self.run.summary, summary)
        if self.run.error.exists():
            self.run.error.unlink()
        return summary

    def _summary(self, final: EvalResult) -> dict[str, Any]:
        return {
            "status": "completed",
            **final.summary(),
            "best/mean_return": self.best_return,
            "best/step": self.best_step,
            "steps": int(self.model.num_timesteps),
            "wall_time_s": round(self.clock(), 3),
            "seed": int(self.cfg.seed),
            "env": self.cfg.env.id,
            "algo": self.cfg.agent.algo,
            **self.method_facts,
            "resumes": self.resumes,
            "command": self.command,
            "versions": package_versions(),
            "cpu": cpu_info(),
            "torch_threads": torch.get_num_threads(),
            "thread_policy": thread_policy_summary(),
            "run_dir": str(self.run.root.resolve()),
        }


def _log_interval(cfg: DictConfig) -> int:
    if cfg.logger.log_interval is not None:
        return int(cfg.logger.log_interval)
    # Off-policy agents count episodes between log points, the others iterations.
    return 4 if cfg.agent.algo in ("sac", "td3") else 1


def resolve_device(name: str) -> str:
    """The torch device for a run's `device` key: auto picks CUDA when torch sees it; a CUDA name
    without CUDA is a one-line error."""
    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise UserError(
            f"device={name} but torch sees no CUDA device; use device=cpu or install a CUDA build of torch"
        )
    return name
