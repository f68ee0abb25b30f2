"""G1 locomotion from a reward (issue 16): velocity walking and whole-body motion tracking, per seed.

    python benchmarks/g1_locomotion.py task=walk|tracking [--seeds 0] [--steps N] [--out DIR]
                                       [--stop-after-min M] [--results DIR] [--no-train] [-- overrides]

task=walk: each seed is one `python -m robolearn.train +experiment=g1_walk` run (rsl-rl-lib PPO, 512
batch envs, unitree_rl_gym's G1 reward with its gait clock: configs/experiment/g1_walk.yaml) in
<out>/walk/seed_<N>. Its evaluations (10 deterministic 20 s episodes over the full command ranges)
log eval/lin_vel_error (m/s), eval/ang_vel_error (rad/s) and eval/terminated_fraction. The goal is the
issue's: velocity error under 0.25 m/s over 20 s episodes without a fall. After training, the newest
checkpoint walks 20 s at vx = 0.5 m/s in nominal simulation (the gait check: touch-downs, mean speed,
errors, falls; no randomisation, pushes or observation noise) beside
unitree_rl_gym's pretrained G1 leg policy on the same command, as benchmarks/legged_gym_import.py
measured it (benchmarks/results/legged_gym_import/legged_gym_import.json, when present), and the grid
check runs it on 125 commands over the goal's ranges (benchmarks/locomotion_runs.py grid_check).

task=tracking: `+experiment=g1_tracking` (BeyondMimic's PPO settings and adaptive start sampling, 512
batch envs) in <out>/tracking/seed_<N>; its evaluations (8 deterministic episodes from random frames)
log eval/body_pos_error, eval/anchor_pos_error (m) and eval/anchor_rot_error (rad). After training,
the clip check plays each shipped clip from its first frame (`start: first`) in nominal simulation
(no randomisation, no observation noise), 20 deterministic episodes per clip (seeds 300..319; only
the start's joint noise differs), and counts the episodes that complete the clip (or 10 s of a
looping clip) without a fall. The goal is the issue's: at least 90 % complete on every clip, with the
mean body-position error in mm.

`--stop-after-min M` stops the training with SIGINT after M minutes of this call (a checkpoint, then
exit; the next call resumes it), `--results DIR` copies each seed's small files (metrics.jsonl,
config.yaml, the evaluation rows and this script's summary.json) to DIR/<task>_seed<N>/ for
committing, and `--no-train` only reports the existing runs. Wall clocks are the run's own
(metrics.jsonl: training plus evaluations, summed over resumes).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
from locomotion_runs import (
    benchmark_parser,
    curriculum_state,
    evaluation_rows,
    finish_machine,
    gait_check,
    grid_check,
    machine_now,
    newest_actor,
    split_key,
    train,
    training_speed,
    velocity_check_lines,
    write_outputs,
)

REPO = Path(__file__).resolve().parents[1]
TASKS = {"walk": "g1_walk", "tracking": "g1_tracking"}
STEPS = 200_000_000  # a ceiling: the runs stop on wall clock and resume
WALK_BAR = 0.25  # m/s, over 20 s episodes without a fall
COMPLETE_BAR = 0.9  # share of a clip's episodes played to the end without a fall
GAIT_COMMAND = 0.5  # m/s forward: the command unitree_rl_gym's policy was measured on
GAIT_SECONDS = 20.0
GRID_SEED = 400  # the grid check's resets (as benchmarks/go2_walk.py)
CLIP_EPISODES = 20
CLIP_SEED = 300
EVAL_METRICS = {
    "walk": ("lin_vel_error", "ang_vel_error"),
    "tracking": ("body_pos_error", "anchor_pos_error", "anchor_rot_error"),
}
REFERENCE = REPO / "benchmarks" / "results" / "legged_gym_import" / "legged_gym_import.json"


def meets_walk_bar(row: dict[str, float]) -> bool:
    """An evaluation under the velocity-error bar with no falls."""
    return row["lin_vel_error"] < WALK_BAR and row["terminated_fraction"] == 0.0


def first_walking(rows: list[dict[str, float]]) -> dict[str, float] | None:
    """The first evaluation that meets the walking bar."""
    return next((row for row in rows if meets_walk_bar(row)), None)


def clip_check(run: Path) -> dict[str, dict[str, float]] | None:
    """The newest checkpoint's actor on each clip from its first frame, nominal simulation:
    complete share, falls and mean body-position error (mm), CLIP_EPISODES deterministic episodes."""
    from robolearn.envs import make_eval_env
    from robolearn.runs.evaluation import evaluate_policy

    actor = newest_actor(run)
    if actor is None:
        return None
    model, env_cfg = actor
    probe = make_eval_env(env_cfg)
    clips = list(probe.unwrapped.clip_names)  # type: ignore[attr-defined]
    probe.close()
    out: dict[str, dict[str, float]] = {}
    for clip in clips:
        kwargs = dict(env_cfg.get("kwargs") or {})
        kwargs.update(clips=[clip], start="first", randomization=None)
        env = make_eval_env({**env_cfg, "kwargs": kwargs})
        try:
            result = evaluate_policy(model, env, CLIP_EPISODES, CLIP_SEED)
        finally:
            env.close()
        means = result.metric_means()
        out[clip] = {
            "episodes": CLIP_EPISODES,
            "complete": 1.0 - result.terminated_fraction,
            "mean_length": float(np.mean(result.lengths)),
            "body_pos_error_mm": 1000.0 * means["body_pos_error"],
            "anchor_pos_error_mm": 1000.0 * means["anchor_pos_error"],
        }
    return out


def goal_ranges(run: Path) -> list[list[float]]:
    """The run's config's full command ranges (vx, vy, yaw), which the goal is measured over."""
    from omegaconf import OmegaConf

    ranges = OmegaConf.load(run / "config.yaml").env.kwargs.command_ranges
    return [[float(v) for v in ranges[key]] for key in ("lin_vel_x", "lin_vel_y", "ang_vel_z")]


def reference_walk() -> dict[str, Any] | None:
    """unitree_rl_gym's G1 policy in its MuJoCo deploy setup, as legged_gym_import.py measured it."""
    if not REFERENCE.is_file():
        return None
    rows = json.loads(REFERENCE.read_text(encoding="utf-8"))
    row = next((r for r in rows if r.get("yaml") == "deploy_mujoco/g1.yaml"), None)
    if row is None:
        return None
    return {
        "source": str(REFERENCE.relative_to(REPO)),
        "command_vx": GAIT_COMMAND,
        "seconds": row["closed_loop_s"],
        "mean_vx": row["mean_vx"],
        "fell_at_s": row["fell_at_s"],
    }


