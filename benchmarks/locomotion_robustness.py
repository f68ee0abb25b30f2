"""Robustness of a trained locomotion policy where deployment needs it: 60 s sim2sim and 60 s over DDS.

    python benchmarks/locomotion_robustness.py <run dir | artifact dir> [--name NAME]
        [--seeds 3] [--duration 60] [--every 10] [--ranges contract | curriculum | VX0 VX1 VY0 VY1 YAW0 YAW1]
        [--paths sim2sim dds] [--no-randomization | --no-obs-noise] [--motion-clip NAME]
        [--out benchmarks/results/robustness]

A tracking policy (a G1Tracking run: its artifact carries the clips) plays --motion-clip in both paths
(deploy's motion_clip; its commands are unused, so pass --ranges 0 0 0 0 0 0): the figures that count
are the falls and the safety events.

1. The artifact: a run directory is exported with the documented command (`python -m robolearn.export
   run=<run> checkpoint=<--checkpoint> out=<work>/artifact`); --checkpoint auto (the default) is final
   where the run finished, else latest (an rsl_ppo run cut short: its newest checkpoint's actor). A task
   observing its base velocity (observe_base_lin_vel) gets the contract's `base_lin_vel` term, which
   sim2sim's in-process MuJoCo fills and DDS deploy refuses at start.
2. Commands: per seed, a schedule that draws a new (vx, vy, yaw rate) uniformly from --ranges every
   --every seconds of policy time (rng [seed, 4]); `contract` = the contract's command ranges,
   `curriculum` = the run's command-curriculum ranges in its newest checkpoint.
3. Domain randomisation, the task's (run config env.kwargs.randomization) where the path has a place
   for it, drawn per seed: friction and joint friction on the simulated robot in both paths
   (sim2sim.randomize_dynamics); observation noise on the state sim2sim's runtime reads, which its
   guards read as well (a 1.5 rad/s joint-velocity noise brings the joint-speed guard closer; a real
   robot's encoders are far quieter: --no-obs-noise leaves it out). Over DDS the bridge publishes exact
   sensor values (no noise), as its LowState has no hook for it.
4. sim2sim (robolearn.deploy.sim2sim.run_episode): the deploy runtime in lockstep with the in-process
   MuJoCo robot (backend=mujoco), from the task's reset noise, --duration s of policy time.
5. dds: `python -m robolearn.deploy backend=dds` (loop.rt_priority=50, a robot's configuration) against
   the sim bridge (robolearn.deploy.sim_bridge.SimBridge, run here at 500 Hz on a DDS domain in 2-98
   with SCHED_FIFO 45 as `bridge.rt_priority=45` does, so the benchmark reads its ground truth).
   Driven as a robot is: the Go2 lies folded, the virtual remote presses start, then A when the
   runtime holds the pose (a G1 hangs on the bridge's gantry, bridge.hold_until_release, and is
   released when the runtime enters POLICY, as an operator lowers a humanoid once its policy runs); the schedule moves the remote's sticks; after --duration s of policy time
   (or a fall, or a guard trip) select damps it and the deploy process is stopped with SIGTERM.

Per path and seed: falls (policy time, why; the velocity task's rule, as sim2sim), RMS errors of the
planar velocity and the yaw rate against the command in effect after --settle s, leaving out the
--transient s after each command change (and all samples, *_all), safety events (limiter changes
while the policy drove, guard trips, the state at the end), and over DDS the command and policy loops'
timing from the deploy summary (overruns = missed deadlines, period error percentiles). Writes
<out>/<robot>_<name>.json and prints a markdown table.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import os
import platform
import re
import shlex
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import OmegaConf

from robolearn.deploy.artifact import PolicyArtifact, load_artifact
from robolearn.deploy.operator import stick_to_command
from robolearn.deploy.sim2sim import (
    Sim2SimConfig,
    base_row,
    fall_check,
    randomize_dynamics,
    run_episode,
    task_defaults,
    tracking_figures,
    validate_sim2sim,
)
from robolearn.robots.observations import observation_layout
from robolearn.utils.io import json_safe

REPO = Path(__file__).resolve().parents[1]
TRANSITION = re.compile(r"^\[\s*[\d.]+ s\] (\w+) -> (\w+)")
RESULT_FORMAT = 1
GANTRY_ROBOTS = ("g1", "g1_29dof")  # humanoids: held on the bridge's gantry until POLICY (hold_until_release)


# -- the artifact --------------------------------------------------------------------------------------
def export_checkpoint(run: Path, checkpoint: str) -> str:
    """--checkpoint as export's checkpoint=: auto is final where the run finished, else latest."""
    if checkpoint != "auto":
        return checkpoint
    return "final" if (run / "final").is_dir() else "latest"


