"""The continual learners alone: training-step cost at the loop's model sizes, and forgetting on a toy system.

    python benchmarks/hypercrl_learners.py [--parts speed,retention] [--seeds 0,1,2] [--out outputs/benchmarks]

speed: milliseconds per gradient step of each learner (robolearn.mbrl.continual.learners) on task 0 and
on task 1 (where HyperCRL's look-ahead regulariser and the EWC/SI penalties are on), median over
`--steps` steps after one warm-up fit, by wall clock and by this process's CPU time (steadier on a
shared machine), one torch thread. Sizes are the loop's (configs/loop/<env>.yaml):

  setting            obs/act  target MLP        head      batch  hypernetwork (official pairing)
  inverted_pendulum  4 / 1    64 x 64           mean      100    50 x 50 (fallback: not in the table)
  half_cheetah       18 / 6   4 x 200, SiLU     Gaussian  100    256 x 256 (34M weights); chunked: 25 x 30

retention: a toy pair of linear systems x' = A_t x + B_t u + noise (the tests' system, noise std 0.02,
300 transitions each). Each learner fits task 0, then task 1 (`--iters` gradient steps each); the
figure is the drift of the task-0 model's predictions, mean squared change over the mean squared
task-0 state change (0: nothing forgotten), with the task-1 MSE beside it (raw units). HyperCRL runs at
the official hypernetwork learning rate (1e-4) and at 1e-3 (beta 0.05, and 0.5 at 1e-3), deterministic
and Gaussian heads.

Writes hypercrl_learners.json and hypercrl_learners.md under --out.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from robolearn.mbrl.continual.learners import LEARNERS, ContinualLearner, make_learner
from robolearn.utils.io import atomic_write_json, atomic_write_text

SPEED_SETTINGS: dict[str, dict[str, Any]] = {
    "inverted_pendulum": {
        "obs": 4,
        "act": 1,
        "model": {"hidden": [64, 64], "activation": "relu", "gaussian": False, "batch_size": 100},
    },
    "half_cheetah": {
        "obs": 18,
        "act": 6,
        "model": {"hidden": [200, 200, 200, 200], "activation": "silu", "gaussian": True, "batch_size": 100},
    },
}


def _data(obs: int, act: int, n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    o = rng.normal(size=(n, obs)).astype(np.float32)
    a = rng.uniform(-1, 1, size=(n, act)).astype(np.float32)
    return o, a, (o + 0.1 * rng.normal(size=o.shape)).astype(np.float32)


def _time_steps(learner: ContinualLearner, task: int, data: Any, steps: int) -> tuple[float, float]:
    """Median wall and CPU milliseconds per gradient step over `steps` single-step fits."""
    learner.fit(task, *data)  # warm-up (allocations, optimiser state)
    wall, cpu = [], []
    for _ in range(steps):
        w0, c0 = time.perf_counter(), time.process_time()
        learner.fit(task, *data)
        wall.append(time.perf_counter() - w0)
        cpu.append(time.process_time() - c0)
    return 1000 * statistics.median(wall), 1000 * statistics.median(cpu)


def speed(steps: int) -> list[dict[str, Any]]:
    """Per-step training cost of every learner at each setting's sizes."""
    rows = []
    for setting, spec in SPEED_SETTINGS.items():
        data = _data(spec["obs"], spec["act"], 2000, 0)
        variants: list[tuple[str, dict[str, Any]]] = [(n, {}) for n in LEARNERS]
        variants.insert(1, ("hypercrl", {"chunked": True}))
        for name, extra in variants:
            cfg = {"model": {**spec["model"], "train_iters": 1}, **extra}
            learner = make_learner(name, spec["obs"], spec["act"], 3, cfg, "cpu", 0)
            learner.begin_task(0)
            t0 = _time_steps(learner, 0, data, steps)
            learner.end_task(0, *data)
            learner.begin_task(1)
            t1 = _time_steps(learner, 1, data, steps)
            label = name + (" (chunked)" if extra else "")
            rows.append(
                {
                    "setting": setting,
                    "learner": label,
                    "task0_wall_ms": t0[0],
                    "task0_cpu_ms": t0[1],
                    "task1_wall_ms": t1[0],
                    "task1_cpu_ms": t1[1],
                }
            )
            print(f"{setting:18s} {label:20s} task0 {t0[1]:8.1f} ms  task1 {t1[1]:8.1f} ms (CPU)", flush=True)
    return rows


_A = [np.array([[0.9, 0.1], [0.0, 0.95]]), np.array([[0.6, -0.4], [0.3, 1.1]])]
_B = [np.array([[0.5], [0.1]]), np.array([[-0.5], [0.7]])]


