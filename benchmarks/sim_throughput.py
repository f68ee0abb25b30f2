"""Simulation throughput of robolearn's velocity tasks, side by side (docs/envs.md quotes the result).

    python benchmarks/sim_throughput.py [--envs 64 256 1024] [--threads 2] [--steps 400]
        [--baselines all|bare] [--out outputs/benchmarks]
    python benchmarks/sim_throughput.py --profile [--envs 64] [--steps 400]

For Go2Velocity-v1 and G1Velocity-v1 at each env count, with the same threads and action sequence:

- bare: mujoco.batch.Batch stepping the batch backend's physics model (the PD law as MuJoCo
  actuators), one `step(nstep=decimation)` per control step, from the very states our env passed
  through (recorded in a first pass, controls included), with nothing else: the limit.
- batch env: our `backend=batch` SB3 VecEnv (physics, observations, rewards, resets, auto-reset).
- subproc: SB3 SubprocVecEnv with one process per env, each a single env (`backend=mujoco`).
- dummy: SB3 DummyVecEnv over the same single envs, in one process.
- warp: `backend=warp` when mujoco_warp is installed (Warp's CPU device here; GPUs: warp_gpu.py).

subproc, dummy and warp run with `--baselines all` and at most 64 envs (one process per env).
Rates are env steps (control steps) per second, the median of `--repeats` runs; bare and batch env
alternate in blocks of 20 control steps, so other load on the machine hits both alike. "host" is
the batch env's time per control step beyond the bare physics: observations, rewards, resets, glue.
"CPU time" is the same ratio from the process's CPU seconds (all threads) instead of the wall clock:
the work each side does, which a machine loaded by other processes distorts much less.
Writes sim_throughput.md and sim_throughput.json under --out and prints the table. `--profile`
prints instead where a control step's time goes, part by part (see profile_task).
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gymnasium as gym
import mujoco
import numpy as np
from mujoco.batch import Batch
from stable_baselines3.common.vec_env import DummyVecEnv, SubprocVecEnv, VecEnv

from robolearn.envs.backends.batch_backend import BatchBackend
from robolearn.envs.tasks import register_envs
from robolearn.envs.vector import make_batched_env
from robolearn.utils.io import atomic_write_json, atomic_write_text
from robolearn.utils.sysinfo import cpu_info

TASK_IDS = ("robolearn/Go2Velocity-v1", "robolearn/G1Velocity-v1")
BLOCK = 20
# One process per env: beyond this the process baselines measure the machine's scheduler, not envs.
MAX_PROCESS_ENVS = 64


def _actions(steps: int, envs: int, nj: int, seed: int = 0) -> np.ndarray:
    # Small actions around the default pose: the Go2 keeps standing, the G1 falls now and then and
    # is reset, so resets are part of the measured work.
    return np.random.default_rng(seed).uniform(-0.3, 0.3, (steps, envs, nj))


def _median_rate(runs: list[float]) -> float:
    return float(statistics.median(runs))


def _time_vec_env(venv: VecEnv, actions: np.ndarray) -> float:
    venv.reset()
    start = time.perf_counter()
    for a in actions:
        venv.step(a)
    return actions.shape[0] * actions.shape[1] / (time.perf_counter() - start)


def _single_env_fns(env_id: str, n: int) -> list[Callable[[], gym.Env]]:
    def thunk() -> gym.Env:
        register_envs()
        return gym.make(env_id, disable_env_checker=True)

    return [thunk for _ in range(n)]


def measure_task(
    env_id: str, envs: int, threads: int, steps: int, repeats: int, warp_steps: int, baselines: str
) -> dict[str, Any]:
    """All rates for one task at one env count."""
    venv = make_batched_env(env_id, envs, seed=0, threads=threads, backend="batch")
    task = venv.task
    backend = task.backend
    assert isinstance(backend, BatchBackend)
    nj = task.robot_spec.num_joints
    actions = _actions(steps, envs, nj)

    # Pass 1: record the state rows each control step starts from (after auto-resets).
    venv.reset()
    start_state = venv.get_state()
    recorded = np.empty((steps, *backend.batch.state.shape))
    for k, a in enumerate(actions):
        recorded[k] = backend.batch.state
        venv.step(a)
    resets = 0

    # Bare and env alternate in blocks of BLOCK control steps over the same stretch of the episode,
    # so load from anything else on the machine hits both alike.
    # The model the backend steps (PD actuators), not the nominal one: the same physics, nothing else.
    bare = Batch(getattr(backend, "physics_model", backend.model), envs, nthread=threads)
    decimation = task.robot_spec.decimation
    bare_runs, env_runs, bare_cpu_runs, env_cpu_runs = [], [], [], []
    for _ in range(repeats):
        venv.set_state(start_state)
        bare_s = env_s = bare_cpu = env_cpu = 0.0
        for k0 in range(0, steps, BLOCK):
            for k in range(k0, min(k0 + BLOCK, steps)):
                bare.state[...] = recorded[k]
                t0, c0 = time.perf_counter(), time.process_time()
                bare.step(nstep=decimation)
                bare_s += time.perf_counter() - t0
                bare_cpu += time.process_time() - c0
            t0, c0 = time.perf_counter(), time.process_time()
            for a in actions[k0 : k0 + BLOCK]:
                _, _, done, _ = venv.step(a)
                resets += int(done.sum())
            env_s += time.perf_counter() - t0
            env_cpu += time.process_time() - c0
        bare_runs.append(steps * envs / bare_s)
        env_runs.append(steps * envs / env_s)
        # CPU seconds of all the process's threads: the work each side does, which other processes
        # on a loaded machine slow down far less than they slow down the wall clock.
        bare_cpu_runs.append(steps * envs / bare_cpu)
        env_cpu_runs.append(steps * envs / env_cpu)
    venv.close()

    subproc_rate = dummy_rate = None
    processes = baselines == "all" and envs <= MAX_PROCESS_ENVS
    if processes:
        sub_steps = max(20, steps // 4)
        subproc = SubprocVecEnv(_single_env_fns(env_id, envs), start_method="fork")
        subproc_rate = _time_vec_env(subproc, actions[:sub_steps])
        subproc.close()
        dummy = DummyVecEnv(_single_env_fns(env_id, envs))
        dummy_rate = _time_vec_env(dummy, actions[:sub_steps])
        dummy.close()

    bare_rate, env_rate = _median_rate(bare_runs), _median_rate(env_runs)
    result: dict[str, Any] = {
        "env_id": env_id,
        "envs": envs,
        "threads": threads,
        "steps": steps,
        "resets_per_run": resets // repeats,
        "bare": bare_rate,
        "batch_env": env_rate,
        "host_us_per_step": 1e6 * envs * (1.0 / env_rate - 1.0 / bare_rate),
        "subproc": subproc_rate,
        "dummy": dummy_rate,
        "bare_runs": bare_runs,
        "batch_env_runs": env_runs,
        "cpu_ratio": _median_rate(env_cpu_runs) / _median_rate(bare_cpu_runs),
        "bare_cpu_runs": bare_cpu_runs,
        "batch_env_cpu_runs": env_cpu_runs,
    }
    if processes:
        result.update(_measure_warp(env_id, envs, warp_steps, actions))
    else:
        result.update({"warp": None, "warp_note": "not run (--baselines bare or over 64 envs)"})
    return result


class _Timed:
    """Exclusive thread-CPU seconds by part: a part's time excludes the wrapped parts it calls."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._children: list[float] = []

    def wrap(self, part: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            self._children.append(0.0)
            start = time.thread_time()
            try:
                return fn(*args, **kwargs)
            finally:
                elapsed = time.thread_time() - start
                inner = self._children.pop()
                self.seconds[part] = self.seconds.get(part, 0.0) + elapsed - inner
                if self._children:
                    self._children[-1] += elapsed

        return timed


class _TimedBatch:
    """A Batch whose step() goes through a timer, everything else passed through.

    Each step also steps a twin Batch of the same model from the same state right after, timed
    apart: the bare physics at the same moment of the loop (caches as cold as the env's), which the
    throughput table's bare loop, stepping 20 control steps back to back, is not.
    """

    def __init__(self, batch: Batch, twin: Batch, timer: _Timed) -> None:
        self._batch = batch
        self._twin = twin
        self._step = timer.wrap("physics", batch.step)
        self._twin_step = timer.wrap("twin", twin.step)
        # The twin's state copies and check, timed apart so that no reported part carries them.
        self._copy = timer.wrap("instrumentation", lambda: np.array(self._batch.state))
        self._check = timer.wrap("instrumentation", self._twin_check)
        self.twin_mismatches = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self._batch, name)

    def step(self, **kwargs: Any) -> None:
        state = self._copy()
        self._step(**kwargs)
        self._check(state, kwargs)

    def _twin_check(self, state: np.ndarray, kwargs: dict[str, Any]) -> None:
        self._twin.state[...] = state
        self._twin_step(**kwargs)
        self.twin_mismatches += not np.array_equal(self._twin.state, self._batch.state)


