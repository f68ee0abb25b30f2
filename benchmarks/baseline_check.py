"""Checks of the reference table in docs/baselines.md (issue 20): what standing still and flailing
earn, and what the three suspicious learned figures actually do.

    python benchmarks/baseline_check.py null                      # zero-action and random rows, 4 envs
    python benchmarks/baseline_check.py figure halfcheetah_ppo --seeds 0 [--work outputs/baseline_check]
    python benchmarks/baseline_check.py inspect <run dir> --name <name> [--model <run>/checkpoints/step_...]
    python benchmarks/baseline_check.py table                     # the markdown from the JSON files

`null` plays 10 episodes per env (reset seeds 0..9; the random agent draws uniform actions from a
generator seeded with the episode's seed). `figure` trains one seed of a suspicious figure with the
sweep's own experiment config (configs/experiment/baseline_ppo.yaml or baseline_sac.yaml, one job,
skipped when the run directory holds it finished, resumed when it holds it interrupted) and then
inspects its final policy. `inspect` plays a run's final policy (or, with --model, a checkpoint's) on
the seeds its own final evaluation used (so the mean return reproduces the run's summary.json) and
records per episode: return, length, forward distance (x displacement of the torso),
mean forward velocity, torso height and pitch (share of steps upside down), plus one rendered frame of
episode 0 (MUJOCO_GL=egl; without an OpenGL context the trace alone is written).

Writes benchmarks/results/baselines/{null_agents.json, inspect/<name>.json, <name>.png, table.md} (--out).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from robolearn.report.stats import aggregate_mean, interval_estimate

ENVS = ("Hopper-v5", "Walker2d-v5", "HalfCheetah-v5", "Ant-v5")
EPISODES = 10
OUT = Path("benchmarks/results/baselines")
# Planar walkers: qpos = [rootx, rootz, rooty, joints...]; Ant: a free joint [x, y, z, qw, qx, qy, qz, ...].
PLANAR = ("Hopper-v5", "Walker2d-v5", "HalfCheetah-v5")
# Speeds below this (m/s, mean over the episode) count as standing still.
STILL_SPEED = 0.1
# The frame's camera follows the torso (body 1 in all four models) from the side: the envs' own
# rgb_array camera stays where it was first drawn while a runner leaves the picture.
CAMERA = {"trackbodyid": 1, "distance": 4.0, "elevation": -15.0, "azimuth": 90.0}
FRAME_SIZE = (320, 480)  # height, width
TRACE_EVERY = 50  # steps between the points of episode 0's trace


@dataclass(frozen=True)
class Figure:
    """A reference-table figure to reproduce: the sweep's experiment config, its env and the value."""

    experiment: str
    env: str
    reported: float
    reported_ci: tuple[float, float]


FIGURES = {
    "halfcheetah_ppo": Figure("baseline_ppo", "HalfCheetah-v5", 2581.6, (1447.2, 3413.1)),
    "hopper_ppo": Figure("baseline_ppo", "Hopper-v5", 1012.1, (993.5, 1044.2)),
    "halfcheetah_sac": Figure("baseline_sac", "HalfCheetah-v5", 582.4, (-19.8, 1209.8)),
}


@dataclass
class Episode:
    """One episode's figures; `trace` rows are (step, x, torso height, pitch or uprightness)."""

    seed: int
    ret: float
    length: int
    terminated: bool
    distance: float
    velocity: float
    mean_height: float
    upside_down_share: float
    behaviour: str
    trace: list[tuple[int, float, float, float]] = field(default_factory=list)


def wrap_angle(a: float) -> float:
    """An angle in (-pi, pi]: the planar envs' rooty hinge is unbounded, a full flip adds 2 pi."""
    return math.pi - (math.pi - a) % (2 * math.pi)


def torso_pose(env_id: str, qpos: np.ndarray) -> tuple[float, float, bool]:
    """(torso x, torso height, upside down) from qpos.

    Planar envs: upside down when the wrapped pitch is beyond +-90 degrees. Ant: when the torso's
    z axis points down (its world z component, 1 - 2(qx^2 + qy^2), is negative).
    """
    if env_id in PLANAR:
        return float(qpos[0]), float(qpos[1]), abs(wrap_angle(float(qpos[2]))) > math.pi / 2
    _, qx, qy, _ = (float(v) for v in qpos[3:7])
    return float(qpos[0]), float(qpos[2]), 1.0 - 2.0 * (qx * qx + qy * qy) < 0.0