def prepare_artifact(path: Path, work: Path, checkpoint: str) -> tuple[PolicyArtifact, dict[str, Any]]:
    """(artifact, how it was made): an artifact folder as it is, a run exported (see the module docstring)."""
    if (path / "contract.json").is_file():
        return load_artifact(path), {"kind": "artifact", "path": str(path)}
    out = work / "artifact"
    cmd = [
        sys.executable,
        "-m",
        "robolearn.export",
        f"run={path}",
        f"checkpoint={export_checkpoint(path, checkpoint)}",
        f"out={out}",
        "overwrite=true",
    ]
    print("$ " + shlex.join(["python", *cmd[1:]]), flush=True)
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    if done.returncode != 0:
        error = (done.stderr.strip() or done.stdout.strip() or "no output").splitlines()[-1]
        raise SystemExit(f"{path}: the export refused it: {error}")
    print(done.stdout.strip(), flush=True)
    artifact = load_artifact(out)
    return artifact, {
        "kind": "run",
        "run": str(path),
        "command": shlex.join(["python", *cmd[1:]]),
        "checkpoint": [c["kind"] for c in artifact.contract.checkpoint],
    }


# -- commands and randomisation ------------------------------------------------------------------------
def command_ranges(spec: Sequence[str], artifact: PolicyArtifact, run: Path | None) -> list[list[float]]:
    """[[lo, hi]] x 3 from --ranges: contract, curriculum (the run's newest checkpoint) or six numbers."""
    if list(spec) == ["contract"]:
        return [list(r) for r in artifact.contract.command_ranges]
    if list(spec) == ["curriculum"]:
        sys.path.insert(0, str(REPO / "benchmarks"))
        from go2_walk import curriculum_state

        state = curriculum_state(run) if run is not None else None
        if state is None:
            raise SystemExit(
                "--ranges curriculum needs a run directory whose newest checkpoint has a curriculum"
            )
        return [[float(v) for v in r] for r in state["ranges"]]
    values = [float(v) for v in spec]
    if len(values) != 6 or any(values[2 * i] > values[2 * i + 1] for i in range(3)):
        raise SystemExit(f"--ranges {' '.join(spec)}: give contract, curriculum or VX0 VX1 VY0 VY1 YAW0 YAW1")
    return [values[0:2], values[2:4], values[4:6]]


def draw_schedule(
    ranges: Sequence[Sequence[float]], duration_s: float, every_s: float, seed: int
) -> tuple[tuple[float, float, float, float], ...]:
    """(start_s, vx, vy, yaw rate) segments every every_s over duration_s, uniform in ranges, from seed."""
    rng = np.random.default_rng([seed, 4])
    lo, hi = np.asarray(ranges, dtype=np.float64).T
    starts = np.arange(0.0, duration_s, every_s)
    return tuple((round(float(t), 6), *(round(float(v), 4) for v in rng.uniform(lo, hi))) for t in starts)  # type: ignore[misc]


def task_randomization(run: Path | None) -> dict[str, Any]:
    """The run's env.kwargs.randomization (friction, joint_friction, obs_noise); {} without a run."""
    if run is None or not (run / "config.yaml").is_file():
        return {}
    dr = OmegaConf.select(OmegaConf.load(run / "config.yaml"), "env.kwargs.randomization", default=None)
    return dict(OmegaConf.to_container(dr, resolve=True)) if dr is not None else {}  # type: ignore[arg-type]


def excluded_after_changes(t: np.ndarray, changes: Sequence[float], transient_s: float) -> np.ndarray:
    """True where a sample lies outside the transient_s after every command change (t > 0)."""
    keep = np.ones(len(t), dtype=bool)
    for start in changes:
        if start > 0:
            keep &= ~((t >= start) & (t < start + transient_s))
    return keep


