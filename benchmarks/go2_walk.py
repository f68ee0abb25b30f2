"""Wall clock for PPO to learn flat walking on Go2Velocity: time until the evaluation first meets the bar.

    python benchmarks/go2_walk.py [recipe=prior|scratch|trot|trot_full|trot_widen|trot_relative|trot_deploy|trot_directional|trot_symmetric|trot_history|rough] [--seeds 0] [--steps N] [--out DIR]
                                  [--stop-after-min M] [--results DIR] [-- extra train overrides]

recipe=prior (the default; also --recipe prior): each seed is one `python -m robolearn.train
+experiment=go2_walk` run (128 envs on the batch backend, 2 threads; configs/experiment/go2_walk.yaml:
an open-loop trot prior, behaviour cloning, kickstarting) in a fixed folder, so an interrupted
benchmark resumes from the run's last checkpoint.

recipe=scratch: `+experiment=go2_walk_scratch` instead (rsl-rl-lib PPO with legged_gym's settings,
512 envs, the walking reward and forward-first command curriculum of configs/env/Go2VelocityWalk-v1.yaml;
no prior, no warm start), in <out>/scratch/seed_<N>. recipe=trot: `+experiment=go2_walk_trot` (the
same PPO with the 128-64-32 network, a gait clock in the observation and a contact-agreement reward in
place of the air window, configs/env/Go2VelocityTrot-v1.yaml); recipe=trot_full: the same without the
command curriculum (`+experiment=go2_walk_trot_full`); recipe=trot_widen: the trot recipe with the
curriculum's widening threshold at 0.7 instead of 0.8 (`+experiment=go2_walk_trot_widen`);
recipe=trot_relative: the trot recipe with the curriculum scored on relative tracking, 1 - error /
commanded speed, at 0.3 (`+experiment=go2_walk_trot_relative`); recipe=trot_deploy: trot_relative
with an actor that does not observe the base velocity (the critic does) and joint_vel_limits on, so
the policy deploys over DDS (`+experiment=go2_walk_trot_deploy`); recipe=trot_directional:
trot_relative with the curriculum scored per command direction, the worst deciding
(`+experiment=go2_walk_trot_directional`); recipe=trot_symmetric: trot_directional from a symmetric
forward-speed start range, vx in [-0.5, 0.5] (`+experiment=go2_walk_trot_symmetric`);
recipe=trot_history: trot_deploy with 5 observation frames (`+experiment=go2_walk_trot_history`);
recipe=rough: trot_history on legged_gym's terrain grid with its terrain curriculum
(`+experiment=go2_walk_rough`; its evaluations and checks run on random tiles of every level). Each from-scratch recipe runs in
<out>/<recipe>/seed_<N>. `--stop-after-min M` stops the training with
SIGINT after M minutes of this call (it checkpoints and exits; the next call resumes it), and
`--results DIR` copies each seed's small files (metrics.jsonl, config.yaml, the evaluation rows and
this script's summary.json with the time to the bar) to DIR/<recipe>_seed<N>/ for committing;
checkpoints stay in the run folder. After training, the gait check runs the newest checkpoint's
actor for 10 s at vx = 0.5 m/s and counts touch-downs (does it step?), and, with a command curriculum,
the same checkpoint is evaluated on the curriculum's current ranges and scored as the curriculum scores
(both scores, on its start, level-1 and full ranges). Every evaluation (20 deterministic episodes over the default
command range, commands resampled every 10 s) logs eval/lin_vel_error, the mean planar velocity
tracking error in m/s over all steps, and eval/terminated_fraction, the share of episodes that
ended in a fall. The bar is the issue's: velocity error under 0.2 m/s, yaw-rate error under 0.3 rad/s
and no falls. The script reports, per
seed, the wall clock (training plus evaluations, as the run's metrics.jsonl records it) and the
env steps at the first evaluation that met it, and the curve of both figures. The warm start's
prior (configs/experiment/go2_walk.yaml: method=prior_init) is also evaluated alone, on the same
eval env, episodes and seeds, so the table shows what PPO added to it.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
from locomotion_runs import (
    benchmark_parser,
    checkpoint_wall_time,
    curriculum_state,
    evaluation_rows,
    finish_machine,
    grid_check,
    machine_now,
    newest_actor,
    split_key,
    train,
    training_speed,
    velocity_check_lines,
    write_outputs,
)
from locomotion_runs import gait_check as velocity_gait_check

ERROR_BAR = 0.2  # m/s
YAW_BAR = 0.3  # rad/s
GOAL_S = 30 * 60
RECIPES = {
    "prior": "go2_walk",
    "scratch": "go2_walk_scratch",
    "trot": "go2_walk_trot",
    "trot_full": "go2_walk_trot_full",
    "trot_widen": "go2_walk_trot_widen",
    "trot_relative": "go2_walk_trot_relative",
    "trot_deploy": "go2_walk_trot_deploy",
    "trot_directional": "go2_walk_trot_directional",
    "trot_symmetric": "go2_walk_trot_symmetric",
    "trot_history": "go2_walk_trot_history",
    "rough": "go2_walk_rough",
}
DEFAULT_STEPS = {
    "prior": 3_000_000,
    "scratch": 200_000_000,
    "trot": 200_000_000,
    "trot_full": 200_000_000,
    "trot_widen": 200_000_000,
    "trot_relative": 200_000_000,
    "trot_deploy": 200_000_000,
    "trot_directional": 200_000_000,
    "trot_symmetric": 200_000_000,
    "trot_history": 200_000_000,
    "rough": 200_000_000,
}
GOAL_RANGES = [[-1.0, 1.0], [-0.5, 0.5], [-1.0, 1.0]]  # the goal's vx, vy, yaw ranges (every recipe's config)
GRID_SEED = 400  # the grid check's resets: seeds 400.. (none shared with evaluations or scores)
GAIT_COMMAND = 0.5  # m/s forward, for the touch-down count
GAIT_SECONDS = 10.0


def evaluations(run: Path) -> list[dict[str, float]]:
    """The run's evaluation rows: step, wall clock, return, tracking errors, fall share."""
    return evaluation_rows(run, ("lin_vel_error", "ang_vel_error"))


