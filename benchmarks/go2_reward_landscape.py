"""Go2 reward landscape: what fixed behaviours earn, per reward term per second, under reward configs.

    python benchmarks/go2_reward_landscape.py [--envs 128] [--seconds 10] [--seed 0]
                                              [--out benchmarks/results/go2_reward_landscape]

No training. Each behaviour drives Go2Velocity-v1 on the batch backend (the env config's domain
randomisation and observation noise, `--envs` envs, `--seconds` of simulated time, commands drawn
once per env from a command distribution, fallen envs reset and their termination penalty paid):

- stand: zero action, i.e. PD targets at the default pose (the action is an offset from it, so
  "standing still at the default pose" and "zero action" are the same behaviour here);
- trot: the hand-written open-loop trot go2_clock_pattern (policies/priors/robolearn_Go2Velocity-v1/,
  the gait-prior recipe's prior), which reads only the command and a 0.5 s gait clock;
- random: Gaussian actions with std 1 (what a fresh PPO policy with init_noise_std 1.0 does);
- policy (with `--policy RUN_DIR`): the newest checkpoint's actor of an rsl_ppo run on Go2Velocity,
  deterministic, on the run's observation (e.g. the scratch recipe's, with the base velocity).

Every reward term of robolearn.envs.tasks.rewards is computed on every step (the terms do not act on
the physics), so one rollout per (behaviour, command distribution) scores every reward config in
CONFIGS: per term, its scale times its mean value (reward per second), and the total per second after
the task's only_positive_rewards clip with the termination penalty added after it, as the task pays
it. A config whose walking row does not beat its standing row teaches standing.

Writes landscape.json and landscape.md under --out and prints the table (docs/envs.md quotes it).
"""

from __future__ import annotations

import argparse
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import numpy as np

from robolearn.envs.tasks.rewards import LOCOMOTION_REWARDS
from robolearn.envs.tasks.velocity import ROBOT_DEFAULTS, VelocityTask
from robolearn.utils.io import atomic_write_json, atomic_write_text
from robolearn.utils.sysinfo import cpu_info

# configs/env/Go2Velocity-v1.yaml's randomisation (the env every Go2 run trains on).
RANDOMIZATION = {"friction": [0.5, 1.25], "joint_friction": [0.5, 1.5], "obs_noise": 1.0}
FULL = {"lin_vel_x": (-1.0, 1.0), "lin_vel_y": (-0.5, 0.5), "ang_vel_z": (-1.0, 1.0)}
# Command distributions (vx, vy, yaw rate ranges); standing_fraction: share of envs commanded to stand.
COMMANDS: dict[str, dict[str, Any]] = {
    "full": {"ranges": FULL, "standing_fraction": 0.1},
    # The walking config's curriculum start (configs/env/Go2VelocityWalk-v1.yaml), standing envs included.
    "forward": {
        "ranges": {"lin_vel_x": (0.3, 0.7), "lin_vel_y": (0.0, 0.0), "ang_vel_z": (0.0, 0.0)},
        "standing_fraction": 0.1,
    },
    "forward_0-0.5": {
        "ranges": {"lin_vel_x": (0.0, 0.5), "lin_vel_y": (0.0, 0.0), "ang_vel_z": (0.0, 0.0)},
        "standing_fraction": 0.0,
    },
    "vx=0.5": {
        "ranges": {"lin_vel_x": (0.5, 0.5), "lin_vel_y": (0.0, 0.0), "ang_vel_z": (0.0, 0.0)},
        "standing_fraction": 0.0,
    },
}

