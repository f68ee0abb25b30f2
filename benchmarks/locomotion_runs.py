"""What the locomotion benchmarks (go2_walk.py, g1_locomotion.py) share: a training run that resumes
and stops on wall clock, its evaluation rows and speed read back from metrics.jsonl, its newest actor,
the velocity tasks' gait check and curriculum state, and the small files committed per seed.

Not a script: the benchmarks import it from their own folder (`python benchmarks/<name>.py` puts
benchmarks/ on sys.path).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from robolearn.runs.metrics import read_metrics
from robolearn.utils.io import atomic_write_json, atomic_write_text
from robolearn.utils.sysinfo import cpu_info

SIGINT_EXIT = 130  # robolearn.train stopped by SIGINT after saving a checkpoint (resumable)


def machine_now() -> dict[str, Any]:
    """The machine and its load before a benchmark starts (load_after is added at the end)."""
    return {
        "cpu": cpu_info().get("model", "?"),
        "cores": os.cpu_count(),
        "load_before": " ".join(f"{x:.2f}" for x in os.getloadavg()),
        "date": time.strftime("%Y-%m-%d %H:%M"),
    }


def finish_machine(machine: dict[str, Any]) -> None:
    """Record the load at the end (a busy machine slows every figure)."""
    machine["load_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())


def split_key(argv: Sequence[str], key: str) -> tuple[str | None, list[str]]:
    """`key=X` may come as a bare key=value, as the issues write it; the rest goes to argparse."""
    value = None
    rest = []
    for arg in argv:
        if arg.startswith(f"{key}="):
            value = arg.split("=", 1)[1]
        else:
            rest.append(arg)
    return value, rest


def train(
    experiment: str, seed: int, steps: int, run: Path, extra: Sequence[str], stop_after_s: float | None
) -> int:
    """Run (or resume, or skip when complete) `python -m robolearn.train +experiment=<experiment>` in
    `run`; stop it with SIGINT (a checkpoint, then exit) after stop_after_s. Returns its exit code."""
    cmd = [
        sys.executable,
        "-m",
        "robolearn.train",
        f"+experiment={experiment}",
        f"seed={seed}",
        f"steps={steps}",
        "logger.progress=lines",
        f"hydra.run.dir={run}",
        *extra,
    ]
    print("$", " ".join(cmd[1:]), flush=True)
    proc = subprocess.Popen(cmd)
    try:
        code = proc.wait(timeout=stop_after_s)
    except subprocess.TimeoutExpired:
        print(
            f"stopping the run after {(stop_after_s or 0.0) / 60:.1f} min (SIGINT: checkpoint, then exit)",
            flush=True,
        )
        proc.send_signal(signal.SIGINT)
        return proc.wait()
    if code == SIGINT_EXIT:
        print(
            f"training was stopped by SIGINT (a checkpoint was saved); reporting {run} as it is", flush=True
        )
    elif code != 0:
        raise SystemExit(f"training exited with {code}; its run folder is {run}")
    return code


def evaluation_rows(run: Path, metrics: Sequence[str]) -> list[dict[str, float]]:
    """The run's evaluation rows (those logging eval/<metrics[0]>): step, wall clock, return, the
    fall share and each named eval/ metric."""
    return [
        {
            "step": int(row["step"]),
            "wall_time_s": float(row["wall_time_s"]),
            "return": float(row["eval/mean_return"]),
            **{name: float(row[f"eval/{name}"]) for name in metrics if f"eval/{name}" in row},
            "terminated_fraction": float(row["eval/terminated_fraction"]),
        }
        for row in read_metrics(run / "metrics.jsonl")
        if f"eval/{metrics[0]}" in row
    ]


def training_speed(run: Path) -> dict[str, float]:
    """Median env steps/s over the run's iterations, and the share of an iteration spent updating."""
    rows = [r for r in read_metrics(run / "metrics.jsonl") if "time/steps_per_s" in r]
    if not rows:
        return {}
    learn = [float(r["time/learn_s"]) for r in rows if "time/learn_s" in r]
    collect = [float(r["time/collect_s"]) for r in rows if "time/collect_s" in r]
    return {
        "steps_per_s": float(np.median([float(r["time/steps_per_s"]) for r in rows])),
        "update_share": float(np.sum(learn) / max(np.sum(learn) + np.sum(collect), 1e-9)),
        "iterations": len(rows),
        "last_action_std": float(rows[-1].get("train/action_std", float("nan"))),
        "last_learning_rate": float(rows[-1].get("train/learning_rate", float("nan"))),
    }


