"""`python -m robolearn.imitation.finetune encoder=<pretrain run dir> data=<new-task demos> [finetune.demos=<n>]`.

Behaviour cloning of a new task on top of a pretrained encoder φ (Brandfonbrener, Nachum, Bruna,
NeurIPS 2023, Sec. 4: finetune on a few demos of one new context): a frozen φ with a BC head (the
paper's policy-mlp-256-0.1 on fixed embeddings, sweeps/bc_finetune_fixed_encoder.py), or φ and the
head trained together (`finetune.freeze=false`; the default for an encoder of objective `none`, so
that run is BC from scratch). The policy is evaluated by rollouts on the demos' context through the
task's `evaluate_policy`; summary.json carries eval/mean_return, eval/success_rate and the rest
`robolearn.report` reads (method.name = pretrain_<objective>, env.id = <task>_<n>demos).

Examples:
    python -m robolearn.imitation.finetune encoder=<pretrain run> data=demos/pm_finetune finetune.demos=5
    python -m robolearn.imitation.finetune -m encoder=<run a>,<run b> data=demos/pm_finetune seed=0,1,2
    python -m robolearn.imitation.finetune encoder=<run> data=<demos> finetune.freeze=false
"""

# ruff: noqa: E402 - the thread policy must be in the environment before the imports below load torch
from __future__ import annotations

import os

from robolearn.threads import apply_thread_policy

apply_thread_policy()
# Pixel tasks render offscreen; mujoco reads MUJOCO_GL once, when it is first imported (as tasks.py does).
os.environ.setdefault("MUJOCO_GL", "egl")

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf, open_dict
from torch import nn

from robolearn.cli import verb_help
from robolearn.errors import UserError
from robolearn.imitation.data import DemoSet, check_same_spaces, load_demos, take
from robolearn.imitation.encoders import ObservationEncoder, mlp, obs_to_torch
from robolearn.imitation.objectives import ActionScaler
from robolearn.imitation.verbs import (
    check_common,
    check_dataset,
    check_top_keys,
    positive_float,
    positive_int,
    run_steps,
    verb_main,
)

VERB = "imitation.finetune"
CONFIG_NAME = "finetune"
POLICY_FILE = "policy.pt"
_KNOWN_TOP = {
    "encoder",
    "report",
    "data",
    "task",
    "finetune",
    "head",
    "seed",
    "steps",
    "batch_size",
    "lr",
    "eval",
    "device",
    "torch_threads",
    "resume",
    "log_every",
    "checkpoint",
    "logger",
    "method",
    "env",
}


