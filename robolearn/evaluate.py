"""`python -m robolearn.evaluate run=<run dir> [episodes=N] [checkpoint=final|best|latest] [video=true]`
`python -m robolearn.evaluate policy=<artifact folder> [command=[0.5,0,0]] [duration=20] [episodes=3]`

Loads a run's model with plain stable-baselines3, evaluates it deterministically on the seeds the
run's own final evaluation used (so `checkpoint=final` reproduces summary.json), prints mean ± std
return, and writes `evaluations/<checkpoint>.json` (and an MP4 with video=true) into the run dir.
video=true checks everything a video needs (imageio + imageio-ffmpeg, pygame for the envs gymnasium
draws with it, an offscreen GL context for MuJoCo envs) before any episode runs.

policy=<artifact> is sim2sim instead (robolearn.deploy.sim2sim): the artifact runs through the deploy
runtime against our MuJoCo robot in simulated time; velocity and yaw-rate tracking error, falls,
distance and limit hits come from the simulator and are written to <artifact>/sim2sim/<name>.json.
"""

from __future__ import annotations

import json
import os
import pickle
from pathlib import Path
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

from robolearn.agents.factory import SB3_CLASSES
from robolearn.cli import hydra_verb, verb_help
from robolearn.config.schema import register_schemas
from robolearn.envs import make_eval_env
from robolearn.errors import UserError, require
from robolearn.runs.checkpoint import MODEL_FILE, VECNORM_FILE, latest_checkpoint
from robolearn.runs.evaluation import EvalResult, evaluate_policy
from robolearn.runs.layout import RunDir, existing_run_dir
from robolearn.utils.io import atomic_save_with, atomic_write_json

CHECKPOINTS = ("final", "best", "latest")
VIDEO_EXTRA = "video"
# gymnasium envs under these packages draw their frames with pygame; the rest here are MuJoCo envs.
PYGAME_ENV_PACKAGES = ("gymnasium.envs.classic_control", "gymnasium.envs.box2d", "gymnasium.envs.toy_text")


RUN_EPISODES = 10  # episodes=null with run=
SIM2SIM_EPISODES = 3  # episodes=null with policy=


def _episodes(cfg: DictConfig) -> int:
    episodes = cfg.get("episodes")
    if episodes is not None:
        return int(episodes)
    return SIM2SIM_EPISODES if cfg.get("policy") is not None else RUN_EPISODES


def validate_evaluate_config(cfg: DictConfig) -> None:
    """One-line errors for bad evaluate arguments (before any model is loaded)."""
    if (cfg.get("run") is None) == (cfg.get("policy") is None):
        raise UserError(
            "pass exactly one of run=<run dir> (evaluate a training run) or policy=<artifact folder> (sim2sim)"
        )
    if cfg.get("policy") is not None:
        validate_sim2sim_config(cfg)
        return
    if cfg.checkpoint not in CHECKPOINTS:
        raise UserError(f"checkpoint={cfg.checkpoint} is not allowed; choose one of {', '.join(CHECKPOINTS)}")
    if _episodes(cfg) < 1:
        raise UserError(f"episodes={cfg.episodes} is out of range; use an integer >= 1")
    if cfg.video_episodes < 1:
        raise UserError(f"video_episodes={cfg.video_episodes} is out of range; use an integer >= 1")
    existing_run_dir(cfg.run)


def sim2sim_config(cfg: DictConfig) -> Any:
    """The Sim2SimConfig that policy= asks for."""
    from robolearn.deploy.sim2sim import Sim2SimConfig

    command = [float(v) for v in cfg.command]
    if len(command) != 3:
        raise UserError(f"command={command} must have 3 values: [vx, vy, yaw rate]")
    interval = [float(v) for v in cfg.push_interval]
    if len(interval) != 2:
        raise UserError(f"push_interval={interval} must be [min, max] seconds between pushes")
    return Sim2SimConfig(
        command=(command[0], command[1], command[2]),
        duration_s=float(cfg.duration),
        episodes=_episodes(cfg),
        seed=int(cfg.seed) if cfg.seed is not None else 0,
        settle_s=float(cfg.settle),
        push_velocity=float(cfg.pushes),
        push_interval_s=(interval[0], interval[1]),
    )