def path_figures(
    rows: np.ndarray,
    commands: np.ndarray,
    schedule: Sequence[Sequence[float]],
    settle_s: float,
    transient_s: float,
) -> dict[str, Any]:
    """Errors after settle_s, leaving out transient_s after each change, and over all settled samples."""
    if len(rows) == 0:
        return {"lin_vel_rms": None, "yaw_rate_rms": None, "lin_vel_rms_all": None, "yaw_rate_rms_all": None}
    keep = excluded_after_changes(rows[:, 0], [s[0] for s in schedule], transient_s)
    steady = tracking_figures(rows, commands, settle_s, keep)
    every = tracking_figures(rows, commands, settle_s)
    out = {k: steady[k] for k in ("lin_vel_rms", "yaw_rate_rms", "lin_vel_rms_window", "yaw_rate_rms_window")}
    out.update(
        lin_vel_rms_all=every["lin_vel_rms"],
        yaw_rate_rms_all=every["yaw_rate_rms"],
        distance_m=every["distance_m"],
        path_m=every["path_m"],
    )
    return out


def logged_motion_rms(artifact: PolicyArtifact, obs: np.ndarray) -> float | None:
    """A tracking policy's joint RMS error against its reference (rad) from a deploy log's observation
    frames: joint_pos_rel against motion_joint_pos (both relative to the default pose, scale 1); None
    for a policy without them or a log without policy steps."""
    layout = {e.name: e for e in observation_layout(artifact.contract.policy_spec, artifact.contract.terms)}
    joints, ref = layout.get("joint_pos_rel"), layout.get("motion_joint_pos")
    if joints is None or ref is None or len(obs) == 0:
        return None
    frames = np.asarray(obs, dtype=np.float64)
    q = frames[:, joints.start : joints.start + joints.size] / np.asarray(joints.scale)
    r = frames[:, ref.start : ref.start + ref.size] / np.asarray(ref.scale)
    return float(np.sqrt(np.mean(np.square(q - r))))


# -- path 1: sim2sim -------------------------------------------------------------------------------------
def sim2sim_episode(
    artifact: PolicyArtifact, config: Sim2SimConfig, seed: int, transient_s: float
) -> dict[str, Any]:
    """One sim2sim episode (deploy runtime in lockstep) with the schedule; the robustness figures."""
    validate_sim2sim(artifact, config)
    episode = run_episode(artifact, config, seed)
    r, b = episode.report, episode.backend
    rows = np.asarray(b.rows, dtype=np.float64).reshape(-1, 8)
    cmds = np.asarray(b.row_commands, dtype=np.float64).reshape(-1, 3)
    return {
        "seed": seed,
        "policy_s": round(r["policy_s"], 3),
        "fell": r["fell"],
        "time_to_fall_s": r["time_to_fall_s"],
        "fall_reason": r["fall_reason"],
        "completed": r["completed"],
        **path_figures(rows, cmds, config.command_schedule, config.settle_s, transient_s),
        "limited_commands": r["limited_commands"],
        "safety_faults": r["safety_faults"],
        "final_state": r["runtime"]["final_state"],
        "outcome": r["runtime"]["outcome"],
        "joint_limit_hits": r["joint_limit_hits"],
        "torque_limit_hits": r["torque_limit_hits"],
        "motion_joint_rms": r["motion_joint_rms"],
        "dynamics": r["dynamics"],
        "command_changes": r["command_changes"],
        "wall_s": r["wall_s"],
    }


# -- path 2: DDS against the sim bridge ------------------------------------------------------------------
class Lines:
    """A subprocess's stdout lines, collected by a thread."""

    def __init__(self, popen: subprocess.Popen[str]) -> None:
        self.popen = popen
        self.lines: list[str] = []
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        assert self.popen.stdout is not None
        for line in self.popen.stdout:
            self.lines.append(line.rstrip("\n"))


def sticks_for(command: Sequence[float], ranges: Sequence[Sequence[float]]) -> tuple[float, float, float]:
    """(lx, ly, rx) that make the operator's stick_to_command give this command (vx, vy, yaw rate)."""

    def stick(value: float, lo: float, hi: float) -> float:
        if value > 0:
            return value / hi
        return -value / lo if value < 0 else 0.0

    ly = stick(command[0], *ranges[0])
    lx = -stick(command[1], *ranges[1])  # left stick left (lx < 0) is +vy
    rx = -stick(command[2], *ranges[2])  # right stick left is +yaw rate
    return lx, ly, rx