def gait_check(run: Path, seed: int) -> dict[str, float] | None:
    """The newest checkpoint's actor, deterministic, at vx = 0.5 m/s for 10 s: does it step?"""
    return velocity_gait_check(run, seed, GAIT_COMMAND, GAIT_SECONDS)


class _PriorActor:
    """A prior program with the `predict` that evaluate_policy calls."""

    def __init__(self, policy: Any) -> None:
        self.policy = policy

    def predict(self, obs: Any, deterministic: bool = True) -> tuple[Any, None]:
        return self.policy(obs), None


def _evaluate_like_the_run(
    cfg: Any, actor: Any, command_ranges: list[list[float]] | None = None
) -> dict[str, Any]:
    """An actor evaluated exactly as the run's evaluations are (same env, episodes and seeds), on the
    config's command ranges or on `command_ranges` ([[vx lo, hi], [vy lo, hi], [yaw lo, hi]])."""
    from omegaconf import OmegaConf

    from robolearn.envs import make_eval_env
    from robolearn.runs.evaluation import evaluate_policy

    env_cfg = cfg.env
    if command_ranges is not None:
        ranges = dict(zip(("lin_vel_x", "lin_vel_y", "ang_vel_z"), command_ranges, strict=True))
        env_cfg = OmegaConf.merge(cfg.env, {"kwargs": {"command_ranges": ranges}})
    env = make_eval_env(env_cfg)
    try:
        # evaluate_policy calls predict(obs, deterministic=)
        result = evaluate_policy(
            actor, env, int(cfg.eval.episodes), int(cfg.seed) + int(cfg.eval.seed_offset)
        )
    finally:
        env.close()
    means = result.metric_means()
    return {
        "return": float(result.mean_return),
        "lin_vel_error": float(means["lin_vel_error"]),
        "ang_vel_error": float(means["ang_vel_error"]),
        "terminated_fraction": float(result.terminated_fraction),
    }