def orientation(env_id: str, qpos: np.ndarray) -> float:
    """The trace's orientation column: wrapped pitch (rad) for planar envs, uprightness for Ant."""
    if env_id in PLANAR:
        return wrap_angle(float(qpos[2]))
    qx, qy = float(qpos[4]), float(qpos[5])
    return 1.0 - 2.0 * (qx * qx + qy * qy)


def describe(length: int, max_steps: int, terminated: bool, velocity: float, upside_down: float) -> str:
    """A one-phrase account of an episode from its figures, without numbers so that episodes group:
    whether it ended by a fall, whether its mean forward speed clears STILL_SPEED, and its pose
    (upside down for more than half of the steps: on its back; for 5-50%: part of the time)."""
    if upside_down > 0.5:
        pose = "on its back"
    elif upside_down > 0.05:
        pose = "on its back part of the time"
    else:
        pose = "upright"
    if terminated and length < max_steps:
        return "falls (unhealthy) before the time limit" + ("" if pose == "upright" else f", {pose}")
    if abs(velocity) < STILL_SPEED:
        return f"stays in place, {pose}"
    return f"moves {'forward' if velocity > 0 else 'backward'}, {pose}"


class TrackingCamera:
    """Offscreen frames of an env's MuJoCo model from a camera that tracks the torso."""

    def __init__(self, env: gym.Env) -> None:
        import mujoco

        model = env.unwrapped.model  # type: ignore[attr-defined]
        self.renderer = mujoco.Renderer(model, *FRAME_SIZE)
        self.camera = mujoco.MjvCamera()
        self.camera.type = mujoco.mjtCamera.mjCAMERA_TRACKING
        for key, value in CAMERA.items():
            setattr(self.camera, key, value)

    def __call__(self, data: Any) -> np.ndarray:
        self.renderer.update_scene(data, camera=self.camera)
        return np.asarray(self.renderer.render())

    def close(self) -> None:
        self.renderer.close()


def play(
    env: gym.Env,
    env_id: str,
    act: Any,
    seed: int,
    frame_step: int | None = None,
    camera: TrackingCamera | None = None,
) -> tuple[Episode, np.ndarray | None]:
    """One episode from reset(seed); act(obs) -> action. Returns its figures and, with a camera and
    frame_step, the frame drawn at that step (or at the last one if the episode ends sooner)."""
    data = env.unwrapped.data  # type: ignore[attr-defined]
    obs, _ = env.reset(seed=seed)
    x0, _, _ = torso_pose(env_id, data.qpos)
    total, length, terminated, done = 0.0, 0, False, False
    heights: list[float] = []
    upside = 0
    trace: list[tuple[int, float, float, float]] = []
    frame = None
    while not done:
        obs, reward, terminated, truncated, _ = env.step(act(obs))
        total += float(reward)
        length += 1
        done = bool(terminated or truncated)
        x, z, down = torso_pose(env_id, data.qpos)
        heights.append(z)
        upside += int(down)
        if length % TRACE_EVERY == 0 or done:
            trace.append((length, round(x - x0, 3), round(z, 3), round(orientation(env_id, data.qpos), 3)))
        if camera is not None and frame_step is not None and frame is None and (length >= frame_step or done):
            frame = camera(data)
    x1, _, _ = torso_pose(env_id, data.qpos)
    distance = x1 - x0
    velocity = distance / (length * float(env.unwrapped.dt))  # type: ignore[attr-defined]
    max_steps = int(env.spec.max_episode_steps) if env.spec and env.spec.max_episode_steps else length
    share = upside / length
    episode = Episode(
        seed=seed,
        ret=total,
        length=length,
        terminated=bool(terminated),
        distance=distance,
        velocity=velocity,
        mean_height=float(np.mean(heights)),
        upside_down_share=share,
        behaviour=describe(length, max_steps, bool(terminated), velocity, share),
        trace=trace,
    )
    return episode, frame