def validate_sim2sim_config(cfg: DictConfig) -> None:
    """policy=: the artifact loads, and the command, duration and the rest suit it (one line each)."""
    from robolearn.deploy.app import resolve_policy
    from robolearn.deploy.artifact import load_artifact
    from robolearn.deploy.sim2sim import validate_sim2sim

    if cfg.video:
        raise UserError("video=true is for run=; sim2sim (policy=) records no video")
    if cfg.checkpoint != "final":
        raise UserError(f"checkpoint={cfg.checkpoint} is for run=; an artifact (policy=) has one network")
    artifact = load_artifact(resolve_policy(str(cfg.policy)))
    validate_sim2sim(artifact, sim2sim_config(cfg))
    # Before the episodes run: a shipped or read-only artifact folder cannot take the result.
    target = sim2sim_output(cfg, artifact.root)
    existing = next(p for p in (target, *target.parents) if p.exists())
    if not os.access(existing if existing.is_dir() else existing.parent, os.W_OK):
        raise UserError(f"cannot write the result to {target} ({existing} is not writable); pass out=<file>")


def sim2sim_output(cfg: DictConfig, artifact_root: Path) -> Path:
    """Where policy='s result goes: out=, else <artifact>/sim2sim/<name or UTC timestamp>.json."""
    if cfg.out is not None:
        return Path(cfg.out)
    from datetime import UTC, datetime

    name = cfg.name or datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    return artifact_root / "sim2sim" / f"{name}.json"


def evaluate_artifact(cfg: DictConfig) -> tuple[dict[str, Any], Path]:
    """Sim2sim of policy= as cfg asks: (result, the JSON file written)."""
    from robolearn.deploy.app import resolve_policy
    from robolearn.deploy.artifact import load_artifact
    from robolearn.deploy.sim2sim import run_sim2sim

    validate_evaluate_config(cfg)
    artifact = load_artifact(resolve_policy(str(cfg.policy)))
    result = run_sim2sim(artifact, sim2sim_config(cfg))
    path = sim2sim_output(cfg, artifact.root)
    atomic_write_json(path, result)
    return result, path


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
    """(model, obs normaliser or None) from a run: plain stable-baselines3 classes, or the rsl_ppo
    actor (its normaliser inside) for agent=rsl_ppo."""
    if train_cfg.agent.algo == "rsl_ppo" and which == "latest":
        return _latest_rsl_policy(run), None
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


def _latest_rsl_policy(run: RunDir) -> Any:
    """The actor in an rsl_ppo run's newest checkpoint (robolearn.runs.loop's state.pt)."""
    from robolearn.agents.rsl_ppo import RslPolicy
    from robolearn.runs.loop import STATE_FILE

    pointer = run.checkpoints / "latest.json"
    if not pointer.is_file():
        raise UserError(f"{run.root} has no checkpoint yet; train longer or pick checkpoint=final|best")
    try:
        name = json.loads(pointer.read_text(encoding="utf-8"))["name"]
        saved = torch.load(run.checkpoints / str(name) / STATE_FILE, map_location="cpu", weights_only=False)
        payload = saved["state"]["policy"]
    except (OSError, ValueError, KeyError, TypeError, RuntimeError, EOFError, pickle.UnpicklingError) as exc:
        raise UserError(
            f"{pointer.parent}: the newest checkpoint cannot be read ({type(exc).__name__}); "
            "pick checkpoint=final|best"
        ) from None
    return RslPolicy.from_payload(payload)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return f"{type(exc).__name__}: {text.splitlines()[0]}" if text else type(exc).__name__


def _renders_with_pygame(env: Any) -> bool:
    return type(env.unwrapped).__module__.startswith(PYGAME_ENV_PACKAGES)