def latest_state(run: Path) -> dict[str, Any] | None:
    """The newest checkpoint's saved training state (None before any checkpoint)."""
    import torch

    from robolearn.runs.loop import STATE_FILE

    pointer = run / "checkpoints" / "latest.json"
    if not pointer.is_file():
        return None
    name = json.loads(pointer.read_text(encoding="utf-8"))["name"]
    saved = torch.load(run / "checkpoints" / str(name) / STATE_FILE, map_location="cpu", weights_only=False)
    return dict(saved)


def curriculum_state(run: Path) -> dict[str, Any] | None:
    """The command curriculum's level and ranges in the newest checkpoint (None without one)."""
    from omegaconf import OmegaConf

    kwargs = OmegaConf.load(run / "config.yaml").env.get("kwargs") or {}
    saved = latest_state(run)
    if saved is None or kwargs.get("command_curriculum") is None:
        return None
    # rsl_trainer's env state: the RslVecEnv's, around the BatchedVecEnv's, around the task's layer state.
    task = saved["state"]["env"]["venv"]["envs"][0]["task"]
    if "curriculum_ranges" not in task:
        return None
    out: dict[str, Any] = {
        "step": int(saved.get("step", -1)),
        "level": int(task["curriculum_level"][1]),
        "ranges": np.asarray(task["curriculum_ranges"][1]).round(3).tolist(),
    }
    if "terrain_level" in task:  # terrain: the envs' tile levels (legged_gym's terrain curriculum)
        levels = np.asarray(task["terrain_level"][1])
        out["terrain_level_mean"] = round(float(levels.mean()), 3)
        out["terrain_level_counts"] = np.bincount(levels).tolist()
    return out


def newest_actor(run: Path) -> tuple[Any, dict[str, Any]] | None:
    """The run's newest checkpoint's actor and its env config as a plain dict (None before any)."""
    from omegaconf import OmegaConf

    from robolearn.evaluate import load_policy
    from robolearn.runs.layout import RunDir

    if not (run / "checkpoints" / "latest.json").is_file():
        return None
    cfg: Any = OmegaConf.load(run / "config.yaml")
    model, _ = load_policy(RunDir(run), "latest", cfg)
    env_cfg = OmegaConf.to_container(cfg.env, resolve=True)
    assert isinstance(env_cfg, dict)
    return model, {str(k): v for k, v in env_cfg.items()}


def gait_check(
    run: Path, seed: int, command_vx: float, seconds: float, nominal: bool = False
) -> dict[str, float] | None:
    """A velocity task's newest checkpoint's actor, deterministic, at vx = command_vx (no sideways or
    yaw command) for `seconds` on the run's env (`nominal`: without its randomisation, pushes and
    observation noise): touch-downs per second, mean forward speed, errors, falls."""
    from robolearn.envs import make_eval_env
    from robolearn.envs.tasks.rotations import quat_rotate_inverse_rows

    actor = newest_actor(run)
    if actor is None:
        return None
    model, env_cfg = actor
    kwargs = dict(env_cfg.get("kwargs") or {})
    kwargs["command_ranges"] = {
        "lin_vel_x": [command_vx] * 2,
        "lin_vel_y": [0.0, 0.0],
        "ang_vel_z": [0.0, 0.0],
    }
    kwargs["standing_fraction"] = 0.0
    kwargs.pop("command_curriculum", None)
    if nominal:
        kwargs["randomization"] = None
    env = make_eval_env({**env_cfg, "kwargs": kwargs})
    task: Any = env.unwrapped
    try:
        obs, _ = env.reset(seed=seed)
        steps = round(seconds / task.control_dt)
        touchdowns, vx, lin, yaw, fell = 0, 0.0, 0.0, 0.0, 0
        in_contact: Any = np.ones(len(task.contact_height), dtype=bool)
        for _ in range(steps):
            action, _ = model.predict(obs, deterministic=True)
            obs, _, terminated, truncated, info = env.step(action)
            frame = task.backend.frame()
            # A touch-down: a foot body comes within 1 cm of its standing height after being above it.
            contact = frame.body_pos[0, :, 2] < task.contact_height
            touchdowns += int(np.sum(contact & ~in_contact))
            in_contact = contact
            vx += float(quat_rotate_inverse_rows(frame.root_quat, frame.root_lin_vel)[0, 0])
            lin += float(info["metrics"]["lin_vel_error"])
            yaw += float(info["metrics"]["ang_vel_error"])
            if terminated or truncated:
                fell += int(terminated)
                obs, _ = env.reset()
                in_contact[:] = True
    finally:
        env.close()
    return {
        "command_vx": command_vx,
        "seconds": seconds,
        "nominal": nominal,
        "touchdowns_per_s": touchdowns / seconds,
        "mean_vx": vx / steps,
        "lin_vel_error": lin / steps,
        "ang_vel_error": yaw / steps,
        "falls": fell,
    }


