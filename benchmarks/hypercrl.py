"""HyperCRL and its baselines on task sequences: retention, final returns, forward transfer.

    python benchmarks/hypercrl.py [--sequence pendulum] [--seeds 3] [--learners hypercrl,finetune,...]
                                  [--jobs 1] [--out sweeps/hypercrl] [key=value ...]

Runs `python -m robolearn.continual sequence=<s> learner=<l> seed=<k>` for every learner and seed
into <out>/<sequence>/<learner>/seed<k> (a finished run is skipped, a stopped one resumed), copies
each run's summary.json and metrics.jsonl to benchmarks/results/hypercrl/<sequence>/..., then
writes benchmarks/results/hypercrl/<sequence>/results.md (+ .json) and plots under
docs/results/hypercrl/:
  * per learner: retention on every earlier task, final return per task, forward transfer against
    `single` of the same seed, held-out one-step error, each as the mean over seeds with a 95%
    bootstrap interval (robolearn.report.stats);
  * the paper's claims (Huang et al., IROS 2021), each held or lost: HyperCRL retains every earlier
    task (retention >= 0.9); finetune forgets (its retention reported, forgetting = some earlier
    task below 0.9); HyperCRL is close to coreset and multitask (its mean final return within 10% of
    |theirs| below them, or above).
Extra key=value arguments go to every run (e.g. loop.mpc_steps=400 to shrink the budget);
learner.<key>=... only to the learners whose config has the key.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import numpy as np
import yaml

from robolearn.report.stats import aggregate_mean, interval_estimate
from robolearn.utils.sysinfo import cpu_info

ROOT = Path(__file__).resolve().parents[1]
LEARNERS = ["hypercrl", "hypercrl_noreg", "finetune", "single", "multitask", "coreset", "ewc", "si"]
RESULTS = ROOT / "benchmarks" / "results" / "hypercrl"
PLOTS = ROOT / "docs" / "results" / "hypercrl"


def run_one(out: Path, sequence: str, learner: str, seed: int, extra: list[str]) -> tuple[str, int, float]:
    """Run (or resume, or skip) one continual run; returns (learner, seed, wall seconds)."""
    run_dir = out / sequence / learner / f"seed{seed}"
    if (run_dir / "summary.json").is_file():
        return learner, seed, 0.0
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    if (run_dir / "checkpoints" / "latest.json").is_file():
        cmd = [sys.executable, "-m", "robolearn.continual", f"resume={run_dir}"]
    else:
        cmd = [
            sys.executable,
            "-m",
            "robolearn.continual",
            f"sequence={sequence}",
            f"learner={learner}",
            f"seed={seed}",
            "torch_threads=1",
            "logger.progress=none",
            f"hydra.run.dir={run_dir}",
            *extra,
        ]
    start = time.perf_counter()
    # learner.<key>=... goes only to learners that have the key (learner.chunked=true: HyperCRL's).
    own = yaml.safe_load((ROOT / "configs" / "learner" / f"{learner}.yaml").read_text()) or {}
    cmd = [a for a in cmd if not a.startswith("learner.") or a.split("=", 1)[0].split(".", 1)[1] in own]
    log = out / sequence / learner / f"seed{seed}.log"
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "w", encoding="utf-8") as fh:
        code = subprocess.call(
            ["nice", "-n", "5", *cmd], stdout=fh, stderr=subprocess.STDOUT, env=env, cwd=ROOT
        )
    if code != 0:
        print(f"{learner} seed {seed}: exit {code}, see {log}", file=sys.stderr, flush=True)
    return learner, seed, time.perf_counter() - start


def _matrix(rows: list[list[float | None]]) -> np.ndarray:
    return np.array([[np.nan if v is None else float(v) for v in row] for row in rows], dtype=np.float64)


def load(out: Path, sequence: str, learners: list[str], seeds: int) -> dict[str, dict[int, dict[str, Any]]]:
    """Finished summaries by learner and seed; copies them (and metrics.jsonl) into the results tree."""
    found: dict[str, dict[int, dict[str, Any]]] = {}
    for learner in learners:
        for seed in range(seeds):
            run_dir = out / sequence / learner / f"seed{seed}"
            path = run_dir / "summary.json"
            if not path.is_file():
                continue
            found.setdefault(learner, {})[seed] = json.loads(path.read_text(encoding="utf-8"))
            dest = RESULTS / sequence / learner / f"seed{seed}"
            dest.mkdir(parents=True, exist_ok=True)
            for name in ("summary.json", "metrics.jsonl"):
                if (run_dir / name).is_file():
                    shutil.copyfile(run_dir / name, dest / name)
    return found


def _interval(values: list[float]) -> dict[str, float]:
    arr = np.asarray([v for v in values if np.isfinite(v)], dtype=np.float64)
    if arr.size == 0:
        return {"point": float("nan"), "low": float("nan"), "high": float("nan")}
    return interval_estimate(aggregate_mean, [arr]).as_dict()


def _fmt(e: dict[str, float], digits: int = 2) -> str:
    if not np.isfinite(e["point"]):
        return "-"
    return f"{e['point']:.{digits}f} [{e['low']:.{digits}f}, {e['high']:.{digits}f}]"


def analyse(found: dict[str, dict[int, dict[str, Any]]]) -> dict[str, Any]:
    """Per-learner estimates over seeds: retention per earlier task, final returns, transfer, error."""
    from robolearn.mbrl.continual.metrics import forward_transfer

    table: dict[str, Any] = {}
    single = found.get("single", {})
    for learner, runs in found.items():
        seeds = sorted(runs)
        returns = [_matrix(runs[s]["continual/returns"]) for s in seeds]
        errors = [_matrix(runs[s]["continual/pred_error"]) for s in seeds]
        retention = [
            np.asarray([np.nan if v is None else v for v in runs[s]["continual/retention"]]) for s in seeds
        ]
        n = returns[0].shape[0]
        row: dict[str, Any] = {"seeds": seeds, "tasks": n}
        row["retention"] = [_interval([float(r[j]) for r in retention]) for j in range(n - 1)]
        row["final_return"] = [_interval([float(m[-1, j]) for m in returns]) for j in range(n)]
        row["mean_final_return"] = _interval([float(np.mean(m[-1])) for m in returns])
        row["final_pred_error"] = [_interval([float(e[-1, j]) for e in errors]) for j in range(n)]
        transfer = []
        for s, m in zip(seeds, returns, strict=True):
            if s in single:
                transfer.append(
                    np.asarray(forward_transfer(m, _matrix(single[s]["continual/returns"])), dtype=float)
                )
        if transfer:
            row["forward_transfer"] = [
                _interval([float(t[j]) for t in transfer]) for j in range(len(transfer[0]))
            ]
        row["wall_time_s"] = float(np.mean([runs[s]["wall_time_s"] for s in seeds]))
        table[learner] = row
    return table


def claims(table: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(claim, held|lost|not run, evidence) for the paper's claims."""
    out: list[tuple[str, str, str]] = []
    hyper = table.get("hypercrl")
    if hyper is None:
        return [("HyperCRL retains earlier tasks", "not run", "")]
    undefined = "undetermined (retention undefined: a task never rose above the random reference)"
    ret = [r["point"] for r in hyper["retention"]]
    out.append(
        (
            "HyperCRL retains every earlier task (retention >= 0.9)",
            undefined if not all(np.isfinite(ret)) else "held" if min(ret) >= 0.9 else "lost",
            "retention " + ", ".join(f"{r:.2f}" for r in ret),
        )
    )
    fine = table.get("finetune")
    if fine is not None:
        fret = [r["point"] for r in fine["retention"]]
        below = [r for r in fret if np.isfinite(r) and r < 0.9]
        out.append(
            (
                "finetune forgets (some earlier task below 0.9)",
                "held" if below else undefined if not all(np.isfinite(fret)) else "lost",
                "retention " + ", ".join(f"{r:.2f}" for r in fret),
            )
        )
    mine = hyper["mean_final_return"]["point"]
    for other in ("coreset", "multitask"):
        if other not in table:
            out.append((f"HyperCRL close to {other}", "not run", ""))
            continue
        theirs = table[other]["mean_final_return"]["point"]
        close = mine >= theirs - 0.1 * abs(theirs)
        out.append(
            (
                f"HyperCRL close to {other} (mean final return within 10% below, or above)",
                "held" if close else "lost",
                f"{mine:.1f} vs {theirs:.1f}",
            )
        )
    return out


