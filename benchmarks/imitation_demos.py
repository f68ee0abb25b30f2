"""Demonstrations benchmark (issue 18): each scripted expert's success rate and each task's speed.

For every task, `--demos` expert episodes on pretraining contexts and as many on finetuning contexts
(fixed seeds: robolearn.imitation.collect's demo_seeds), counting successes and env steps per second
(expert included); for pointmass_pixels also the raw 64x64 render rate of MuJoCo's offscreen renderer.
go2_command runs only with --go2-expert (a policy artifact; the shipped go2_stand only checks plumbing).

    python benchmarks/imitation_demos.py [--demos 100] [--tasks pointmass_pixels reacher pusher bimodal]
        [--go2-expert policies/reference/go2_stand] [--out benchmarks/results/imitation_demos]

Writes <out>/results.json (after every task, so an interrupted run keeps what finished) and <out>/table.md.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from robolearn.imitation.collect import demo_seeds, run_demo
from robolearn.imitation.tasks import SPLITS, PointMassEnv, get_task
from robolearn.utils.io import atomic_write_json, atomic_write_text

SCRIPTED = ("pointmass_pixels", "reacher", "pusher", "bimodal")


def wilson(successes: int, n: int, z: float = 1.96) -> tuple[float, float]:
    """95% Wilson score interval of a success rate."""
    if n == 0:
        return (float("nan"), float("nan"))
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return (float(centre - half), float(centre + half))


def bench_task(name: str, demos: int, overrides: dict[str, Any]) -> dict[str, Any]:
    """Expert success per split and steps/s for one task."""
    task = get_task(name, **overrides)
    out: dict[str, Any] = {"task": name}
    for split in SPLITS:
        contexts = task.sample_contexts(demos, split, seed=0)
        wins, steps, tracking = 0, 0, []
        started = time.perf_counter()
        for i, context in enumerate(contexts):
            episode = run_demo(task, context, *demo_seeds(0, i))
            wins += bool(episode.infos["success"][-1])
            steps += episode.steps
            if "tracking_error" in episode.infos:
                tracking.append(float(episode.infos["tracking_error"][1:].mean()))
        seconds = time.perf_counter() - started
        low, high = wilson(wins, demos)
        out[split] = {
            "success_rate": wins / demos,
            "successes": wins,
            "demos": demos,
            "ci95": [low, high],
            "steps": steps,
            "steps_per_s": steps / seconds,
        }
        if tracking:
            out[split]["tracking_error"] = float(np.mean(tracking))
    return out


def render_rate(frames: int = 500, size: int = 64) -> float:
    """Frames/s of PointMassEnv's offscreen render alone (after a warm-up frame)."""
    env = PointMassEnv(np.zeros(2), pixels=True, image_size=size)
    env.reset(seed=0)
    env.render()
    started = time.perf_counter()
    for i in range(frames):
        env.data.qpos[0] = -0.25 + 0.5 * i / frames
        env.render()
    return frames / (time.perf_counter() - started)


def table(results: dict[str, Any]) -> str:
    """A markdown table of the results."""
    lines = [
        f"Machine: {results['machine']}. Command: `{results['command']}`.",
        "",
        "| task | split | expert success | 95% CI | steps/s (env + expert) |",
        "|---|---|---|---|---|",
    ]
    for row in results["tasks"]:
        for split in SPLITS:
            r = row[split]
            extra = f" (tracking error {r['tracking_error']:.3f} m/s)" if "tracking_error" in r else ""
            lines.append(
                f"| {row['task']} | {split} | {r['successes']}/{r['demos']} = {r['success_rate']:.3f}{extra} | "
                f"[{r['ci95'][0]:.3f}, {r['ci95'][1]:.3f}] | {r['steps_per_s']:.0f} |"
            )
    if "render_fps_64" in results:
        lines += [
            "",
            f"pointmass_pixels 64x64 offscreen render alone: {results['render_fps_64']:.0f} frames/s.",
        ]
    return "\n".join(lines) + "\n"


def main() -> None:
    """Run the benchmark and write results.json and table.md."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--demos", type=int, default=100)
    parser.add_argument("--tasks", nargs="+", default=list(SCRIPTED))
    parser.add_argument("--go2-expert", default=None)
    parser.add_argument("--out", default="benchmarks/results/imitation_demos")
    parser.add_argument(
        "--machine", default="unnamed machine", help="what ran it, for the table (e.g. its load)"
    )
    args = parser.parse_args()
    out = Path(args.out)
    results: dict[str, Any] = {
        "command": "python benchmarks/imitation_demos.py "
        + f"--demos {args.demos} --tasks {' '.join(args.tasks)}"
        + (f" --go2-expert {args.go2_expert}" if args.go2_expert else ""),
        "machine": f"{args.machine} ({os.cpu_count()} CPUs seen, {platform.machine()})",
        "tasks": [],
    }
    if "pointmass_pixels" in args.tasks:
        results["render_fps_64"] = render_rate()
    runs: list[tuple[str, dict[str, Any]]] = [(name, {}) for name in args.tasks]
    if args.go2_expert:
        runs.append(("go2_command", {"expert_path": args.go2_expert}))
    for name, overrides in runs:
        results["tasks"].append(bench_task(name, args.demos, overrides))
        atomic_write_json(out / "results.json", results)
        print(json.dumps(results["tasks"][-1]))
    atomic_write_text(out / "table.md", table(results))
    print(table(results))


if __name__ == "__main__":
    main()
