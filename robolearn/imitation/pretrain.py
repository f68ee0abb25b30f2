"""`python -m robolearn.imitation.pretrain objective=<id|bc|contrastive|contrastive_noact|forward|none> data=<name>`.

Pretrains an observation encoder φ on multitask demonstrations whose task is hidden
(Brandfonbrener, Nachum, Bruna, NeurIPS 2023): inverse dynamics, multitask BC, contrastive (with
or without actions), latent forward dynamics, or none (robolearn/imitation/objectives.py). Writes a
resumable run directory: config.yaml, metrics.jsonl, checkpoints/, encoder.pt (φ with its input
statistics, the spaces and the data it saw) and summary.json (pretrain/loss, pretrain/heldout_loss).
`python -m robolearn.imitation.finetune encoder=<run dir> data=<new-task demos>` then clones a new
task on top of it.

Examples:
    python -m robolearn.imitation.pretrain objective=id data=demos/pm_pretrain
    python -m robolearn.imitation.pretrain -m objective=id,bc,contrastive,forward,none data=demos/pm_pretrain
    python -m robolearn.imitation.pretrain resume=<run dir>
"""

# ruff: noqa: E402 - the thread policy must be in the environment before the imports below load torch
from __future__ import annotations

from robolearn.threads import apply_thread_policy

apply_thread_policy()

from pathlib import Path
from typing import Any

import numpy as np
import torch
from omegaconf import DictConfig, OmegaConf

from robolearn.cli import verb_help
from robolearn.errors import UserError
from robolearn.imitation.data import DemoSet, load_demos, take
from robolearn.imitation.encoders import EncoderConfig, ObservationEncoder, obs_to_torch, state_stats
from robolearn.imitation.objectives import (
    ActionScaler,
    Objective,
    ObjectiveConfig,
    PairBatch,
    make_objective,
)
from robolearn.imitation.verbs import (
    check_common,
    check_dataset,
    check_top_keys,
    positive_float,
    positive_int,
    run_steps,
    verb_main,
)

VERB = "imitation.pretrain"
CONFIG_NAME = "pretrain"
ENCODER_FILE = "encoder.pt"
ENCODER_FORMAT = 1
_KNOWN_TOP = {
    "objective",
    "encoder",
    "data",
    "task",
    "seed",
    "steps",
    "batch_size",
    "lr",
    "weight_decay",
    "heldout_fraction",
    "device",
    "torch_threads",
    "resume",
    "log_every",
    "checkpoint",
    "logger",
    "method",
    "env",
}


def complete_config(cfg: DictConfig) -> DictConfig:
    """Validate a pretrain config (one-line errors naming the key), before any work."""
    check_top_keys(cfg, _KNOWN_TOP)
    check_common(cfg)
    check_dataset(cfg, "data")
    positive_int(cfg, "steps", 0)
    positive_int(cfg, "batch_size", 2)
    positive_int(cfg, "log_every")
    positive_int(cfg, "checkpoint.every")
    positive_float(cfg, "lr")
    frac = cfg.get("heldout_fraction")
    if not isinstance(frac, int | float) or not 0 <= frac < 1:
        raise UserError(f"heldout_fraction={frac} is out of range; use 0 <= fraction < 1")
    EncoderConfig.from_mapping(_plain(cfg.encoder))
    ObjectiveConfig.from_mapping(_plain(cfg.objective))
    return cfg


def _plain(node: Any) -> dict[str, Any]:
    out = OmegaConf.to_container(node, resolve=True)
    assert isinstance(out, dict)
    return {str(k): v for k, v in out.items()}


def save_encoder(
    path: Path, encoder: ObservationEncoder, demos: DemoSet, objective: str, extra: dict[str, Any]
) -> None:
    """encoder.pt: φ's weights and config, the spaces and task it was trained for, and where from."""
    from robolearn.datasets.spaces import serialize_space
    from robolearn.utils.io import atomic_save_with

    payload = {
        "format_version": ENCODER_FORMAT,
        "encoder_config": encoder.cfg.to_dict(),
        "state_dict": encoder.state_dict(),
        "observation_space": serialize_space(demos.observation_space),
        "action_space": serialize_space(demos.action_space),
        "task": demos.task,
        "objective": objective,
        "data": str(demos.path) if demos.path is not None else None,
        **extra,
    }
    atomic_save_with(path, lambda p: torch.save(payload, p))


