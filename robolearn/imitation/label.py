"""`python -m robolearn.imitation.label labeled=<dataset> unlabeled=<dataset> out=<dataset>`: IDM pseudo-labels.

VPT-style labelling (Baker et al., "Video PreTraining", NeurIPS 2022, Sec. 3): a NON-causal inverse
dynamics model, which sees a window of past and future observations o_{t-p..t+f} around step t,
is trained on a small labelled dataset to predict a_t, then labels a larger action-free dataset.
The unlabelled dataset's own actions are never read for training or labelling (our datasets always
store an action array; here it is ignored, and used only afterwards to report how far the pseudo-
labels are from it, as an analysis figure like the hidden context). The output is a new dataset
with the pseudo-labels as actions and the rest copied, whose provenance records the IDM run and its
held-out action error. BC on it (python -m robolearn.imitation.finetune, or imitation.train) is then
compared with BC on the labelled set alone and on the fully labelled set (benchmarks/imitation_pretrain.py).

Examples:
    python -m robolearn.imitation.label labeled=demos/pm_few unlabeled=demos/pm_many out=demos/pm_many_idm
    python -m robolearn.imitation.label labeled=... unlabeled=... out=... idm.past=2 idm.future=2 'encoder.keys=[pixels]'
"""

# ruff: noqa: E402 - the thread policy must be in the environment before the imports below load torch
from __future__ import annotations

from robolearn.threads import apply_thread_policy

apply_thread_policy()

from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from omegaconf import DictConfig, OmegaConf
from torch import nn

from robolearn.cli import verb_help
from robolearn.errors import UserError
from robolearn.imitation.data import DemoSet, check_same_spaces, load_demos, take
from robolearn.imitation.encoders import EncoderConfig, ObservationEncoder, mlp, obs_to_torch, state_stats
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