def summarise(episodes: list[Episode]) -> dict[str, Any]:
    """Means over episodes, with a 95% percentile-bootstrap CI of the mean return (2000 resamples)."""
    returns = np.array([e.ret for e in episodes])
    ci = interval_estimate(aggregate_mean, [returns])
    behaviours: dict[str, int] = {}
    for e in episodes:
        behaviours[e.behaviour] = behaviours.get(e.behaviour, 0) + 1
    return {
        "episodes": len(episodes),
        "return": ci.as_dict(),
        "mean_length": float(np.mean([e.length for e in episodes])),
        "terminated": int(sum(e.terminated for e in episodes)),
        "mean_distance": float(np.mean([e.distance for e in episodes])),
        "mean_velocity": float(np.mean([e.velocity for e in episodes])),
        "upside_down_share": float(np.mean([e.upside_down_share for e in episodes])),
        "behaviours": behaviours,
    }


def null_actor(agent: str, box: gym.spaces.Box, rng: np.random.Generator) -> Any:
    """The zero action (clipped into the bounds) or uniform random actions drawn from rng."""
    zero = np.clip(np.zeros(box.shape, dtype=np.float32), box.low, box.high)

    def act(_: Any) -> np.ndarray:
        if agent == "zero":
            return zero
        return np.asarray(rng.uniform(box.low, box.high), dtype=np.float32)

    return act


def null_rows(out: Path) -> dict[str, Any]:
    """Zero-action and uniform-random agents on every env of the table (seeds 0..EPISODES-1)."""
    rows: dict[str, Any] = {}
    for env_id in ENVS:
        env = gym.make(env_id)
        box = env.action_space
        assert isinstance(box, gym.spaces.Box)
        for agent in ("zero", "random"):
            episodes = []
            for seed in range(EPISODES):
                act = null_actor(agent, box, np.random.default_rng(seed))
                episodes.append(play(env, env_id, act, seed)[0])
            rows[f"{env_id}/{agent}"] = {
                "env": env_id,
                "agent": agent,
                "seeds": list(range(EPISODES)),
                **summarise(episodes),
                "per_episode": [_episode_json(e, trace=False) for e in episodes],
            }
            r = rows[f"{env_id}/{agent}"]
            print(
                f"{env_id:15s} {agent:6s} return {r['return']['point']:8.1f} "
                f"[{r['return']['low']:.1f}, {r['return']['high']:.1f}] length {r['mean_length']:6.1f} "
                f"distance {r['mean_distance']:6.2f} m",
                flush=True,
            )
        env.close()
    result = {"command": "python benchmarks/baseline_check.py null", "machine": _machine(), "rows": rows}
    _write_json(out / "null_agents.json", result)
    return result


def _episode_json(e: Episode, trace: bool) -> dict[str, Any]:
    d = asdict(e)
    if not trace:
        d.pop("trace")
    return d


def load_model(run: Any, train_cfg: Any, model_dir: Path | None) -> tuple[Any, Any, dict[str, Any]]:
    """(model, obs transform, {steps, eval return}) of a run's final policy, or of the model.zip in
    model_dir (a snapshot the run left on the way; its eval.json, when there, gives the figures)."""
    from robolearn.evaluate import load_policy

    if model_dir is None:
        model, obs_transform = load_policy(run, "final", train_cfg)
        summary = json.loads((run.root / "summary.json").read_text(encoding="utf-8"))
        return model, obs_transform, {"steps": summary.get("steps"), "eval": summary.get("eval/mean_return")}
    import pickle

    from robolearn.agents.factory import SB3_CLASSES
    from robolearn.runs.checkpoint import MODEL_FILE, VECNORM_FILE

    model = SB3_CLASSES[str(train_cfg.agent.algo)].load(model_dir / MODEL_FILE, device="cpu")
    obs_transform = None
    if (model_dir / VECNORM_FILE).is_file():
        with open(model_dir / VECNORM_FILE, "rb") as fh:
            obs_transform = pickle.load(fh).normalize_obs
    ev = model_dir / "eval.json"
    saved = json.loads(ev.read_text(encoding="utf-8")) if ev.is_file() else {}
    return (
        model,
        obs_transform,
        {"steps": saved.get("step", model.num_timesteps), "eval": saved.get("mean_return")},
    )


