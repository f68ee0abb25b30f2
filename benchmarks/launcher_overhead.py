"""Wall time of a sweep through the Ray launcher vs local processes (joblib), side by side.

    python benchmarks/launcher_overhead.py [--runs 8] [--steps 300] [--rounds 2] [--out outputs/benchmarks/launchers]

Each round runs the same sweep (`--runs` seeds of the smoke experiment, `--steps` steps each) through
`hydra/launcher=local` (2 joblib workers) and `hydra/launcher=ray_local` (a Ray instance with 2 CPUs
started for the sweep), alternating, in fresh sweep folders. Overhead = (ray - local) / ray, i.e. the
share of the Ray sweep's wall time not spent as the local sweep would. Goal: under 10%.
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from robolearn.utils.sysinfo import cpu_info, package_versions


def timed_sweep(out: Path, launcher: str, runs: int, steps: int) -> float:
    """Seconds for one whole `robolearn.train -m` sweep, process start to exit."""
    if out.exists():
        shutil.rmtree(out)
    cmd = [
        sys.executable,
        "-m",
        "robolearn.train",
        "-m",
        "+experiment=smoke",
        f"steps={steps}",
        "seed=" + ",".join(str(s) for s in range(runs)),
        "logger.progress=none",
        f"hydra.sweep.dir={out}",
        f"hydra/launcher={launcher}",
    ]
    start = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    return time.perf_counter() - start


def main() -> None:
    """Alternate local and Ray sweeps, print and save the median overhead."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=8)
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("outputs/benchmarks/launchers"))
    args = parser.parse_args()
    times: dict[str, list[float]] = {"local": [], "ray_local": []}
    for _ in range(args.rounds):
        for launcher in times:
            times[launcher].append(timed_sweep(args.out / launcher, launcher, args.runs, args.steps))
    local, ray = statistics.median(times["local"]), statistics.median(times["ray_local"])
    overhead = (ray - local) / ray
    cpu = cpu_info()
    print(
        f"{args.runs} runs x {args.steps} steps, {args.rounds} rounds; {cpu['model']}, {cpu['cores']} cores"
    )
    print("| launcher | sweep wall time (s, median) |\n|---|---|")
    print(f"| local (joblib, 2 workers) | {local:.1f} |\n| ray_local (2 CPUs) | {ray:.1f} |")
    print(f"Ray overhead: {100 * overhead:.1f}% of the Ray sweep's wall time (goal < 10%)")
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "launcher_overhead.json").write_text(
        json.dumps(
            {"times": times, "overhead": overhead, "cpu": cpu, "versions": package_versions(), **vars(args)},
            default=str,
            indent=2,
        )
    )


if __name__ == "__main__":
    main()