def dds_episode(
    artifact: PolicyArtifact,
    config: Sim2SimConfig,
    seed: int,
    transient_s: float,
    work: Path,
    rt_priority: int = 45,
    deploy_overrides: Sequence[str] = (),
) -> dict[str, Any]:
    """One DDS episode: the deploy process drives the sim bridge's Go2 as a robot; the robustness figures.

    rt_priority: SCHED_FIFO for this process, which runs the bridge (0: leave it, as a test does);
    deploy_overrides: more key=value for the deploy process (a test's shorter ramp).
    """
    from robolearn.config.validate import compose_config
    from robolearn.deploy.dds import DdsSession, claim_local_domain
    from robolearn.deploy.messages import RemoteState
    from robolearn.deploy.recorder import read_log
    from robolearn.deploy.safety import SafetyState
    from robolearn.deploy.sim_bridge import SimBridge
    from robolearn.deploy.timing import DeadlineScheduler, set_process_realtime_priority

    contract = artifact.contract
    robot = contract.robot.name
    rule, _, _ = task_defaults(robot)
    ranges = [tuple(r) for r in contract.command_ranges]
    domain, lock = claim_local_domain()
    deploy_cfg = compose_config("deploy", [f"robot={robot}"])
    deadband = float(deploy_cfg.settings.remote.deadband)
    problem = set_process_realtime_priority(rt_priority)  # as bridge.rt_priority=45
    # A robot that cannot stand on its PD hold (the G1) hangs on the bridge's gantry until its policy
    # runs, as an operator lowers a humanoid once its policy has taken over.
    gantry = robot in GANTRY_ROBOTS
    bridge = SimBridge(
        contract.robot,
        DdsSession(domain, "lo"),
        initial_pose=str(deploy_cfg.settings.sim_pose),
        model_path=deploy_cfg.robot.model,
        seed=seed,
        hold_until_release=gantry,
    )
    dynamics = randomize_dynamics(bridge.sim.model, bridge.sim.index.qvel_adr, config, seed)
    log_dir = work / f"dds_log_seed{seed}"
    args = [
        "robolearn.deploy",
        f"robot={robot}",
        f"policy={artifact.root}",
        "backend=dds",
        f"domain_id={domain}",
        f"record.dir={log_dir}",
        "keyboard=false",
        "status_every_s=0",
        "loop.rt_priority=50",
        f"exit_damp_s={config.exit_damp_s}",
        *deploy_overrides,
    ]
    popen = subprocess.Popen(
        [sys.executable, "-m", *args],
        cwd=REPO,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        bufsize=1,
    )
    out = Lines(popen)
    idx = bridge.sim.index
    r_adr, v_adr = idx.root_qpos_adr, idx.root_qvel_adr
    sched = DeadlineScheduler(bridge.period, 0.0, clock=time.monotonic)
    start = time.monotonic()
    sched.start(start)
    stage, seen = "connect", 0
    t0: float | None = None  # bridge sim time when the runtime entered POLICY
    stop_at: float | None = None  # wall time to stop the deploy process
    rows: list[tuple[float, ...]] = []
    row_cmds: list[tuple[float, float, float]] = []
    fall: tuple[float, str] | None = None
    policy_end: float | None = None
    segment, effective = -1, (0.0, 0.0, 0.0)
    changes: list[list[Any]] = []
    completed = False
    error = None
    try:
        while True:
            sched.wait()
            now = time.monotonic()
            bridge.tick(now)
            bridge.replies.clear()
            for line in out.lines[seen:]:
                m = TRANSITION.match(line)
                if m and stage == "stand" and m.group(2) == "HOLD":
                    bridge.console.put("press A")  # the remote's A: HOLD -> POLICY
                    stage = "handover"
                elif m and stage == "handover" and m.group(2) == "POLICY":
                    stage, t0 = "policy", float(bridge.sim.data.time)
                    if gantry:
                        bridge.handle("release", now)
                elif m and stage == "policy" and m.group(1) == "POLICY" and policy_end is None:
                    policy_end = float(bridge.sim.data.time) - (t0 or 0.0)  # a guard trip or our select
                    stop_at = stop_at or now + config.exit_damp_s
            seen = len(out.lines)
            if stage == "connect" and bridge.counters.commands > 50:  # PASSIVE commands flowing
                bridge.console.put("press start")
                stage = "stand"
            if stage == "policy" and t0 is not None:
                t = float(bridge.sim.data.time) - t0
                row = base_row(
                    t, bridge.sim.data.qpos[r_adr : r_adr + 7], bridge.sim.data.qvel[v_adr : v_adr + 6]
                )
                if fall is None and (policy_end is None or not completed):
                    fall = fall_check(rule, t, row[6], row[7])
                if policy_end is None:
                    k = segment
                    while k + 1 < len(config.command_schedule) and t >= config.command_schedule[k + 1][0]:
                        k += 1
                    if k != segment:
                        segment = k
                        lx, ly, rx = sticks_for(config.command_schedule[k][1:], ranges)
                        bridge.remote = RemoteState(bridge.remote.buttons, lx=lx, ly=ly, rx=rx)
                        # What the runtime will compute from the float32 sticks (deadband included).
                        back = RemoteState.from_bytes(bridge.remote.to_bytes())
                        effective = (
                            stick_to_command(back.ly, ranges[0][0], ranges[0][1], deadband),
                            stick_to_command(-back.lx, ranges[1][0], ranges[1][1], deadband),
                            stick_to_command(-back.rx, ranges[2][0], ranges[2][1], deadband),
                        )
                        changes.append([round(t, 4), [round(v, 4) for v in effective]])
                    rows.append(row)
                    row_cmds.append(effective)
                    if fall is not None or t >= config.duration_s:
                        completed = fall is None
                        bridge.console.put("press select")  # damp, as an operator would
                        policy_end = t
                        stop_at = now + config.exit_damp_s
            if stop_at is not None and now >= stop_at and popen.poll() is None:
                popen.terminate()  # SIGTERM: the runtime damps exit_damp_s more and exits
                stop_at = math.inf
            if popen.poll() is not None:
                if stage != "policy":
                    error = next((ln for ln in reversed(out.lines) if ln.strip()), "deploy exited")
                break
            if stage != "policy" and now - start > 60.0:
                error = f"no POLICY after 60 s (stage {stage})"
                popen.terminate()
                popen.wait(10)
                break
    finally:
        if popen.poll() is None:
            popen.kill()
        popen.wait(10)
        time.sleep(0.1)
        lock.close()
    summary: dict[str, Any] = next((json.loads(ln[8:]) for ln in out.lines if ln.startswith("summary ")), {})
    limited, motion_rms = None, None
    if log_dir.is_dir() and (log_dir / "meta.json").is_file():
        log = read_log(log_dir)
        c = log.control
        limited = int(np.count_nonzero((c["limited"] > 0) & (c["safety"] == SafetyState.POLICY.value)))
        motion_rms = logged_motion_rms(artifact, log.policy["obs"])
    figs = path_figures(
        np.asarray(rows).reshape(-1, 8),
        np.asarray(row_cmds).reshape(-1, 3),
        config.command_schedule,
        config.settle_s,
        transient_s,
    )
    loop = summary.get("command_loop") or {}
    return {
        "seed": seed,
        "domain": domain,
        "error": error,
        "policy_s": None if policy_end is None else round(policy_end, 3),
        "fell": fall is not None,
        "time_to_fall_s": None if fall is None else round(fall[0], 4),
        "fall_reason": None if fall is None else fall[1],
        "completed": completed,
        **figs,
        "limited_commands": limited,
        "motion_joint_rms": motion_rms,
        "safety_faults": [str(f.get("reason")) for f in summary.get("faults", [])],
        "final_state": summary.get("final_state"),
        "outcome": summary.get("outcome"),
        "command_loop": loop,
        "policy_loop": summary.get("policy_loop"),
        "inference": summary.get("inference"),
        "bridge": {k: v for k, v in bridge.telemetry(time.monotonic()).items() if k != "t"},
        "rt_priority_problem": problem,
        "dynamics": dynamics,
        "command_changes": changes,
        "deploy_tail": out.lines[-6:] if error else [],
    }