def inspect_run(
    run_dir: Path,
    name: str,
    out: Path,
    frame_step: int,
    extra: dict[str, Any] | None = None,
    model_dir: Path | None = None,
) -> dict[str, Any]:
    """Play a finished run's final policy (or model_dir's) on the run's own final-evaluation seeds and
    record what it does."""
    from omegaconf import DictConfig, OmegaConf

    from robolearn.runs.layout import existing_run_dir

    run = existing_run_dir(run_dir)
    train_cfg = OmegaConf.load(run.config)
    assert isinstance(train_cfg, DictConfig)
    env_id = str(train_cfg.env.id)
    model, obs_transform, saved = load_model(run, train_cfg, model_dir)
    base_seed = int(train_cfg.seed) + int(train_cfg.eval.seed_offset)

    def act(obs: Any) -> Any:
        policy_obs = obs_transform(obs) if obs_transform is not None else obs
        return model.predict(policy_obs, deterministic=True)[0]

    env = gym.make(env_id)
    frame_note = None
    camera: TrackingCamera | None = None
    try:
        camera = TrackingCamera(env)
    except Exception as exc:  # no offscreen OpenGL context: the trace stands in for the frame
        frame_note = f"no frame: {type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else ''}"
    episodes, frame = [], None
    for i in range(EPISODES):
        ep, f = play(env, env_id, act, base_seed + i, frame_step, camera if i == 0 else None)
        episodes.append(ep)
        frame = f if i == 0 else frame
    env.close()
    if camera is not None:
        camera.close()
    # A run still training has no summary.json yet (model_dir is then one of its checkpoints).
    summary_file = run.root / "summary.json"
    summary = json.loads(summary_file.read_text(encoding="utf-8")) if summary_file.is_file() else {}
    result: dict[str, Any] = {
        "name": name,
        "run": str(run.root),
        "model": str(model_dir) if model_dir is not None else "final",
        "env": env_id,
        "algo": str(train_cfg.agent.algo),
        "seed": int(train_cfg.seed),
        "steps": int(saved["steps"] or 0),
        "command": summary.get("command"),
        "summary_eval_return": saved["eval"],
        "eval_curve": _eval_curve(run.metrics),
        "eval_seeds": [base_seed, base_seed + EPISODES - 1],
        **summarise(episodes),
        "per_episode": [_episode_json(e, trace=(i == 0)) for i, e in enumerate(episodes)],
        **(extra or {}),
    }
    if frame is not None:
        import matplotlib.pyplot as plt

        png = out / f"{name}.png"
        png.parent.mkdir(parents=True, exist_ok=True)
        plt.imsave(png, frame)
        result["frame"] = {
            "file": str(png),
            "episode_seed": base_seed,
            "step": min(frame_step, episodes[0].length),
        }
    else:
        result["frame"] = {"note": frame_note}
    _write_json(out / "inspect" / f"{name}.json", result)
    s = result
    print(
        f"{name}: {env_id} {s['algo']} seed {s['seed']} at {s['steps']} steps: return "
        f"{s['return']['point']:.1f} [{s['return']['low']:.1f}, {s['return']['high']:.1f}] "
        f"(the run's own evaluation: {s['summary_eval_return']}), length {s['mean_length']:.0f}, distance "
        f"{s['mean_distance']:.2f} m, velocity {s['mean_velocity']:.2f} m/s, upside down "
        f"{s['upside_down_share']:.0%}: {s['behaviours']}",
        flush=True,
    )
    return result


def _eval_curve(metrics: Path) -> list[tuple[int, float]]:
    """(step, eval/mean_return) from a run's metrics.jsonl."""
    curve = []
    for line in metrics.read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        if "eval/mean_return" in row:
            curve.append((int(row["step"]), round(float(row["eval/mean_return"]), 1)))
    return curve


def train_command(key: str, seed: int, run_dir: Path) -> list[str]:
    """The sweep's job for one seed, as a single run: the experiment's config with env and seed set."""
    fig = FIGURES[key]
    return [
        sys.executable,
        "-m",
        "robolearn.train",
        f"+experiment={fig.experiment}",
        f"env={fig.env}",
        f"seed={seed}",
        "hydra.mode=RUN",  # the experiment sets MULTIRUN for its sweep
        "logger.progress=lines",
        f"hydra.run.dir={run_dir}",
    ]


