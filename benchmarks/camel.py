"""CAMEL-TD3 vs TD3: the paper's claims at a budget that fits one machine, with the statistics.

    python benchmarks/camel.py [--seeds 5] [--steps 20000] [--jobs 2] [--out outputs/benchmarks/camel]

Runs Hydra sweeps through `python -m robolearn.train` (local launcher, fixed sweep dirs, so an
interrupted benchmark resumes where it stopped), then:
  * per env: IQM final return, IQM area under the curve of the deterministic evaluation of the
    standalone actor, of the deterministic agent acting through its mask while eps > 0
    (method.eval_mask; the standalone actor after), and of the training-episode return curve (the
    agent as it acts, mask and exploration noise included), with 95% stratified-bootstrap CIs, and
    P(CAMEL > TD3) on the three AUCs (a "better" claim holds when all three intervals lie above
    0.5, "not worse" when all three reach 0.5);
  * the claims, each reported as held or lost: CAMEL better on Hopper and Ant; not worse on
    Walker2d (weak prior); with a negated (bad) prior Pendulum still reaches >= -400 once eps is 0;
    MountainCarContinuous as the fast sanity case;
  * wall-clock per env step of CAMEL-TD3 vs TD3, timed side by side in this process;
  * the full report (tables, curves, HTML) from `python -m robolearn.report` over all runs.
Writes <out>/camel.md and <out>/camel.json and prints the markdown.

Both methods use the RL Zoo's TD3 values for each env except learning_starts=1000 (the zoo's 10k
would spend half the budget on uniform random actions) and 256-256 networks (the TD3 authors' current
implementation; the zoo's 400-300 costs twice the compute); CAMEL uses method.radius=0.3,
method.eps_fraction=0.5 and the env's best shipped prior (a negated one for Pendulum).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from robolearn.report.collect import Run, collect
from robolearn.report.stats import aggregate_iqm, interval_estimate, probability_of_improvement, score_set
from robolearn.runs.metrics import read_metrics
from robolearn.utils.sysinfo import cpu_info, package_versions

MUJOCO = ["Hopper-v5", "Ant-v5", "Walker2d-v5"]
COMMON = [
    "agent=td3",
    "agent.learning_starts=1000",
    "agent.policy_kwargs.net_arch=[256,256]",
    "eval.episodes=5",
    "logger.progress=none",
]
CAMEL = ["method=camel", "method.radius=0.3", "method.eps_fraction=0.5", "method.eval_mask=true"]


def sweep(out: Path, name: str, args: list[str], jobs: int) -> None:
    """Run (or resume) one Hydra sweep into out/runs/<name>."""
    cmd = [
        sys.executable,
        "-m",
        "robolearn.train",
        "-m",
        *args,
        f"hydra.sweep.dir={out / 'runs' / name}",
        "hydra/launcher=local",
        f"hydra.launcher.n_jobs={jobs}",
    ]
    print("$", " ".join(cmd[1:]), flush=True)
    subprocess.run(cmd, check=False)


def _auc(run: Run) -> float:
    """Mean deterministic evaluation return of the standalone actor over training."""
    return float(np.mean(run.eval_returns)) if run.eval_returns else float("nan")


def _train_auc(run: Run) -> float:
    """Mean training-episode return (the agent as it acts: mask and exploration noise included,
    SB3's 100-episode running mean) over training, as CleanRL-style learning curves plot it."""
    rows = read_metrics(run.path / "metrics.jsonl")
    values = [float(r["rollout/ep_rew_mean"]) for r in rows if "rollout/ep_rew_mean" in r]
    return float(np.mean(values)) if values else float("nan")


def _masked_auc(run: Run) -> float:
    """Mean deterministic evaluation return of the agent as it acts: through the mask while eps > 0
    (CAMEL's eval/masked/mean_return), the standalone actor after (and always, for TD3)."""
    rows = read_metrics(run.path / "metrics.jsonl")
    values = [
        float(r.get("eval/masked/mean_return", r["eval/mean_return"]))
        for r in rows
        if "eval/mean_return" in r
    ]
    return float(np.mean(values)) if values else float("nan")


def _per_method(runs: list[Run], env: str) -> dict[str, list[Run]]:
    out: dict[str, list[Run]] = {}
    for run in runs:
        if run.env_id == env:
            out.setdefault(run.method, []).append(run)
    return out


def _estimate(values: list[float]) -> dict[str, float]:
    est = interval_estimate(aggregate_iqm, score_set([values]))
    return {"iqm": est.point, "low": est.low, "high": est.high, "n": len(values)}


def summarise(runs: list[Run], env: str) -> dict[str, Any]:
    """Final-return and AUC estimates per method, and P(CAMEL > TD3) on AUC, for one env."""
    methods = _per_method(runs, env)
    row: dict[str, Any] = {"env": env}
    for method, rs in sorted(methods.items()):
        row[method] = {
            "final": _estimate([r.final_return for r in rs]),
            "auc": _estimate([_auc(r) for r in rs]),
            "train_auc": _estimate([_train_auc(r) for r in rs]),
            "masked_auc": _estimate([_masked_auc(r) for r in rs]),
        }
    if "camel-td3" in methods and "td3" in methods:
        for key, fn in (
            ("p_improve_auc", _auc),
            ("p_improve_train_auc", _train_auc),
            ("p_improve_masked_auc", _masked_auc),
        ):
            x = score_set([[fn(r) for r in methods["camel-td3"]]])
            y = score_set([[fn(r) for r in methods["td3"]]])
            est = interval_estimate(probability_of_improvement, x, y)
            row[key] = {"point": est.point, "low": est.low, "high": est.high}
    return row


def time_per_step(steps: int, rounds: int) -> dict[str, Any]:
    """Seconds per env step of TD3 and CAMEL-TD3 on Hopper-v5, alternating rounds in this process."""
    from robolearn.agents import build_agent
    from robolearn.config.validate import compose_config
    from robolearn.envs import make_vec_env
    from robolearn.methods import configure_method, method_algorithm

    timings: dict[str, list[float]] = {"td3": [], "camel-td3": []}
    models = {}
    for label, extra in (("td3", []), ("camel-td3", CAMEL)):
        cfg = compose_config("train", ["env=Hopper-v5", *COMMON, *extra, f"steps={10**9}"])
        venv = make_vec_env(cfg.env, n_envs=1, seed=0)
        algorithm, kwargs = method_algorithm(cfg)
        model = build_agent(cfg.agent, venv, seed=0, device="cpu", algorithm=algorithm, **kwargs)
        configure_method(cfg, model, venv)
        model.learn(total_timesteps=1500)  # past learning_starts: every step now trains
        models[label] = model
    for _ in range(rounds):
        for label, model in models.items():
            start = time.perf_counter()
            model.learn(total_timesteps=steps, reset_num_timesteps=False)
            timings[label].append((time.perf_counter() - start) / steps)
    ratios = [c / t for c, t in zip(timings["camel-td3"], timings["td3"], strict=True)]
    return {
        "td3_s_per_step": float(np.median(timings["td3"])),
        "camel_s_per_step": float(np.median(timings["camel-td3"])),
        "ratio": float(np.median(ratios)),
        "ratios": ratios,
        "note": "eps stays near 1 here (total steps 1e9), so every step is masked: the worst case",
    }


def main() -> None:
    """Run the sweeps, the timing, the report; print and write the claims table."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=20000)
    parser.add_argument("--pendulum-steps", type=int, default=15000)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--timing-steps", type=int, default=1000)
    parser.add_argument("--out", type=Path, default=Path("outputs/benchmarks/camel"))
    parser.add_argument("--skip-train", action="store_true", help="only aggregate existing runs")
    args = parser.parse_args()
    out: Path = args.out.resolve()
    seeds = "seed=" + ",".join(str(s) for s in range(args.seeds))
    started = time.perf_counter()
    if not args.skip_train:
        mujoco = [seeds, f"steps={args.steps}", "eval.every=2000", "env=" + ",".join(MUJOCO), *COMMON]
        sweep(out, "td3_mujoco", mujoco, args.jobs)
        sweep(out, "camel_mujoco", [*mujoco, *CAMEL, "method.prior=best"], args.jobs)
        pend = [seeds, f"steps={args.pendulum_steps}", "eval.every=1500", "env=Pendulum-v1", *COMMON]
        sweep(out, "td3_pendulum", pend, args.jobs)
        sweep(out, "camel_pendulum_negated", [*pend, *CAMEL, "method.prior=pendulum_negated"], args.jobs)
        car = [seeds, f"steps={args.steps}", "eval.every=2000", "env=MountainCarContinuous-v0", *COMMON]
        sweep(out, "td3_mountaincar", car, args.jobs)
        sweep(out, "camel_mountaincar", [*car, *CAMEL, "method.prior=best"], args.jobs)
    train_minutes = (time.perf_counter() - started) / 60

    collection = collect([out / "runs"])
    runs = [run for group in collection.groups for run in group.runs]
    rows = [summarise(runs, env) for env in [*MUJOCO, "Pendulum-v1", "MountainCarContinuous-v0"]]
    timing = time_per_step(args.timing_steps, rounds=3)

    def p_text(row: dict[str, Any], key: str) -> str:
        p = row[key]
        return f"{p['point']:.2f} [{p['low']:.2f}, {p['high']:.2f}]"

    def compare(env: str, strict: bool) -> tuple[bool, str]:
        row = next(r for r in rows if r["env"] == env)
        if "p_improve_auc" not in row:
            return False, "missing runs"
        keys = ("p_improve_train_auc", "p_improve_auc", "p_improve_masked_auc")
        held = all(row[k]["low"] > 0.5 if strict else row[k]["high"] >= 0.5 for k in keys)
        text = (
            f"P(CAMEL > TD3): training-return AUC {p_text(row, keys[0])}, eval AUC {p_text(row, keys[1])}, "
            f"masked-eval AUC {p_text(row, keys[2])}"
        )
        return held, text

    def better(env: str) -> tuple[bool, str]:
        return compare(env, strict=True)

    def not_worse(env: str) -> tuple[bool, str]:
        return compare(env, strict=False)

    pend = next(r for r in rows if r["env"] == "Pendulum-v1").get("camel-td3", {}).get("final")
    claims = [
        ("CAMEL better than TD3 on Hopper-v5 (AUC)", *better("Hopper-v5")),
        ("CAMEL better than TD3 on Ant-v5 (AUC)", *better("Ant-v5")),
        ("CAMEL not worse than TD3 on Walker2d-v5 (AUC)", *not_worse("Walker2d-v5")),
        (
            "negated prior: Pendulum-v1 final IQM >= -400",
            pend is not None and pend["iqm"] >= -400,
            f"final IQM {pend['iqm']:.1f} [{pend['low']:.1f}, {pend['high']:.1f}]"
            if pend
            else "missing runs",
        ),
        ("CAMEL wall-clock per step <= 1.1x TD3", timing["ratio"] <= 1.1, f"ratio {timing['ratio']:.3f}"),
    ]
    cpu = cpu_info()
    budgets = sorted({(run.env_id, int(run.summary["steps"])) for run in runs})
    seeds = sorted({run.seed for run in runs if run.seed is not None})
    lines = [
        f"Machine: {cpu['model']}, {cpu['cores']} cores; seeds {seeds}; steps per env "
        + ", ".join(f"{env} {steps}" for env, steps in budgets)
        + (f"; sweeps took {train_minutes:.0f} min." if not args.skip_train else "."),
        "",
        "| claim | held? | measured |",
        "|---|---|---|",
        *[f"| {c} | {'held' if ok else 'LOST'} | {m} |" for c, ok, m in claims],
        "",
        "| env | method | final IQM [95% CI] | eval AUC IQM [95% CI] | masked-eval AUC IQM [95% CI] "
        "| training-return AUC IQM [95% CI] | n |",
        "|---|---|---|---|---|---|---|",
    ]

    def cell(e: dict[str, float]) -> str:
        return f"{e['iqm']:.1f} [{e['low']:.1f}, {e['high']:.1f}]"

    for row in rows:
        for method in ("td3", "camel-td3"):
            if method in row:
                r = row[method]
                lines.append(
                    f"| {row['env']} | {method} | {cell(r['final'])} | {cell(r['auc'])} | {cell(r['masked_auc'])} "
                    f"| {cell(r['train_auc'])} | {r['final']['n']} |"
                )
    lines += [
        "",
        f"Time per env step on Hopper-v5 (training every step): TD3 {timing['td3_s_per_step'] * 1e3:.2f} ms, "
        f"CAMEL-TD3 {timing['camel_s_per_step'] * 1e3:.2f} ms, ratio {timing['ratio']:.3f} ({timing['note']}).",
    ]
    text = "\n".join(lines)
    print(text)
    out.mkdir(parents=True, exist_ok=True)
    (out / "camel.md").write_text(text + "\n")
    (out / "camel.json").write_text(
        json.dumps(
            {
                "claims": claims,
                "rows": rows,
                "timing": timing,
                "cpu": cpu,
                "versions": package_versions(),
                "args": vars(args),
            },
            indent=2,
            default=str,
        )
    )
    subprocess.run(
        [sys.executable, "-m", "robolearn.report", f"runs={out / 'runs'}", f"out={out / 'report'}"],
        check=False,
    )


if __name__ == "__main__":
    main()