def checkpoint_wall_time(run: Path) -> float | None:
    """The run's wall clock (metrics.jsonl, summed over resumes) at its newest checkpoint's step."""
    saved = latest_state(run)
    if saved is None:
        return None
    step = int(saved.get("step", -1))
    times = [float(r["wall_time_s"]) for r in read_metrics(run / "metrics.jsonl") if int(r["step"]) <= step]
    return max(times) if times else None


def command_grid(ranges: Sequence[Sequence[float]], cells: Sequence[int]) -> np.ndarray:
    """(K, 3) commands at the centres of a cells[0] x cells[1] x cells[2] grid over [[lo, hi]] x 3:
    equal-weight cell centres, so their mean error estimates the mean over the uniform box."""
    axes = []
    for (lo, hi), n in zip(ranges, cells, strict=True):
        width = (float(hi) - float(lo)) / int(n)
        axes.append(float(lo) + width * (np.arange(int(n)) + 0.5))
    mesh = np.meshgrid(*axes, indexing="ij")
    return np.stack([m.ravel() for m in mesh], axis=1)


def grid_check(
    run: Path,
    ranges: Sequence[Sequence[float]],
    cells: Sequence[int] = (5, 5, 5),
    seconds: float = 5.0,
    settle_s: float = 1.0,
    seed: int = 0,
) -> dict[str, Any] | None:
    """A velocity task's newest checkpoint's actor, deterministic, on every command of command_grid
    (held for `seconds` from a reset on the run's env as configured, its randomisation included as in
    the training evaluations; errors averaged after the first settle_s): the mean velocity
    and yaw-rate errors over the box, its falls, and the means by the command's direction (forward:
    vx > 0, backward: vx < 0, by |vy| and by |yaw|), so a policy that only walks forwards shows it.

    A training run's periodic evaluation draws about two commands per episode at random; a handful of
    episodes can miss whole regions of the box (a forward-only policy scored 0.23 m/s there and 0.46
    here), which is why the benchmarks take their verdict from this check."""
    from robolearn.envs import make_eval_env

    actor = newest_actor(run)
    if actor is None:
        return None
    model, env_cfg = actor
    commands = command_grid(ranges, cells)
    rows = []
    for k, (vx, vy, wz) in enumerate(commands):
        kwargs = dict(env_cfg.get("kwargs") or {})
        kwargs.pop("command_curriculum", None)
        kwargs["command_ranges"] = {"lin_vel_x": [vx, vx], "lin_vel_y": [vy, vy], "ang_vel_z": [wz, wz]}
        kwargs["standing_fraction"] = 0.0
        env = make_eval_env({**env_cfg, "kwargs": kwargs})
        task: Any = env.unwrapped
        try:
            obs, _ = env.reset(seed=seed + k)
            steps, settle = round(seconds / task.control_dt), round(settle_s / task.control_dt)
            lin = yaw = 0.0
            counted, fell = 0, False
            for t in range(steps):
                action, _ = model.predict(obs, deterministic=True)
                obs, _, terminated, truncated, info = env.step(action)
                if t >= settle:
                    lin += float(info["metrics"]["lin_vel_error"])
                    yaw += float(info["metrics"]["ang_vel_error"])
                    counted += 1
                if terminated or truncated:
                    fell = bool(terminated)
                    break
        finally:
            env.close()
        # A fall counts its missing steps as not moving: error = the commanded speed (and yaw rate).
        missing = steps - settle - counted if fell else 0
        lin += missing * float(np.hypot(vx, vy))
        yaw += missing * abs(float(wz))
        n = max(counted + missing, 1)
        rows.append([float(vx), float(vy), float(wz), lin / n, yaw / n, float(fell)])
    table = np.asarray(rows)

    def mean_of(mask: np.ndarray) -> dict[str, float]:
        return {
            "lin_vel_error": float(table[mask, 3].mean()),
            "ang_vel_error": float(table[mask, 4].mean()),
        }

    vx, vy, wz = table[:, 0], table[:, 1], table[:, 2]
    return {
        "ranges": [[float(v) for v in r] for r in ranges],
        "cells": [int(n) for n in cells],
        "seconds": seconds,
        "settle_s": settle_s,
        "lin_vel_error": float(table[:, 3].mean()),
        "ang_vel_error": float(table[:, 4].mean()),
        "falls": int(table[:, 5].sum()),
        "commands": len(table),
        "forward": mean_of(vx > 0),
        "backward": mean_of(vx < 0),
        "sideways": mean_of(np.abs(vy) >= np.abs(vy).max() - 1e-9),
        "turning": mean_of(np.abs(wz) >= np.abs(wz).max() - 1e-9),
        "worst": dict(
            zip(
                ("vx", "vy", "yaw", "lin_vel_error"),
                table[int(np.argmax(table[:, 3])), :4].tolist(),
                strict=True,
            )
        ),
        "rows": table.round(4).tolist(),
    }