PROFILE_PARTS = (
    ("physics", "Batch.step, decimation substeps (1 thread: all of it on this thread)"),
    ("backend step (host)", "BatchBackend.step around it: PD actuator parameters, controls, torques"),
    ("frame copy", "BatchBackend.frame: the state rows and body poses the task reads"),
    ("terminations", "task.fallen"),
    ("reward context", "task.reward_context (base-frame velocities, contacts, air time)"),
    ("reward terms", "the reward functions"),
    ("reward weighting", "scales, non-finite guard, sums"),
    ("observations", "task.observe (step and reset rows)"),
    ("resets", "task.reset_envs (randomisation, initial states, commands)"),
    ("task rest", "step_envs otherwise: actions, delay, truncation, pushes, commands"),
    ("adapter", "VecEnv step otherwise: auto-reset bookkeeping, infos, dtype"),
)


def profile_task(env_id: str, envs: int, steps: int) -> dict[str, float]:
    """Where a control step's time goes, µs of thread CPU per control step by part, on one thread.

    One thread so that every part, physics included, runs on the timed thread; the host parts do
    not depend on the thread count. "twin" is a bare Batch stepped from the same state right after
    the env's physics (see _TimedBatch): the physics cost without the env, at the same point.
    """
    venv = make_batched_env(env_id, envs, seed=0, threads=1, backend="batch")
    task, backend = venv.task, venv.task.backend
    assert isinstance(backend, BatchBackend)
    actions = _actions(steps, envs, task.robot_spec.num_joints)
    venv.reset()
    for a in actions[: min(20, steps)]:  # warm up outside the timing
        venv.step(a)
    timer = _Timed()
    # Instance attributes shadow the class methods, for this env only.
    twin = Batch(getattr(backend, "physics_model", backend.model), envs, nthread=1)
    timed_batch = _TimedBatch(backend.batch, twin, timer)
    backend.batch = timed_batch
    backend.step = timer.wrap("backend step (host)", backend.step)  # type: ignore[method-assign]
    backend.frame = timer.wrap("frame copy", backend.frame)  # type: ignore[method-assign]
    task.fallen = timer.wrap("terminations", task.fallen)  # type: ignore[method-assign]
    task.reward_context = timer.wrap("reward context", task.reward_context)  # type: ignore[method-assign]
    task.reward_functions = {k: timer.wrap("reward terms", f) for k, f in task.reward_functions.items()}  # type: ignore[misc]
    weighting = getattr(task, "_weighted_terms", None)
    if weighting is not None:  # older tasks weigh inline (then it counts in "task rest")
        task._weighted_terms = timer.wrap("reward weighting", weighting)  # type: ignore[method-assign]
    task.observe = timer.wrap("observations", task.observe)  # type: ignore[method-assign]
    task.reset_envs = timer.wrap("resets", task.reset_envs)  # type: ignore[method-assign]
    task.step_envs = timer.wrap("task rest", task.step_envs)  # type: ignore[method-assign]
    step = timer.wrap("adapter", venv.step)
    for a in actions:
        step(a)
    venv.close()
    result = {part: 1e6 * timer.seconds.get(part, 0.0) / steps for part, _ in PROFILE_PARTS}
    result["twin"] = 1e6 * timer.seconds.get("twin", 0.0) / steps
    # Envs whose twin ended a step in another state than the env (0: the same physics, bit for bit).
    result["twin_mismatches"] = float(timed_batch.twin_mismatches)
    return result