def _toy(task: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(1000 * seed + task)
    o = rng.normal(size=(300, 2)).astype(np.float32)
    a = rng.uniform(-1, 1, size=(300, 1)).astype(np.float32)
    n = o @ _A[task].T + a @ _B[task].T + 0.02 * rng.normal(size=o.shape)
    return o, a, n.astype(np.float32)


def retention(seeds: list[int], iters: int) -> list[dict[str, Any]]:
    """Task-0 prediction drift after training task 1, per learner configuration and seed."""
    configs: list[tuple[str, str, dict[str, Any]]] = []
    for gaussian in (False, True):
        for lr in (1e-4, 1e-3):
            for name in ("hypercrl", "hypercrl_noreg"):
                configs.append((name, f"lr {lr:g}", {"lr": lr, "gaussian": gaussian}))
        # beta 10x the default (the official value for door_pose / pusher_slide).
        configs.append(("hypercrl", "lr 0.001, beta 0.5", {"lr": 1e-3, "beta": 0.5, "gaussian": gaussian}))
        for name in ("finetune", "ewc", "si", "coreset", "multitask"):
            configs.append((name, "lr 0.001", {"gaussian": gaussian}))
    rows = []
    for name, label, c in configs:
        for seed in seeds:
            d0, d1 = _toy(0, seed), _toy(1, seed)
            model = {
                "hidden": [32, 32],
                "train_iters": iters,
                "batch_size": 32,
                "gaussian": c["gaussian"],
                "lr": 1e-3,
            }
            cfg = {"model": model, **{k: v for k, v in c.items() if k in ("lr", "beta")}}
            learner = make_learner(name, 2, 1, 2, cfg, "cpu", seed)
            learner.begin_task(0)
            learner.fit(0, *d0)
            learner.end_task(0, *d0)
            o0, a0, n0 = (torch.as_tensor(x) for x in d0)
            before = learner.model(0).predict_mean(o0, a0)
            learner.begin_task(1)
            learner.fit(1, *d1)
            learner.end_task(1, *d1)
            after = learner.model(0).predict_mean(o0, a0)
            o1, a1, n1 = (torch.as_tensor(x) for x in d1)
            mse1 = float(((learner.model(1).predict_mean(o1, a1) - n1) ** 2).mean())
            drift = float(((after - before) ** 2).mean() / ((n0 - o0) ** 2).mean())
            head = "Gaussian" if c["gaussian"] else "mean"
            rows.append(
                {"learner": name, "setting": label, "head": head, "seed": seed, "drift": drift, "mse1": mse1}
            )
            print(
                f"{name:15s} {label:9s} {head:8s} seed {seed}: drift {drift:.4f} task-1 MSE {mse1:.5f}",
                flush=True,
            )
    return rows


def _markdown(result: dict[str, Any]) -> str:
    lines = [
        "# Continual learners: step cost and toy forgetting",
        "",
        f"Machine: {result['machine']}; torch threads 1. Command: `{result['command']}`.",
        "",
    ]
    if result.get("speed"):
        lines += [
            "## Milliseconds per gradient step (CPU time; wall in parentheses)",
            "",
            "| setting | learner | task 0 | task 1 |",
            "|---|---|---|---|",
        ]
        for r in result["speed"]:
            lines.append(
                f"| {r['setting']} | {r['learner']} | {r['task0_cpu_ms']:.1f} ({r['task0_wall_ms']:.1f}) "
                f"| {r['task1_cpu_ms']:.1f} ({r['task1_wall_ms']:.1f}) |"
            )
        lines.append("")
    if result.get("retention"):
        lines += [
            "## Toy forgetting: task-0 prediction drift after task 1 (mean over seeds, min-max)",
            "",
            "| learner | setting | head | drift | task-1 MSE |",
            "|---|---|---|---|---|",
        ]
        groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
        for r in result["retention"]:
            groups.setdefault((r["learner"], r["setting"], r["head"]), []).append(r)
        for (name, setting, head), rs in groups.items():
            d = [r["drift"] for r in rs]
            m = [r["mse1"] for r in rs]
            lines.append(
                f"| {name} | {setting} | {head} | {np.mean(d):.4f} ({min(d):.4f}-{max(d):.4f}) | {np.mean(m):.5f} |"
            )
        lines.append("")
    return "\n".join(lines)


def main() -> None:
    """Run the chosen parts and write the json and markdown tables."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--parts", default="speed,retention")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--steps", type=int, default=5, help="timed gradient steps per learner and task")
    parser.add_argument(
        "--iters", type=int, default=300, help="gradient steps per task in the retention part"
    )
    parser.add_argument("--out", default="outputs/benchmarks")
    args = parser.parse_args()
    torch.set_num_threads(1)
    parts = set(args.parts.split(","))
    result: dict[str, Any] = {
        "machine": f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores",
        "command": "python benchmarks/hypercrl_learners.py "
        + " ".join(f"--{k} {v}" for k, v in vars(args).items()),
    }
    if "speed" in parts:
        result["speed"] = speed(args.steps)
    if "retention" in parts:
        result["retention"] = retention([int(s) for s in args.seeds.split(",")], args.iters)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "hypercrl_learners.json", result)
    atomic_write_text(out / "hypercrl_learners.md", _markdown(result))
    print(f"wrote {out / 'hypercrl_learners.md'}")


if __name__ == "__main__":
    main()