def prior_alone(run: Path) -> dict[str, Any] | None:
    """The run's prior_init prior evaluated as the run's evaluations are (None without one)."""
    from omegaconf import OmegaConf

    from robolearn.llm.priors import load_prior
    from robolearn.methods.camel_prior import env_kwargs

    cfg: Any = OmegaConf.load(run / "config.yaml")
    method = cfg.get("method")
    if method is None or method.get("name") != "prior_init":
        return None
    prior = load_prior(str(method.prior), env_id=str(cfg.env.id), env_kwargs=env_kwargs(cfg))
    return {"prior": str(method.prior), **_evaluate_like_the_run(cfg, _PriorActor(prior.policy))}


class _ZeroActor:
    """Zero action: PD targets at the default pose, i.e. standing still (the from-scratch baseline)."""

    def predict(self, obs: Any, deterministic: bool = True) -> tuple[Any, None]:
        return np.zeros(12, dtype=np.float32), None


def zero_action(run: Path) -> dict[str, Any]:
    """Zero action evaluated exactly as the run's evaluations are (same env, episodes and seeds)."""
    from omegaconf import OmegaConf

    return _evaluate_like_the_run(OmegaConf.load(run / "config.yaml"), _ZeroActor())


def curriculum_eval(run: Path, curriculum: dict[str, Any] | None) -> dict[str, Any] | None:
    """The newest checkpoint's actor evaluated as the run's evaluations are, but with commands drawn
    from the curriculum's current ranges (what it has trained on), beside the full-range figures."""
    from omegaconf import OmegaConf

    from robolearn.evaluate import load_policy
    from robolearn.runs.layout import RunDir

    if curriculum is None:
        return None
    cfg: Any = OmegaConf.load(run / "config.yaml")
    model, _ = load_policy(RunDir(run), "latest", cfg)
    return {
        "step": curriculum["step"],
        "ranges": curriculum["ranges"],
        **_evaluate_like_the_run(cfg, model, curriculum["ranges"]),
    }


SCORE_EPISODES = 30
SCORE_RANGES = {  # vx, vy, yaw: the trot recipes' curriculum start, its level 1, the goal's full ranges
    "start": [[-0.3, 0.7], [-0.1, 0.1], [-0.2, 0.2]],
    "level_1": [[-0.55, 0.95], [-0.2, 0.2], [-0.4, 0.4]],
    "full": [[-1.0, 1.0], [-0.5, 0.5], [-1.0, 1.0]],
}


def curriculum_scores(run: Path) -> dict[str, dict[str, float]] | None:
    """The newest checkpoint's deterministic actor scored as the command curriculum scores a batch,
    on each of SCORE_RANGES (30 episodes of 20 s, standing commands included as in training, seeds
    200..229): `tracking_reward`, legged_gym's share (tracking_lin_vel per second of the full episode
    over its scale, mean over episodes) and `relative_tracking` (1 - summed planar error / summed
    commanded speed, pooled, a fall's missing steps counted as not moving). Says whether a threshold
    on each score can tell walking from stepping on the spot."""
    from robolearn.envs import make_eval_env

    actor = newest_actor(run)
    if actor is None:
        return None
    model, env_cfg = actor
    out: dict[str, dict[str, float]] = {}
    for name, ranges in SCORE_RANGES.items():
        kwargs = dict(env_cfg.get("kwargs") or {})
        kwargs.pop("command_curriculum", None)
        kwargs["command_ranges"] = dict(zip(("lin_vel_x", "lin_vel_y", "ang_vel_z"), ranges, strict=True))
        env = make_eval_env({**env_cfg, "kwargs": kwargs})
        task: Any = env.unwrapped
        col = task.reward_names.index("tracking_lin_vel")
        episode_steps = int(task.max_episode_steps or 1000)  # the task's own default, as it scores
        shares, error_total, command_total = [], 0.0, 0.0
        try:
            for episode in range(SCORE_EPISODES):
                obs, _ = env.reset(seed=200 + episode)
                error = command = tracking = 0.0
                steps = 0
                while True:
                    action, _ = model.predict(obs, deterministic=True)
                    commanded = float(np.linalg.norm(task.command[0, :2]))
                    obs, _, terminated, truncated, info = env.step(action)
                    steps += 1
                    error += float(info["metrics"]["lin_vel_error"])
                    command += commanded
                    tracking = float(task.term_sums[0, col])
                    if terminated or truncated or steps >= episode_steps:
                        break
                missing = max(episode_steps - steps, 0) * command / steps
                error_total += error + missing
                command_total += command + missing
                shares.append(tracking / (episode_steps * task.control_dt * task.reward_scales[col]))
        finally:
            env.close()
        out[name] = {
            "tracking_reward": float(np.mean(shares)),
            "relative_tracking": 1.0 - error_total / max(command_total, 1e-9),
        }
    return out