def load_encoder(run_dir: str | Path) -> tuple[ObservationEncoder, dict[str, Any]]:
    """φ from a pretrain run directory (or an encoder.pt), with its saved record."""
    from robolearn.datasets.spaces import deserialize_space

    path = Path(run_dir)
    file = path / ENCODER_FILE if path.is_dir() else path
    if not file.is_file():
        raise UserError(
            f"encoder={run_dir} holds no {ENCODER_FILE}; give a finished run of python -m robolearn.imitation.pretrain"
        )
    try:
        saved = torch.load(file, map_location="cpu", weights_only=False)
    except Exception as exc:  # a truncated or foreign file: say which and how to fix it
        raise UserError(f"{file} cannot be read ({type(exc).__name__}); re-run the pretraining") from None
    if not isinstance(saved, dict) or saved.get("format_version") != ENCODER_FORMAT:
        raise UserError(f"{file} is not an encoder file of format {ENCODER_FORMAT}; re-run the pretraining")
    encoder = ObservationEncoder(
        deserialize_space(saved["observation_space"]), EncoderConfig.from_mapping(saved["encoder_config"])
    )
    encoder.load_state_dict(saved["state_dict"])
    return encoder, saved


class Pretrainer:
    """φ and an objective trained by Adam on (o_t, o_{t+k}, a_t) batches of the training episodes."""

    def __init__(self, cfg: DictConfig, demos: DemoSet, device: str) -> None:
        self.device = device
        self.demos = demos
        self.objective_cfg = ObjectiveConfig.from_mapping(_plain(cfg.objective))
        encoder = ObservationEncoder(demos.observation_space, EncoderConfig.from_mapping(_plain(cfg.encoder)))
        stats = state_stats(demos.step_observations())
        if stats is not None:
            encoder.set_state_stats(*stats)
        self.scaler = ActionScaler(demos.action_space, demos.actions).to(device)
        self.objective: Objective = make_objective(
            encoder, demos.action_space.shape[0], self.objective_cfg
        ).to(device)
        self.encoder = encoder
        # Held-out episodes (not steps): the loss on them says whether φ generalises across demos.
        rng = np.random.default_rng(int(cfg.seed))
        order = rng.permutation(demos.num_episodes)
        held = round(float(cfg.heldout_fraction) * demos.num_episodes) if demos.num_episodes > 1 else 0
        self.train_set = demos.subset(np.sort(order[held:]))
        self.heldout_set = demos.subset(np.sort(order[:held])) if held > 0 else None
        self.index = self.train_set.pair_index(self.objective_cfg.nstep)
        params = [p for p in self.objective.parameters() if p.requires_grad]
        self.optimizer = (
            torch.optim.Adam(params, lr=float(cfg.lr), weight_decay=float(cfg.weight_decay))
            if params
            else None
        )
        self.batch_size = min(int(cfg.batch_size), len(self.index[0]))
        self.rng = np.random.default_rng(int(cfg.seed) + 1)
        self.step = 0

    def batch(
        self, demos: DemoSet, index: tuple[np.ndarray, np.ndarray, np.ndarray], rows: np.ndarray
    ) -> PairBatch:
        """Tensors of the pairs at `rows` of a pair index."""
        now, later, act = index
        action = torch.as_tensor(demos.actions[act[rows]], device=self.device)
        return PairBatch(
            obs_to_torch(take(demos.observations, now[rows]), self.device),
            obs_to_torch(take(demos.observations, later[rows]), self.device),
            self.scaler.normalize(action),
        )

    def iterate(self) -> dict[str, float]:
        """One gradient step; the loss and the objective's scalars."""
        self.objective.train()
        rows = self.rng.integers(0, len(self.index[0]), self.batch_size)
        loss, info = self.objective.loss(self.batch(self.train_set, self.index, rows))
        if self.optimizer is not None:
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            self.objective.after_step()
        self.step += 1
        return {"loss": float(loss.detach()), **info}

    @torch.no_grad()
    def heldout_loss(self, max_pairs: int = 2048) -> float | None:
        """The objective's loss on held-out episodes (eval mode; None without a held-out split)."""
        if self.heldout_set is None:
            return None
        self.objective.eval()
        index = self.heldout_set.pair_index(self.objective_cfg.nstep)
        rows = np.arange(min(len(index[0]), max_pairs))
        losses = []
        for chunk in np.array_split(rows, max(1, len(rows) // self.batch_size)):
            losses.append(float(self.objective.loss(self.batch(self.heldout_set, index, chunk))[0]))
        return float(np.mean(losses))

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs."""
        return {
            "objective": self.objective.state_dict(),
            "optimizer": None if self.optimizer is None else self.optimizer.state_dict(),
            "step": self.step,
            "rng": self.rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from a checkpoint's state."""
        self.objective.load_state_dict(state["objective"])
        if self.optimizer is not None and state["optimizer"] is not None:
            self.optimizer.load_state_dict(state["optimizer"])
        self.step = int(state["step"])
        self.rng.bit_generator.state = state["rng"]


def pretrain_job(cfg: DictConfig, run_dir: Path, command: str, multirun: bool = False) -> dict[str, Any]:
    """One pretraining run (a Hydra task): validate, train in a LoopRun, save encoder.pt."""
    from robolearn.runs.loop import LoopRun, run_loop_job

    def job() -> dict[str, Any]:
        from robolearn.runs.trainer import resolve_device
        from robolearn.utils.seeding import seed_everything

        full = complete_config(cfg)
        torch.set_num_threads(int(full.torch_threads))
        name = str(full.objective.name)
        total = 0 if name == "none" else int(full.steps)
        with LoopRun(full, run_dir, command, total=total, unit="gradient steps") as run:
            if run.completed is not None:
                return run.completed
            seed_everything(int(full.seed))
            demos = load_demos(str(full.data), full.task)
            trainer = Pretrainer(full, demos, resolve_device(str(full.device)))
            state = run.resume_state()  # last: it restores the global RNGs
            if state is not None:
                trainer.load_state_dict(state)
                run.note(f"resumed at step {trainer.step}")
            log_every = int(full.log_every)

            def scalars(step: int, window: list[dict[str, float]]) -> dict[str, float]:
                out = {f"pretrain/{k}": float(np.mean([w[k] for w in window])) for k in window[0]}
                heldout = trainer.heldout_loss() if step % (10 * log_every) == 0 or step == total else None
                if heldout is not None:
                    out["pretrain/heldout_loss"] = heldout
                return out

            last = run_steps(run, trainer, total, log_every, int(full.checkpoint.every), scalars)
            heldout = trainer.heldout_loss() if name != "none" else None  # none has no loss to hold out
            save_encoder(
                run.run.root / ENCODER_FILE,
                trainer.encoder.cpu(),
                demos,
                name,
                {"nstep": trainer.objective_cfg.nstep, "steps": total, "heldout_loss": heldout},
            )
            summary: dict[str, Any] = {
                "steps": total,
                "pretrain/objective": name,
                "pretrain/loss": last.get("pretrain/loss"),
                "pretrain/heldout_loss": heldout,
                "pretrain/episodes": demos.num_episodes,
                "pretrain/samples": demos.num_steps,
                "encoder/parameters": int(sum(p.numel() for p in trainer.encoder.parameters())),
            }
            return run.finish(summary)

    summary = run_loop_job(VERB, job, run_dir, multirun)
    loss = summary.get("pretrain/heldout_loss")
    print(
        f"pretrain {cfg.objective.name} on {summary.get('pretrain/episodes')} demos of {cfg.data}, seed {cfg.seed}: "
        f"{summary.get('steps')} steps, held-out loss {'-' if loss is None else f'{loss:.4f}'} "
        f"in {summary.get('wall_time_s', 0):.0f} s -> {run_dir}",
        flush=True,
    )
    return summary


HELP = verb_help(
    VERB,
    "objective=<id|bc|contrastive|contrastive_noact|forward|none> data=<dataset> [key=value ...]",
    "Pretrain an observation encoder on multitask demonstrations (Brandfonbrener et al., NeurIPS 2023):\n"
    "inverse dynamics (a_t from phi(o_t), phi(o_t+k)), multitask BC, contrastive with or without actions,\n"
    "latent forward dynamics, or none. Writes a run directory (config.yaml, metrics.jsonl, checkpoints/,\n"
    "encoder.pt, summary.json with pretrain/heldout_loss) for robolearn.imitation.finetune. Ctrl-C saves\n"
    "a checkpoint and prints the resume= command. docs/imitation.md.",
    [
        (
            "objective",
            "id | bc | contrastive | contrastive_noact | forward | none (configs/imitation/objective/)",
        ),
        ("objective.<key>", "nstep, head_hidden, dropout, projection_dim, temperature, augment, ema"),
        ("data", "a demonstration dataset path or minari id (robolearn.imitation.collect writes them)"),
        ("task", "the task the demos must be of (default: any; checked against the dataset's provenance)"),
        (
            "encoder.<key>",
            "latent_dim, conv_channels, conv_strides, keypoints, state_hidden, normalize, keys",
        ),
        ("steps", "gradient steps (default: 10000, the paper's)"),
        ("batch_size / lr", "(default: 256 / 1e-3, the paper's)"),
        ("heldout_fraction", "episodes kept out for pretrain/heldout_loss (default: 0.1)"),
        ("seed", "the run's seed (default: 0)"),
        ("torch_threads", "torch CPU threads (default: 1)"),
        ("device", "cpu | cuda | auto (default: cpu)"),
        ("resume", "a run directory to continue (steps=N extends it)"),
        (
            "hydra.run.dir",
            "where the run directory goes (default: outputs/<date>/<time>_pretrain_<objective>)",
        ),
    ],
    [
        "python -m robolearn.imitation.pretrain objective=id data=demos/pm_pretrain",
        "python -m robolearn.imitation.pretrain -m objective=id,bc,contrastive,forward,none data=demos/pm_pretrain",
        "python -m robolearn.imitation.pretrain resume=<run dir> steps=20000",
    ],
    script="robolearn-imitation-pretrain",
)

main = verb_main(VERB, CONFIG_NAME, HELP, pretrain_job, complete_config)


if __name__ == "__main__":
    main()
