"""`python -m robolearn.imitation.train policy=<diffusion|bc> data=<dataset> [key=value ...]`.

Trains an action-chunk policy (a diffusion policy with a U-Net or transformer denoiser, or MSE
behaviour cloning; robolearn/imitation/diffusion/policy.py) on a demonstration dataset, evaluates
it by rollouts in the dataset's imitation task, and writes a resumable run directory: config.yaml,
metrics.jsonl, checkpoints/, policy.pt (the EMA weights with the normalisers) and summary.json
(eval/mean_return, eval/success_rate, train/samples_per_s).

Examples:
    python -m robolearn.imitation.train data=demos/bimodal                      # diffusion, U-Net
    python -m robolearn.imitation.train policy=bc data=demos/bimodal seed=1
    python -m robolearn.imitation.train data=demos/bimodal policy.denoiser=transformer
    python -m robolearn.imitation.train -m policy=bc,diffusion seed=0,1,2 data=demos/bimodal
    python -m robolearn.imitation.train resume=<run dir>
"""

# ruff: noqa: E402 - the thread policy must be in the environment before the imports below load torch
from __future__ import annotations

from robolearn.threads import apply_thread_policy

apply_thread_policy()

import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf, open_dict

from robolearn.cli import verb_help
from robolearn.errors import UserError
from robolearn.imitation.verbs import (
    check_common,
    check_dataset,
    check_top_keys,
    positive_int,
    run_steps,
    verb_main,
)

VERB = "imitation.train"
# configs/imitation/train.yaml: this verb's groups live under configs/imitation/ (policy/).
CONFIG_NAME = "train"
_KNOWN_TOP = {
    "policy",
    "data",
    "task",
    "seed",
    "steps",
    "batch_size",
    "device",
    "torch_threads",
    "resume",
    "log_every",
    "checkpoint",
    "eval",
    "logger",
    "method",
    "env",
}


def check_policy_node(policy: DictConfig) -> None:
    """One-line errors for a policy node's horizons, denoiser and sampler."""
    from robolearn.imitation.diffusion.policy import DENOISERS, KINDS, SAMPLERS

    name = policy.get("name")
    if name not in KINDS:
        raise UserError(f"policy={name} is not known; choose one of {', '.join(KINDS)}")
    root = OmegaConf.create({"policy": policy})
    for key in ("obs_horizon", "pred_horizon", "action_horizon"):
        positive_int(root, f"policy.{key}")
    if policy.action_horizon > policy.pred_horizon:
        raise UserError(
            f"policy.action_horizon={policy.action_horizon} exceeds policy.pred_horizon={policy.pred_horizon}; "
            "execute at most the predicted chunk"
        )
    if name == "diffusion":
        if policy.denoiser not in DENOISERS:
            raise UserError(
                f"policy.denoiser={policy.denoiser} is not known; choose one of {', '.join(DENOISERS)}"
            )
        if policy.diffusion.sampler not in SAMPLERS:
            raise UserError(
                f"policy.diffusion.sampler={policy.diffusion.sampler} is not known; choose one of {', '.join(SAMPLERS)}"
            )
        positive_int(root, "policy.diffusion.train_steps")
        steps = positive_int(root, "policy.diffusion.inference_steps")
        if steps > policy.diffusion.train_steps:
            raise UserError(
                f"policy.diffusion.inference_steps={steps} exceeds policy.diffusion.train_steps="
                f"{policy.diffusion.train_steps}; sample with at most as many steps as trained"
            )
        if policy.denoiser == "unet":
            levels = len(policy.unet.down_dims)
            if levels < 1 or policy.pred_horizon % (2 ** (levels - 1)):
                raise UserError(
                    f"policy.pred_horizon={policy.pred_horizon} must divide by {2 ** (levels - 1)} for a U-Net "
                    f"with {levels} levels (policy.unet.down_dims); change one of them"
                )
        if policy.denoiser == "transformer" and policy.transformer.embed_dim % policy.transformer.heads:
            raise UserError(
                f"policy.transformer.embed_dim={policy.transformer.embed_dim} must divide by "
                f"policy.transformer.heads={policy.transformer.heads}"
            )
    if float(policy.optim.lr) <= 0 or not math.isfinite(float(policy.optim.lr)):
        raise UserError(f"policy.optim.lr={policy.optim.lr} must be a positive number")


