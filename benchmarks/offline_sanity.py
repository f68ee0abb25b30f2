"""Sanity benchmark for `python -m robolearn.offline`: do MOPO and MOBILE beat the data they learn from?

A small, fixed dataset of uniformly random InvertedPendulum-v5 steps (episodes cut at 50 steps, seed 0),
then MOPO and MOBILE for a few seeds with CPU-sized budgets; the table compares each run's final
evaluation return (10 deterministic episodes) with the dataset's own episode returns. The dataset and
every run directory go under --work (resumable: a finished run is skipped when the script runs again).

    python benchmarks/offline_sanity.py [--seeds 0 1 2] [--steps 2000] [--work outputs/offline_sanity]

Writes benchmarks/results/offline_sanity/{table.md,results.json} (--out).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
from pathlib import Path

import gymnasium as gym
import numpy as np

from robolearn.datasets import Episode, load_dataset, write_dataset

ENV = "InvertedPendulum-v5"


def make_dataset(out: Path, steps: int, seed: int = 0, cut: int = 50) -> Path:
    """Uniformly random actions, episodes cut at `cut` steps (a truncation), written with robolearn.datasets."""
    if (out / "data" / "metadata.json").is_file():
        return out
    env = gym.make(ENV)
    box = env.action_space
    assert isinstance(box, gym.spaces.Box)
    rng = np.random.default_rng(seed)
    episodes, total, i = [], 0, 0
    while total < steps:
        obs, _ = env.reset(seed=seed * 100_000 + i)
        i += 1
        o, a, r, term = [obs], [], [], []
        while True:
            act = np.asarray(rng.uniform(box.low, box.high), dtype=np.float32)
            obs, rew, te, tr, _ = env.step(act)
            o.append(obs)
            a.append(act)
            r.append(float(rew))
            term.append(bool(te))
            if te or tr or len(a) >= cut:
                break
        trunc = [False] * len(a)
        trunc[-1] = not term[-1]
        episodes.append(
            Episode(
                np.array(o, np.float32), np.array(a), np.array(r, np.float32), np.array(term), np.array(trunc)
            )
        )
        total += len(a)
    write_dataset(
        out,
        episodes,
        dataset_id="bench/invertedpendulum/random-v0",
        observation_space=env.observation_space,
        action_space=box,
        env_id=ENV,
        ref_min_score=0.0,  # InvertedPendulum: 0 (falls at once) to 1000 (balanced for the whole episode)
        ref_max_score=1000.0,
        provenance={"command": " ".join(sys.argv), "behaviour": "uniform random", "cut": cut, "seed": seed},
    )
    return out


def main() -> None:
    """Run the sweep and print the table."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", type=Path, default=Path("benchmarks/results/offline_sanity"))
    p.add_argument("--work", type=Path, default=Path("outputs/offline_sanity"))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--algos", nargs="+", default=["mopo", "mobile"])
    p.add_argument("--steps", type=int, default=2000)
    p.add_argument("--dataset-steps", type=int, default=5000)
    args = p.parse_args()
    out: Path = args.out
    work: Path = args.work
    out.mkdir(parents=True, exist_ok=True)
    ds = make_dataset(work / "dataset", args.dataset_steps)
    data_returns = load_dataset(ds).episode_returns()
    env = dict(os.environ, OMP_NUM_THREADS="1")
    common = [
        f"dataset={ds}",
        f"steps={args.steps}",
        "dynamics.max_epochs=30",
        "loop.rollout_every=250",
        "loop.rollout_batch=2000",
        f"loop.eval_every={args.steps}",
        "loop.eval_episodes=10",
        "loop.log_every=250",
        "loop.checkpoint_every=1000",
        "algo.num_samples=4",  # MOBILE's penalty samples (10 in the paper): the CPU cost
        "logger.progress=none",
    ]
    rows = []
    for algo in args.algos:
        for seed in args.seeds:
            run = work / "runs" / f"{algo}_seed{seed}"
            model = work / "runs" / f"mopo_seed{seed}"  # one ensemble per seed, shared by the algorithms
            extra = [f"model={model}"] if algo != "mopo" and (model / "dynamics.pt").is_file() else []
            cmd = [sys.executable, "-m", "robolearn.offline", f"algo={algo}", f"seed={seed}", *common, *extra]
            if not (run / "summary.json").is_file():
                subprocess.run([*cmd, f"hydra.run.dir={run}"], check=True, env=env)
            s = json.loads((run / "summary.json").read_text())
            rows.append(
                {
                    "algo": algo,
                    "seed": seed,
                    "return": s["eval/mean_return"],
                    "std": s["eval/std_return"],
                    "score": s["eval/normalized_score"],
                    "wall_s": s["wall_time_s"],
                }
            )
    cpu = (
        rows
        and json.loads(
            (work / "runs" / f"{rows[0]['algo']}_seed{rows[0]['seed']}" / "summary.json").read_text()
        )["cpu"]
    )
    lines = [
        f"machine: {cpu}; torch_threads 1; command: python {' '.join(sys.argv)}",
        f"dataset: {len(data_returns)} random episodes, {args.dataset_steps} steps; episode return mean "
        f"{data_returns.mean():.1f}, max {data_returns.max():.1f}",
        "",
        "| algo | seed | final return (10 episodes) | normalised score | wall s |",
        "|---|---|---|---|---|",
    ]
    lines += [
        f"| {r['algo']} | {r['seed']} | {r['return']:.1f} +- {r['std']:.1f} | {r['score']:.1f} | {r['wall_s']:.0f} |"
        for r in rows
    ]
    for algo in args.algos:
        vals = [r["return"] for r in rows if r["algo"] == algo]
        lines.append(f"| {algo} | mean of {len(vals)} | {np.mean(vals):.1f} (min {np.min(vals):.1f}) | | |")
    table = "\n".join(lines) + "\n"
    (out / "table.md").write_text(table)
    (out / "results.json").write_text(
        json.dumps({"dataset_return_mean": float(data_returns.mean()), "runs": rows}, indent=2) + "\n"
    )
    print(table)


if __name__ == "__main__":
    main()