TODAY = dict(ROBOT_DEFAULTS["go2"]["reward_scales"])
# The candidate (configs/env/Go2VelocityWalk-v1.yaml): legged_gym's Go2 scales with three changes.
# - feet_air_time (legged_gym's: (air time - 0.5 s) paid at touch-down) is replaced by mjlab's
#   continuous air-time reward (feet_air_window, window 0.05-0.15 s, hard command gate; mjlab
#   src/mjlab/tasks/velocity/velocity_env_cfg.py RewardCfg.air_time and mdp/rewards.py feet_air_time):
#   legged_gym's pays a 0.25 s trot swing -0.25 per step, so it punishes the gait a learner finds first.
# - foot_clearance (mjlab mdp/rewards.py foot_clearance_reward's error, as a penalty): swing feet
#   that move should be 8 cm up, so steps are steps and not shuffles.
# Every other scale stays legged_gym's (action_rate, torques, lin_vel_z, ...).
WALK = {
    **TODAY,
    "feet_air_time": 0.0,
    "feet_air_window": 1.0,
    "foot_clearance": -10.0,
}
WALK_NO_CLEARANCE = {**WALK, "foot_clearance": 0.0}
MJLAB_LIKE = {
    # mjlab's velocity RewardCfg weights (tracking 1.0 each, action_rate -0.1, joint limits -1.0) with
    # its air-time term on; its positive `pose` term (a reward for the default posture) is left out.
    "tracking_lin_vel": 1.0,
    "tracking_ang_vel": 1.0,
    "action_rate": -0.1,
    "joint_limits": -1.0,
    "feet_air_window": 1.0,
    "termination": -50.0,
}
# Air-time terms with other parameters than the rollout task's (scored on the same steps): the
# context's air-time target or window replaced. A policy trained on `walk` taps its feet (about 18
# touch-downs/s) because feet_air_window pays per foot-second inside a short window; these pay
# longer swings instead.
VARIANT_TERMS: dict[str, tuple[str, dict[str, Any]]] = {
    "feet_air_time@0.25s": ("feet_air_time", {"air_time_target": 0.25}),
    "feet_air_window@0.2-0.5s": ("feet_air_window", {"air_time_window": (0.2, 0.5)}),
}
CONFIGS: dict[str, dict[str, float]] = {
    "today": TODAY,
    "walk": WALK,
    "walk_no_clearance": WALK_NO_CLEARANCE,
    "mjlab_like": MJLAB_LIKE,
    # legged_gym's touch-down air time with a 0.25 s target: pays (air time - 0.25) per step, so a
    # foot stepping f times a second earns about 0.5 - 0.25 f per second in a trot: slow steps win.
    "walk_lg_air_0.25": {**WALK, "feet_air_window": 0.0, "feet_air_time@0.25s": 1.0},
    # The continuous window moved to 0.2-0.5 s: only long swings earn.
    "walk_window_0.2-0.5": {**WALK, "feet_air_window": 0.0, "feet_air_window@0.2-0.5s": 1.0},
    # Both: the window's dense pay for any lifted foot, and the touch-down term charging each swing
    # shorter than 0.25 s, so a 0.1 s tap nets -0.10 and a 0.3 s swing +0.15 (scale x seconds).
    "walk_window+air_0.25": {**WALK, "feet_air_time@0.25s": 1.0},
}
BEHAVIOURS = ("stand", "trot", "random")


def _trot() -> Callable[[np.ndarray], np.ndarray]:
    from robolearn.llm.priors import load_prior

    prior = load_prior(
        "go2_clock_pattern", env_id="robolearn/Go2Velocity-v1", env_kwargs={"gait_period_s": 0.5}, probe=False
    )
    return prior.policy


class RunPolicy(NamedTuple):
    """A run's newest actor, loaded once (a running training may checkpoint meanwhile)."""

    act: Callable[[np.ndarray], np.ndarray]  # batched observations -> deterministic actions
    observe_base_lin_vel: bool
    step: int  # the checkpoint's env step


def load_run_policy(run: Path) -> RunPolicy:
    """The newest checkpoint's actor of an rsl_ppo run."""
    import json

    from omegaconf import OmegaConf

    from robolearn.evaluate import load_policy
    from robolearn.runs.layout import RunDir

    cfg: Any = OmegaConf.load(run / "config.yaml")
    step = int(json.loads((run / "checkpoints" / "latest.json").read_text(encoding="utf-8"))["step"])
    model, _ = load_policy(RunDir(run), "latest", cfg)

    def act(obs: np.ndarray) -> np.ndarray:
        return np.asarray(model.predict(obs, deterministic=True)[0])

    return RunPolicy(act, bool(cfg.env.kwargs.get("observe_base_lin_vel", False)), step)