def markdown(
    sequence: str, table: dict[str, Any], claim_rows: list[tuple[str, str, str]], budget: str
) -> str:
    """The results page section for one sequence."""
    lines = [f"### Sequence `{sequence}`", "", budget, ""]
    n = max(row["tasks"] for row in table.values())
    head = ["learner", "seeds", *[f"retention T{j}" for j in range(n - 1)], "mean final return"]
    head += [f"final return T{j}" for j in range(n)]
    head += [f"fwd transfer T{j}" for j in range(n)] + ["final one-step MSE (mean over tasks)", "wall s/run"]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    order = [x for x in LEARNERS if x in table]
    for learner in order:
        row = table[learner]
        cells = [learner, str(len(row["seeds"]))]
        cells += [_fmt(r) for r in row["retention"]]
        cells += [_fmt(row["mean_final_return"], 1)]
        cells += [_fmt(r, 1) for r in row["final_return"]]
        fwd = row.get("forward_transfer", [])
        cells += [_fmt(r, 2) for r in fwd] + ["-"] * (n - len(fwd))
        err = float(np.nanmean([e["point"] for e in row["final_pred_error"]]))
        cells += [f"{err:.3g}", f"{row['wall_time_s']:.0f}"]
        lines.append("| " + " | ".join(cells) + " |")
    lines += ["", "Intervals: 95% percentile bootstrap over seeds (robolearn.report.stats).", ""]
    lines += ["| claim | result | evidence |", "|---|---|---|"]
    lines += [f"| {c} | **{r}** | {e} |" for c, r, e in claim_rows]
    return "\n".join(lines) + "\n"