def velocity_check_lines(res: dict[str, Any]) -> list[str]:
    """Markdown lines for a velocity run's gait check, grid check and curriculum state (when present)."""
    lines: list[str] = []
    gait = res.get("gait_check")
    if gait is not None:
        lines += [
            "",
            f"Gait check (newest checkpoint, vx = {gait['command_vx']} m/s for {gait['seconds']:g} s"
            f"{', nominal simulation' if gait.get('nominal') else ''}): "
            f"{gait['touchdowns_per_s']:.1f} touch-downs/s, mean vx {gait['mean_vx']:.2f} m/s, "
            f"errors {gait['lin_vel_error']:.3f} m/s / {gait['ang_vel_error']:.3f} rad/s, falls {gait['falls']}",
        ]
    grid = res.get("grid_check")
    if grid is not None:
        lines.append(
            f"Grid check (newest checkpoint, {grid['commands']} commands at the cell centres of a "
            f"{'x'.join(str(n) for n in grid['cells'])} grid over the goal's ranges, each {grid['seconds']:g} s "
            f"from a reset, errors after the first {grid['settle_s']:g} s): {grid['lin_vel_error']:.3f} m/s, "
            f"{grid['ang_vel_error']:.3f} rad/s, {grid['falls']} falls; forward (vx > 0) "
            f"{grid['forward']['lin_vel_error']:.3f}, backward {grid['backward']['lin_vel_error']:.3f}, "
            f"widest sideways {grid['sideways']['lin_vel_error']:.3f}, fastest turns "
            f"{grid['turning']['lin_vel_error']:.3f} m/s; worst ({grid['worst']['vx']:.1f}, "
            f"{grid['worst']['vy']:.1f}, {grid['worst']['yaw']:.1f}): {grid['worst']['lin_vel_error']:.3f} m/s"
        )
    cur = res.get("curriculum")
    if cur is not None:
        lines.append(
            f"Command curriculum at step {cur['step']:,}: level {cur['level']}, ranges {cur['ranges']}"
        )
    return lines


def benchmark_parser(description: str, key: str, choices: Sequence[str], out: str) -> argparse.ArgumentParser:
    """The locomotion benchmarks' shared options; `--<key>` (or a bare key=value) picks the variant."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(f"--{key}", choices=list(choices), default=None)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument(
        "--steps", type=int, default=None, help="env steps per seed (a ceiling; default per variant)"
    )
    parser.add_argument("--out", type=Path, default=Path(out))
    parser.add_argument("--stop-after-min", type=float, default=None)
    parser.add_argument("--results", type=Path, default=None, help="copy each seed's small files here")
    parser.add_argument("--no-train", action="store_true", help="only report the existing runs")
    parser.add_argument("extra", nargs="*", help="train overrides after --")
    return parser


def export_small_files(
    res: dict[str, Any], machine: dict[str, Any], name: str, results_dir: Path, extra: dict[str, Any]
) -> Path:
    """Copy a seed's small files (no checkpoints) to results_dir/<name>_seed<N>/ and write its summary
    (`extra` first: the benchmark's own keys, e.g. the recipe or the task)."""
    run = Path(res["run"])
    dest = results_dir / f"{name}_seed{res['seed']}"
    dest.mkdir(parents=True, exist_ok=True)
    for file in ("metrics.jsonl", "config.yaml"):
        if (run / file).is_file():
            shutil.copyfile(run / file, dest / file)
    atomic_write_json(dest / "evaluations.json", res["evaluations"])
    atomic_write_json(
        dest / "summary.json",
        {**extra, "machine": machine, **{k: v for k, v in res.items() if k != "evaluations"}},
    )
    return dest


def write_outputs(
    runs: Path,
    name: str,
    machine: dict[str, Any],
    results: list[dict[str, Any]],
    table: str,
    results_dir: Path | None,
    variant: dict[str, Any],
) -> None:
    """The benchmark's JSON and markdown beside its runs, each seed's small files in results_dir
    (when given, `variant` naming the recipe or task), and the table on stdout."""
    atomic_write_json(runs / f"{name}.json", {"machine": machine, "results": results})
    atomic_write_text(runs / f"{name}.md", table)
    if results_dir is not None:
        for res in results:
            label = str(next(iter(variant.values())))
            print("small files:", export_small_files(res, machine, label, results_dir.resolve(), variant))
    print(table)