def rollout(
    behaviour: str,
    commands: dict[str, Any],
    envs: int,
    seconds: float,
    seed: int,
    run: RunPolicy | None = None,
) -> dict[str, Any]:
    """Drive one behaviour under one command distribution; every term's per-step values, (T, N, K)."""
    policy = run.act if (behaviour == "policy" and run is not None) else None
    lin_vel = policy is not None and run is not None and run.observe_base_lin_vel
    task = VelocityTask(
        robot="go2",
        num_envs=envs,
        backend="batch",
        threads=os.cpu_count() or 1,
        randomization=RANDOMIZATION,
        command_ranges=commands["ranges"],
        standing_fraction=commands["standing_fraction"],
        command_resample_s=seconds + 1.0,
        # The trot reads the clock (no term below depends on it being observed); a policy its run's obs.
        gait_period_s=None if policy is not None else 0.5,
        observe_base_lin_vel=lin_vel,
        max_episode_steps=1000,
    )
    task.seed_rng(seed)
    rng = np.random.default_rng(seed + 1)
    trot = _trot() if behaviour == "trot" else None
    task.reset_envs(np.arange(envs))
    obs = task.observe(task.backend.frame())
    names = [*LOCOMOTION_REWARDS, *VARIANT_TERMS]
    steps = round(seconds / task.control_dt)
    values = np.zeros((steps, envs, len(names)), dtype=np.float32)
    lin_err = np.zeros(envs)
    yaw_err = np.zeros(envs)
    vx = np.zeros(envs)
    touchdowns = np.zeros(envs)
    falls = 0
    nj = task.robot_spec.num_joints
    for t in range(steps):
        if behaviour == "stand":
            action = np.zeros((envs, nj))
        elif behaviour == "random":
            action = rng.normal(0.0, 1.0, size=(envs, nj))
        elif policy is not None:
            action = policy(obs)
        else:
            assert trot is not None
            action = np.stack([trot(row) for row in obs])
        obs, _, terminated, truncated, _ = task.step_envs(action)
        ctx = task._metrics.ctx
        for k, name in enumerate(names):
            if name in VARIANT_TERMS:
                base, changes = VARIANT_TERMS[name]
                values[t, :, k] = LOCOMOTION_REWARDS[base](ctx._replace(**changes))
            else:
                values[t, :, k] = LOCOMOTION_REWARDS[name](ctx)
        metrics = task.step_metrics(ctx)
        lin_err += metrics["lin_vel_error"]
        yaw_err += metrics["ang_vel_error"]
        vx += ctx.base_lin_vel[:, 0]
        touchdowns += ctx.foot_first_contact.sum(axis=1)
        done = np.flatnonzero(terminated | truncated)
        if len(done):
            falls += int(terminated.sum())
            task.reset_envs(done)
            obs = task.observe(task.backend.frame())
    task.close()
    return {
        "names": names,
        "values": values,
        "control_dt": task.control_dt,
        "lin_vel_error": float(lin_err.mean() / steps),
        "yaw_rate_error": float(yaw_err.mean() / steps),
        "mean_vx": float(vx.mean() / steps),
        "touchdowns_per_s": float(touchdowns.mean() / seconds),
        "falls_per_env_minute": falls / envs / (seconds / 60.0),
    }


def score(roll: dict[str, Any], scales: dict[str, float]) -> dict[str, Any]:
    """Per-term reward per second and the total per second as the task pays it (only_positive_rewards)."""
    names = roll["names"]
    scale = np.array([float(scales.get(n, 0.0)) for n in names])
    weighted = roll["values"].astype(np.float64) * scale  # (T, N, K) reward per second
    is_term = np.array([n == "termination" for n in names])
    positive = np.clip(weighted[..., ~is_term].sum(axis=2), 0.0, None)
    total = positive + weighted[..., is_term].sum(axis=2)
    per_term = weighted.mean(axis=(0, 1))
    return {
        "total": float(total.mean()),
        "unclipped": float(weighted.sum(axis=2).mean()),
        "terms": {n: float(v) for n, v, s in zip(names, per_term, scale, strict=True) if s != 0.0},
    }