def meets_the_bar(lin_vel_error: float, ang_vel_error: float, falls: float) -> bool:
    """Both errors under the bars and no falls."""
    return lin_vel_error < ERROR_BAR and ang_vel_error < YAW_BAR and falls == 0


def first_meeting_the_bar(rows: list[dict[str, float]]) -> dict[str, float] | None:
    """The first evaluation with both errors under the bars and no falls."""
    for row in rows:
        if meets_the_bar(row["lin_vel_error"], row["ang_vel_error"], row["terminated_fraction"]):
            return row
    return None


def render(results: list[dict[str, Any]], machine: dict[str, Any], recipe: str) -> str:
    """Markdown: per seed, the time to the bar, the evaluation curve and the gait check."""
    lines = [
        f"Go2Velocity PPO, recipe={recipe}, machine: {machine['cpu']}, {machine['cores']} cores, "
        f"{machine['date']}, load {machine['load_before']} -> {machine['load_after']}",
        "",
        "| seed | a training evaluation met the bar (vel. < 0.2 m/s, yaw < 0.3 rad/s, no falls) | wall clock | "
        "env steps | grid check of the newest checkpoint: vel. / yaw / falls (forward / backward vel.) | "
        "bar over the ranges | goal (< 30 min) | env steps/s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for res in results:
        hit = res["first_meeting_bar"]
        speed = res.get("speed", {}).get("steps_per_s")
        sps = "—" if speed is None else f"{speed:,.0f}"
        grid = res.get("grid_check")
        held = grid is not None and meets_the_bar(grid["lin_vel_error"], grid["ang_vel_error"], grid["falls"])
        if grid is None:
            grid_cell = "—"
        else:
            grid_cell = (
                f"{grid['lin_vel_error']:.3f} / {grid['ang_vel_error']:.3f} / {grid['falls']} of {grid['commands']} "
                f"({grid['forward']['lin_vel_error']:.3f} / {grid['backward']['lin_vel_error']:.3f})"
            )
        rows = res["evaluations"]
        # The grid judges the newest checkpoint: the goal needs that checkpoint inside 30 minutes.
        at = res.get("checkpoint_wall_time_s")
        within = at is not None and at < GOAL_S
        goal = "met" if held and within else "**lost**"
        if hit is None:
            last = rows[-1] if rows else None
            reached = (
                "never"
                if last is None
                else f"not yet (last: {last['lin_vel_error']:.3f} m/s, {last['ang_vel_error']:.3f} rad/s)"
            )
            lines.append(
                f"| {res['seed']} | {reached} | — | — | {grid_cell} | {'yes' if held else '**no**'} | {goal} | {sps} |"
            )
        else:
            lines.append(
                f"| {res['seed']} | yes | {hit['wall_time_s'] / 60:.1f} min | {hit['step']:,} | {grid_cell} | "
                f"{'yes' if held else '**no**'} | {goal} | {sps} |"
            )
    for res in results:
        lines += [
            "",
            f"Seed {res['seed']}:",
            "",
            "| env steps | wall clock | eval return | lin. vel. error (m/s) | yaw-rate error (rad/s) | falls |",
            "|---|---|---|---|---|---|",
        ]
        zero = res.get("zero_action")
        if zero is not None:
            lines.append(
                f"| zero action (stands) | — | {zero['return']:.1f} | {zero['lin_vel_error']:.3f} | "
                f"{zero['ang_vel_error']:.3f} | {zero['terminated_fraction']:.0%} |"
            )
        alone = res.get("prior_alone")
        if alone is not None:
            lines.append(
                f"| prior {alone['prior']} alone | — | {alone['return']:.1f} | {alone['lin_vel_error']:.3f} | "
                f"{alone['ang_vel_error']:.3f} | {alone['terminated_fraction']:.0%} |"
            )
        for row in res["evaluations"]:
            lines.append(
                f"| {row['step']:,} | {row['wall_time_s'] / 60:.1f} min | {row['return']:.1f} | "
                f"{row['lin_vel_error']:.3f} | {row['ang_vel_error']:.3f} | {row['terminated_fraction']:.0%} |"
            )
        lines += velocity_check_lines(res)
        ce = res.get("curriculum_eval")
        if ce is not None:
            lines.append(
                f"Evaluated on those ranges (newest checkpoint, the run's eval episodes and seeds): "
                f"errors {ce['lin_vel_error']:.3f} m/s / {ce['ang_vel_error']:.3f} rad/s, "
                f"falls {ce['terminated_fraction']:.0%}, return {ce['return']:.1f}"
            )
        scores = res.get("curriculum_scores")
        if scores:
            lines.append(
                f"Curriculum scores of the newest checkpoint ({SCORE_EPISODES} deterministic episodes per range; "
                "tracking_reward / relative_tracking): "
                + ", ".join(
                    f"{name} {v['tracking_reward']:.2f} / {v['relative_tracking']:.2f}"
                    for name, v in scores.items()
                )
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    """Train each seed, find its time to the bar, write JSON and a markdown table."""
    recipe_arg, argv = split_key(sys.argv[1:], "recipe")
    parser = benchmark_parser(__doc__.splitlines()[0], "recipe", RECIPES, "outputs/benchmarks/go2_walk")
    args = parser.parse_args(argv)
    recipe = args.recipe or recipe_arg or "prior"
    if recipe not in RECIPES:
        raise SystemExit(f"recipe={recipe} is not a recipe; choose one of: {', '.join(RECIPES)}")
    steps = args.steps if args.steps is not None else DEFAULT_STEPS[recipe]
    out = args.out.resolve()
    runs = out if recipe == "prior" else out / recipe
    machine = machine_now()
    stop_s = None if args.stop_after_min is None else args.stop_after_min * 60.0
    results = []
    for seed in args.seeds:
        run = runs / f"seed_{seed}"
        if not args.no_train:
            train(RECIPES[recipe], seed, steps, run, args.extra, stop_s)
        rows = evaluations(run)
        results.append(
            {
                "seed": seed,
                "run": str(run),
                "evaluations": rows,
                "first_meeting_bar": first_meeting_the_bar(rows),
                "speed": training_speed(run),
                "prior_alone": prior_alone(run),
                "curriculum": (cur := curriculum_state(run)),
                "curriculum_eval": curriculum_eval(run, cur) if recipe != "prior" else None,
                "zero_action": zero_action(run) if recipe != "prior" else None,
                "gait_check": gait_check(run, seed) if recipe != "prior" else None,
                "curriculum_scores": curriculum_scores(run) if cur is not None else None,
                "grid_check": grid_check(run, GOAL_RANGES, seed=GRID_SEED),
                "checkpoint_wall_time_s": checkpoint_wall_time(run),
            }
        )
    finish_machine(machine)
    table = render(results, machine, recipe)
    name = "go2_walk" if recipe == "prior" else f"go2_walk_{recipe}"
    write_outputs(runs, name, machine, results, table, args.results, {"recipe": recipe})


if __name__ == "__main__":
    main()