def render_profile(profiles: dict[str, dict[str, float]], envs: int) -> str:
    """Markdown table of profile_task's parts, one column per task."""
    names = list(profiles)
    lines = [
        f"µs of thread CPU per control step, {envs} envs, 1 thread:",
        "",
        "| part | " + " | ".join(n.split("/")[-1] for n in names) + " | what |",
        "|---|" + "---|" * len(names) + "---|",
    ]
    for part, what in PROFILE_PARTS:
        lines.append(f"| {part} | " + " | ".join(f"{profiles[n][part]:,.0f}" for n in names) + f" | {what} |")
    host = {n: sum(profiles[n][part] for part, _ in PROFILE_PARTS if part != "physics") for n in names}
    lines.append("| host in all | " + " | ".join(f"{host[n]:,.0f}" for n in names) + " | all but physics |")
    lines.append(
        "| bare Batch, same state, same moment | "
        + " | ".join(f"{profiles[n]['twin']:,.0f}" for n in names)
        + " | a twin Batch stepped from the env's state right after it (not in the host sum) |"
    )
    lines.append(
        "| steps where the twin's state differs | "
        + " | ".join(f"{profiles[n]['twin_mismatches']:.0f}" for n in names)
        + " | 0: the env steps the same physics, bit for bit |"
    )
    return "\n".join(lines) + "\n"