def render(results: dict[str, Any], machine: dict[str, Any], command: str) -> str:
    """Markdown: per config and command distribution, each behaviour's total and terms per second."""
    lines = [
        f"`{command}`; machine: {machine['cpu']}, {machine['cores']} cores, load {machine['load']}",
        "",
        *(
            [
                f"policy: {results['policy']['run']} at its checkpoint of step {results['policy']['checkpoint_step']:,}",
                "",
            ]
            if results.get("policy")
            else []
        ),
        "Behaviour figures (same rollouts for every config):",
        "",
        "| commands | behaviour | lin. vel. error (m/s) | yaw-rate error (rad/s) | mean vx (m/s) | "
        "touchdowns/s | falls per env-minute |",
        "|---|---|---|---|---|---|---|",
    ]
    for key, roll in results["rollouts"].items():
        cmd, beh = key.split("|")
        lines.append(
            f"| {cmd} | {beh} | {roll['lin_vel_error']:.3f} | {roll['yaw_rate_error']:.3f} | "
            f"{roll['mean_vx']:.2f} | {roll['touchdowns_per_s']:.1f} | {roll['falls_per_env_minute']:.2f} |"
        )
    for config, by_cmd in results["scores"].items():
        terms = sorted({t for per in by_cmd.values() for s in per.values() for t in s["terms"]})
        lines += [
            "",
            f"Config `{config}` (reward per second; total after the only-positive clip):",
            "",
            "| commands | behaviour | total | " + " | ".join(terms) + " |",
            "|---|---|---|" + "---|" * len(terms),
        ]
        for cmd, per in by_cmd.items():
            for beh, s in per.items():
                cells = " | ".join(f"{s['terms'].get(t, 0.0):+.3f}" for t in terms)
                lines.append(f"| {cmd} | {beh} | **{s['total']:.3f}** | {cells} |")
    return "\n".join(lines) + "\n"


def main() -> None:
    """Roll out every behaviour under every command distribution and score every config."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=int, default=128)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--commands", nargs="+", default=list(COMMANDS), choices=list(COMMANDS))
    parser.add_argument(
        "--policy", type=Path, default=None, help="an rsl_ppo run: add its actor as a behaviour"
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/go2_reward_landscape"))
    args = parser.parse_args()
    command = "python benchmarks/go2_reward_landscape.py " + " ".join(
        [f"--envs {args.envs}", f"--seconds {args.seconds:g}", f"--seed {args.seed}"]
        + (["--commands", *args.commands] if args.commands != list(COMMANDS) else [])
        + ([f"--policy {args.policy}"] if args.policy is not None else [])
    )
    behaviours = (*BEHAVIOURS, "policy") if args.policy is not None else BEHAVIOURS
    run = load_run_policy(args.policy) if args.policy is not None else None
    load_before = os.getloadavg()[0]
    rollouts: dict[str, Any] = {}
    scores: dict[str, dict[str, dict[str, Any]]] = {c: {} for c in CONFIGS}
    for cmd in args.commands:
        for beh in behaviours:
            t0 = time.perf_counter()
            roll = rollout(beh, COMMANDS[cmd], args.envs, args.seconds, args.seed, run)
            print(f"{cmd:8s} {beh:7s} {time.perf_counter() - t0:5.1f} s", flush=True)
            for config, scales in CONFIGS.items():
                scores[config].setdefault(cmd, {})[beh] = score(roll, scales)
            rollouts[f"{cmd}|{beh}"] = {k: v for k, v in roll.items() if k not in ("values", "names")}
    machine = {
        "cpu": cpu_info().get("model", "?"),
        "cores": os.cpu_count(),
        "load": f"{load_before:.2f} -> {os.getloadavg()[0]:.2f}",
    }
    results = {
        "command": command,
        "machine": machine,
        "policy": None if run is None else {"run": str(args.policy), "checkpoint_step": run.step},
        "commands": COMMANDS,
        "configs": CONFIGS,
        "rollouts": rollouts,
        "scores": scores,
    }
    table = render(results, machine, command)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(args.out / "landscape.json", results)
    atomic_write_text(args.out / "landscape.md", table)
    print(table)


if __name__ == "__main__":
    main()
