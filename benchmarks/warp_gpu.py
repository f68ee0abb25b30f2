"""backend=warp on a CUDA GPU: throughput of robolearn's tasks, where the time goes, and the CPU baseline.

    python benchmarks/warp_gpu.py [--worlds 1024 4096] [--steps 100] [--out outputs/benchmarks]
    python benchmarks/warp_gpu.py --device-only --worlds 4096     # issue 15's figure alone (~2 min)
    python benchmarks/warp_gpu.py --device cpu --worlds 4 --steps 5 --device-only  # smoke run, no GPU

Needs the `gpu` extra (mujoco-warp, warp-lang) and a CUDA device; about 3 to 5 minutes on one
H100/H200, most of it the first compilation of MuJoCo Warp's kernels. For each task and world
count it measures:

- device env: DeviceVelocityEnv (robolearn/envs/tasks/velocity_device.py; Go2 and G1 velocity),
  the task logic in torch on the device, actions and observations as device tensors; its rate over
  the bare rate below is issue 15's figure (goal >= 0.8);
- env: our VecEnv on backend=warp (PD + physics on the device, captured as one CUDA graph per
  control step; task logic in numpy on the host), env steps per second;
- split: per control step, the device work (upload of targets and gains, the graph, download of
  torques), the frame copy to the host, and the host's numpy task logic;
- bare: the same decimation loop of mjw.step captured in a CUDA graph with no PD and no task, the
  device's limit for this model;
- cpu batch: backend=batch (C MuJoCo) on all of the machine's cores, 1024 envs, for comparison.

Writes warp_gpu.md and warp_gpu.json under --out and prints the table. Fixed seeds (0) throughout.
"""

from __future__ import annotations

import argparse
import os
import platform
import time
from pathlib import Path
from typing import Any

import numpy as np

from robolearn.envs.backends import DynamicsParams, RootJointState, SimBackend, SimFrame
from robolearn.envs.backends.warp_backend import WarpBackend
from robolearn.envs.factory import register_envs
from robolearn.envs.vector import make_batched_env
from robolearn.utils.io import atomic_write_json, atomic_write_text

TASK_IDS = ("robolearn/Go2Velocity-v1", "robolearn/G1Velocity-v1", "robolearn/G1Tracking-v1")
DEVICE_TASK_IDS = ("robolearn/Go2Velocity-v1", "robolearn/G1Velocity-v1")


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


def bare_rate(backend: WarpBackend, steps: int) -> float:
    """Env steps per second of the decimation loop of mjw.step alone (no PD, no task) on the backend's
    worlds: a CUDA graph replayed on a GPU, plain launches on Warp's CPU device."""
    import mujoco_warp as mjw
    import warp as wp

    def loop() -> None:
        for _ in range(backend.decimation):
            mjw.step(backend.m, backend.d)

    with wp.ScopedDevice(backend.device):
        if backend.device.is_cuda:
            with wp.ScopedCapture() as capture:
                loop()
            run = lambda: wp.capture_launch(capture.graph)  # noqa: E731
        else:
            run = loop
        run()
        wp.synchronize_device(backend.device)
        t0 = time.perf_counter()
        for _ in range(steps):
            run()
        wp.synchronize_device(backend.device)
        seconds = time.perf_counter() - t0
    return steps * backend.num_envs / seconds


def config_kwargs(env_id: str) -> dict[str, Any]:
    """The env config's kwargs (configs/env/<Name>.yaml: randomisation, observation noise, ...)."""
    from omegaconf import OmegaConf

    path = Path(__file__).resolve().parents[1] / "configs" / "env" / f"{env_id.split('/')[-1]}.yaml"
    kwargs = OmegaConf.to_container(OmegaConf.load(path).kwargs, resolve=True)
    assert isinstance(kwargs, dict)
    return {str(k): v for k, v in kwargs.items()}


