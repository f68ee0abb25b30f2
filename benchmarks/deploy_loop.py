"""Deploy loop timing: robolearn's deadline-scheduled loop vs a sleep-after-work loop, over DDS to the sim bridge.

    python benchmarks/deploy_loop.py                       # 60 s per loop, then a 600 s soak of ours
    python benchmarks/deploy_loop.py duration_s=30 soak_s=120 rt_priority=50 out=outputs/bench/deploy_loop

Each run starts the MuJoCo sim bridge (Go2, 500 Hz LowState, 1 kHz motor PD) and the real deploy
process on a private loopback DDS domain, with the reference policy (policies/reference/go2_stand)
at 50 Hz and commands at 500 Hz, recording its log as a real session would. Loops compared:

- robolearn: deadline scheduling (sleep until spin_s before the deadline, then spin), policy in its
  own thread;
- sleep_after_work: unitree_rl_gym deploy_real.py's pattern, time.sleep(dt) after the work, with the
  policy inline every 10th command tick.

Figures per loop: command period error |t_k - t_(k-1) - 2 ms| (measured when each command is sent)
p50/p99/p99.9/max, missed deadlines (period error over 2 ms), inference latency p50/p99 (onnxruntime
call), policy period error, and resident memory growth of the deploy process from 5 s into POLICY
to its end (and the largest excursion). Writes <out>/deploy_loop.json, <out>/deploy_loop.md (the table) and
<out>/deploy_loop.png (period error distributions).
"""

from __future__ import annotations

import json
import os
import platform
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parent.parent
DEFAULTS: dict[str, Any] = {
    "duration_s": 60.0,  # POLICY time of each compared loop
    "soak_s": 600.0,  # POLICY time of the soak of robolearn's loop (0 skips it)
    "rt_priority": 0,  # SCHED_FIFO priority of the command loop (needs root); 0 = normal scheduling
    "spin_s": 0.0002,
    "out": "outputs/benchmarks/deploy_loop",
}
LOOPS = {
    "robolearn": ["loop.scheduler=deadline", "loop.policy_thread=true"],
    "sleep_after_work": ["loop.scheduler=sleep_after_work", "loop.policy_thread=false"],
}


def parse_args(argv: list[str]) -> dict[str, Any]:
    """key=value arguments over DEFAULTS."""
    args = dict(DEFAULTS)
    for item in argv:
        key, sep, value = item.partition("=")
        if not sep or key not in DEFAULTS:
            raise SystemExit(
                f"usage: deploy_loop.py [{' '.join(f'{k}=...' for k in DEFAULTS)}]; got {item!r}"
            )
        args[key] = type(DEFAULTS[key])(value)
    return args


def rss_mb(pid: int) -> float | None:
    """Resident set size of a process in MB (Linux /proc)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        return None
    return None


def cpu_steal_ms() -> float:
    """Time the hypervisor ran other guests instead of this machine's CPUs, summed over CPUs (/proc/stat)."""
    fields = Path("/proc/stat").read_text().splitlines()[0].split()
    return int(fields[8]) * 1000.0 / os.sysconf("SC_CLK_TCK")