def render(task: str, results: list[dict[str, Any]], machine: dict[str, Any]) -> str:
    """Markdown: per seed, the goal's verdict, the evaluation curve and the post-training check."""
    metrics = EVAL_METRICS[task]
    head = (
        f"G1 {task}, `python benchmarks/g1_locomotion.py task={task}`, machine: {machine['cpu']}, "
        f"{machine['cores']} cores, {machine['date']}, load {machine['load_before']} -> {machine['load_after']}"
    )
    lines = [head, ""]
    if task == "walk":
        lines += [
            f"| seed | first training evaluation under {WALK_BAR} m/s, no falls (wall clock, env steps) | "
            f"last evaluation | gait check: {GAIT_COMMAND} m/s for {GAIT_SECONDS:g} s | walks (gait check "
            f"under {WALK_BAR} m/s, no fall; nominal) | env steps/s |",
            "|---|---|---|---|---|---|",
        ]
    else:
        lines += [
            f"| seed | every clip ≥ {COMPLETE_BAR:.0%} complete (nominal, from frame 0) | "
            "worst clip | mean body-pos. error | wall clock | env steps | env steps/s |",
            "|---|---|---|---|---|---|---|",
        ]
    for res in results:
        rows = res["evaluations"]
        last = rows[-1] if rows else None
        speed = res.get("speed", {}).get("steps_per_s")
        sps = "—" if speed is None else f"{speed:,.0f}"
        where = "—" if last is None else f"{last['wall_time_s'] / 60:.1f} min"
        steps = "—" if last is None else f"{last['step']:,}"
        if task == "walk":
            hit = res.get("first_walking")
            lastf = (
                "—"
                if last is None
                else f"{last['lin_vel_error']:.3f} m/s, {last['ang_vel_error']:.3f} rad/s, falls {last['terminated_fraction']:.0%}"
            )
            first = (
                f"not yet ({where}, {steps} steps trained)"
                if hit is None
                else f"{hit['wall_time_s'] / 60:.1f} min, {hit['step']:,}"
            )
            gait = res.get("gait_check")
            gaitf = (
                "—"
                if gait is None
                else f"{gait['lin_vel_error']:.3f} m/s, mean vx {gait['mean_vx']:.2f}, falls {gait['falls']}"
            )
            walks = gait is not None and gait["lin_vel_error"] < WALK_BAR and gait["falls"] == 0
            lines.append(
                f"| {res['seed']} | {first} | {lastf} | {gaitf} | {'yes' if walks else '**no**'} | {sps} |"
            )
        else:
            clips = res.get("clip_check") or {}
            if clips:
                worst = min(clips, key=lambda c: clips[c]["complete"])
                held = all(v["complete"] >= COMPLETE_BAR for v in clips.values())
                err = np.mean([v["body_pos_error_mm"] for v in clips.values()])
                lines.append(
                    f"| {res['seed']} | {'yes' if held else '**no**'} | {worst} {clips[worst]['complete']:.0%} | "
                    f"{err:.0f} mm | {where} | {steps} | {sps} |"
                )
            else:
                lines.append(f"| {res['seed']} | — (no checkpoint) | — | — | {where} | {steps} | {sps} |")
    for res in results:
        lines += [
            "",
            f"Seed {res['seed']}:",
            "",
            "| env steps | wall clock | eval return | " + " | ".join(metrics) + " | falls |",
            "|---|---|---|" + "---|" * len(metrics) + "---|",
        ]
        for row in res["evaluations"]:
            values = " | ".join(f"{row[m]:.3f}" if m in row else "—" for m in metrics)
            lines.append(
                f"| {row['step']:,} | {row['wall_time_s'] / 60:.1f} min | {row['return']:.1f} | {values} | "
                f"{row['terminated_fraction']:.0%} |"
            )
        lines += velocity_check_lines(res)
        ref = res.get("reference")
        if ref is not None:
            fell = "no fall" if ref["fell_at_s"] is None else f"fell at {ref['fell_at_s']:.1f} s"
            lines.append(
                f"unitree_rl_gym's pretrained G1 policy on the same command ({ref['source']}, "
                f"{ref['seconds']:g} s): mean vx {ref['mean_vx']:.2f} m/s, {fell}"
            )
        clips = res.get("clip_check")
        if clips:
            lines += [
                "",
                f"Clip check (newest checkpoint, each clip from its first frame, nominal, {CLIP_EPISODES} episodes):",
                "",
                "| clip | complete | mean length (steps) | body-pos. error (mm) | anchor-pos. error (mm) |",
                "|---|---|---|---|---|",
            ]
            for clip, v in clips.items():
                lines.append(
                    f"| {clip} | {v['complete']:.0%} | {v['mean_length']:.0f} | {v['body_pos_error_mm']:.0f} | "
                    f"{v['anchor_pos_error_mm']:.0f} |"
                )
    return "\n".join(lines) + "\n"


