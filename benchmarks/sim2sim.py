"""Sim2sim of an imported unitree_rl_gym policy: our MuJoCo robot through the deploy runtime, and Unitree's own loop.

    python benchmarks/sim2sim.py --policy <unitree_rl_gym>/deploy/pre_train/g1/motion.pt \\
        --config <unitree_rl_gym>/deploy/deploy_mujoco/configs/g1.yaml --robot g1 \\
        [--unitree-root <unitree_rl_gym checkout> | --unitree-repo <its git dir>] \\
        [--command 0.5 0 0] [--duration 20] [--episodes 3] [--waist-kp 500] [--out benchmarks/results/sim2sim]

1. Imports the policy with `python -m robolearn.export from=legged_gym` (the documented command) into
   --work/artifact.
2. robolearn: robolearn.deploy.sim2sim.run_sim2sim on that artifact (deploy runtime, lockstep, our
   MJCF of the robot, the velocity task's reset noise per seed; seeds 0..episodes-1).
3. unitree (when their G1 scene with its meshes is at hand: --unitree-root, or --unitree-repo from
   which `git archive` extracts resources/robots/g1_description): deploy/deploy_mujoco/deploy_mujoco.py's
   loop re-implemented here without the viewer: their 12-DoF model, torque PD (kps, kds of the yaml)
   every simulation_dt, the TorchScript policy every control_decimation steps on their observation
   (ang vel, gravity, scaled command, joint pos/vel, last action, sin/cos of the 0.8 s phase), from
   the model's initial pose plus the same kind of reset noise (joints ±init_joint_noise, random
   heading, base velocity ±init_velocity_noise) drawn from each seed. Measured with the same
   functions (sim2sim.base_row, fall_check, tracking_figures): tracking errors, falls, distance.
   Each of their policy steps also runs the imported artifact (robolearn's observation pipeline and
   ONNX network) on the same state: the largest observation and action differences are reported.
4. The same artifact on our model without the runtime (bare_episode: no limiter, guards or ramp), to
   tell the runtime's share of a gap from the model's.
5. --waist-kp: an ablation, the artifact with our G1's waist joints (waist_yaw; waist_roll and
   waist_pitch on the 29-DoF G1) held stiffer: their 12-DoF model welds the torso to the pelvis.

Writes <out>/<robot>_<policy stem>.json (both results, the command line, the machine) and prints the
table. Nothing here is needed by the tests: the paths are arguments.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import os
import platform
import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import mujoco
import numpy as np
import torch
import yaml

from robolearn.deploy.artifact import PolicyArtifact, load_artifact
from robolearn.deploy.policy import ObservationPipeline, OnnxPolicy
from robolearn.deploy.sim2sim import (
    Sim2SimBackend,
    Sim2SimConfig,
    base_row,
    fall_check,
    result_table,
    run_sim2sim,
    summarize,
    task_defaults,
    tracking_figures,
)
from robolearn.robots.state import RobotState
from robolearn.utils.io import atomic_write_json

REPO = Path(__file__).resolve().parents[1]
SCENE_DIR = "resources/robots/g1_description"  # unitree_rl_gym's G1 model folder (MJCF + meshes/)


def import_policy(policy: Path, config: Path, robot: str, out: Path, *extra: str) -> None:
    """python -m robolearn.export from=legged_gym ... [extra overrides] into out (replacing it)."""
    cmd = [
        sys.executable,
        "-m",
        "robolearn.export",
        "from=legged_gym",
        f"policy={policy}",
        f"config={config}",
        f"robot={robot}",
        f"out={out}",
        "overwrite=true",
        *extra,
    ]
    print("$ " + shlex.join(cmd[1:]), flush=True)
    done = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True)
    print(done.stdout.strip(), flush=True)
    if done.returncode != 0:
        raise SystemExit(f"import failed ({done.returncode}): {done.stderr.strip()}")


def _git_show(repo: Path, path: str) -> bytes | None:
    done = subprocess.run(["git", "--git-dir", str(repo), "show", f"HEAD:{path}"], capture_output=True)
    return done.stdout if done.returncode == 0 else None


def unitree_root(args: argparse.Namespace, work: Path) -> tuple[Path | None, str]:
    """A folder laid out like a unitree_rl_gym checkout holding the G1 scene, or (None, why not).

    From --unitree-repo, the scene's MJCF files and the meshes they name are read with `git show`
    (a mirror may lack its largest blobs: those stay missing and load_unitree_model says so).
    """
    if args.unitree_root is not None:
        root = Path(args.unitree_root)
    elif args.unitree_repo is not None:
        root = work / "unitree_rl_gym"
        folder = root / SCENE_DIR
        (folder / "meshes").mkdir(parents=True, exist_ok=True)
        for name in ("scene.xml", "g1_12dof.xml"):
            data = _git_show(args.unitree_repo, f"{SCENE_DIR}/{name}")
            if data is None:
                return None, f"{args.unitree_repo} has no {SCENE_DIR}/{name}"
            (folder / name).write_bytes(data)
        for mesh in mujoco.MjSpec.from_file(str(folder / "scene.xml")).meshes:
            name = Path(mesh.file).name
            data = _git_show(args.unitree_repo, f"{SCENE_DIR}/meshes/{name}")
            if data is not None:
                (folder / "meshes" / name).write_bytes(data)
    else:
        return None, "no --unitree-root or --unitree-repo given"
    if not (root / SCENE_DIR / "scene.xml").is_file():
        return None, f"{root / SCENE_DIR / 'scene.xml'} is missing"
    return root, ""


def load_unitree_model(xml: Path) -> tuple[mujoco.MjModel, list[str]]:
    """Their MJCF compiled; meshes whose file is absent are dropped with the geoms using them (listed)."""
    spec = mujoco.MjSpec.from_file(str(xml))
    mesh_dir = xml.parent / (spec.meshdir or "")
    missing = {m.name for m in spec.meshes if not (mesh_dir / Path(m.file).name).is_file()}
    dropped = []
    for geom in list(spec.geoms):
        if geom.meshname in missing:
            dropped.append(
                f"{geom.meshname} ({'collision' if geom.contype or geom.conaffinity else 'visual'})"
            )
            spec.delete(geom)
    for mesh in list(spec.meshes):
        if mesh.name in missing:
            spec.delete(mesh)
    return spec.compile(), sorted(dropped)


def unitree_episode(
    root: Path,
    cfg: dict[str, Any],
    policy_path: Path,
    sim: Sim2SimConfig,
    seed: int,
    artifact: PolicyArtifact | None = None,
) -> dict[str, Any]:
    """One episode of unitree_rl_gym's deploy_mujoco loop (no viewer, simulated time only).

    With the imported artifact, each policy step also builds robolearn's observation from the same
    state (ObservationPipeline over a RobotState with the other joints at their defaults) and runs its
    ONNX network: the largest differences to their observation and their TorchScript action are
    reported (the import checked alone, inside their loop; their policy still drives).
    """
    rule, joint_noise, velocity_noise = task_defaults("g1")
    xml = Path(str(cfg["xml_path"]).replace("{LEGGED_GYM_ROOT_DIR}", str(root)))
    m, _ = load_unitree_model(xml)
    d = mujoco.MjData(m)
    dt = float(cfg["simulation_dt"])
    m.opt.timestep = dt
    decimation = int(cfg["control_decimation"])
    kps, kds = (np.array(cfg[k], dtype=np.float32) for k in ("kps", "kds"))
    default = np.array(cfg["default_angles"], dtype=np.float32)
    n = int(cfg["num_actions"])
    cmd_scale = np.array(cfg["cmd_scale"], dtype=np.float32)
    cmd = np.array(sim.command, dtype=np.float32)
    # The same kind of reset noise as sim2sim's episodes (VelocityTask.initial_state), around their pose.
    rng = np.random.default_rng([seed, 1])
    d.qpos[7:] += rng.uniform(-1.0, 1.0, size=n) * joint_noise
    yaw = float(rng.uniform(-np.pi, np.pi))
    d.qpos[3:7] = (math.cos(yaw / 2), 0.0, 0.0, math.sin(yaw / 2))
    d.qvel[0:6] = rng.uniform(-1.0, 1.0, size=6) * velocity_noise
    mujoco.mj_forward(m, d)
    policy = torch.jit.load(str(policy_path))  # a fresh module: the LSTM's state starts at zero
    ours = None
    if artifact is not None:
        contract = artifact.contract
        pipeline, network = ObservationPipeline(contract), OnnxPolicy(artifact.network_path, contract)
        network.reset()
        ours = (contract, pipeline, network, contract.policy_index)
        full = contract.robot.default_pos_array.copy()
        last_full = np.zeros(contract.robot.num_joints)
    obs_diff = action_diff = 0.0
    policy_steps = 0
    action = np.zeros(n, dtype=np.float32)
    target = default.copy()
    obs = np.zeros(int(cfg["num_obs"]), dtype=np.float32)
    rows: list[tuple[float, ...]] = []
    fall = None
    steps = round(sim.duration_s / dt)
    wall = time.perf_counter()
    for counter in range(1, steps + 1):
        d.ctrl[:] = (target - d.qpos[7:]) * kps - d.qvel[6:] * kds
        mujoco.mj_step(m, d)
        t = counter * dt
        row = base_row(t, d.qpos[0:7], d.qvel[0:6])
        rows.append(row)
        fall = fall_check(rule, t, row[6], row[7])
        if fall is not None:
            break
        if counter % decimation == 0:
            quat = d.qpos[3:7]
            qw, qx, qy, qz = quat
            gravity = np.array(
                [2 * (-qz * qx + qw * qy), -2 * (qz * qy + qw * qx), 1 - 2 * (qw * qw + qz * qz)]
            )
            phase = (counter * dt) % 0.8 / 0.8
            obs[:3] = d.qvel[3:6] * float(cfg["ang_vel_scale"])
            obs[3:6] = gravity
            obs[6:9] = cmd * cmd_scale
            obs[9 : 9 + n] = (d.qpos[7:] - default) * float(cfg["dof_pos_scale"])
            obs[9 + n : 9 + 2 * n] = d.qvel[6:] * float(cfg["dof_vel_scale"])
            obs[9 + 2 * n : 9 + 3 * n] = action
            obs[9 + 3 * n : 9 + 3 * n + 2] = (np.sin(2 * np.pi * phase), np.cos(2 * np.pi * phase))
            with torch.no_grad():
                action = policy(torch.from_numpy(obs).unsqueeze(0)).numpy().squeeze().astype(np.float32)
            if ours is not None:
                contract, pipeline, network, index = ours
                joint_pos, joint_vel = full.copy(), np.zeros_like(full)
                joint_pos[index], joint_vel[index] = d.qpos[7:], d.qvel[6:]
                state = RobotState(
                    joint_pos=joint_pos,
                    joint_vel=joint_vel,
                    base_quat=d.qpos[3:7].copy(),
                    gyro=d.qvel[3:6].copy(),
                    command=cmd.astype(np.float64),
                    last_action=last_full,
                    # Their clock counts physics steps from the start: one control period ahead of ours.
                    gait_phase=contract.gait_phase(policy_steps + 1),
                )
                frame, x = pipeline(state)
                obs_diff = max(obs_diff, float(np.abs(frame - obs).max()))
                action_diff = max(action_diff, float(np.abs(network(x) - action).max()))
                last_full = contract.full_action(action.astype(np.float64))
            policy_steps += 1
            target = action * float(cfg["action_scale"]) + default
    report = {
        **_runtime_free_report(seed, fall, rows, sim),
        "max_obs_diff_vs_import": None if ours is None else obs_diff,
        "max_action_diff_vs_import": None if ours is None else action_diff,
        "wall_s": round(time.perf_counter() - wall, 3),
    }
    return report


def bare_episode(artifact: PolicyArtifact, sim: Sim2SimConfig, seed: int) -> dict[str, Any]:
    """The artifact on our robot model without the deploy runtime: no limiter, guards or ramp.

    RobotSimulation (the runtime's simulator) from the same seeded reset state as a sim2sim episode,
    the policy every control period on robolearn's observation, its PD targets sent with the
    contract's gains every command period: what is left of the gap once the runtime is out of it.
    """
    contract = artifact.contract
    spec = contract.robot
    rule, joint_noise, velocity_noise = task_defaults(spec.name)
    backend = Sim2SimBackend(spec, None, sim, seed, rule, joint_noise, velocity_noise)
    model_sim = backend.sim
    pipeline, network = ObservationPipeline(contract), OnnxPolicy(artifact.network_path, contract)
    network.reset()
    command_dt = 1.0 / sim.command_hz
    decimation = round(contract.control_dt / command_dt)
    substeps = round(command_dt / model_sim.physics_dt)
    r, v = model_sim.index.root_qpos_adr, model_sim.index.root_qvel_adr
    last = np.zeros(spec.num_joints)
    target = spec.default_pos_array.copy()
    rows: list[tuple[float, ...]] = []
    fall = None
    wall = time.perf_counter()
    for k in range(round(sim.duration_s / command_dt)):
        if k % decimation == 0:
            reading = model_sim.read()
            state = RobotState(
                joint_pos=reading.joint_pos,
                joint_vel=reading.joint_vel,
                base_quat=reading.quat,
                gyro=reading.gyro,
                command=np.asarray(sim.command, dtype=np.float64),
                last_action=last,
                gait_phase=contract.gait_phase(k // decimation),
            )
            _, x = pipeline(state)
            raw = contract.full_action(network(x))
            last = np.clip(raw, -contract.action_clip, contract.action_clip) if contract.action_clip else raw
            target = spec.default_pos_array + spec.action_scale_array * last
        model_sim.set_command(target, spec.kp_array, spec.kd_array)
        model_sim.step(substeps)
        row = base_row((k + 1) * command_dt, model_sim.data.qpos[r : r + 7], model_sim.data.qvel[v : v + 6])
        rows.append(row)
        fall = fall_check(rule, row[0], row[6], row[7])
        if fall is not None:
            break
    return {**_runtime_free_report(seed, fall, rows, sim), "wall_s": round(time.perf_counter() - wall, 3)}


def _runtime_free_report(
    seed: int, fall: tuple[float, str] | None, rows: list[tuple[float, ...]], sim: Sim2SimConfig
) -> dict[str, Any]:
    """An episode's sim2sim fields for a loop without the deploy runtime (unitree's, or the bare one):
    the same tracking figures, and the safety layer's and limits' columns empty."""
    return {
        "seed": seed,
        "fell": fall is not None,
        "completed": fall is None,
        "time_to_fall_s": None if fall is None else round(fall[0], 4),
        "fall_reason": None if fall is None else fall[1],
        **tracking_figures(rows, sim.command, sim.settle_s),
        "joint_limit_hits": 0,
        "torque_limit_hits": 0,
        "limited_commands": 0,
        "safety_faults": [],
        "runtime": {"outcome": "n/a"},
    }


def _compact(result: dict[str, Any]) -> dict[str, Any]:
    """The result without the per-episode runtime logs (kept small for benchmarks/results)."""
    out = dict(result)
    out["episodes"] = [{k: v for k, v in e.items() if k != "log"} for e in result["episodes"]]
    return out


def main() -> None:
    """Import, evaluate in both loops, write the JSON and print the tables."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--policy", type=Path, required=True, help="unitree_rl_gym TorchScript policy (motion.pt)"
    )
    parser.add_argument("--config", type=Path, required=True, help="its deploy_mujoco yaml (g1.yaml)")
    parser.add_argument("--robot", default="g1", help="robolearn robot (g1 = 23-DoF)")
    parser.add_argument("--unitree-root", type=Path, default=None, help="unitree_rl_gym checkout with meshes")
    parser.add_argument(
        "--unitree-repo", type=Path, default=None, help="unitree_rl_gym git dir (git archive)"
    )
    parser.add_argument("--command", type=float, nargs=3, default=[0.5, 0.0, 0.0])
    parser.add_argument("--duration", type=float, default=20.0)
    parser.add_argument("--settle", type=float, default=2.0)
    parser.add_argument("--episodes", type=int, default=3)
    parser.add_argument("--out", type=Path, default=REPO / "benchmarks" / "results" / "sim2sim")
    parser.add_argument(
        "--waist-kp",
        type=float,
        default=None,
        help="also run an ablation: the waist joints held with this kp",
    )
    parser.add_argument("--work", type=Path, default=Path("/tmp/robolearn_sim2sim_bench"))
    args = parser.parse_args()
    torch.set_num_threads(1)
    args.work.mkdir(parents=True, exist_ok=True)
    artifact = args.work / "artifact"
    import_policy(args.policy.resolve(), args.config.resolve(), args.robot, artifact)
    sim = Sim2SimConfig(
        command=(args.command[0], args.command[1], args.command[2]),
        duration_s=args.duration,
        episodes=args.episodes,
        seed=0,
        settle_s=args.settle,
    )
    wall = time.perf_counter()
    ours = run_sim2sim(artifact, sim)
    ours_wall = time.perf_counter() - wall
    print(f"\nrobolearn: {args.robot} through the deploy runtime ({ours_wall:.1f} s wall)")
    print(result_table(ours), flush=True)

    wall = time.perf_counter()
    imported = load_artifact(artifact)
    bare_episodes = [bare_episode(imported, sim, sim.seed + i) for i in range(sim.episodes)]
    bare: dict[str, Any] = {
        "summary": summarize(bare_episodes),
        "episodes": bare_episodes,
        "wall_s": round(time.perf_counter() - wall, 1),
    }
    print(f"\nrobolearn's model without the runtime (no limiter, guards or ramp; {bare['wall_s']} s wall)")
    print(result_table(bare), flush=True)

    ablation: dict[str, Any] | None = None
    if args.waist_kp is not None:
        # The waist held stiff through the export's own held-joint gains (kd = kp / 20): unitree_rl_gym's
        # 12-DoF model welds the torso to the pelvis, our G1 holds the waist with the spec's PD.
        stiff = args.work / "artifact_stiff_waist"
        kp = args.waist_kp
        import_policy(
            args.policy.resolve(),
            args.config.resolve(),
            args.robot,
            stiff,
            f"hold_kp={kp:g}",
            f"hold_kd={kp / 20:g}",
            "hold_joints='waist_.*'",
        )
        wall = time.perf_counter()
        ablation = run_sim2sim(stiff, sim)
        ablation["wall_s"] = round(time.perf_counter() - wall, 1)
        print(
            f"\nrobolearn, waist joints held with kp={args.waist_kp:g} (ablation, {ablation['wall_s']} s wall)"
        )
        print(result_table(ablation), flush=True)

    with open(args.config, encoding="utf-8") as fh:
        cfg = yaml.safe_load(fh)
    root, why = unitree_root(args, args.work)
    theirs: dict[str, Any]
    if root is None:
        theirs = {"skipped": why}
        print(f"\nunitree_rl_gym's own loop: skipped ({why})")
    else:
        xml = Path(str(cfg["xml_path"]).replace("{LEGGED_GYM_ROOT_DIR}", str(root)))
        dropped = load_unitree_model(xml)[1]
        if dropped:
            print(f"\nunitree model: mesh files absent, geoms dropped: {', '.join(dropped)}")
        wall = time.perf_counter()
        episodes = [
            unitree_episode(root, cfg, args.policy, sim, sim.seed + i, imported) for i in range(sim.episodes)
        ]
        theirs = {
            "loop": "deploy/deploy_mujoco/deploy_mujoco.py re-implemented (no viewer)",
            "model": str(cfg["xml_path"]),
            "dropped_geoms": dropped,
            "summary": summarize(episodes),
            "episodes": episodes,
            "wall_s": round(time.perf_counter() - wall, 1),
        }
        print(f"\nunitree_rl_gym's own MuJoCo loop, their 12-DoF model ({theirs['wall_s']} s wall)")
        print(result_table(theirs), flush=True)
        obs_diff = max(e["max_obs_diff_vs_import"] for e in episodes)
        action_diff = max(e["max_action_diff_vs_import"] for e in episodes)
        print(
            f"the import inside their loop: observation max |diff| {obs_diff:.2e},"
            f" action (ONNX vs their TorchScript) max |diff| {action_diff:.2e}"
        )

    out = args.out / f"{args.robot}_{args.policy.stem}.json"
    atomic_write_json(
        out,
        {
            "command": shlex.join([Path(sys.executable).name, *sys.argv]),
            "machine": {
                "node": platform.node(),
                "processor": platform.processor() or platform.machine(),
                "cpus": os.cpu_count(),
                "note": "shared 2-core VM, loaded by other agents: wall times are indicative only",
            },
            "config": dataclasses.asdict(sim),
            "robolearn": {**_compact(ours), "wall_s": round(ours_wall, 1)},
            "unitree": theirs,
            "robolearn_without_runtime": bare,
            "robolearn_stiff_waist": None if ablation is None else _compact(ablation),
        },
    )
    print(f"\nwrote {out}")


if __name__ == "__main__":
    main()