def measure_device_task(
    env_id: str, worlds: int, steps: int, device: str, with_config: bool = False
) -> dict[str, Any]:
    """DeviceVelocityEnv's rate (torch actions in, TensorDict out, no host copy) against the bare loop."""
    import torch
    import warp as wp

    from robolearn.envs.tasks.velocity_device import make_device_velocity_env

    kwargs = config_kwargs(env_id) if with_config else {}
    env = make_device_velocity_env(env_id, worlds, seed=0, device=device, **kwargs)
    gen = torch.Generator(device=env.device).manual_seed(0)
    shape = (steps + 3, worlds, env.num_actions)
    actions = torch.rand(shape, generator=gen, device=env.device) * 0.6 - 0.3
    t_compile = time.perf_counter()
    env.reset()
    for a in actions[:3]:  # compile kernels, capture the physics graph
        env.step(a)
    wp.synchronize_device(env.backend.device)
    compile_s = time.perf_counter() - t_compile
    done_sum = torch.zeros((), device=env.device)
    t0 = time.perf_counter()
    for a in actions[3:]:
        _, _, done, _ = env.step(a)
        done_sum += done.sum()
    wp.synchronize_device(env.backend.device)
    total = time.perf_counter() - t0
    bare = bare_rate(env.backend, steps)
    env.close()
    return {
        "env_id": env_id,
        "worlds": worlds,
        "device_env_rate": steps * worlds / total,
        "bare_rate": bare,
        "ratio": steps * worlds / total / bare,
        "step_ms": total * 1e3 / steps,
        "compile_s": compile_s,
        "resets": int(done_sum.item()),
        "config_kwargs": with_config,
    }


def measure_warp(env_id: str, worlds: int, steps: int, device: str = "cuda:0") -> dict[str, Any]:
    """Env rate, its split, and the bare graph rate for one task and world count."""
    import warp as wp

    venv = make_batched_env(env_id, worlds, seed=0, backend="warp", device=device)
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
    wp.synchronize_device(backend.device)
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

    bare = bare_rate(backend, steps)
    venv.close()
    per_step = 1e3 / steps
    return {
        "env_id": env_id,
        "worlds": worlds,
        "env_rate": steps * worlds / total,
        "bare_rate": bare,
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
    parser.add_argument("--device", default="cuda:0", help="Warp device; cpu for a smoke run")
    parser.add_argument("--device-only", action="store_true", help="only the device task against bare")
    parser.add_argument(
        "--with-config",
        action="store_true",
        help="device task with the env config's randomisation and noise (default: none, as the host rows)",
    )
    parser.add_argument("--out", type=Path, default=Path("outputs/benchmarks"))
    args = parser.parse_args()
    import warp as wp

    wp.init()
    if args.device.startswith("cuda") and wp.get_cuda_device_count() == 0:
        raise SystemExit("warp_gpu.py needs a CUDA device (Warp found none); --device cpu for a smoke run")
    register_envs()
    name = wp.get_device(args.device).name
    device_rows = [
        measure_device_task(t, n, args.steps, args.device, args.with_config)
        for t in DEVICE_TASK_IDS
        for n in args.worlds
    ]
    lines = [
        f"Warp device {args.device} ({name}); {args.steps} timed control steps (4 physics steps each), seed 0;"
        f" device task {'with' if args.with_config else 'without'} the env config's randomisation.",
        "",
        "| task | worlds | device-task env | bare mjw loop | device env / bare (goal >= 0.8) | ms per step |",
        "|---|---|---|---|---|---|",
    ]
    for r in device_rows:
        lines.append(
            f"| {r['env_id'].split('/')[-1]} | {r['worlds']} | {r['device_env_rate']:,.0f} | "
            f"{r['bare_rate']:,.0f} | {r['ratio']:.2f} | {r['step_ms']:.2f} |"
        )
    rows: list[dict[str, Any]] = []
    cpu: dict[str, float] = {}
    if not args.device_only:
        rows = [measure_warp(t, n, args.steps, args.device) for t in TASK_IDS for n in args.worlds]
        cpu = {t: measure_cpu_batch(t, args.cpu_envs, max(10, args.steps // 5)) for t in TASK_IDS}
        lines += [
            "",
            f"Host task logic (backend=warp); CPU baseline backend=batch, {args.cpu_envs} envs on "
            f"{os.cpu_count()} threads ({platform.processor() or 'x86_64'}). Env steps per second.",
            "",
            "| task | worlds | warp env | bare mjw loop | env / bare | device ms | frame copy ms | host task ms | cpu batch |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in rows:
            lines.append(
                f"| {r['env_id'].split('/')[-1]} | {r['worlds']} | {r['env_rate']:,.0f} | {r['bare_rate']:,.0f} | "
                f"{r['env_rate'] / r['bare_rate']:.2f} | {r['device_ms']:.2f} | {r['frame_ms']:.2f} | "
                f"{r['host_task_ms']:.2f} | {cpu[r['env_id']]:,.0f} |"
            )
    table = "\n".join(lines) + "\n"
    atomic_write_text(args.out / "warp_gpu.md", table)
    atomic_write_json(
        args.out / "warp_gpu.json",
        {"device": name, "device_task": device_rows, "rows": rows, "cpu_batch": cpu},
    )
    print(table)


if __name__ == "__main__":
    main()
