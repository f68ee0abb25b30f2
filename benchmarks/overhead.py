"""Env steps/s through robolearn's env stack vs the bare `gymnasium.make` env, side by side.

    python benchmarks/overhead.py [--steps 20000] [--rounds 5] [--out outputs/benchmarks/overhead.json]

"ours" is exactly what a training run steps per env: robolearn.envs.make_env (gymnasium.make without
the passive checker) + SB3's Monitor + the snapshot wrapper used for resumption. "bare" is
`gymnasium.make(id)` with its default wrappers. Rounds alternate bare/ours so drift in machine load
hits both; the reported ratio is the median over rounds of ours/bare.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np
from omegaconf import OmegaConf
from stable_baselines3.common.monitor import Monitor

from robolearn.envs import EnvSnapshotWrapper, make_env
from robolearn.utils.sysinfo import cpu_info, package_versions


def _steps_per_s(env: gym.Env, actions: np.ndarray) -> float:
    env.reset(seed=0)
    start = time.perf_counter()
    for action in actions:
        _, _, terminated, truncated, _ = env.step(action)
        if terminated or truncated:
            env.reset()
    return len(actions) / (time.perf_counter() - start)


def measure(env_id: str, steps: int, rounds: int) -> dict[str, Any]:
    """Median steps/s of bare and robolearn envs over alternating rounds."""
    cfg = OmegaConf.create({"id": env_id, "kwargs": {}, "max_episode_steps": None})
    bare = gym.make(env_id)
    ours = EnvSnapshotWrapper(Monitor(make_env(cfg)))
    rng = np.random.default_rng(0)
    low, high = bare.action_space.low, bare.action_space.high  # type: ignore[attr-defined]
    actions = rng.uniform(low, high, size=(steps, *low.shape)).astype(np.float32)
    _steps_per_s(bare, actions[:1000])  # warm-up
    _steps_per_s(ours, actions[:1000])
    bare_rates, our_rates, ratios = [], [], []
    for _ in range(rounds):
        b = _steps_per_s(bare, actions)
        o = _steps_per_s(ours, actions)
        bare_rates.append(b)
        our_rates.append(o)
        ratios.append(o / b)
    return {
        "env": env_id,
        "bare_steps_per_s": statistics.median(bare_rates),
        "robolearn_steps_per_s": statistics.median(our_rates),
        "ratio": statistics.median(ratios),
        "ratios": ratios,
    }


def main() -> None:
    """Run the benchmark and print a markdown table."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--envs", nargs="+", default=["Hopper-v5", "Ant-v5"])
    parser.add_argument("--steps", type=int, default=20000)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--out", type=Path, default=Path("outputs/benchmarks/overhead.json"))
    args = parser.parse_args()
    rows = [measure(env_id, args.steps, args.rounds) for env_id in args.envs]
    print("| env | bare gymnasium.make (steps/s) | robolearn (steps/s) | ratio |")
    print("|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['env']} | {r['bare_steps_per_s']:.0f} | {r['robolearn_steps_per_s']:.0f} | {r['ratio']:.3f} |"
        )
    cpu = cpu_info()
    print(f"machine: {cpu['model']}, {cpu['cores']} cores")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(
        json.dumps(
            {"rows": rows, "cpu": cpu, "versions": package_versions(), **vars(args)}, indent=2, default=str
        )
    )


if __name__ == "__main__":
    main()