def figure(key: str, seeds: list[int], work: Path, out: Path, frame_step: int) -> list[dict[str, Any]]:
    """Train (or find) each seed of a suspicious figure, then inspect its final policy."""
    results = []
    for seed in seeds:
        run_dir = work / f"{key}_seed{seed}"
        cmd = train_command(key, seed, run_dir)
        summary = run_dir / "summary.json"
        done = summary.is_file() and json.loads(summary.read_text()).get("status") == "completed"
        if not done:
            print("+", " ".join(cmd[1:]), flush=True)
            subprocess.run(cmd, check=True)  # as nice as this script: run it under nice -n 15
        fig = FIGURES[key]
        extra = {
            "figure": key,
            "reported": fig.reported,
            "reported_ci": list(fig.reported_ci),
            "train_command": "python " + " ".join(cmd[1:]),
        }
        results.append(inspect_run(run_dir, f"{key}_seed{seed}", out, frame_step, extra))
    return results


def table(out: Path) -> str:
    """The markdown tables from null_agents.json and inspect/*.json; written to table.md."""
    lines = []
    null = out / "null_agents.json"
    if null.is_file():
        rows = json.loads(null.read_text(encoding="utf-8"))["rows"]
        lines += [
            "| env | agent | episodes | return, mean [95% CI] | episode length | forward distance (m) |",
            "|---|---|---:|---|---:|---:|",
        ]
        for r in rows.values():
            ret = r["return"]
            lines.append(
                f"| {r['env']} | {r['agent']} | {r['episodes']} | {ret['point']:.1f} [{ret['low']:.1f}, "
                f"{ret['high']:.1f}] | {r['mean_length']:.0f} | {r['mean_distance']:.2f} |"
            )
        lines.append("")
    inspected = sorted((out / "inspect").glob("*.json")) if (out / "inspect").is_dir() else []
    if inspected:
        lines += [
            "| run | steps | return, mean [95% CI] | length | distance (m) | velocity (m/s) | upside down | behaviour |",
            "|---|---:|---|---:|---:|---:|---:|---|",
        ]
        for path in inspected:
            r = json.loads(path.read_text(encoding="utf-8"))
            ret = r["return"]
            behaviour = "; ".join(f"{k} ({n}/{r['episodes']})" for k, n in r["behaviours"].items())
            lines.append(
                f"| {r['name']} | {r['steps'] // 1000}k | {ret['point']:.1f} [{ret['low']:.1f}, {ret['high']:.1f}] "
                f"| {r['mean_length']:.0f} | {r['mean_distance']:.2f} | {r['mean_velocity']:.2f} | "
                f"{r['upside_down_share']:.0%} | {behaviour} |"
            )
        lines.append("")
    text = "\n".join(lines)
    (out / "table.md").write_text(text, encoding="utf-8")
    return text


def _machine() -> str:
    return f"{os.cpu_count()}-core {os.uname().machine} ({os.uname().sysname})"


def _write_json(path: Path, obj: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, indent=1) + "\n", encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=OUT)
    sub = parser.add_subparsers(dest="cmd", required=True)
    sub.add_parser("null", help="zero-action and random rows")
    f = sub.add_parser("figure", help="train and inspect one suspicious figure's seeds")
    f.add_argument("key", choices=sorted(FIGURES))
    f.add_argument("--seeds", type=int, nargs="+", default=[0])
    f.add_argument("--work", type=Path, default=Path("outputs/baseline_check"))
    f.add_argument("--frame-step", type=int, default=300)
    i = sub.add_parser("inspect", help="inspect a finished run's final policy")
    i.add_argument("run", type=Path)
    i.add_argument("--name", required=True)
    i.add_argument("--frame-step", type=int, default=300)
    i.add_argument("--model", type=Path, help="a folder with model.zip to play instead of final/")
    sub.add_parser("table", help="markdown tables from the JSON files")
    args = parser.parse_args(argv)
    # mujoco picks its offscreen GL backend when first imported (gymnasium imports it on gym.make).
    os.environ.setdefault("MUJOCO_GL", "egl")
    if args.cmd == "null":
        null_rows(args.out)
    elif args.cmd == "figure":
        figure(args.key, args.seeds, args.work, args.out, args.frame_step)
    elif args.cmd == "inspect":
        inspect_run(args.run, args.name, args.out, args.frame_step, model_dir=args.model)
    print(table(args.out))


if __name__ == "__main__":
    main()