class BCPolicy(nn.Module):
    """a = head(φ(o)) in normalised units, then back to the action space."""

    def __init__(
        self,
        encoder: ObservationEncoder,
        act_dim: int,
        hidden: list[int],
        dropout: float,
        scaler: ActionScaler,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.head = mlp(encoder.latent_dim, hidden, act_dim, dropout)
        self.scaler = scaler

    def forward(self, obs: Any) -> torch.Tensor:
        """Normalised actions for a batch of observations."""
        return self.head(self.encoder(obs))

    @torch.no_grad()
    def act(self, obs: Any) -> np.ndarray:
        """One environment observation -> one action (environment units)."""
        self.eval()
        batch = (
            {k: np.asarray(v)[None] for k, v in obs.items()}
            if isinstance(obs, dict)
            else np.asarray(obs)[None]
        )
        out = self.scaler.unnormalize(self(obs_to_torch(batch)))[0]
        return out.numpy().astype(np.float32)


def _encoder_record(path: str) -> dict[str, Any]:
    from robolearn.imitation.pretrain import load_encoder

    return load_encoder(path)[1]


def complete_config(cfg: DictConfig) -> DictConfig:
    """Validate a finetune config and fill method.name / env.id from the encoder and the demos."""
    check_top_keys(cfg, _KNOWN_TOP)
    check_common(cfg)
    check_dataset(cfg, "data")
    if not cfg.get("encoder"):
        raise UserError(
            "encoder= is missing; give a pretrain run directory (python -m robolearn.imitation.pretrain objective=none "
            "gives the from-scratch baseline)"
        )
    record = _encoder_record(str(cfg.encoder))
    positive_int(cfg, "steps", 0)
    positive_int(cfg, "batch_size", 2)
    positive_int(cfg, "log_every")
    positive_int(cfg, "checkpoint.every")
    positive_int(cfg, "eval.episodes", 0)
    positive_float(cfg, "lr")
    demos = cfg.finetune.get("demos")
    if demos is not None and (isinstance(demos, bool) or not isinstance(demos, int) or demos < 1):
        raise UserError(f"finetune.demos={demos} is out of range; use an integer >= 1 or null for all")
    context = cfg.finetune.get("context")
    if context is not None and (isinstance(context, bool) or not isinstance(context, int) or context < 0):
        raise UserError(
            f"finetune.context={context} is out of range; use an index >= 0 or null for every context"
        )
    if cfg.finetune.get("freeze") not in (True, False, "auto"):
        raise UserError(
            f"finetune.freeze={cfg.finetune.get('freeze')} is not allowed; choose true, false or auto"
        )
    out = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    assert isinstance(out, DictConfig)
    with open_dict(out):
        objective = str(record.get("objective"))
        if out.finetune.freeze == "auto":
            out.finetune.freeze = objective != "none"
        if not OmegaConf.select(out, "method.name"):
            out.method.name = f"pretrain_{objective}" + (
                "" if out.finetune.freeze or objective == "none" else "_full"
            )
        if not OmegaConf.select(out, "env.id"):
            task = out.task or record.get("task") or "demos"
            out.env.id = f"{task}_{'all' if demos is None else demos}demos"
    return out


def select_demos(demos: DemoSet, context: int | None, count: int | None) -> DemoSet:
    """The demos of the context-th distinct context (all when None), then the first `count` of them."""
    if context is not None:
        if demos.contexts is None:
            raise UserError(f"{demos.path} has no infos['context']; use finetune.context=null")
        distinct = np.unique(demos.contexts.round(6), axis=0)
        order = [tuple(c) for c in demos.contexts.round(6)]
        firsts = sorted({tuple(c): order.index(tuple(c)) for c in distinct}.items(), key=lambda kv: kv[1])
        if context >= len(firsts):
            raise UserError(
                f"finetune.context={context} but {demos.path} holds {len(firsts)} distinct contexts; use 0..{len(firsts) - 1}"
            )
        wanted = np.array(firsts[context][0])
        demos = demos.subset(np.flatnonzero(np.all(np.isclose(demos.contexts.round(6), wanted), axis=1)))
    if count is not None:
        if count > demos.num_episodes:
            raise UserError(
                f"finetune.demos={count} but only {demos.num_episodes} demos are there; use at most that"
            )
        demos = demos.subset(count)
    return demos


class Finetuner:
    """The BC head (and φ unless frozen) trained by Adam on MSE to normalised actions."""

    def __init__(self, cfg: DictConfig, encoder: ObservationEncoder, demos: DemoSet, device: str) -> None:
        self.device = device
        self.freeze = bool(cfg.finetune.freeze)
        scaler = ActionScaler(demos.action_space, demos.actions)
        self.policy = BCPolicy(
            encoder, demos.action_space.shape[0], list(cfg.head.hidden), float(cfg.head.dropout), scaler
        ).to(device)
        self.obs = demos.step_observations()
        self.actions = scaler.normalize(torch.as_tensor(demos.actions)).to(device)
        self.embeddings: torch.Tensor | None = None
        if self.freeze:
            # A frozen φ is applied once to every demo observation; the head then trains on the latents.
            for p in encoder.parameters():
                p.requires_grad_(False)
            encoder.eval()
            with torch.no_grad():
                rows = np.arange(len(demos.actions))
                self.embeddings = torch.cat(
                    [
                        encoder(obs_to_torch(take(self.obs, r), device))
                        for r in np.array_split(rows, max(1, len(rows) // 512))
                    ]
                )
        params = [p for p in self.policy.parameters() if p.requires_grad]
        self.optimizer = torch.optim.Adam(params, lr=float(cfg.lr))
        self.batch_size = min(int(cfg.batch_size), len(self.actions))
        self.rng = np.random.default_rng(int(cfg.seed) + 1)
        self.step = 0

    def iterate(self) -> float:
        """One gradient step; its loss."""
        self.policy.train()
        if self.freeze:
            self.policy.encoder.eval()
        rows = self.rng.integers(0, len(self.actions), self.batch_size)
        if self.embeddings is not None:
            pred = self.policy.head(self.embeddings[rows])
        else:
            pred = self.policy(obs_to_torch(take(self.obs, rows), self.device))
        loss = F.mse_loss(pred, self.actions[rows])
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.step += 1
        return float(loss.detach())

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs."""
        return {
            "policy": self.policy.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "step": self.step,
            "rng": self.rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from a checkpoint's state."""
        self.policy.load_state_dict(state["policy"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = int(state["step"])
        self.rng.bit_generator.state = state["rng"]


def rollout_summary(result: dict[str, Any]) -> dict[str, Any]:
    """evaluate_policy's result as summary.json's eval/* keys."""
    returns = [float(r) for r in result["returns"]]
    out: dict[str, Any] = {
        "eval/mean_return": float(np.mean(returns)),
        "eval/std_return": float(np.std(returns)),
        "eval/episodes": len(returns),
        "eval/returns": returns,
        "eval/success_rate": float(result["success_rate"]),
        "eval/successes": [bool(s) for s in result.get("successes", [])],
    }
    skip = {"returns", "successes", "success_rate", "mean_return", "std_return", "episodes"}
    for key, value in result.items():
        if key not in skip and isinstance(value, int | float | np.number) and not isinstance(value, bool):
            out[f"eval/{key}"] = float(value)
    return out


def evaluate_bc(
    task_name: str, act: Callable[[Any], np.ndarray], contexts: np.ndarray, episodes: int, seed: int
) -> dict[str, Any]:
    """Rollouts of a stateless policy on `contexts` (episodes spread evenly over them)."""
    from robolearn.imitation.evaluation import evaluate_policy
    from robolearn.imitation.tasks import get_task

    task = get_task(task_name)
    per_context = max(1, int(np.ceil(episodes / len(contexts))))
    return rollout_summary(evaluate_policy(task, lambda: act, contexts, per_context, seed))


def eval_contexts(demos: DemoSet) -> np.ndarray:
    """The distinct contexts of the finetuning demos (the new task(s) the policy is tested on)."""
    if demos.contexts is None:
        raise UserError(f"{demos.path} has no infos['context'] to evaluate on; use eval.episodes=0")
    return np.unique(demos.contexts, axis=0)


def finetune_job(cfg: DictConfig, run_dir: Path, command: str, multirun: bool = False) -> dict[str, Any]:
    """One finetuning run (a Hydra task): validate, train in a LoopRun, save policy.pt, roll out."""
    from robolearn.runs.loop import LoopRun, run_loop_job

    def job() -> dict[str, Any]:
        from robolearn.imitation.pretrain import load_encoder
        from robolearn.runs.trainer import resolve_device
        from robolearn.utils.io import atomic_save_with
        from robolearn.utils.seeding import seed_everything

        full = complete_config(cfg)
        torch.set_num_threads(int(full.torch_threads))
        total = int(full.steps)
        with LoopRun(
            full, run_dir, command, total=total, unit="gradient steps", resumable_keys=("eval.",)
        ) as run:
            if run.completed is not None:
                return run.completed
            seed_everything(int(full.seed))
            encoder, record = load_encoder(str(full.encoder))
            demos = load_demos(str(full.data), full.task)
            check_same_spaces(f"the encoder {full.encoder}", record, demos)
            demos = select_demos(demos, full.finetune.context, full.finetune.demos)
            trainer = Finetuner(full, encoder, demos, resolve_device(str(full.device)))
            state = run.resume_state()  # last: it restores the global RNGs
            if state is not None:
                trainer.load_state_dict(state)
                run.note(f"resumed at step {trainer.step}")
            logged = run_steps(
                run,
                trainer,
                total,
                int(full.log_every),
                int(full.checkpoint.every),
                lambda step, losses: {"finetune/loss": float(np.mean(losses))},
            )
            last = logged.get("finetune/loss", float("nan"))
            policy = trainer.policy.cpu()
            atomic_save_with(run.run.root / POLICY_FILE, lambda p: torch.save(policy, p))
            summary: dict[str, Any] = {
                "steps": total,
                "finetune/loss": last,
                "finetune/demos": demos.num_episodes,
                "finetune/samples": demos.num_steps,
                "finetune/freeze": bool(full.finetune.freeze),
                "finetune/objective": record.get("objective"),
            }
            if int(full.eval.episodes) > 0:
                task = str(full.task or demos.task or "")
                if not task:
                    raise UserError(f"{demos.path} names no task; give task=<name> for the rollouts")
                summary.update(
                    evaluate_bc(
                        task, policy.act, eval_contexts(demos), int(full.eval.episodes), int(full.eval.seed)
                    )
                )
            return run.finish(summary)

    summary = run_loop_job(VERB, job, run_dir, multirun)
    if summary.get("eval/mean_return") is not None:
        print(
            f"finetune {summary.get('finetune/objective')} on {summary.get('finetune/demos')} demos, seed {cfg.seed}: "
            f"success {summary['eval/success_rate']:.2f}, return {summary['eval/mean_return']:.2f} over "
            f"{summary['eval/episodes']} episodes in {summary.get('wall_time_s', 0):.0f} s -> {run_dir}",
            flush=True,
        )
    return summary


HELP = verb_help(
    VERB,
    "encoder=<pretrain run dir> data=<dataset> [finetune.demos=<n>] [finetune.freeze=true|false] [key=value ...]",
    "Clone a new task with a pretrained encoder (Brandfonbrener et al., NeurIPS 2023): a BC head on the\n"
    "frozen encoder (default), or encoder and head trained together (finetune.freeze=false; the default for\n"
    "an objective=none encoder, i.e. BC from scratch). Rollouts on the demos' context(s) through the task's\n"
    "evaluate_policy. Writes a run directory (config.yaml, metrics.jsonl, checkpoints/, policy.pt,\n"
    "summary.json with eval/success_rate) that robolearn.report reads. docs/imitation.md.",
    [
        ("encoder", "a finished run directory of python -m robolearn.imitation.pretrain"),
        ("data", "the new task's demos (path or minari id); same task and spaces as the encoder's"),
        ("finetune.demos", "use the first n demos (default: all)"),
        ("finetune.context", "keep the demos of the i-th distinct context only (default: null, all)"),
        ("finetune.freeze", "true | false | auto (default: auto = frozen unless the objective was none)"),
        (
            "head.<key>",
            "hidden (default: [256, 256]), dropout (default: 0.1), the paper's policy-mlp-256-0.1",
        ),
        ("steps / batch_size / lr", "(default: 10000 / 256 / 1e-3, the paper's)"),
        ("eval.<key>", "episodes (0: no rollouts; default 20), seed"),
        ("seed", "the run's seed (default: 0)"),
        ("torch_threads", "torch CPU threads (default: 1)"),
        ("resume", "a run directory to continue (steps=N extends it)"),
        ("hydra.run.dir", "where the run directory goes (default: outputs/<date>/<time>_finetune)"),
    ],
    [
        "python -m robolearn.imitation.finetune encoder=<pretrain run> data=demos/pm_finetune finetune.demos=5",
        "python -m robolearn.imitation.finetune -m encoder=<run> data=demos/pm_finetune finetune.demos=1,2,5,10 seed=0,1,2",
        "python -m robolearn.imitation.finetune resume=<run dir>",
    ],
    script="robolearn-imitation-finetune",
)

main = verb_main(VERB, CONFIG_NAME, HELP, finetune_job, complete_config)


if __name__ == "__main__":
    main()
