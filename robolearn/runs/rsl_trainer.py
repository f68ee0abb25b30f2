"""The training loop for agent=rsl_ppo: rsl_rl's PPO, driven here so the run directory is robolearn's.

One iteration, as rsl_rl/runners/on_policy_runner.py runs it: `num_steps_per_env` steps of every env
(PPO.act -> env.step -> PPO.process_env_step), returns and advantages (PPO.compute_returns), then
the update (PPO.update). Around it, robolearn's run directory (robolearn.runs.loop.LoopRun):
metrics.jsonl and TensorBoard per iteration, periodic deterministic evaluation with the best model
kept in best/, checkpoints between iterations that resume bit for bit (networks, optimiser,
adaptive learning rate, normalisers, env state, current observations, RNGs), final/ and summary.json
with the same keys as an SB3 run.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from robolearn.agents.rsl_ppo import RslPolicy, build_rsl_ppo, import_rsl, policy_payload
from robolearn.agents.rsl_vec_env import RslVecEnv
from robolearn.envs import make_eval_env, make_vec_env
from robolearn.errors import UserError
from robolearn.runs.checkpoint import MODEL_FILE
from robolearn.runs.evaluation import EvalResult, evaluate_policy
from robolearn.runs.loop import LoopRun
from robolearn.runs.trainer import resolve_device
from robolearn.utils.io import atomic_save_with, atomic_write_json, replace_dir
from robolearn.utils.seeding import seed_everything


def steps_per_iteration(cfg: DictConfig) -> int:
    """Env steps one rsl_ppo iteration collects: n_envs x num_steps_per_env."""
    return int(cfg.agent.n_envs) * int(cfg.agent.num_steps_per_env)


class RslTrainer:
    """One agent=rsl_ppo run in one run directory."""

    def __init__(self, cfg: DictConfig, run_dir: Path, command: str) -> None:
        self.cfg = cfg
        self.run_dir = Path(run_dir)
        self.command = command
        self.per_iteration = steps_per_iteration(cfg)
        every = int(cfg.eval.every)
        self.eval_every = every if every > 0 else math.inf
        self.next_eval: float = self.eval_every
        self.next_checkpoint = int(cfg.checkpoint.every)
        self.best_return = -math.inf
        self.best_step: int | None = None
        self.last_eval_step: int | None = None
        self.iteration = 0
        self.last_episode_return: float | None = None
        # Set in train(); declared for readers and the type checker.
        self.alg: Any
        self.env: RslVecEnv
        self.eval_env: Any

    # -- pieces ------------------------------------------------------------------------------------
    def _build(self) -> None:
        cfg, agent = self.cfg, self.cfg.agent
        import_rsl()  # the one-line error before any env is built
        torch.set_num_threads(int(cfg.torch_threads))
        seed_everything(int(cfg.seed))
        device = resolve_device(str(cfg.device))
        if agent.get("env_on_device"):
            # The velocity task on the device (docs/warp.md): rsl_rl's VecEnv interface over tensors
            # that alias MuJoCo Warp's arrays, so a step never leaves the device.
            from robolearn.envs.tasks.velocity_device import make_device_velocity_env

            kwargs: dict[str, Any] = OmegaConf.to_container(cfg.env.kwargs, resolve=True)  # type: ignore[assignment]
            kwargs.setdefault("device", "cuda:0" if device.startswith("cuda") else "cpu")
            self.env = make_device_velocity_env(  # type: ignore[assignment]
                str(cfg.env.id), int(agent.n_envs), seed=int(cfg.seed), **kwargs
            )
        else:
            venv = make_vec_env(cfg.env, n_envs=int(agent.n_envs), seed=int(cfg.seed))
            self.env = RslVecEnv(venv, device)
        self.env.reset()
        self.alg = build_rsl_ppo(agent, self.env, device)
        self.alg.train_mode()
        self.eval_env = make_eval_env(cfg.env)

    def state(self) -> dict[str, Any]:
        """Everything a resumed run needs besides the global RNGs (LoopRun stores those)."""
        return {
            "alg": self.alg.save(),
            "learning_rate": float(self.alg.learning_rate),
            "env": self.env.get_state(),
            "iteration": self.iteration,
            "next_eval": self.next_eval,
            "next_checkpoint": self.next_checkpoint,
            "best_return": self.best_return,
            "best_step": self.best_step,
            "last_eval_step": self.last_eval_step,
            "last_episode_return": self.last_episode_return,
            "policy": policy_payload(self.alg, self.cfg.agent, self.env),
        }

    def _restore(self, state: dict[str, Any]) -> None:
        self.alg.load(state["alg"], None, strict=True)
        self.alg.learning_rate = float(state["learning_rate"])
        for group in self.alg.optimizer.param_groups:
            group["lr"] = self.alg.learning_rate
        self.env.set_state(state["env"])
        self.iteration = int(state["iteration"])
        self.next_eval = float(state["next_eval"])
        self.next_checkpoint = int(state["next_checkpoint"])
        self.best_return = float(state["best_return"])
        self.best_step = state["best_step"]
        self.last_eval_step = state["last_eval_step"]
        self.last_episode_return = state["last_episode_return"]

    def _init_from(self, source: Path) -> None:
        """agent.init_from: the networks, normaliser and optimiser of another rsl_ppo run's newest
        checkpoint (this run's own learning rate, iterations and env from the start)."""
        import json

        from robolearn.runs.loop import STATE_FILE

        pointer = source / "checkpoints" / "latest.json"
        if not pointer.is_file():
            raise UserError(
                f"agent.init_from={source} has no checkpoint (checkpoints/latest.json) to start from"
            )
        if not (source / "config.yaml").is_file():
            raise UserError(f"agent.init_from={source} is not a run directory (no config.yaml)")
        algo = OmegaConf.select(OmegaConf.load(source / "config.yaml"), "agent.algo", default=None)
        if algo != "rsl_ppo":
            raise UserError(
                f"agent.init_from={source} is an agent={algo} run; rsl_ppo starts only from rsl_ppo"
            )
        name = json.loads(pointer.read_text(encoding="utf-8"))["name"]
        saved = torch.load(
            source / "checkpoints" / str(name) / STATE_FILE, map_location="cpu", weights_only=False
        )
        try:
            self.alg.load(saved["state"]["alg"], None, strict=True)
        except RuntimeError as exc:
            first = str(exc).strip().splitlines()[0]
            raise UserError(
                f"agent.init_from={source}: its networks do not fit this run's (same env observation and"
                f" agent sizes needed): {first}"
            ) from None
        self.alg.learning_rate = float(self.cfg.agent.learning_rate)
        for group in self.alg.optimizer.param_groups:
            group["lr"] = self.alg.learning_rate
        print(f"starting from {source} ({name})", flush=True)

    def policy(self) -> RslPolicy:
        """The current actor as evaluation sees it (shares the live weights)."""
        return RslPolicy(self.alg.get_policy(), policy_payload(self.alg, self.cfg.agent, self.env))

    def evaluate(self) -> EvalResult:
        """Deterministic evaluation of the current actor on the run's eval seeds."""
        ev = self.cfg.eval
        actor = self.alg.get_policy()
        actor.eval()  # the normaliser must not learn from evaluation episodes
        try:
            return evaluate_policy(
                self.policy(),
                self.eval_env,
                int(ev.episodes),
                int(self.cfg.seed) + int(ev.seed_offset),
                bool(ev.deterministic),
            )
        finally:
            actor.train()

    def _save_policy(self, folder: Path, extra: Callable[[Path], None] | None = None) -> None:
        tmp = folder.parent / f".tmp-{folder.name}"
        tmp.mkdir(parents=True, exist_ok=True)
        payload = policy_payload(self.alg, self.cfg.agent, self.env)
        atomic_save_with(tmp / MODEL_FILE, lambda p: torch.save(payload, p))
        if extra is not None:
            extra(tmp)
        replace_dir(tmp, folder)

    def _evaluate_and_log(self, run: LoopRun, step: int) -> EvalResult:
        result = self.evaluate()
        scalars = {
            "eval/mean_return": result.mean_return,
            "eval/std_return": result.std_return,
            "eval/mean_length": float(np.mean(result.lengths)),
            **{f"eval/{k}": v for k, v in result.figures().items()},
        }
        run.log(step, scalars)
        run.progress(step, eval_return=result.mean_return)
        self.last_eval_step = step
        if result.mean_return > self.best_return:
            self.best_return, self.best_step = result.mean_return, step
            with run.stops.writing():
                self._save_policy(
                    run.run.best,
                    lambda tmp: atomic_write_json(
                        tmp / "eval.json", {"step": step, "mean_return": result.mean_return}
                    ),
                )
        return result

    def _iterate(self, step: int) -> dict[str, float]:
        """One rsl_rl iteration from env step `step`: rollout, returns, update; returns its figures."""
        alg, env = self.alg, self.env
        if self.cfg.agent.get("lr_schedule", "constant") == "linear":  # schedule=fixed (validated)
            # SB3's linear schedule: learning_rate x the share of the run still to go at this update.
            alg.learning_rate = float(self.cfg.agent.learning_rate) * max(
                1.0 - step / int(self.cfg.steps), 0.0
            )
            for group in alg.optimizer.param_groups:
                group["lr"] = alg.learning_rate
        start = time.perf_counter()
        episodes: list[tuple[float, int]] = []
        obs = env.get_observations()
        with torch.inference_mode():
            for _ in range(int(self.cfg.agent.num_steps_per_env)):
                actions = alg.act(obs)
                obs, rewards, dones, extras = env.step(actions)
                episodes.extend(extras.pop("episodes", ()))
                alg.process_env_step(obs, rewards, dones, extras)
            collected = time.perf_counter()
            alg.compute_returns(obs)
        losses = alg.update()
        done = time.perf_counter()
        figures = {
            "train/value_loss": float(losses["value"]),
            "train/surrogate_loss": float(losses["surrogate"]),
            "train/entropy": float(losses["entropy"]),
            "train/learning_rate": float(alg.learning_rate),
            "train/action_std": float(alg.get_policy().output_std.detach().mean()),
            "time/collect_s": collected - start,
            "time/learn_s": done - collected,
            "time/steps_per_s": self.per_iteration / max(done - start, 1e-9),
        }
        stats = getattr(env, "episode_stats", None)
        if stats is not None:
            # The device task counts finished episodes on the device; one copy per iteration.
            mean_return, mean_length, count = stats()
            if count:
                figures["train/episode_return"] = mean_return
                figures["train/episode_length"] = mean_length
                self.last_episode_return = mean_return
        if episodes:
            figures["train/episode_return"] = float(np.mean([r for r, _ in episodes]))
            figures["train/episode_length"] = float(np.mean([n for _, n in episodes]))
            self.last_episode_return = figures["train/episode_return"]
        return figures

    # -- the run -----------------------------------------------------------------------------------
    def train(self) -> dict[str, Any]:
        """Train to cfg.steps (resuming from the newest checkpoint) and return summary.json's content."""
        cfg = self.cfg
        with LoopRun(cfg, self.run_dir, self.command, total=int(cfg.steps)) as run:
            if run.completed is not None:
                print(
                    f"{self.run_dir} already completed {run.completed['steps']} steps; skipping", flush=True
                )
                return run.completed
            self._build()
            try:
                return self._train(run)
            finally:
                self.eval_env.close()
                self.env.close()

    def _train(self, run: LoopRun) -> dict[str, Any]:
        cfg = self.cfg
        state = run.resume_state()  # last: it restores the global RNGs
        if state is not None:
            self._restore(state)
            print(f"resuming {self.run_dir} from step {run.step}", flush=True)
        elif cfg.agent.get("init_from"):
            self._init_from(Path(str(cfg.agent.init_from)).expanduser())
        step = run.step
        resumed_at_end = state is not None and step >= int(cfg.steps)
        while step < int(cfg.steps):
            figures = self._iterate(step)
            self.iteration += 1
            step += self.per_iteration
            run.log(step, {"train/iteration": float(self.iteration), **figures})
            run.progress(step, episode_return=self.last_episode_return)
            if self.next_eval <= step < int(cfg.steps):
                self._evaluate_and_log(run, step)
                while self.next_eval <= step:
                    self.next_eval += self.eval_every
            if step >= self.next_checkpoint and step < int(cfg.steps):
                while self.next_checkpoint <= step:
                    self.next_checkpoint += int(cfg.checkpoint.every)
                run.checkpoint(step, self.state())
            run.stop_point(step, self.state)
        # A run resumed from its final checkpoint has logged this evaluation already.
        if resumed_at_end and self.last_eval_step == step:
            final = self.evaluate()
        else:
            final = self._evaluate_and_log(run, step)
        while self.next_eval <= step:
            self.next_eval += self.eval_every
        run.checkpoint(step, self.state())
        with run.stops.writing():
            self._save_policy(run.run.final)
        return run.finish(self._summary(final, step))

    def _summary(self, final: EvalResult, step: int) -> dict[str, Any]:
        cfg = self.cfg
        return {
            **final.summary(),
            "best/mean_return": self.best_return,
            "best/step": self.best_step,
            "steps": step,
            "iterations": self.iteration,
            "env": str(cfg.env.id),
            "algo": str(cfg.agent.algo),
            "n_envs": int(cfg.agent.n_envs),
        }


def train_rsl_ppo(cfg: DictConfig, run_dir: Path, command: str) -> dict[str, Any]:
    """Train agent=rsl_ppo into run_dir; returns the summary."""
    return RslTrainer(cfg, run_dir, command).train()