def main() -> None:
    """Train (or resume) each seed, check it, write JSON and a markdown table."""
    task_arg, argv = split_key(sys.argv[1:], "task")
    parser = benchmark_parser(__doc__.splitlines()[0], "task", TASKS, "outputs/benchmarks/g1_locomotion")
    args = parser.parse_args(argv)
    task = args.task or task_arg
    if task not in TASKS:
        raise SystemExit(f"task={task} is not a task; choose one of: {', '.join(TASKS)} (e.g. task=walk)")
    runs = args.out.resolve() / task
    machine = machine_now()
    stop_s = None if args.stop_after_min is None else args.stop_after_min * 60.0
    results = []
    for seed in args.seeds:
        run = runs / f"seed_{seed}"
        if not args.no_train:
            train(TASKS[task], seed, args.steps or STEPS, run, args.extra, stop_s)
        rows = evaluation_rows(run, EVAL_METRICS[task])
        res: dict[str, Any] = {
            "seed": seed,
            "run": str(run),
            "evaluations": rows,
            "speed": training_speed(run),
        }
        if task == "walk":
            res["first_walking"] = first_walking(rows)
            res["curriculum"] = curriculum_state(run)
            # Nominal, as unitree_rl_gym's policy was measured beside it (no pushes, no noise).
            res["gait_check"] = gait_check(run, seed, GAIT_COMMAND, GAIT_SECONDS, nominal=True)
            res["reference"] = reference_walk()
            res["grid_check"] = grid_check(run, goal_ranges(run), seed=GRID_SEED)
        else:
            res["clip_check"] = clip_check(run)
        results.append(res)
    finish_machine(machine)
    table = render(task, results, machine)
    write_outputs(runs, f"g1_{task}", machine, results, table, args.results, {"task": task})


if __name__ == "__main__":
    main()