def open_video_env(env_cfg: DictConfig) -> Any:
    """An rgb_array env that has rendered one frame, after checking the video packages; a one-line
    UserError naming what is missing and how to install it otherwise. Called before any episode runs."""
    for module in ("imageio", "imageio_ffmpeg"):
        require(module, "video=true", VIDEO_EXTRA, module.replace("_", "-"))
    os.environ.setdefault("MUJOCO_GL", "egl")
    os.environ.setdefault("PYGAME_HIDE_SUPPORT_PROMPT", "1")
    try:
        env = make_eval_env(env_cfg, render_mode="rgb_array")
    except Exception as exc:
        raise UserError(
            f"{env_cfg.id} cannot be made with render_mode=rgb_array ({_first_line(exc)})"
        ) from None
    try:
        pygame = _renders_with_pygame(env)
        if pygame:
            require("pygame", f"video=true on {env_cfg.id}", VIDEO_EXTRA)
            # Frames are drawn off screen: no display is needed, and SDL's complaints about one are noise.
            os.environ.setdefault("SDL_VIDEODRIVER", "dummy")
        try:
            env.reset(seed=0)
            frame = env.render()
        except Exception as exc:
            if pygame:
                raise UserError(
                    f"{env_cfg.id} cannot render for video=true ({_first_line(exc)}); "
                    f'pip install "robolearn[{VIDEO_EXTRA}]" installs pygame, which draws it'
                ) from None
            raise UserError(
                f"no offscreen OpenGL for MuJoCo's video=true ({_first_line(exc)}); install one: "
                "apt-get install libegl1 (EGL, MUJOCO_GL=egl, the default) or libosmesa6 (CPU, MUJOCO_GL=osmesa)"
            ) from None
        if frame is None:
            raise UserError(
                f"{env_cfg.id} renders no frames; video=true needs an env with rgb_array rendering"
            )
    except BaseException:
        env.close()
        raise
    return env


def _write_video(path: Path, result: EvalResult, fps: int) -> None:
    imageio: Any = require("imageio", "video=true", VIDEO_EXTRA)

    def save(tmp: Path) -> None:
        # libx264's yuv420p needs even sizes only; imageio's default (16) rescales 500x500 frames.
        imageio.mimwrite(
            str(tmp), result.frames, fps=fps, format="FFMPEG", codec="libx264", macro_block_size=2
        )

    atomic_save_with(path, save)


def evaluate_run(cfg: DictConfig) -> dict[str, Any]:
    """Evaluate a run directory as cfg asks; returns the figures written to evaluations/."""
    validate_evaluate_config(cfg)
    run = existing_run_dir(cfg.run)
    train_cfg = OmegaConf.load(run.config)
    assert isinstance(train_cfg, DictConfig)
    model, obs_transform = load_policy(run, cfg.checkpoint, train_cfg)
    seed = cfg.seed if cfg.seed is not None else int(train_cfg.seed) + int(train_cfg.eval.seed_offset)
    render_env = open_video_env(train_cfg.env) if cfg.video else None
    try:
        return _evaluate_and_record(cfg, run, train_cfg, model, obs_transform, seed, render_env)
    finally:
        if render_env is not None:
            render_env.close()


def _evaluate_and_record(
    cfg: DictConfig,
    run: RunDir,
    train_cfg: DictConfig,
    model: Any,
    obs_transform: Any,
    seed: int,
    render_env: Any,
) -> dict[str, Any]:
    env = make_eval_env(train_cfg.env)
    try:
        result = evaluate_policy(model, env, _episodes(cfg), seed, cfg.deterministic, obs_transform)
    finally:
        env.close()
    out: dict[str, Any] = {
        "checkpoint": cfg.checkpoint,
        "env": train_cfg.env.id,
        "episodes": _episodes(cfg),
        "seed": seed,
        "deterministic": cfg.deterministic,
        "mean_return": result.mean_return,
        "std_return": result.std_return,
        "returns": result.returns,
        "lengths": result.lengths,
        **result.figures(),
    }
    if render_env is not None:
        shown = evaluate_policy(
            model, render_env, cfg.video_episodes, seed, cfg.deterministic, obs_transform, render=True
        )
        fps = int(render_env.metadata.get("render_fps", 30))
        video = run.root / "videos" / f"{cfg.checkpoint}.mp4"
        _write_video(video, shown, fps)
        out["video"] = str(video)
    atomic_write_json(run.root / "evaluations" / f"{cfg.checkpoint}.json", out)
    return out


