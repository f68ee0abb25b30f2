"""`python -m robolearn.evaluate run=<run dir> [episodes=N] [checkpoint=final|best|latest] [video=true]`

Loads a run's model with plain stable-baselines3, evaluates it deterministically on the seeds the
run's own final evaluation used (so `checkpoint=final` reproduces summary.json), prints mean ± std
return, and writes `evaluations/<checkpoint>.json` (and an MP4 with video=true) into the run dir.
"""

from __future__ import annotations

import os
import pickle
import sys
from pathlib import Path
from typing import Any

import hydra
from omegaconf import DictConfig, OmegaConf

from robolearn.agents.factory import SB3_CLASSES
from robolearn.cli import precheck
from robolearn.config.schema import register_schemas
from robolearn.envs import make_eval_env
from robolearn.errors import UserError, report_user_errors, require
from robolearn.resources import configs_dir
from robolearn.runs.checkpoint import MODEL_FILE, VECNORM_FILE, latest_checkpoint
from robolearn.runs.evaluation import EvalResult, evaluate_policy
from robolearn.runs.layout import RunDir, existing_run_dir
from robolearn.utils.io import atomic_save_with, atomic_write_json

CHECKPOINTS = ("final", "best", "latest")


def validate_evaluate_config(cfg: DictConfig) -> None:
    """One-line errors for bad evaluate arguments (before any model is loaded)."""
    if cfg.checkpoint not in CHECKPOINTS:
        raise UserError(f"checkpoint={cfg.checkpoint} is not allowed; choose one of {', '.join(CHECKPOINTS)}")
    if cfg.episodes < 1:
        raise UserError(f"episodes={cfg.episodes} is out of range; use an integer >= 1")
    if cfg.video_episodes < 1:
        raise UserError(f"video_episodes={cfg.video_episodes} is out of range; use an integer >= 1")
    existing_run_dir(cfg.run)


def model_folder(run: RunDir, which: str) -> Path:
    """The folder holding model.zip for final | best | latest, or a one-line error."""
    if which == "latest":
        ckpt = latest_checkpoint(run)
        if ckpt is None:
            raise UserError(f"{run.root} has no checkpoint yet; train longer or pick checkpoint=final|best")
        return ckpt.path
    folder = run.final if which == "final" else run.best
    if not (folder / MODEL_FILE).is_file():
        if which == "final" and latest_checkpoint(run) is not None:
            raise UserError(f"{run.root} did not finish (no final/); use checkpoint=latest or resume it")
        raise UserError(
            f"{folder / MODEL_FILE} is missing; pick another checkpoint=({', '.join(CHECKPOINTS)})"
        )
    return folder


def load_policy(run: RunDir, which: str, train_cfg: DictConfig) -> tuple[Any, Any]:
    """(model, obs normaliser or None) from a run, with plain stable-baselines3 classes."""
    folder = model_folder(run, which)
    cls = SB3_CLASSES.get(train_cfg.agent.algo)
    if cls is None:
        raise UserError(f"{run.config}: agent.algo={train_cfg.agent.algo} has no evaluator")
    try:
        model = cls.load(folder / MODEL_FILE, device="cpu")
    except Exception as exc:  # SB3 raises many kinds for a damaged zip
        raise UserError(f"{folder / MODEL_FILE} cannot be loaded ({type(exc).__name__}: {exc})") from None
    norm = None
    if (folder / VECNORM_FILE).is_file():
        with open(folder / VECNORM_FILE, "rb") as fh:
            norm = pickle.load(fh)
    return model, (norm.normalize_obs if norm is not None else None)


def _render_env(env_cfg: DictConfig) -> Any:
    os.environ.setdefault("MUJOCO_GL", "egl")
    try:
        env = make_eval_env(env_cfg, render_mode="rgb_array")
        env.reset(seed=0)
        frame = env.render()
    except Exception as exc:
        raise UserError(
            f"no offscreen renderer for video=true ({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}); "
            "install one: apt-get install libegl1 (GPU/EGL, MUJOCO_GL=egl) or libosmesa6 (CPU, MUJOCO_GL=osmesa)"
        ) from None
    if frame is None:
        raise UserError(f"{env_cfg.id} renders no frames; video=true needs an env with rgb_array rendering")
    return env


def _write_video(path: Path, result: EvalResult, fps: int) -> None:
    imageio: Any = require("imageio", "video=true", "video", "imageio imageio-ffmpeg")

    def save(tmp: Path) -> None:
        imageio.mimwrite(str(tmp), result.frames, fps=fps, format="FFMPEG", codec="libx264")

    atomic_save_with(path, save)


def evaluate_run(cfg: DictConfig) -> dict[str, Any]:
    """Evaluate a run directory as cfg asks; returns the figures written to evaluations/."""
    validate_evaluate_config(cfg)
    run = existing_run_dir(cfg.run)
    train_cfg = OmegaConf.load(run.config)
    assert isinstance(train_cfg, DictConfig)
    model, obs_transform = load_policy(run, cfg.checkpoint, train_cfg)
    seed = cfg.seed if cfg.seed is not None else int(train_cfg.seed) + int(train_cfg.eval.seed_offset)
    env = make_eval_env(train_cfg.env)
    try:
        result = evaluate_policy(model, env, cfg.episodes, seed, cfg.deterministic, obs_transform)
    finally:
        env.close()
    out: dict[str, Any] = {
        "checkpoint": cfg.checkpoint,
        "env": train_cfg.env.id,
        "episodes": cfg.episodes,
        "seed": seed,
        "deterministic": cfg.deterministic,
        "mean_return": result.mean_return,
        "std_return": result.std_return,
        "returns": result.returns,
        "lengths": result.lengths,
        **result.figures(),
    }
    if cfg.video:
        render_env = _render_env(train_cfg.env)
        try:
            shown = evaluate_policy(
                model, render_env, cfg.video_episodes, seed, cfg.deterministic, obs_transform, render=True
            )
            fps = int(render_env.metadata.get("render_fps", 30))
        finally:
            render_env.close()
        video = run.root / "videos" / f"{cfg.checkpoint}.mp4"
        _write_video(video, shown, fps)
        out["video"] = str(video)
    atomic_write_json(run.root / "evaluations" / f"{cfg.checkpoint}.json", out)
    return out


@hydra.main(version_base="1.3", config_path=str(configs_dir()), config_name="evaluate")
def _hydra_main(cfg: DictConfig) -> None:
    _evaluate(cfg)


@report_user_errors
def _evaluate(cfg: DictConfig) -> None:
    out = evaluate_run(cfg)
    print(
        f"{out['env']} {cfg.checkpoint}: mean return {out['mean_return']:.1f} ± {out['std_return']:.1f} "
        f"over {out['episodes']} episodes (seeds {out['seed']}..{out['seed'] + out['episodes'] - 1})"
        + (f"; video {out['video']}" if "video" in out else ""),
        flush=True,
    )


@report_user_errors
def _prepare(argv: list[str]) -> None:
    precheck("evaluate", argv, validate_evaluate_config)


def main() -> None:
    """Console entry point (robolearn-evaluate)."""
    register_schemas()
    _prepare(sys.argv[1:])
    _hydra_main()


if __name__ == "__main__":
    main()
