"""CEM planning speed with HyperCRL's dynamics-model and planner sizes, against a plain torch matmul.

    python benchmarks/mbrl_planning.py [--settings half_cheetah,pusher,inverted_pendulum] [--threads 1]
                                       [--plans 6] [--repeats 3] [--out outputs/benchmarks]

For each setting (sizes from rvl-lab-utoronto/HyperCRL, hypercrl/tools/default_arg.py; dims from our
Gymnasium env of that name, which is what robolearn plans on):

  setting            env                  model MLP             head       CEM horizon/samples/elites/iters
  half_cheetah       HalfCheetah-v5 (18)  4 x 200, ReLU         Gaussian   30 / 500 / 50 / 5
  pusher             Pusher-v5            2 x 200, ReLU         mean only  20 / 500 / 40 / 5
  inverted_pendulum  InvertedPendulum-v5  2 x 256, ReLU         mean only  25 / 1000 / 10 / 5

the script times `--plans` CEMPlanner.plan() calls (EnsembleDynamics with one member, the env's torch
reward and termination functions; normalisers fitted to random data so they do real work), after one
warm-up call. Figures are medians over `--repeats` blocks; each block also times plain torch matmuls, so
load from other processes hits both alike:

- plans/s: CEM plans (each one full MPC step: iterations x horizon batched model calls) per second;
- achieved FLOP/s: the dynamics MLP's matmul FLOPs per plan (2 * samples * sum(fan_in * fan_out) per
  model call; activations, normalisation and rewards count as overhead, not work) times plans/s;
- fraction: achieved FLOP/s over a plain `torch.mm` of two 1024 x 1024 float32 matrices (the machine's
  matmul rate at these threads); also shown over the same layer shapes run as bare F.linear calls (the model's layout).

Each figure is given twice: by wall clock, and by this process's CPU time (time.process_time), which
leaves out the time other processes hold the cores: on a shared machine the CPU-time ratio is the
steadier one (with --threads 1; more threads add their CPU time on both sides alike).

The goal (issue 17) is a fraction >= 0.5. Writes mbrl_planning.json and mbrl_planning.md under --out.
"""

from __future__ import annotations

import argparse
import itertools
import os
import statistics
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from robolearn.mbrl.envfns import env_functions
from robolearn.mbrl.models import EnsembleDynamics
from robolearn.mbrl.planners import CEMPlanner
from robolearn.utils.io import atomic_write_json, atomic_write_text
from robolearn.utils.sysinfo import cpu_info


@dataclass(frozen=True)
class Setting:
    """One HyperCRL configuration: model and planner sizes (default_arg_<name> in the official code)."""

    name: str
    env_id: str
    obs_dim: int
    act_dim: int
    hidden: tuple[int, ...]
    gaussian: bool  # HyperCRL's out_var
    horizon: int
    samples: int  # n_sim_particles
    elites: int  # num_cem_elites
    iterations: int  # n_sim_steps


SETTINGS = {
    s.name: s
    for s in (
        Setting("half_cheetah", "HalfCheetah-v5", 18, 6, (200, 200, 200, 200), True, 30, 500, 50, 5),
        Setting("pusher", "Pusher-v5", 23, 7, (200, 200), False, 20, 500, 40, 5),
        Setting("inverted_pendulum", "InvertedPendulum-v5", 4, 1, (256, 256), False, 25, 1000, 10, 5),
    )
}


def _layer_sizes(s: Setting) -> list[tuple[int, int]]:
    sizes = [s.obs_dim + s.act_dim, *s.hidden, s.obs_dim * (2 if s.gaussian else 1)]
    return list(itertools.pairwise(sizes))


def flops_per_plan(s: Setting) -> float:
    """Matmul FLOPs of the dynamics MLP in one CEM plan (multiply + add per weight, per sample, per call)."""
    per_call = 2.0 * s.samples * sum(i * o for i, o in _layer_sizes(s))
    return per_call * s.horizon * s.iterations


def _timed(fn: Any, min_time: float) -> tuple[float, float]:
    """(wall, process CPU) seconds per call of fn(), averaged over enough calls to last min_time of wall time."""
    fn()
    calls, wall0, cpu0 = 0, time.perf_counter(), time.process_time()
    while True:
        fn()
        calls += 1
        elapsed = time.perf_counter() - wall0
        if elapsed >= min_time:
            return elapsed / calls, (time.process_time() - cpu0) / calls


def square_matmul_flops(n: int = 1024, min_time: float = 0.5) -> tuple[float, float]:
    """(wall, CPU-time) FLOP/s of torch.mm on two n x n float32 matrices."""
    a, b = torch.randn(n, n), torch.randn(n, n)
    out = torch.empty(n, n)
    wall, cpu = _timed(lambda: torch.mm(a, b, out=out), min_time)
    return 2.0 * n**3 / wall, 2.0 * n**3 / cpu


def layer_chain_flops(s: Setting, min_time: float = 0.5) -> tuple[float, float]:
    """(wall, CPU-time) FLOP/s of the setting's layer shapes as bare F.linear calls (batch = samples)."""
    xs = [torch.randn(s.samples, i) for i, _ in _layer_sizes(s)]
    ws = [
        (torch.randn(o, i), torch.randn(o)) for i, o in _layer_sizes(s)
    ]  # nn.Linear's [out, in], as the model

    def chain() -> None:
        for x, (w, b) in zip(xs, ws, strict=True):
            F.linear(x, w, b)

    flops = 2.0 * s.samples * sum(i * o for i, o in _layer_sizes(s))
    wall, cpu = _timed(chain, min_time)
    return flops / wall, flops / cpu


