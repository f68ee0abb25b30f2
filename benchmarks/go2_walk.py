"""Wall clock for PPO to learn flat walking on Go2Velocity: time until the evaluation first meets the bar.

    python benchmarks/go2_walk.py [--seeds 0] [--steps 3000000] [--out outputs/benchmarks/go2_walk]
                                  [-- extra train overrides]

Each seed is one `python -m robolearn.train +experiment=go2_walk` run (128 envs on the batch backend,
2 threads; configs/experiment/go2_walk.yaml) in a fixed folder, so an interrupted benchmark resumes
from the run's last checkpoint. Every evaluation (20 deterministic episodes over the default
command range, commands resampled every 10 s) logs eval/lin_vel_error, the mean planar velocity
tracking error in m/s over all steps, and eval/terminated_fraction, the share of episodes that
ended in a fall. The bar is the issue's: error under 0.2 m/s and no falls. The script reports, per
seed, the wall clock (training plus evaluations, as the run's metrics.jsonl records it) and the
env steps at the first evaluation that met it, and the curve of both figures. The warm start's
prior (configs/experiment/go2_walk.yaml: method=prior_init) is also evaluated alone, on the same
eval env, episodes and seeds, so the table shows what PPO added to it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from robolearn.runs.metrics import read_metrics
from robolearn.utils.io import atomic_write_json, atomic_write_text
from robolearn.utils.sysinfo import cpu_info

ERROR_BAR = 0.2  # m/s
GOAL_S = 30 * 60


def train(seed: int, steps: int, out: Path, extra: list[str]) -> Path:
    """Run (or resume, or skip when complete) one seed's training; returns its run folder."""
    run = out / f"seed_{seed}"
    cmd = [
        sys.executable,
        "-m",
        "robolearn.train",
        "+experiment=go2_walk",
        f"seed={seed}",
        f"steps={steps}",
        "logger.progress=lines",
        f"hydra.run.dir={run}",
        *extra,
    ]
    print("$", " ".join(cmd[1:]), flush=True)
    subprocess.run(cmd, check=True)
    return run


def evaluations(run: Path) -> list[dict[str, float]]:
    """The run's evaluation rows: step, wall clock, return, tracking error, fall share."""
    return [
        {
            "step": int(row["step"]),
            "wall_time_s": float(row["wall_time_s"]),
            "return": float(row["eval/mean_return"]),
            "lin_vel_error": float(row["eval/lin_vel_error"]),
            "ang_vel_error": float(row["eval/ang_vel_error"]),
            "terminated_fraction": float(row["eval/terminated_fraction"]),
        }
        for row in read_metrics(run / "metrics.jsonl")
        if "eval/lin_vel_error" in row
    ]


class _PriorActor:
    """A prior program with the `predict` that evaluate_policy calls."""

    def __init__(self, policy: Any) -> None:
        self.policy = policy

    def predict(self, obs: Any, deterministic: bool = True) -> tuple[Any, None]:
        return self.policy(obs), None


def prior_alone(run: Path) -> dict[str, float] | None:
    """The run's prior_init prior evaluated as the run's evaluations are (None without one)."""
    from omegaconf import OmegaConf

    from robolearn.envs import make_eval_env
    from robolearn.llm.priors import load_prior
    from robolearn.methods.camel_prior import env_kwargs
    from robolearn.runs.evaluation import evaluate_policy

    cfg = OmegaConf.load(run / "config.yaml")
    method = cfg.get("method")
    if method is None or method.get("name") != "prior_init":
        return None
    prior = load_prior(str(method.prior), env_id=str(cfg.env.id), env_kwargs=env_kwargs(cfg))
    env = make_eval_env(cfg.env)
    try:
        result = evaluate_policy(
            _PriorActor(prior.policy), env, int(cfg.eval.episodes), int(cfg.seed) + int(cfg.eval.seed_offset)
        )
    finally:
        env.close()
    means = result.metric_means()
    return {
        "prior": str(method.prior),
        "return": float(result.mean_return),
        "lin_vel_error": float(means["lin_vel_error"]),
        "ang_vel_error": float(means["ang_vel_error"]),
        "terminated_fraction": float(result.terminated_fraction),
    }


def first_meeting_the_bar(rows: list[dict[str, float]]) -> dict[str, float] | None:
    """The first evaluation with error under the bar and no falls."""
    for row in rows:
        if row["lin_vel_error"] < ERROR_BAR and row["terminated_fraction"] == 0.0:
            return row
    return None


def render(results: list[dict[str, Any]], machine: dict[str, Any]) -> str:
    """Markdown: per seed, the time to the bar and the evaluation curve."""
    lines = [
        f"Go2Velocity PPO, machine: {machine['cpu']}, {machine['cores']} cores, {machine['date']}, "
        f"load {machine['load_before']} -> {machine['load_after']}",
        "",
        "| seed | met the bar (error < 0.2 m/s, no falls) | wall clock | env steps | goal (< 30 min) |",
        "|---|---|---|---|---|",
    ]
    for res in results:
        hit = res["first_meeting_bar"]
        if hit is None:
            last = res["evaluations"][-1] if res["evaluations"] else None
            reached = "never" if last is None else f"no (last: {last['lin_vel_error']:.3f} m/s)"
            lines.append(f"| {res['seed']} | {reached} | — | — | **lost** |")
        else:
            verdict = "met" if hit["wall_time_s"] < GOAL_S else "**lost**"
            lines.append(
                f"| {res['seed']} | yes | {hit['wall_time_s'] / 60:.1f} min | {hit['step']:,} | {verdict} |"
            )
    for res in results:
        lines += [
            "",
            f"Seed {res['seed']}:",
            "",
            "| env steps | wall clock | eval return | lin. vel. error (m/s) | yaw-rate error (rad/s) | falls |",
            "|---|---|---|---|---|---|",
        ]
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
    return "\n".join(lines) + "\n"


def main() -> None:
    """Train each seed, find its time to the bar, write JSON and a markdown table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--steps", type=int, default=3_000_000)
    parser.add_argument("--out", type=Path, default=Path("outputs/benchmarks/go2_walk"))
    parser.add_argument("extra", nargs="*", help="train overrides after --")
    args = parser.parse_args()
    out = args.out.resolve()
    machine: dict[str, Any] = {
        "cpu": cpu_info().get("model", "?"),
        "cores": os.cpu_count(),
        "load_before": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }
    results = []
    for seed in args.seeds:
        run = train(seed, args.steps, out, args.extra)
        rows = evaluations(run)
        results.append(
            {
                "seed": seed,
                "run": str(run),
                "evaluations": rows,
                "first_meeting_bar": first_meeting_the_bar(rows),
                "prior_alone": prior_alone(run),
            }
        )
    machine["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    table = render(results, machine)
    atomic_write_json(out / "go2_walk.json", {"machine": machine, "results": results})
    atomic_write_text(out / "go2_walk.md", table)
    print(table)


if __name__ == "__main__":
    main()