def validate_train_config(cfg: DictConfig) -> None:
    """Every check that does not read the dataset: keys, ranges, the policy node, the device, that
    the dataset exists."""
    check_top_keys(cfg, _KNOWN_TOP)
    check_dataset(cfg, "data")
    check_common(cfg)
    positive_int(cfg, "steps")
    positive_int(cfg, "batch_size")
    positive_int(cfg, "log_every")
    positive_int(cfg, "checkpoint.every")
    positive_int(cfg, "eval.contexts", 0)
    positive_int(cfg, "eval.episodes_per_context")
    check_policy_node(cfg.policy)
    from robolearn.errors import require_extra

    require_extra("robolearn.imitation.train", "diffusers")


def complete_config(cfg: DictConfig) -> DictConfig:
    """Validate `cfg`, open the dataset (one-line errors) and fill `task` and `eval.split` from its
    provenance; the result is what the run saves."""
    validate_train_config(cfg)
    out = OmegaConf.create(OmegaConf.to_container(cfg, resolve=False))
    assert isinstance(out, DictConfig)
    demos = _open_dataset(str(cfg.data))
    if isinstance(demos.observations, dict) and "pixels" not in demos.observations:
        raise UserError(
            f"data={cfg.data} has Dict observations without pixels ({', '.join(demos.observations)}); "
            "imitation.train reads a state vector or a Dict with pixels"
        )
    provenance = demos.provenance
    recorded = provenance.get("task")
    if cfg.get("task") is not None and recorded is not None and str(cfg.task) != str(recorded):
        raise UserError(
            f"task={cfg.task} differs from data={cfg.data}'s task {recorded}; drop task= or collect {cfg.task} demos"
        )
    with open_dict(out):
        if out.get("task") is None and provenance.get("task") is not None:
            out.task = str(provenance["task"])
        if out.eval.get("split") is None and provenance.get("split") is not None:
            out.eval.split = str(provenance["split"])
    if int(out.eval.contexts) > 0:
        if out.get("task") is None:
            raise UserError(
                f"data={cfg.data} names no task in its provenance; give task=<name> for the evaluation "
                "rollouts, or eval.contexts=0 to train without them"
            )
        _check_task_spaces(_task(str(out.task)), demos, str(cfg.data))
    return out


def _check_task_spaces(task: Any, demos: Any, data: str) -> None:
    """The task's env must take the dataset's observation and action shapes (rollouts would fail late)."""
    env = task.make_env(task.sample_contexts(1, "pretrain", 0)[0])
    try:
        for what, mine, theirs in (
            ("observation", demos.observation_space, env.observation_space),
            ("action", demos.action_space, env.action_space),
        ):
            if getattr(mine, "shape", None) != getattr(theirs, "shape", None):
                raise UserError(
                    f"data={data} has {what} shape {getattr(mine, 'shape', None)}, task {task.name}'s env "
                    f"{getattr(theirs, 'shape', None)}; give the task the demos came from (task=...)"
                )
    finally:
        env.close()


def _open_dataset(name: str) -> Any:
    from robolearn.imitation.data import load_demos

    return load_demos(name)


def _task(name: str) -> Any:
    from robolearn.imitation.tasks import get_task

    return get_task(name)


def demo_arrays(demos: Any, obs_horizon: int, pred_horizon: int) -> tuple[np.ndarray, np.ndarray]:
    """(N, To, obs_dim) histories and (N, Tp, A) chunks, one per demo step (robolearn.imitation.data's
    windows: the chunk starts at the current step, padded at episode edges as Diffusion Policy does)."""
    if isinstance(demos.observations, dict):
        raise UserError(f"data={demos.path} has pixel (Dict) observations; use demo_windows for them")
    obs, act = demos.windows(obs_horizon, pred_horizon)
    return np.asarray(obs, dtype=np.float32), np.asarray(act, dtype=np.float32)