def plots(sequence: str, table: dict[str, Any], found: dict[str, dict[int, dict[str, Any]]]) -> list[Path]:
    """Retention bars, final returns and mean held-out error matrices per learner."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    PLOTS.mkdir(parents=True, exist_ok=True)
    order = [x for x in LEARNERS if x in table]
    paths = []
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    width = 0.8 / max(len(order), 1)
    for i, learner in enumerate(order):
        row = table[learner]
        for ax, key in ((axes[0], "retention"), (axes[1], "final_return")):
            est = row[key]
            x = np.arange(len(est)) + i * width
            pts = np.array([e["point"] for e in est])
            err = np.array([[e["point"] - e["low"] for e in est], [e["high"] - e["point"] for e in est]])
            ax.bar(x, pts, width, yerr=err, label=learner, capsize=2)
    for ax, count in (
        (axes[0], len(table[order[0]]["retention"])),
        (axes[1], len(table[order[0]]["final_return"])),
    ):
        ax.set_xticks(np.arange(count) + width * (len(order) - 1) / 2, [str(j) for j in range(count)])
    axes[0].axhline(0.9, color="k", lw=0.8, ls="--")
    axes[0].set_title("retention on earlier tasks (after the last task)")
    axes[0].set_xlabel("task")
    axes[1].set_title("return per task after the last task")
    axes[1].set_xlabel("task")
    axes[1].legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    path = PLOTS / f"{sequence}_retention_returns.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    paths.append(path)
    fig, axes = plt.subplots(1, len(order), figsize=(2.4 * len(order) + 1, 2.6), squeeze=False)
    means = {}
    for learner in order:
        mats = np.stack([_matrix(s["continual/pred_error"]) for s in found[learner].values()])
        # Above the diagonal every seed is NaN (task not seen yet): that mean is NaN, silently.
        with np.errstate(all="ignore"), warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            means[learner] = np.log10(np.nanmean(mats, axis=0))
    finite = np.concatenate([m[np.isfinite(m)] for m in means.values()])
    vmin, vmax = float(finite.min()), float(finite.max())  # one colour scale for every learner
    for ax, learner in zip(axes[0], order, strict=True):
        im = ax.imshow(means[learner], cmap="viridis", vmin=vmin, vmax=vmax)
        count = means[learner].shape[0]
        ax.set_xticks(range(count))
        ax.set_yticks(range(count))
        ax.set_title(learner, fontsize=8)
        ax.set_xlabel("task evaluated", fontsize=7)
        ax.set_ylabel("after task", fontsize=7)
    fig.suptitle("log10 held-out one-step MSE (mean over seeds; row: after task, column: task)", fontsize=9)
    fig.tight_layout()
    fig.colorbar(im, ax=list(axes[0]), fraction=0.02)
    path = PLOTS / f"{sequence}_pred_error.png"
    fig.savefig(path, dpi=90)
    plt.close(fig)
    paths.append(path)
    return paths


def main() -> None:
    """Run the sweep, then write the tables and plots."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--sequence", default="pendulum")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--learners", default=",".join(LEARNERS))
    parser.add_argument("--jobs", type=int, default=1)
    parser.add_argument("--out", type=Path, default=ROOT / "sweeps" / "hypercrl")
    parser.add_argument("--report-only", action="store_true", help="only read finished runs")
    args, extra = parser.parse_known_args()
    learners = [x for x in args.learners.split(",") if x]
    unknown = [x for x in learners if x not in LEARNERS]
    if unknown:
        parser.error(f"unknown learner {unknown[0]}; choose from {', '.join(LEARNERS)}")
    started = time.perf_counter()
    if not args.report_only:
        jobs = [(learner, seed) for seed in range(args.seeds) for learner in learners]
        with ThreadPoolExecutor(max_workers=args.jobs) as pool:
            for learner, seed, wall in pool.map(
                lambda j: run_one(args.out, args.sequence, j[0], j[1], extra), jobs
            ):
                print(f"{learner} seed {seed}: {wall:.0f} s", flush=True)
    found = load(args.out, args.sequence, learners, args.seeds)
    if not found:
        raise SystemExit(f"no finished runs under {args.out / args.sequence}")
    table = analyse(found)
    claim_rows = claims(table)
    cpu = cpu_info()
    budget = (
        f"Budget: {args.seeds} seeds x {len(found)} learners, extra overrides: {' '.join(extra) or 'none'}; "
        f"machine: {cpu.get('model')}, {cpu.get('logical_cores', cpu.get('cores'))} logical cores (a 2-core VM shared with other agents' work, so wall times are loose); "
        f"sweep wall time {time.perf_counter() - started:.0f} s."
    )
    text = markdown(args.sequence, table, claim_rows, budget)
    paths = plots(args.sequence, table, found)
    dest = RESULTS / args.sequence
    dest.mkdir(parents=True, exist_ok=True)
    (dest / "results.md").write_text(
        text + "\n" + "\n".join(f"![]({p.relative_to(ROOT)})" for p in paths) + "\n"
    )
    (dest / "results.json").write_text(
        json.dumps({"table": table, "claims": claim_rows, "cpu": cpu}, indent=1)
    )
    print(text)


if __name__ == "__main__":
    main()