def run_loop(name: str, policy_s: float, args: dict[str, Any], out: Path) -> dict[str, Any]:
    """One deploy session against a fresh bridge; returns its figures."""
    from robolearn.deploy.dds import claim_local_domain

    domain, lock = claim_local_domain()
    log_dir = out / f"log_{name}_{int(policy_s)}s"
    if log_dir.exists():
        import shutil

        shutil.rmtree(log_dir)
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    py = sys.executable
    bridge = subprocess.Popen(
        [py, "-m", "robolearn.deploy.sim_bridge", "robot=go2", f"domain_id={domain}", "bridge.initial_pose=default", "bridge.status_every_s=0"],
        cwd=REPO, env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT,
    )  # fmt: skip
    hold_s, ramp_s = 0.5, 0.5
    deploy_cmd = [
        py, "-m", "robolearn.deploy", "robot=go2", f"policy={REPO / 'policies/reference/go2_stand'}", "backend=dds",
        f"domain_id={domain}", "autostart=true", f"autopolicy_s={hold_s}", f"settings.ramp_s={ramp_s}",
        f"duration_s={ramp_s + hold_s + policy_s + 2.0}", "exit_damp_s=0.5", "keyboard=false", "status_every_s=0",
        f"record.dir={log_dir}", f"loop.rt_priority={args['rt_priority']}", f"loop.spin_s={args['spin_s']}", *LOOPS[name],
    ]  # fmt: skip
    deploy = subprocess.Popen(
        deploy_cmd, cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    lines: list[str] = []
    policy_seen: list[float] = []

    def read() -> None:
        for line in deploy.stdout or []:
            lines.append(line)
            if "-> POLICY" in line:
                policy_seen.append(time.monotonic())

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    samples: list[tuple[float, float]] = []
    start = time.monotonic()
    steal0, load0 = cpu_steal_ms(), os.getloadavg()[0]
    while deploy.poll() is None:
        value = rss_mb(deploy.pid)
        if value is not None:
            samples.append((time.monotonic(), value))
        time.sleep(1.0)
    reader.join(5)
    steal = cpu_steal_ms() - steal0
    bridge.terminate()
    bridge.wait(10)
    lock.close()
    summary_lines = [line for line in lines if line.startswith("summary ")]
    if deploy.returncode != 0 or not summary_lines:
        raise SystemExit(f"{name}: deploy failed (exit {deploy.returncode}):\n{''.join(lines[-40:])}")
    summary = json.loads(summary_lines[-1][len("summary ") :])
    # Memory from 5 s into POLICY (buffers allocated, first chunks written) to its end, on the clock the
    # samples were taken with (the arrival of the deploy's "-> POLICY" line).
    t_policy = policy_seen[0] if policy_seen else start
    window = [mb for t, mb in samples if t_policy + 5.0 <= t <= t_policy + policy_s]
    sys.path.insert(0, str(REPO))
    from robolearn.deploy.recorder import read_log
    from robolearn.deploy.safety import SafetyState

    log = read_log(log_dir)
    c = log.control
    in_policy = c[c["safety"] == SafetyState.POLICY.value]
    errors_ms = np.abs(np.diff(in_policy["t"]) - 0.002) * 1e3
    loop, inference, policy_loop = summary["command_loop"], summary["inference"], summary["policy_loop"]
    return {
        "loop": name,
        "policy_s": policy_s,
        "commands_in_policy": len(in_policy),
        "period_error_p50_ms": float(np.percentile(errors_ms, 50)),
        "period_error_p99_ms": float(np.percentile(errors_ms, 99)),
        "period_error_p999_ms": float(np.percentile(errors_ms, 99.9)),
        "period_error_max_ms": float(errors_ms.max()),
        "missed_over_2ms": int(np.sum(errors_ms > 2.0)),
        "mean_command_rate_hz": float((len(in_policy) - 1) / (in_policy["t"][-1] - in_policy["t"][0])),
        "session_period_error_p99_ms": loop["period_error_p99_ms"],
        "inference_p50_ms": inference["p50_ms"],
        "inference_p99_ms": inference["p99_ms"],
        "policy_period_error_p50_ms": policy_loop["period_error_p50_ms"],
        "policy_period_error_p99_ms": policy_loop["period_error_p99_ms"],
        "rss_start_mb": window[0] if window else float("nan"),
        "rss_growth_mb": (window[-1] - window[0]) if window else float("nan"),
        "rss_max_growth_mb": (max(window) - window[0]) if window else float("nan"),
        "rss_series_mb": [(round(t - t_policy, 1), round(mb, 1)) for t, mb in samples],
        "faults": len(summary["faults"]),
        "load_average_at_start": load0,
        "cpu_steal_ms": steal,
        "warnings": summary["warnings"],
        "errors_ms": errors_ms,
    }


def machine() -> str:
    """CPU model and core count (lscpu), kernel and Python."""
    model = "unknown CPU"
    try:
        for line in subprocess.run(
            ["lscpu"], capture_output=True, text=True, check=False
        ).stdout.splitlines():
            if line.startswith("Model name:"):
                model = line.split(":", 1)[1].strip()
    except OSError:
        pass
    return f"{model}, {os.cpu_count()} cores, Linux {platform.release()}, Python {platform.python_version()}"


def table(rows: list[dict[str, Any]]) -> str:
    """The markdown table of the results."""
    head = (
        "| loop | POLICY time | period error p50 / p99 / p99.9 / max (ms) | missed (> 2 ms) | command rate"
        " | inference p50 / p99 (ms) | policy period error p99 (ms) | RSS growth | load avg | CPU steal |"
    )
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        lines.append(
            f"| {r['loop']} | {r['policy_s']:.0f} s | {r['period_error_p50_ms']:.3f} / {r['period_error_p99_ms']:.3f} /"
            f" {r['period_error_p999_ms']:.3f} / {r['period_error_max_ms']:.2f} | {r['missed_over_2ms']} |"
            f" {r['mean_command_rate_hz']:.1f} Hz | {r['inference_p50_ms']:.3f} / {r['inference_p99_ms']:.3f} |"
            f" {r['policy_period_error_p99_ms']:.3f} | {r['rss_growth_mb']:.1f} (max {r['rss_max_growth_mb']:.1f}) MB |"
            f" {r['load_average_at_start']:.1f} |"
            f" {r['cpu_steal_ms']:.0f} ms |"
        )
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    """Period error distributions (complementary CDF, log scale) of every run."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 3.6))
    for r in rows:
        e = np.sort(r["errors_ms"])
        survival = 1.0 - np.arange(len(e)) / len(e)
        ax.step(e, survival, where="post", label=f"{r['loop']} ({r['policy_s']:.0f} s)")
    ax.axvline(0.5, color="grey", ls="--", lw=0.8)
    ax.axvline(2.0, color="red", ls=":", lw=0.8)
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("command period error |t_k - t_(k-1) - 2 ms| (ms)")
    ax.set_ylabel("fraction of periods above")
    ax.set_title("Go2 deploy over loopback DDS, 500 Hz commands, 50 Hz policy", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    """Run the comparison and the soak, write the table, JSON and plot."""
    args = parse_args(sys.argv[1:])
    out = (REPO / args["out"]) if not Path(args["out"]).is_absolute() else Path(args["out"])
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in LOOPS:
        print(f"running {name} for {args['duration_s']:.0f} s of POLICY ...", flush=True)
        rows.append(run_loop(name, float(args["duration_s"]), args, out))
    if args["soak_s"] > 0:
        print(f"soak: robolearn for {args['soak_s']:.0f} s of POLICY ...", flush=True)
        rows.append(run_loop("robolearn", float(args["soak_s"]), args, out))
    info = {
        "command": "python benchmarks/deploy_loop.py " + " ".join(sys.argv[1:]),
        "machine": machine(),
        "rt_priority": args["rt_priority"],
        "results": [{k: v for k, v in r.items() if k != "errors_ms"} for r in rows],
    }
    (out / "deploy_loop.json").write_text(json.dumps(info, indent=2))
    text = f"{info['command']}\n\nmachine: {info['machine']}; command loop SCHED_FIFO priority {args['rt_priority']}\n\n{table(rows)}\n"
    (out / "deploy_loop.md").write_text(text)
    plot(rows, out / "deploy_loop.png")
    print(text)
    print(f"wrote {out / 'deploy_loop.json'}, {out / 'deploy_loop.md'}, {out / 'deploy_loop.png'}")


if __name__ == "__main__":
    main()