class PixelWindows:
    """Pixel demos for training without float copies: the flat uint8 frames and float32 states,
    and (N, To) indices of each window's history into them; a batch is gathered per step."""

    def __init__(self, demos: Any, obs_horizon: int, pred_horizon: int) -> None:
        obs_idx, act_idx = demos.window_index(obs_horizon, pred_horizon)
        observations = demos.observations
        self.frames: dict[str, np.ndarray] = {"pixels": np.asarray(observations["pixels"], dtype=np.uint8)}
        if "state" in observations:
            self.frames["state"] = np.asarray(observations["state"], dtype=np.float32)
        self.index = np.asarray(obs_idx, dtype=np.int64)
        self.actions = np.asarray(demos.actions[act_idx], dtype=np.float32)

    def __len__(self) -> int:
        return len(self.index)

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        """Each key's per-frame shape (the policy's obs_shapes)."""
        return {k: tuple(v.shape[1:]) for k, v in self.frames.items()}

    def state_windows(self) -> np.ndarray:
        """(N, To, n) state histories, for the state normaliser (small: the state is a few floats)."""
        if "state" not in self.frames:
            return np.zeros((len(self), self.index.shape[1], 0), np.float32)
        return self.frames["state"][self.index]


def demo_windows(
    demos: Any, obs_horizon: int, pred_horizon: int
) -> tuple[np.ndarray | PixelWindows, np.ndarray]:
    """Training windows: (N, To, obs_dim) float histories for state demos (demo_arrays), or
    PixelWindows (indices into the uint8 frames) for pixel demos, and the (N, Tp, A) chunks."""
    if isinstance(demos.observations, dict):
        windows = PixelWindows(demos, obs_horizon, pred_horizon)
        return windows, windows.actions
    return demo_arrays(demos, obs_horizon, pred_horizon)


def lr_factor(step: int, warmup: int, total: int) -> float:
    """Linear warm-up to 1, then cosine decay to 0 at `total` (the paper's schedule)."""
    if step < warmup:
        return (step + 1) / warmup
    progress = min(1.0, (step - warmup) / max(1, total - warmup))
    return 0.5 * (1.0 + math.cos(math.pi * progress))