def make_model(s: Setting, seed: int) -> EnsembleDynamics:
    """HyperCRL's dynamics MLP for the setting, normalisers fitted to random transitions."""
    torch.manual_seed(seed)
    model = EnsembleDynamics(
        s.obs_dim, s.act_dim, s.hidden, members=1, gaussian=s.gaussian, activation="relu"
    )
    rng = np.random.default_rng(seed)
    obs = rng.normal(size=(1000, s.obs_dim)).astype(np.float32)
    act = rng.uniform(-1, 1, size=(1000, s.act_dim)).astype(np.float32)
    nxt = (obs + 0.05 * rng.normal(size=obs.shape)).astype(np.float32)
    model.in_norm.fit(np.concatenate([obs, act], axis=1))
    model.out_norm.fit(nxt - obs)
    return model.eval()


def plan_rate(s: Setting, model: EnsembleDynamics, plans: int, seed: int) -> tuple[float, float]:
    """CEM plans per second of wall time and of process CPU time (one plan = one MPC step)."""
    reward_fn, done_fn = env_functions(s.env_id)
    planner = CEMPlanner(
        -torch.ones(s.act_dim),
        torch.ones(s.act_dim),
        horizon=s.horizon,
        samples=s.samples,
        elites=s.elites,
        iterations=s.iterations,
        seed=seed,
    )
    obs = torch.zeros(s.obs_dim)
    planner.plan(model, reward_fn, obs, done_fn)  # warm-up
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for _ in range(plans):
        # Feed the plan's own first action forward so the warm start is exercised as in MPC.
        action = planner.plan(model, reward_fn, obs, done_fn)
        with torch.no_grad():
            obs = model.predict(obs, action)[0]
    return plans / (time.perf_counter() - wall0), plans / (time.process_time() - cpu0)


def run(settings: list[Setting], threads: int, plans: int, repeats: int, seed: int) -> dict[str, Any]:
    """Median figures per setting over `repeats` blocks that alternate planning and reference matmuls."""
    torch.set_num_threads(threads)
    load_before = os.getloadavg()
    rows = []
    for s in settings:
        model = make_model(s, seed)
        rates, square, chain = [], [], []
        for _ in range(repeats):
            square.append(square_matmul_flops())
            rates.append(plan_rate(s, model, plans, seed))
            chain.append(layer_chain_flops(s))
        row: dict[str, Any] = {
            **asdict(s),
            "model_calls_per_plan": s.horizon * s.iterations,
            "gflop_per_plan": flops_per_plan(s) / 1e9,
            "plans_per_s_all": [r[0] for r in rates],
        }
        for k, clock in enumerate(("wall", "cpu")):
            rate = statistics.median(r[k] for r in rates)
            mm = statistics.median(q[k] for q in square)
            ch = statistics.median(c[k] for c in chain)
            achieved = rate * flops_per_plan(s)
            row[clock] = {
                "plans_per_s": rate,
                "plan_ms": 1000.0 / rate,
                "achieved_gflops": achieved / 1e9,
                "matmul_gflops": mm / 1e9,
                "layer_chain_gflops": ch / 1e9,
                "fraction_of_matmul": achieved / mm,
                "fraction_of_layer_chain": achieved / ch,
            }
        rows.append(row)
    return {
        "machine": {
            "cpu": cpu_info()["model"],
            "cores": os.cpu_count(),
            "torch_threads": threads,
            "torch": torch.__version__,
            "loadavg_before": load_before,
            "loadavg_after": os.getloadavg(),
        },
        "plans": plans,
        "repeats": repeats,
        "seed": seed,
        "rows": rows,
    }


def table(result: dict[str, Any]) -> str:
    """The markdown table of a run's figures."""
    m = result["machine"]
    lines = [
        f"Machine: {m['cpu']}, {m['cores']} cores, torch {m['torch']} with {m['torch_threads']} thread(s); "
        f"load average {m['loadavg_before'][0]:.1f} before, {m['loadavg_after'][0]:.1f} after.",
        "",
        "| setting | CEM H/N/elites/iters | clock | plans/s | ms/plan | GFLOP/plan | achieved GFLOP/s | "
        "torch.mm 1024 GFLOP/s | fraction (goal >= 0.5) | same-shape linear GFLOP/s | fraction of it |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in result["rows"]:
        cem = f"{r['horizon']}/{r['samples']}/{r['elites']}/{r['iterations']}"
        for clock in ("wall", "cpu"):
            c = r[clock]
            lines.append(
                f"| {r['name']} | {cem} | {clock} | {c['plans_per_s']:.2f} | {c['plan_ms']:.0f} | "
                f"{r['gflop_per_plan']:.2f} | {c['achieved_gflops']:.1f} | {c['matmul_gflops']:.1f} | "
                f"{c['fraction_of_matmul']:.2f} | {c['layer_chain_gflops']:.1f} | {c['fraction_of_layer_chain']:.2f} |"
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    """Parse arguments, run, write mbrl_planning.{json,md}, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument(
        "--settings", default=",".join(SETTINGS), help="comma-separated: " + ", ".join(SETTINGS)
    )
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--plans", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("outputs/benchmarks"))
    args = parser.parse_args()
    names = [n.strip() for n in args.settings.split(",") if n.strip()]
    unknown = [n for n in names if n not in SETTINGS]
    if unknown:
        parser.error(f"unknown setting(s) {unknown}; choose from {sorted(SETTINGS)}")
    result = run([SETTINGS[n] for n in names], args.threads, args.plans, args.repeats, args.seed)
    atomic_write_json(args.out / "mbrl_planning.json", result)
    text = table(result)
    atomic_write_text(args.out / "mbrl_planning.md", text)
    print(text)


if __name__ == "__main__":
    main()