def _measure_warp(env_id: str, envs: int, steps: int, actions: np.ndarray) -> dict[str, Any]:
    try:
        import mujoco_warp  # noqa: F401
        import warp  # noqa: F401
    except ImportError:
        return {"warp": None, "warp_note": "mujoco_warp not installed"}
    from robolearn.envs.backends.warp_backend import WarpBackend

    venv = make_batched_env(env_id, envs, seed=0, backend="warp", device=None)
    backend = venv.task.backend
    assert isinstance(backend, WarpBackend)
    venv.reset()
    venv.step(actions[0])  # compile / capture outside the timing
    t0 = time.perf_counter()
    for a in actions[1 : steps + 1]:
        venv.step(a)
    rate = steps * envs / (time.perf_counter() - t0)
    # Host-side cost of reaching the device: the frame copies the task reads every step.
    t1 = time.perf_counter()
    for _ in range(steps):
        backend.frame()
    frame_s = (time.perf_counter() - t1) / steps
    device = str(backend.device)
    venv.close()
    return {
        "warp": rate,
        "warp_device": device,
        "warp_frame_copy_ms": 1e3 * frame_s,
        "warp_step_ms": 1e3 * envs / rate,
    }


def _fmt(rate: float | None) -> str:
    return "n/a" if rate is None else f"{rate:,.0f}"


def _ratio(num: float | None, den: float | None, digits: int) -> str:
    return "n/a" if num is None or den is None else f"{num / den:.{digits}f}"


def render_table(results: list[dict[str, Any]], machine: dict[str, Any]) -> str:
    """Markdown table of rates and goal ratios."""
    lines = [
        f"Env steps per second on {results[0]['threads']} threads; {machine['cpu']}, {machine['cores']} cores, "
        f"load average {machine['load_before']} before / {machine['load_after']} after; "
        f"mujoco {machine['mujoco']}; {machine['date']} UTC.",
        "",
        "| task | envs | bare Batch (limit) | batch env | batch / bare (goal ≥ 0.8) | same, CPU time | "
        "host µs/step | SubprocVecEnv | batch / subproc (goal ≥ 3) | DummyVecEnv | warp |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in results:
        warp = _fmt(r["warp"]) + (f" ({r['warp_device']})" if r.get("warp") else "")
        lines.append(
            f"| {r['env_id'].split('/')[-1]} | {r['envs']} | {_fmt(r['bare'])} | {_fmt(r['batch_env'])} | "
            f"{r['batch_env'] / r['bare']:.2f} | {r['cpu_ratio']:.2f} | {r['host_us_per_step']:,.0f} | "
            f"{_fmt(r['subproc'])} | "
            f"{_ratio(r['batch_env'], r['subproc'], 1)} | {_fmt(r['dummy'])} | {warp} |"
        )
    for r in results:
        if r.get("warp"):
            lines.append("")
            lines.append(
                f"{r['env_id'].split('/')[-1]} warp ({r['envs']} envs): {r['warp_step_ms']:.1f} ms per control"
                f" step, of which {r['warp_frame_copy_ms']:.2f} ms copying the frame to the host."
            )
    return "\n".join(lines) + "\n"


def main() -> None:
    """Run every measurement, write the table and JSON, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--envs", type=int, nargs="+", default=[64])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--warp-steps", type=int, default=5)
    parser.add_argument(
        "--baselines", choices=("all", "bare"), default="all", help="bare: skip subproc, dummy and warp"
    )
    parser.add_argument(
        "--profile", action="store_true", help="only the per-part breakdown of a control step (1 thread)"
    )
    parser.add_argument("--out", type=Path, default=Path("outputs/benchmarks"))
    args = parser.parse_args()
    register_envs()
    if args.profile:
        for n in args.envs:
            profiles = {t: profile_task(t, n, args.steps) for t in TASK_IDS}
            print(render_profile(profiles, n))
        return
    machine: dict[str, Any] = {
        "cpu": cpu_info()["model"],
        "cores": os.cpu_count(),
        "mujoco": mujoco.__version__,
        "python": platform.python_version(),
        "load_before": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "date": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
    }
    results = [
        measure_task(t, n, args.threads, args.steps, args.repeats, args.warp_steps, args.baselines)
        for n in args.envs
        for t in TASK_IDS
    ]
    machine["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    table = render_table(results, machine)
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "sim_throughput.md", table)
    atomic_write_json(args.out / "sim_throughput.json", {"machine": machine, "results": results})
    print(table)


if __name__ == "__main__":
    main()