class Trainer:
    """The training state of one run: policy, EMA copy, optimiser, the batch/noise generator."""

    def __init__(self, cfg: DictConfig, obs: np.ndarray | PixelWindows, act: np.ndarray, device: str) -> None:
        import torch

        from robolearn.imitation.diffusion.policy import build_policy

        spec = OmegaConf.to_container(cfg.policy, resolve=True)
        assert isinstance(spec, dict)
        self.device = device
        # Pixel demos: the frames stay uint8 on the device and each batch is gathered through the
        # window indices, so memory holds one copy of the dataset, not To float copies of it.
        self.frames: dict[str, Any] | None = None
        self.index: Any = None
        if isinstance(obs, PixelWindows):
            state = obs.state_windows()
            self.policy = build_policy(spec, state.shape[-1], act.shape[-1], obs.shapes)  # type: ignore[arg-type]
            self.policy.fit_normalizers(state, act)
            self.frames = {k: torch.from_numpy(v).to(device) for k, v in obs.frames.items()}
            self.index = torch.from_numpy(obs.index).to(device)
        else:
            self.policy = build_policy(spec, obs.shape[-1], act.shape[-1])  # type: ignore[arg-type]
            self.policy.fit_normalizers(obs, act)
            self.obs = torch.from_numpy(obs).to(device)
        self.policy.to(device)
        self.act = torch.from_numpy(act).to(device)
        optim = cfg.policy.optim
        self.optimizer = torch.optim.AdamW(
            self.policy.parameters(),
            lr=float(optim.lr),
            weight_decay=float(optim.weight_decay),
            betas=(float(optim.betas[0]), float(optim.betas[1])),
        )
        warmup, total = int(optim.warmup_steps), int(cfg.steps)
        self.schedule = torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda s: lr_factor(s, warmup, total)
        )
        self.grad_clip = float(optim.grad_clip)
        self.batch_size = int(cfg.batch_size)
        self.generator = torch.Generator(device=device).manual_seed(int(cfg.seed))
        self.ema: Any = None
        if bool(cfg.policy.ema.enabled):
            from diffusers.training_utils import EMAModel

            self.ema = EMAModel(
                self.policy.parameters(),
                decay=float(cfg.policy.ema.max_decay),
                use_ema_warmup=True,
                power=float(cfg.policy.ema.power),
                inv_gamma=1.0,
            )
        self.step = 0

    def iterate(self) -> float:
        """One gradient step on a random batch; returns the loss."""
        import torch

        self.policy.train()
        idx = torch.randint(
            0, len(self.act), (self.batch_size,), generator=self.generator, device=self.device
        )
        loss = self.policy.loss(self.batch_obs(idx), self.act[idx], self.generator)
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if self.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.policy.parameters(), self.grad_clip)
        self.optimizer.step()
        self.schedule.step()
        if self.ema is not None:
            self.ema.step(self.policy.parameters())
        self.step += 1
        return float(loss.detach())

    def batch_obs(self, idx: Any) -> Any:
        """The observation histories of windows `idx`: a (B, To, obs_dim) tensor, or for pixel demos
        a dict of (B, To, H, W, 3) uint8 pixels and (B, To, n) states gathered now."""
        if self.frames is None:
            return self.obs[idx]
        rows = self.index[idx]
        return {k: v[rows] for k, v in self.frames.items()}

    def final_policy(self) -> Any:
        """The policy with the EMA weights (when EMA is on), in eval mode."""
        if self.ema is not None:
            self.ema.copy_to(self.policy.parameters())
        return self.policy.eval()

    def state_dict(self) -> dict[str, Any]:
        """Everything a resumed run needs."""
        return {
            "policy": self.policy.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "schedule": self.schedule.state_dict(),
            "generator": self.generator.get_state(),
            "ema": self.ema.state_dict() if self.ema is not None else None,
            "step": self.step,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        """Restore state_dict()'s output."""
        self.policy.load_state_dict(state["policy"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.schedule.load_state_dict(state["schedule"])
        self.generator.set_state(state["generator"])
        if self.ema is not None and state.get("ema") is not None:
            self.ema.load_state_dict(state["ema"])
        self.step = int(state["step"])


def evaluate(cfg: DictConfig, policy: Any) -> dict[str, Any]:
    """Rollouts of `policy` through the task's evaluate_policy: summary.json's eval/* keys."""
    from robolearn.imitation.diffusion.policy import RecedingHorizonActor
    from robolearn.imitation.evaluation import evaluate_policy
    from robolearn.imitation.finetune import rollout_summary

    task = _task(str(cfg.task))
    seed = int(cfg.eval.seed)
    contexts = task.sample_contexts(int(cfg.eval.contexts), str(cfg.eval.split or "pretrain"), seed)
    counter = iter(range(10**9))

    def factory() -> Callable[[Any], np.ndarray]:
        # A fresh actor (empty history and queue) per episode, each with its own sampling seed.
        return RecedingHorizonActor(policy, seed=seed + next(counter))

    result = evaluate_policy(task, factory, contexts, int(cfg.eval.episodes_per_context), seed)
    return rollout_summary(result)


def train_job(cfg: DictConfig, run_dir: Path, command: str, multirun: bool = False) -> dict[str, Any]:
    """One training run (a Hydra task): validate, train in a LoopRun, save the policy, evaluate."""
    from robolearn.runs.loop import run_loop_job

    def job() -> dict[str, Any]:
        import torch

        from robolearn.imitation.diffusion.policy import POLICY_FILE, save_policy
        from robolearn.runs.loop import LoopRun
        from robolearn.runs.trainer import resolve_device
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
            device = resolve_device(str(full.device))
            demos = _open_dataset(str(full.data))
            obs, act = demo_windows(demos, int(full.policy.obs_horizon), int(full.policy.pred_horizon))
            trainer = Trainer(full, obs, act, device)
            state = run.resume_state()  # last: it restores the global RNGs
            if state is not None:
                trainer.load_state_dict(state)
                run.note(f"resumed at step {trainer.step}")
            started, start_step = time.perf_counter(), trainer.step

            def scalars(step: int, losses: list[float]) -> dict[str, Any]:
                elapsed = time.perf_counter() - started
                return {
                    "train/loss": float(np.mean(losses)),
                    "train/lr": trainer.schedule.get_last_lr()[0],
                    "train/samples_per_s": (step - start_step) * trainer.batch_size / max(elapsed, 1e-9),
                }

            run_steps(run, trainer, total, int(full.log_every), int(full.checkpoint.every), scalars)
            elapsed = time.perf_counter() - started
            samples_per_s = (trainer.step - start_step) * trainer.batch_size / max(elapsed, 1e-9)
            policy = trainer.final_policy().cpu()
            save_policy(policy, run.run.root / POLICY_FILE)
            summary: dict[str, Any] = {
                "steps": total,
                "train/samples": len(act),
                "train/samples_per_s": samples_per_s,
                "policy/parameters": int(sum(p.numel() for p in policy.parameters())),
            }
            if int(full.eval.contexts) > 0:
                summary.update(evaluate(full, policy))
            return run.finish(summary)

    summary = run_loop_job(VERB, job, run_dir, multirun)
    if summary.get("eval/mean_return") is not None:
        print(
            f"{cfg.policy.name} on {summary.get('train/samples')} windows of {cfg.data}, seed {cfg.seed}: "
            f"success {summary['eval/success_rate']:.2f}, return {summary['eval/mean_return']:.2f} over "
            f"{summary['eval/episodes']} episodes in {summary['wall_time_s']:.0f} s -> {run_dir}",
            flush=True,
        )
    elif summary.get("train/samples_per_s") is not None:
        print(
            f"{cfg.policy.name} on {summary.get('train/samples')} windows of {cfg.data}, seed {cfg.seed}: "
            f"{summary['steps']} steps at {summary['train/samples_per_s']:.0f} samples/s, no rollouts "
            f"(eval.contexts=0) -> {run_dir}",
            flush=True,
        )
    return summary


# -- command line (the shell the imitation verbs share: robolearn/imitation/verbs.py) ----------------
HELP = verb_help(
    VERB,
    "policy=<diffusion|bc> data=<dataset> [key=value ...]",
    "Train an action-chunk policy on demonstrations: a diffusion policy (Chi et al., RSS 2023; DDPM\n"
    "training, DDIM sampling, EMA, our conditional 1-D U-Net or a transformer denoiser) or MSE\n"
    "behaviour cloning with the same observation history (2) and chunks (predict 16, execute 8).\n"
    "Pixel datasets (pointmass_pixels) go through an image encoder trained end to end with it.\n"
    "Evaluates by rollouts in the dataset's imitation task. Writes a run directory (config.yaml,\n"
    "metrics.jsonl, checkpoints/, policy.pt, summary.json with eval/success_rate). Ctrl-C saves a\n"
    "checkpoint and prints the resume= command. docs/imitation.md.",
    [
        ("policy", "diffusion | bc (configs/imitation/policy/<name>.yaml)"),
        ("data", "a dataset path or minari id (robolearn.imitation.collect writes them)"),
        ("policy.denoiser", "unet | transformer (diffusion only)"),
        ("policy.diffusion.<key>", "sampler (ddim | ddpm), inference_steps, train_steps, beta_schedule"),
        ("policy.<key>", "obs_horizon, pred_horizon, action_horizon, unet.*, transformer.*, optim.*, ema.*"),
        ("+policy.encoder.<key>", "pixel datasets: the image encoder's sizes (encoders.EncoderConfig keys)"),
        ("task", "the imitation task for rollouts (default: the dataset's provenance task)"),
        ("steps", "gradient steps (default: 3000)"),
        ("batch_size", "windows per gradient step (default: 256)"),
        ("eval.<key>", "contexts (0: no rollouts), episodes_per_context, seed, split"),
        ("log_every", "gradient steps between metrics.jsonl lines (default: 100)"),
        ("checkpoint.every", "gradient steps between checkpoints (default: 1000)"),
        ("seed", "the run's seed (default: 0)"),
        ("torch_threads", "torch CPU threads (default: 1)"),
        ("device", "cpu | cuda | auto (default: cpu)"),
        ("logger.progress", "auto | bar | lines | none"),
        ("resume", "a run directory to continue (steps=N extends it)"),
        ("hydra.run.dir", "where the run directory goes (default: outputs/<date>/<time>_imitation_<policy>)"),
    ],
    [
        "python -m robolearn.imitation.train policy=diffusion data=demos/bimodal",
        "python -m robolearn.imitation.train policy=bc data=demos/bimodal seed=1",
        "python -m robolearn.imitation.train -m policy=bc,diffusion seed=0,1,2 data=demos/bimodal",
        "python -m robolearn.imitation.train resume=<run dir> steps=6000",
    ],
    script="robolearn-imitation-train",
)


main = verb_main(VERB, CONFIG_NAME, HELP, train_job, complete_config)
"""Console entry point (robolearn-imitation-train)."""


if __name__ == "__main__":
    main()