def _evaluate(cfg: DictConfig) -> None:
    if cfg.get("policy") is not None:
        from robolearn.deploy.sim2sim import result_table

        result, path = evaluate_artifact(cfg)
        c = result["config"]
        print(
            f"sim2sim {result['robot']} {result['artifact']}: command {list(c['command'])}, {c['duration_s']:g} s x"
            f" {c['episodes']} episodes (seeds {c['seed']}..{c['seed'] + c['episodes'] - 1}), errors after"
            f" {c['settle_s']:g} s",
            flush=True,
        )
        print(result_table(result), flush=True)
        print(f"result: {path}", flush=True)
        return
    out = evaluate_run(cfg)
    print(
        f"{out['env']} {cfg.checkpoint}: mean return {out['mean_return']:.1f} ± {out['std_return']:.1f} "
        f"over {out['episodes']} episodes (seeds {out['seed']}..{out['seed'] + out['episodes'] - 1})"
        + (f"; video {out['video']}" if "video" in out else ""),
        flush=True,
    )


HELP = verb_help(
    "evaluate",
    "run=<run dir> | policy=<artifact> [key=value ...]",
    "Load a run's model (plain stable-baselines3, or rsl_ppo's actor) and evaluate it deterministically on the seeds the\n"
    "run's own final evaluation used (checkpoint=final reproduces summary.json). Prints mean ± std return\n"
    "and writes <run>/evaluations/<checkpoint>.json; video=true also writes <run>/videos/<checkpoint>.mp4\n"
    '(needs pip install "robolearn[video]"; checked before any episode runs).\n'
    "policy=<artifact folder> is sim2sim: the artifact (a robolearn export or an imported Isaac policy) runs\n"
    "through the deploy runtime against our MuJoCo robot in simulated time; prints velocity and yaw-rate\n"
    "tracking error, falls, distance, joint/torque-limit hits and safety faults per episode, and writes\n"
    "<artifact>/sim2sim/<name>.json (docs/isaac.md, Sim2sim before the robot).",
    [
        ("run", "the run directory robolearn.train wrote (exactly one of run and policy)"),
        ("policy", "a policy artifact folder (contract.json + policy.onnx): sim2sim instead"),
        ("checkpoint", "run=: final | best | latest (the newest resumable checkpoint); default: final"),
        ("episodes", "episodes to evaluate (default: 10 for run=, 3 for policy=)"),
        (
            "seed",
            "first episode's seed (default: the run's own eval seeds, seed + eval.seed_offset; policy=: 0)",
        ),
        ("deterministic", "run=: the policy's deterministic action (default: true)"),
        ("video", "run=: also record an MP4 (default: false)"),
        ("video_episodes", "run=: episodes in the video (default: 1)"),
        (
            "command",
            "policy=: [vx, vy, yaw rate] held for the episode, inside the contract's ranges (default: [0.5,0,0])",
        ),
        ("duration", "policy=: seconds of policy time per episode (default: 20)"),
        ("settle", "policy=: tracking errors are measured after this many seconds (default: 2)"),
        ("pushes", "policy=: largest planar push velocity in m/s, 0 = none (default: 0)"),
        ("push_interval", "policy=: [min, max] seconds between pushes (default: [15, 15], legged_gym's)"),
        ("out", "policy=: the result JSON (default: <artifact>/sim2sim/<name>.json)"),
        ("name", "policy=: the result's file name (default: a UTC timestamp)"),
    ],
    [
        "python -m robolearn.evaluate run=outputs/2026-11-26/10-00-00_sac_Pendulum-v1",
        "python -m robolearn.evaluate run=<run dir> episodes=20 checkpoint=best video=true",
        "python -m robolearn.evaluate policy=<artifact> command=[0.5,0,0] duration=20 episodes=3",
    ],
)

# Console entry point (robolearn-evaluate).
main = hydra_verb("evaluate", _evaluate, validate_evaluate_config, setup=register_schemas, help_text=HELP)

if __name__ == "__main__":
    main()
