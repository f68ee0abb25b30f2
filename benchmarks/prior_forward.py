"""Forward progress of shipped priors against the zero-action and random agents (issue 20).

    python benchmarks/prior_forward.py                       # Hopper-v5 and Walker2d-v5, every shipped prior
    python benchmarks/prior_forward.py --env Hopper-v5 --priors hopper_balance_pd hopper_hop

`python -m robolearn.prior action=screen` ranks priors by return; a prior that stands still for 1000
steps earns about 1000 in Hopper and Walker2d from the healthy bonus alone, so the return does not say
whether a prior moves. This plays the same episodes as the screen (reset seeds 0..9, the env's time
limit) and records per episode the return, the length, the forward distance (x displacement of the
torso, qpos[0]) and the airborne share (steps after which no body touches the floor: hops), for each prior (checked, probed in the sandbox and compiled by
`robolearn.llm.priors.load_prior`, as training uses it), the zero action and a uniform-random agent
(the action space seeded once with the first seed, as the screen's random baseline is).

Writes benchmarks/results/priors/forward.json (--out) and prints a markdown table.
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import numpy as np

from robolearn.errors import UserError
from robolearn.llm.priors import list_priors, load_prior

ENVS = ("Hopper-v5", "Walker2d-v5")
EPISODES = 10
OUT = Path("benchmarks/results/priors/forward.json")

Policy = Callable[[np.ndarray], np.ndarray]


def touches_floor(data: Any) -> bool:
    """Whether any contact involves geom 0, the floor in both models."""
    return any(data.contact[i].geom1 == 0 or data.contact[i].geom2 == 0 for i in range(data.ncon))


def play(env: gym.Env[Any, Any], policy: Policy, seeds: range) -> list[dict[str, float]]:
    """One episode per reset seed: return, length and forward distance of the torso (m)."""
    episodes = []
    for seed in seeds:
        obs, _ = env.reset(seed=seed)
        x_start = float(env.unwrapped.data.qpos[0])  # type: ignore[attr-defined]
        total, steps, airborne, done = 0.0, 0, 0, False
        while not done:
            # float32 actions, as the screen's rollouts and the training envs pass them
            action = np.asarray(policy(obs)).astype(env.action_space.dtype)
            obs, reward, terminated, truncated, _ = env.step(action)
            total += float(reward)
            steps += 1
            airborne += int(not touches_floor(env.unwrapped.data))  # type: ignore[attr-defined]
            done = terminated or truncated
        forward = float(env.unwrapped.data.qpos[0]) - x_start  # type: ignore[attr-defined]
        episodes.append(
            {"return": total, "length": steps, "forward_m": forward, "airborne": airborne / steps}
        )
    return episodes


def summarise(episodes: list[dict[str, float]]) -> dict[str, float]:
    """Mean and standard deviation of each per-episode figure."""
    out: dict[str, float] = {}
    for key in ("return", "length", "forward_m", "airborne"):
        values = np.array([e[key] for e in episodes], dtype=np.float64)
        out[f"{key}_mean"] = float(values.mean())
        out[f"{key}_std"] = float(values.std())
    return out


def agents(env_id: str, env: gym.Env[Any, Any], names: list[str] | None, seed: int) -> dict[str, Policy]:
    """The zero-action and random agents, then each named prior (every shipped one when None)."""
    shape = env.action_space.shape
    assert shape is not None
    zero = np.zeros(shape, dtype=np.float64)
    env.action_space.seed(seed)
    found: dict[str, Policy] = {
        "zero action": lambda obs: zero,
        "random": lambda obs: env.action_space.sample(),
    }
    if names is None:
        names = [p.name for p in list_priors(env_id) if p.location == "shipped"]
    for name in names:
        found[name] = load_prior(name, env_id=env_id).policy
    return found


def measure(env_id: str, names: list[str] | None, episodes: int = EPISODES, seed: int = 0) -> dict[str, Any]:
    """Every agent's episodes on one env, with their summaries."""
    env = gym.make(env_id)
    try:
        rows = {}
        for name, policy in agents(env_id, env, names, seed).items():
            played = play(env, policy, range(seed, seed + episodes))
            rows[name] = {"summary": summarise(played), "episodes": played}
    finally:
        env.close()
    return rows


def table(results: dict[str, dict[str, Any]]) -> str:
    """Markdown: one row per env and agent."""
    lines = [
        "| env | agent | return | length | forward distance (m) | mean speed (m/s) | airborne |",
        "|---|---|---|---|---|---|---|",
    ]
    for env_id, rows in results.items():
        for name, row in rows.items():
            s = row["summary"]
            # Speed over the time the agent stayed up (0.008 s per step in both envs).
            speed = s["forward_m_mean"] / (s["length_mean"] * 0.008)
            lines.append(
                f"| {env_id} | {name} | {s['return_mean']:.1f} ± {s['return_std']:.1f} | "
                f"{s['length_mean']:.0f} | {s['forward_m_mean']:.2f} ± {s['forward_m_std']:.2f} | {speed:.2f} | "
                f"{100 * s['airborne_mean']:.0f}% |"
            )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", nargs="+", default=list(ENVS), help="gymnasium ids with shipped priors")
    parser.add_argument("--priors", nargs="+", default=None, help="prior names (default: every shipped one)")
    parser.add_argument("--episodes", type=int, default=EPISODES)
    parser.add_argument("--seed", type=int, default=0, help="first reset seed (the screen's screen.seed)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args(argv)
    if args.episodes < 1:
        raise UserError(f"--episodes must be at least 1, got {args.episodes}")
    if args.priors is not None and len(args.env) != 1:
        raise UserError(f"--priors names priors of one env, but --env lists {len(args.env)}; pass one --env")
    results = {env_id: measure(env_id, args.priors, args.episodes, args.seed) for env_id in args.env}
    args.out.parent.mkdir(parents=True, exist_ok=True)
    record = {
        "command": " ".join(
            ["python benchmarks/prior_forward.py", *(sys.argv[1:] if argv is None else argv)]
        ),
        "episodes": args.episodes,
        "seeds": [args.seed, args.seed + args.episodes - 1],
        "machine": platform.processor() or platform.machine(),
        "results": results,
    }
    args.out.write_text(json.dumps(record, indent=1) + "\n")
    print(table(results))
    print(f"\nwrote {args.out}")
    return 0


if __name__ == "__main__":
    try:
        raise SystemExit(main())
    except UserError as exc:
        raise SystemExit(f"error: {exc}") from None