VERB = "imitation.label"
CONFIG_NAME = "label"
IDM_FILE = "idm.pt"
_KNOWN_TOP = {
    "labeled",
    "unlabeled",
    "out",
    "overwrite",
    "task",
    "idm",
    "encoder",
    "seed",
    "steps",
    "batch_size",
    "lr",
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


class NonCausalIDM(nn.Module):
    """a_t from [φ(o_{t-p}), ..., φ(o_t), ..., φ(o_{t+f})]: each frame encoded by one shared φ."""

    def __init__(
        self,
        encoder: ObservationEncoder,
        act_dim: int,
        past: int,
        future: int,
        hidden: list[int],
        dropout: float,
        scaler: ActionScaler,
    ) -> None:
        super().__init__()
        self.encoder = encoder
        self.offsets = list(range(-past, future + 1))
        self.head = mlp(encoder.latent_dim * len(self.offsets), hidden, act_dim, dropout)
        self.scaler = scaler

    def forward(self, frames: Any) -> torch.Tensor:
        """(B, W, ...) observation windows -> (B, act_dim) normalised actions."""
        z = self.encoder(frames)  # (B, W, latent)
        return self.head(z.flatten(1))

    @torch.no_grad()
    def label(self, demos: DemoSet, batch: int = 512) -> np.ndarray:
        """Pseudo-labels (environment units) for every step of `demos`, ignoring their actions."""
        self.eval()
        index = demos.frame_index(self.offsets)
        out = []
        for rows in np.array_split(np.arange(len(index)), max(1, len(index) // batch)):
            pred = self(obs_to_torch(take(demos.observations, index[rows])))
            out.append(self.scaler.unnormalize(pred).numpy())
        return np.concatenate(out).astype(np.float32)


def complete_config(cfg: DictConfig) -> DictConfig:
    """Validate a label config (one-line errors naming the key), before any work."""
    check_top_keys(cfg, _KNOWN_TOP)
    check_common(cfg)
    check_dataset(cfg, "labeled")
    check_dataset(cfg, "unlabeled")
    if OmegaConf.is_missing(cfg, "out") or not cfg.get("out"):
        raise UserError("out= is missing; give a folder or a minari id for the pseudo-labelled dataset")
    positive_int(cfg, "steps", 1)
    positive_int(cfg, "batch_size", 2)
    positive_int(cfg, "log_every")
    positive_int(cfg, "checkpoint.every")
    positive_int(cfg, "idm.past", 0)
    positive_int(cfg, "idm.future", 1)
    positive_float(cfg, "lr")
    frac = cfg.get("heldout_fraction")
    if not isinstance(frac, int | float) or not 0 <= frac < 1:
        raise UserError(f"heldout_fraction={frac} is out of range; use 0 <= fraction < 1")
    EncoderConfig.from_mapping(_plain(cfg.encoder))
    return cfg


def _plain(node: Any) -> dict[str, Any]:
    out = OmegaConf.to_container(node, resolve=True)
    assert isinstance(out, dict)
    return {str(k): v for k, v in out.items()}


class IDMTrainer:
    """The non-causal IDM trained by Adam on MSE to normalised actions of the labelled episodes."""

    def __init__(self, cfg: DictConfig, labeled: DemoSet, device: str) -> None:
        self.device = device
        encoder = ObservationEncoder(
            labeled.observation_space, EncoderConfig.from_mapping(_plain(cfg.encoder))
        )
        stats = state_stats(labeled.step_observations())
        if stats is not None:
            encoder.set_state_stats(*stats)
        scaler = ActionScaler(labeled.action_space, labeled.actions)
        self.idm = NonCausalIDM(
            encoder,
            labeled.action_space.shape[0],
            int(cfg.idm.past),
            int(cfg.idm.future),
            list(cfg.idm.hidden),
            float(cfg.idm.dropout),
            scaler,
        ).to(device)
        rng = np.random.default_rng(int(cfg.seed))
        order = rng.permutation(labeled.num_episodes)
        held = round(float(cfg.heldout_fraction) * labeled.num_episodes) if labeled.num_episodes > 1 else 0
        self.train_set = labeled.subset(np.sort(order[held:]))
        self.heldout_set = labeled.subset(np.sort(order[:held])) if held > 0 else None
        self.index = self.train_set.frame_index(self.idm.offsets)
        self.targets = scaler.normalize(torch.as_tensor(self.train_set.actions)).to(device)
        self.optimizer = torch.optim.Adam(self.idm.parameters(), lr=float(cfg.lr))
        self.batch_size = min(int(cfg.batch_size), len(self.index))
        self.rng = np.random.default_rng(int(cfg.seed) + 1)
        self.step = 0

    def iterate(self) -> float:
        """One gradient step; its loss."""
        self.idm.train()
        rows = self.rng.integers(0, len(self.index), self.batch_size)
        pred = self.idm(obs_to_torch(take(self.train_set.observations, self.index[rows]), self.device))
        loss = F.mse_loss(pred, self.targets[rows])
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        self.step += 1
        return float(loss.detach())

    def heldout_error(self) -> dict[str, float]:
        """Action MSE and MAE (environment units) on the held-out labelled episodes."""
        if self.heldout_set is None:
            return {}
        return action_error(self.idm.label(self.heldout_set), self.heldout_set.actions)

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs."""
        return {
            "idm": self.idm.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "step": self.step,
            "rng": self.rng.bit_generator.state,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore from a checkpoint's state."""
        self.idm.load_state_dict(state["idm"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.step = int(state["step"])
        self.rng.bit_generator.state = state["rng"]


def action_error(pred: np.ndarray, true: np.ndarray) -> dict[str, float]:
    """MSE and MAE between predicted and true actions, and the MSE of always predicting their mean."""
    return {
        "mse": float(np.mean((pred - true) ** 2)),
        "mae": float(np.mean(np.abs(pred - true))),
        "mean_baseline_mse": float(np.mean((true - true.mean(0)) ** 2)),
    }


def write_labeled(
    out: str, source: str, labels: np.ndarray, provenance: dict[str, Any], overwrite: bool
) -> Path:
    """A copy of dataset `source` with `labels` (flat, in step order) as its actions."""
    from robolearn.datasets import Episode, load_dataset, write_dataset

    data = load_dataset(source)
    episodes, start = [], 0
    for ep in data.episodes:
        episodes.append(
            Episode(
                observations=ep.observations,
                actions=labels[start : start + ep.steps].reshape(ep.actions.shape),
                rewards=ep.rewards,
                terminations=ep.terminations,
                truncations=ep.truncations,
                infos=ep.infos,
                seed=ep.seed,
            )
        )
        start += ep.steps
    name = data.dataset_id.rsplit("-v", 1)
    return write_dataset(
        out,
        episodes,
        dataset_id=f"{name[0]}-idm-v{name[1] if len(name) > 1 else 0}",
        observation_space=data.observation_space,
        action_space=data.action_space,
        env_id=data.env_id,
        env_kwargs=data.env_kwargs or None,
        ref_min_score=data.ref_min_score,
        ref_max_score=data.ref_max_score,
        description=f"{source} with actions replaced by non-causal IDM pseudo-labels",
        algorithm_name="idm_pseudo_labels",
        provenance={**data.provenance, **provenance},
        overwrite=overwrite,
    )


def label_job(cfg: DictConfig, run_dir: Path, command: str, multirun: bool = False) -> dict[str, Any]:
    """One labelling run (a Hydra task): train the IDM in a LoopRun, label, write the new dataset."""
    from robolearn.runs.loop import LoopRun, run_loop_job

    def job() -> dict[str, Any]:
        from robolearn.runs.trainer import resolve_device
        from robolearn.utils.io import atomic_save_with
        from robolearn.utils.seeding import seed_everything

        full = complete_config(cfg)
        torch.set_num_threads(int(full.torch_threads))
        total = int(full.steps)
        with LoopRun(full, run_dir, command, total=total, unit="gradient steps") as run:
            if run.completed is not None:
                return run.completed
            seed_everything(int(full.seed))
            labeled = load_demos(str(full.labeled), full.task)
            unlabeled = load_demos(str(full.unlabeled), full.task)
            check_same_spaces(f"labeled={full.labeled}", labeled, unlabeled)
            trainer = IDMTrainer(full, labeled, resolve_device(str(full.device)))
            state = run.resume_state()  # last: it restores the global RNGs
            if state is not None:
                trainer.load_state_dict(state)
                run.note(f"resumed at step {trainer.step}")
            run_steps(
                run,
                trainer,
                total,
                int(full.log_every),
                int(full.checkpoint.every),
                lambda step, losses: {"idm/loss": float(np.mean(losses))},
            )
            idm = trainer.idm.cpu()
            atomic_save_with(run.run.root / IDM_FILE, lambda p: torch.save(idm, p))
            heldout = trainer.heldout_error()
            labels = idm.label(unlabeled)
            # Analysis only: how far the pseudo-labels are from the actions the labeller never read.
            versus_true = action_error(labels, unlabeled.actions)
            provenance = {
                "labels": "idm",
                "idm_run": str(run.run.root.resolve()),
                "idm_window": {"past": int(full.idm.past), "future": int(full.idm.future)},
                "idm_heldout_action_mse": heldout.get("mse"),
                "idm_heldout_action_mae": heldout.get("mae"),
                "labeled_from": str(labeled.path),
                "labeled_episodes": labeled.num_episodes,
                "unlabeled_from": str(unlabeled.path),
                "pseudo_label_mse_vs_true": versus_true["mse"],
                "command": command,
            }
            out = write_labeled(str(full.out), str(full.unlabeled), labels, provenance, bool(full.overwrite))
            summary: dict[str, Any] = {
                "steps": total,
                "label/heldout_action_mse": heldout.get("mse"),
                "label/heldout_action_mae": heldout.get("mae"),
                "label/heldout_mean_baseline_mse": heldout.get("mean_baseline_mse"),
                "label/pseudo_vs_true_mse": versus_true["mse"],
                "label/pseudo_vs_true_mae": versus_true["mae"],
                "label/true_mean_baseline_mse": versus_true["mean_baseline_mse"],
                "label/labeled_episodes": labeled.num_episodes,
                "label/unlabeled_episodes": unlabeled.num_episodes,
                "label/out": str(out),
            }
            return run.finish(summary)

    summary = run_loop_job(VERB, job, run_dir, multirun)
    mse = summary.get("label/heldout_action_mse")
    print(
        f"IDM on {summary.get('label/labeled_episodes')} labelled demos labelled {summary.get('label/unlabeled_episodes')} "
        f"(held-out action MSE {'-' if mse is None else f'{mse:.4f}'}; vs the ignored true actions "
        f"{summary.get('label/pseudo_vs_true_mse', float('nan')):.4f}) -> {summary.get('label/out')}",
        flush=True,
    )
    return summary


HELP = verb_help(
    VERB,
    "labeled=<dataset> unlabeled=<dataset> out=<dataset> [key=value ...]",
    "Label action-free demonstrations with a non-causal inverse dynamics model (VPT, Baker et al. 2022):\n"
    "an IDM that sees observations t-p..t+f is trained on the labelled demos, then predicts the actions\n"
    "of every step of the unlabelled demos (whose own actions are ignored). Writes the pseudo-labelled\n"
    "dataset to out= (provenance: the IDM run and its held-out action error) and a run directory\n"
    "(idm.pt, summary.json with label/heldout_action_mse). docs/imitation.md.",
    [
        ("labeled", "the small dataset with actions (path or minari id)"),
        ("unlabeled", "the larger dataset to label (its actions are not read)"),
        ("out", "where the pseudo-labelled dataset goes (folder or minari id); overwrite=true replaces it"),
        ("idm.<key>", "past (default 1), future (default 1, >= 1), hidden, dropout"),
        ("encoder.<key>", "as in imitation.pretrain: latent_dim, conv_channels, keys, ..."),
        ("steps / batch_size / lr", "(default: 3000 / 256 / 1e-3)"),
        ("heldout_fraction", "labelled episodes kept out for the held-out action error (default: 0.2)"),
        ("seed", "the run's seed (default: 0)"),
        ("resume", "a run directory to continue"),
    ],
    [
        "python -m robolearn.imitation.label labeled=demos/pm_few unlabeled=demos/pm_many out=demos/pm_many_idm",
        "python -m robolearn.imitation.label labeled=demos/pm_few unlabeled=demos/pm_many out=demos/x idm.past=0 idm.future=1",
    ],
    script="robolearn-imitation-label",
)

main = verb_main(VERB, CONFIG_NAME, HELP, label_job, complete_config)


if __name__ == "__main__":
    main()
