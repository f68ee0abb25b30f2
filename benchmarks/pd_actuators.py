"""The PD law inside MuJoCo against the numpy law it replaced: trajectory agreement and bare step cost.

    python benchmarks/pd_actuators.py [--steps 250] [--envs 64] [--threads 2] [--out outputs/benchmarks]

Agreement: for the Go2, the G1 and the 29-DoF G1, one rollout per seed from the default pose (joints
and velocities perturbed) under random targets of up to 1.5 x the peak torque at the default pose
(joints saturate, the G1s fall): the reference steps Unitree's motor actuators on the MJCF's
implicitfast integrator with robolearn.robots.actuators.pd_torque evaluated in numpy before every
physics step, as the backends did; the other steps robolearn.robots.model.pd_actuator_model with one
mj_step(nstep=decimation) per control step. Reported: the largest |qpos| difference and the largest
difference of the last substep's torque over the rollout.

Cost: mujoco.batch.Batch stepping both models from the same recorded states (`--envs` simulations on
`--threads` threads, `decimation` substeps per control step, alternating blocks of 20), the motor
model with the law's torque held over the step: whether the bare simulation a throughput ratio
divides by costs the same for either model.

Writes pd_actuators.md and pd_actuators.json under --out and prints the table.
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path
from typing import Any

import mujoco
import numpy as np
from mujoco.batch import Batch

from robolearn.robots.actuators import pd_torque
from robolearn.robots.g1 import G1_SPEC
from robolearn.robots.g1_29 import G1_29_SPEC
from robolearn.robots.go2 import GO2_SPEC
from robolearn.robots.model import joint_index_map, load_model, pd_actuator_model, set_default_pose
from robolearn.robots.spec import RobotSpec
from robolearn.utils.io import atomic_write_text

SPECS = (GO2_SPEC, G1_SPEC, G1_29_SPEC)
SEEDS = (0, 1, 2)
_STATE = mujoco.mjtState.mjSTATE_INTEGRATION


def agreement(spec: RobotSpec, steps: int, seed: int) -> dict[str, float]:
    """Largest qpos and torque differences between the two laws over one rollout."""
    motor = load_model(spec)
    index = joint_index_map(motor, spec)
    pd = pd_actuator_model(motor, spec)
    rng = np.random.default_rng(seed)
    ref, new = mujoco.MjData(motor), mujoco.MjData(pd)
    set_default_pose(motor, ref, spec, index)
    ref.qpos[index.qpos_adr] += rng.uniform(-0.1, 0.1, spec.num_joints)
    ref.qvel[index.qvel_adr] = rng.uniform(-1, 1, spec.num_joints)
    state = np.empty(mujoco.mj_stateSize(motor, _STATE))
    mujoco.mj_getState(motor, ref, state, _STATE)
    mujoco.mj_setState(pd, new, state, _STATE)
    targets = spec.default_pos_array + rng.uniform(-6, 6, (steps, spec.num_joints)) * spec.action_scale_array
    kp, kd, limit = spec.kp_array, spec.kd_array, spec.torque_limit_array
    dq = dtau = 0.0
    dq_1s = np.nan
    per_second = round(1.0 / spec.control_dt)
    for k, target in enumerate(targets):
        for _ in range(spec.decimation):
            tau = pd_torque(target, ref.qpos[index.qpos_adr], ref.qvel[index.qvel_adr], kp, kd, limit)
            ref.ctrl[index.actuator_ids] = index.ctrl_from_torque(tau)
            mujoco.mj_step(motor, ref)
        new.ctrl[index.actuator_ids] = target
        mujoco.mj_step(pd, new, nstep=spec.decimation)
        dq = max(dq, float(np.abs(new.qpos - ref.qpos).max()))
        dtau = max(dtau, float(np.abs(new.actuator_force[index.actuator_ids] - tau).max()))
        if k + 1 == per_second:
            dq_1s = dq
    return {"max_dqpos_1s": dq_1s, "max_dqpos": dq, "max_dtau": dtau, "base_z_end": float(ref.qpos[2])}


def bare_cost(spec: RobotSpec, envs: int, threads: int, steps: int) -> dict[str, float]:
    """Control steps per second of bare Batch on the motor and on the PD model, same states."""
    motor = load_model(spec)
    index = joint_index_map(motor, spec)
    pd = pd_actuator_model(motor, spec)
    rng = np.random.default_rng(0)
    # Record the states a PD rollout passes through (targets near the default pose, as in training).
    rec = Batch(pd, envs, nthread=threads)
    data = mujoco.MjData(pd)
    set_default_pose(pd, data, spec, index)
    row = np.empty(mujoco.mj_stateSize(pd, _STATE))
    mujoco.mj_getState(pd, data, row, _STATE)
    rec.state[...] = row
    ctrl, qpos, qvel = rec.bind("ctrl"), rec.bind("qpos"), rec.bind("qvel")
    states = np.empty((steps, *rec.state.shape))
    torques = np.empty((steps, envs, spec.num_joints))
    for k in range(steps):
        target = (
            spec.default_pos_array + rng.uniform(-0.3, 0.3, (envs, spec.num_joints)) * spec.action_scale_array
        )
        ctrl[:, index.actuator_ids] = target
        states[k] = rec.state
        # The motor model's control for the same step: the law's torque at its first substep, held.
        q, dq = qpos[:, index.qpos_adr], qvel[:, index.qvel_adr]
        torques[k] = pd_torque(target, q, dq, spec.kp_array, spec.kd_array, spec.torque_limit_array)
        rec.step(nstep=spec.decimation)
    batches = {
        "motor_implicitfast": Batch(motor, envs, nthread=threads),
        "pd_euler": Batch(pd, envs, nthread=threads),
    }
    motor_ctrl = batches["motor_implicitfast"].bind("ctrl")
    seconds = dict.fromkeys(batches, 0.0)
    for k0 in range(0, steps, 20):
        for name, batch in batches.items():
            for k in range(k0, min(k0 + 20, steps)):
                batch.state[...] = states[k]
                if name == "motor_implicitfast":
                    motor_ctrl[:, index.actuator_ids] = index.ctrl_from_torque(torques[k])
                t0 = time.perf_counter()
                batch.step(nstep=spec.decimation)
                seconds[name] += time.perf_counter() - t0
    return {name: steps * envs / s for name, s in seconds.items()}


def main() -> None:
    """Measure, write the table and JSON, print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=250)
    parser.add_argument("--envs", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--out", type=Path, default=Path("outputs/benchmarks"))
    args = parser.parse_args()
    load_before = os.getloadavg()[0]
    rows: list[dict[str, Any]] = []
    for spec in SPECS:
        runs = [agreement(spec, args.steps, seed) for seed in SEEDS]
        cost = bare_cost(spec, args.envs, args.threads, min(args.steps, 200))
        rows.append(
            {
                "robot": spec.name,
                "max_dqpos_1s": max(r["max_dqpos_1s"] for r in runs),
                "max_dqpos": max(r["max_dqpos"] for r in runs),
                "max_dtau": max(r["max_dtau"] for r in runs),
                "fell": sum(r["base_z_end"] < 0.5 * spec.base_height for r in runs),
                **{f"bare_{k}": v for k, v in cost.items()},
            }
        )
    seconds = args.steps * SPECS[0].control_dt
    lines = [
        f"PD law in MuJoCo vs numpy reference, {len(SEEDS)} seeds x {seconds:g} s per robot; bare Batch with"
        f" {args.envs} envs on {args.threads} threads; {os.cpu_count()} CPUs, load average"
        f" {load_before:.1f} before / {os.getloadavg()[0]:.1f} after; mujoco {mujoco.__version__}.",
        "",
        "| robot | max abs qpos diff, 1 s | max abs qpos diff, all | max abs torque diff (N·m) | rollouts fallen |"
        " bare motor+implicitfast (steps/s) | bare PD+Euler (steps/s) |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['robot']} | {r['max_dqpos_1s']:.1e} | {r['max_dqpos']:.1e} | {r['max_dtau']:.1e} |"
            f" {r['fell']} of {len(SEEDS)} | {r['bare_motor_implicitfast']:,.0f} | {r['bare_pd_euler']:,.0f} |"
        )
    table = "\n".join(lines) + "\n"
    args.out.mkdir(parents=True, exist_ok=True)
    atomic_write_text(args.out / "pd_actuators.md", table)
    atomic_write_text(args.out / "pd_actuators.json", json.dumps(rows, indent=2) + "\n")
    print(table)


if __name__ == "__main__":
    main()