# -- report ------------------------------------------------------------------------------------------------
def _mean(values: list[Any]) -> float | None:
    kept = [float(v) for v in values if v is not None]
    return float(np.mean(kept)) if kept else None


def summarize(episodes: list[dict[str, Any]]) -> dict[str, Any]:
    """Over the episodes of one path: falls and when, mean errors, safety events, loop timing."""
    ran = [e for e in episodes if not e.get("error")]
    out: dict[str, Any] = {
        "episodes": len(episodes),
        "ran": len(ran),
        "falls": sum(e["fell"] for e in ran),
        "fall_times_s": [e["time_to_fall_s"] for e in ran if e["fell"]],
        "policy_s": sum(e["policy_s"] or 0.0 for e in ran),
    }
    for key in ("lin_vel_rms", "yaw_rate_rms", "lin_vel_rms_all", "yaw_rate_rms_all"):
        out[key] = _mean([e[key] for e in ran])
    out["limited_commands"] = sum(e["limited_commands"] or 0 for e in ran)
    out["safety_faults"] = sum(len(e["safety_faults"]) for e in ran)
    out["guards_tripped"] = sorted({f.split(":")[0] for e in ran for f in e["safety_faults"]})
    out["final_states"] = [e["final_state"] for e in ran]
    loops = [e["command_loop"] for e in ran if e.get("command_loop")]
    if loops:
        out["command_overruns"] = sum(int(loop.get("overruns", 0)) for loop in loops)
        out["command_ticks"] = sum(int(loop["period_error_count"]) for loop in loops)
        out["command_missed_2ms"] = sum(int(loop["missed_deadlines_over_2ms"]) for loop in loops)
        out["command_period_error_p99_ms"] = max(float(loop["period_error_p99_ms"]) for loop in loops)
    errors = [e["error"] for e in episodes if e.get("error")]
    if errors:
        out["errors"] = sorted(set(errors))
    return out


