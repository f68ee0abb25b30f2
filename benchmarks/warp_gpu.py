"""backend=warp on a CUDA GPU: throughput of robolearn's tasks, where the time goes, and the CPU baseline.

    python benchmarks/warp_gpu.py [--worlds 1024 4096] [--steps 100] [--out outputs/benchmarks]

Needs the `gpu` extra (mujoco-warp, warp-lang) and a CUDA device; about 3 to 5 minutes on one
H100/H200, most of it the first compilation of MuJoCo Warp's kernels. For each task and world
count it measures:

- env: our VecEnv on backend=warp (PD + physics on the device, captured as one CUDA graph per
  control step; task logic in numpy on the host), env steps per second;
- split: per control step, the device work (upload of targets and gains, the graph, download of
  torques), the frame copy to the host, and the host's numpy task logic;
- bare: the same decimation loop of mjw.step captured in a CUDA graph with no PD and no task, the
  device's limit for this model;
- cpu batch: backend=batch (C MuJoCo) on all of the machine's cores, 1024 envs, for comparison.

Writes warp_gpu.md and warp_gpu.json under --out and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from robolearn.envs.backends import DynamicsParams, RootJointState, SimBackend, SimFrame, make_batched_env
from robolearn.envs.backends.warp_backend import WarpBackend
from robolearn.envs.factory import register_envs

TASK_IDS = ("robolearn/Go2Velocity-v1", "robolearn/G1Velocity-v1", "robolearn/G1Tracking-v1")


class _TimedBackend(SimBackend):
    """Delegates to a backend and adds up the seconds spent in step() and frame()."""

    def __init__(self, inner: SimBackend) -> None:
        self.inner = inner
        self.name, self.num_envs, self.decimation = inner.name, inner.num_envs, inner.decimation
        self.layout, self.model = inner.layout, inner.model
        self.seconds = {"device": 0.0, "frame": 0.0}

    def step(
        self, targets: np.ndarray, kp: np.ndarray, kd: np.ndarray, torque_limit: np.ndarray
    ) -> np.ndarray:
        """Upload, graph, torque download: returns once the device work is done."""
        t0 = time.perf_counter()
        out = self.inner.step(targets, kp, kd, torque_limit)
        self.seconds["device"] += time.perf_counter() - t0
        return out

    def frame(self) -> SimFrame:
        """The device-to-host copy the task reads."""
        t0 = time.perf_counter()
        out = self.inner.frame()
        self.seconds["frame"] += time.perf_counter() - t0
        return out

    def reset_envs(self, ids: np.ndarray, state: RootJointState) -> None:
        """Delegated."""
        self.inner.reset_envs(ids, state)

    def add_root_velocity(self, ids: np.ndarray, lin_vel: np.ndarray) -> None:
        """Delegated."""
        self.inner.add_root_velocity(ids, lin_vel)

    def set_dynamics(self, ids: np.ndarray, params: DynamicsParams) -> None:
        """Delegated."""
        self.inner.set_dynamics(ids, params)

    def get_physics_state(self) -> np.ndarray:
        """Delegated."""
        return self.inner.get_physics_state()

    def set_physics_state(self, state: np.ndarray) -> None:
        """Delegated."""
        self.inner.set_physics_state(state)


def measure_warp(env_id: str, worlds: int, steps: int) -> dict[str, Any]:
    """Env rate, its split, and the bare graph rate for one task and world count."""
    import mujoco_warp as mjw
    import warp as wp

    venv = make_batched_env(env_id, worlds, seed=0, backend="warp", device="cuda:0")
    task = venv.task
    backend = task.backend
    assert isinstance(backend, WarpBackend)
    nj = task.robot_spec.num_joints
    rng = np.random.default_rng(0)
    actions = rng.uniform(-0.3, 0.3, (steps + 3, worlds, nj))
    t_compile = time.perf_counter()
    venv.reset()
    for a in actions[:3]:  # compile kernels, capture the graph
        venv.step(a)
    wp.synchronize()
    compile_s = time.perf_counter() - t_compile

    timed = _TimedBackend(backend)
    task.backend = timed
    t0 = time.perf_counter()
    resets = 0
    for a in actions[3:]:
        _, _, done, _ = venv.step(a)
        resets += int(done.sum())
    total = time.perf_counter() - t0
    task.backend = backend
    split = timed.seconds

    # Bare: the decimation loop of mjw.step alone, as a CUDA graph.
    with wp.ScopedDevice("cuda:0"):
        with wp.ScopedCapture() as capture:
            for _ in range(task.robot_spec.decimation):
                mjw.step(backend.m, backend.d)
        wp.capture_launch(capture.graph)
        wp.synchronize()
        t1 = time.perf_counter()
        for _ in range(steps):
            wp.capture_launch(capture.graph)
        wp.synchronize()
        bare_s = time.perf_counter() - t1
    venv.close()
    per_step = 1e3 / steps
    return {
        "env_id": env_id,
        "worlds": worlds,
        "env_rate": steps * worlds / total,
        "bare_rate": steps * worlds / bare_s,
        "device_ms": split["device"] * per_step,
        "frame_ms": split["frame"] * per_step,
        "host_task_ms": (total - split["device"] - split["frame"]) * per_step,
        "step_ms": total * per_step,
        "compile_s": compile_s,
        "resets": resets,
    }


def measure_cpu_batch(env_id: str, envs: int, steps: int) -> float:
    """backend=batch on every core of this machine."""
    threads = os.cpu_count() or 1
    venv = make_batched_env(env_id, envs, seed=0, backend="batch", threads=threads)
    nj = venv.task.robot_spec.num_joints
    actions = np.random.default_rng(0).uniform(-0.3, 0.3, (steps, envs, nj))
    venv.reset()
    t0 = time.perf_counter()
    for a in actions:
        venv.step(a)
    rate = steps * envs / (time.perf_counter() - t0)
    venv.close()
    return rate


def main() -> None:
    """Run the measurements, write the table and JSON, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--worlds", type=int, nargs="+", default=[1024, 4096])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--cpu-envs", type=int, default=1024)
    parser.add_argument("--out", type=Path, default=Path("outputs/benchmarks"))
    args = parser.parse_args()
    import warp as wp

    wp.init()
    if wp.get_cuda_device_count() == 0:
        raise SystemExit("warp_gpu.py needs a CUDA device (Warp found none)")
    register_envs()
    gpu = wp.get_device("cuda:0").name
    rows = [measure_warp(t, n, args.steps) for t in TASK_IDS for n in args.worlds]
    cpu = {t: measure_cpu_batch(t, args.cpu_envs, max(10, args.steps // 5)) for t in TASK_IDS}
    lines = [
        f"backend=warp on {gpu}; CPU baseline backend=batch, {args.cpu_envs} envs on {os.cpu_count()} threads "
        f"({platform.processor() or 'x86_64'}). Env steps (control steps, 4 physics steps each) per second.",
        "",
        "| task | worlds | warp env | bare mjw graph | env / bare | device ms | frame copy ms | host task ms | cpu batch |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['env_id'].split('/')[-1]} | {r['worlds']} | {r['env_rate']:,.0f} | {r['bare_rate']:,.0f} | "
            f"{r['env_rate'] / r['bare_rate']:.2f} | {r['device_ms']:.2f} | {r['frame_ms']:.2f} | "
            f"{r['host_task_ms']:.2f} | {cpu[r['env_id']]:,.0f} |"
        )
    table = "\n".join(lines) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "warp_gpu.md").write_text(table)
    (args.out / "warp_gpu.json").write_text(
        json.dumps({"gpu": gpu, "rows": rows, "cpu_batch": cpu}, indent=2)
    )
    print(table)


if __name__ == "__main__":
    main()