def _f(value: Any, spec: str = ".3f") -> str:
    return "-" if value is None else format(value, spec)


def markdown_table(result: dict[str, Any]) -> str:
    """One row per path and range set."""
    head = (
        "| path | commands | episodes x s | falls (at s) | v_xy RMS m/s | yaw RMS rad/s | v_xy RMS all | "
        "limiter changes | guard trips | end state | command loop (500 Hz) |"
    )
    lines = [head, "|" + "---|" * 11]
    for key, s in result["summary"].items():
        path = key
        if s.get("errors") and not s["ran"]:
            why = s["errors"][0].removeprefix("error: ").split(" (")[0]
            lines.append(
                f"| {path} | {result['ranges_label']} | {s['episodes']} x - | refused: {why} |" + " |" * 7
            )
            continue
        falls = f"{s['falls']}/{s['ran']}" + (
            f" ({', '.join(_f(t, '.1f') for t in s['fall_times_s'])})" if s["fall_times_s"] else ""
        )
        guards = f" ({', '.join(s.get('guards_tripped', []))})" if s.get("guards_tripped") else ""
        overruns = (
            f"{s['command_overruns']} overruns, {s['command_missed_2ms']} > 2 ms late of {s['command_ticks']};"
            f" p99 period error {s['command_period_error_p99_ms']:.2f} ms"
            if "command_overruns" in s
            else "n/a (lockstep)"
        )
        lines.append(
            f"| {path} | {result['ranges_label']} | {s['ran']} x {result['config']['duration_s']:g} | {falls} |"
            f" {_f(s['lin_vel_rms'])} | {_f(s['yaw_rate_rms'])} | {_f(s['lin_vel_rms_all'])} |"
            f" {s['limited_commands']} | {s['safety_faults']}{guards} | {', '.join(sorted(set(map(str, s['final_states']))))} |"
            f" {overruns} |"
        )
    return "\n".join(lines)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="a training run directory or an artifact folder")
    parser.add_argument("--name", default=None, help="result name (default: the source folder's names)")
    parser.add_argument(
        "--checkpoint",
        default="auto",
        choices=["auto", "final", "best", "latest"],
        help="export checkpoint= (auto: final where the run finished, else latest)",
    )
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--duration", type=float, default=60.0, help="policy seconds per episode")
    parser.add_argument("--every", type=float, default=10.0, help="seconds between command changes")
    parser.add_argument("--settle", type=float, default=2.0, help="errors after this much policy time")
    parser.add_argument("--transient", type=float, default=1.0, help="left out after each command change")
    parser.add_argument("--ranges", nargs="+", default=["contract"])
    parser.add_argument("--paths", nargs="+", default=["sim2sim", "dds"], choices=["sim2sim", "dds"])
    parser.add_argument("--no-randomization", action="store_true", help="nominal friction, no obs noise")
    parser.add_argument(
        "--no-obs-noise",
        action="store_true",
        help="friction randomised, no obs noise (it reaches the guards too)",
    )
    parser.add_argument(
        "--motion-clip",
        default=None,
        help="a tracking policy's clip to play (deploy's motion_clip; its commands are unused: pass"
        " --ranges 0 0 0 0 0 0)",
    )
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "robustness")
    parser.add_argument("--work", type=Path, default=REPO / "outputs" / "robustness")
    args = parser.parse_args(argv)

    source = args.source.resolve()
    run = None if (source / "contract.json").is_file() else source
    name = args.name or "_".join(source.parts[-3:])
    work = args.work / name
    work.mkdir(parents=True, exist_ok=True)
    artifact, export = prepare_artifact(source, work, args.checkpoint)
    ranges = command_ranges(args.ranges, artifact, run)
    label = " ".join(args.ranges) if args.ranges[0] in ("contract", "curriculum") else "given"
    ranges_label = f"{label} vx {ranges[0]}, vy {ranges[1]}, yaw {ranges[2]}"
    dr = {} if args.no_randomization else task_randomization(run)
    applied: dict[str, Any] = {
        "friction": dr.get("friction"),
        "joint_friction": dr.get("joint_friction"),
        "obs_noise": 0.0 if args.no_obs_noise else dr.get("obs_noise", 0.0),
    }
    base = Sim2SimConfig(
        duration_s=args.duration,
        settle_s=args.settle,
        exit_damp_s=1.0,
        friction_range=tuple(applied["friction"]) if applied["friction"] else None,
        joint_friction_range=tuple(applied["joint_friction"]) if applied["joint_friction"] else None,
        obs_noise=float(applied["obs_noise"] or 0.0),
        motion_clip=args.motion_clip,
    )
    episodes: dict[str, list[dict[str, Any]]] = {p: [] for p in args.paths}
    for path in args.paths:
        for seed in range(args.seeds):
            schedule = draw_schedule(ranges, args.duration, args.every, seed)
            config = dataclasses.replace(base, command_schedule=schedule, seed=seed)
            if path == "sim2sim":
                e = sim2sim_episode(artifact, config, seed, args.transient)
            else:
                e = dds_episode(
                    artifact,
                    dataclasses.replace(config, obs_noise=0.0),
                    seed,
                    args.transient,
                    work,
                    deploy_overrides=[f"motion_clip={args.motion_clip}"] if args.motion_clip else (),
                )
            episodes[path].append(e)
            print(
                f"{path} seed {seed}: "
                + (
                    f"error: {e['error']}"
                    if e.get("error")
                    else f"fell {e['fell']} at {e['time_to_fall_s']}, policy {e['policy_s']} s, v_xy RMS"
                    f" {_f(e['lin_vel_rms'])}, yaw {_f(e['yaw_rate_rms'])}, limiter {e['limited_commands']},"
                    f" faults {e['safety_faults']}, end {e['final_state']}"
                ),
                flush=True,
            )
    result = {
        "format": RESULT_FORMAT,
        "created": datetime.now(UTC).isoformat(timespec="seconds"),
        "command": "python benchmarks/locomotion_robustness.py "
        + shlex.join(sys.argv[1:] if argv is None else argv),
        "source": str(args.source),
        "export": export,
        "artifact": {"root": str(artifact.root), "terms": [t.name for t in artifact.contract.terms]},
        "robot": artifact.contract.robot.name,
        "ranges": ranges,
        "ranges_label": ranges_label,
        "randomization": {
            "task": dr,
            "sim2sim": applied,
            "dds": {**applied, "obs_noise": "not applied: the bridge publishes exact sensor values"},
        },
        "config": {
            "duration_s": args.duration,
            "every_s": args.every,
            "settle_s": args.settle,
            "transient_s": args.transient,
            "seeds": list(range(args.seeds)),
            "motion_clip": args.motion_clip,
        },
        "fall_rule": dataclasses.asdict(task_defaults(artifact.contract.robot.name)[0]),
        "machine": {
            "node": platform.node(),
            "cpus": os.cpu_count(),
            "load_avg": [round(v, 2) for v in os.getloadavg()],
            "note": "2-core VM shared with a Go2 PPO training run",
        },
        "summary": {p: summarize(e) for p, e in episodes.items()},
        "episodes": episodes,
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"{artifact.contract.robot.name}_{name}.json"
    # An episode that never reached POLICY has NaN timing percentiles: null in JSON.
    path.write_text(json.dumps(json_safe(result), indent=1, allow_nan=False) + "\n")
    print(markdown_table(result))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
